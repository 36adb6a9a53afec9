//! Calling a plugin's SQL functions (ABI 1.2) and the byte sink that collects what a
//! plugin writes (a function's result, a snapshot's state).

use crate::registry::PluginSlot;
use std::ffi::c_void;
use walker_abi::{WalkerStateSink, WalkerStatus};

unsafe extern "C" fn vec_write(ctx: *mut c_void, data: *const u8, len: usize) -> WalkerStatus {
    // SAFETY: `ctx` is the `Vec<u8>` of `vec_sink`, alive for the call.
    let Some(buf) = (unsafe { (ctx as *mut Vec<u8>).as_mut() }) else {
        return WalkerStatus::INVALID;
    };
    if len == 0 {
        return WalkerStatus::OK;
    }
    if data.is_null() {
        return WalkerStatus::INVALID;
    }
    // SAFETY: the plugin passes `len` readable bytes.
    buf.extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
    WalkerStatus::OK
}

/// A sink appending to `buf`; valid while `buf` is neither moved nor dropped.
pub fn vec_sink(buf: &mut Vec<u8>) -> WalkerStateSink {
    WalkerStateSink {
        ctx: buf as *mut Vec<u8> as *mut c_void,
        write: Some(vec_write),
    }
}

/// Why a function call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin has no function of that name.
    #[error("walker plugin \"{plugin}\" has no function \"{function}\"")]
    Unknown {
        /// Plugin name.
        plugin: String,
        /// Function asked for.
        function: String,
        /// The functions it has.
        available: Vec<String>,
    },
    /// The plugin returned an error (its message).
    #[error("walker plugin \"{plugin}\" function \"{function}\": {reason}")]
    Failed {
        /// Plugin name.
        plugin: String,
        /// Function.
        function: String,
        /// The plugin's message.
        reason: String,
        /// Whose fault it is: the arguments' (SQLSTATE 22023) or the function's (38000).
        kind: Failure,
    },
    /// A wait inside the function was interrupted.
    #[error("interrupted")]
    Interrupted,
}

/// What kind of failure a function call reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The plugin said the arguments are wrong (`INVALID`): SQLSTATE 22023.
    InvalidArgument,
    /// Anything else (an error, a panic, a result that is not UTF-8): SQLSTATE 38000.
    Failed,
}

impl Failure {
    /// The kind of failure a `call` status reports.
    pub fn of(st: WalkerStatus) -> Failure {
        if st == WalkerStatus::INVALID {
            Failure::InvalidArgument
        } else {
            Failure::Failed
        }
    }
}

/// Index of `function` among the plugin's functions.
pub fn find(slot: &PluginSlot, function: &str) -> Result<usize, CallError> {
    slot.functions
        .iter()
        .position(|f| f.name == function)
        .ok_or_else(|| CallError::Unknown {
            plugin: slot.name.clone(),
            function: function.to_string(),
            available: slot.functions.iter().map(|f| f.name.clone()).collect(),
        })
}

/// Calls function number `index` of a usable plugin with `args` (JSON text).
pub fn call(slot: &'static PluginSlot, index: usize, args: &str) -> Result<String, CallError> {
    let name = slot
        .functions
        .get(index)
        .map(|f| f.name.clone())
        .unwrap_or_default();
    let failed_as = |kind: Failure, reason: String| CallError::Failed {
        plugin: slot.name.clone(),
        function: name.clone(),
        reason,
        kind,
    };
    let failed = |reason: String| failed_as(Failure::Failed, reason);
    let Some(f) = slot.desc.as_ref().and_then(|d| d.call) else {
        return Err(failed("the plugin has no call callback".into()));
    };
    let mut out = Vec::new();
    let sink = vec_sink(&mut out);
    // SAFETY: negotiated callback; `args` and the sink outlive the call.
    let st = unsafe {
        f(
            slot.handle(),
            index as u32,
            args.as_ptr(),
            args.len(),
            &sink,
        )
    };
    if st == WalkerStatus::INTERRUPTED {
        let _ = slot.check(st, "call");
        return Err(CallError::Interrupted);
    }
    slot.check(st, "call")
        .map_err(|reason| failed_as(Failure::of(st), reason))?;
    String::from_utf8(out).map_err(|_| failed("the result is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_invalid_is_an_argument_error() {
        assert_eq!(Failure::of(WalkerStatus::INVALID), Failure::InvalidArgument);
        for st in [
            WalkerStatus::ERROR,
            WalkerStatus::PANIC,
            WalkerStatus::NOT_FOUND,
        ] {
            assert_eq!(Failure::of(st), Failure::Failed);
        }
    }
}

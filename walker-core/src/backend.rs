//! Backend events (ABI 1.3): what the host's executor, utility and transaction hooks
//! hand to the plugins that asked for them, and what comes back.
//!
//! The hooks themselves live in the server edge; here is the plain part: calling each
//! plugin's `on_backend` in turn, reading its verdict, and deciding what the statement
//! does. The first plugin that rejects (or whose wait is interrupted) decides; the
//! ones after it are not asked.

use crate::registry::PluginSlot;
use walker_abi::{WalkerBackendEvent, WalkerStatus, WalkerVerdict};

/// SQLSTATE used when a plugin rejects without naming one: `53000`
/// (insufficient resources).
pub const DEFAULT_SQLSTATE: [u8; 5] = *b"53000";

/// A statement a plugin refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The plugin that refused.
    pub plugin: String,
    /// The SQLSTATE to raise (checked: five characters `0-9A-Z`).
    pub sqlstate: [u8; 5],
    /// Error message (prefixed with nothing; plugins write full sentences).
    pub message: String,
    /// Error detail, possibly empty.
    pub detail: String,
    /// Error hint, possibly empty.
    pub hint: String,
}

/// What the statement does after the plugins were asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Run it.
    Proceed,
    /// Raise this error instead.
    Reject(Rejection),
    /// A plugin's wait was interrupted: process the pending interrupt.
    Interrupted,
}

/// A plugin callback that failed; the statement went on (or was refused, when the
/// plugin asked to fail closed). The host logs these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Plugin name.
    pub plugin: String,
    /// What went wrong.
    pub message: String,
}

/// A zeroed verdict with its size set.
pub fn empty_verdict() -> Box<WalkerVerdict> {
    // SAFETY: all-zero bytes are a valid verdict (integers, bools, byte arrays).
    let mut v: Box<WalkerVerdict> = unsafe { Box::new(std::mem::zeroed()) };
    v.struct_size = std::mem::size_of::<WalkerVerdict>() as u32;
    v
}

fn text(buf: &[u8], len: u32) -> String {
    let n = (len as usize).min(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The SQLSTATE a verdict names, or [`DEFAULT_SQLSTATE`] when it names none or an
/// invalid one.
pub fn sqlstate_of(v: &WalkerVerdict) -> [u8; 5] {
    let s = v.sqlstate;
    if s.iter()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    {
        s
    } else {
        DEFAULT_SQLSTATE
    }
}

/// Reads the rejection a plugin wrote into `v`.
pub fn rejection_of(plugin: &str, v: &WalkerVerdict) -> Rejection {
    let mut message = text(&v.message, v.message_len);
    if message.is_empty() {
        message = format!("walker plugin \"{plugin}\" refused the statement");
    }
    Rejection {
        plugin: plugin.to_string(),
        sqlstate: sqlstate_of(v),
        message,
        detail: text(&v.detail, v.detail_len),
        hint: text(&v.hint, v.hint_len),
    }
}

/// What one plugin's status and verdict mean for the statement.
pub fn interpret(
    plugin: &str,
    st: WalkerStatus,
    error: Result<(), String>,
    v: &WalkerVerdict,
) -> (Outcome, Option<Failure>) {
    match st {
        WalkerStatus::OK => (Outcome::Proceed, None),
        WalkerStatus::REJECTED => (Outcome::Reject(rejection_of(plugin, v)), None),
        WalkerStatus::INTERRUPTED => (Outcome::Interrupted, None),
        _ => {
            let message = error.err().unwrap_or_else(|| "failed".into());
            let failure = Failure {
                plugin: plugin.to_string(),
                message: message.clone(),
            };
            if v.fail_closed {
                let r = Rejection {
                    plugin: plugin.to_string(),
                    sqlstate: *b"XX000",
                    message: format!("walker plugin \"{plugin}\" failed and is set to fail closed: {message}"),
                    detail: String::new(),
                    hint: format!("Fix the cause in the server log, or let the plugin fail open (see its settings, e.g. {plugin}.fail_open)."),
                };
                (Outcome::Reject(r), Some(failure))
            } else {
                (Outcome::Proceed, Some(failure))
            }
        }
    }
}

/// Calls `on_backend` of every slot in `slots` that has it, in order, until one
/// rejects or is interrupted.
pub fn dispatch(
    slots: &[&'static PluginSlot],
    event: &WalkerBackendEvent,
) -> (Outcome, Vec<Failure>) {
    let mut failures = Vec::new();
    for slot in slots {
        let Some(f) = slot.desc.as_ref().and_then(|d| d.on_backend) else {
            continue;
        };
        let mut v = reused_verdict();
        // SAFETY: negotiated callback; the event and verdict outlive the call.
        let st = unsafe { f(slot.handle(), event, &mut *v) };
        let error = slot.check(st, "on_backend");
        let (outcome, failure) = interpret(&slot.name, st, error, &v);
        failures.extend(failure);
        give_back(v);
        if outcome != Outcome::Proceed {
            return (outcome, failures);
        }
    }
    (Outcome::Proceed, failures)
}

thread_local! {
    /// A verdict kept between events (it is 2 kB: allocating and freeing one per
    /// plugin per event showed in the backends' profiles).
    static SPARE: std::cell::Cell<Option<Box<WalkerVerdict>>> = const { std::cell::Cell::new(None) };
}

/// A zeroed verdict with its size set: this thread's spare one, zeroed again, or a new
/// one.
fn reused_verdict() -> Box<WalkerVerdict> {
    match SPARE.with(|c| c.take()) {
        Some(mut v) => {
            // SAFETY: all-zero bytes are a valid verdict (see `empty_verdict`); `v` is
            // a unique, live allocation of exactly one verdict.
            unsafe { std::ptr::write_bytes(&mut *v as *mut WalkerVerdict, 0, 1) };
            v.struct_size = std::mem::size_of::<WalkerVerdict>() as u32;
            v
        }
        None => empty_verdict(),
    }
}

/// Keeps `v` for this thread's next event.
fn give_back(v: Box<WalkerVerdict>) {
    SPARE.with(|c| c.set(Some(v)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_carries_its_text_and_a_checked_sqlstate() {
        let mut v = empty_verdict();
        v.sqlstate = *b"WB001";
        v.message[..4].copy_from_slice(b"over");
        v.message_len = 4;
        v.hint[..2].copy_from_slice(b"hi");
        v.hint_len = 2;
        let (o, f) = interpret("budget", WalkerStatus::REJECTED, Ok(()), &v);
        assert_eq!(f, None);
        assert_eq!(
            o,
            Outcome::Reject(Rejection {
                plugin: "budget".into(),
                sqlstate: *b"WB001",
                message: "over".into(),
                detail: String::new(),
                hint: "hi".into(),
            })
        );
        v.sqlstate = *b"wb\0\0\0";
        assert_eq!(sqlstate_of(&v), DEFAULT_SQLSTATE);
        // A length past the buffer is cut to the buffer.
        v.message_len = u32::MAX;
        assert_eq!(rejection_of("p", &v).message.len(), v.message.len());
    }

    #[test]
    fn a_reused_verdict_is_zeroed_again() {
        let mut v = reused_verdict();
        v.sqlstate = *b"WB001";
        v.message[..4].copy_from_slice(b"over");
        v.message_len = 4;
        v.fail_closed = true;
        let at = &*v as *const WalkerVerdict;
        give_back(v);
        let again = reused_verdict();
        assert_eq!(&*again as *const WalkerVerdict, at, "the spare is reused");
        let fresh = empty_verdict();
        // SAFETY: both are plain-data verdicts of the same size.
        let bytes = |x: &WalkerVerdict| unsafe {
            std::slice::from_raw_parts(
                x as *const WalkerVerdict as *const u8,
                std::mem::size_of::<WalkerVerdict>(),
            )
            .to_vec()
        };
        assert_eq!(bytes(&again), bytes(&fresh));
    }

    #[test]
    fn failures_proceed_unless_the_plugin_fails_closed() {
        let mut v = empty_verdict();
        let (o, f) = interpret("p", WalkerStatus::PANIC, Err("boom".into()), &v);
        assert_eq!(o, Outcome::Proceed);
        assert_eq!(f.unwrap().message, "boom");
        v.fail_closed = true;
        let (o, _) = interpret("p", WalkerStatus::ERROR, Err("boom".into()), &v);
        match o {
            Outcome::Reject(r) => {
                assert_eq!(&r.sqlstate, b"XX000");
                assert!(r.message.contains("fail closed: boom"), "{}", r.message);
            }
            other => panic!("{other:?}"),
        }
        let (o, f) = interpret("p", WalkerStatus::INTERRUPTED, Ok(()), &v);
        assert_eq!((o, f), (Outcome::Interrupted, None));
    }
}

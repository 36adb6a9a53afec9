//! A fake host table for testing the SDK's trampolines without a server: `set_error`
//! records the message, everything else is absent. One test per test binary uses it
//! (the SDK keeps one plugin instance per process).

use std::sync::Mutex;
use walker_abi::{WalkerHostApi, WalkerPlugin, WALKER_ABI_MAJOR, WALKER_ABI_MINOR};

static LAST_ERROR: Mutex<Option<String>> = Mutex::new(None);

unsafe extern "C" fn set_error(_plugin: *mut WalkerPlugin, msg: *const u8, len: usize) {
    // SAFETY: the SDK passes `len` readable bytes at `msg`.
    let bytes = unsafe { std::slice::from_raw_parts(msg, len) };
    *LAST_ERROR.lock().unwrap() = Some(String::from_utf8_lossy(bytes).into_owned());
}

/// The message the last failing callback passed to `set_error` (taken).
pub fn take_error() -> Option<String> {
    LAST_ERROR.lock().unwrap().take()
}

/// A host table of the current ABI offering only `set_error`, alive for the process.
pub fn table() -> &'static WalkerHostApi {
    // SAFETY: every field of the table is an integer or an `Option` of a function
    // pointer, for which all-zero bytes are valid (0 and `None`).
    let mut api: WalkerHostApi = unsafe { std::mem::zeroed() };
    api.struct_size = std::mem::size_of::<WalkerHostApi>() as u32;
    api.abi_major = WALKER_ABI_MAJOR;
    api.abi_minor = WALKER_ABI_MINOR;
    api.set_error = Some(set_error);
    Box::leak(Box::new(api))
}

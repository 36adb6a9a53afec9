//! The safe Rust SDK for writing walker plugins.
//!
//! Implement [`Plugin`] for a type and call [`export_plugin!`](crate::export_plugin)
//! once in the crate (a `cdylib`). The macro exports the entry symbol and the layout
//! symbol; every callback goes through a trampoline here that catches panics, so a
//! plugin never unwinds into the host: a panic becomes
//! [`WalkerStatus::PANIC`](crate::WalkerStatus::PANIC) with the panic message, and the
//! host marks the plugin failed while the others go on. A panic poisons the instance
//! in its process: every later callback there fails at once with
//! a message naming the callback that panicked and the panic.
//!
//! The SDK's modules, one concern each: errors, plugin declarations,
//! the [`Plugin`] trait, records, view rows, backend events, settings, shared memory,
//! host services, and the export machinery behind [`export_plugin!`](crate::export_plugin).
//! Everything public is re-exported here, so paths such as `walker_abi::sdk::Host` stay.

use std::ffi::{c_char, CStr};

mod backend;
mod declare;
mod error;
mod export;
mod host;
mod plugin;
mod records;
mod rows;
mod services;
mod settings;
mod shmem;

pub use backend::{Admission, BackendEvent, Rejection};
pub use declare::{FunctionDef, PluginInfo, ViewDef};
pub use error::{ErrorKind, PluginError, PluginResult};
#[doc(hidden)]
pub use export::descriptor;
pub use export::descriptor_layout;
pub use host::Host;
pub use plugin::{Plugin, SharedState};
pub use records::{Record, Records, RecordsError};
pub use rows::{RowSink, Value};
pub use services::ServiceOutcome;
pub use settings::{Setting, SettingValue};

/// Reads a NUL-terminated string the ABI passes; `None` for null or non-UTF-8.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string.
pub unsafe fn c_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        // SAFETY: the caller guarantees a NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

/// Exports a [`Plugin`] implementation as this shared library's walker plugin.
///
/// ```ignore
/// struct MyPlugin;
/// impl walker_abi::Plugin for MyPlugin { /* ... */ }
/// walker_abi::export_plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        /// The walker plugin entry point.
        #[no_mangle]
        pub extern "C" fn walker_plugin_entry() -> *const $crate::WalkerPluginDescriptor {
            $crate::sdk::descriptor::<$ty>()
        }

        /// The ABI layout this plugin was built against.
        #[no_mangle]
        pub extern "C" fn walker_plugin_layout(
        ) -> &'static $crate::abi_stable::type_layout::TypeLayout {
            $crate::sdk::descriptor_layout()
        }
    };
}

#[cfg(test)]
mod tests;

//! Server start (`_PG_init` in the postmaster): load every listed plugin, let it
//! define its settings, and reserve the prefixes. Nothing here may stop the server: a
//! plugin that cannot be loaded is kept as a slot that says why.

use crate::gucs;
use pgrx::pg_sys;
use std::ffi::CStr;
use std::path::PathBuf;
use walker_core::loader::{self, LibraryPaths};
use walker_core::names::parse_plugin_list;
use walker_core::registry::{self, PluginSlot};

fn library_paths() -> LibraryPaths {
    // SAFETY: `pkglib_path` is a NUL-terminated array the server fills before
    // loading libraries; read on the main thread.
    let pkglibdir = unsafe {
        CStr::from_ptr(std::ptr::addr_of!(pg_sys::pkglib_path) as *const std::ffi::c_char)
    };
    LibraryPaths {
        dynamic_library_path: gucs::server_setting(c"dynamic_library_path")
            .unwrap_or_else(|| "$libdir".into()),
        pkglibdir: PathBuf::from(pkglibdir.to_string_lossy().into_owned()),
        dlsuffix: ".so".into(),
    }
}

/// Loads and initialises the plugins named in `walker.plugins`.
pub fn load_plugins() {
    walker_core::host_api::set_definer(gucs::define_plugin_setting);
    let paths = library_paths();
    for (index, entry) in parse_plugin_list(&gucs::plugins_value())
        .into_iter()
        .enumerate()
    {
        let slot = match entry {
            Ok(name) => loader::load_plugin(index, &name, &paths),
            Err(e) => {
                let shown = e.name().to_string();
                PluginSlot::not_loaded(
                    index,
                    &shown,
                    None,
                    None,
                    loader::LoadError::from(e).to_string(),
                )
            }
        };
        let slot = registry::register(slot);
        if slot.usable() {
            match slot.init(&walker_core::host_api::HOST_API) {
                Ok(()) => {
                    gucs::reserve_prefix(&slot.name);
                    pgrx::log!(
                        "walker: plugin \"{}\" {} loaded from {}",
                        slot.name,
                        slot.version,
                        display_path(slot)
                    );
                }
                Err(msg) => {
                    pgrx::warning!("walker: plugin \"{}\" failed to start: {msg}", slot.name)
                }
            }
        } else if let Some((_, msg)) = slot.load_error() {
            pgrx::warning!("walker: plugin \"{}\" not loaded: {msg}", slot.name);
        }
        crate::logging::drain();
    }
}

fn display_path(slot: &PluginSlot) -> String {
    slot.path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

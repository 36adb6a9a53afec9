//! A panic in `shmem_size` is reported, not swallowed: the trampoline returns
//! `WALKER_SHMEM_SIZE_FAILED` with the panic's message, and the instance is poisoned.

mod fake_host;

use walker_abi::*;

struct Greedy;

impl Plugin for Greedy {
    fn describe() -> PluginInfo {
        PluginInfo {
            version: "0",
            description: "shmem_size panics",
            rmgrs: [0; WALKER_RMGR_MASK_WORDS],
            views: Vec::new(),
            snapshots: false,
            functions: Vec::new(),
            backend_events: false,
            sql: None,
            role: None,
        }
    }
    fn init(_host: &Host) -> PluginResult<Self> {
        Ok(Greedy)
    }
    fn shmem_size(&self, _host: &Host) -> usize {
        panic!("cannot size the table")
    }
}

export_plugin!(Greedy);

#[test]
fn a_panic_in_shmem_size_is_reported() {
    // SAFETY: the SDK's descriptor lives for the process.
    let desc = unsafe { &*walker_plugin_entry() };
    // SAFETY: the fake table lives for the process.
    let st = unsafe { desc.init.unwrap()(fake_host::table(), std::ptr::null_mut()) };
    assert_eq!(st, WalkerStatus::OK);
    // SAFETY: a callback of an initialised plugin.
    let size = unsafe { desc.shmem_size.unwrap()(std::ptr::null_mut()) };
    assert_eq!(size, WALKER_SHMEM_SIZE_FAILED);
    assert_eq!(
        fake_host::take_error().as_deref(),
        Some("plugin panicked: cannot size the table")
    );
    // SAFETY: as above.
    let st = unsafe { desc.on_idle.unwrap()(std::ptr::null_mut(), 0) };
    assert_eq!(st, WalkerStatus::ERROR);
    assert_eq!(
        fake_host::take_error().as_deref(),
        Some("the plugin panicked earlier in shmem_size: cannot size the table; it serves nothing until the server restarts")
    );
}

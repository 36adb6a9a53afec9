//! The SDK's trampolines through the descriptor, as a host calls them: a failing SQL
//! function reports its error kind (invalid argument or not), and after a panic in
//! any callback the instance serves nothing more (it is poisoned).

mod fake_host;

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};
use walker_abi::*;

static BACKEND_CALLS: AtomicU32 = AtomicU32::new(0);
static VIEW_CALLS: AtomicU32 = AtomicU32::new(0);

struct Probe;

const FN_BAD_ARGS: u32 = 0;
const FN_FAILS: u32 = 1;
const FN_PANICS: u32 = 2;
const FN_ANSWERS: u32 = 3;

impl Plugin for Probe {
    fn describe() -> PluginInfo {
        let f = |name| FunctionDef {
            name,
            description: "test",
            result: WalkerType::TEXT,
            access: WalkerAccess::ADMIN,
        };
        PluginInfo {
            version: "0",
            description: "poisoning probe",
            rmgrs: [0; WALKER_RMGR_MASK_WORDS],
            views: vec![ViewDef {
                name: "v",
                description: "test",
                columns: vec![("n", WalkerType::INT8)],
            }],
            snapshots: false,
            functions: vec![f("bad_args"), f("fails"), f("panics"), f("answers")],
            backend_events: true,
            sql: None,
            role: None,
        }
    }
    fn init(_host: &Host) -> PluginResult<Self> {
        Ok(Probe)
    }
    fn call(&self, _host: &Host, function: usize, _args: &str) -> PluginResult<String> {
        match function as u32 {
            FN_BAD_ARGS => Err(PluginError::invalid_argument("tenant must be a string")),
            FN_FAILS => Err(PluginError::new("the disk is on fire")),
            FN_PANICS => panic!("call went wrong"),
            _ => Ok("fine".into()),
        }
    }
    fn on_backend(&self, _host: &Host, _event: &BackendEvent<'_>) -> PluginResult<Admission> {
        BACKEND_CALLS.fetch_add(1, Ordering::SeqCst);
        Ok(Admission::Proceed)
    }
    fn view_rows(&self, _host: &Host, _view: usize, _sink: &mut RowSink<'_>) -> PluginResult {
        VIEW_CALLS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

export_plugin!(Probe);

unsafe extern "C" fn vec_write(ctx: *mut c_void, data: *const u8, len: usize) -> WalkerStatus {
    // SAFETY: `ctx` is the Vec the test passed; `data` holds `len` bytes.
    unsafe { (*(ctx as *mut Vec<u8>)).extend_from_slice(std::slice::from_raw_parts(data, len)) };
    WalkerStatus::OK
}

fn desc() -> &'static WalkerPluginDescriptor {
    // SAFETY: the SDK's descriptor lives for the process.
    unsafe { &*walker_plugin_entry() }
}

fn call(function: u32) -> (WalkerStatus, String) {
    let mut out = Vec::new();
    let sink = WalkerStateSink {
        ctx: &mut out as *mut Vec<u8> as *mut c_void,
        write: Some(vec_write),
    };
    let args = b"{}";
    // SAFETY: the arguments and the sink outlive the call.
    let st = unsafe {
        desc().call.unwrap()(
            std::ptr::null_mut(),
            function,
            args.as_ptr(),
            args.len(),
            &sink,
        )
    };
    (st, String::from_utf8(out).unwrap())
}

fn on_backend() -> WalkerStatus {
    // SAFETY: integers, booleans and null pointers: all-zero is a valid event/verdict.
    let mut event: WalkerBackendEvent = unsafe { std::mem::zeroed() };
    event.struct_size = std::mem::size_of::<WalkerBackendEvent>() as u32;
    event.kind = WalkerBackendEventKind::STATEMENT_START;
    // SAFETY: as above.
    let mut verdict: WalkerVerdict = unsafe { std::mem::zeroed() };
    // SAFETY: both outlive the call.
    unsafe { desc().on_backend.unwrap()(std::ptr::null_mut(), &event, &mut verdict) }
}

fn view_rows() -> WalkerStatus {
    let sink = WalkerRowSink {
        ctx: std::ptr::null_mut(),
        emit: None,
    };
    // SAFETY: the sink outlives the call.
    unsafe { desc().view_rows.unwrap()(std::ptr::null_mut(), 0, &sink) }
}

#[test]
fn error_kinds_then_a_panic_poisons_the_instance() {
    // SAFETY: the fake table lives for the process.
    let st = unsafe { desc().init.unwrap()(fake_host::table(), std::ptr::null_mut()) };
    assert_eq!(st, WalkerStatus::OK);

    // Error kinds: the host turns INVALID into SQLSTATE 22023 and ERROR into 38000.
    assert_eq!(call(FN_BAD_ARGS).0, WalkerStatus::INVALID);
    assert_eq!(
        fake_host::take_error().as_deref(),
        Some("tenant must be a string")
    );
    assert_eq!(call(FN_FAILS).0, WalkerStatus::ERROR);
    assert_eq!(
        fake_host::take_error().as_deref(),
        Some("the disk is on fire")
    );
    assert_eq!(call(FN_ANSWERS), (WalkerStatus::OK, "fine".to_string()));
    assert_eq!(on_backend(), WalkerStatus::OK);
    assert_eq!(view_rows(), WalkerStatus::OK);
    assert_eq!(BACKEND_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(VIEW_CALLS.load(Ordering::SeqCst), 1);

    // A panic in call: reported, and the instance is poisoned.
    assert_eq!(call(FN_PANICS).0, WalkerStatus::PANIC);
    assert_eq!(
        fake_host::take_error().as_deref(),
        Some("plugin panicked: call went wrong")
    );
    let poisoned = "the plugin panicked earlier in call: call went wrong; it serves nothing until the server restarts";
    assert_eq!(on_backend(), WalkerStatus::ERROR);
    assert_eq!(fake_host::take_error().as_deref(), Some(poisoned));
    assert_eq!(view_rows(), WalkerStatus::ERROR);
    assert_eq!(fake_host::take_error().as_deref(), Some(poisoned));
    assert_eq!(call(FN_ANSWERS).0, WalkerStatus::ERROR);
    assert_eq!(fake_host::take_error().as_deref(), Some(poisoned));
    // The plugin's code did not run again.
    assert_eq!(BACKEND_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(VIEW_CALLS.load(Ordering::SeqCst), 1);
}

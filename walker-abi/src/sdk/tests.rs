//! Unit tests of [`Host`] against a fake host table whose functions the tests control.

use super::*;
use crate::types::*;
use std::cell::RefCell;
use std::ffi::{c_char, CStr};

thread_local! {
    /// The message the fake `service_result` hands out, and whether it copies a cut
    /// prefix (the ABI's rule) or nothing (hosts before the rule) when it does not fit.
    static SERVICE_MESSAGE: RefCell<(String, bool)> = const { RefCell::new((String::new(), false)) };
}

unsafe extern "C" fn fake_service_result(
    _plugin: *mut WalkerPlugin,
    _id: u64,
    _wait_ms: u32,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> WalkerStatus {
    SERVICE_MESSAGE.with(|m| {
        let (msg, cuts) = &*m.borrow();
        // SAFETY: the SDK passes a writable `len_out` and `cap` writable bytes at `buf`.
        unsafe { *len_out = msg.len() };
        let n = if msg.len() <= cap {
            msg.len()
        } else if *cuts {
            (0..=cap)
                .rev()
                .find(|&n| msg.is_char_boundary(n))
                .unwrap_or(0)
        } else {
            0
        };
        // SAFETY: as above; `n <= cap`.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), buf, n) };
    });
    WalkerStatus::OK
}

fn fake_host(message: &str, cuts: bool) -> Host {
    SERVICE_MESSAGE.with(|m| *m.borrow_mut() = (message.to_string(), cuts));
    // SAFETY: every field is an integer or an `Option` of a function pointer, for
    // which all-zero bytes are valid.
    let mut api: WalkerHostApi = unsafe { std::mem::zeroed() };
    api.struct_size = std::mem::size_of::<WalkerHostApi>() as u32;
    api.abi_major = WALKER_ABI_MAJOR;
    api.abi_minor = WALKER_ABI_MINOR;
    api.service_result = Some(fake_service_result);
    // SAFETY: the leaked table lives for the process.
    unsafe { Host::from_raw(Box::leak(Box::new(api)), std::ptr::null_mut()) }
}

#[test]
fn service_result_receives_a_message_up_to_the_abi_bound_whole() {
    // A host that copies nothing when the buffer is too small, with a message longer
    // than 2,048 bytes but within the bound.
    for len in [2_049, 5_000, WALKER_SERVICE_MESSAGE_MAX] {
        let msg = "é".repeat(len / 2) + &"x".repeat(len % 2);
        let host = fake_host(&msg, false);
        assert_eq!(host.service_result(1, 0), ServiceOutcome::Succeeded(msg));
    }
}

#[test]
fn service_result_past_the_bound_says_so_instead_of_nul_bytes() {
    let msg = "é".repeat(WALKER_SERVICE_MESSAGE_MAX); // twice the bound
    for cuts in [true, false] {
        let host = fake_host(&msg, cuts);
        let ServiceOutcome::Succeeded(got) = host.service_result(1, 0) else {
            panic!("not a success");
        };
        assert!(!got.contains('\0'), "NUL bytes handed out");
        assert!(got.contains(&format!("{} bytes", msg.len())), "{got}");
        if cuts {
            assert!(got.starts_with(&"é".repeat(WALKER_SERVICE_MESSAGE_MAX / 2)));
        }
    }
}

#[test]
fn error_kinds_map_to_statuses() {
    assert_eq!(PluginError::new("x").kind(), ErrorKind::Failed);
    assert_eq!(PluginError::from("x").kind(), ErrorKind::Failed);
    assert_eq!(ErrorKind::Failed.status(), WalkerStatus::ERROR);
    let e = PluginError::invalid_argument("x");
    assert_eq!(
        (e.kind().status(), e.message()),
        (WalkerStatus::INVALID, "x")
    );
}

#[test]
fn plugin_info_default_declares_nothing() {
    let info = PluginInfo {
        version: "1.0.0",
        ..PluginInfo::default()
    };
    assert_eq!(info.version, "1.0.0");
    assert_eq!(info.description, "");
    assert_eq!(
        info.rmgrs, [0; WALKER_RMGR_MASK_WORDS],
        "no records unless asked"
    );
    assert!(info.views.is_empty() && info.functions.is_empty());
    assert!(!info.snapshots && !info.backend_events);
    assert!(info.sql.is_none() && info.role.is_none());
}

thread_local! {
    /// The integer settings the fake host knows: name, value.
    static INT_SETTINGS: RefCell<Vec<(String, i64)>> = const { RefCell::new(Vec::new()) };
}

/// Reads a NUL-terminated name the SDK passed.
fn name_of(name: *const c_char) -> String {
    // SAFETY: the SDK passes NUL-terminated names valid during the call.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn fake_define_int(
    _plugin: *mut WalkerPlugin,
    name: *const c_char,
    _description: *const c_char,
    default_value: i64,
    _min: i64,
    _max: i64,
    _unit: WalkerSettingUnit,
    _context: WalkerSettingContext,
) -> WalkerStatus {
    let name = name_of(name);
    if name.contains('.') {
        return WalkerStatus::INVALID;
    }
    INT_SETTINGS.with(|s| s.borrow_mut().push((name, default_value)));
    WalkerStatus::OK
}

unsafe extern "C" fn fake_get_int(
    _plugin: *mut WalkerPlugin,
    name: *const c_char,
    out: *mut i64,
) -> WalkerStatus {
    let name = name_of(name);
    INT_SETTINGS.with(|s| match s.borrow().iter().find(|(n, _)| *n == name) {
        Some((_, v)) => {
            // SAFETY: the SDK passes a writable out pointer.
            unsafe { *out = *v };
            WalkerStatus::OK
        }
        None => WalkerStatus::NOT_FOUND,
    })
}

#[test]
fn a_defined_setting_is_read_through_its_handle() {
    // SAFETY: as in `fake_host`.
    let mut api: WalkerHostApi = unsafe { std::mem::zeroed() };
    api.struct_size = std::mem::size_of::<WalkerHostApi>() as u32;
    api.define_int = Some(fake_define_int);
    api.get_int = Some(fake_get_int);
    // SAFETY: the leaked table lives for the process.
    let host = unsafe { Host::from_raw(Box::leak(Box::new(api)), std::ptr::null_mut()) };
    let window = host
        .define_int(
            "window",
            "w",
            42,
            0,
            100,
            WalkerSettingUnit::S,
            WalkerSettingContext::SIGHUP,
        )
        .unwrap();
    assert_eq!(window.name(), "window");
    assert_eq!(window.get(&host).unwrap(), 42);
    INT_SETTINGS.with(|s| s.borrow_mut()[0].1 = 7);
    assert_eq!(
        window.get(&host).unwrap(),
        7,
        "the handle reads the current value"
    );
    let err = host
        .define_int(
            "bad.name",
            "w",
            1,
            0,
            2,
            WalkerSettingUnit::NONE,
            WalkerSettingContext::SIGHUP,
        )
        .unwrap_err();
    assert!(err.message().contains("bad.name"), "{}", err.message());
}

unsafe extern "C" fn fake_generation(_plugin: *mut WalkerPlugin) -> u64 {
    GENERATION.with(|g| *g.borrow())
}

thread_local! {
    /// What the fake `settings_generation` answers.
    static GENERATION: RefCell<u64> = const { RefCell::new(0) };
}

#[test]
fn settings_generation_is_known_only_from_a_host_that_tells_it() {
    let host = fake_host("", false);
    // SAFETY: the fake table was leaked by `fake_host` and nothing else reads it now.
    let api = unsafe { &mut *(host.api as *mut WalkerHostApi) };
    api.settings_generation = Some(fake_generation);
    GENERATION.with(|g| *g.borrow_mut() = 9);
    assert_eq!(host.settings_generation(), Some(9));
    // 0: the host cannot tell.
    GENERATION.with(|g| *g.borrow_mut() = 0);
    assert_eq!(host.settings_generation(), None);
    // A 1.5 host's table ends before the field: not read, whatever lies past the end.
    GENERATION.with(|g| *g.borrow_mut() = 9);
    api.struct_size = WALKER_HOST_API_V1_4_SIZE;
    assert_eq!(host.settings_generation(), None);
    api.struct_size = WALKER_HOST_API_V1_6_SIZE;
    assert_eq!(host.settings_generation(), Some(9));
}

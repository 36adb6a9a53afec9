//! Export machinery: the descriptor and the trampolines `export_plugin!` wires up,
//! which catch panics, poison the instance after one, and turn errors into statuses.
//! Not used by plugin authors directly.

use super::host::cstring;
use super::*;
use crate::types::*;
use std::any::Any;
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

struct Instance {
    host: Host,
    plugin: Box<dyn Any + Send + Sync>,
    /// Set by the first panic in a callback of this process: why every later callback
    /// fails at once (a panic may have left the plugin's state half-changed).
    poisoned: OnceLock<String>,
}

static INSTANCE: OnceLock<Instance> = OnceLock::new();

struct DescriptorHolder {
    desc: WalkerPluginDescriptor,
    // Keep the C strings and arrays the descriptor points into alive.
    _strings: Vec<CString>,
    _columns: Vec<Vec<WalkerColumn>>,
    _views: Vec<WalkerView>,
    _functions: Vec<WalkerFunction>,
}

// SAFETY: the holder is immutable after construction and its pointers target data it owns.
unsafe impl Sync for DescriptorHolder {}
// SAFETY: as above.
unsafe impl Send for DescriptorHolder {}

static DESCRIPTOR: OnceLock<DescriptorHolder> = OnceLock::new();

/// The text of a panic's payload.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(a panic without a message)"
    }
}

/// The message a poisoned instance answers every callback with.
fn poisoned_message(callback: &str, panic: &str) -> String {
    format!(
        "the plugin panicked earlier in {callback}: {panic}; it serves nothing until the server restarts"
    )
}

/// Runs a callback body, turning errors and panics into a status and a message.
///
/// A poisoned instance (`inst`) fails at once without running `body`; a panic
/// poisons it. An error returns `ERROR` whatever its kind ([`tramp_call`] reports
/// the kind).
fn guarded(
    inst: Option<&Instance>,
    host: Option<Host>,
    callback: &str,
    body: impl FnOnce() -> PluginResult,
) -> WalkerStatus {
    if let Some(why) = inst.and_then(|i| i.poisoned.get()) {
        if let Some(h) = host {
            h.set_error(why);
        }
        return WalkerStatus::ERROR;
    }
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => WalkerStatus::OK,
        Ok(Err(e)) => {
            if let Some(h) = host {
                h.set_error(&e.0);
            }
            WalkerStatus::ERROR
        }
        Err(payload) => {
            let text = panic_text(payload.as_ref());
            if let Some(i) = inst {
                let _ = i.poisoned.set(poisoned_message(callback, text));
            }
            if let Some(h) = host {
                h.set_error(&format!("plugin panicked: {text}"));
            }
            WalkerStatus::PANIC
        }
    }
}

/// The common prologue of every callback after `init`: finds the instance of `P`
/// and runs `body` [`guarded`].
fn run<P: Plugin>(
    callback: &str,
    body: impl FnOnce(&'static Host, &'static P) -> PluginResult,
) -> WalkerStatus {
    let inst = INSTANCE.get();
    let live = inst.and_then(|i| Some((&i.host, i.plugin.downcast_ref::<P>()?)));
    guarded(inst, inst.map(|i| i.host), callback, || {
        let (h, p) = live.ok_or_else(|| {
            PluginError::new(format!(
                "plugin callback {callback} before a successful init"
            ))
        })?;
        body(h, p)
    })
}

unsafe extern "C" fn tramp_init<P: Plugin>(
    api: *const WalkerHostApi,
    plugin: *mut WalkerPlugin,
) -> WalkerStatus {
    if api.is_null() {
        return WalkerStatus::INVALID;
    }
    // SAFETY: the host passes a table valid for the process.
    let host = unsafe { Host::from_raw(api, plugin) };
    guarded(None, Some(host), "init", || {
        let p = P::init(&host)?;
        INSTANCE
            .set(Instance {
                host,
                plugin: Box::new(p),
                poisoned: OnceLock::new(),
            })
            .map_err(|_| PluginError::new("init called twice"))
    })
}

/// A panic or a missing instance returns [`WALKER_SHMEM_SIZE_FAILED`] with the reason
/// passed to `set_error`; the host refuses the plugin.
unsafe extern "C" fn tramp_shmem_size<P: Plugin>(_plugin: *mut WalkerPlugin) -> usize {
    let mut size = 0;
    let st = run::<P>("shmem_size", |h, p| {
        size = p.shmem_size(h);
        Ok(())
    });
    if st.is_ok() {
        size
    } else {
        WALKER_SHMEM_SIZE_FAILED
    }
}

unsafe extern "C" fn tramp_shmem_init<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    _region: *mut c_void,
    _size: usize,
    found: bool,
) -> WalkerStatus {
    run::<P>("shmem_init", |h, p| p.shmem_init(h, found))
}

unsafe extern "C" fn tramp_on_record<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    record: *const WalkerRecord,
) -> WalkerStatus {
    run::<P>("on_record", |h, p| {
        if record.is_null() {
            return Err(PluginError::new("null record"));
        }
        // SAFETY: the host passes a record valid for the duration of the call.
        let rec = unsafe { Record::from_raw(&*record) };
        p.on_record(h, &rec)
    })
}

unsafe extern "C" fn tramp_on_records<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    records: *const WalkerRecord,
    n: u32,
    failed_at: *mut u32,
) -> WalkerStatus {
    let mut failed = 0usize;
    let st = run::<P>("on_records", |h, p| {
        if records.is_null() && n > 0 {
            return Err(PluginError::new("null records"));
        }
        let raw = if n == 0 {
            &[][..]
        } else {
            // SAFETY: the host passes `n` records valid for the duration of the call.
            unsafe { std::slice::from_raw_parts(records, n as usize) }
        };
        // SAFETY: the descriptor is built once and lives for the process.
        let mask = unsafe { &(*descriptor::<P>()).rmgr_mask };
        // SAFETY: the host's records point into its batch, alive during the call.
        let run = unsafe { Records::from_raw(raw, mask) };
        let r = catch_unwind(AssertUnwindSafe(|| p.on_records(h, &run)));
        failed = run.current.get();
        match r {
            Ok(r) => r.map_err(|e| {
                failed = e.index;
                e.error
            }),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    });
    if !failed_at.is_null() {
        // SAFETY: the host passes a writable u32 (or null).
        unsafe { *failed_at = failed.min(u32::MAX as usize) as u32 };
    }
    st
}

unsafe extern "C" fn tramp_on_idle<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    lsn: u64,
) -> WalkerStatus {
    run::<P>("on_idle", |h, p| p.on_idle(h, lsn))
}

unsafe extern "C" fn tramp_shutdown<P: Plugin>(_plugin: *mut WalkerPlugin) -> WalkerStatus {
    run::<P>("shutdown", |h, p| p.shutdown(h))
}

unsafe extern "C" fn tramp_view_rows<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    view: u32,
    sink: *const WalkerRowSink,
) -> WalkerStatus {
    run::<P>("view_rows", |h, p| {
        if sink.is_null() {
            return Err(PluginError::new("null row sink"));
        }
        let mut rows = RowSink {
            // SAFETY: the host passes a sink valid for the duration of the call.
            sink: unsafe { &*sink },
        };
        p.view_rows(h, view as usize, &mut rows)
    })
}

unsafe extern "C" fn tramp_save_state<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    sink: *const WalkerStateSink,
) -> WalkerStatus {
    run::<P>("save_state", |h, p| {
        let mut out = Vec::new();
        p.save_state(h, &mut out)?;
        // SAFETY: the host passes a sink valid for the duration of the call.
        unsafe { write_to_sink(sink, "state", &out) }
    })
}

/// Hands `bytes` to a host sink in one write; `what` names them in errors.
///
/// # Safety
/// `sink` must be null or a sink valid for the call.
unsafe fn write_to_sink(sink: *const WalkerStateSink, what: &str, bytes: &[u8]) -> PluginResult {
    // SAFETY: caller's contract.
    let sink =
        unsafe { sink.as_ref() }.ok_or_else(|| PluginError::new(format!("null {what} sink")))?;
    let write = sink
        .write
        .ok_or_else(|| PluginError::new(format!("{what} sink without write")))?;
    // SAFETY: `bytes` is valid for its length; the sink's context is the host's.
    let st = unsafe { write(sink.ctx, bytes.as_ptr(), bytes.len()) };
    if st.is_ok() {
        Ok(())
    } else {
        Err(PluginError::new(format!(
            "the host refused the {what} (status {})",
            st.0
        )))
    }
}

unsafe extern "C" fn tramp_load_state<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    data: *const u8,
    len: usize,
    lsn: u64,
) -> WalkerStatus {
    run::<P>("load_state", |h, p| {
        let state = if data.is_null() {
            None
        } else {
            // SAFETY: the host passes `len` readable bytes at `data` for the call.
            Some(unsafe { std::slice::from_raw_parts(data, len) })
        };
        p.load_state(h, state, lsn)
    })
}

/// An [`ErrorKind::InvalidArgument`] error returns `INVALID` (SQLSTATE 22023 in the
/// host), any other `ERROR` (38000).
unsafe extern "C" fn tramp_call<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    function: u32,
    args: *const u8,
    len: usize,
    out: *const WalkerStateSink,
) -> WalkerStatus {
    let mut kind = ErrorKind::Failed;
    let st = run::<P>("call", |h, p| {
        let args = if args.is_null() || len == 0 {
            "{}".to_string()
        } else {
            // SAFETY: the host passes `len` readable bytes at `args` for the call.
            String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(args, len) }).into_owned()
        };
        let result = p
            .call(h, function as usize, &args)
            .inspect_err(|e| kind = e.kind())?;
        // SAFETY: the host passes a sink valid for the duration of the call.
        unsafe { write_to_sink(out, "result", result.as_bytes()) }
    });
    if st == WalkerStatus::ERROR {
        kind.status()
    } else {
        st
    }
}

/// Copies `text` into `buf`, cut at a character boundary; returns the length kept.
fn copy_cut(buf: &mut [u8], text: &str) -> u32 {
    crate::text::copy_cut(buf, text) as u32
}

unsafe extern "C" fn tramp_on_backend<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    event: *const WalkerBackendEvent,
    verdict: *mut WalkerVerdict,
) -> WalkerStatus {
    let mut admission = Admission::Proceed;
    let st = run::<P>("on_backend", |h, p| {
        if event.is_null() || verdict.is_null() {
            return Err(PluginError::new("null backend event or verdict"));
        }
        // SAFETY: the host passes an event and a verdict valid for the call.
        let (raw, verdict) = unsafe { (&*event, &mut *verdict) };
        if raw.kind == WalkerBackendEventKind::STATEMENT_START {
            verdict.fail_closed = p.fail_closed(h);
        }
        // SAFETY: as above.
        let ev = unsafe { BackendEvent::from_raw(raw) };
        admission = p.on_backend(h, &ev)?;
        if let Admission::Reject(r) = &admission {
            verdict.sqlstate = r.sqlstate;
            verdict.message_len = copy_cut(&mut verdict.message, &r.message);
            verdict.detail_len = copy_cut(&mut verdict.detail, &r.detail);
            verdict.hint_len = copy_cut(&mut verdict.hint, &r.hint);
        }
        Ok(())
    });
    match (st, admission) {
        (WalkerStatus::OK, Admission::Reject(_)) => WalkerStatus::REJECTED,
        (WalkerStatus::OK, Admission::Interrupted) => WalkerStatus::INTERRUPTED,
        (st, _) => st,
    }
}

/// Builds (once) and returns the descriptor of plugin type `P`.
#[doc(hidden)]
pub fn descriptor<P: Plugin>() -> *const WalkerPluginDescriptor {
    let holder = DESCRIPTOR.get_or_init(|| {
        let info = P::describe();
        let mut strings = Vec::new();
        let mut keep = |s: &str| {
            let c = cstring(s);
            let p = c.as_ptr();
            strings.push(c);
            p
        };
        let version = keep(info.version);
        let description = keep(info.description);
        let mut columns: Vec<Vec<WalkerColumn>> = Vec::new();
        let mut views: Vec<WalkerView> = Vec::new();
        for v in &info.views {
            let cols: Vec<WalkerColumn> = v
                .columns
                .iter()
                .map(|(n, t)| WalkerColumn {
                    name: keep(n),
                    ty: *t,
                })
                .collect();
            views.push(WalkerView {
                name: keep(v.name),
                description: keep(v.description),
                columns: cols.as_ptr(),
                n_columns: cols.len() as u32,
            });
            columns.push(cols);
        }
        let functions: Vec<WalkerFunction> = info
            .functions
            .iter()
            .map(|f| WalkerFunction {
                name: keep(f.name),
                description: keep(f.description),
                result: f.result,
                access: f.access,
            })
            .collect();
        let sql = info.sql.map_or(std::ptr::null(), &mut keep);
        let role = info.role.map_or(std::ptr::null(), &mut keep);
        let desc = WalkerPluginDescriptor {
            abi_major: WALKER_ABI_MAJOR,
            abi_minor: WALKER_ABI_MINOR,
            struct_size: std::mem::size_of::<WalkerPluginDescriptor>() as u32,
            version,
            description,
            rmgr_mask: info.rmgrs,
            views: views.as_ptr(),
            n_views: views.len() as u32,
            init: Some(tramp_init::<P>),
            shmem_size: Some(tramp_shmem_size::<P>),
            shmem_init: Some(tramp_shmem_init::<P>),
            on_record: Some(tramp_on_record::<P>),
            on_idle: Some(tramp_on_idle::<P>),
            shutdown: Some(tramp_shutdown::<P>),
            view_rows: Some(tramp_view_rows::<P>),
            save_state: if info.snapshots {
                Some(tramp_save_state::<P>)
            } else {
                None
            },
            load_state: if info.snapshots {
                Some(tramp_load_state::<P>)
            } else {
                None
            },
            functions: functions.as_ptr(),
            n_functions: functions.len() as u32,
            call: (!functions.is_empty()).then_some(tramp_call::<P> as _),
            on_backend: info.backend_events.then_some(tramp_on_backend::<P> as _),
            sql,
            role,
            on_records: Some(tramp_on_records::<P>),
        };
        DescriptorHolder {
            desc,
            _strings: strings,
            _columns: columns,
            _views: views,
            _functions: functions,
        }
    });
    &holder.desc
}

/// The `abi_stable` layout of the descriptor (and, through its pointers, of every ABI
/// type) as this crate was compiled.
pub fn descriptor_layout() -> &'static abi_stable::type_layout::TypeLayout {
    <WalkerPluginDescriptor as abi_stable::StableAbi>::LAYOUT
}

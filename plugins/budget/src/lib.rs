//! # budget: who writes how much WAL, exactly, with budgets that observe, queue or reject
//!
//! A walker plugin in two halves that meet in shared memory:
//!
//! - **Backends** (through the host's executor, utility and transaction hooks) publish
//!   which scope each transaction belongs to (tenant, role, database, application),
//!   and at statement start ask the policy that covers them whether the statement may
//!   run: observe and shadow only record, queue waits for the bucket to refill
//!   (cancellable), reject raises SQLSTATE `WB001`.
//! - **The walker side** charges every WAL record's exact length (full-page images
//!   and commit records included) to the scope that wrote it, to that scope's policy
//!   bucket, and to totals per database, relation and resource manager.
//!
//! Policies are rows of `walker.budget_policies`, changed through SQL functions that
//! validate them here first; the services worker loads them at server start.

pub mod bucket;
pub mod claim;
pub mod ledger;
pub mod policy;
pub mod policy_sql;
pub mod predict;
pub mod report;
pub mod session;
pub mod shm;
pub mod snapshot;
pub mod tenant;

use ledger::{Entry, Ledger};
use session::{Admission as Settings, Session};
use shm::Shared;
use std::sync::Mutex;
use walker_abi::{
    Admission, BackendEvent, FunctionDef, Host, Plugin, PluginError, PluginInfo, PluginResult,
    Record, RowSink, ServiceOutcome, WalkerAccess, WalkerServiceKind, WalkerSettingContext,
    WalkerSettingUnit, WalkerType, ALL_RMGRS,
};
use walker_decode::Format;

/// The role whose members may set their session's tenant.
pub const TENANT_ROLE: &str = "walker_budget_tenant_setter";
/// How often the walker side retries loading policies after a failure (µs).
const RELOAD_RETRY_US: i64 = 30_000_000;

const FN_SET_TENANT: usize = 0;
const FN_CLEAR_TENANT: usize = 1;
const FN_CURRENT_TENANT: usize = 2;
const FN_LOAD_POLICIES: usize = 3;
const FN_CHECK_POLICY: usize = 4;
const FN_RESET: usize = 5;
const FN_METRICS: usize = 6;

/// The plugin.
pub struct Budget {
    ledger: Mutex<Ledger>,
    session: Mutex<Session>,
    loader: Mutex<Loader>,
}

/// Loading the policies table at start, through the services worker.
#[derive(Default)]
struct Loader {
    request: Option<u64>,
    next_try: i64,
    warned: bool,
}

fn settings(host: &Host) -> Settings {
    Settings {
        enabled: host.get_bool("enabled").unwrap_or(true),
        max_queue_wait_ms: (host.get_int("max_queue_wait").unwrap_or(30_000).max(0) as u64)
            .min(session::MAX_QUEUE_WAIT_MS),
    }
}

impl Budget {
    /// Asks the services worker to load the policies when they are not loaded yet,
    /// and collects its answer.
    fn load_policies_if_needed(&self, host: &Host) {
        let loaded = host
            .with_shared::<Shared, _>(|s| s.policies_loaded != 0)
            .unwrap_or(true);
        let mut l = self.loader.lock().unwrap_or_else(|e| e.into_inner());
        if loaded {
            l.request = None;
            return;
        }
        let now = host.now_micros();
        if let Some(id) = l.request {
            match host.service_result(id, 0) {
                ServiceOutcome::Pending => return,
                ServiceOutcome::Succeeded(n) => {
                    host.info(&format!("loaded {n} WAL budget policies"));
                    l.request = None;
                    return;
                }
                ServiceOutcome::Failed(why) => {
                    if !l.warned {
                        host.warning(&format!(
                            "cannot load the WAL budget policies ({why}); no policy applies until they load. Run CREATE EXTENSION walker in the database walker.database names; retrying every {} s",
                            RELOAD_RETRY_US / 1_000_000
                        ));
                        l.warned = true;
                    }
                    l.request = None;
                    l.next_try = now.saturating_add(RELOAD_RETRY_US);
                    return;
                }
                ServiceOutcome::Unknown | ServiceOutcome::Interrupted => l.request = None,
            }
        }
        if now < l.next_try {
            return;
        }
        match host.request_service(
            WalkerServiceKind::SQL,
            "budget policies",
            "SELECT walker.budget_reload()::text",
        ) {
            Ok(id) => l.request = Some(id),
            Err(_) => l.next_try = now.saturating_add(RELOAD_RETRY_US),
        }
    }
}

fn args_object(args: &str) -> PluginResult<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(args) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(PluginError::new("the argument must be a JSON object")),
    }
}

fn functions() -> Vec<FunctionDef> {
    let f = |name, description, result, access| FunctionDef {
        name,
        description,
        result,
        access,
    };
    vec![
        f("set_tenant", "sets this session's tenant: walker.budget_set_tenant('{\"tenant\": \"acme\"}')", WalkerType::JSONB, WalkerAccess::ROLE),
        f("clear_tenant", "clears this session's tenant", WalkerType::JSONB, WalkerAccess::ROLE),
        f("current_tenant", "this session's tenant", WalkerType::JSONB, WalkerAccess::ROLE),
        f("load_policies", "loads policies into shared memory (walker.budget_reload() calls it with the table's rows)", WalkerType::JSONB, WalkerAccess::ADMIN),
        f("check_policy", "checks one policy; raises the reason when it is invalid", WalkerType::JSONB, WalkerAccess::ADMIN),
        f("reset", "zeroes every total, profile, decision and counter (policies and their buckets stay)", WalkerType::JSONB, WalkerAccess::ADMIN),
        f("metrics", "the budget's metrics in the Prometheus text format", WalkerType::TEXT, WalkerAccess::MONITOR),
    ]
}

impl Plugin for Budget {
    fn describe() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION"),
            description:
                "who writes how much WAL, exactly, with budgets that observe, queue or reject",
            rmgrs: ALL_RMGRS,
            views: report::views(),
            snapshots: true,
            functions: functions(),
            backend_events: true,
            sql: Some(policy_sql::SQL),
            role: Some(TENANT_ROLE),
        }
    }

    fn init(host: &Host) -> PluginResult<Self> {
        let version = host
            .server_version_num()
            .ok_or("the walker host does not tell the server version; upgrade walker")?;
        let format = Format::for_server(version).map_err(|e| {
            PluginError::new(format!("budget: {e}; remove budget from walker.plugins"))
        })?;
        let ctx = WalkerSettingContext::SIGHUP;
        host.define_bool(
            "enabled",
            "Whether policies act on statements (off: WAL is still measured, nothing is decided).",
            true,
            ctx,
        )?;
        host.define_bool(
            "fail_open",
            "When the budget cannot decide (an internal failure), let the statement run (off: refuse it).",
            true,
            ctx,
        )?;
        host.define_int(
            "max_queue_wait",
            "Longest a statement waits under a queue policy before it runs anyway (it holds its locks and snapshot meanwhile).",
            30_000,
            0,
            session::MAX_QUEUE_WAIT_MS as i64,
            WalkerSettingUnit::MS,
            ctx,
        )?;
        host.define_string(
            "tenant_roles",
            "Which roles may claim which tenants: 'tenant:role, tenant:role' (empty: any tenant setter may claim any tenant).",
            "",
            ctx,
        )?;
        Ok(Budget {
            ledger: Mutex::new(Ledger::new(format)),
            session: Mutex::new(Session::default()),
            loader: Mutex::new(Loader::default()),
        })
    }

    fn shmem_size(&self, _host: &Host) -> usize {
        std::mem::size_of::<Shared>()
    }

    fn on_record(&self, host: &Host, r: &Record<'_>) -> PluginResult {
        let first_block = r
            .blocks()
            .iter()
            .min_by_key(|b| b.block_id)
            .map(|b| (b.tablespace, b.database, b.relfilenode));
        let e = Entry {
            rmid: r.rmid(),
            info: r.info(),
            xid: r.xid(),
            toplevel_xid: r.toplevel_xid(),
            bytes: r.total_len() as u64,
            fpi: r.fpi_len() as u64,
            end_lsn: r.end_lsn(),
            first_block,
            main: r.main_data(),
        };
        let now = host.now_micros();
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        host.with_exclusive::<Shared, _>(|s| ledger.record(s, &e, now))
    }

    fn on_idle(&self, host: &Host, _lsn: u64) -> PluginResult {
        let now = host.now_micros();
        {
            let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            host.with_exclusive::<Shared, _>(|s| ledger.settle(s, now))?;
        }
        self.load_policies_if_needed(host);
        Ok(())
    }

    fn save_state(&self, host: &Host, out: &mut Vec<u8>) -> PluginResult {
        let ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        let st = host.with_shared::<Shared, _>(|s| snapshot::capture(s, &ledger))?;
        out.extend(snapshot::encode(&st));
        Ok(())
    }

    fn load_state(&self, host: &Host, state: Option<&[u8]>, lsn: u64) -> PluginResult {
        let st = state
            .map(snapshot::decode)
            .transpose()
            .map_err(PluginError::new)?;
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        host.with_exclusive::<Shared, _>(|s| snapshot::restore(s, &mut ledger, st.as_ref(), lsn))
    }

    fn view_rows(&self, host: &Host, view: usize, sink: &mut RowSink<'_>) -> PluginResult {
        // Names are looked up only for the rmgr rows there are (not 256 per view read).
        let rmgr_name = |i: u8| host.rmgr_name(i).unwrap_or_else(|| format!("rmgr {i}"));
        let rows = host.with_shared::<Shared, _>(|s| report::rows(s, view, &rmgr_name))?;
        for r in rows {
            let values: Vec<walker_abi::Value<'_>> = r.iter().map(report::Cell::value).collect();
            sink.row(&values)?;
        }
        Ok(())
    }

    fn fail_closed(&self, host: &Host) -> bool {
        !host.get_bool("fail_open").unwrap_or(true)
    }

    fn on_backend(&self, host: &Host, e: &BackendEvent<'_>) -> PluginResult<Admission> {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let cfg = || settings(host);
        let mut with = |f: &mut dyn FnMut(&mut Shared)| host.with_exclusive::<Shared, _>(f).is_ok();
        let mut pause = |ms: u64| host.pause(ms.min(u32::MAX as u64) as u32);
        let now = || host.now_micros();
        match session.on_event(e, &cfg, &mut with, &mut pause, &now) {
            Ok(a) => Ok(a),
            Err(why) if !self.fail_closed(host) => {
                let _ = host.with_exclusive::<Shared, _>(Session::failed);
                if e.kind == walker_abi::WalkerBackendEventKind::STATEMENT_START
                    && e.nesting_level == 0
                {
                    host.warning(&format!(
                        "WAL budget: {why}; the statement runs (budget.fail_open is on)"
                    ));
                }
                Ok(Admission::Proceed)
            }
            Err(why) => Err(PluginError::new(why)),
        }
    }

    fn call(&self, host: &Host, function: usize, args: &str) -> PluginResult<String> {
        let a = args_object(args)?;
        match function {
            FN_SET_TENANT => {
                let t = a
                    .get("tenant")
                    .and_then(|v| v.as_str())
                    .ok_or("set_tenant needs {\"tenant\": \"<name>\"}")?;
                if t.is_empty() || t.len() > policy::NAME_BYTES {
                    return Err(PluginError::new(format!(
                        "a tenant name is 1 to {} bytes (got {})",
                        policy::NAME_BYTES,
                        t.len()
                    )));
                }
                let allowlist = host.get_string("tenant_roles").unwrap_or_default();
                let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
                let role = session.role.as_ref().map(|r| r.1.clone());
                tenant::check_claim(&allowlist, t, role.as_deref()).map_err(PluginError::new)?;
                session.tenant = t.to_string();
                Ok(serde_json::json!({ "tenant": t }).to_string())
            }
            FN_CLEAR_TENANT => {
                self.session
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .tenant
                    .clear();
                Ok(serde_json::json!({ "tenant": null }).to_string())
            }
            FN_CURRENT_TENANT => {
                let t = self
                    .session
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .tenant
                    .clone();
                Ok(serde_json::json!({ "tenant": (!t.is_empty()).then_some(t) }).to_string())
            }
            FN_LOAD_POLICIES => {
                let list = a
                    .get("policies")
                    .cloned()
                    .unwrap_or(serde_json::Value::Array(Vec::new()));
                let ps = policy::parse_all(&list.to_string(), shm::MAX_POLICIES)
                    .map_err(|e| PluginError::new(e.to_string()))?;
                let now = host.now_micros();
                let gen = host.with_exclusive::<Shared, _>(|s| {
                    s.load_policies(&ps, now);
                    s.policy_gen
                })?;
                Ok(serde_json::json!({ "loaded": ps.len(), "generation": gen }).to_string())
            }
            FN_CHECK_POLICY => {
                let spec: policy::PolicySpec = serde_json::from_value(serde_json::Value::Object(a))
                    .map_err(|e| PluginError::new(format!("a policy needs scope_kind, scope_value, rate_bytes_per_sec, burst_bytes and mode: {e}")))?;
                policy::Policy::from_spec(&spec).map_err(|e| PluginError::new(e.to_string()))?;
                Ok(serde_json::json!({ "valid": true }).to_string())
            }
            FN_RESET => {
                let now = host.now_micros();
                host.with_exclusive::<Shared, _>(|s| s.reset_totals(now))?;
                Ok(serde_json::json!({ "reset_at_micros": now }).to_string())
            }
            FN_METRICS => host.with_shared::<Shared, _>(report::metrics),
            _ => Err(PluginError::new(format!("unknown function {function}"))),
        }
    }
}

walker_abi::export_plugin!(Budget);

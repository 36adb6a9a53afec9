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
//! validate them here first. A change takes effect once its transaction commits: the
//! functions announce their transaction (`policy_changed`), and the walker side has
//! the services worker load the committed table (`walker.budget_reload()`) until a
//! load's snapshot sees every announced transaction ended ([`changes`]); it also loads
//! the table at server start and every minute.

pub mod bucket;
pub mod capacity;
pub mod changes;
pub mod claim;
pub mod ledger;
pub mod picture;
pub mod policy;
pub mod policy_sql;
pub mod predict;
pub mod probe;
pub mod report;
pub mod scope_table;
pub mod session;
pub mod shm;
pub mod snapshot;
pub mod tenant;

use ledger::{Entry, Ledger};
use session::{Admission as Settings, Session};
use shm::Shared;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use walker_abi::{
    Admission, BackendEvent, FunctionDef, Host, Plugin, PluginError, PluginInfo, PluginResult,
    Record, Records, RecordsError, RowSink, ServiceOutcome, WalkerAccess, WalkerServiceKind,
    WalkerSettingContext, WalkerSettingUnit, WalkerType, ALL_RMGRS,
};
use walker_decode::Format;

/// Most records budget accounts under one hold of its region: backends admitting
/// statements take the same region, so a long run is split rather than held whole
/// (at a few million records a second, 256 records are well under 0.1 ms).
const HOLD_RECORDS: usize = 256;

/// The role whose members may set their session's tenant.
pub const TENANT_ROLE: &str = "walker_budget_tenant_setter";
/// How often the walker side retries loading policies after a failure (µs).
const RELOAD_RETRY_US: i64 = 30_000_000;
/// How soon the walker side loads again while an announced change's transaction is
/// still open: first after this (µs), doubling up to [`RELOAD_PENDING_MAX_US`].
const RELOAD_PENDING_US: i64 = 100_000;
/// The longest wait between loads while a change's transaction is open (µs).
const RELOAD_PENDING_MAX_US: i64 = 2_000_000;
/// How often the walker side reloads the committed table even when no change was
/// announced (a change written to the table directly, a lost announcement) (µs).
const RELOAD_REFRESH_US: i64 = 60_000_000;
/// How often `on_record` looks at whether a reload is wanted (µs): a busy walker
/// that is never idle still loads policy changes.
const RELOAD_LOOK_US: i64 = 100_000;

const FN_SET_TENANT: usize = 0;
const FN_CLEAR_TENANT: usize = 1;
const FN_CURRENT_TENANT: usize = 2;
const FN_LOAD_POLICIES: usize = 3;
const FN_CHECK_POLICY: usize = 4;
const FN_RESET: usize = 5;
const FN_METRICS: usize = 6;
const FN_POLICY_CHANGED: usize = 7;
const FN_POLICY_STATUS: usize = 8;
const FN_SVG: usize = 9;
const FN_HISTORY_SVG: usize = 10;

/// `budget.history_interval`'s default, in seconds.
const DEFAULT_HISTORY_INTERVAL_S: i64 = 60;

/// The plugin.
pub struct Budget {
    ledger: Mutex<Ledger>,
    session: Mutex<Session>,
    loader: Mutex<Loader>,
    /// This process's transaction changed policies (set by `policy_changed`, cleared
    /// when the transaction commits or aborts).
    changed_in_xact: AtomicBool,
    /// When `on_record` next looks at the loader (µs).
    next_look: AtomicI64,
    /// The tables' lengths (`budget.max_scopes` …), read once in the postmaster when
    /// it sizes shared memory (settings are read after `init`).
    capacity: std::sync::OnceLock<shm::Capacities>,
    /// The settings this backend's current top-level statement reads (see
    /// [`StatementSettings`]).
    statement_settings: Mutex<StatementSettings>,
}

/// The admission and predictor settings of one top-level statement: read from the
/// host when an event of the statement first needs them, kept for its other events
/// (its end, the nested statements it runs and the transaction's end), and forgotten
/// at the next top-level statement start unless the host's settings generation says
/// they cannot have changed since they were read. A reload therefore applies from the
/// next statement on, and a backend reads its eight settings once per reload instead
/// of at each statement (once per statement from a host older than ABI 1.6).
#[derive(Debug, Default, Clone, Copy)]
struct StatementSettings {
    /// The host's settings generation when they were read (`None`: unknown).
    generation: Option<u64>,
    admission: Option<session::Admission>,
    predictor: Option<predict::Config>,
}

impl StatementSettings {
    /// At a top-level statement start: the settings kept, or none when the host's
    /// generation `now` differs from theirs or is unknown.
    fn at_statement_start(self, now: Option<u64>) -> StatementSettings {
        if now.is_some() && now == self.generation {
            self
        } else {
            StatementSettings {
                generation: now,
                ..StatementSettings::default()
            }
        }
    }
}

/// Loading the committed policies table through the services worker.
#[derive(Default)]
struct Loader {
    /// The request in flight.
    request: Option<u64>,
    /// Not before this (after a failure, or while changes' transactions are open).
    next_try: i64,
    /// The announced transactions when the last load was asked for (a new one loads
    /// at once).
    seen: Vec<u64>,
    /// The current wait between loads while announced transactions are open (µs).
    pending_delay: i64,
    next_refresh: i64,
    warned: bool,
}

/// What the walker side does about loading policies now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadNeed {
    /// Nothing.
    None,
    /// Load (the first time, a change announced, or the periodic refresh).
    Load,
}

/// Whether to ask for a load: never loaded, the periodic refresh due, or changes
/// announced (at once for a transaction not seen at the last request, else when
/// `next_try` comes).
fn load_need(l: &Loader, loaded: bool, waiting: &[u64], now: i64) -> LoadNeed {
    if l.request.is_some() {
        return LoadNeed::None;
    }
    let new_change = waiting.iter().any(|x| !l.seen.contains(x));
    if new_change
        || ((!loaded || !waiting.is_empty() || now >= l.next_refresh) && now >= l.next_try)
    {
        LoadNeed::Load
    } else {
        LoadNeed::None
    }
}

fn settings(host: &Host) -> Settings {
    Settings {
        enabled: host.get_bool("enabled").unwrap_or(true),
        max_queue_wait_ms: (host.get_int("max_queue_wait").unwrap_or(30_000).max(0) as u64)
            .min(session::MAX_QUEUE_WAIT_MS),
    }
}

/// The predictor settings (`budget.predictor` and the four after it).
fn predictor_settings(host: &Host) -> predict::Config {
    let kb = |name: &str, default: u64| {
        host.get_int(name)
            .map_or(default, |v| (v.max(0) as u64).saturating_mul(1024))
    };
    predict::Config::new(
        predict::Predictor::from_index(host.get_enum("predictor").unwrap_or(0)),
        host.get_real("ewma_alpha")
            .unwrap_or(predict::DEFAULT_ALPHA),
        kb("default_write_prediction", predict::DEFAULT_WRITE_BYTES),
        kb("default_utility_prediction", predict::DEFAULT_UTILITY_BYTES),
        kb("max_prediction", 0),
    )
}

/// When to ask again after a failed load: in [`RELOAD_RETRY_US`], or, while changes
/// are announced (`CREATE EXTENSION walker` announces one, and a load that ran before
/// its transaction committed fails for want of the extension), soon and backing off
/// as while announced transactions are open.
fn retry_after_failure(l: &mut Loader, announced: bool, now: i64) {
    if announced {
        l.pending_delay =
            (l.pending_delay.saturating_mul(2)).clamp(RELOAD_PENDING_US, RELOAD_PENDING_MAX_US);
        l.next_try = now.saturating_add(l.pending_delay);
    } else {
        l.next_try = now.saturating_add(RELOAD_RETRY_US);
    }
}

impl Budget {
    /// Asks the services worker to load the committed policies when they were never
    /// loaded, when a change was announced that no load covers yet, or every
    /// [`RELOAD_REFRESH_US`]; collects its answer.
    fn load_policies_if_needed(&self, host: &Host) {
        let Ok((loaded, waiting)) = shm::shared(host, |s| {
            (s.policies_loaded != 0, changes::waiting(&s.pending_changes))
        }) else {
            return;
        };
        let mut l = self.loader.lock().unwrap_or_else(|e| e.into_inner());
        let now = host.now_micros();
        if let Some(id) = l.request {
            match host.service_result(id, 0) {
                ServiceOutcome::Pending => return,
                ServiceOutcome::Succeeded(n) => {
                    if !loaded || l.seen.iter().any(|x| !waiting.contains(x)) {
                        host.info(&format!("loaded {n} WAL budget policies"));
                    }
                    l.request = None;
                    l.warned = false;
                    if waiting.is_empty() {
                        l.next_try = 0;
                        l.pending_delay = 0;
                    } else {
                        // Their transactions are still open: ask again, less and less
                        // often, until they end.
                        l.pending_delay = (l.pending_delay.saturating_mul(2))
                            .clamp(RELOAD_PENDING_US, RELOAD_PENDING_MAX_US);
                        l.next_try = now.saturating_add(l.pending_delay);
                    }
                    return;
                }
                ServiceOutcome::Failed(why) => {
                    if !l.warned {
                        host.warning(&format!(
                            "cannot load the WAL budget policies ({why}); the policies loaded before stay (none after a server start) until they load. Run CREATE EXTENSION walker in the database walker.database names; retrying every {} s",
                            RELOAD_RETRY_US / 1_000_000
                        ));
                        l.warned = true;
                    }
                    l.request = None;
                    retry_after_failure(&mut l, !waiting.is_empty(), now);
                    return;
                }
                ServiceOutcome::Unknown | ServiceOutcome::Interrupted => l.request = None,
            }
        }
        if load_need(&l, loaded, &waiting, now) == LoadNeed::None {
            return;
        }
        match host.request_service(
            WalkerServiceKind::SQL,
            "budget policies",
            "SELECT walker.budget_reload()::text",
        ) {
            Ok(id) => {
                l.request = Some(id);
                l.seen = waiting;
                l.next_refresh = now.saturating_add(RELOAD_REFRESH_US);
            }
            Err(_) => l.next_try = now.saturating_add(RELOAD_RETRY_US),
        }
    }
}

fn args_object(args: &str) -> PluginResult<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(args) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(PluginError::invalid_argument(
            "the argument must be a JSON object",
        )),
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
        f("policy_changed", "announces that transaction {\"xid\": n} changed walker.budget_policies (the change functions call it): the walker side loads the committed table until a load sees that transaction ended", WalkerType::JSONB, WalkerAccess::ADMIN),
        f("policy_status", "whether policies are loaded, the transactions whose changes no load covered yet, the loaded generation, and whether this transaction changed policies (walker.budget_sync() waits on it)", WalkerType::JSONB, WalkerAccess::ADMIN),
        f("svg", "an SVG of the largest writers: WAL per scope of walker.budget_scopes, full-page images apart", WalkerType::TEXT, WalkerAccess::MONITOR),
        f("history_svg", "an SVG of WAL per scope over time: walker.budget_history's intervals, one line per scope that was among the largest writers, and every scope together", WalkerType::TEXT, WalkerAccess::MONITOR),
    ]
}

/// What the ledger needs of a record.
fn entry<'a>(r: &Record<'a>) -> Entry<'a> {
    let first_block = r
        .blocks()
        .iter()
        .min_by_key(|b| b.block_id)
        .map(|b| (b.tablespace, b.database, b.relfilenode));
    Entry {
        rmid: r.rmid(),
        info: r.info(),
        xid: r.xid(),
        toplevel_xid: r.toplevel_xid(),
        bytes: r.total_len() as u64,
        fpi: r.fpi_len() as u64,
        end_lsn: r.end_lsn(),
        first_block,
        main: r.main_data(),
    }
}

impl Budget {
    /// A walker that is never idle (a steady write load) still loads policy changes:
    /// looked for every [`RELOAD_LOOK_US`].
    fn look_for_policy_changes(&self, host: &Host, now: i64) {
        if now >= self.next_look.load(Ordering::Relaxed) {
            self.next_look
                .store(now.saturating_add(RELOAD_LOOK_US), Ordering::Relaxed);
            self.load_policies_if_needed(host);
        }
    }
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
        host.define_int(
            "history_interval",
            "Length of one interval of walker.budget_history: every interval the largest writers of its WAL are kept (the last 60 intervals).",
            DEFAULT_HISTORY_INTERVAL_S,
            1,
            86_400,
            WalkerSettingUnit::S,
            ctx,
        )?;
        host.define_string(
            "tenant_roles",
            "Which roles may claim which tenants: 'tenant:role, tenant:role' (empty: any tenant setter may claim any tenant).",
            "",
            ctx,
        )?;
        define_predictor_settings(host, ctx)?;
        shm::Capacities::define(host)?;
        Ok(Budget {
            ledger: Mutex::new(Ledger::new(format)),
            session: Mutex::new(Session::default()),
            loader: Mutex::new(Loader::default()),
            changed_in_xact: AtomicBool::new(false),
            next_look: AtomicI64::new(0),
            capacity: std::sync::OnceLock::new(),
            statement_settings: Mutex::new(StatementSettings::default()),
        })
    }

    fn shmem_size(&self, host: &Host) -> usize {
        let c = self
            .capacity
            .get_or_init(|| shm::Capacities::from_settings(host));
        // Within the settings' ranges the size cannot overflow; 0 (no region) if it did.
        c.size().unwrap_or(0)
    }

    fn shmem_init(&self, host: &Host, found: bool) -> PluginResult {
        if !found {
            let c = *self
                .capacity
                .get_or_init(|| shm::Capacities::from_settings(host));
            host.with_exclusive_tables::<shm::Header, _>(|h, _| h.capacity = c)?;
        }
        Ok(())
    }

    fn on_record(&self, host: &Host, r: &Record<'_>) -> PluginResult {
        let now = host.now_micros();
        {
            let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            shm::exclusive(host, |s| ledger.record(s, &entry(r), now))?;
        }
        self.look_for_policy_changes(host, now);
        Ok(())
    }

    /// A run of records under one hold of the region lock (backends wait at most one
    /// run for it), not one per record.
    fn on_records(&self, host: &Host, records: &Records<'_>) -> Result<(), RecordsError> {
        let now = host.now_micros();
        {
            let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            let mut run = records.iter().peekable();
            // The region is taken per HOLD_RECORDS records, not for the whole run, so a
            // backend admitting a statement never waits for more than that many.
            while let Some(&(first, _)) = run.peek() {
                shm::exclusive(host, |s| {
                    for (_, r) in run.by_ref().take(HOLD_RECORDS) {
                        ledger.record(s, &entry(&r), now);
                    }
                })
                .map_err(|e| RecordsError::at(first, e))?;
            }
        }
        self.look_for_policy_changes(host, now);
        Ok(())
    }

    fn on_idle(&self, host: &Host, _lsn: u64) -> PluginResult {
        let now = host.now_micros();
        let interval_us = host
            .get_int("history_interval")
            .unwrap_or(DEFAULT_HISTORY_INTERVAL_S)
            .clamp(1, 86_400)
            .saturating_mul(1_000_000);
        {
            let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            shm::exclusive(host, |s| {
                ledger.settle(s, now);
                s.sample_history(now, interval_us);
            })?;
        }
        self.load_policies_if_needed(host);
        Ok(())
    }

    fn save_state(&self, host: &Host, out: &mut Vec<u8>) -> PluginResult {
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        let (st, lsn) = shm::shared(host, |s| (snapshot::capture(s, &ledger), s.as_of_lsn))?;
        out.extend(snapshot::encode(&st));
        ledger.captured(lsn);
        Ok(())
    }

    fn load_state(&self, host: &Host, state: Option<&[u8]>, lsn: u64) -> PluginResult {
        let st = state
            .map(snapshot::decode)
            .transpose()
            .map_err(PluginError::new)?;
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        shm::exclusive(host, |s| {
            snapshot::restore(s, &mut ledger, st.as_ref(), lsn)
        })
    }

    fn view_rows(&self, host: &Host, view: usize, sink: &mut RowSink<'_>) -> PluginResult {
        // Names are looked up only for the rmgr rows there are (not 256 per view read).
        let rmgr_name = |i: u8| host.rmgr_name(i).unwrap_or_else(|| format!("rmgr {i}"));
        let rows = shm::shared(host, |s| report::rows(s, view, &rmgr_name))?;
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
        if matches!(
            e.kind,
            walker_abi::WalkerBackendEventKind::PRE_COMMIT
                | walker_abi::WalkerBackendEventKind::ABORT
        ) {
            self.changed_in_xact.store(false, Ordering::Relaxed);
        }
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept = self
            .statement_settings
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if e.kind == walker_abi::WalkerBackendEventKind::STATEMENT_START && e.nesting_level == 0 {
            *kept = kept.at_statement_start(host.settings_generation());
        }
        let admission = std::cell::Cell::new(kept.admission);
        let cfg = || {
            admission.get().unwrap_or_else(|| {
                let a = settings(host);
                admission.set(Some(a));
                a
            })
        };
        // The predictor's settings go with every use of the region, so predictions and
        // learning follow a reload of the configuration from the next statement on.
        let mut predictor = kept.predictor;
        let mut with = |f: &mut dyn FnMut(&mut Shared)| {
            let p = *predictor.get_or_insert_with(|| predictor_settings(host));
            shm::exclusive(host, |s| {
                s.predictor = p;
                f(s)
            })
            .is_ok()
        };
        let mut pause = |ms: u64| host.pause(ms.min(u32::MAX as u64) as u32);
        let now = || host.now_micros();
        let outcome = session.on_event(e, &cfg, &mut with, &mut pause, &now);
        *kept = StatementSettings {
            generation: kept.generation,
            admission: admission.get(),
            predictor,
        };
        drop(kept);
        match outcome {
            Ok(a) => Ok(a),
            Err(why) if !self.fail_closed(host) => {
                let _ = shm::exclusive(host, Session::failed);
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
                let t = a.get("tenant").and_then(|v| v.as_str()).ok_or_else(|| {
                    PluginError::invalid_argument("set_tenant needs {\"tenant\": \"<name>\"}")
                })?;
                if t.is_empty() || t.len() > policy::NAME_BYTES {
                    return Err(PluginError::invalid_argument(format!(
                        "a tenant name is 1 to {} bytes (got {})",
                        policy::NAME_BYTES,
                        t.len()
                    )));
                }
                let allowlist = host.get_string("tenant_roles").unwrap_or_default();
                let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
                let role = session.role.as_ref().map(|r| r.1.clone());
                tenant::check_claim(&allowlist, t, role.as_deref())
                    .map_err(PluginError::invalid_argument)?;
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
                if self.changed_in_xact.load(Ordering::Relaxed) {
                    return Err(PluginError::new(
                        "this transaction changed WAL budget policies and has not committed: loading now would load uncommitted changes. Commit; the change is loaded then (walker.budget_sync() waits for it)",
                    ));
                }
                let list = a
                    .get("policies")
                    .cloned()
                    .unwrap_or(serde_json::Value::Array(Vec::new()));
                let ps = policy::parse_all(&list.to_string())
                    .map_err(|e| PluginError::new(e.to_string()))?;
                let snap = a
                    .get("snapshot")
                    .and_then(|v| v.as_str())
                    .ok_or("load_policies needs the snapshot the policies were read with: {\"policies\": [...], \"snapshot\": pg_current_snapshot()::text} (walker.budget_reload() passes it)")?;
                let snap =
                    changes::Snapshot::parse(snap).map_err(|e| PluginError::new(e.to_string()))?;
                let now = host.now_micros();
                let (gen, stale, waiting) = shm::exclusive(host, |s| {
                    // A load that read the table before the last one did would put an
                    // older table back.
                    let stale = snap.xmax < s.loaded_xmax;
                    if !stale {
                        s.load_policies(&ps, now)?;
                        changes::settle(&mut s.pending_changes, &snap);
                        s.loaded_xmax = snap.xmax;
                    }
                    Ok::<_, policy::PolicyError>((
                        s.policy_gen,
                        stale,
                        changes::waiting(&s.pending_changes).len(),
                    ))
                })?
                .map_err(|e| PluginError::new(e.to_string()))?;
                Ok(serde_json::json!({
                    "loaded": ps.len(),
                    "generation": gen,
                    "stale": stale,
                    "waiting": waiting,
                })
                .to_string())
            }
            FN_CHECK_POLICY => {
                let spec: policy::PolicySpec = serde_json::from_value(serde_json::Value::Object(a))
                    .map_err(|e| PluginError::invalid_argument(format!("a policy needs scope_kind, scope_value, rate_bytes_per_sec, burst_bytes and mode: {e}")))?;
                policy::Policy::from_spec(&spec).map_err(PluginError::invalid_argument)?;
                Ok(serde_json::json!({ "valid": true }).to_string())
            }
            FN_RESET => {
                let now = host.now_micros();
                shm::exclusive(host, |s| s.reset_totals(now))?;
                Ok(serde_json::json!({ "reset_at_micros": now }).to_string())
            }
            FN_METRICS => shm::shared(host, report::metrics),
            FN_POLICY_CHANGED => {
                let xid = a
                    .get("xid")
                    .and_then(|v| v.as_u64())
                    .filter(|x| *x != 0)
                    .ok_or_else(|| {
                        PluginError::invalid_argument(
                            "policy_changed needs {\"xid\": <the transaction's id, pg_current_xact_id()>}",
                        )
                    })?;
                let ok = shm::exclusive(host, |s| changes::announce(&mut s.pending_changes, xid))?;
                if !ok {
                    return Err(PluginError::new(format!(
                        "{} transactions that changed WAL budget policies are still open; commit or roll back one of them (pg_stat_activity), then change the policy again",
                        changes::MAX_PENDING
                    )));
                }
                self.changed_in_xact.store(true, Ordering::Relaxed);
                Ok(serde_json::json!({ "xid": xid }).to_string())
            }
            FN_POLICY_STATUS => {
                let (loaded, waiting, gen) = shm::shared(host, |s| {
                    (
                        s.policies_loaded != 0,
                        changes::waiting(&s.pending_changes),
                        s.policy_gen,
                    )
                })?;
                Ok(serde_json::json!({
                    "loaded": loaded,
                    "waiting": waiting,
                    "generation": gen,
                    "changed_in_transaction": self.changed_in_xact.load(Ordering::Relaxed),
                })
                .to_string())
            }
            FN_SVG => {
                let rmgr_name = |i: u8| format!("rmgr {i}");
                let (rows, as_of) = shm::shared(host, |s| {
                    (
                        report::rows(s, report::view::SCOPES, &rmgr_name),
                        s.as_of_lsn,
                    )
                })?;
                let writers: Vec<picture::Writer> = rows
                    .iter()
                    .filter_map(|r| picture::Writer::from_row(r))
                    .collect();
                Ok(picture::render(&writers, as_of))
            }
            FN_HISTORY_SVG => {
                let rmgr_name = |i: u8| format!("rmgr {i}");
                let rows =
                    shm::shared(host, |s| report::rows(s, report::view::HISTORY, &rmgr_name))?;
                Ok(picture::render_history(&picture::History::from_rows(&rows)))
            }
            _ => Err(PluginError::new(format!("unknown function {function}"))),
        }
    }
}

/// Defines the predictor's settings (`budget.predictor`, `budget.ewma_alpha`,
/// `budget.default_write_prediction`, `budget.default_utility_prediction`,
/// `budget.max_prediction`).
fn define_predictor_settings(host: &Host, ctx: WalkerSettingContext) -> PluginResult {
    // budget.predictor: which profiles a prediction uses.
    host.define_enum(
        "predictor",
        "How a statement's WAL is predicted: profile_ewma (its query's moving average per scope, else its statement class's) or statement_class (only the class's, whatever the query).",
        predict::Predictor::ProfileEwma as usize,
        &predict::Predictor::NAMES,
        ctx,
    )?;
    // budget.ewma_alpha: weight of a new statement in the moving averages.
    host.define_real(
        "ewma_alpha",
        "Weight of a statement's WAL in its profiles' moving averages (1: the last statement only).",
        predict::DEFAULT_ALPHA,
        0.01,
        1.0,
        ctx,
    )?;
    // budget.default_write_prediction: INSERT, UPDATE, DELETE, MERGE with no profile.
    host.define_int(
        "default_write_prediction",
        "WAL predicted for an INSERT, UPDATE, DELETE or MERGE that no profile covers yet.",
        (predict::DEFAULT_WRITE_BYTES / 1024) as i64,
        0,
        i32::MAX as i64,
        WalkerSettingUnit::KB,
        ctx,
    )?;
    // budget.default_utility_prediction: DDL, COPY and other utility statements.
    host.define_int(
        "default_utility_prediction",
        "WAL predicted for a utility statement (COPY, CREATE INDEX, other DDL) that no profile covers yet.",
        (predict::DEFAULT_UTILITY_BYTES / 1024) as i64,
        0,
        i32::MAX as i64,
        WalkerSettingUnit::KB,
        ctx,
    )?;
    // budget.max_prediction: the cap (0: only the policy's burst caps it).
    host.define_int(
        "max_prediction",
        "Largest WAL a statement is predicted to write (0: no cap but the policy's burst).",
        0,
        0,
        i32::MAX as i64,
        WalkerSettingUnit::KB,
        ctx,
    )?;
    Ok(())
}

walker_abi::export_plugin!(Budget);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_loads_first_on_change_and_periodically() {
        let mut l = Loader::default();
        // Never loaded: load.
        assert_eq!(load_need(&l, false, &[], 0), LoadNeed::Load);
        // Loaded, nothing announced, refresh not due: nothing.
        l.next_refresh = 1000;
        assert_eq!(load_need(&l, true, &[], 10), LoadNeed::None);
        // A change announced: load at once, even before next_try.
        l.next_try = 500;
        assert_eq!(load_need(&l, true, &[7], 10), LoadNeed::Load);
        // A request in flight: wait for it.
        l.request = Some(1);
        assert_eq!(load_need(&l, true, &[7, 8], 10), LoadNeed::None);
        l.request = None;
        // Transaction 7 was seen and is still open: again only when next_try comes.
        l.seen = vec![7];
        assert_eq!(load_need(&l, true, &[7], 10), LoadNeed::None);
        assert_eq!(load_need(&l, true, &[7], 500), LoadNeed::Load);
        // Another transaction announced meanwhile: at once.
        assert_eq!(load_need(&l, true, &[7, 9], 10), LoadNeed::Load);
        // The periodic refresh.
        l.next_try = 0;
        assert_eq!(load_need(&l, true, &[], 1000), LoadNeed::Load);
    }

    #[test]
    fn statement_settings_are_kept_only_while_the_generation_holds() {
        let read = StatementSettings {
            generation: Some(5),
            admission: Some(session::Admission {
                enabled: false,
                max_queue_wait_ms: 7,
            }),
            predictor: Some(predict::Config::default()),
        };
        // Same generation: nothing can have changed, the values stay.
        let kept = read.at_statement_start(Some(5));
        assert_eq!(kept.generation, Some(5));
        assert!(kept
            .admission
            .is_some_and(|a| !a.enabled && a.max_queue_wait_ms == 7));
        assert!(kept.predictor.is_some());
        // A reload since: read again, under the new generation.
        let fresh = read.at_statement_start(Some(6));
        assert_eq!(fresh.generation, Some(6));
        assert!(fresh.admission.is_none() && fresh.predictor.is_none());
        // A host that cannot tell (older than ABI 1.6): read at every statement.
        let unknown = StatementSettings {
            generation: None,
            ..read
        };
        let again = unknown.at_statement_start(None);
        assert!(again.generation.is_none() && again.admission.is_none());
        assert!(again.predictor.is_none());
    }

    #[test]
    fn a_failed_load_with_a_change_announced_is_retried_soon() {
        // CREATE EXTENSION walker announces its transaction; a load the walker side
        // asked for before that transaction committed fails (no extension yet) with
        // the announcement already seen: it must come back in 0.1 s, not 30 s.
        let mut l = Loader {
            seen: vec![7],
            ..Loader::default()
        };
        retry_after_failure(&mut l, true, 1_000_000);
        assert_eq!(l.next_try, 1_100_000);
        assert_eq!(load_need(&l, false, &[7], 1_050_000), LoadNeed::None);
        assert_eq!(load_need(&l, false, &[7], 1_100_000), LoadNeed::Load);
        retry_after_failure(&mut l, true, 2_000_000);
        assert_eq!(l.next_try, 2_200_000, "backing off");
        // Nothing announced (no extension in walker.database): every 30 s.
        let mut quiet = Loader::default();
        retry_after_failure(&mut quiet, false, 1_000_000);
        assert_eq!(quiet.next_try, 31_000_000);
    }
}

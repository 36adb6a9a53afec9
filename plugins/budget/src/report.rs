//! What the views and the metrics show: rows copied out of shared memory under the
//! lock, formatted after it.

use crate::bucket::Action;
use crate::shm::{SharedRef, Totals};
use walker_abi::WalkerType as T;

/// View numbers, in the order [`views`] declares them.
pub mod view {
    /// Scopes.
    pub const SCOPES: usize = 0;
    /// Databases.
    pub const DATABASES: usize = 1;
    /// Relations.
    pub const RELATIONS: usize = 2;
    /// Resource managers.
    pub const RMGRS: usize = 3;
    /// Policies' buckets.
    pub const BUCKETS: usize = 4;
    /// Decisions.
    pub const DECISIONS: usize = 5;
    /// Profiles.
    pub const PROFILES: usize = 6;
    /// Counters.
    pub const COUNTERS: usize = 7;
    /// WAL per scope over time.
    pub const HISTORY: usize = 8;
}

/// The names of a scope in the decisions and profiles views.
const SCOPE_NAMES: [(&str, T); 4] = [
    ("tenant", T::TEXT),
    ("role_name", T::TEXT),
    ("database_name", T::TEXT),
    ("application", T::TEXT),
];

/// A scope's names, in [`SCOPE_NAMES`] order (NULL without a scope).
fn scope_names(sc: Option<&crate::shm::Scope>) -> [Cell; 4] {
    match sc {
        Some(x) => [
            text(x.tenant.as_str()),
            text(x.role_name.as_str()),
            text(x.database_name.as_str()),
            text(x.application.as_str()),
        ],
        None => [Cell::Null, Cell::Null, Cell::Null, Cell::Null],
    }
}

const TOTALS: [(&str, T); 3] = [
    ("records", T::INT8),
    ("bytes", T::INT8),
    ("fpi_bytes", T::INT8),
];

fn with_totals(
    mut cols: Vec<(&'static str, T)>,
    tail: &[(&'static str, T)],
) -> Vec<(&'static str, T)> {
    cols.extend(TOTALS);
    cols.extend_from_slice(tail);
    cols
}

/// The views the plugin declares.
pub fn views() -> Vec<walker_abi::ViewDef> {
    let as_of = [("as_of_lsn", T::LSN)];
    let v = |name, description, columns| walker_abi::ViewDef {
        name,
        description,
        columns,
    };
    vec![
        v(
            "scopes",
            "WAL charged per scope (session scopes: tenant, role, database, application; background, cluster and unattributed scopes), exact record bytes from the WAL stream",
            with_totals(
                vec![
                    ("origin", T::TEXT),
                    ("tenant", T::TEXT),
                    ("role", T::INT8),
                    ("role_name", T::TEXT),
                    ("database", T::INT8),
                    ("database_name", T::TEXT),
                    ("application", T::TEXT),
                ],
                &[("transactions", T::INT8), ("policy_id", T::INT8), ("as_of_lsn", T::LSN)],
            ),
        ),
        v(
            "databases",
            "WAL per database: each record counted whole for the database of its first block reference",
            with_totals(vec![("database", T::INT8)], &as_of),
        ),
        v(
            "relations",
            "WAL per relation: each record counted whole for the relation of its first block reference",
            with_totals(
                vec![("tablespace", T::INT8), ("database", T::INT8), ("relfilenode", T::INT8)],
                &as_of,
            ),
        ),
        v(
            "rmgrs",
            "WAL per resource manager",
            with_totals(vec![("rmgr", T::TEXT)], &as_of),
        ),
        v(
            "buckets",
            "each loaded policy with its token bucket and what it did",
            vec![
                ("policy_id", T::INT8),
                ("scope_kind", T::TEXT),
                ("scope_value", T::TEXT),
                ("mode", T::TEXT),
                ("priority", T::INT8),
                ("enabled", T::BOOL),
                ("rate_bytes_per_sec", T::INT8),
                ("burst_bytes", T::INT8),
                ("tokens", T::INT8),
                ("reserved", T::INT8),
                ("charged_bytes", T::INT8),
                ("admitted", T::INT8),
                ("observed_over", T::INT8),
                ("shadow_would_block", T::INT8),
                ("queued", T::INT8),
                ("queue_timeouts", T::INT8),
                ("rejected", T::INT8),
                ("cancelled", T::INT8),
                ("waited_ms", T::INT8),
            ],
        ),
        v(
            "decisions",
            "the latest admission decisions of statements a policy covers (a bounded ring)",
            [
                ("at", T::TIMESTAMPTZ),
                ("pid", T::INT8),
                ("action", T::TEXT),
                ("policy_id", T::INT8),
            ]
            .into_iter()
            .chain(SCOPE_NAMES)
            .chain([
                ("query_id", T::INT8),
                ("predicted_bytes", T::INT8),
                ("tokens", T::INT8),
                ("wait_ms", T::INT8),
            ])
            .collect(),
        ),
        v(
            "profiles",
            "WAL per statement as the admission predicts it: per query id and scope, per statement class and scope, per statement class",
            [
                ("statement", T::TEXT),
                ("query_id", T::INT8),
            ]
            .into_iter()
            .chain(SCOPE_NAMES)
            .chain([
                ("statements", T::INT8),
                ("avg_bytes", T::FLOAT8),
                ("max_bytes", T::INT8),
                ("last_at", T::TIMESTAMPTZ),
            ])
            .collect(),
        ),
        v(
            "counters",
            "the budget's totals and counters in one row",
            with_totals(
                vec![],
                &[
                    ("pending_bytes", T::INT8),
                    ("no_relation_bytes", T::INT8),
                    ("other_relations_bytes", T::INT8),
                    ("statements", T::INT8),
                    ("admitted", T::INT8),
                    ("observed_over", T::INT8),
                    ("shadow_would_block", T::INT8),
                    ("queued", T::INT8),
                    ("queue_timeouts", T::INT8),
                    ("rejected", T::INT8),
                    ("cancelled", T::INT8),
                    ("fail_open", T::INT8),
                    ("failures", T::INT8),
                    ("waited_ms", T::INT8),
                    ("claimed_bytes", T::INT8),
                    ("claim_owed_bytes", T::INT8),
                    ("mapped_transactions", T::INT8),
                    ("xid_map_full", T::INT8),
                    ("scopes_full", T::INT8),
                    ("scopes_evicted", T::INT8),
                    ("pending_full", T::INT8),
                    ("ended_full", T::INT8),
                    ("unattributed_transactions", T::INT8),
                    ("policies", T::INT8),
                    ("policies_loaded", T::BOOL),
                    ("policy_loads", T::INT8),
                    ("policy_changes_waiting", T::INT8),
                    ("reset_at", T::TIMESTAMPTZ),
                    ("as_of_lsn", T::LSN),
                ],
            ),
        ),
        v(
            "history",
            "WAL per scope over time: per interval of budget.history_interval (the last 60), the largest writers (up to 8, rank 1 first) with the WAL charged to them in it, and a row of rank 0 for every scope together; kept in memory since the server started or the last reset",
            vec![
                ("sampled_at", T::TIMESTAMPTZ),
                ("rank", T::INT8),
                ("origin", T::TEXT),
                ("tenant", T::TEXT),
                ("role_name", T::TEXT),
                ("database_name", T::TEXT),
                ("application", T::TEXT),
                ("bytes", T::INT8),
                ("as_of_lsn", T::LSN),
            ],
        ),
    ]
}

/// A cell of a row built outside the lock.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// int8.
    Int(i64),
    /// float8.
    Float(f64),
    /// text.
    Text(String),
    /// bool.
    Bool(bool),
    /// pg_lsn.
    Lsn(u64),
    /// timestamptz (µs).
    Time(i64),
}

impl Cell {
    /// The SDK value.
    pub fn value(&self) -> walker_abi::Value<'_> {
        use walker_abi::Value;
        match self {
            Cell::Null => Value::Null,
            Cell::Int(v) => Value::Int8(*v),
            Cell::Float(v) => Value::Float8(*v),
            Cell::Text(s) => Value::Text(s),
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Lsn(l) => Value::Lsn(*l),
            Cell::Time(t) => Value::TimestampTz(*t),
        }
    }
}

fn n(v: u64) -> Cell {
    Cell::Int(v.min(i64::MAX as u64) as i64)
}

fn totals(t: &Totals) -> [Cell; 3] {
    [n(t.records), n(t.bytes), n(t.fpi_bytes)]
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_string())
}

/// The statement class's name.
pub fn class_name(class: u32) -> &'static str {
    match class {
        1 => "select",
        2 => "insert",
        3 => "update",
        4 => "delete",
        5 => "merge",
        6 => "utility",
        _ => "other",
    }
}

/// The rows of view `view`, with the names of resource managers from `rmgr_name`.
pub fn rows(s: &SharedRef, view: usize, rmgr_name: &dyn Fn(u8) -> String) -> Vec<Vec<Cell>> {
    let mut out = Vec::new();
    let as_of = Cell::Lsn(s.as_of_lsn);
    match view {
        view::SCOPES => {
            for sc in s.scopes.iter().filter(|x| x.origin != 0) {
                let policy = match sc.policy {
                    p if p > 0 && sc.policy_gen == s.policy_gen => {
                        Cell::Int(s.policies[p as usize - 1].id)
                    }
                    _ => Cell::Null,
                };
                let mut r = vec![
                    text(sc.origin().name()),
                    text(sc.tenant.as_str()),
                    n(sc.role as u64),
                    text(sc.role_name.as_str()),
                    n(sc.database as u64),
                    text(sc.database_name.as_str()),
                    text(sc.application.as_str()),
                ];
                r.extend(totals(&sc.totals));
                r.extend([n(sc.transactions), policy, as_of.clone()]);
                out.push(r);
            }
        }
        view::DATABASES => {
            for d in s.dbs.iter().filter(|d| d.used != 0) {
                let mut r = vec![n(d.oid as u64)];
                r.extend(totals(&d.totals));
                r.push(as_of.clone());
                out.push(r);
            }
        }
        view::RELATIONS => {
            for e in s.rels.iter().filter(|e| e.used != 0) {
                let mut r = vec![n(e.ts as u64), n(e.db as u64), n(e.rel as u64)];
                r.extend(totals(&e.totals));
                r.push(as_of.clone());
                out.push(r);
            }
        }
        view::RMGRS => {
            for (i, t) in s.rmgrs.iter().enumerate().filter(|(_, t)| t.records > 0) {
                let mut r = vec![Cell::Text(rmgr_name(i as u8))];
                r.extend(totals(t));
                r.push(as_of.clone());
                out.push(r);
            }
        }
        view::BUCKETS => {
            for p in &s.policies[..s.n_policies as usize] {
                let pol = p.policy();
                let a = |x: Action| n(p.actions.get(x));
                out.push(vec![
                    Cell::Int(p.id),
                    text(pol.kind.name()),
                    text(p.value.as_str()),
                    text(p.mode().name()),
                    Cell::Int(p.priority as i64),
                    Cell::Bool(p.enabled != 0),
                    Cell::Int(p.rate),
                    Cell::Int(p.burst),
                    Cell::Int(p.bucket.tokens.floor() as i64),
                    Cell::Int(p.bucket.reserved.ceil() as i64),
                    n(p.charged.bytes),
                    a(Action::Admit),
                    a(Action::ObserveOver),
                    a(Action::ShadowBlock),
                    a(Action::Queued),
                    a(Action::QueueTimeout),
                    a(Action::Reject),
                    a(Action::Cancelled),
                    n(p.waited_ms),
                ]);
            }
        }
        view::DECISIONS => {
            for d in s.recent_decisions() {
                let sc = &s.scopes[(d.scope as usize).min(s.scopes.len() - 1)];
                let mut r = vec![
                    Cell::Time(d.at_micros),
                    Cell::Int(d.pid as i64),
                    text(Action::from_u32(d.action).map_or("?", Action::name)),
                    Cell::Int(d.policy_id),
                ];
                r.extend(scope_names(Some(sc)));
                r.extend([
                    Cell::Int(d.query_id as i64),
                    Cell::Int(d.predicted),
                    Cell::Int(d.tokens),
                    Cell::Int(d.wait_ms),
                ]);
                out.push(r);
            }
        }
        view::PROFILES => {
            // Profiles of a scope that left its slot are not shown as the new one's.
            for p in s.profiles.iter().filter(|p| s.profile_is_current(p)) {
                let scope = match p.scope {
                    0 => None,
                    i => s.scopes.get(i as usize - 1),
                };
                let mut r = vec![
                    text(class_name(p.class)),
                    if p.query_id == 0 {
                        Cell::Null
                    } else {
                        Cell::Int(p.query_id as i64)
                    },
                ];
                r.extend(scope_names(scope));
                r.extend([
                    n(p.count),
                    Cell::Float(p.avg_bytes),
                    n(p.max_bytes),
                    Cell::Time(p.last_micros),
                ]);
                out.push(r);
            }
        }
        view::COUNTERS => {
            let c = &s.counters;
            let a = |x: Action| n(c.actions.get(x));
            let mut r = totals(&c.total).to_vec();
            r.extend([
                n(c.pending_bytes),
                n(s.no_relation.bytes),
                n(s.other_relations.bytes),
                n(c.statements),
                a(Action::Admit),
                a(Action::ObserveOver),
                a(Action::ShadowBlock),
                a(Action::Queued),
                a(Action::QueueTimeout),
                a(Action::Reject),
                a(Action::Cancelled),
                a(Action::FailOpen),
                n(c.failures),
                n(c.waited_ms),
                n(c.claimed.bytes),
                n(c.claim_owed.bytes),
                n(s.running_xids() as u64),
                n(c.xid_map_full),
                n(c.scopes_full),
                n(c.scopes_evicted),
                n(c.pending_full),
                n(c.ended_full),
                n(c.unattributed_transactions),
                n(s.n_policies as u64),
                Cell::Bool(s.policies_loaded != 0),
                n(c.policy_loads),
                n(crate::changes::waiting(&s.pending_changes).len() as u64),
                if s.reset_at == 0 {
                    Cell::Null
                } else {
                    Cell::Time(s.reset_at)
                },
                as_of,
            ]);
            out.push(r);
        }
        view::HISTORY => {
            for h in s.recent_history() {
                let at = Cell::Time(h.at_micros);
                let lsn = Cell::Lsn(h.as_of_lsn);
                out.push(vec![
                    at.clone(),
                    n(0),
                    text("all"),
                    Cell::Null,
                    Cell::Null,
                    Cell::Null,
                    Cell::Null,
                    n(h.bytes),
                    lsn.clone(),
                ]);
                for (rank, e) in h.top.iter().enumerate().filter(|(_, e)| e.scope != 0) {
                    let sc = s
                        .scopes
                        .get(e.scope as usize - 1)
                        .filter(|sc| sc.gen == e.gen && sc.origin != 0);
                    let [tenant, role, database, app] = scope_names(sc);
                    out.push(vec![
                        at.clone(),
                        n(rank as u64 + 1),
                        // The slot went to another scope since: its names are gone.
                        text(sc.map_or("evicted", |x| x.origin().name())),
                        tenant,
                        role,
                        database,
                        app,
                        n(e.bytes),
                        lsn.clone(),
                    ]);
                }
            }
        }
        _ => {}
    }
    out
}

/// The Prometheus text of the counters and of each scope's and policy's bytes (label
/// values escaped by the SDK's one writer: a tenant or application name cannot add a
/// line).
pub fn metrics(s: &SharedRef) -> String {
    let mut w = walker_abi::metrics::MetricsWriter::new();
    let c = &s.counters;
    w.family(
        "walker_budget_wal_bytes_total",
        "counter",
        "WAL bytes read from the stream.",
    )
    .sample("walker_budget_wal_bytes_total", &[], c.total.bytes as f64);
    w.family(
        "walker_budget_pending_bytes",
        "gauge",
        "WAL bytes of transactions not yet ended.",
    )
    .sample("walker_budget_pending_bytes", &[], c.pending_bytes as f64);
    w.family(
        "walker_budget_statements_total",
        "counter",
        "Statements by admission action.",
    );
    for (a, name) in Action::ALL {
        w.sample(
            "walker_budget_statements_total",
            &[("action", name)],
            c.actions.get(a) as f64,
        );
    }
    w.family(
        "walker_budget_overflows_total",
        "counter",
        "What did not fit a bounded table: xid_map_full (transactions not mapped), scopes_full (sessions without a scope slot), scopes_evicted (scopes folded into an evicted scope), pending_full (records charged unattributed at once), ended_full (ended transactions settled before their grace).",
    );
    for (what, v) in [
        ("xid_map_full", c.xid_map_full),
        ("scopes_full", c.scopes_full),
        ("scopes_evicted", c.scopes_evicted),
        ("pending_full", c.pending_full),
        ("ended_full", c.ended_full),
    ] {
        w.sample(
            "walker_budget_overflows_total",
            &[("table", what)],
            v as f64,
        );
    }
    w.family(
        "walker_budget_scope_bytes_total",
        "counter",
        "WAL bytes charged per scope.",
    );
    for sc in s.scopes.iter().filter(|x| x.origin != 0) {
        w.sample(
            "walker_budget_scope_bytes_total",
            &[
                ("origin", sc.origin().name()),
                ("tenant", sc.tenant.as_str()),
                ("role", sc.role_name.as_str()),
                ("database", sc.database_name.as_str()),
                ("application", sc.application.as_str()),
            ],
            sc.totals.bytes as f64,
        );
    }
    w.family(
        "walker_budget_policy_free_bytes",
        "gauge",
        "Bytes free in each policy's bucket.",
    );
    for p in &s.policies[..s.n_policies as usize] {
        w.sample(
            "walker_budget_policy_free_bytes",
            &[("policy_id", &p.id.to_string())],
            p.bucket.tokens.floor(),
        );
    }
    w.finish()
}

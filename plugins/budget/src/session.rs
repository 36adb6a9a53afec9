//! The backend side: what a session publishes and how its statements are admitted.
//!
//! Each server process keeps its own [`Session`] (its tenant, the statement running
//! at top level and what it reserved). Everything shared goes through [`Shared`]
//! under the region lock; waits happen outside it.

use crate::bucket::{decide, Action};
use crate::shm::{Decision, Origin, SessionKey, Shared, Totals};
use walker_abi::{
    BackendEvent, Rejection, WalkerBackendEventKind as Kind, WalkerBackendType, WalkerSessionReset,
    WalkerStatementKind,
};

/// SQLSTATE of a statement refused by a reject policy.
pub const SQLSTATE_REJECTED: [u8; 5] = *b"WB001";

/// Longest single wait of a queued statement between two looks at its bucket (ms).
pub const QUEUE_SLICE_MS: u64 = 100;

/// The most `budget.max_queue_wait` may be (ms). A queued statement waits at
/// `ExecutorStart`: the server has already parsed, planned and locked its relations
/// and taken its snapshot (no hook runs earlier), so while it waits, DDL on those
/// relations waits behind it (and every later statement behind the DDL), and its
/// snapshot holds back vacuum. One minute bounds that cost.
pub const MAX_QUEUE_WAIT_MS: u64 = 60_000;

/// Runs a closure on the shared region under its lock; false when the region is not
/// available.
pub type WithShared<'a> = &'a mut dyn FnMut(&mut dyn FnMut(&mut Shared)) -> bool;

/// Settings that shape admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Enforce policies at all.
    pub enabled: bool,
    /// Longest time a statement waits in queue mode (ms).
    pub max_queue_wait_ms: u64,
}

/// The statement running at top level.
#[derive(Debug, Clone, Copy, Default)]
struct Running {
    /// The process's WAL bytes and records at the statement's start.
    wal_bytes: u64,
    wal_records: u64,
    class: u32,
    query_id: u64,
    scope: u32,
    /// The statement's transaction had an id at some event (its start, a nested
    /// statement, a commit inside it): its WAL is not all xid-less (claim.rs).
    had_xid: bool,
    /// A transaction ended inside the statement (a procedure's `COMMIT` or
    /// `ROLLBACK`): the next statement it runs, the first of a new transaction, is
    /// admitted again.
    readmit: bool,
    /// (policy index, policy id, policy generation, bytes reserved).
    reservation: Option<(usize, i64, u64, f64)>,
}

/// One server process's state.
#[derive(Debug, Default)]
pub struct Session {
    /// Tenant set with `set_tenant` (empty: none).
    pub tenant: String,
    /// The role (OID, name) the client's last statement ran as: who claims a tenant.
    pub role: Option<(u32, String)>,
    running: Option<Running>,
    published: Vec<u32>,
    /// The last scope looked up (key, slot, the slot's generation), so most
    /// statements skip the scope table's index.
    cached: Option<(SessionKey, u32, u32)>,
    /// A cancelled wait's decision that could not be recorded then (the cancel makes
    /// a contended lock give up at once): recorded at the next event that takes the
    /// lock, the abort that follows the cancel.
    unrecorded: Option<(Decision, i64, usize)>,
    /// A read that the shared region recently let run without a decision (no
    /// enforcing policy, or predicted to write nothing): the same query of the same
    /// scope skips the region until `until` (see [`READ_PASS_MICROS`]).
    read_pass: Option<ReadPass>,
    /// A read running on a pass: the process's WAL counters at its start.
    passed_read: Option<(u64, u64)>,
    /// The pass the running read earns if it ends without writing (with the WAL
    /// bytes at its start).
    pass_candidate: Option<(ReadPass, u64)>,
}

/// How long a read that ran without a decision lets the same query of the same scope
/// skip the shared region (µs). A policy or a profile changed meanwhile by other
/// sessions applies to that query after at most this long; what the read itself
/// writes is charged and learned at once.
pub const READ_PASS_MICROS: i64 = 1_000_000;

/// Who and what a read pass is for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadPass {
    tenant: String,
    role: u32,
    database: u32,
    application: String,
    query_id: u64,
    class: u32,
    scope: u32,
    until: i64,
}

impl ReadPass {
    fn covers(&self, tenant: &str, e: &BackendEvent<'_>, now: i64) -> bool {
        now < self.until
            && self.query_id == e.query_id
            && e.query_id != 0
            && self.role == e.role
            && self.database == e.database
            && self.application == e.application_name
            && self.tenant == tenant
    }
}

/// What a statement start comes to, once the lock is released.
enum Verdict {
    Go,
    Wait {
        policy: usize,
        policy_id: i64,
        predicted: f64,
        wait_ms: u64,
    },
    Refuse(Rejection),
}

/// The xid an event publishes: the aborted subtransaction's, else the top-level one.
fn published_xid(e: &BackendEvent<'_>) -> u32 {
    if e.kind == Kind::SUBXACT_ABORT {
        e.xid
    } else {
        e.top_xid
    }
}

/// True for statements a policy may act on: every statement of a client session
/// except those the host says never write (`SET`, `SHOW`, `DISCARD`, plain
/// `EXPLAIN`, ...; transaction control is no event at all). A `SELECT` is governed
/// too: it may write through the functions it calls.
fn governed(e: &BackendEvent<'_>) -> bool {
    !e.never_writes && e.backend_type == WalkerBackendType::CLIENT
}

/// The class a statement is profiled under: reads (a plain `SELECT`, and utilities
/// that read like one: a cursor over a plain `SELECT`, `FETCH`, `COPY ... TO`) with
/// the `SELECT`s, so what reads wrote predicts reads, not DDL.
fn profile_class(e: &BackendEvent<'_>) -> u32 {
    if e.read_only {
        WalkerStatementKind::SELECT.0
    } else {
        e.statement.0
    }
}

/// Below this many predicted bytes a plain `SELECT` writes nothing: it runs whatever
/// the bucket holds.
const READ_PREDICTS_NOTHING: f64 = 1.0;

/// True when `k` is the key [`key`] would build for `tenant` and `e` (compared field by
/// field, without building it).
fn key_is(k: &SessionKey, tenant: &str, e: &BackendEvent<'_>) -> bool {
    k.role == e.role
        && k.database == e.database
        && k.tenant == tenant
        && k.application == e.application_name
        && k.role_name == e.role_name
        && k.database_name == e.database_name
}

fn key(tenant: &str, e: &BackendEvent<'_>) -> SessionKey {
    SessionKey {
        tenant: tenant.to_string(),
        role: e.role,
        role_name: e.role_name.to_string(),
        database: e.database,
        database_name: e.database_name.to_string(),
        application: e.application_name.to_string(),
    }
}

impl Session {
    /// The scope of this session now (its database's evicted scope when no slot
    /// could be freed for it), with the session's key.
    fn scope(&mut self, s: &mut Shared, e: &BackendEvent<'_>) -> u32 {
        if let Some((ck, i, gen)) = &self.cached {
            if key_is(ck, &self.tenant, e) && s.scope_still(*i, *gen) {
                return *i;
            }
        }
        let k = key(&self.tenant, e);
        match s.scope(Origin::Session, &k) {
            Some(i) => {
                self.cached = Some((k, i, s.scopes[i as usize].gen));
                i
            }
            None => {
                s.counters.scopes_full = s.counters.scopes_full.saturating_add(1);
                s.evicted_scope(k.database)
            }
        }
    }

    /// The session's key for `e`: the cached scope's when it is the same (no copy),
    /// else a new one.
    fn key_for(&self, e: &BackendEvent<'_>) -> std::borrow::Cow<'_, SessionKey> {
        match &self.cached {
            Some((ck, _, _)) if key_is(ck, &self.tenant, e) => std::borrow::Cow::Borrowed(ck),
            _ => std::borrow::Cow::Owned(key(&self.tenant, e)),
        }
    }

    /// Maps this transaction (or the aborted subtransaction) to the session's scope,
    /// once per xid. Called under the lock.
    pub fn publish(&mut self, s: &mut Shared, e: &BackendEvent<'_>) {
        let xid = published_xid(e);
        if xid == 0 || self.published.contains(&xid) {
            return;
        }
        let scope = self.scope(s, e);
        let policy = s.policy_for(scope, &self.key_for(e));
        if s.map_xid_with(xid, scope, e.query_id, policy) {
            self.published.push(xid);
        }
    }

    /// True when the next statement start is the first of a transaction that began
    /// inside the running statement.
    fn readmit_pending(&self) -> bool {
        self.running.is_some_and(|r| r.readmit)
    }

    /// True when `e` needs the shared region.
    pub fn wants(&self, e: &BackendEvent<'_>) -> bool {
        let xid = published_xid(e);
        let unpublished = xid != 0 && !self.published.contains(&xid);
        // Statements that are never governed (other processes', those that never
        // write) need nothing unless they publish a transaction.
        let governed = governed(e);
        let by_kind = match e.kind {
            Kind::STATEMENT_START => {
                (governed && (e.nesting_level == 0 || self.readmit_pending())) || unpublished
            }
            Kind::STATEMENT_END => {
                (e.nesting_level == 0 && !e.never_writes && self.running.is_some()) || unpublished
            }
            // A transaction's end releases and claims for the running statement;
            // with none running, forgetting the published xids is local.
            Kind::PRE_COMMIT | Kind::ABORT => unpublished || self.running.is_some(),
            // An aborted subtransaction only needs its own xid mapped.
            _ => unpublished,
        };
        by_kind || self.unrecorded.is_some()
    }

    /// What an event that does not need the region still changes in the session: a
    /// transaction's end forgets the xids it published (all of them are mapped).
    fn settle_locally(&mut self, e: &BackendEvent<'_>) {
        if matches!(e.kind, Kind::PRE_COMMIT | Kind::ABORT) {
            self.published.clear();
        }
    }

    /// What every event tells the session before it decides whether it needs the
    /// region: who runs the client's statements, whether the running statement's
    /// transaction has an id, and whether the session was reset.
    fn observe(&mut self, e: &BackendEvent<'_>) {
        if let Some(r) = self.running.as_mut() {
            if e.top_xid != 0 || e.xid != 0 {
                r.had_xid = true;
            }
        }
        // RESET ALL, DISCARD ALL, SET/RESET SESSION AUTHORIZATION (sent by the client
        // or run by a function): the next client of a pooled connection must not
        // inherit the tenant.
        if e.kind == Kind::STATEMENT_END && e.session_reset != WalkerSessionReset::NONE {
            self.tenant.clear();
            self.cached = None;
            self.read_pass = None;
        }
        if e.kind == Kind::STATEMENT_START
            && e.nesting_level == 0
            && self
                .role
                .as_ref()
                .is_none_or(|r| r.0 != e.role || r.1 != e.role_name)
        {
            self.role = Some((e.role, e.role_name.to_string()));
        }
    }

    /// Handles an event under the lock; a statement start returns what to do next.
    fn locked(
        &mut self,
        s: &mut Shared,
        e: &BackendEvent<'_>,
        cfg: Admission,
        now: i64,
    ) -> Verdict {
        if let Some((d, policy_id, policy)) = self.unrecorded.take() {
            let same = s.policies.get(policy).is_some_and(|p| p.id == policy_id);
            s.record_decision(d, same.then_some(policy));
        }
        self.publish(s, e);
        match e.kind {
            Kind::STATEMENT_START if e.nesting_level == 0 => self.start(s, e, cfg, now),
            Kind::STATEMENT_START if self.readmit_pending() => self.admit(s, e, cfg, now),
            Kind::STATEMENT_END if e.nesting_level == 0 => {
                if let Some(r) = self.running.take() {
                    release(s, &r);
                    let wrote = e.wal_bytes.saturating_sub(r.wal_bytes);
                    s.learn(r.class, r.query_id, r.scope, wrote, now);
                    self.claim(s, e, &r, now);
                }
                Verdict::Go
            }
            // A transaction ended inside the running statement (a procedure's COMMIT
            // or ROLLBACK; the client's own end has nesting level 0): its reservation
            // ends with it, and the statement's next transaction is admitted anew.
            Kind::PRE_COMMIT | Kind::ABORT if e.nesting_level > 0 && self.running.is_some() => {
                if let Some(r) = self.running.as_mut() {
                    let ended = *r;
                    r.reservation = None;
                    r.readmit = true;
                    release(s, &ended);
                }
                self.published.clear();
                Verdict::Go
            }
            Kind::PRE_COMMIT | Kind::ABORT => {
                if let Some(r) = self.running.take() {
                    release(s, &r);
                    if e.kind == Kind::ABORT {
                        // A statement that failed still wrote what it wrote.
                        self.claim(s, e, &r, now);
                    }
                }
                self.published.clear();
                Verdict::Go
            }
            _ => Verdict::Go,
        }
    }

    /// Charges the xid-less WAL a client's statement wrote to its scope (claim.rs):
    /// only when the statement ran without any transaction id, so all of it is.
    fn claim(&self, s: &mut Shared, e: &BackendEvent<'_>, r: &Running, now: i64) {
        if r.had_xid || e.top_xid != 0 || e.backend_type != WalkerBackendType::CLIENT {
            return;
        }
        let t = Totals {
            records: e.wal_records.saturating_sub(r.wal_records),
            bytes: e.wal_bytes.saturating_sub(r.wal_bytes),
            fpi_bytes: 0,
        };
        s.claim_xidless(r.scope, &t, now);
        // A session without a scope slot of its own (the evicted scope stands in):
        // its policy, chosen from who it is, is charged all the same.
        if t.bytes > 0 && s.scopes[r.scope as usize].origin() != Origin::Session {
            if let Some(p) = s.policy_for(r.scope, &self.key_for(e)) {
                s.charge_policy(p, &t, now);
            }
        }
    }

    fn start(&mut self, s: &mut Shared, e: &BackendEvent<'_>, cfg: Admission, now: i64) -> Verdict {
        if let Some(r) = self.running.take() {
            // The previous statement ended in an error without an end event.
            release(s, &r);
        }
        let scope = self.scope(s, e);
        self.running = Some(Running {
            wal_bytes: e.wal_bytes,
            wal_records: e.wal_records,
            class: profile_class(e),
            query_id: e.query_id,
            scope,
            had_xid: e.top_xid != 0 || e.xid != 0,
            readmit: false,
            reservation: None,
        });
        self.admit(s, e, cfg, now)
    }

    /// The new transaction inside the running statement was admitted.
    fn readmitted(&mut self) {
        if let Some(r) = self.running.as_mut() {
            r.readmit = false;
        }
    }

    /// Asks the policy of the running statement's scope whether `e` (the client's
    /// statement, or the first statement of a transaction begun inside it) may run.
    fn admit(&mut self, s: &mut Shared, e: &BackendEvent<'_>, cfg: Admission, now: i64) -> Verdict {
        let Some(scope) = self.running.map(|r| r.scope) else {
            return Verdict::Go;
        };
        let policy = if cfg.enabled && governed(e) {
            s.policy_for(scope, &self.key_for(e))
        } else {
            None
        };
        let Some(p) = policy else {
            self.readmitted();
            return Verdict::Go;
        };
        s.counters.statements = s.counters.statements.saturating_add(1);
        let class = profile_class(e);
        let predicted = if e.read_only {
            s.predict_read(class, e.query_id, scope)
        } else {
            s.predict(class, e.query_id, scope)
        };
        if e.read_only && predicted < READ_PREDICTS_NOTHING {
            // A read predicted to write nothing (its query, or this scope's reads,
            // wrote nothing before) adds nothing to the debt: it runs, even in debt,
            // without a decision (reads would flood the decision ring). What it writes
            // after all is charged, and learned for the next time. Inside a procedure
            // the new transaction's first write is still to be admitted.
            return Verdict::Go;
        }
        self.readmitted();
        let slot = &mut s.policies[p];
        slot.bucket.refill(slot.rate, slot.burst, now);
        let wait_ms = slot.bucket.wait_ms(predicted, slot.rate, slot.burst);
        let action = decide(slot.mode(), wait_ms);
        let (policy_id, rate, burst, tokens) = (slot.id, slot.rate, slot.burst, slot.bucket.tokens);
        let decision = Decision {
            at_micros: now,
            pid: e.pid,
            action: action as u32,
            policy_id,
            scope,
            query_id: e.query_id,
            predicted: predicted as i64,
            tokens: tokens as i64,
            wait_ms: wait_ms as i64,
        };
        match action {
            Action::Queue => Verdict::Wait {
                policy: p,
                policy_id,
                predicted,
                wait_ms,
            },
            Action::Reject => {
                s.record_decision(decision, Some(p));
                self.running = None;
                let who = key(&self.tenant, e).who();
                let slot = &s.policies[p];
                Verdict::Refuse(Rejection {
                    sqlstate: SQLSTATE_REJECTED,
                    message: format!(
                        "WAL budget exceeded: policy {} ({} {}) has {} bytes free; this statement is expected to write about {} bytes",
                        policy_id,
                        slot.policy().kind.name(),
                        slot.value.as_str(),
                        (tokens - slot.bucket.reserved).floor() as i64,
                        predicted.round() as i64
                    ),
                    detail: format!(
                        "The policy allows {rate} bytes/s with a burst of {burst} bytes and rejects statements over it. Scope: tenant \"{}\", role \"{}\", database \"{}\", application \"{}\".",
                        who.tenant, who.role, who.database, who.application
                    ),
                    hint: format!(
                        "Retry in about {wait_ms} ms, or change the policy: SELECT walker.budget_update_policy({policy_id}, rate_bytes_per_sec => ...) or walker.budget_set_mode({policy_id}, 'queue')."
                    ),
                })
            }
            _ => {
                let slot = &mut s.policies[p];
                slot.bucket.reserved += predicted;
                let gen = s.policy_gen;
                if let Some(r) = self.running.as_mut() {
                    r.reservation = Some((p, policy_id, gen, predicted));
                }
                s.record_decision(decision, Some(p));
                Verdict::Go
            }
        }
    }

    /// Handles one event: `cfg` reads the settings (only for events that need the
    /// region), `with` runs a closure under the region lock, `pause` waits (false when
    /// interrupted), `now` reads the clock.
    pub fn on_event(
        &mut self,
        e: &BackendEvent<'_>,
        cfg: &dyn Fn() -> Admission,
        with: WithShared<'_>,
        pause: &mut dyn FnMut(u64) -> bool,
        now: &dyn Fn() -> i64,
    ) -> Result<walker_abi::Admission, String> {
        self.observe(e);
        if self.on_pass(e, now) {
            return Ok(walker_abi::Admission::Proceed);
        }
        if !self.wants(e) {
            self.settle_locally(e);
            return Ok(walker_abi::Admission::Proceed);
        }
        let cfg = cfg();
        let mut verdict = Verdict::Go;
        let t0 = now();
        if !with(&mut |s| verdict = self.locked(s, e, cfg, t0)) {
            return Err("the budget's shared memory is not available".into());
        }
        self.grant_pass(e, &verdict, t0);
        self.earn_pass(e);
        match verdict {
            Verdict::Go => Ok(walker_abi::Admission::Proceed),
            Verdict::Refuse(r) => Ok(walker_abi::Admission::Reject(r)),
            Verdict::Wait {
                policy,
                policy_id,
                predicted,
                wait_ms,
            } => self.queue(
                e, cfg, policy, policy_id, predicted, wait_ms, with, pause, now,
            ),
        }
    }

    /// True when `e` needs nothing from the shared region because a read pass covers
    /// it: the start of a read the region recently let run without a decision, or the
    /// end of such a read that wrote no WAL. A read on a pass that wrote WAL after all
    /// ends through the region as any statement (charged, claimed, learned), and the
    /// pass is dropped.
    fn on_pass(&mut self, e: &BackendEvent<'_>, now: &dyn Fn() -> i64) -> bool {
        let top = e.nesting_level == 0;
        match e.kind {
            Kind::STATEMENT_START if top => {
                self.passed_read = None;
                let free = e.read_only
                    && published_xid(e) == 0
                    && self.unrecorded.is_none()
                    && self.running.is_none_or(|r| r.reservation.is_none());
                if !free {
                    return false;
                }
                let t = now();
                if !self
                    .read_pass
                    .as_ref()
                    .is_some_and(|p| p.covers(&self.tenant, e, t))
                {
                    return false;
                }
                self.running = None;
                self.passed_read = Some((e.wal_bytes, e.wal_records));
                true
            }
            Kind::STATEMENT_END if top => {
                let Some((bytes, records)) = self.passed_read.take() else {
                    return false;
                };
                let unpublished = e.top_xid != 0 && !self.published.contains(&e.top_xid);
                if e.wal_bytes == bytes && !unpublished {
                    return true;
                }
                // It wrote: end it through the region like any statement.
                if let Some(p) = self.read_pass.take() {
                    self.running = Some(Running {
                        wal_bytes: bytes,
                        wal_records: records,
                        class: p.class,
                        query_id: p.query_id,
                        scope: p.scope,
                        had_xid: e.top_xid != 0 || e.xid != 0,
                        readmit: false,
                        reservation: None,
                    });
                }
                false
            }
            _ => false,
        }
    }

    /// Once a client's read that the region let start without a decision or a
    /// reservation ends without having written, the same query of the same scope may
    /// skip the region for a while: the candidate is noted at its start here, and
    /// [`Session::earn_pass`] grants it at its end.
    fn grant_pass(&mut self, e: &BackendEvent<'_>, verdict: &Verdict, now: i64) {
        if e.kind != Kind::STATEMENT_START || e.nesting_level != 0 {
            return;
        }
        self.read_pass = None;
        self.pass_candidate = None;
        if !e.read_only || e.query_id == 0 || !matches!(verdict, Verdict::Go) {
            return;
        }
        let Some(r) = self
            .running
            .filter(|r| r.reservation.is_none() && !r.had_xid)
        else {
            return;
        };
        let pass = ReadPass {
            tenant: self.tenant.clone(),
            role: e.role,
            database: e.database,
            application: e.application_name.to_string(),
            query_id: e.query_id,
            class: r.class,
            scope: r.scope,
            until: now.saturating_add(READ_PASS_MICROS),
        };
        self.pass_candidate = Some((pass, e.wal_bytes));
    }

    /// At a read's end: the pass it was a candidate for, when it wrote nothing and
    /// has no transaction id.
    fn earn_pass(&mut self, e: &BackendEvent<'_>) {
        if e.kind != Kind::STATEMENT_END || e.nesting_level != 0 {
            return;
        }
        if let Some((pass, bytes)) = self.pass_candidate.take() {
            if e.wal_bytes == bytes && e.top_xid == 0 && e.xid == 0 {
                self.read_pass = Some(pass);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn queue(
        &mut self,
        e: &BackendEvent<'_>,
        cfg: Admission,
        policy: usize,
        policy_id: i64,
        predicted: f64,
        mut wait_ms: u64,
        with: WithShared<'_>,
        pause: &mut dyn FnMut(u64) -> bool,
        now: &dyn Fn() -> i64,
    ) -> Result<walker_abi::Admission, String> {
        let start = now();
        let scope = self.running.map_or(0, |r| r.scope);
        let mut outcome = Action::Queued;
        loop {
            let waited = (now().saturating_sub(start) / 1000).max(0) as u64;
            if waited >= cfg.max_queue_wait_ms {
                outcome = Action::QueueTimeout;
                break;
            }
            let slice = wait_ms
                .clamp(1, QUEUE_SLICE_MS)
                .min(cfg.max_queue_wait_ms - waited);
            if !pause(slice) {
                outcome = Action::Cancelled;
                break;
            }
            let t = now();
            let mut still = 0;
            with(&mut |s| {
                let slot = &mut s.policies[policy];
                if slot.id == policy_id {
                    slot.bucket.refill(slot.rate, slot.burst, t);
                    still = slot.bucket.wait_ms(predicted, slot.rate, slot.burst);
                }
            });
            if still == 0 {
                break;
            }
            wait_ms = still;
        }
        let waited = (now().saturating_sub(start) / 1000).max(0);
        let t = now();
        let mut running = self.running.take();
        let decision = |tokens: f64| Decision {
            at_micros: t,
            pid: e.pid,
            action: outcome as u32,
            policy_id,
            scope,
            query_id: e.query_id,
            predicted: predicted as i64,
            tokens: tokens as i64,
            wait_ms: waited,
        };
        let recorded = with(&mut |s| {
            let slot = &mut s.policies[policy];
            let same = slot.id == policy_id;
            let tokens = if same { slot.bucket.tokens } else { 0.0 };
            if same && outcome != Action::Cancelled {
                slot.bucket.reserved += predicted;
                if let Some(r) = running.as_mut() {
                    r.reservation = Some((policy, policy_id, s.policy_gen, predicted));
                }
            }
            s.record_decision(decision(tokens), same.then_some(policy));
        });
        if outcome == Action::Cancelled {
            if !recorded {
                self.unrecorded = Some((decision(0.0), policy_id, policy));
            }
            return Ok(walker_abi::Admission::Interrupted);
        }
        self.running = running;
        Ok(walker_abi::Admission::Proceed)
    }

    /// Records an internal failure at admission.
    pub fn failed(s: &mut Shared) {
        s.counters.failures = s.counters.failures.saturating_add(1);
    }
}

/// Gives back what a statement reserved (if its policy is still the same one).
fn release(s: &mut Shared, r: &Running) {
    if let Some((p, id, gen, bytes)) = r.reservation {
        if s.policy_gen == gen && s.policies[p].id == id {
            let b = &mut s.policies[p].bucket;
            b.reserved = (b.reserved - bytes).max(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, PolicySpec};
    use std::cell::{Cell, RefCell};
    use walker_abi::{WalkerBackendEventKind, WalkerStatementKind};

    fn event(kind: WalkerBackendEventKind, top_xid: u32, wal: u64) -> BackendEvent<'static> {
        BackendEvent {
            kind,
            statement: WalkerStatementKind::INSERT,
            backend_type: WalkerBackendType::CLIENT,
            nesting_level: 0,
            read_only: false,
            pid: 42,
            database: 5,
            role: 10,
            query_id: 99,
            top_xid,
            xid: top_xid,
            wal_records: 0,
            wal_fpi: 0,
            wal_bytes: wal,
            application_name: "app",
            role_name: "writer",
            database_name: "db",
            command: "INSERT",
            never_writes: false,
            session_reset: WalkerSessionReset::NONE,
        }
    }

    fn policy(mode: &str) -> Policy {
        Policy::from_spec(&PolicySpec {
            id: 4,
            scope_kind: "role".into(),
            scope_value: "writer".into(),
            rate_bytes_per_sec: 1000,
            burst_bytes: 2000,
            mode: mode.into(),
            priority: 0,
            enabled: true,
        })
        .unwrap()
    }

    const CFG: Admission = Admission {
        enabled: true,
        max_queue_wait_ms: 10_000,
    };

    /// Runs one event against `s` with a fake clock that `pause` advances.
    fn run(
        sess: &mut Session,
        s: &RefCell<Box<Shared>>,
        e: &BackendEvent<'_>,
        clock: &Cell<i64>,
        cancel_after: Option<u64>,
    ) -> walker_abi::Admission {
        let paused = Cell::new(0u64);
        let mut with = |f: &mut dyn FnMut(&mut Shared)| {
            f(&mut s.borrow_mut());
            true
        };
        let mut pause = |ms: u64| {
            paused.set(paused.get() + ms);
            clock.set(clock.get() + ms as i64 * 1000);
            cancel_after.is_none_or(|c| paused.get() < c)
        };
        let now = || clock.get();
        sess.on_event(e, &|| CFG, &mut with, &mut pause, &now)
            .unwrap()
    }

    #[test]
    fn transactions_are_published_once_and_forgotten_at_the_end() {
        let s = RefCell::new(Shared::zeroed());
        let clock = Cell::new(1_000_000);
        let mut sess = Session::default();
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            None,
        );
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_END, 700, 500),
            &clock,
            None,
        );
        let scope = s.borrow().xid_scope(700).unwrap().0;
        assert_eq!(
            s.borrow().scopes[scope as usize].role_name.as_str(),
            "writer"
        );
        assert!(!sess.wants(&event(Kind::STATEMENT_START, 700, 0)) || sess.running.is_none());
        run(
            &mut sess,
            &s,
            &event(Kind::PRE_COMMIT, 700, 500),
            &clock,
            None,
        );
        assert!(sess.published.is_empty());
        // The profile learned 500 bytes for query 99.
        assert_eq!(
            s.borrow().predict(WalkerStatementKind::INSERT.0, 99, scope),
            500.0
        );
    }

    #[test]
    fn reject_mode_refuses_in_debt_with_its_sqlstate_and_numbers() {
        let s = RefCell::new(Shared::zeroed());
        s.borrow_mut()
            .load_policies(&[policy("reject")], 0)
            .unwrap();
        let clock = Cell::new(1_000_000);
        let mut sess = Session::default();
        // First statement: the bucket starts full; admitted.
        let a = run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            None,
        );
        assert_eq!(a, walker_abi::Admission::Proceed);
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_END, 0, 0),
            &clock,
            None,
        );
        // The stream charges 5000 bytes: 3000 in debt.
        s.borrow_mut().policies[0].bucket.charge(5000);
        match run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            None,
        ) {
            walker_abi::Admission::Reject(r) => {
                assert_eq!(&r.sqlstate, b"WB001");
                assert!(
                    r.message
                        .contains("policy 4 (role writer) has -3000 bytes free"),
                    "{}",
                    r.message
                );
                assert!(
                    r.detail.contains("1000 bytes/s with a burst of 2000"),
                    "{}",
                    r.detail
                );
                assert!(r.hint.contains("3000 ms"), "{}", r.hint);
            }
            other => panic!("{other:?}"),
        }
        let sh = s.borrow();
        assert_eq!(sh.counters.actions.get(Action::Reject), 1);
        assert_eq!(sh.counters.actions.get(Action::Admit), 1);
    }

    /// Runs `e`, counting the times the region was taken.
    fn run_counted(
        sess: &mut Session,
        s: &RefCell<Box<Shared>>,
        e: &BackendEvent<'_>,
        clock: &Cell<i64>,
        taken: &Cell<u32>,
    ) -> walker_abi::Admission {
        let mut with = |f: &mut dyn FnMut(&mut Shared)| {
            taken.set(taken.get() + 1);
            f(&mut s.borrow_mut());
            true
        };
        let mut pause = |_| true;
        let now = || clock.get();
        sess.on_event(e, &|| CFG, &mut with, &mut pause, &now)
            .unwrap()
    }

    fn read(kind: WalkerBackendEventKind, wal: u64) -> BackendEvent<'static> {
        BackendEvent {
            statement: WalkerStatementKind::SELECT,
            read_only: true,
            query_id: 7,
            command: "SELECT",
            ..event(kind, 0, wal)
        }
    }

    #[test]
    fn a_read_that_wrote_nothing_skips_the_region_for_a_while_and_a_write_ends_the_pass() {
        let s = RefCell::new(Shared::zeroed());
        s.borrow_mut()
            .load_policies(&[policy("reject")], 0)
            .unwrap();
        let clock = Cell::new(1_000_000);
        let taken = Cell::new(0);
        let mut sess = Session::default();
        // First time through the region (start and end).
        run_counted(
            &mut sess,
            &s,
            &read(Kind::STATEMENT_START, 0),
            &clock,
            &taken,
        );
        run_counted(&mut sess, &s, &read(Kind::STATEMENT_END, 0), &clock, &taken);
        assert_eq!(taken.get(), 2);
        // Then the same query skips it, even in debt (it predicts nothing).
        s.borrow_mut().policies[0].bucket.charge(50_000);
        for _ in 0..5 {
            let a = run_counted(
                &mut sess,
                &s,
                &read(Kind::STATEMENT_START, 0),
                &clock,
                &taken,
            );
            assert_eq!(a, walker_abi::Admission::Proceed);
            run_counted(&mut sess, &s, &read(Kind::STATEMENT_END, 0), &clock, &taken);
            run_counted(&mut sess, &s, &read(Kind::PRE_COMMIT, 0), &clock, &taken);
        }
        assert_eq!(taken.get(), 2);
        // Another application is another scope: the region again.
        let other = BackendEvent {
            application_name: "other",
            ..read(Kind::STATEMENT_START, 0)
        };
        run_counted(&mut sess, &s, &other, &clock, &taken);
        run_counted(&mut sess, &s, &read(Kind::STATEMENT_END, 0), &clock, &taken);
        assert_eq!(taken.get(), 4);
        // Back on a pass after its own look; one that writes (pruning, a writing
        // function) ends through the region: learned, and the pass is gone.
        run_counted(
            &mut sess,
            &s,
            &read(Kind::STATEMENT_START, 0),
            &clock,
            &taken,
        );
        run_counted(&mut sess, &s, &read(Kind::STATEMENT_END, 0), &clock, &taken);
        let before = taken.get();
        run_counted(
            &mut sess,
            &s,
            &read(Kind::STATEMENT_START, 100),
            &clock,
            &taken,
        );
        run_counted(
            &mut sess,
            &s,
            &read(Kind::STATEMENT_END, 4100),
            &clock,
            &taken,
        );
        assert_eq!(taken.get(), before + 1, "the end went through the region");
        let scope = sess.cached.as_ref().unwrap().1;
        assert_eq!(
            s.borrow()
                .predict_read(WalkerStatementKind::SELECT.0, 7, scope),
            4000.0 * 0.3,
            "the read's 4000 bytes learned (EWMA from 0, alpha 0.3)"
        );
        // The next one is looked at again, and (predicted to write, in debt) refused.
        let a = run_counted(
            &mut sess,
            &s,
            &read(Kind::STATEMENT_START, 4100),
            &clock,
            &taken,
        );
        assert!(matches!(a, walker_abi::Admission::Reject(_)), "{a:?}");
        // A read whose run wrote (a writing function: an xid) earns no pass.
        let mut writer = Session::default();
        let s3 = RefCell::new(Shared::zeroed());
        let t3 = Cell::new(0);
        run_counted(
            &mut writer,
            &s3,
            &read(Kind::STATEMENT_START, 0),
            &clock,
            &t3,
        );
        let wrote = BackendEvent {
            top_xid: 700,
            xid: 700,
            ..read(Kind::STATEMENT_END, 900)
        };
        run_counted(&mut writer, &s3, &wrote, &clock, &t3);
        let n = t3.get();
        run_counted(
            &mut writer,
            &s3,
            &read(Kind::STATEMENT_START, 900),
            &clock,
            &t3,
        );
        assert_eq!(t3.get(), n + 1, "looked at again");
        // A pass expires.
        let mut fresh = Session::default();
        let s2 = RefCell::new(Shared::zeroed());
        let t2 = Cell::new(0);
        run_counted(
            &mut fresh,
            &s2,
            &read(Kind::STATEMENT_START, 0),
            &clock,
            &t2,
        );
        run_counted(&mut fresh, &s2, &read(Kind::STATEMENT_END, 0), &clock, &t2);
        clock.set(clock.get() + READ_PASS_MICROS);
        run_counted(
            &mut fresh,
            &s2,
            &read(Kind::STATEMENT_START, 0),
            &clock,
            &t2,
        );
        assert_eq!(t2.get(), 3);
    }

    #[test]
    fn a_cancelled_wait_whose_lock_is_refused_is_recorded_at_the_abort() {
        let s = RefCell::new(Shared::zeroed());
        s.borrow_mut().load_policies(&[policy("queue")], 0).unwrap();
        let clock = Cell::new(1_000_000);
        let mut sess = Session::default();
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            None,
        );
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_END, 0, 0),
            &clock,
            None,
        );
        s.borrow_mut().policies[0].bucket.charge(10_000);
        // The lock is granted until the cancel, then refused (a contended lock gives up
        // at once while the cancel is pending).
        let cancelled = Cell::new(false);
        let mut with = |f: &mut dyn FnMut(&mut Shared)| {
            if cancelled.get() {
                return false;
            }
            f(&mut s.borrow_mut());
            true
        };
        let mut pause = |ms: u64| {
            clock.set(clock.get() + ms as i64 * 1000);
            cancelled.set(true);
            false
        };
        let now = || clock.get();
        let a = sess
            .on_event(
                &event(Kind::STATEMENT_START, 0, 0),
                &|| CFG,
                &mut with,
                &mut pause,
                &now,
            )
            .unwrap();
        assert_eq!(a, walker_abi::Admission::Interrupted);
        assert_eq!(s.borrow().counters.actions.get(Action::Cancelled), 0);
        // The abort that follows takes the lock: the decision is recorded then.
        let abort = event(Kind::ABORT, 0, 0);
        assert!(sess.wants(&abort));
        run(&mut sess, &s, &abort, &clock, None);
        let sh = s.borrow();
        assert_eq!(sh.counters.actions.get(Action::Cancelled), 1);
        assert_eq!(sh.policies[0].actions.get(Action::Cancelled), 1);
        let d = *sh.recent_decisions().last().unwrap();
        assert_eq!((d.action, d.wait_ms), (Action::Cancelled as u32, 100));
        assert!(sess.unrecorded.is_none());
    }

    #[test]
    fn queue_mode_waits_until_the_debt_is_paid_and_a_cancel_ends_the_wait() {
        let s = RefCell::new(Shared::zeroed());
        s.borrow_mut().load_policies(&[policy("queue")], 0).unwrap();
        let clock = Cell::new(1_000_000);
        let mut sess = Session::default();
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            None,
        );
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_END, 0, 0),
            &clock,
            None,
        );
        s.borrow_mut().policies[0].bucket.charge(3500);
        // 1500 in debt at 1000 B/s: 1.5 s of waiting in 100 ms slices.
        let t0 = clock.get();
        let a = run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            None,
        );
        assert_eq!(a, walker_abi::Admission::Proceed);
        assert_eq!(clock.get() - t0, 1_500_000);
        let d = *s.borrow().recent_decisions().last().unwrap();
        assert_eq!((d.action, d.wait_ms), (Action::Queued as u32, 1500));
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_END, 0, 0),
            &clock,
            None,
        );
        s.borrow_mut().policies[0].bucket.charge(10_000);
        let a = run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            Some(300),
        );
        assert_eq!(a, walker_abi::Admission::Interrupted);
        let d = *s.borrow().recent_decisions().last().unwrap();
        assert_eq!(d.action, Action::Cancelled as u32);
        assert_eq!(s.borrow().policies[0].bucket.reserved, 0.0);
    }

    #[test]
    fn observe_and_shadow_never_block_but_record() {
        for (mode, action) in [
            ("observe", Action::ObserveOver),
            ("shadow", Action::ShadowBlock),
        ] {
            let s = RefCell::new(Shared::zeroed());
            s.borrow_mut().load_policies(&[policy(mode)], 0).unwrap();
            let clock = Cell::new(1_000_000);
            let mut sess = Session::default();
            run(
                &mut sess,
                &s,
                &event(Kind::STATEMENT_START, 0, 0),
                &clock,
                None,
            );
            s.borrow_mut().policies[0].bucket.charge(9000);
            let t0 = clock.get();
            let a = run(
                &mut sess,
                &s,
                &event(Kind::STATEMENT_START, 0, 0),
                &clock,
                None,
            );
            assert_eq!(a, walker_abi::Admission::Proceed);
            assert_eq!(clock.get(), t0);
            assert_eq!(
                s.borrow().recent_decisions().last().unwrap().action,
                action as u32
            );
        }
    }
    /// A session of role "writer" whose reject policy's bucket owes `debt` bytes.
    fn in_debt(debt: u64) -> (RefCell<Box<Shared<'static>>>, Session, Cell<i64>) {
        let s = RefCell::new(Shared::zeroed());
        s.borrow_mut()
            .load_policies(&[policy("reject")], 0)
            .unwrap();
        let clock = Cell::new(1_000_000);
        let mut sess = Session::default();
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            None,
        );
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_END, 0, 0),
            &clock,
            None,
        );
        s.borrow_mut().policies[0].bucket.charge(debt + 2000);
        (s, sess, clock)
    }

    fn select(kind: WalkerBackendEventKind, query_id: u64, wal: u64) -> BackendEvent<'static> {
        BackendEvent {
            statement: WalkerStatementKind::SELECT,
            read_only: true,
            query_id,
            command: "SELECT",
            ..event(kind, 0, wal)
        }
    }

    #[test]
    fn statements_that_never_write_pass_in_debt_without_the_region() {
        let (s, mut sess, clock) = in_debt(100_000);
        let set = BackendEvent {
            statement: WalkerStatementKind::UTILITY,
            read_only: true,
            never_writes: true,
            command: "SET",
            ..event(Kind::STATEMENT_START, 0, 0)
        };
        assert!(!sess.wants(&set));
        assert_eq!(
            run(&mut sess, &s, &set, &clock, None),
            walker_abi::Admission::Proceed
        );
        // A write is still refused.
        assert!(matches!(
            run(
                &mut sess,
                &s,
                &event(Kind::STATEMENT_START, 0, 0),
                &clock,
                None
            ),
            walker_abi::Admission::Reject(_)
        ));
    }

    #[test]
    fn a_read_that_writes_nothing_passes_in_debt_and_one_that_wrote_is_refused() {
        let s = RefCell::new(Shared::zeroed());
        s.borrow_mut()
            .load_policies(&[policy("reject")], 0)
            .unwrap();
        let clock = Cell::new(1_000_000);
        let mut sess = Session::default();
        // Query 1 read nothing; query 2 wrote 5000 bytes without an xid (a logical
        // message): claimed at once, which puts the bucket in debt.
        run(
            &mut sess,
            &s,
            &select(Kind::STATEMENT_START, 1, 0),
            &clock,
            None,
        );
        run(
            &mut sess,
            &s,
            &select(Kind::STATEMENT_END, 1, 0),
            &clock,
            None,
        );
        run(
            &mut sess,
            &s,
            &select(Kind::STATEMENT_START, 2, 0),
            &clock,
            None,
        );
        run(
            &mut sess,
            &s,
            &select(Kind::STATEMENT_END, 2, 5000),
            &clock,
            None,
        );
        {
            let sh = s.borrow();
            assert_eq!(sh.policies[0].bucket.tokens, -3000.0);
            assert_eq!(sh.counters.claim_owed.bytes, 5000);
            let scope = sh.xid_scope(0).map(|x| x.0);
            assert_eq!(scope, None);
        }
        assert_eq!(
            run(
                &mut sess,
                &s,
                &select(Kind::STATEMENT_START, 1, 5000),
                &clock,
                None
            ),
            walker_abi::Admission::Proceed
        );
        run(
            &mut sess,
            &s,
            &select(Kind::STATEMENT_END, 1, 5000),
            &clock,
            None,
        );
        assert!(matches!(
            run(
                &mut sess,
                &s,
                &select(Kind::STATEMENT_START, 2, 5000),
                &clock,
                None
            ),
            walker_abi::Admission::Reject(_)
        ));
        // A statement with an xid claims nothing: its records are charged by xid.
        let before = s.borrow().counters.claimed;
        run(
            &mut sess,
            &s,
            &select(Kind::STATEMENT_START, 1, 5000),
            &clock,
            None,
        );
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_END, 900, 9000),
            &clock,
            None,
        );
        assert_eq!(s.borrow().counters.claimed, before);
    }

    /// Issue 16 item 5: an autocommit write takes the region once at its start
    /// (admission) and once at its end (publish, charge, learn); its commit has
    /// nothing left to do there. A caught error whose subtransaction wrote nothing
    /// takes it neither.
    #[test]
    fn a_commit_or_an_empty_subtransaction_abort_does_not_take_the_region() {
        let s = RefCell::new(Shared::zeroed());
        s.borrow_mut()
            .load_policies(&[policy("reject")], 0)
            .unwrap();
        let clock = Cell::new(1_000_000);
        let taken = Cell::new(0);
        let mut sess = Session::default();
        // UPDATE ... (autocommit): its xid appears during the statement.
        for (xid, e) in [(0, Kind::STATEMENT_START), (700, Kind::STATEMENT_END)] {
            run_counted(&mut sess, &s, &event(e, xid, 0), &clock, &taken);
        }
        assert_eq!(taken.get(), 2, "start and end");
        run_counted(
            &mut sess,
            &s,
            &event(Kind::PRE_COMMIT, 700, 0),
            &clock,
            &taken,
        );
        assert_eq!(taken.get(), 2, "the commit of a published transaction");
        // The next transaction is published anew (the commit was forgotten locally).
        run_counted(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            &taken,
        );
        run_counted(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_END, 701, 10),
            &clock,
            &taken,
        );
        assert_eq!(s.borrow().xid_scope(701), s.borrow().xid_scope(700));
        assert!(s.borrow().xid_scope(701).is_some());
        run_counted(&mut sess, &s, &event(Kind::ABORT, 701, 10), &clock, &taken);
        assert_eq!(taken.get(), 4, "the abort after the end");
        // DO $$ ... PERFORM 1/0 ... EXCEPTION ... $$: the aborted subtransaction has
        // no xid, and the DO block is still running.
        run_counted(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 10),
            &clock,
            &taken,
        );
        let sub = BackendEvent {
            nesting_level: 1,
            ..event(Kind::SUBXACT_ABORT, 0, 10)
        };
        run_counted(&mut sess, &s, &sub, &clock, &taken);
        assert_eq!(taken.get(), 5, "only the DO block's start");
        // One whose subtransaction wrote (an xid of its own) is mapped.
        let wrote = BackendEvent {
            xid: 702,
            top_xid: 703,
            ..sub
        };
        run_counted(&mut sess, &s, &wrote, &clock, &taken);
        assert_eq!(taken.get(), 6);
        assert!(s.borrow().xid_scope(702).is_some());
    }

    #[test]
    fn a_transaction_begun_inside_a_call_is_admitted_again() {
        let s = RefCell::new(Shared::zeroed());
        s.borrow_mut()
            .load_policies(&[policy("reject")], 0)
            .unwrap();
        let clock = Cell::new(1_000_000);
        let mut sess = Session::default();
        let call = BackendEvent {
            statement: WalkerStatementKind::UTILITY,
            command: "CALL",
            ..event(Kind::STATEMENT_START, 0, 0)
        };
        let nested = |kind, xid| BackendEvent {
            nesting_level: 1,
            ..event(kind, xid, 0)
        };
        assert_eq!(
            run(&mut sess, &s, &call, &clock, None),
            walker_abi::Admission::Proceed
        );
        // Inside the CALL: nested statements of the first transaction are not asked.
        assert!(!sess.wants(&nested(Kind::STATEMENT_START, 0)));
        run(&mut sess, &s, &nested(Kind::PRE_COMMIT, 800), &clock, None);
        assert!(sess.published.is_empty());
        // The walker charges the committed transaction: in debt.
        s.borrow_mut().policies[0].bucket.charge(50_000);
        // A read in the new transaction passes and leaves the admission pending ...
        let read = BackendEvent {
            nesting_level: 1,
            ..select(Kind::STATEMENT_START, 1, 0)
        };
        assert_eq!(
            run(&mut sess, &s, &read, &clock, None),
            walker_abi::Admission::Proceed
        );
        // ... for its first write, which is refused.
        assert!(sess.wants(&nested(Kind::STATEMENT_START, 0)));
        assert!(matches!(
            run(
                &mut sess,
                &s,
                &nested(Kind::STATEMENT_START, 0),
                &clock,
                None
            ),
            walker_abi::Admission::Reject(_)
        ));
    }

    #[test]
    fn session_resets_clear_the_tenant() {
        for reset in [WalkerSessionReset::ALL, WalkerSessionReset::AUTHORIZATION] {
            let mut sess = Session {
                tenant: "acme".into(),
                ..Session::default()
            };
            let start = event(Kind::STATEMENT_START, 0, 0);
            sess.observe(&start);
            assert_eq!(sess.role.as_ref().map(|r| r.1.as_str()), Some("writer"));
            // At the start nothing changes: the statement may still fail.
            sess.observe(&BackendEvent {
                session_reset: reset,
                ..start
            });
            assert_eq!(sess.tenant, "acme");
            sess.observe(&BackendEvent {
                session_reset: reset,
                ..event(Kind::STATEMENT_END, 0, 0)
            });
            assert_eq!(sess.tenant, "", "{reset:?}");
        }
    }

    #[test]
    fn a_session_without_a_scope_slot_is_still_governed_and_its_bucket_charged() {
        let s = RefCell::new(Shared::zeroed());
        s.borrow_mut()
            .load_policies(&[policy("reject")], 0)
            .unwrap();
        // Role 10 ("writer") holds its bound of scopes, each with a mapped
        // transaction: none can be evicted for its new application name.
        {
            let mut sh = s.borrow_mut();
            for n in 0..crate::shm::MAX_SCOPES_PER_ROLE as u32 {
                let k = SessionKey {
                    role: 10,
                    role_name: "writer".into(),
                    database: 5,
                    database_name: "db".into(),
                    application: format!("busy{n}"),
                    ..SessionKey::default()
                };
                let i = sh.scope(Origin::Session, &k).unwrap();
                assert!(sh.map_xid(10_000 + n, i, 0));
            }
        }
        let clock = Cell::new(1_000_000);
        let mut sess = Session::default();
        let a = run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            None,
        );
        assert_eq!(a, walker_abi::Admission::Proceed);
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_END, 800, 0),
            &clock,
            None,
        );
        let m = s.borrow().xid_entry(800).unwrap();
        assert_eq!(
            s.borrow().scopes[m.scope as usize].origin(),
            Origin::Evicted
        );
        assert_eq!(s.borrow().counters.scopes_full, 2);
        // The walker side charges the transaction through the map's policy.
        let t = crate::shm::Totals {
            records: 1,
            bytes: 5000,
            fpi_bytes: 0,
        };
        s.borrow_mut()
            .charge(m.scope, Some(&m), &t, 1, 1_000_000, true);
        assert_eq!(s.borrow().policies[0].charged.bytes, 5000);
        // In debt (2000 - 5000): the next statement is refused.
        match run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 0),
            &clock,
            None,
        ) {
            walker_abi::Admission::Reject(r) => {
                assert!(r.detail.contains("application \"app\""), "{}", r.detail)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn xidless_wal_of_a_session_without_a_scope_slot_reaches_its_policy() {
        let s = RefCell::new(Shared::zeroed());
        s.borrow_mut()
            .load_policies(&[policy("observe")], 0)
            .unwrap();
        {
            let mut sh = s.borrow_mut();
            for n in 0..crate::shm::MAX_SCOPES_PER_ROLE as u32 {
                let k = SessionKey {
                    role: 10,
                    role_name: "writer".into(),
                    database: 5,
                    database_name: "db".into(),
                    application: format!("busy{n}"),
                    ..SessionKey::default()
                };
                let i = sh.scope(Origin::Session, &k).unwrap();
                assert!(sh.map_xid(10_000 + n, i, 0));
            }
        }
        let clock = Cell::new(1_000_000);
        let mut sess = Session::default();
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_START, 0, 100),
            &clock,
            None,
        );
        // 700 bytes without a transaction id (a logical message): claimed.
        run(
            &mut sess,
            &s,
            &event(Kind::STATEMENT_END, 0, 800),
            &clock,
            None,
        );
        let sh = s.borrow();
        assert_eq!(sh.policies[0].charged.bytes, 700);
        let ev = sh
            .scopes
            .iter()
            .find(|x| x.origin() == Origin::Evicted)
            .unwrap();
        assert_eq!(ev.totals.bytes, 700);
    }
}

//! The budget's shared memory: fixed-size tables that backends and the walker side
//! both use, under the host's region lock. Plain `#[repr(C)]` data, valid at all-zero
//! bytes; every operation is plain Rust, so the tables are unit-tested without a
//! server.
//!
//! The fixed part is the [`Header`]; the scopes (with their index and role slots), the
//! profiles and the decisions are tables after it whose lengths are settings
//! ([`crate::capacity`]). [`Shared`] (exclusive) and [`SharedRef`] (shared) view both.
//!
//! - `scopes`: who wrote WAL (tenant, role, database, application, or a background,
//!   cluster, unattributed or evicted scope) with their exact totals, found through a
//!   hash index and evicted least-recently-used (see [`crate::scope_table`]).
//! - `xids`: top-level transaction id → scope (and the policy that governed the
//!   session), published by the backend that owns the transaction, removed when the
//!   walker side reads its commit or abort record.
//! - `policies`: the loaded policies with their token buckets and counters.
//! - `dbs`, `rels`, `rmgrs`: totals per database, relation and resource manager.
//! - `profiles`: each query id's (and statement class's) typical WAL per statement.
//! - `decisions`: a ring of the latest admission decisions.

use crate::bucket::{Action, Bucket};
pub use crate::capacity::Capacities;
use crate::policy::{Mode, Policy, PolicyError, ScopeKind, Who, NAME_BYTES};
use crate::probe::{self, Look, Probe};
use std::ops::{Deref, DerefMut};

/// Session scopes one role keeps at most, whatever `budget.max_scopes` (a role keeps an
/// eighth of the scopes up to this, see [`Capacities::per_role`]): its next new scope
/// evicts its own least recently used one, so no role can push other roles' scopes out.
pub const MAX_SCOPES_PER_ROLE: usize = 128;
/// Scopes looked at from the least recently used end for one that can be evicted
/// (a scope with transactions in the transaction map cannot be).
pub const EVICT_PROBES: usize = 32;
/// Transactions in flight that can be mapped at once.
pub const MAX_XIDS: usize = 8192;
/// Policies loaded at once.
/// Databases with totals.
pub const MAX_DBS: usize = 256;
/// Relations with totals (more are counted in `other_relations`).
pub const MAX_RELS: usize = 8192;
/// Parts of a composite policy.
pub const MAX_CONDITIONS: usize = 4;
/// Weight of a new sample in a profile's moving average (`budget.ewma_alpha`'s default).
pub const EWMA_ALPHA: f64 = 0.3;

/// A short string in shared memory.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Name {
    len: u32,
    bytes: [u8; NAME_BYTES],
}

impl Default for Name {
    fn default() -> Self {
        Name {
            len: 0,
            bytes: [0; NAME_BYTES],
        }
    }
}

impl Name {
    /// Keeps up to [`NAME_BYTES`] bytes of `s`, cut at a character boundary.
    pub fn new(s: &str) -> Name {
        let mut out = Name::default();
        out.len = walker_abi::text::copy_cut(&mut out.bytes, s) as u32;
        out
    }

    /// The stored bytes (valid UTF-8: [`Name::new`] cuts at a character boundary).
    fn stored(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(NAME_BYTES)]
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        let n = (self.len as usize).min(NAME_BYTES);
        std::str::from_utf8(&self.bytes[..n]).unwrap_or("")
    }
}

impl PartialEq for Name {
    fn eq(&self, o: &Name) -> bool {
        // The bytes, without validating them as text on every comparison (scopes are
        // looked up by name at each admission).
        self.stored() == o.stored()
    }
}

/// Where a scope's WAL comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Origin {
    /// Transactions of sessions (and workers) that published their scope.
    Session = 1,
    /// Records without a transaction id in one database: pruning, hint-bit page
    /// images, vacuum, index cleanup.
    Background = 2,
    /// Records without a transaction id and without a database: checkpoints,
    /// running-transaction snapshots, shared catalogs, WAL switches.
    Cluster = 3,
    /// Transactions no backend published (begun before walker was loaded, in a
    /// process that crashed, or while the transaction map was full), by database.
    Unattributed = 4,
    /// The folded totals of session scopes evicted from a full scope table, by
    /// database (and sessions that found no place at all).
    Evicted = 5,
}

impl Origin {
    /// Its name in views.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Session => "session",
            Origin::Background => "background",
            Origin::Cluster => "cluster",
            Origin::Unattributed => "unattributed",
            Origin::Evicted => "evicted",
        }
    }

    /// From its stored number (an unknown one reads as a session).
    pub fn from_u32(v: u32) -> Origin {
        match v {
            2 => Origin::Background,
            3 => Origin::Cluster,
            4 => Origin::Unattributed,
            5 => Origin::Evicted,
            _ => Origin::Session,
        }
    }
}

/// Records, bytes and full-page-image bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Records.
    pub records: u64,
    /// Bytes (`xl_tot_len`, images included).
    pub bytes: u64,
    /// Bytes of full-page images.
    pub fpi_bytes: u64,
}

impl Totals {
    /// Adds one record.
    pub fn add_record(&mut self, bytes: u64, fpi: u64) {
        self.records = self.records.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes);
        self.fpi_bytes = self.fpi_bytes.saturating_add(fpi);
    }

    /// As `[records, bytes, fpi_bytes]` (the snapshot form).
    pub fn to_array(&self) -> [u64; 3] {
        [self.records, self.bytes, self.fpi_bytes]
    }

    /// From `[records, bytes, fpi_bytes]`.
    pub fn from_array(a: [u64; 3]) -> Totals {
        Totals {
            records: a[0],
            bytes: a[1],
            fpi_bytes: a[2],
        }
    }

    /// Adds other totals.
    pub fn add(&mut self, o: &Totals) {
        self.records = self.records.saturating_add(o.records);
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.fpi_bytes = self.fpi_bytes.saturating_add(o.fpi_bytes);
    }
}

/// One scope.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Scope {
    /// 0: free slot; else an [`Origin`].
    pub origin: u32,
    /// Database OID (0 for the cluster scope).
    pub database: u32,
    /// Role OID (sessions).
    pub role: u32,
    /// Tenant (sessions).
    pub tenant: Name,
    /// Role name.
    pub role_name: Name,
    /// Database name (sessions).
    pub database_name: Name,
    /// `application_name` (sessions).
    pub application: Name,
    /// WAL charged.
    pub totals: Totals,
    /// Transactions charged (commit or abort records read).
    pub transactions: u64,
    /// Index of the governing policy + 1 (0: none), valid for `policy_gen`.
    pub policy: u32,
    /// The policy generation `policy` was chosen for.
    pub policy_gen: u64,
    /// Last charge or admission (microseconds).
    pub last_micros: i64,
    /// Hash of what identifies the scope (its place in the index).
    pub hash: u64,
    /// Changes each time the slot gets a new scope (so caches of an index notice).
    pub gen: u32,
    /// Entries of the transaction map pointing here (such a scope is not evicted).
    pub xids: u32,
    /// Neighbour more recently used (index + 1; 0: none), session scopes only.
    pub lru_prev: u32,
    /// Neighbour less recently used (index + 1; 0: none).
    pub lru_next: u32,
    /// The same two links among the role's own session scopes.
    pub role_prev: u32,
    /// See `role_prev`.
    pub role_next: u32,
    /// `totals.bytes` when the history last sampled it ([`Shared::sample_history`]).
    pub sampled_bytes: u64,
}

impl Scope {
    /// The scope's origin.
    pub fn origin(&self) -> Origin {
        Origin::from_u32(self.origin)
    }

    /// What policies match on.
    pub fn who(&self) -> Who {
        Who {
            tenant: self.tenant.as_str().to_string(),
            role: self.role_name.as_str().to_string(),
            database: self.database_name.as_str().to_string(),
            application: self.application.as_str().to_string(),
        }
    }
}

/// A session scope as a backend describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionKey {
    /// Tenant.
    pub tenant: String,
    /// Role OID.
    pub role: u32,
    /// Role name.
    pub role_name: String,
    /// Database OID.
    pub database: u32,
    /// Database name.
    pub database_name: String,
    /// `application_name`.
    pub application: String,
}

impl SessionKey {
    /// What policies match on.
    pub fn who(&self) -> Who {
        Who {
            tenant: self.tenant.clone(),
            role: self.role_name.clone(),
            database: self.database_name.clone(),
            application: self.application.clone(),
        }
    }
}

/// One mapped transaction.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct XidEntry {
    /// Transaction id (0: free).
    pub xid: u32,
    /// Scope index.
    pub scope: u32,
    /// The query id of the statement that published it.
    pub query_id: u64,
    /// Index + 1 of the policy that governed the session when it published (0: none),
    /// valid for `policy_gen`; charged when `scope` is not a session scope (the session
    /// found no place in the scope table).
    pub policy: u32,
    /// The policy generation `policy` belongs to.
    pub policy_gen: u64,
    /// 0 while the transaction runs; once the walker side read its end, the end of
    /// the last record read then (the entry stays until a snapshot covers it, so
    /// records read again after a worker restart find their scope).
    pub ended_lsn: u64,
}

/// A role with session scopes: how many, and the ends of their recency list.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct RoleSlot {
    /// 1 when used.
    pub used: u32,
    /// Role OID.
    pub role: u32,
    /// Session scopes of the role.
    pub count: u32,
    /// Its most recently used scope (index + 1).
    pub head: u32,
    /// Its least recently used scope (index + 1).
    pub tail: u32,
}

/// Statements counted per admission [`Action`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActionCounts {
    /// [`Action::Unlimited`].
    pub unlimited: u64,
    /// [`Action::Admit`].
    pub admit: u64,
    /// [`Action::ObserveOver`].
    pub observe_over: u64,
    /// [`Action::ShadowBlock`].
    pub shadow_block: u64,
    /// [`Action::Queue`].
    pub queue: u64,
    /// [`Action::Reject`].
    pub reject: u64,
    /// [`Action::Queued`].
    pub queued: u64,
    /// [`Action::QueueTimeout`].
    pub queue_timeout: u64,
    /// [`Action::Cancelled`].
    pub cancelled: u64,
    /// [`Action::FailOpen`].
    pub fail_open: u64,
}

impl ActionCounts {
    /// Statements counted with action `a`.
    pub fn get(&self, a: Action) -> u64 {
        match a {
            Action::Unlimited => self.unlimited,
            Action::Admit => self.admit,
            Action::ObserveOver => self.observe_over,
            Action::ShadowBlock => self.shadow_block,
            Action::Queue => self.queue,
            Action::Reject => self.reject,
            Action::Queued => self.queued,
            Action::QueueTimeout => self.queue_timeout,
            Action::Cancelled => self.cancelled,
            Action::FailOpen => self.fail_open,
        }
    }

    /// Counts one statement with action `a`.
    pub fn count(&mut self, a: Action) {
        let n = match a {
            Action::Unlimited => &mut self.unlimited,
            Action::Admit => &mut self.admit,
            Action::ObserveOver => &mut self.observe_over,
            Action::ShadowBlock => &mut self.shadow_block,
            Action::Queue => &mut self.queue,
            Action::Reject => &mut self.reject,
            Action::Queued => &mut self.queued,
            Action::QueueTimeout => &mut self.queue_timeout,
            Action::Cancelled => &mut self.cancelled,
            Action::FailOpen => &mut self.fail_open,
        };
        *n = n.saturating_add(1);
    }
}

/// A loaded policy with its bucket and counters.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct PolicySlot {
    /// Policy id.
    pub id: i64,
    /// [`ScopeKind`] number.
    pub kind: u32,
    /// [`Mode`] number.
    pub mode: u32,
    /// Priority.
    pub priority: i32,
    /// 1 when enabled.
    pub enabled: u32,
    /// Bytes per second.
    pub rate: i64,
    /// Bucket size.
    pub burst: i64,
    /// Scope value as written.
    pub value: Name,
    /// Conditions in use.
    pub n_conditions: u32,
    /// Condition kinds ([`ScopeKind`] numbers).
    pub condition_kinds: [u32; MAX_CONDITIONS],
    /// Condition values.
    pub condition_values: [Name; MAX_CONDITIONS],
    /// The token bucket.
    pub bucket: Bucket,
    /// WAL charged to it from the stream.
    pub charged: Totals,
    /// Statements counted per [`Action`].
    pub actions: ActionCounts,
    /// Milliseconds statements waited.
    pub waited_ms: u64,
}

impl PolicySlot {
    fn from_policy(p: &Policy) -> PolicySlot {
        let mut s = PolicySlot {
            id: p.id,
            kind: p.kind as u32,
            mode: p.mode as u32,
            priority: p.priority,
            enabled: p.enabled as u32,
            rate: p.rate,
            burst: p.burst,
            value: Name::new(&p.value),
            ..PolicySlot::default()
        };
        for (i, (k, v)) in p.conditions.iter().take(MAX_CONDITIONS).enumerate() {
            s.condition_kinds[i] = *k as u32;
            s.condition_values[i] = Name::new(v);
            s.n_conditions = i as u32 + 1;
        }
        s
    }

    /// The policy back.
    pub fn policy(&self) -> Policy {
        let kind = ScopeKind::from_u32(self.kind).unwrap_or(ScopeKind::Tenant);
        Policy {
            id: self.id,
            kind,
            value: self.value.as_str().to_string(),
            conditions: (0..self.n_conditions as usize)
                .map(|i| {
                    (
                        ScopeKind::from_u32(self.condition_kinds[i]).unwrap_or(ScopeKind::Tenant),
                        self.condition_values[i].as_str().to_string(),
                    )
                })
                .collect(),
            rate: self.rate,
            burst: self.burst,
            mode: Mode::from_u32(self.mode).unwrap_or(Mode::Observe),
            priority: self.priority,
            enabled: self.enabled != 0,
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        Mode::from_u32(self.mode).unwrap_or(Mode::Observe)
    }
}

/// Totals of one database.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct DbEntry {
    /// 1 when used.
    pub used: u32,
    /// OID.
    pub oid: u32,
    /// Totals.
    pub totals: Totals,
}

/// Totals of one relation.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct RelEntry {
    /// 1 when used.
    pub used: u32,
    /// Tablespace.
    pub ts: u32,
    /// Database.
    pub db: u32,
    /// Relation file number.
    pub rel: u32,
    /// Totals.
    pub totals: Totals,
}

/// Statement classes profiles fall back to.
pub const CLASSES: usize = 8;

/// A query's (or a class's) WAL per statement.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Profile {
    /// 1 when used.
    pub used: u32,
    /// Statement class (the host's statement kind).
    pub class: u32,
    /// Query id (0 for a class profile).
    pub query_id: u64,
    /// Scope index + 1 (0: every scope).
    pub scope: u32,
    /// Who that scope was when the profile was made ([`Shared::scope_tag`]; 0 for
    /// every scope): a slot given to another scope does not inherit its profiles.
    pub scope_tag: u64,
    /// Statements measured.
    pub count: u64,
    /// Moving average of WAL bytes per statement.
    pub avg_bytes: f64,
    /// Largest seen.
    pub max_bytes: u64,
    /// Last update.
    pub last_micros: i64,
}

/// One admission decision.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Decision {
    /// When.
    pub at_micros: i64,
    /// Backend process id.
    pub pid: i32,
    /// [`Action`] number.
    pub action: u32,
    /// Policy id (0: none).
    pub policy_id: i64,
    /// Scope index.
    pub scope: u32,
    /// Query id.
    pub query_id: u64,
    /// Predicted bytes.
    pub predicted: i64,
    /// Tokens free at the decision.
    pub tokens: i64,
    /// Milliseconds waited (queue) or that it would have waited.
    pub wait_ms: i64,
}

/// Counters of the whole plugin.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Counters {
    /// Every record read.
    pub total: Totals,
    /// Bytes of records of transactions not yet ended (charged to a scope at the end).
    pub pending_bytes: u64,
    /// Statements that reached admission.
    pub statements: u64,
    /// Statements counted per [`Action`].
    pub actions: ActionCounts,
    /// Transactions that could not be mapped (map full).
    pub xid_map_full: u64,
    /// Scope lookups of sessions that found no slot (every candidate for eviction
    /// had transactions in the map): charged to their database's evicted scope,
    /// still governed by their policy.
    pub scopes_full: u64,
    /// Session scopes evicted (their totals folded into the evicted scopes).
    pub scopes_evicted: u64,
    /// Records of transactions the walker side could not hold as pending (its table
    /// was full): charged at once to their database's unattributed scope.
    pub pending_full: u64,
    /// Ended transactions settled before their grace ran out because the queue of
    /// ended transactions was full.
    pub ended_full: u64,
    /// Internal failures at admission (then fail open or closed).
    pub failures: u64,
    /// Policy loads.
    pub policy_loads: u64,
    /// Transactions charged to the unattributed scopes.
    pub unattributed_transactions: u64,
    /// Milliseconds statements waited in queue mode.
    pub waited_ms: u64,
    /// WAL without a transaction id that client backends charged to their own scopes
    /// (records, bytes): see `claim.rs`.
    pub claimed: Totals,
    /// Of `claimed`, what the walker side has not yet taken out of the records without
    /// a transaction id it reads (records, bytes).
    pub claim_owed: Totals,
}

/// Samples the history keeps (one per `budget.history_interval`; the oldest goes).
pub const HISTORY_SAMPLES: usize = 60;
/// Scopes one sample names: the largest writers of its interval.
pub const HISTORY_SCOPES: usize = 8;

/// One scope's WAL in a sampled interval.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Scope index + 1 (0: an unused entry).
    pub scope: u32,
    /// The scope slot's [`Scope::gen`] then (a slot given to another scope since no
    /// longer names it).
    pub gen: u32,
    /// WAL bytes charged to it in the interval.
    pub bytes: u64,
}

/// WAL per scope over one interval, ending at `at_micros`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistorySample {
    /// End of the interval (0: an unused sample).
    pub at_micros: i64,
    /// Every record before it was counted.
    pub as_of_lsn: u64,
    /// WAL bytes charged to all scopes in the interval.
    pub bytes: u64,
    /// The largest writers of the interval, most first.
    pub top: [HistoryEntry; HISTORY_SCOPES],
}

/// The fixed part of the region, before the tables.
#[repr(C)]
pub struct Header {
    /// The tables' lengths, set at `shmem_init` from the settings (all zero: the
    /// region was never initialised).
    pub capacity: Capacities,
    /// Changes whenever policies are loaded.
    pub policy_gen: u64,
    /// 1 once policies were loaded since the server started.
    pub policies_loaded: u32,
    /// When they were loaded.
    pub policies_loaded_at: i64,
    /// Transactions that announced a policy change no load has covered yet (see
    /// [`crate::changes`]); the walker side loads the table while any is listed.
    pub pending_changes: crate::changes::Pending,
    /// `xmax` of the snapshot of the last load (an older snapshot's load is skipped).
    pub loaded_xmax: u64,
    /// How statements are predicted (the backend that locks the region last wrote its
    /// settings here; all-zero means the defaults).
    pub predictor: crate::predict::Config,
    /// Policies in use (the first `n_policies` slots of the policy table).
    pub n_policies: u32,
    /// Slots of `scopes` ever used (slots below it are in use).
    pub scopes_used: u32,
    /// Most recently used session scope (index + 1; 0: none).
    pub lru_head: u32,
    /// Least recently used session scope (index + 1; 0: none).
    pub lru_tail: u32,
    /// Transactions → scope (open addressing, linear probing).
    pub xids: [XidEntry; MAX_XIDS],
    /// Entries in the map (running and ended ones).
    pub n_xids: u32,
    /// Entries of ended transactions kept until a snapshot covers them.
    pub n_ended_xids: u32,
    /// Ended entries in the order they ended (a ring; `ended_head..ended_tail`).
    pub ended_ring: [u32; MAX_XIDS],
    /// Ended entries ever queued (the next goes to `ended_tail % MAX_XIDS`).
    pub ended_tail: u64,
    /// Ended entries ever taken out of the ring.
    pub ended_head: u64,
    /// Databases.
    pub dbs: [DbEntry; MAX_DBS],
    /// Relations (open addressing).
    pub rels: [RelEntry; MAX_RELS],
    /// Records of relations that did not fit in `rels`.
    pub other_relations: Totals,
    /// Records without a block reference (not in `dbs` or `rels`).
    pub no_relation: Totals,
    /// Per resource manager.
    pub rmgrs: [Totals; 256],
    /// Decisions ever written (the next goes to `next % decisions.len()`).
    pub next_decision: u64,
    /// Counters.
    pub counters: Counters,
    /// End of the last record read: every total reflects exactly the records before it.
    pub as_of_lsn: u64,
    /// End of the last record whose charges reached the policy buckets: records up to
    /// it that the walker side reads again (after its worker restarted on an error)
    /// are charged to scopes' totals (restored from a snapshot) but not to buckets.
    pub charged_lsn: u64,
    /// When the totals were last reset.
    pub reset_at: i64,
    /// WAL per scope over time: the last [`HISTORY_SAMPLES`] intervals (a ring).
    pub history: [HistorySample; HISTORY_SAMPLES],
    /// Samples ever written (the next goes to `history_written % HISTORY_SAMPLES`).
    pub history_written: u64,
    /// When the next sample is due (0: not started; the first call starts it).
    pub history_due: i64,
}

// SAFETY: repr(C), plain numbers and byte arrays only; all-zero bytes are valid (empty
// tables, zero counters).
unsafe impl walker_abi::SharedState for Header {}

// SAFETY: repr(C), plain integers, floats and byte arrays: every byte pattern is a
// valid value.
unsafe impl walker_abi::SharedState for Scope {}
// SAFETY: as above.
unsafe impl walker_abi::SharedTable for Scope {}
// SAFETY: as above.
unsafe impl walker_abi::SharedState for RoleSlot {}
// SAFETY: as above.
unsafe impl walker_abi::SharedTable for RoleSlot {}
// SAFETY: as above.
unsafe impl walker_abi::SharedState for Profile {}
// SAFETY: as above.
unsafe impl walker_abi::SharedTable for Profile {}
// SAFETY: as above.
unsafe impl walker_abi::SharedState for Decision {}
// SAFETY: as above.
unsafe impl walker_abi::SharedTable for Decision {}
// SAFETY: as above.
unsafe impl walker_abi::SharedState for PolicySlot {}
// SAFETY: as above.
unsafe impl walker_abi::SharedTable for PolicySlot {}

/// The region under the exclusive lock: the header and the tables.
pub struct Shared<'a> {
    /// The fixed part (its fields read through `Deref`).
    pub head: &'a mut Header,
    /// Scopes.
    pub scopes: &'a mut [Scope],
    /// Scope index + 1 by hash (open addressing, linear probing; 0: empty).
    pub scope_index: &'a mut [u32],
    /// Roles with session scopes (open addressing by role OID).
    pub roles: &'a mut [RoleSlot],
    /// Profiles (open addressing).
    pub profiles: &'a mut [Profile],
    /// Decision ring.
    pub decisions: &'a mut [Decision],
    /// Policies with their buckets (`n_policies` in use).
    pub policies: &'a mut [PolicySlot],
}

/// The region under the shared lock.
pub struct SharedRef<'a> {
    /// The fixed part.
    pub head: &'a Header,
    /// Scopes.
    pub scopes: &'a [Scope],
    /// Scope index.
    pub scope_index: &'a [u32],
    /// Roles with session scopes.
    pub roles: &'a [RoleSlot],
    /// Profiles.
    pub profiles: &'a [Profile],
    /// Decision ring.
    pub decisions: &'a [Decision],
    /// Policies with their buckets.
    pub policies: &'a [PolicySlot],
}

impl Deref for Shared<'_> {
    type Target = Header;
    fn deref(&self) -> &Header {
        self.head
    }
}

impl DerefMut for Shared<'_> {
    fn deref_mut(&mut self) -> &mut Header {
        self.head
    }
}

impl Deref for SharedRef<'_> {
    type Target = Header;
    fn deref(&self) -> &Header {
        self.head
    }
}

/// The error when the header's capacities are not the ones a region was laid out for.
fn uninitialised(c: &Capacities) -> walker_abi::PluginError {
    walker_abi::PluginError::new(format!(
        "budget's shared memory holds no valid capacities ({c:?}): it was not initialised at server start; is budget in walker.plugins with walker in shared_preload_libraries?"
    ))
}

impl Header {
    /// Running transactions in the map (ended ones kept for a replay not counted).
    pub fn running_xids(&self) -> u32 {
        self.n_xids.saturating_sub(self.n_ended_xids)
    }
}

/// Builds `$view` (the exclusive [`Shared`] or the shared [`SharedRef`]) from the header
/// and the tail of tables after it: one list of the tables, in the order
/// [`Capacities::size`] lays them out, with the lengths the header holds.
macro_rules! carve_tables {
    ($view:ident, $head:ident, $t:ident) => {{
        let c = $head.capacity;
        if !c.valid() {
            return Err(uninitialised(&c));
        }
        Ok($view {
            scopes: $t.take(c.scopes as usize)?,
            scope_index: $t.take(c.scope_index())?,
            roles: $t.take(c.role_slots())?,
            profiles: $t.take(c.profiles as usize)?,
            decisions: $t.take(c.decisions as usize)?,
            policies: $t.take(c.policies as usize)?,
            $head,
        })
    }};
}

impl<'a> Shared<'a> {
    /// Takes the tables from the tail after `head`, with the lengths stored in it.
    pub fn carve(
        head: &'a mut Header,
        mut t: walker_abi::Tables<'a>,
    ) -> walker_abi::PluginResult<Shared<'a>> {
        carve_tables!(Shared, head, t)
    }

    /// The same tables, read-only.
    pub fn view(&self) -> SharedRef<'_> {
        SharedRef {
            head: self.head,
            scopes: self.scopes,
            scope_index: self.scope_index,
            roles: self.roles,
            profiles: self.profiles,
            decisions: self.decisions,
            policies: self.policies,
        }
    }

    /// An empty region of `c`, as the host hands it over after `shmem_init` (for
    /// tests; the memory is leaked).
    #[cfg(test)]
    pub fn zeroed_with(c: Capacities) -> Box<Shared<'static>> {
        // SAFETY: all-zero bytes are a valid `Header` (see the SharedState impl).
        let head: &'static mut Header = Box::leak(unsafe { Box::new_zeroed().assume_init() });
        head.capacity = c;
        fn table<T: Default + Clone>(n: usize) -> &'static mut [T] {
            Box::leak(vec![T::default(); n].into_boxed_slice())
        }
        Box::new(Shared {
            head,
            scopes: table(c.scopes as usize),
            scope_index: table(c.scope_index()),
            roles: table(c.role_slots()),
            profiles: table(c.profiles as usize),
            decisions: table(c.decisions as usize),
            policies: table(c.policies as usize),
        })
    }

    /// An empty region of the default capacities (for tests).
    #[cfg(test)]
    pub fn zeroed() -> Box<Shared<'static>> {
        Shared::zeroed_with(Capacities::DEFAULT)
    }
}

impl<'a> SharedRef<'a> {
    /// Takes the tables from the tail after `head`, with the lengths stored in it.
    pub fn carve(
        head: &'a Header,
        mut t: walker_abi::TablesRef<'a>,
    ) -> walker_abi::PluginResult<SharedRef<'a>> {
        carve_tables!(SharedRef, head, t)
    }
}

/// Runs `f` on the region under the exclusive lock.
pub fn exclusive<R>(
    host: &walker_abi::Host,
    f: impl FnOnce(&mut Shared<'_>) -> R,
) -> walker_abi::PluginResult<R> {
    host.with_exclusive_tables::<Header, _>(|h, t| Shared::carve(h, t).map(|mut s| f(&mut s)))?
}

/// Runs `f` on the region under the shared lock.
pub fn shared<R>(
    host: &walker_abi::Host,
    f: impl FnOnce(&SharedRef<'_>) -> R,
) -> walker_abi::PluginResult<R> {
    host.with_shared_tables::<Header, _>(|h, t| SharedRef::carve(h, t).map(|s| f(&s)))?
}

/// Slots a profile lookup looks at from its home: when all are taken, the least
/// recently updated of them gives its place.
const PROFILE_PROBES: usize = 64;

/// The hash of a profile's key.
fn profile_hash(class: u32, query_id: u64, scope: u32) -> u64 {
    mix(query_id ^ ((class as u64) << 56) ^ ((scope as u64) << 24))
}

pub(crate) fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// True when transaction id `a` is older than `b` (modulo-2^32 comparison, as the
/// server compares normal xids).
pub fn xid_precedes(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Shared<'_> {
    /// The scope for records without a transaction: background of `database`, or the
    /// cluster scope for database 0. Falls back to scope 0 when full.
    pub fn background_scope(&mut self, database: u32) -> u32 {
        let origin = if database == 0 {
            Origin::Cluster
        } else {
            Origin::Background
        };
        self.scope_or_any(origin, database)
    }

    /// The unattributed scope of `database`.
    pub fn unattributed_scope(&mut self, database: u32) -> u32 {
        self.scope_or_any(Origin::Unattributed, database)
    }

    /// Counts a transaction no backend published and returns the unattributed scope
    /// of `database` it is charged to.
    pub fn unattributed_transaction(&mut self, database: u32) -> u32 {
        self.counters.unattributed_transactions =
            self.counters.unattributed_transactions.saturating_add(1);
        self.unattributed_scope(database)
    }

    /// The evicted scope of `database` (also where a session that finds no slot is
    /// charged).
    pub fn evicted_scope(&mut self, database: u32) -> u32 {
        self.scope_or_any(Origin::Evicted, database)
    }

    fn scope_or_any(&mut self, origin: Origin, database: u32) -> u32 {
        let key = SessionKey {
            database,
            ..SessionKey::default()
        };
        match self.scope(origin, &key) {
            Some(i) => i,
            None => {
                self.counters.scopes_full = self.counters.scopes_full.saturating_add(1);
                // No slot could be freed (a rare scan): charge the first scope of the
                // same origin rather than lose bytes.
                self.scopes
                    .iter()
                    .position(|s| s.origin == origin as u32)
                    .unwrap_or(0) as u32
            }
        }
    }

    fn xid_slot(&self, xid: u32) -> Probe {
        probe::find(
            &self.xids,
            probe::home(mix(xid as u64), MAX_XIDS),
            MAX_XIDS,
            |e: &XidEntry| match e.xid {
                0 => Look::Empty,
                x if x == xid => Look::Same,
                _ => Look::Other,
            },
        )
    }

    /// Maps `xid` to `scope` and the policy of that scope (a later publication of the
    /// same xid keeps the first scope). False when the map is full (kept at most 3/4
    /// full).
    pub fn map_xid(&mut self, xid: u32, scope: u32, query_id: u64) -> bool {
        let policy = self.policy_of(scope);
        self.map_xid_with(xid, scope, query_id, policy)
    }

    /// Maps `xid` to `scope`, charging `policy` (the session's, chosen by who it is)
    /// when `scope` is not a session scope of its own.
    pub fn map_xid_with(
        &mut self,
        xid: u32,
        scope: u32,
        query_id: u64,
        policy: Option<usize>,
    ) -> bool {
        if xid == 0 {
            return true;
        }
        if (self.n_xids as usize) >= MAX_XIDS * 3 / 4
            && !matches!(self.xid_slot(xid), Probe::Found(_))
        {
            // Running transactions come first: make room by dropping the entry of
            // the transaction that ended first.
            self.retire_ended_xids(0, 1);
        }
        match self.xid_slot(xid) {
            Probe::Found(_) => true,
            Probe::Vacant(i) if (self.n_xids as usize) < MAX_XIDS * 3 / 4 => {
                self.xids[i] = XidEntry {
                    xid,
                    scope,
                    query_id,
                    policy: policy.map_or(0, |p| p as u32 + 1),
                    policy_gen: self.policy_gen,
                    ended_lsn: 0,
                };
                self.n_xids += 1;
                if let Some(sc) = self.scopes.get_mut(scope as usize) {
                    sc.xids = sc.xids.saturating_add(1);
                }
                true
            }
            Probe::Vacant(_) | Probe::Full => {
                self.counters.xid_map_full = self.counters.xid_map_full.saturating_add(1);
                false
            }
        }
    }

    /// The scope and query id `xid` is mapped to.
    pub fn xid_scope(&self, xid: u32) -> Option<(u32, u64)> {
        self.xid_entry(xid).map(|e| (e.scope, e.query_id))
    }

    /// The map's entry of `xid`.
    pub fn xid_entry(&self, xid: u32) -> Option<XidEntry> {
        if xid == 0 {
            return None;
        }
        match self.xid_slot(xid) {
            Probe::Found(i) => Some(self.xids[i]),
            Probe::Vacant(_) | Probe::Full => None,
        }
    }

    /// The walker side read the end of `xid` (the last record read then ends at
    /// `lsn`): its entry stays, for records read again after a worker restart, until
    /// a snapshot covers `lsn` ([`Shared::retire_ended_xids`]) or a running
    /// transaction needs its place. The scope no longer waits for it.
    pub fn end_xid(&mut self, xid: u32, lsn: u64) {
        let Probe::Found(i) = self.xid_slot(xid) else {
            return;
        };
        if self.xids[i].ended_lsn != 0 {
            return;
        }
        if self.ended_tail.wrapping_sub(self.ended_head) >= MAX_XIDS as u64 {
            // Cannot happen (the ring has a place per map slot); stay bounded anyway.
            self.retire_ended_xids(0, 1);
        }
        self.xids[i].ended_lsn = lsn.max(1);
        let scope = self.xids[i].scope;
        if let Some(sc) = self.scopes.get_mut(scope as usize) {
            sc.xids = sc.xids.saturating_sub(1);
        }
        self.n_ended_xids = self.n_ended_xids.saturating_add(1);
        let at = (self.ended_tail % MAX_XIDS as u64) as usize;
        self.ended_ring[at] = xid;
        self.ended_tail = self.ended_tail.wrapping_add(1);
    }

    /// Removes, in the order they ended, the entries of transactions that ended at or
    /// before `through` (a snapshot covers them), and at least `min` more whatever
    /// their end; returns how many.
    pub fn retire_ended_xids(&mut self, through: u64, min: usize) -> usize {
        let mut n = 0;
        while self.ended_head != self.ended_tail {
            let xid = self.ended_ring[(self.ended_head % MAX_XIDS as u64) as usize];
            let ended = self.xid_entry(xid).map_or(0, |e| e.ended_lsn);
            if ended != 0 && ended > through && n >= min {
                break;
            }
            self.ended_head = self.ended_head.wrapping_add(1);
            if ended != 0 {
                self.unmap_xid(xid);
                n += 1;
            }
        }
        n
    }

    /// Removes `xid` (backward-shift deletion keeps every probe chain intact).
    pub fn unmap_xid(&mut self, xid: u32) {
        let Probe::Found(hole) = self.xid_slot(xid) else {
            return;
        };
        let e = self.xids[hole];
        if e.ended_lsn == 0 {
            if let Some(sc) = self.scopes.get_mut(e.scope as usize) {
                sc.xids = sc.xids.saturating_sub(1);
            }
        } else {
            self.n_ended_xids = self.n_ended_xids.saturating_sub(1);
        }
        self.n_xids = self.n_xids.saturating_sub(1);
        probe::shift_delete(&mut self.xids, hole, |e| {
            (e.xid != 0).then(|| probe::home(mix(e.xid as u64), MAX_XIDS))
        });
    }

    /// Removes every mapping of a running transaction older than `oldest` (they all
    /// ended, without an end record: a crash); returns how many.
    pub fn forget_xids_before(&mut self, oldest: u32) -> usize {
        let old: Vec<u32> = self
            .xids
            .iter()
            .filter(|e| e.xid != 0 && e.ended_lsn == 0 && xid_precedes(e.xid, oldest))
            .map(|e| e.xid)
            .collect();
        for x in &old {
            self.unmap_xid(*x);
        }
        old.len()
    }

    /// Adds a record to its database and relation (the first block reference's), or
    /// to `no_relation` without one.
    pub fn add_relation_record(&mut self, rel: Option<(u32, u32, u32)>, bytes: u64, fpi: u64) {
        let Some((ts, db, relno)) = rel else {
            self.no_relation.add_record(bytes, fpi);
            return;
        };
        let mut one = Totals::default();
        one.add_record(bytes, fpi);
        self.restore_db(db, one);
        self.restore_rel(ts, db, relno, one);
    }

    /// Adds `t` to database `db` (to `other_relations` when the table is full).
    pub fn restore_db(&mut self, db: u32, t: Totals) {
        let slot = match self.dbs.iter().position(|d| d.used != 0 && d.oid == db) {
            Some(i) => Some(i),
            None => self.dbs.iter().position(|d| d.used == 0),
        };
        match slot {
            Some(i) => {
                let d = &mut self.dbs[i];
                d.used = 1;
                d.oid = db;
                d.totals.add(&t);
            }
            None => self.other_relations.add(&t),
        }
    }

    /// Adds `t` to relation (`ts`, `db`, `relno`) (to `other_relations` when its probe
    /// chain is full).
    pub fn restore_rel(&mut self, ts: u32, db: u32, relno: u32, t: Totals) {
        let h = mix(((ts as u64) << 32) ^ ((db as u64) << 16) ^ relno as u64);
        let mut i = (h as usize) % MAX_RELS;
        for _ in 0..MAX_RELS / 2 {
            let e = &mut self.rels[i];
            if e.used == 0 {
                *e = RelEntry {
                    used: 1,
                    ts,
                    db,
                    rel: relno,
                    totals: Totals::default(),
                };
            }
            if e.ts == ts && e.db == db && e.rel == relno {
                e.totals.add(&t);
                return;
            }
            i = (i + 1) % MAX_RELS;
        }
        self.other_relations.add(&t);
    }

    /// Zeroes every total the WAL stream fed (scopes, databases, relations, rmgrs,
    /// stream totals, pending bytes), for a snapshot to replace them.
    pub fn clear_totals(&mut self) {
        for s in self.scopes.iter_mut() {
            s.totals = Totals::default();
            s.transactions = 0;
            s.sampled_bytes = 0;
        }
        self.dbs = [DbEntry::default(); MAX_DBS];
        self.rels = [RelEntry::default(); MAX_RELS];
        self.other_relations = Totals::default();
        self.no_relation = Totals::default();
        self.rmgrs = [Totals::default(); 256];
        self.counters.total = Totals::default();
        self.counters.pending_bytes = 0;
        self.counters.unattributed_transactions = 0;
        self.counters.claim_owed = Totals::default();
    }

    /// Replaces the policies (keeping the bucket and counters of a policy whose id,
    /// rate and burst did not change) and starts a new generation. More policies than
    /// the table holds (`budget.max_policies`) change nothing and are refused.
    pub fn load_policies(&mut self, ps: &[Policy], now: i64) -> Result<(), PolicyError> {
        if ps.len() > self.policies.len() {
            return Err(PolicyError::TooMany {
                max: self.policies.len(),
                got: ps.len(),
            });
        }
        let old: Vec<PolicySlot> = self.policies[..self.n_policies as usize].to_vec();
        self.counters.policy_loads = self.counters.policy_loads.saturating_add(1);
        let same = self.policies_loaded != 0
            && old.len() == ps.len()
            && old.iter().zip(ps).all(|(o, p)| o.policy() == *p);
        if same {
            // A reload that changes nothing (a periodic one, or a rolled-back change)
            // keeps the generation, so reservations and cached choices stay.
            self.policies_loaded_at = now;
            return Ok(());
        }
        self.policies.fill(PolicySlot::default());
        for (i, p) in ps.iter().enumerate() {
            let mut s = PolicySlot::from_policy(p);
            if let Some(o) = old.iter().find(|o| o.id == p.id) {
                s.charged = o.charged;
                s.actions = o.actions;
                s.waited_ms = o.waited_ms;
                if o.rate == p.rate && o.burst == p.burst {
                    s.bucket = o.bucket;
                    s.bucket.reserved = 0.0;
                }
            }
            self.policies[i] = s;
        }
        self.n_policies = ps.len() as u32;
        self.policy_gen = self.policy_gen.wrapping_add(1);
        self.policies_loaded = 1;
        self.policies_loaded_at = now;
        Ok(())
    }

    /// Index of the policy governing `scope` (cached per policy generation; none
    /// without looking at the scope when no policy is loaded).
    pub fn policy_of(&mut self, scope: u32) -> Option<usize> {
        if self.n_policies == 0 {
            return None;
        }
        let gen = self.policy_gen;
        let s = self.scopes.get(scope as usize)?;
        if s.origin != Origin::Session as u32 {
            return None;
        }
        if s.policy_gen != gen || gen == 0 {
            let ps: Vec<Policy> = self.policies[..self.n_policies as usize]
                .iter()
                .map(PolicySlot::policy)
                .collect();
            let chosen = crate::policy::select(&ps, &s.who());
            let s = &mut self.scopes[scope as usize];
            s.policy = chosen.map_or(0, |i| i as u32 + 1);
            s.policy_gen = gen;
        }
        match self.scopes[scope as usize].policy {
            0 => None,
            p => Some(p as usize - 1),
        }
    }

    /// Charges `t` (already counted in the stream totals) to `scope` and its policy's
    /// bucket.
    pub fn charge_scope(&mut self, scope: u32, t: &Totals, transactions: u64, now: i64) {
        self.charge(scope, None, t, transactions, now, true);
    }

    /// Charges `t` to `scope`, and when `buckets` is true (the walker side reads the
    /// records for the first time, see `charged_lsn`) to the bucket of the scope's
    /// policy, or, for a session that found no scope of its own, to the policy its
    /// transaction map entry `via` names.
    pub fn charge(
        &mut self,
        scope: u32,
        via: Option<&XidEntry>,
        t: &Totals,
        transactions: u64,
        now: i64,
        buckets: bool,
    ) {
        let Some(s) = self.scopes.get_mut(scope as usize) else {
            return;
        };
        s.totals.add(t);
        s.transactions = s.transactions.saturating_add(transactions);
        s.last_micros = now;
        let session = s.origin == Origin::Session as u32;
        self.touch_scope(scope as usize);
        if !buckets {
            return;
        }
        let policy = if session {
            self.policy_of(scope)
        } else {
            via.filter(|e| e.policy != 0 && e.policy_gen == self.policy_gen)
                .map(|e| e.policy as usize - 1)
        };
        if let Some(p) = policy {
            self.charge_policy(p, t, now);
        }
    }

    /// Takes `t` out of policy `p`'s bucket and adds it to what the policy was charged.
    pub fn charge_policy(&mut self, p: usize, t: &Totals, now: i64) {
        let Some(slot) = self.policies.get_mut(p) else {
            return;
        };
        slot.bucket.refill(slot.rate, slot.burst, now);
        slot.bucket.charge(t.bytes);
        slot.charged.add(t);
    }

    /// The policy governing a session described by `key` whose scope is `scope`: the
    /// scope's (cached) when it is the session's own, else chosen by who it is (when
    /// the session found no slot), so a policy governs whatever the table holds.
    pub fn policy_for(&mut self, scope: u32, key: &SessionKey) -> Option<usize> {
        let own = self
            .scopes
            .get(scope as usize)
            .is_some_and(|s| s.origin == Origin::Session as u32);
        if own {
            return self.policy_of(scope);
        }
        let ps: Vec<Policy> = self.policies[..self.n_policies as usize]
            .iter()
            .map(PolicySlot::policy)
            .collect();
        crate::policy::select(&ps, &key.who())
    }

    /// Records that a statement of `class` / `query_id` by `scope` wrote `bytes`: in
    /// its own profile, its class's profile for the scope, and its class's profile
    /// for every scope (moving averages with weight `budget.ewma_alpha`).
    pub fn learn(&mut self, class: u32, query_id: u64, scope: u32, bytes: u64, now: i64) {
        let alpha = self.predictor.alpha();
        let keys = [(query_id, scope + 1), (0, scope + 1), (0, 0)];
        for (i, (q, s)) in keys.into_iter().enumerate() {
            if i == 0 && q == 0 {
                continue;
            }
            let tag = self.scope_tag(s);
            let Some(slot) = self.profile_entry(class, q, s, tag) else {
                continue;
            };
            let p = &mut self.profiles[slot];
            p.avg_bytes = if p.count == 0 {
                bytes as f64
            } else {
                p.avg_bytes + alpha * (bytes as f64 - p.avg_bytes)
            };
            p.count = p.count.saturating_add(1);
            p.max_bytes = p.max_bytes.max(bytes);
            p.last_micros = now;
        }
    }

    /// The slot of the profile for (`class`, `query_id`, `scope`) of the scope tagged
    /// `tag`: found, else added empty (over a profile of a scope that left the slot,
    /// or when the probe chain is full over its least recently used profile).
    fn profile_entry(&mut self, class: u32, query_id: u64, scope: u32, tag: u64) -> Option<usize> {
        let slot = match self.profile_slot(class, query_id, scope) {
            Probe::Found(i) if self.profiles[i].scope_tag == tag => return Some(i),
            Probe::Found(i) | Probe::Vacant(i) => i,
            Probe::Full => self.least_recent_profile(class, query_id, scope)?,
        };
        self.profiles[slot] = Profile {
            used: 1,
            class,
            query_id,
            scope,
            scope_tag: tag,
            ..Profile::default()
        };
        Some(slot)
    }

    /// The least recently updated profile of the (full) probe chain of the key.
    fn least_recent_profile(&self, class: u32, query_id: u64, scope: u32) -> Option<usize> {
        let n = self.profiles.len();
        probe::chain(
            probe::home(profile_hash(class, query_id, scope), n),
            n,
            PROFILE_PROBES,
        )
        .min_by_key(|i| self.profiles[*i].last_micros)
    }

    /// Puts back a saved profile (`scope` is the scope index + 1, 0 for every scope)
    /// unless the region already has one for the same key (learned since the server
    /// started, so newer). False when it did not fit.
    pub fn restore_profile(&mut self, p: &Profile) -> bool {
        let tag = self.scope_tag(p.scope);
        if matches!(self.profile_slot(p.class, p.query_id, p.scope), Probe::Found(i) if self.profiles[i].scope_tag == tag)
        {
            return true;
        }
        match self.profile_slot(p.class, p.query_id, p.scope) {
            Probe::Found(i) | Probe::Vacant(i) => {
                self.profiles[i] = Profile {
                    used: 1,
                    scope_tag: tag,
                    ..*p
                };
                true
            }
            Probe::Full => false,
        }
    }

    /// Appends a decision to the ring and counts it.
    pub fn record_decision(&mut self, d: Decision, policy: Option<usize>) {
        let i = (self.next_decision % self.decisions.len() as u64) as usize;
        self.decisions[i] = d;
        self.next_decision = self.next_decision.wrapping_add(1);
        if let Some(a) = Action::from_u32(d.action) {
            self.counters.actions.count(a);
            if let Some(p) = policy {
                self.policies[p].actions.count(a);
            }
        }
        if d.action == Action::Queued as u32 || d.action == Action::QueueTimeout as u32 {
            let w = d.wait_ms.max(0) as u64;
            self.counters.waited_ms = self.counters.waited_ms.saturating_add(w);
            if let Some(p) = policy {
                self.policies[p].waited_ms = self.policies[p].waited_ms.saturating_add(w);
            }
        }
    }

    /// Ends the interval when it is due (`interval_us` after the last sample): its
    /// WAL per scope (what each scope's total grew by since the last sample), the
    /// [`HISTORY_SCOPES`] largest named, goes into the history. The first call only
    /// starts the first interval.
    pub fn sample_history(&mut self, now: i64, interval_us: i64) {
        let interval_us = interval_us.max(1);
        if self.history_due != 0 && now < self.history_due {
            return;
        }
        let mut sample = HistorySample {
            at_micros: now,
            as_of_lsn: self.as_of_lsn,
            ..HistorySample::default()
        };
        let mut top: Vec<HistoryEntry> = Vec::new();
        for (i, sc) in self.scopes.iter_mut().enumerate() {
            let grew = sc.totals.bytes.saturating_sub(sc.sampled_bytes);
            sc.sampled_bytes = sc.totals.bytes;
            if grew == 0 || sc.origin == 0 {
                continue;
            }
            sample.bytes = sample.bytes.saturating_add(grew);
            top.push(HistoryEntry {
                scope: i as u32 + 1,
                gen: sc.gen,
                bytes: grew,
            });
        }
        if self.history_due == 0 {
            self.history_due = now.saturating_add(interval_us);
            return;
        }
        top.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.scope.cmp(&b.scope)));
        for (slot, e) in sample.top.iter_mut().zip(top) {
            *slot = e;
        }
        let at = (self.history_written % HISTORY_SAMPLES as u64) as usize;
        self.history[at] = sample;
        self.history_written = self.history_written.wrapping_add(1);
        // A late call (no WAL for a while) starts the next interval now.
        self.history_due = now.saturating_add(interval_us);
    }

    /// Zeroes every total and counter (scopes, databases, relations, rmgrs, profiles,
    /// decisions, the history); keeps policies with their buckets, and the transaction map.
    pub fn reset_totals(&mut self, now: i64) {
        let pending = self.counters.pending_bytes;
        self.clear_totals();
        self.history = [HistorySample::default(); HISTORY_SAMPLES];
        self.history_written = 0;
        self.history_due = 0;
        self.profiles.fill(Profile::default());
        self.decisions.fill(Decision::default());
        self.next_decision = 0;
        self.counters = Counters {
            pending_bytes: pending,
            policy_loads: self.counters.policy_loads,
            ..Counters::default()
        };
        for p in self.policies.iter_mut() {
            p.charged = Totals::default();
            p.actions = ActionCounts::default();
            p.waited_ms = 0;
        }
        self.reset_at = now;
    }
}

impl SharedRef<'_> {
    fn profile_slot(&self, class: u32, query_id: u64, scope: u32) -> Probe {
        let n = self.profiles.len();
        let h = probe::home(profile_hash(class, query_id, scope), n);
        probe::find(self.profiles, h, PROFILE_PROBES, |p| {
            if p.used == 0 {
                Look::Empty
            } else if p.class == class && p.query_id == query_id && p.scope == scope {
                Look::Same
            } else {
                Look::Other
            }
        })
    }

    /// Who the scope in slot `scope - 1` is, as a number (0 for `scope` 0, every
    /// scope; never 0 otherwise).
    pub fn scope_tag(&self, scope: u32) -> u64 {
        let Some(x) = scope
            .checked_sub(1)
            .and_then(|i| self.scopes.get(i as usize))
        else {
            return 0;
        };
        let mut h = mix(((x.origin as u64) << 48) ^ ((x.role as u64) << 16) ^ x.database as u64);
        for name in [x.tenant.as_str(), x.application.as_str()] {
            for b in name.bytes() {
                h = mix(h ^ b as u64);
            }
            h = mix(h ^ 0x100);
        }
        h | 1
    }

    /// True when profile `p` belongs to the scope now in its slot.
    pub fn profile_is_current(&self, p: &Profile) -> bool {
        p.used != 0 && p.scope_tag == self.scope_tag(p.scope)
    }

    /// The WAL a statement is predicted to write, as `budget.predictor` says: with
    /// `profile_ewma` its query's profile for the scope, else its class's for the
    /// scope, else its class's overall; with `statement_class` only the class's
    /// profiles; else the default for its class. Capped at `budget.max_prediction`.
    pub fn predict(&self, class: u32, query_id: u64, scope: u32) -> f64 {
        let cfg = self.predictor;
        let use_query = cfg.predictor() == crate::predict::Predictor::ProfileEwma;
        let keys = [(query_id, scope + 1), (0, scope + 1), (0, 0)];
        for (i, (q, s)) in keys.into_iter().enumerate() {
            if i == 0 && (q == 0 || !use_query) {
                continue;
            }
            if let Probe::Found(slot) = self.profile_slot(class, q, s) {
                if self.profiles[slot].scope_tag == self.scope_tag(s) {
                    return cfg.capped(self.profiles[slot].avg_bytes);
                }
            }
        }
        cfg.capped(cfg.default_for(class))
    }

    /// What a plain read is predicted to write: its query's profile for the scope
    /// (with `budget.predictor = profile_ewma`), else the scope's own `SELECT` class
    /// profile, else 0 (never the class profile of every scope: another scope's
    /// writing reads say nothing about this one's). Capped at `budget.max_prediction`.
    pub fn predict_read(&self, class: u32, query_id: u64, scope: u32) -> f64 {
        let cfg = self.predictor;
        let use_query = cfg.predictor() == crate::predict::Predictor::ProfileEwma;
        let own = (query_id != 0 && use_query).then_some(query_id);
        let tag = self.scope_tag(scope + 1);
        let found = own
            .into_iter()
            .chain([0])
            .find_map(|q| {
                match self.profile_slot(class, q, scope + 1) {
                    Probe::Found(i) => Some(i),
                    Probe::Vacant(_) | Probe::Full => None,
                }
                .filter(|i| self.profiles[*i].scope_tag == tag)
            })
            .map_or(0.0, |slot| self.profiles[slot].avg_bytes);
        cfg.capped(found)
    }

    /// The history's samples, oldest first.
    pub fn recent_history(&self) -> Vec<HistorySample> {
        let n = self.history_written.min(HISTORY_SAMPLES as u64);
        (0..n)
            .map(|k| {
                let i = (self.history_written - n + k) % HISTORY_SAMPLES as u64;
                self.history[i as usize]
            })
            .collect()
    }

    /// The decisions in the ring, oldest first.
    pub fn recent_decisions(&self) -> Vec<Decision> {
        let n = self.next_decision.min(self.decisions.len() as u64);
        (0..n)
            .map(|k| {
                let i = (self.next_decision - n + k) % self.decisions.len() as u64;
                self.decisions[i as usize]
            })
            .collect()
    }
}
impl Shared<'_> {
    /// See [`SharedRef::scope_tag`].
    pub fn scope_tag(&self, scope: u32) -> u64 {
        self.view().scope_tag(scope)
    }

    /// See [`SharedRef::profile_is_current`].
    pub fn profile_is_current(&self, p: &Profile) -> bool {
        self.view().profile_is_current(p)
    }

    fn profile_slot(&self, class: u32, query_id: u64, scope: u32) -> Probe {
        self.view().profile_slot(class, query_id, scope)
    }

    /// See [`SharedRef::predict`].
    pub fn predict(&self, class: u32, query_id: u64, scope: u32) -> f64 {
        self.view().predict(class, query_id, scope)
    }

    /// See [`SharedRef::predict_read`].
    pub fn predict_read(&self, class: u32, query_id: u64, scope: u32) -> f64 {
        self.view().predict_read(class, query_id, scope)
    }

    /// See [`SharedRef::recent_decisions`].
    pub fn recent_decisions(&self) -> Vec<Decision> {
        self.view().recent_decisions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const MAX_PROFILES: usize = Capacities::DEFAULT.profiles as usize;
    const DECISIONS: usize = Capacities::DEFAULT.decisions as usize;

    fn session(tenant: &str, role: u32) -> SessionKey {
        SessionKey {
            tenant: tenant.into(),
            role,
            role_name: format!("r{role}"),
            database: 5,
            database_name: "db".into(),
            application: "app".into(),
        }
    }

    #[test]
    fn scopes_are_found_again_and_origins_kept_apart() {
        let mut s = Shared::zeroed();
        let a = s.scope(Origin::Session, &session("acme", 10)).unwrap();
        let b = s.scope(Origin::Session, &session("other", 10)).unwrap();
        assert_ne!(a, b);
        assert_eq!(s.scope(Origin::Session, &session("acme", 10)), Some(a));
        let bg = s.background_scope(5);
        let cl = s.background_scope(0);
        let un = s.unattributed_scope(5);
        assert_eq!(
            [bg, cl, un].map(|i| s.scopes[i as usize].origin()),
            [Origin::Background, Origin::Cluster, Origin::Unattributed]
        );
        assert_eq!(s.background_scope(5), bg);
    }

    #[test]
    fn the_xid_map_survives_collisions_and_deletions() {
        let mut s = Shared::zeroed();
        // Many xids, so probe chains form; remove every third; the rest stay findable.
        for x in 1..=3000u32 {
            assert!(s.map_xid(x, x % 7, x as u64));
        }
        for x in (1..=3000u32).step_by(3) {
            s.unmap_xid(x);
        }
        for x in 1..=3000u32 {
            let want = (x % 3 != 1).then_some((x % 7, x as u64));
            assert_eq!(s.xid_scope(x), want, "xid {x}");
        }
        assert_eq!(s.n_xids, 2000);
        // Everything before 2000 ended.
        let gone = s.forget_xids_before(2000);
        assert_eq!(gone, (1..2000u32).filter(|x| x % 3 != 1).count());
        assert_eq!(s.xid_scope(1999), None);
        assert_eq!(s.xid_scope(2000), Some((2000 % 7, 2000)));
        // The map refuses more than 3/4 of its slots and counts it.
        let mut t = Shared::zeroed();
        let mut ok = 0;
        for x in 1..=(MAX_XIDS as u32) {
            ok += t.map_xid(x, 0, 0) as usize;
        }
        assert_eq!(ok, MAX_XIDS * 3 / 4);
        assert_eq!(t.counters.xid_map_full as usize, MAX_XIDS - ok);
    }

    #[test]
    fn xid_comparison_wraps() {
        assert!(xid_precedes(5, 6));
        assert!(!xid_precedes(6, 5));
        assert!(xid_precedes(u32::MAX - 10, 3));
    }

    #[test]
    fn relations_and_databases_add_up() {
        let mut s = Shared::zeroed();
        s.add_relation_record(Some((1663, 5, 16384)), 100, 0);
        s.add_relation_record(Some((1663, 5, 16384)), 8000, 7900);
        s.add_relation_record(Some((1663, 5, 16390)), 50, 0);
        s.add_relation_record(None, 30, 0);
        let db = s.dbs.iter().find(|d| d.oid == 5).unwrap().totals;
        assert_eq!((db.records, db.bytes, db.fpi_bytes), (3, 8150, 7900));
        let r = s
            .rels
            .iter()
            .find(|r| r.used == 1 && r.rel == 16384)
            .unwrap();
        assert_eq!(r.totals.bytes, 8100);
        assert_eq!(s.no_relation.bytes, 30);
    }

    fn policy(id: i64, kind: &str, value: &str, mode: &str, priority: i32) -> Policy {
        Policy::from_spec(&crate::policy::PolicySpec {
            id,
            scope_kind: kind.into(),
            scope_value: value.into(),
            rate_bytes_per_sec: 1000,
            burst_bytes: 4000,
            mode: mode.into(),
            priority,
            enabled: true,
        })
        .unwrap()
    }

    #[test]
    fn the_policy_table_holds_budget_max_policies_and_refuses_more() {
        let mut s = Shared::zeroed_with(Capacities {
            policies: 2,
            ..Capacities::DEFAULT
        });
        assert_eq!(s.policies.len(), 2);
        let two = [
            policy(1, "tenant", "acme", "reject", 0),
            policy(2, "role", "w", "observe", 0),
        ];
        s.load_policies(&two, 1_000_000).unwrap();
        let gen = s.policy_gen;
        let three = [
            two[0].clone(),
            two[1].clone(),
            policy(3, "tenant", "b", "queue", 0),
        ];
        let err = s.load_policies(&three, 2_000_000).unwrap_err();
        assert!(matches!(err, PolicyError::TooMany { max: 2, got: 3 }));
        assert!(err.to_string().contains("budget.max_policies"), "{err}");
        // Nothing changed: the two policies stay in force, same generation.
        assert_eq!((s.n_policies, s.policy_gen), (2, gen));
        assert_eq!(s.policies[1].id, 2);
    }

    #[test]
    fn charges_reach_the_governing_policy_and_follow_reloads() {
        let mut s = Shared::zeroed();
        let a = s.scope(Origin::Session, &session("acme", 10)).unwrap();
        s.load_policies(&[policy(1, "tenant", "acme", "reject", 0)], 1_000_000)
            .unwrap();
        let t = Totals {
            records: 2,
            bytes: 5000,
            fpi_bytes: 0,
        };
        s.charge_scope(a, &t, 1, 1_000_000);
        assert_eq!(s.policies[0].bucket.tokens, -1000.0);
        assert_eq!(s.scopes[a as usize].totals, t);
        // A higher-priority policy for the role takes over after a reload; the first
        // policy keeps its bucket because its rate and burst did not change.
        s.load_policies(
            &[
                policy(1, "tenant", "acme", "reject", 0),
                policy(2, "role", "r10", "queue", 5),
            ],
            2_000_000,
        )
        .unwrap();
        assert_eq!(s.policy_of(a), Some(1));
        assert_eq!(s.policies[0].bucket.tokens, -1000.0);
        s.charge_scope(a, &t, 1, 2_000_000);
        assert_eq!(s.policies[1].bucket.tokens, -1000.0);
        assert_eq!(s.policies[1].charged.bytes, 5000);
        // Background scopes have no policy.
        let bg = s.background_scope(5);
        assert_eq!(s.policy_of(bg), None);
    }

    #[test]
    fn predictions_fall_back_from_query_to_class() {
        let mut s = Shared::zeroed();
        // Nothing learned: the default for writes (class 2 is INSERT), none for class 1
        // (SELECT).
        assert_eq!(s.predict(2, 77, 0), 8192.0);
        assert_eq!(s.predict(1, 77, 0), 0.0);
        s.learn(2, 77, 0, 1000, 1);
        s.learn(2, 77, 0, 2000, 2);
        // 1000 + 0.3 * (2000 - 1000).
        assert_eq!(s.predict(2, 77, 0), 1300.0);
        // Another query of the same class and scope: the class's average.
        assert_eq!(s.predict(2, 78, 0), 1300.0);
        // Another scope: the class's average over every scope.
        s.learn(2, 79, 1, 100, 3);
        assert_eq!(s.predict(2, 80, 3), 1300.0 + 0.3 * (100.0 - 1300.0));
        assert_eq!(s.predict(3, 77, 0), 8192.0);
    }

    #[test]
    fn the_predictor_settings_change_what_is_learned_and_predicted() {
        use crate::predict::{Config, Predictor};
        let mut s = Shared::zeroed();
        s.predictor = Config::new(Predictor::StatementClass, 0.5, 100, 2000, 1500);
        s.learn(2, 77, 0, 1000, 1);
        s.learn(2, 78, 0, 3000, 2);
        // statement_class: one average for the class and scope, whatever the query:
        // 1000 + 0.5 * (3000 - 1000), capped at 1500.
        assert_eq!(s.predict(2, 77, 0), 1500.0);
        s.predictor.max = 0;
        assert_eq!(s.predict(2, 77, 0), 2000.0);
        // profile_ewma: the query's own profile.
        s.predictor.predictor = Predictor::ProfileEwma as u32;
        assert_eq!(s.predict(2, 77, 0), 1000.0);
        // Nothing learned: the defaults per class.
        assert_eq!(s.predict(6, 1, 0), 2000.0);
        assert_eq!(s.predict(4, 1, 0), 100.0);
    }

    #[test]
    fn a_scope_slot_given_to_another_scope_does_not_inherit_its_profiles() {
        let mut s = Shared::zeroed();
        let a = s.scope(Origin::Session, &session("acme", 10)).unwrap();
        s.learn(2, 77, a, 1000, 1);
        // Another scope's statement moves the class's profile over every scope:
        // 1000 + 0.3 * (5000 - 1000).
        s.learn(2, 1, 500, 5000, 2);
        assert_eq!(s.predict(2, 77, a), 1000.0);
        // The slot now holds another scope (as after an eviction).
        let other = session("other", 11);
        s.scopes[a as usize].tenant = Name::new(&other.tenant);
        s.scopes[a as usize].role = other.role;
        // The old scope's query and class profiles are not its own: the class's over
        // every scope applies.
        assert_eq!(s.predict(2, 77, a), 2200.0);
        assert!(s
            .profiles
            .iter()
            .filter(|p| p.used != 0 && p.scope == a + 1)
            .all(|p| !s.profile_is_current(p)));
        // Learning starts the slot's profile over.
        s.learn(2, 77, a, 10, 3);
        assert_eq!(s.predict(2, 77, a), 10.0);
    }

    #[test]
    fn reads_follow_the_predictor_settings_and_their_scope() {
        use crate::predict::{Config, Predictor};
        let mut s = Shared::zeroed();
        let a = s.scope(Origin::Session, &session("acme", 10)).unwrap();
        s.learn(1, 77, a, 100, 1);
        s.learn(1, 78, a, 300, 2);
        assert_eq!(s.predict_read(1, 77, a), 100.0);
        // statement_class: the scope's SELECT profile, 100 + 0.3 * (300 - 100).
        s.predictor = Config::new(Predictor::StatementClass, 0.3, 0, 0, 50);
        assert_eq!(s.predict_read(1, 77, a), 50.0, "capped");
        s.predictor.max = 0;
        assert_eq!(s.predict_read(1, 77, a), 160.0);
        // Another scope in the slot: nothing known about its reads.
        s.scopes[a as usize].role = 99;
        assert_eq!(s.predict_read(1, 77, a), 0.0);
    }

    #[test]
    fn a_full_probe_chain_replaces_its_least_recent_profile() {
        let mut s = Shared::zeroed();
        // Class profiles over every scope: one per class and query id key; fill far
        // past the table.
        for q in 1..=(MAX_PROFILES as u64 * 2) {
            s.learn(2, q, 0, q, q as i64);
        }
        // The latest query is always learned and predicted from its own profile.
        let last = MAX_PROFILES as u64 * 2;
        assert_eq!(s.predict(2, last, 0), last as f64);
    }

    #[test]
    fn restored_profiles_do_not_replace_newer_ones() {
        let mut s = Shared::zeroed();
        s.learn(2, 77, 0, 1000, 1);
        let saved = Profile {
            used: 1,
            class: 2,
            query_id: 77,
            scope: 1,
            scope_tag: 0,
            count: 9,
            avg_bytes: 5.0,
            max_bytes: 7,
            last_micros: 0,
        };
        assert!(s.restore_profile(&saved));
        assert_eq!(s.predict(2, 77, 0), 1000.0);
        let other = Profile {
            query_id: 99,
            ..saved
        };
        assert!(s.restore_profile(&other));
        assert_eq!(s.predict(2, 99, 0), 5.0);
    }

    #[test]
    fn the_decision_ring_keeps_the_latest_in_order() {
        let mut s = Shared::zeroed();
        for k in 0..(DECISIONS as i64 + 5) {
            s.record_decision(
                Decision {
                    at_micros: k,
                    action: Action::Admit as u32,
                    ..Decision::default()
                },
                None,
            );
        }
        let d = s.recent_decisions();
        assert_eq!(d.len(), DECISIONS);
        assert_eq!(d[0].at_micros, 5);
        assert_eq!(d[DECISIONS - 1].at_micros, DECISIONS as i64 + 4);
        assert_eq!(s.counters.actions.get(Action::Admit), DECISIONS as u64 + 5);
    }

    #[test]
    fn each_action_has_its_own_counter() {
        let mut c = ActionCounts::default();
        for (i, (a, _)) in Action::ALL.iter().enumerate() {
            for _ in 0..=i {
                c.count(*a);
            }
        }
        for (i, (a, name)) in Action::ALL.iter().enumerate() {
            assert_eq!(c.get(*a), i as u64 + 1, "{name}");
        }
        // One u64 per action, nothing else.
        assert_eq!(std::mem::size_of::<ActionCounts>(), 8 * Action::ALL.len());
        c.admit = u64::MAX;
        c.count(Action::Admit);
        assert_eq!(c.admit, u64::MAX);
    }
}

//! The walker side: charges every record's exact bytes to the scope that wrote it.
//!
//! - A record of a transaction the owning backend already published is charged to
//!   its scope at once (and to that scope's policy bucket).
//! - A record of a transaction not published yet (its first statement is still
//!   running, or it is a subtransaction) waits in `pending`, keyed by its xid. Its
//!   commit or abort record settles it: the commit lists the subtransactions, and the
//!   backend publishes its transaction before the commit record is written. An abort
//!   is published just after its record, so an ended transaction that is still
//!   unknown gets [`GRACE_MICROS`] to appear before it is charged to the database's
//!   unattributed scope.
//! - A record without a transaction id goes to the background scope of the database
//!   of its first block reference, or to the cluster scope.
//! - Totals per database and per relation follow one documented rule: a record counts
//!   whole for the relation (and database) of its first block reference (the lowest
//!   block id), and under "no relation" when it has none.
//!
//! Bounds (each overflow counted in the shared counters):
//! - at most [`MAX_PENDING`] transactions pending: a record of one more goes at once
//!   to its database's unattributed scope (`pending_full`);
//! - at most [`MAX_ENDED`] ended transactions waiting for their backend, in a queue
//!   ordered by deadline: when it is full the oldest is settled early, to its scope
//!   if published by then, else to the unattributed scope (`ended_full`). Settling
//!   looks only at the front of the queue, so each record costs the same whatever
//!   waits behind it;
//! - records the walker side reads again after its worker restarted (up to
//!   `charged_lsn`) are charged to scopes (whose totals came from the snapshot) but
//!   not to policy buckets, which kept their charges: a bucket is charged once per
//!   record.

use crate::shm::{Shared, Totals, XidEntry};
use std::collections::{HashMap, VecDeque};
use walker_decode::{decode, oldest_running_xid, Event, Format, Rec};

/// How long an ended transaction nobody published waits for its backend (µs).
pub const GRACE_MICROS: i64 = 2_000_000;
/// Transactions whose records wait for their backend's publication, at most.
pub const MAX_PENDING: usize = 65_536;
/// Ended transactions waiting for their backend's publication, at most.
pub const MAX_ENDED: usize = 16_384;

/// A record as the ledger needs it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Resource manager.
    pub rmid: u8,
    /// `xl_info`.
    pub info: u8,
    /// `xl_xid`.
    pub xid: u32,
    /// Top-level xid when the record carries it.
    pub toplevel_xid: u32,
    /// Total length.
    pub bytes: u64,
    /// Full-page image bytes.
    pub fpi: u64,
    /// End of the record.
    pub end_lsn: u64,
    /// (tablespace, database, relfilenode) of the first block reference.
    pub first_block: Option<(u32, u32, u32)>,
    /// Main data.
    pub main: &'a [u8],
}

#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    totals: Totals,
    database: u32,
}

/// A transaction not charged yet, as snapshots keep it: still running (`deadline` 0)
/// or ended and waiting for its backend's publication.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parked {
    /// Its xid, then its subtransactions' (ended ones).
    pub xids: Vec<u32>,
    /// Records, bytes, FPI bytes.
    pub totals: [u64; 3],
    /// Database of its first block reference.
    pub database: u32,
    /// 0 while running; else when its grace ends (µs).
    pub deadline: i64,
    /// 1 when it ended with a commit or abort (0: running or prepared).
    pub transactions: u64,
}

/// A transaction that ended before any backend published it.
#[derive(Debug, Clone)]
struct Ended {
    xids: Vec<u32>,
    totals: Totals,
    database: u32,
    deadline: i64,
    transactions: u64,
}

/// The walker side's private state.
pub struct Ledger {
    format: Format,
    pending: HashMap<u32, Pending>,
    /// Ordered by deadline (each gets now + the grace, in the order read).
    ended: VecDeque<Ended>,
    backgrounds: HashMap<u32, u32>,
    /// The LSN of the last snapshot captured: ended transactions' map entries up to
    /// it are no longer needed for a replay.
    captured: u64,
}

/// What a record means for the ledger.
enum Kind {
    /// An ordinary record of transaction `xid` (0: none).
    Plain(u32),
    /// The end of `xid` (with `subxacts`): committed, aborted, or prepared (then
    /// still open).
    End {
        xid: u32,
        subxacts: Vec<u32>,
        still_open: bool,
    },
}

impl Ledger {
    /// An empty ledger for records of this PostgreSQL format.
    pub fn new(format: Format) -> Ledger {
        Ledger {
            format,
            pending: HashMap::new(),
            ended: VecDeque::new(),
            backgrounds: HashMap::new(),
            captured: 0,
        }
    }

    /// The transactions not charged yet, in a stable order.
    pub fn parked(&self) -> Vec<Parked> {
        let mut out: Vec<Parked> = self
            .pending
            .iter()
            .map(|(x, p)| Parked {
                xids: vec![*x],
                totals: p.totals.to_array(),
                database: p.database,
                deadline: 0,
                transactions: 0,
            })
            .collect();
        out.sort_by_key(|p| p.xids[0]);
        out.extend(self.ended.iter().map(|e| Parked {
            xids: e.xids.clone(),
            totals: e.totals.to_array(),
            database: e.database,
            deadline: e.deadline,
            transactions: e.transactions,
        }));
        out
    }

    /// Puts back transactions [`Ledger::parked`] returned.
    pub fn restore(&mut self, parked: &[Parked]) {
        for p in parked {
            let totals = Totals::from_array(p.totals);
            if p.deadline == 0 {
                if let Some(x) = p.xids.first() {
                    self.pending.insert(
                        *x,
                        Pending {
                            totals,
                            database: p.database,
                        },
                    );
                }
            } else {
                self.ended.push_back(Ended {
                    xids: p.xids.clone(),
                    totals,
                    database: p.database,
                    deadline: p.deadline,
                    transactions: p.transactions,
                });
            }
        }
        self.ended.make_contiguous().sort_by_key(|e| e.deadline);
    }

    /// Forgets everything not yet charged (after the shared totals were replaced).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.ended.clear();
        self.backgrounds.clear();
        self.captured = 0;
    }

    /// A snapshot of the totals as of `lsn` was captured (or restored): a replay will
    /// start after it.
    pub fn captured(&mut self, lsn: u64) {
        self.captured = self.captured.max(lsn);
    }

    fn kind(&self, e: &Entry<'_>) -> Kind {
        let own = if e.toplevel_xid != 0 {
            e.toplevel_xid
        } else {
            e.xid
        };
        if e.rmid != walker_decode::RM_XACT_ID {
            return Kind::Plain(own);
        }
        let rec = Rec {
            rmid: e.rmid,
            info: e.info,
            xid: e.xid,
            main: e.main,
            blocks: Vec::new(),
        };
        match decode(&rec, self.format) {
            Ok(Some(Event::End { xid, subxacts, .. })) => Kind::End {
                xid,
                subxacts,
                still_open: false,
            },
            Ok(Some(Event::Prepare { xid })) => Kind::End {
                xid,
                subxacts: Vec::new(),
                still_open: true,
            },
            _ => Kind::Plain(own),
        }
    }

    /// Takes `xid`'s pending bytes out of `pending` (and out of the pending counter).
    fn take_pending(&mut self, s: &mut Shared, xid: u32) -> Option<Pending> {
        let p = self.pending.remove(&xid)?;
        s.counters.pending_bytes = s.counters.pending_bytes.saturating_sub(p.totals.bytes);
        Some(p)
    }

    fn background(&mut self, s: &mut Shared, database: u32) -> u32 {
        *self
            .backgrounds
            .entry(database)
            .or_insert_with(|| s.background_scope(database))
    }

    /// Charges one record.
    pub fn record(&mut self, s: &mut Shared, e: &Entry<'_>, now: i64) {
        // Read before (the worker restarted and replays): the buckets have it.
        let buckets = e.end_lsn > s.charged_lsn;
        s.counters.total.add_record(e.bytes, e.fpi);
        s.rmgrs[e.rmid as usize].add_record(e.bytes, e.fpi);
        s.add_relation_record(e.first_block, e.bytes, e.fpi);
        let database = e.first_block.map_or(0, |b| b.1);
        let mut this = Totals::default();
        this.add_record(e.bytes, e.fpi);
        match self.kind(e) {
            Kind::Plain(0) => {
                // What a client backend already charged to its own scope is not
                // charged again (claim.rs).
                let rest = s.settle_claim(&this);
                if rest.records > 0 || rest.bytes > 0 {
                    let scope = self.background(s, database);
                    s.charge(scope, None, &rest, 0, now, buckets);
                }
            }
            Kind::Plain(xid) => match s.xid_entry(xid) {
                Some(m) => {
                    let mut t = this;
                    if let Some(p) = self.take_pending(s, xid) {
                        t.add(&p.totals);
                    }
                    s.charge(m.scope, Some(&m), &t, 0, now, buckets);
                }
                None if !self.pending.contains_key(&xid) && self.pending.len() >= MAX_PENDING => {
                    s.counters.pending_full = s.counters.pending_full.saturating_add(1);
                    let scope = s.unattributed_scope(database);
                    s.charge(scope, None, &this, 0, now, buckets);
                }
                None => {
                    let p = self.pending.entry(xid).or_default();
                    p.totals.add(&this);
                    if p.database == 0 {
                        p.database = database;
                    }
                    s.counters.pending_bytes = s.counters.pending_bytes.saturating_add(e.bytes);
                }
            },
            Kind::End {
                xid,
                subxacts,
                still_open,
            } => {
                let mut t = this;
                let mut db = database;
                for x in std::iter::once(xid).chain(subxacts.iter().copied()) {
                    if let Some(p) = self.take_pending(s, x) {
                        t.add(&p.totals);
                        if db == 0 {
                            db = p.database;
                        }
                    }
                }
                let transactions = u64::from(!still_open);
                match s.xid_entry(xid) {
                    Some(m) => {
                        s.charge(m.scope, Some(&m), &t, transactions, now, buckets);
                        if !still_open {
                            s.end_xid(xid, e.end_lsn);
                            // Subtransactions the backend published (aborted ones).
                            for x in &subxacts {
                                s.end_xid(*x, e.end_lsn);
                            }
                        }
                    }
                    None => {
                        s.counters.pending_bytes = s.counters.pending_bytes.saturating_add(t.bytes);
                        let mut xids = vec![xid];
                        xids.extend(subxacts);
                        if self.ended.len() >= MAX_ENDED {
                            s.counters.ended_full = s.counters.ended_full.saturating_add(1);
                            if let Some(oldest) = self.ended.pop_front() {
                                self.settle_one(s, oldest, None, now, buckets);
                            }
                        }
                        self.ended.push_back(Ended {
                            xids,
                            totals: t,
                            database: db,
                            deadline: now.saturating_add(GRACE_MICROS),
                            transactions,
                        });
                    }
                }
            }
        }
        if let Some(oldest) = oldest_running_xid(e.rmid, e.info, e.main) {
            self.forget_before(s, oldest, now, buckets);
        }
        self.settle_queue(s, now, buckets);
        s.retire_ended_xids(self.captured, 0);
        s.as_of_lsn = e.end_lsn;
        if buckets {
            s.charged_lsn = e.end_lsn;
        }
    }

    /// Charges ended transactions whose backend published them since, and those
    /// whose grace ran out to the unattributed scope (between records: the buckets
    /// are charged unless the walker side is still reading records again).
    pub fn settle(&mut self, s: &mut Shared, now: i64) {
        let buckets = s.as_of_lsn >= s.charged_lsn;
        self.settle_queue(s, now, buckets);
    }

    /// Settles from the front of the queue while the front is published or out of
    /// grace; stops at the first that is neither (amortised O(1) per call: each
    /// transaction leaves the queue once, and one more is looked at).
    fn settle_queue(&mut self, s: &mut Shared, now: i64, buckets: bool) {
        while let Some(front) = self.ended.front() {
            // The backend publishes the xid the end record names (the top-level
            // transaction, or the aborted subtransaction).
            let found = s.xid_entry(front.xids[0]);
            if found.is_none() && now < front.deadline {
                return;
            }
            if let Some(t) = self.ended.pop_front() {
                self.settle_one(s, t, found, now, buckets);
            }
        }
    }

    /// Charges one ended transaction: to the scope it was published for (`found`, or
    /// looked up now), else to its database's unattributed scope.
    fn settle_one(
        &mut self,
        s: &mut Shared,
        t: Ended,
        found: Option<XidEntry>,
        now: i64,
        buckets: bool,
    ) {
        let found = found.or_else(|| s.xid_entry(t.xids[0]));
        let scope = match &found {
            Some(m) => m.scope,
            None => s.unattributed_transaction(t.database),
        };
        s.counters.pending_bytes = s.counters.pending_bytes.saturating_sub(t.totals.bytes);
        s.charge(
            scope,
            found.as_ref(),
            &t.totals,
            t.transactions,
            now,
            buckets,
        );
        if t.transactions > 0 {
            let lsn = s.as_of_lsn;
            for x in &t.xids {
                s.end_xid(*x, lsn);
            }
        }
    }

    /// Every transaction before `oldest` ended: what is still pending of them (a
    /// crash left no end record) goes to the unattributed scopes, and their mappings
    /// are dropped.
    fn forget_before(&mut self, s: &mut Shared, oldest: u32, now: i64, buckets: bool) {
        let old: Vec<u32> = self
            .pending
            .keys()
            .copied()
            .filter(|x| crate::shm::xid_precedes(*x, oldest))
            .collect();
        for x in old {
            if let Some(p) = self.take_pending(s, x) {
                let found = s.xid_entry(x);
                let scope = match &found {
                    Some(m) => m.scope,
                    None => s.unattributed_transaction(p.database),
                };
                s.charge(scope, found.as_ref(), &p.totals, 1, now, buckets);
            }
        }
        s.forget_xids_before(oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::{Origin, SessionKey, MAX_XIDS};

    const MAX_XIDS_USABLE: usize = MAX_XIDS * 3 / 4;

    fn plain(xid: u32, bytes: u64, rel: Option<(u32, u32, u32)>) -> Entry<'static> {
        Entry {
            rmid: 10,
            info: 0,
            xid,
            toplevel_xid: 0,
            bytes,
            fpi: 0,
            end_lsn: 0,
            first_block: rel,
            main: &[],
        }
    }

    /// A commit record (PostgreSQL 15 layout): xact_time, xinfo with subxacts.
    fn commit(xid: u32, subxacts: &[u32], bytes: u64) -> (Vec<u8>, u32, u64) {
        let mut m = 0i64.to_le_bytes().to_vec();
        if !subxacts.is_empty() {
            m.extend_from_slice(&2u32.to_le_bytes()); // XACT_XINFO_HAS_SUBXACTS
            m.extend_from_slice(&(subxacts.len() as i32).to_le_bytes());
            for s in subxacts {
                m.extend_from_slice(&s.to_le_bytes());
            }
        }
        (m, xid, bytes)
    }

    fn end_entry<'a>(c: &'a (Vec<u8>, u32, u64), abort: bool) -> Entry<'a> {
        let has_info = if c.0.len() > 8 { 0x80 } else { 0 };
        Entry {
            rmid: 1,
            info: has_info | if abort { 0x20 } else { 0x00 },
            xid: c.1,
            toplevel_xid: 0,
            bytes: c.2,
            fpi: 0,
            end_lsn: 0,
            first_block: None,
            main: &c.0,
        }
    }

    fn key(role: u32) -> SessionKey {
        SessionKey {
            role,
            database: 5,
            ..SessionKey::default()
        }
    }

    fn ledger() -> Ledger {
        Ledger::new(Format::for_server(150_000).unwrap())
    }

    #[test]
    fn a_published_transaction_is_charged_every_byte_including_subtransactions_and_commit() {
        let mut s = Shared::zeroed();
        let mut l = ledger();
        let scope = s.scope(Origin::Session, &key(10)).unwrap();
        let rel = Some((1663, 5, 16384));
        // Records before the backend publishes, one of a subtransaction.
        l.record(&mut s, &plain(100, 300, rel), 0);
        l.record(&mut s, &plain(101, 200, rel), 0);
        assert_eq!(s.counters.pending_bytes, 500);
        // Published at statement end; the next record of 100 settles its pending bytes.
        s.map_xid(100, scope, 0);
        l.record(&mut s, &plain(100, 50, rel), 0);
        assert_eq!(s.scopes[scope as usize].totals.bytes, 350);
        // The commit lists 101: its 200 bytes and the commit's 40 join.
        let c = commit(100, &[101], 40);
        l.record(&mut s, &end_entry(&c, false), 0);
        let t = s.scopes[scope as usize].totals;
        assert_eq!((t.records, t.bytes), (4, 590));
        assert_eq!(s.scopes[scope as usize].transactions, 1);
        assert_eq!(s.counters.pending_bytes, 0);
        // Ended: kept in the map until a snapshot covers it, no longer running.
        assert_eq!(s.running_xids(), 0);
        assert!(s.xid_entry(100).is_some_and(|e| e.ended_lsn != 0));
        // Relation totals: the commit record has no block reference.
        assert_eq!(s.no_relation.bytes, 40);
        assert_eq!(s.dbs.iter().find(|d| d.oid == 5).unwrap().totals.bytes, 550);
    }

    #[test]
    fn an_abort_published_late_is_charged_to_its_scope_within_the_grace() {
        let mut s = Shared::zeroed();
        let mut l = ledger();
        let scope = s.scope(Origin::Session, &key(10)).unwrap();
        l.record(&mut s, &plain(200, 1000, Some((1663, 5, 1))), 0);
        let c = commit(200, &[], 30);
        l.record(&mut s, &end_entry(&c, true), 10);
        assert_eq!(s.counters.pending_bytes, 1030);
        s.map_xid(200, scope, 0);
        l.settle(&mut s, 20);
        assert_eq!(s.scopes[scope as usize].totals.bytes, 1030);
        assert_eq!(s.counters.pending_bytes, 0);
        assert_eq!(s.running_xids(), 0);
    }

    #[test]
    fn unknown_transactions_go_to_the_unattributed_scope_after_the_grace() {
        let mut s = Shared::zeroed();
        let mut l = ledger();
        l.record(&mut s, &plain(300, 700, Some((1663, 7, 1))), 0);
        let c = commit(300, &[], 30);
        l.record(&mut s, &end_entry(&c, false), 0);
        l.settle(&mut s, GRACE_MICROS - 1);
        assert_eq!(s.counters.pending_bytes, 730);
        l.settle(&mut s, GRACE_MICROS);
        let un = s.unattributed_scope(7);
        assert_eq!(s.scopes[un as usize].totals.bytes, 730);
        assert_eq!(s.counters.unattributed_transactions, 1);
        // Records without xid: background of their database, or cluster.
        l.record(&mut s, &plain(0, 90, Some((1663, 7, 1))), 0);
        l.record(&mut s, &plain(0, 10, None), 0);
        let bg = s.background_scope(7);
        let cl = s.background_scope(0);
        assert_eq!(s.scopes[bg as usize].totals.bytes, 90);
        assert_eq!(s.scopes[cl as usize].totals.bytes, 10);
        // Every byte read is in exactly one scope.
        let sum: u64 = s.scopes.iter().map(|x| x.totals.bytes).sum();
        assert_eq!(sum + s.counters.pending_bytes, s.counters.total.bytes);
    }

    #[test]
    fn a_running_xacts_record_retires_transactions_a_crash_left_open() {
        let mut s = Shared::zeroed();
        let mut l = ledger();
        l.record(&mut s, &plain(400, 500, Some((1663, 5, 1))), 0);
        let mut m = Vec::new();
        for v in [0u32, 0, 0, 450, 450, 449] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        let e = Entry {
            rmid: 8,
            info: 0x10,
            main: &m,
            ..plain(0, 60, None)
        };
        l.record(&mut s, &e, 0);
        let un = s.unattributed_scope(5);
        assert_eq!(s.scopes[un as usize].totals.bytes, 500);
        assert_eq!(s.counters.pending_bytes, 0);
    }

    fn at(mut e: Entry<'_>, lsn: u64) -> Entry<'_> {
        e.end_lsn = lsn;
        e
    }

    fn reject_role(role: &str) -> crate::policy::Policy {
        crate::policy::Policy::from_spec(&crate::policy::PolicySpec {
            id: 1,
            scope_kind: "role".into(),
            scope_value: role.into(),
            rate_bytes_per_sec: 1,
            burst_bytes: 1_000_000,
            mode: "reject".into(),
            priority: 0,
            enabled: true,
        })
        .unwrap()
    }

    #[test]
    fn records_read_again_after_a_restart_reach_the_scope_but_not_the_bucket_again() {
        let mut s = Shared::zeroed();
        let mut l = ledger();
        s.load_policies(&[reject_role("w")], 0).unwrap();
        let k = SessionKey {
            role: 10,
            role_name: "w".into(),
            database: 5,
            ..SessionKey::default()
        };
        let scope = s.scope(Origin::Session, &k).unwrap();
        s.map_xid(100, scope, 0);
        let rel = Some((1663, 5, 1));
        l.record(&mut s, &at(plain(100, 300, rel), 1000), 0);
        // Snapshot here (as of 1000), then two more records before the worker fails.
        let snap = crate::snapshot::capture(&s.view(), &l);
        l.record(&mut s, &at(plain(100, 200, rel), 2000), 0);
        l.record(&mut s, &at(plain(100, 100, rel), 3000), 0);
        assert_eq!(s.policies[0].charged.bytes, 600);
        // The worker restarts: totals from the snapshot, the two records again, then
        // a new one.
        crate::snapshot::restore(&mut s, &mut l, Some(&snap), 1000);
        assert_eq!(s.scopes[scope as usize].totals.bytes, 300);
        l.settle(&mut s, 0);
        l.record(&mut s, &at(plain(100, 200, rel), 2000), 0);
        l.record(&mut s, &at(plain(100, 100, rel), 3000), 0);
        l.record(&mut s, &at(plain(100, 50, rel), 4000), 0);
        // Scope: 300 + 200 + 100 + 50; bucket and policy: each record once.
        assert_eq!(s.scopes[scope as usize].totals.bytes, 650);
        assert_eq!(s.policies[0].charged.bytes, 650);
        assert_eq!(s.policies[0].bucket.tokens, 1_000_000.0 - 650.0);
        assert_eq!(s.charged_lsn, 4000);
    }

    #[test]
    fn the_pending_table_is_bounded_and_its_overflow_goes_unattributed_at_once() {
        let mut s = Shared::zeroed();
        let mut l = ledger();
        let rel = Some((1663, 5, 1));
        for x in 0..MAX_PENDING as u32 {
            l.record(&mut s, &plain(1000 + x, 10, rel), 0);
        }
        assert_eq!(s.counters.pending_bytes, MAX_PENDING as u64 * 10);
        // One more transaction: not held; a known one still is.
        l.record(&mut s, &plain(900_000, 7, rel), 0);
        l.record(&mut s, &plain(1000, 10, rel), 0);
        assert_eq!(s.counters.pending_full, 1);
        assert_eq!(s.counters.pending_bytes, MAX_PENDING as u64 * 10 + 10);
        let un = s.unattributed_scope(5);
        assert_eq!(s.scopes[un as usize].totals.bytes, 7);
    }

    #[test]
    fn ended_transactions_leave_in_deadline_order_and_the_queue_is_bounded() {
        let mut s = Shared::zeroed();
        let mut l = ledger();
        let scope = s.scope(Origin::Session, &key(10)).unwrap();
        // Three aborts nobody published yet, at t = 0, 1, 2 (µs).
        let ends: Vec<_> = (0..3u32).map(|i| commit(300 + i, &[], 100)).collect();
        for (t, c) in ends.iter().enumerate() {
            l.record(&mut s, &end_entry(c, true), t as i64);
        }
        assert_eq!(s.counters.pending_bytes, 300);
        // 301 is published: it waits behind 300 (the front) until 300 leaves.
        s.map_xid(301, scope, 0);
        l.settle(&mut s, 10);
        assert_eq!(s.scopes[scope as usize].totals.bytes, 0);
        s.map_xid(300, scope, 0);
        l.settle(&mut s, 10);
        assert_eq!(s.scopes[scope as usize].totals.bytes, 200);
        assert_eq!(s.running_xids(), 0);
        // 302's grace ends at 2 + GRACE: unattributed then.
        l.settle(&mut s, 1 + GRACE_MICROS);
        assert_eq!(s.counters.pending_bytes, 100);
        l.settle(&mut s, 2 + GRACE_MICROS);
        assert_eq!(s.counters.pending_bytes, 0);
        assert_eq!(s.counters.unattributed_transactions, 1);
        // A full queue settles its oldest early.
        let mut l = ledger();
        let many: Vec<_> = (0..MAX_ENDED as u32 + 2)
            .map(|i| commit(10_000 + i, &[], 1))
            .collect();
        for c in &many {
            l.record(&mut s, &end_entry(c, false), 0);
        }
        assert_eq!(l.ended.len(), MAX_ENDED);
        assert_eq!(s.counters.ended_full, 2);
        assert_eq!(s.counters.pending_bytes, MAX_ENDED as u64);
    }

    #[test]
    fn ended_entries_stay_until_a_snapshot_covers_them_or_a_running_one_needs_room() {
        let mut s = Shared::zeroed();
        let mut l = ledger();
        let scope = s.scope(Origin::Session, &key(10)).unwrap();
        s.map_xid(500, scope, 0);
        s.map_xid(501, scope, 0);
        s.map_xid(600, scope, 0);
        let c = commit(500, &[501], 40);
        l.record(&mut s, &at(end_entry(&c, false), 1000), 0);
        let c = commit(600, &[], 40);
        l.record(&mut s, &at(end_entry(&c, false), 2000), 0);
        // Both ended: the scope is no longer pinned, the entries stay.
        assert_eq!((s.n_xids, s.running_xids()), (3, 0));
        assert_eq!(s.scopes[scope as usize].xids, 0);
        // A snapshot as of 1500: the entries of 500 and 501 (ended at 1000) go at
        // the next record, 600's (2000) stays.
        l.captured(1500);
        l.record(&mut s, &at(plain(0, 10, None), 3000), 0);
        assert_eq!(s.n_xids, 1);
        assert!(s.xid_entry(600).is_some());
        // A full map drops the oldest ended entry for a running transaction.
        let mut t = Shared::zeroed();
        let cap = MAX_XIDS_USABLE as u32;
        for x in 1..=cap {
            assert!(t.map_xid(x, scope, 0));
        }
        t.end_xid(7, 10);
        t.end_xid(3, 20);
        assert!(t.map_xid(cap + 1, scope, 0));
        assert!(t.xid_entry(7).is_none() && t.xid_entry(3).is_some());
        assert!(t.map_xid(cap + 2, scope, 0));
        assert!(t.xid_entry(3).is_none());
        assert!(!t.map_xid(cap + 3, scope, 0));
        assert_eq!(t.counters.xid_map_full, 1);
        assert_eq!((t.n_xids, t.n_ended_xids), (cap, 0));
    }
}

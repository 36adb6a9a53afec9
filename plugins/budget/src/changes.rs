//! Policy changes in flight: which transactions announced a change of
//! `walker.budget_policies`, and whether a load of the table covered them.
//!
//! A change function announces its transaction's id (64-bit, `pg_current_xact_id()`)
//! before its transaction ends. A load reads the table and the server's snapshot in
//! one statement; every announced transaction that the snapshot no longer sees
//! running has ended (committed, so the load saw its change; or rolled back, so there
//! is nothing to see), and is removed. Announcements still running stay, so the
//! walker side loads again until their transactions end; committed changes of other
//! transactions load meanwhile.

use std::fmt;

/// Transactions that can have an announced, uncovered change at once.
pub const MAX_PENDING: usize = 64;
/// Loads in a row whose snapshot had not reached an announced transaction id before
/// the announcement is dropped. A real announcement can meet at most the loads that
/// were already in flight when it was made (their snapshots are older).
pub const IMPLAUSIBLE_LOADS: u32 = 3;

/// One announced transaction.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    /// Its transaction id (0: a free slot).
    pub xid: u64,
    /// Loads in a row whose snapshot had not reached `xid`.
    pub unreached: u32,
}

/// A snapshot as `pg_current_snapshot()::text` writes it: `xmin:xmax:xip,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Every transaction before it has ended.
    pub xmin: u64,
    /// Every transaction from it on had not started.
    pub xmax: u64,
    /// Transactions between the two that were running.
    pub running: Vec<u64>,
}

/// A snapshot text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSnapshot(pub String);

impl fmt::Display for BadSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}\" is not a snapshot (xmin:xmax:xip,...) as pg_current_snapshot() writes it",
            self.0
        )
    }
}

impl Snapshot {
    /// Parses `xmin:xmax:xip,...` (the list may be empty).
    pub fn parse(text: &str) -> Result<Snapshot, BadSnapshot> {
        let bad = || BadSnapshot(text.to_string());
        let mut parts = text.trim().split(':');
        let (Some(a), Some(b), Some(c), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let xmin: u64 = a.parse().map_err(|_| bad())?;
        let xmax: u64 = b.parse().map_err(|_| bad())?;
        let running = if c.is_empty() {
            Vec::new()
        } else {
            c.split(',')
                .map(|x| x.parse::<u64>().map_err(|_| bad()))
                .collect::<Result<Vec<_>, _>>()?
        };
        if xmin > xmax {
            return Err(bad());
        }
        Ok(Snapshot {
            xmin,
            xmax,
            running,
        })
    }

    /// True when transaction `xid` had ended when the snapshot was taken (its effects,
    /// if it committed, are what a read with this snapshot sees).
    pub fn ended(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.running.contains(&xid))
    }
}

/// The announced transactions.
pub type Pending = [Change; MAX_PENDING];

/// Records that transaction `xid` changed the policies; false when `MAX_PENDING`
/// other transactions are already waiting (nothing recorded).
pub fn announce(p: &mut Pending, xid: u64) -> bool {
    if xid == 0 || p.iter().any(|c| c.xid == xid) {
        return true;
    }
    match p.iter_mut().find(|c| c.xid == 0) {
        Some(slot) => {
            *slot = Change { xid, unreached: 0 };
            true
        }
        None => false,
    }
}

/// Removes the announcements a load with snapshot `s` covered, and those no
/// snapshot reached [`IMPLAUSIBLE_LOADS`] times in a row; how many it covered.
pub fn settle(p: &mut Pending, s: &Snapshot) -> usize {
    let mut n = 0;
    for c in p.iter_mut().filter(|c| c.xid != 0) {
        if s.ended(c.xid) {
            *c = Change::default();
            n += 1;
        } else if c.xid >= s.xmax {
            c.unreached = c.unreached.saturating_add(1);
            if c.unreached >= IMPLAUSIBLE_LOADS {
                *c = Change::default();
            }
        } else {
            c.unreached = 0;
        }
    }
    n
}

/// The announcements not covered yet, in ascending order.
pub fn waiting(p: &Pending) -> Vec<u64> {
    let mut v: Vec<u64> = p.iter().map(|c| c.xid).filter(|x| *x != 0).collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_parse_and_tell_which_transactions_ended() {
        let s = Snapshot::parse("100:105:101,103").unwrap();
        assert_eq!(s.running, vec![101, 103]);
        assert!(s.ended(99));
        assert!(s.ended(100));
        assert!(!s.ended(101));
        assert!(s.ended(102));
        assert!(!s.ended(103));
        assert!(s.ended(104));
        assert!(!s.ended(105), "not started when the snapshot was taken");
        assert_eq!(Snapshot::parse("7:7:").unwrap().running, Vec::<u64>::new());
        for bad in ["", "1:2", "1:2:3:4", "a:2:", "5:3:", "1:9:x"] {
            assert!(Snapshot::parse(bad).is_err(), "{bad}");
        }
        assert!(Snapshot::parse("1:2:x")
            .unwrap_err()
            .to_string()
            .contains("pg_current_snapshot"));
    }

    #[test]
    fn announcements_stay_until_a_load_sees_them_ended() {
        let mut p: Pending = [Change::default(); MAX_PENDING];
        assert!(announce(&mut p, 101));
        assert!(announce(&mut p, 101), "twice in one transaction: once");
        assert!(announce(&mut p, 103));
        assert_eq!(waiting(&p), vec![101, 103]);
        // 103 still runs: 101 is covered, 103 stays.
        assert_eq!(settle(&mut p, &Snapshot::parse("103:104:103").unwrap()), 1);
        assert_eq!(waiting(&p), vec![103]);
        assert_eq!(settle(&mut p, &Snapshot::parse("103:110:103").unwrap()), 0);
        assert_eq!(settle(&mut p, &Snapshot::parse("110:110:").unwrap()), 1);
        assert!(waiting(&p).is_empty());
        // Full: refused, nothing lost.
        for x in 1..=MAX_PENDING as u64 {
            assert!(announce(&mut p, 1000 + x));
        }
        assert!(!announce(&mut p, 5000));
        assert_eq!(waiting(&p).len(), MAX_PENDING);
    }

    #[test]
    fn an_id_no_snapshot_reaches_is_dropped_after_some_loads() {
        let mut p: Pending = [Change::default(); MAX_PENDING];
        // A real transaction, announced while a load with an older snapshot was in
        // flight: that load does not reach it, the next one does.
        announce(&mut p, 120);
        settle(&mut p, &Snapshot::parse("100:110:").unwrap());
        assert_eq!(waiting(&p), vec![120]);
        settle(&mut p, &Snapshot::parse("120:125:120").unwrap());
        assert_eq!(waiting(&p), vec![120], "still running");
        // A bogus id far ahead of every snapshot goes after IMPLAUSIBLE_LOADS loads.
        announce(&mut p, 1 << 40);
        for _ in 0..IMPLAUSIBLE_LOADS {
            assert!(waiting(&p).contains(&(1 << 40)));
            settle(&mut p, &Snapshot::parse("120:125:120").unwrap());
        }
        assert_eq!(waiting(&p), vec![120]);
    }
}

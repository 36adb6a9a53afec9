//! WAL without a transaction id, charged to the client backend that wrote it.
//!
//! Records without an xid (non-transactional logical messages, hint-bit page images,
//! pruning, `VACUUM`) carry nothing the walker side could map to a session, so it
//! charges them to the `background` scope of their database or to the `cluster`
//! scope. A client backend knows better: its own WAL counters (`pgWalUsage`, in every
//! backend event) say exactly how many records and bytes it inserted, and when a
//! top-level statement ran without any transaction id (none at its start, at its end,
//! or at any event in between, commits inside a `CALL` included), every one of those
//! records is xid-less. The backend then **claims** them at the statement's end:
//!
//! - they are charged at once to its scope and to that scope's policy bucket (so the
//!   next statement already sees the debt), and added to `claim_owed`;
//! - the walker side takes each xid-less record it reads out of `claim_owed` first and
//!   charges the background or cluster scope only with what is left over.
//!
//! Every byte is thus in exactly one scope once the walker has read the claimed
//! records: `sum(scopes) + pending_bytes - claim_owed = total`. Which background or
//! cluster scope is relieved is the one whose xid-less records arrive first (a
//! backend cannot tell which of its records went where).
//!
//! Every record a backend inserts while its transaction has an xid carries that xid
//! (the server stamps the current xid on every record, non-transactional messages and
//! hint-bit images included), so those are charged through the transaction map. A
//! statement whose transaction got its xid midway claims nothing: its counters cannot
//! be split at that point, and its records from before the xid stay with the
//! background or cluster scope.

use crate::shm::{Shared, Totals};

impl Shared<'_> {
    /// A client backend's statement wrote `t` (records and bytes, all without a
    /// transaction id): charges it to `scope` and its policy's bucket, and owes it to
    /// the walker side.
    pub fn claim_xidless(&mut self, scope: u32, t: &Totals, now: i64) {
        if t.bytes == 0 {
            return;
        }
        self.charge_scope(scope, t, 0, now);
        let c = &mut self.counters;
        c.claimed.add(t);
        c.claim_owed.add(t);
    }

    /// The walker side read `t`, one record without a transaction id: takes what
    /// backends claimed out of it and returns what is left to charge (records and
    /// bytes; image bytes are kept up to the bytes left).
    pub fn settle_claim(&mut self, t: &Totals) -> Totals {
        let owed = &mut self.counters.claim_owed;
        let bytes = t.bytes.min(owed.bytes);
        let records = t.records.min(owed.records);
        owed.bytes -= bytes;
        owed.records -= records;
        let left = t.bytes - bytes;
        Totals {
            records: t.records - records,
            bytes: left,
            fpi_bytes: t.fpi_bytes.min(left),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::{Entry, Ledger};
    use crate::shm::{Origin, SessionKey, Shared, Totals};
    use walker_decode::Format;

    fn xidless(bytes: u64) -> Entry<'static> {
        Entry {
            rmid: 21,
            info: 0,
            xid: 0,
            toplevel_xid: 0,
            bytes,
            fpi: 0,
            end_lsn: 0,
            first_block: None,
            main: &[],
        }
    }

    #[test]
    fn a_claim_moves_xidless_bytes_to_the_writer_exactly_once_in_either_order() {
        let mut s = Shared::zeroed();
        let mut l = Ledger::new(Format::for_server(150_000).unwrap());
        let key = SessionKey {
            role: 10,
            database: 5,
            ..SessionKey::default()
        };
        let w = s.scope(Origin::Session, &key).unwrap();
        let claim = |records, bytes| Totals {
            records,
            bytes,
            fpi_bytes: 0,
        };
        // Claimed before the walker reads the records: nothing goes to the cluster.
        s.claim_xidless(w, &claim(2, 1500), 0);
        l.record(&mut s, &xidless(1000), 0);
        l.record(&mut s, &xidless(500), 0);
        let cl = s.background_scope(0);
        assert_eq!(s.scopes[w as usize].totals.bytes, 1500);
        assert_eq!(s.scopes[cl as usize].totals.bytes, 0);
        assert_eq!(s.counters.claim_owed, Totals::default());
        // Read first, claimed after: the next xid-less records pay it back.
        l.record(&mut s, &xidless(700), 0);
        s.claim_xidless(w, &claim(1, 700), 0);
        l.record(&mut s, &xidless(300), 0);
        l.record(&mut s, &xidless(600), 0);
        assert_eq!(s.scopes[w as usize].totals.bytes, 2200);
        assert_eq!(s.counters.claimed.bytes, 2200);
        // Every byte read is in exactly one scope once the claims are settled.
        let sum: u64 = s.scopes.iter().map(|x| x.totals.bytes).sum();
        assert_eq!(
            sum + s.counters.pending_bytes - s.counters.claim_owed.bytes,
            s.counters.total.bytes
        );
        assert_eq!(s.counters.claim_owed, Totals::default());
        assert_eq!(s.scopes[cl as usize].totals.bytes, 900);
    }
}

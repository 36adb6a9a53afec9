//! The budget's state in walker's snapshots: every total (scopes, databases,
//! relations, resource managers) and the walker side's pending transactions, as of the
//! snapshot's LSN. Policies live in their table and buckets refill by themselves, so
//! neither is saved; profiles and decisions are advisory and start over.

use crate::ledger::{Ledger, Parked};
use crate::shm::{Origin, SessionKey, Shared, Totals};
use serde::{Deserialize, Serialize};

/// First line of every snapshot this version writes.
pub const MAGIC: &str = "BUDGET1\n";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ScopeRow {
    origin: u32,
    database: u32,
    role: u32,
    tenant: String,
    role_name: String,
    database_name: String,
    application: String,
    totals: [u64; 3],
    transactions: u64,
}

/// Everything saved.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct State {
    scopes: Vec<ScopeRow>,
    dbs: Vec<(u32, [u64; 3])>,
    rels: Vec<(u32, u32, u32, [u64; 3])>,
    rmgrs: Vec<(u8, [u64; 3])>,
    no_relation: [u64; 3],
    other_relations: [u64; 3],
    total: [u64; 3],
    pending_bytes: u64,
    unattributed_transactions: u64,
    parked: Vec<Parked>,
    /// xid-less WAL backends claimed (already in their scopes) that the records
    /// after the snapshot's LSN still owe (claim.rs).
    #[serde(default)]
    claim_owed: [u64; 3],
}

/// Captures the state (under the region lock, with the ledger held).
pub fn capture(s: &Shared, ledger: &Ledger) -> State {
    State {
        scopes: s
            .scopes
            .iter()
            .filter(|x| x.origin != 0 && (x.totals.records > 0 || x.transactions > 0))
            .map(|x| ScopeRow {
                origin: x.origin,
                database: x.database,
                role: x.role,
                tenant: x.tenant.as_str().into(),
                role_name: x.role_name.as_str().into(),
                database_name: x.database_name.as_str().into(),
                application: x.application.as_str().into(),
                totals: x.totals.to_array(),
                transactions: x.transactions,
            })
            .collect(),
        dbs: s
            .dbs
            .iter()
            .filter(|d| d.used != 0)
            .map(|d| (d.oid, d.totals.to_array()))
            .collect(),
        rels: s
            .rels
            .iter()
            .filter(|r| r.used != 0)
            .map(|r| (r.ts, r.db, r.rel, r.totals.to_array()))
            .collect(),
        rmgrs: s
            .rmgrs
            .iter()
            .enumerate()
            .filter(|(_, t)| t.records > 0)
            .map(|(i, t)| (i as u8, t.to_array()))
            .collect(),
        no_relation: s.no_relation.to_array(),
        other_relations: s.other_relations.to_array(),
        total: s.counters.total.to_array(),
        pending_bytes: s.counters.pending_bytes,
        unattributed_transactions: s.counters.unattributed_transactions,
        parked: ledger.parked(),
        claim_owed: s.counters.claim_owed.to_array(),
    }
}

/// The snapshot bytes.
pub fn encode(st: &State) -> Vec<u8> {
    let mut out = MAGIC.as_bytes().to_vec();
    out.extend(serde_json::to_vec(st).unwrap_or_default());
    out
}

/// Reads snapshot bytes.
pub fn decode(bytes: &[u8]) -> Result<State, String> {
    let body = bytes
        .strip_prefix(MAGIC.as_bytes())
        .ok_or("not a budget snapshot of this version")?;
    serde_json::from_slice(body).map_err(|e| format!("damaged budget snapshot: {e}"))
}

/// Replaces every total with `st` (or zero, for `None`), and the ledger's pending
/// transactions with the saved ones. Scopes are matched by who they are, so scopes
/// backends created since the server started keep their place.
pub fn restore(s: &mut Shared, ledger: &mut Ledger, st: Option<&State>, lsn: u64) {
    s.clear_totals();
    ledger.clear();
    s.as_of_lsn = lsn;
    let Some(st) = st else {
        return;
    };
    for r in &st.scopes {
        let origin = Origin::from_u32(r.origin);
        let key = SessionKey {
            tenant: r.tenant.clone(),
            role: r.role,
            role_name: r.role_name.clone(),
            database: r.database,
            database_name: r.database_name.clone(),
            application: r.application.clone(),
        };
        if let Some(i) = s.scope(origin, &key) {
            let sc = &mut s.scopes[i as usize];
            sc.totals.add(&Totals::from_array(r.totals));
            sc.transactions = sc.transactions.saturating_add(r.transactions);
        }
    }
    for (oid, t) in &st.dbs {
        s.restore_db(*oid, Totals::from_array(*t));
    }
    for (ts, db, rel, t) in &st.rels {
        s.restore_rel(*ts, *db, *rel, Totals::from_array(*t));
    }
    for (i, t) in &st.rmgrs {
        s.rmgrs[*i as usize] = Totals::from_array(*t);
    }
    s.no_relation = Totals::from_array(st.no_relation);
    s.other_relations = Totals::from_array(st.other_relations);
    s.counters.total = Totals::from_array(st.total);
    s.counters.pending_bytes = st.pending_bytes;
    s.counters.unattributed_transactions = st.unattributed_transactions;
    s.counters.claim_owed = Totals::from_array(st.claim_owed);
    ledger.restore(&st.parked);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Entry;
    use walker_decode::Format;

    fn rec(xid: u32, bytes: u64, db: u32) -> Entry<'static> {
        Entry {
            rmid: 10,
            info: 0,
            xid,
            toplevel_xid: 0,
            bytes,
            fpi: 3,
            end_lsn: 100,
            first_block: Some((1663, db, 16000 + db)),
            main: &[],
        }
    }

    #[test]
    fn a_snapshot_restores_every_total_and_the_pending_transactions() {
        let mut s = Shared::zeroed();
        let mut l = Ledger::new(Format::for_server(150_000).unwrap());
        let key = SessionKey {
            role: 10,
            role_name: "w".into(),
            database: 5,
            database_name: "d".into(),
            ..SessionKey::default()
        };
        let scope = s.scope(Origin::Session, &key).unwrap();
        s.map_xid(7, scope, 0);
        l.record(&mut s, &rec(7, 500, 5), 0);
        l.record(&mut s, &rec(0, 40, 6), 0);
        l.record(&mut s, &rec(9, 70, 5), 0); // pending: 9 is not published
        let bytes = encode(&capture(&s, &l));
        // A fresh region (the server restarted), where a backend already made a scope.
        let mut s2 = Shared::zeroed();
        let other = SessionKey {
            role: 11,
            ..key.clone()
        };
        s2.scope(Origin::Session, &other).unwrap();
        let mut l2 = Ledger::new(Format::for_server(150_000).unwrap());
        restore(&mut s2, &mut l2, Some(&decode(&bytes).unwrap()), 100);
        assert_eq!(capture(&s2, &l2), capture(&s, &l));
        assert_eq!(s2.counters.pending_bytes, 70);
        // The pending transaction is charged when its scope appears.
        let again = s2.scope(Origin::Session, &key).unwrap();
        s2.map_xid(9, again, 0);
        l2.record(&mut s2, &rec(9, 30, 5), 0);
        assert_eq!(s2.scopes[again as usize].totals.bytes, 600);
        assert!(decode(b"BUDGET0\n{}").is_err());
        assert!(decode(b"BUDGET1\n{").is_err());
        restore(&mut s2, &mut l2, None, 0);
        assert_eq!(s2.counters.total, Totals::default());
    }
}

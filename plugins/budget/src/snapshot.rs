//! The budget's state in walker's snapshots: every total (scopes, databases,
//! relations, resource managers), the walker side's pending transactions, as of the
//! snapshot's LSN, and the learned profiles (the predictions admission uses).
//! Policies live in their table and buckets refill by themselves, so neither is saved;
//! decisions are a log of the past and start over. The LSN up to which buckets were
//! charged is saved and kept: records read again after a restart are not charged to
//! buckets a second time.
//!
//! Format 2 (`BUDGET2`) added the profiles; format 1 (`BUDGET1`) still reads, with
//! no profiles.

use crate::ledger::{Ledger, Parked};
use crate::shm::{Origin, Profile, Scope, SessionKey, Shared, SharedRef, Totals};
use serde::{Deserialize, Serialize};
use walker_abi::Envelope;

/// The snapshot's envelope: `BUDGET2\n` (format 1, `BUDGET1\n`, from before profiles
/// were saved, still reads); JSON of [`State`] follows.
pub const ENVELOPE: Envelope = Envelope {
    tag: "BUDGET",
    current: 2,
    oldest: 1,
};

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

/// Who a scope is, without its totals (what a profile is kept for).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ScopeKey {
    origin: u32,
    database: u32,
    role: u32,
    tenant: String,
    role_name: String,
    database_name: String,
    application: String,
}

impl ScopeKey {
    fn of(x: &Scope) -> ScopeKey {
        ScopeKey {
            origin: x.origin,
            database: x.database,
            role: x.role,
            tenant: x.tenant.as_str().into(),
            role_name: x.role_name.as_str().into(),
            database_name: x.database_name.as_str().into(),
            application: x.application.as_str().into(),
        }
    }

    fn session_key(&self) -> SessionKey {
        SessionKey {
            tenant: self.tenant.clone(),
            role: self.role,
            role_name: self.role_name.clone(),
            database: self.database,
            database_name: self.database_name.clone(),
            application: self.application.clone(),
        }
    }
}

/// One learned profile; `scope` indexes [`State::profile_scopes`], `None` for a
/// class's profile over every scope.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ProfileRow {
    class: u32,
    query_id: u64,
    scope: Option<u32>,
    count: u64,
    avg_bytes: f64,
    max_bytes: u64,
    last_micros: i64,
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
    /// Absent from format 1.
    #[serde(default)]
    profiles: Vec<ProfileRow>,
    /// The scopes the profiles belong to, each once (absent from format 1).
    #[serde(default)]
    profile_scopes: Vec<ScopeKey>,
    /// End of the last record charged to buckets (absent in older snapshots).
    #[serde(default)]
    charged_lsn: u64,
}

/// Captures the state (under the region lock, with the ledger held).
pub fn capture(s: &SharedRef, ledger: &Ledger) -> State {
    let (profiles, profile_scopes) = capture_profiles(s);
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
        profiles,
        profile_scopes,
        charged_lsn: s.charged_lsn,
    }
}

/// The used profiles, with the scopes they belong to listed once.
fn capture_profiles(s: &SharedRef) -> (Vec<ProfileRow>, Vec<ScopeKey>) {
    let mut keys: Vec<ScopeKey> = Vec::new();
    // Scope slot index -> position in `keys` (u32::MAX: not listed yet).
    let mut pos_of = vec![u32::MAX; s.scopes.len()];
    let mut rows = Vec::new();
    for p in s.profiles.iter().filter(|p| s.profile_is_current(p)) {
        let scope = match p.scope {
            0 => None,
            i => {
                let slot = i - 1;
                let Some(x) = s.scopes.get(slot as usize) else {
                    continue;
                };
                // A profile whose scope slot is free now has no owner to keep.
                if x.origin == 0 {
                    continue;
                }
                let pos = &mut pos_of[slot as usize];
                if *pos == u32::MAX {
                    *pos = keys.len() as u32;
                    keys.push(ScopeKey::of(x));
                }
                Some(*pos)
            }
        };
        rows.push(ProfileRow {
            class: p.class,
            query_id: p.query_id,
            scope,
            count: p.count,
            avg_bytes: p.avg_bytes,
            max_bytes: p.max_bytes,
            last_micros: p.last_micros,
        });
    }
    (rows, keys)
}

/// The snapshot bytes.
pub fn encode(st: &State) -> Vec<u8> {
    let mut out = Vec::new();
    ENVELOPE.begin(&mut out);
    out.extend(serde_json::to_vec(st).unwrap_or_default());
    out
}

/// Reads snapshot bytes.
pub fn decode(bytes: &[u8]) -> Result<State, String> {
    // Format 1 lacks fields format 2 added, which read as their defaults.
    let (_, body) = ENVELOPE.open(bytes).map_err(|e| e.to_string())?;
    serde_json::from_slice(body).map_err(|e| format!("damaged budget snapshot: {e}"))
}

/// Replaces every total with `st` (or zero, for `None`), and the ledger's pending
/// transactions with the saved ones. Scopes are matched by who they are, so scopes
/// backends created since the server started keep their place. Saved profiles come
/// back unless one with the same key was learned since (the live one is newer).
pub fn restore(s: &mut Shared, ledger: &mut Ledger, st: Option<&State>, lsn: u64) {
    s.clear_totals();
    ledger.clear();
    ledger.captured(lsn);
    s.as_of_lsn = lsn;
    let Some(st) = st else {
        return;
    };
    // Shared memory that survived (the worker restarted) knows best; after a server
    // restart the buckets are new and the snapshot's LSN is the lower bound.
    s.charged_lsn = s.charged_lsn.max(st.charged_lsn);
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
    // Each saved scope of a profile found (or added) once: its slot index + 1.
    let slots: Vec<Option<u32>> = st
        .profile_scopes
        .iter()
        .map(|k| {
            s.scope(Origin::from_u32(k.origin), &k.session_key())
                .map(|i| i.saturating_add(1))
        })
        .collect();
    for p in &st.profiles {
        let scope = match p.scope {
            None => 0,
            Some(i) => match slots.get(i as usize).copied().flatten() {
                Some(slot) => slot,
                None => continue,
            },
        };
        s.restore_profile(&Profile {
            used: 1,
            scope_tag: 0,
            class: p.class,
            query_id: p.query_id,
            scope,
            count: p.count,
            avg_bytes: p.avg_bytes,
            max_bytes: p.max_bytes,
            last_micros: p.last_micros,
        });
    }
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
        let bytes = encode(&capture(&s.view(), &l));
        // A fresh region (the server restarted), where a backend already made a scope.
        let mut s2 = Shared::zeroed();
        let other = SessionKey {
            role: 11,
            ..key.clone()
        };
        s2.scope(Origin::Session, &other).unwrap();
        let mut l2 = Ledger::new(Format::for_server(150_000).unwrap());
        restore(&mut s2, &mut l2, Some(&decode(&bytes).unwrap()), 100);
        assert_eq!(capture(&s2.view(), &l2), capture(&s.view(), &l));
        assert_eq!(s2.counters.pending_bytes, 70);
        // The pending transaction is charged when its scope appears.
        let again = s2.scope(Origin::Session, &key).unwrap();
        s2.map_xid(9, again, 0);
        l2.record(&mut s2, &rec(9, 30, 5), 0);
        assert_eq!(s2.scopes[again as usize].totals.bytes, 600);
        assert!(decode(b"BUDGET0\n{}").is_err());
        assert!(decode(b"BUDGET3\n{}").is_err());
        assert!(decode(b"BUDGET1\n{").is_err());
        restore(&mut s2, &mut l2, None, 0);
        assert_eq!(s2.counters.total, Totals::default());
    }

    #[test]
    fn profiles_survive_a_snapshot_and_format_1_still_reads() {
        let mut s = Shared::zeroed();
        let l = Ledger::new(Format::for_server(150_000).unwrap());
        let key = SessionKey {
            role: 10,
            role_name: "w".into(),
            database: 5,
            database_name: "d".into(),
            application: "app".into(),
            ..SessionKey::default()
        };
        let scope = s.scope(Origin::Session, &key).unwrap();
        s.learn(2, 77, scope, 1000, 1);
        s.learn(2, 77, scope, 2000, 2);
        let want = s.predict(2, 77, scope);
        assert_eq!(want, 1300.0);
        let st = capture(&s.view(), &l);
        assert_eq!(st.profiles.len(), 3);
        assert_eq!(st.profile_scopes.len(), 1, "the scope is saved once");
        let bytes = encode(&st);
        assert!(bytes.starts_with(b"BUDGET2\n"));
        // A fresh region where other scopes exist first: the profile follows its scope.
        let mut s2 = Shared::zeroed();
        s2.scope(
            Origin::Session,
            &SessionKey {
                role: 11,
                ..key.clone()
            },
        )
        .unwrap();
        let mut l2 = Ledger::new(Format::for_server(150_000).unwrap());
        restore(&mut s2, &mut l2, Some(&decode(&bytes).unwrap()), 100);
        let again = s2.scope(Origin::Session, &key).unwrap();
        assert_ne!(again, scope);
        assert_eq!(s2.predict(2, 77, again), want);
        assert_eq!(s2.predict(2, 78, 999), 1300.0);
        let p = s2.profiles.iter().find(|p| p.query_id == 77).unwrap();
        assert_eq!((p.count, p.max_bytes, p.last_micros), (2, 2000, 2));
        // Format 1 (no profiles field) reads, with no profiles.
        let mut v1 = serde_json::to_value(&st).unwrap();
        v1.as_object_mut().unwrap().remove("profiles");
        v1.as_object_mut().unwrap().remove("profile_scopes");
        let mut old = b"BUDGET1\n".to_vec();
        old.extend(serde_json::to_vec(&v1).unwrap());
        let back = decode(&old).unwrap();
        assert!(back.profiles.is_empty());
        assert_eq!(back.total, st.total);
    }
}

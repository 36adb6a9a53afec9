//! The scope table's bookkeeping: a hash index so that finding a scope costs the same
//! however full the table is, a recency list of session scopes (least recently used
//! first out when the table is full), and per role a count and its own recency list
//! (a role at [`Capacities::per_role`] scopes evicts its own scopes, never other
//! roles'). The tables' lengths are `budget.max_scopes` ([`crate::capacity`]).
//!
//! Rules at the bounds:
//! - A new session scope takes a never-used slot while there is one; else the slot of
//!   the session scope used least recently ([`EVICT_PROBES`] candidates are looked at,
//!   skipping scopes that transactions in the map still point to).
//! - An evicted scope's totals and transactions are folded into the evicted scope of
//!   its database (when that one does not exist yet, the victim's slot becomes it).
//! - Background, cluster, unattributed and evicted scopes are never evicted.
//! - A session for which no slot can be freed gets `None`; the backend then charges
//!   the evicted scope of its database and is still governed by its policy
//!   ([`Shared::policy_for`]).
//!
//! Every operation is O(1) (bounded by the table's lengths), under the region lock.

use crate::probe::{self, shift_delete, Look, Probe};
use crate::shm::{
    mix, Capacities, Name, Origin, RoleSlot, Scope, SessionKey, Shared, EVICT_PROBES,
};

/// The hash of what identifies a scope (non-session scopes: origin and database).
fn scope_hash(origin: Origin, database: u32, role: u32, tenant: &Name, app: &Name) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for v in [origin as u32, database, role] {
        v.to_le_bytes().into_iter().for_each(&mut feed);
    }
    tenant.as_str().bytes().for_each(&mut feed);
    feed(0xff);
    app.as_str().bytes().for_each(&mut feed);
    mix(h)
}

/// Which recency list.
#[derive(Clone, Copy)]
enum List {
    /// Every session scope.
    All,
    /// The scopes of the role in this slot of `roles`.
    Role(usize),
}

impl Shared<'_> {
    fn ends(&mut self, l: List) -> (&mut [Scope], &mut u32, &mut u32) {
        match l {
            List::All => (
                &mut *self.scopes,
                &mut self.head.lru_head,
                &mut self.head.lru_tail,
            ),
            List::Role(r) => {
                let slot = &mut self.roles[r];
                (&mut *self.scopes, &mut slot.head, &mut slot.tail)
            }
        }
    }

    fn links(s: &mut Scope, l: List) -> (&mut u32, &mut u32) {
        match l {
            List::All => (&mut s.lru_prev, &mut s.lru_next),
            List::Role(_) => (&mut s.role_prev, &mut s.role_next),
        }
    }

    fn push_front(&mut self, l: List, i: usize) {
        let (scopes, head, tail) = self.ends(l);
        let me = i as u32 + 1;
        let old = *head;
        {
            let (prev, next) = Shared::links(&mut scopes[i], l);
            *prev = 0;
            *next = old;
        }
        if old != 0 {
            *Shared::links(&mut scopes[old as usize - 1], l).0 = me;
        } else {
            *tail = me;
        }
        *head = me;
    }

    fn unlink(&mut self, l: List, i: usize) {
        let (scopes, head, tail) = self.ends(l);
        let (p, n) = {
            let (prev, next) = Shared::links(&mut scopes[i], l);
            let pn = (*prev, *next);
            *prev = 0;
            *next = 0;
            pn
        };
        if p != 0 {
            *Shared::links(&mut scopes[p as usize - 1], l).1 = n;
        } else {
            *head = n;
        }
        if n != 0 {
            *Shared::links(&mut scopes[n as usize - 1], l).0 = p;
        } else {
            *tail = p;
        }
    }

    fn role_find(&self, role: u32) -> Probe {
        let n = self.roles.len();
        probe::find(self.roles, Shared::role_home(role, n), n, |r| {
            if r.used == 0 {
                Look::Empty
            } else if r.role == role {
                Look::Same
            } else {
                Look::Other
            }
        })
    }

    fn role_home(role: u32, slots: usize) -> usize {
        probe::home(mix(role as u64 ^ 0x5eed), slots)
    }

    /// The role's slot, added when missing (the table has twice as many slots as
    /// there can be roles with scopes, so there is always an empty one; `None` only
    /// if that were ever untrue).
    fn role_slot(&mut self, role: u32) -> Option<usize> {
        match self.role_find(role) {
            Probe::Found(i) => Some(i),
            Probe::Vacant(i) => {
                self.roles[i] = RoleSlot {
                    used: 1,
                    role,
                    ..RoleSlot::default()
                };
                Some(i)
            }
            Probe::Full => None,
        }
    }

    /// The slot of the scope index that points to the scope hashed `h` for which
    /// `same` holds.
    fn index_find(&self, h: u64, same: impl Fn(&Scope) -> bool) -> Option<usize> {
        let n = self.scope_index.len();
        let scopes = &self.scopes;
        match probe::find(self.scope_index, probe::home(h, n), n, |e| match *e {
            0 => Look::Empty,
            e if scopes[e as usize - 1].hash == h && same(&scopes[e as usize - 1]) => Look::Same,
            _ => Look::Other,
        }) {
            Probe::Found(pos) => Some(pos),
            Probe::Vacant(_) | Probe::Full => None,
        }
    }

    /// Points the index at scope `i` (the index has more slots than there are scopes,
    /// so there is always an empty one).
    fn index_insert(&mut self, i: usize) {
        let n = self.scope_index.len();
        let at = probe::find(
            self.scope_index,
            probe::home(self.scopes[i].hash, n),
            n,
            |e| {
                if *e == 0 {
                    Look::Empty
                } else {
                    Look::Other
                }
            },
        );
        if let Probe::Vacant(pos) = at {
            self.scope_index[pos] = i as u32 + 1;
        }
    }

    fn index_remove(&mut self, i: usize) {
        let n = self.scope_index.len();
        let me = i as u32 + 1;
        let at = probe::find(
            self.scope_index,
            probe::home(self.scopes[i].hash, n),
            n,
            |e| match *e {
                0 => Look::Empty,
                e if e == me => Look::Same,
                _ => Look::Other,
            },
        );
        if let Probe::Found(pos) = at {
            let scopes = &self.scopes;
            shift_delete(self.scope_index, pos, |e| {
                (*e != 0).then(|| probe::home(scopes[*e as usize - 1].hash, n))
            });
        }
    }

    /// Finds or adds the scope of `origin` for `key` (only the database matters for
    /// non-session origins); `None` when no slot can be freed. Finding a session scope
    /// marks it used.
    pub fn scope(&mut self, origin: Origin, key: &SessionKey) -> Option<u32> {
        let session = origin == Origin::Session;
        let (role, tenant, app) = if session {
            (
                key.role,
                Name::new(&key.tenant),
                Name::new(&key.application),
            )
        } else {
            (0, Name::default(), Name::default())
        };
        let h = scope_hash(origin, key.database, role, &tenant, &app);
        let found = self.index_find(h, |s| {
            s.origin == origin as u32
                && s.database == key.database
                && s.role == role
                && s.tenant == tenant
                && s.application == app
        });
        if let Some(pos) = found {
            let i = self.scope_index[pos] as usize - 1;
            self.touch_scope(i);
            return Some(i as u32);
        }
        let i = self.free_slot(session.then_some(role))?;
        let gen = self.scopes[i].gen.wrapping_add(1);
        self.scopes[i] = Scope {
            origin: origin as u32,
            database: key.database,
            role,
            tenant,
            role_name: if session {
                Name::new(&key.role_name)
            } else {
                Name::default()
            },
            database_name: Name::new(&key.database_name),
            application: app,
            hash: h,
            gen,
            ..Scope::default()
        };
        self.index_insert(i);
        if session {
            if let Some(r) = self.role_slot(role) {
                self.roles[r].count += 1;
                self.push_front(List::Role(r), i);
            }
            self.push_front(List::All, i);
        }
        Some(i as u32)
    }

    /// True when slot `i` still holds the scope a cache saw with generation `gen`;
    /// then marks it used.
    pub fn scope_still(&mut self, i: u32, gen: u32) -> bool {
        let ok = self
            .scopes
            .get(i as usize)
            .is_some_and(|s| s.origin != 0 && s.gen == gen);
        if ok {
            self.touch_scope(i as usize);
        }
        ok
    }

    /// Marks session scope `i` as the most recently used (of all and of its role).
    pub fn touch_scope(&mut self, i: usize) {
        let s = &self.scopes[i];
        if s.origin != Origin::Session as u32 || self.lru_head == i as u32 + 1 {
            return;
        }
        let Probe::Found(r) = self.role_find(s.role) else {
            return;
        };
        self.unlink(List::All, i);
        self.push_front(List::All, i);
        self.unlink(List::Role(r), i);
        self.push_front(List::Role(r), i);
    }

    /// The least recently used scope of list `l` that no mapped transaction points
    /// to, among the last [`EVICT_PROBES`].
    fn victim(&self, l: List) -> Option<usize> {
        let mut cur = match l {
            List::All => self.lru_tail,
            List::Role(r) => self.roles[r].tail,
        };
        for _ in 0..EVICT_PROBES {
            if cur == 0 {
                return None;
            }
            let i = cur as usize - 1;
            let s = &self.scopes[i];
            if s.xids == 0 {
                return Some(i);
            }
            cur = match l {
                List::All => s.lru_prev,
                List::Role(_) => s.role_prev,
            };
        }
        None
    }

    /// A slot for a new scope (of `role` for a session scope).
    fn free_slot(&mut self, role: Option<u32>) -> Option<usize> {
        if let Some(role) = role {
            if let Probe::Found(r) = self.role_find(role) {
                if self.roles[r].count as usize >= Capacities::per_role(self.scopes.len()) {
                    let v = self.victim(List::Role(r))?;
                    if let Some(i) = self.evict(v) {
                        return Some(i);
                    }
                }
            }
        }
        // At most two evictions: one may turn into its database's evicted scope.
        for _ in 0..3 {
            if (self.scopes_used as usize) < self.scopes.len() {
                self.scopes_used += 1;
                return Some(self.scopes_used as usize - 1);
            }
            let v = self.victim(List::All)?;
            if let Some(i) = self.evict(v) {
                return Some(i);
            }
        }
        None
    }

    /// Evicts session scope `v`: its totals go to its database's evicted scope.
    /// Returns the freed slot, or `None` when `v` itself became that evicted scope.
    fn evict(&mut self, v: usize) -> Option<usize> {
        self.counters.scopes_evicted = self.counters.scopes_evicted.saturating_add(1);
        let old = self.scopes[v];
        self.unlink(List::All, v);
        if let Probe::Found(r) = self.role_find(old.role) {
            self.unlink(List::Role(r), v);
            self.roles[r].count = self.roles[r].count.saturating_sub(1);
            if self.roles[r].count == 0 {
                let slots = self.roles.len();
                shift_delete(self.roles, r, |x| {
                    (x.used != 0).then(|| Shared::role_home(x.role, slots))
                });
            }
        }
        self.index_remove(v);
        let none = Name::default();
        let h = scope_hash(Origin::Evicted, old.database, 0, &none, &none);
        let found = self.index_find(h, |s| {
            s.origin == Origin::Evicted as u32 && s.database == old.database
        });
        match found {
            Some(pos) => {
                let e = &mut self.scopes[self.scope_index[pos] as usize - 1];
                e.totals.add(&old.totals);
                // What the history already counted for the victim is not counted again
                // as the evicted scope's growth.
                e.sampled_bytes = e.sampled_bytes.saturating_add(old.sampled_bytes);
                e.transactions = e.transactions.saturating_add(old.transactions);
                self.scopes[v] = Scope {
                    gen: old.gen.wrapping_add(1),
                    ..Scope::default()
                };
                Some(v)
            }
            None => {
                self.scopes[v] = Scope {
                    origin: Origin::Evicted as u32,
                    database: old.database,
                    database_name: old.database_name,
                    totals: old.totals,
                    sampled_bytes: old.sampled_bytes,
                    transactions: old.transactions,
                    last_micros: old.last_micros,
                    hash: h,
                    gen: old.gen.wrapping_add(1),
                    ..Scope::default()
                };
                self.index_insert(v);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::MAX_SCOPES_PER_ROLE;
    const MAX_SCOPES: usize = Capacities::DEFAULT.scopes as usize;
    use crate::shm::Totals;

    fn key(role: u32, app: &str) -> SessionKey {
        SessionKey {
            role,
            role_name: format!("r{role}"),
            database: 5,
            database_name: "db".into(),
            application: app.into(),
            ..SessionKey::default()
        }
    }

    fn bytes(s: &Shared, origin: Origin) -> u64 {
        s.scopes
            .iter()
            .filter(|x| x.origin == origin as u32)
            .map(|x| x.totals.bytes)
            .sum()
    }

    fn one(b: u64) -> Totals {
        Totals {
            records: 1,
            bytes: b,
            fpi_bytes: 0,
        }
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_used_and_folds_its_totals() {
        let mut s = Shared::zeroed();
        // One scope per role, so the per-role bound plays no part.
        for r in 0..MAX_SCOPES as u32 {
            let i = s.scope(Origin::Session, &key(100 + r, "a")).unwrap();
            s.charge_scope(i, &one(10), 1, 0);
        }
        assert_eq!(s.scopes_used as usize, MAX_SCOPES);
        // Role 100's scope is used again: role 101's is now the least recently used.
        let first = s.scope(Origin::Session, &key(100, "a")).unwrap();
        let new = s.scope(Origin::Session, &key(5000, "a")).unwrap();
        // The first eviction turned role 101's slot into the evicted scope of database
        // 5 (with its 10 bytes); the second freed role 102's slot for the new scope.
        assert_eq!(s.counters.scopes_evicted, 2);
        assert_eq!(bytes(&s, Origin::Evicted), 20);
        assert_eq!(s.scopes[new as usize].role, 5000);
        assert_eq!(s.scope(Origin::Session, &key(100, "a")), Some(first));
        // Nothing was lost: 1,024 x 10 bytes.
        assert_eq!(
            bytes(&s, Origin::Session) + bytes(&s, Origin::Evicted),
            MAX_SCOPES as u64 * 10
        );
        // A third: role 103 goes, folded into the existing evicted scope.
        s.scope(Origin::Session, &key(5001, "a")).unwrap();
        assert_eq!(s.counters.scopes_evicted, 3);
        assert_eq!(bytes(&s, Origin::Evicted), 30);
        assert_eq!(
            s.scopes.iter().filter(|x| x.role == 103).count(),
            0,
            "role 103's scope is gone"
        );
        // Found again, scopes are not duplicated.
        let n = s.scopes.iter().filter(|x| x.origin != 0).count();
        assert_eq!(n, MAX_SCOPES);
    }

    #[test]
    fn the_history_keeps_each_intervals_largest_writers() {
        use crate::shm::{HISTORY_SAMPLES, HISTORY_SCOPES};
        let mut s = Shared::zeroed();
        let sec = 1_000_000;
        let a = s.scope(Origin::Session, &key(1, "a")).unwrap();
        s.charge_scope(a, &one(500), 1, 0);
        // The first call starts the first interval: what came before is not in it.
        s.sample_history(10 * sec, 60 * sec);
        assert!(s.view().recent_history().is_empty());
        let b = s.scope(Origin::Session, &key(2, "b")).unwrap();
        s.charge_scope(a, &one(100), 1, 0);
        s.charge_scope(b, &one(50), 1, 0);
        // Not due yet.
        s.sample_history(69 * sec, 60 * sec);
        assert!(s.view().recent_history().is_empty());
        s.sample_history(70 * sec, 60 * sec);
        s.charge_scope(b, &one(30), 1, 0);
        s.sample_history(130 * sec, 60 * sec);
        let h = s.view().recent_history();
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].at_micros, h[0].bytes), (70 * sec, 150));
        let top: Vec<(u32, u64)> = h[0].top.iter().map(|e| (e.scope, e.bytes)).collect();
        assert_eq!(&top[..3], &[(a + 1, 100), (b + 1, 50), (0, 0)]);
        assert_eq!(
            (h[1].bytes, h[1].top[0].scope, h[1].top[0].bytes),
            (30, b + 1, 30)
        );
        // More writers than a sample names: the largest, and all of them in the total.
        for r in 0..20u32 {
            let i = s.scope(Origin::Session, &key(100 + r, "w")).unwrap();
            s.charge_scope(i, &one(10 + r as u64), 1, 0);
        }
        s.sample_history(190 * sec, 60 * sec);
        let last = *s.view().recent_history().last().unwrap();
        assert_eq!(last.bytes, (10..30).sum::<u64>());
        let named: Vec<u64> = last.top.iter().map(|e| e.bytes).collect();
        assert_eq!(
            named,
            (29 - HISTORY_SCOPES as u64 + 1..=29)
                .rev()
                .collect::<Vec<_>>()
        );
        // The ring keeps the last HISTORY_SAMPLES, oldest first.
        for k in 0..HISTORY_SAMPLES as i64 {
            s.charge_scope(a, &one(1), 1, 0);
            s.sample_history((250 + 60 * k) * sec, 60 * sec);
        }
        let h = s.view().recent_history();
        assert_eq!(h.len(), HISTORY_SAMPLES);
        assert!(h.windows(2).all(|w| w[0].at_micros < w[1].at_micros));
        // A reset empties it and starts again.
        s.reset_totals(0);
        assert!(s.view().recent_history().is_empty());
    }

    #[test]
    fn an_evicted_scope_adds_only_its_unsampled_bytes_to_the_history() {
        let mut s = Shared::zeroed();
        let sec = 1_000_000;
        s.sample_history(0, sec);
        for r in 0..MAX_SCOPES as u32 {
            let i = s.scope(Origin::Session, &key(100 + r, "a")).unwrap();
            s.charge_scope(i, &one(10), 1, 0);
        }
        s.sample_history(sec, sec);
        // The least recently used gets 7 more bytes, then is evicted by a new scope.
        let first = s.scope(Origin::Session, &key(100, "a")).unwrap();
        s.charge_scope(first, &one(7), 1, 0);
        for r in 0..MAX_SCOPES as u32 - 1 {
            s.scope(Origin::Session, &key(101 + r, "a")).unwrap();
        }
        s.scope(Origin::Session, &key(9000, "new")).unwrap();
        s.scope(Origin::Session, &key(9001, "new")).unwrap();
        assert!(s.counters.scopes_evicted > 0);
        s.sample_history(2 * sec, sec);
        let last = *s.view().recent_history().last().unwrap();
        // Only the 7 bytes written since the last sample; the evicted 10-byte totals
        // were counted in the interval they were written in.
        assert_eq!(last.bytes, 7);
    }

    #[test]
    fn a_table_of_64_scopes_is_bounded_by_its_length() {
        let c = Capacities {
            scopes: 64,
            ..Capacities::DEFAULT
        };
        let mut s = Shared::zeroed_with(c);
        // One role keeps 64 / 8 = 8 scopes: 20 names evict its own 12 oldest.
        for a in 0..20 {
            s.scope(Origin::Session, &key(9, &format!("app{a}")))
                .unwrap();
        }
        assert_eq!(s.scopes.iter().filter(|x| x.role == 9).count(), 8);
        assert_eq!(s.counters.scopes_evicted, 12);
        // 7 roles with 8 names each fill the table's remaining slots, and the next new
        // scope evicts the least recently used of all.
        let before = s.counters.scopes_evicted;
        for r in 0..7 {
            for a in 0..8 {
                s.scope(Origin::Session, &key(20 + r, &format!("b{a}")))
                    .unwrap();
            }
        }
        let used = s.scopes.iter().filter(|x| x.origin != 0).count();
        assert_eq!(used, 64, "the table is full at its length");
        assert_eq!(s.scopes_used, 64);
        assert!(s.counters.scopes_evicted > before, "a full table evicts");
        s.scope(Origin::Session, &key(99, "new")).unwrap();
        assert_eq!(s.scopes.iter().filter(|x| x.origin != 0).count(), 64);
    }

    #[test]
    fn one_role_evicts_only_its_own_scopes() {
        let mut s = Shared::zeroed();
        let other = s.scope(Origin::Session, &key(7, "keep")).unwrap();
        for a in 0..(MAX_SCOPES_PER_ROLE + 50) {
            let i = s
                .scope(Origin::Session, &key(9, &format!("app{a}")))
                .unwrap();
            s.charge_scope(i, &one(1), 1, 0);
        }
        let mine = s.scopes.iter().filter(|x| x.role == 9).count();
        assert_eq!(mine, MAX_SCOPES_PER_ROLE);
        // 50 own scopes evicted (the first became the evicted scope); app0..app49 gone.
        assert_eq!(s.counters.scopes_evicted, 50);
        assert_eq!(bytes(&s, Origin::Evicted), 50);
        assert!(s.scopes.iter().all(|x| x.application.as_str() != "app49"));
        assert!(s.scopes.iter().any(|x| x.application.as_str() == "app50"));
        assert_eq!(s.scopes[other as usize].application.as_str(), "keep");
        assert_eq!(
            match s.role_find(9) {
                Probe::Found(r) => s.roles[r].count as usize,
                other => panic!("role 9 has no slot: {other:?}"),
            },
            MAX_SCOPES_PER_ROLE
        );
    }

    #[test]
    fn scopes_with_mapped_transactions_stay_and_caches_notice_a_new_occupant() {
        let mut s = Shared::zeroed();
        let a = s.scope(Origin::Session, &key(9, "a")).unwrap();
        let gen = s.scopes[a as usize].gen;
        assert!(s.map_xid(500, a, 0));
        for n in 0..MAX_SCOPES_PER_ROLE {
            s.scope(Origin::Session, &key(9, &format!("x{n}"))).unwrap();
        }
        // "a" is the least recently used but pinned by xid 500: x0 went instead.
        assert_eq!(s.scopes[a as usize].application.as_str(), "a");
        assert!(s.scope_still(a, gen));
        s.unmap_xid(500);
        assert_eq!(s.scopes[a as usize].xids, 0);
        // Now "a" (touched by scope_still, so x1 is older) is not the next victim...
        s.scope(Origin::Session, &key(9, "y")).unwrap();
        assert!(s.scopes.iter().all(|x| x.application.as_str() != "x1"));
        // ...and once it is evicted, a cache holding (a, gen) sees it.
        for n in 0..MAX_SCOPES_PER_ROLE {
            s.scope(Origin::Session, &key(9, &format!("z{n}"))).unwrap();
        }
        assert!(!s.scope_still(a, gen));
    }

    #[test]
    fn when_nothing_can_be_evicted_the_session_gets_no_slot() {
        let mut s = Shared::zeroed();
        for n in 0..MAX_SCOPES_PER_ROLE as u32 {
            let i = s.scope(Origin::Session, &key(9, &format!("p{n}"))).unwrap();
            assert!(s.map_xid(1000 + n, i, 0));
        }
        assert_eq!(s.scope(Origin::Session, &key(9, "new")), None);
        // Another role still gets one.
        assert!(s.scope(Origin::Session, &key(10, "new")).is_some());
        // The session's fallback is its database's evicted scope.
        let ev = s.evicted_scope(5);
        assert_eq!(s.scopes[ev as usize].origin(), Origin::Evicted);
    }
}

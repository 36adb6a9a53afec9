//! Fixed-length open-addressing tables with linear probing, as budget keeps them in
//! shared memory: the scope index, the role slots, the transaction map and the query
//! profiles all find, add and remove their entries here. A table never grows (its
//! length is fixed at server start); removal moves later entries of the probe chain
//! back instead of leaving tombstones, so a lookup ends at the first empty slot.
//!
//! A table is a slice of plain entries; what makes an entry empty, and which entry is
//! the one looked for, is the caller's ([`Look`]).

/// What a slot holds, as one lookup sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Nothing: the end of every probe chain through it.
    Empty,
    /// The entry looked for.
    Same,
    /// Another entry: probing goes on.
    Other,
}

/// Where a lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The entry is at this slot.
    Found(usize),
    /// The entry is absent; this is the first empty slot of its chain, where it goes.
    Vacant(usize),
    /// The entry is absent and the slots the lookup may look at are all taken.
    Full,
}

/// The home slot of `hash` in a table of `len` slots (`len` > 0).
pub fn home(hash: u64, len: usize) -> usize {
    (hash % len.max(1) as u64) as usize
}

/// The slots a lookup from `home` looks at, in order: at most `limit`, wrapping at the
/// end of a table of `len` slots.
pub fn chain(home: usize, len: usize, limit: usize) -> impl Iterator<Item = usize> {
    let n = len.max(1);
    (0..limit.min(len)).map(move |k| (home + k) % n)
}

/// Looks for an entry from slot `home`, at most `limit` slots; `look` says what each
/// slot holds.
pub fn find<T>(t: &[T], home: usize, limit: usize, look: impl Fn(&T) -> Look) -> Probe {
    for i in chain(home, t.len(), limit) {
        match look(&t[i]) {
            Look::Empty => return Probe::Vacant(i),
            Look::Same => return Probe::Found(i),
            Look::Other => {}
        }
    }
    Probe::Full
}

/// Removes the entry at `hole` and moves later entries of the probe chain back, so
/// every chain stays intact without tombstones. `home_of` is an entry's home slot,
/// `None` for an empty slot.
pub fn shift_delete<T: Copy + Default>(
    t: &mut [T],
    mut hole: usize,
    home_of: impl Fn(&T) -> Option<usize>,
) {
    let n = t.len();
    if hole >= n {
        return;
    }
    t[hole] = T::default();
    let mut j = hole;
    loop {
        j = (j + 1) % n;
        let Some(h) = home_of(&t[j]) else {
            return;
        };
        // Move the entry into the hole unless its home lies in (hole, j].
        let between = if hole <= j {
            hole < h && h <= j
        } else {
            hole < h || h <= j
        };
        if !between {
            t[hole] = t[j];
            t[j] = T::default();
            hole = j;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Home of a value in these tests: value % 8; 0 is empty.
    fn look_for(v: u32) -> impl Fn(&u32) -> Look {
        move |e| match *e {
            0 => Look::Empty,
            x if x == v => Look::Same,
            _ => Look::Other,
        }
    }

    #[test]
    fn a_lookup_stops_at_the_entry_or_the_first_empty_slot_and_wraps() {
        let t = [15u32, 23, 0, 0, 4, 0, 0, 7];
        assert_eq!(find(&t, 7, 8, look_for(7)), Probe::Found(7));
        // 23's home is 7: it sits two slots on, past the end.
        assert_eq!(find(&t, 7, 8, look_for(23)), Probe::Found(1));
        assert_eq!(find(&t, 7, 8, look_for(31)), Probe::Vacant(2));
        assert_eq!(find(&t, 4, 8, look_for(12)), Probe::Vacant(5));
        // A bounded lookup over taken slots: full.
        assert_eq!(find(&t, 7, 3, look_for(31)), Probe::Full);
        assert_eq!(find(&[] as &[u32], 0, 8, look_for(1)), Probe::Full);
        assert_eq!(chain(6, 8, 4).collect::<Vec<_>>(), [6, 7, 0, 1]);
        assert_eq!(chain(0, 3, 10).count(), 3);
        assert_eq!(home(19, 8), 3);
    }

    #[test]
    fn shift_delete_keeps_probe_chains() {
        // 9 and 17 probe past 1.
        let mut t = [0u32, 1, 9, 17, 4, 0, 0, 0];
        shift_delete(&mut t, 1, |v| (*v != 0).then_some(*v as usize % 8));
        assert_eq!(t, [0, 9, 17, 0, 4, 0, 0, 0]);
        // A chain that wraps: 7 at home 7, 15 and 23 at 0 and 1.
        let mut t = [15u32, 23, 0, 0, 0, 0, 0, 7];
        shift_delete(&mut t, 7, |v| (*v != 0).then_some(*v as usize % 8));
        assert_eq!(t, [23, 0, 0, 0, 0, 0, 0, 15]);
    }

    #[test]
    fn adds_and_removes_agree_with_a_set() {
        // A 16-slot table kept at most 12 full, driven by a fixed pseudo-random
        // sequence, checked after every step against std's HashSet.
        const N: usize = 16;
        let mut t = [0u32; N];
        let mut model = HashSet::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let home_of = |v: &u32| (*v != 0).then(|| home(*v as u64 * 7, N));
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x % 40) as u32 + 1;
            let at = find(&t, home(v as u64 * 7, N), N, look_for(v));
            if x & (1 << 20) == 0 {
                match at {
                    Probe::Vacant(i) if model.len() < 12 => {
                        t[i] = v;
                        model.insert(v);
                    }
                    Probe::Found(_) => assert!(model.contains(&v), "step {step}"),
                    _ => {}
                }
            } else if let Probe::Found(i) = at {
                shift_delete(&mut t, i, home_of);
                assert!(model.remove(&v), "step {step}");
            }
            for k in 1..=40u32 {
                let found = matches!(
                    find(&t, home(k as u64 * 7, N), N, look_for(k)),
                    Probe::Found(_)
                );
                assert_eq!(found, model.contains(&k), "value {k} at step {step}");
            }
        }
    }
}

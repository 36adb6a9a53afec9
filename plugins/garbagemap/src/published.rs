//! The copy of the map in shared memory that the views read: fixed-size tables of
//! relations and ranges, rewritten whole by the worker under the region's lock.

use crate::decode::RelKey;
use crate::svg;
use crate::tracker::{Rel, Tracker};
use walker_abi::{SharedState, Value};

/// Most relations published (the upper bound of `garbagemap.max_relations`).
pub const REL_CAP: usize = 2048;
/// Most ranges published (the default of `garbagemap.max_ranges`). Past it, the
/// ranges of the relations with most dead items are published, and
/// `unpublished_ranges` counts the others (their relations' totals stay exact).
pub const RANGE_CAP: usize = 16384;
/// The upper bound of `garbagemap.max_ranges`.
pub const MAX_RANGES: usize = 1 << 20;

/// View numbers, in the order the plugin declares its views.
pub const VIEW_RELATIONS: usize = 0;
/// `heatmap`.
pub const VIEW_HEATMAP: usize = 1;
/// `advice`.
pub const VIEW_ADVICE: usize = 2;
/// `status`.
pub const VIEW_STATUS: usize = 3;
/// `cumulative`.
pub const VIEW_CUMULATIVE: usize = 4;

/// One relation.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PubRel {
    /// Database OID.
    pub db: u32,
    /// Tablespace OID.
    pub ts: u32,
    /// Relation file number.
    pub rel: u32,
    /// Ranges tracked.
    pub ranges: u32,
    /// Dead tuples.
    pub dead_tuples: u64,
    /// Dead line pointers.
    pub dead_lps: u64,
    /// First block of the range with the most dead tuples and line pointers.
    pub hottest_first_block: u64,
    /// Dead tuples in that range.
    pub hottest_dead_tuples: u64,
    /// Dead line pointers in that range.
    pub hottest_dead_lps: u64,
    /// Last change.
    pub last_change_lsn: u64,
    /// One past the highest block tracked.
    pub end_block: u64,
}

/// One range.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PubRange {
    /// Database OID.
    pub db: u32,
    /// Tablespace OID.
    pub ts: u32,
    /// Relation file number.
    pub rel: u32,
    /// Range index.
    pub index: u32,
    /// Dead tuples.
    pub dead_tuples: u64,
    /// Dead line pointers.
    pub dead_lps: u64,
    /// Inserts seen.
    pub inserts: u64,
    /// Updates seen.
    pub updates: u64,
    /// Deletes seen.
    pub deletes: u64,
    /// Last prune record.
    pub last_prune_lsn: u64,
    /// Last vacuum record.
    pub last_vacuum_lsn: u64,
    /// Last change.
    pub last_change_lsn: u64,
    /// Blocks whose visibility-map all-visible bit the WAL set and did not clear.
    pub all_visible: u64,
    /// Blocks whose all-frozen bit the WAL set and did not clear.
    pub all_frozen: u64,
}

/// The counters the status view shows, in its column order.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PubCounters {
    /// Changes held for transactions not yet ended.
    pub pending_changes: u64,
    /// Transactions with pending changes.
    pub pending_transactions: u64,
    /// Relations evicted to stay within `max_relations`.
    pub evicted_relations: u64,
    /// Ranges evicted to stay within `max_ranges`.
    pub evicted_ranges: u64,
    /// Dead tuples forgotten with evicted relations and ranges.
    pub evicted_dead_tuples: u64,
    /// Changes not held because the pending bound was reached.
    pub unattributed: u64,
    /// Records that could not be decoded.
    pub undecodable: u64,
    /// Relations removed because they were dropped, rewritten or their database dropped.
    pub dropped_relations: u64,
    /// The plugin's live heap bytes.
    pub heap_bytes: u64,
    /// Ranges tracked but not in `ranges` (past [`RANGE_CAP`]).
    pub unpublished_ranges: u64,
}

/// The published map.
#[repr(C)]
pub struct Published {
    /// End of the last record applied.
    pub through_lsn: u64,
    /// Blocks per range.
    pub range_blocks: u64,
    /// Entries used in `rels`.
    pub n_rels: u64,
    /// Entries used in `ranges`.
    pub n_ranges: u64,
    /// The tracker's counters as of the last publication (the status view).
    pub counters: PubCounters,
    /// Relations.
    pub rels: [PubRel; REL_CAP],
    /// Ranges.
    pub ranges: [PubRange; RANGE_CAP],
}

// SAFETY: repr(C), plain integers, valid when zeroed.
unsafe impl SharedState for Published {}

/// An owned view value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// `int8`.
    Int(i64),
    /// `pg_lsn` (NULL when 0).
    Lsn(u64),
    /// `float8`.
    Float(f64),
    /// `text`.
    Text(String),
}

impl Cell {
    /// The value to emit.
    pub fn value(&self) -> Value<'_> {
        match self {
            Cell::Int(v) => Value::Int8(*v),
            Cell::Lsn(0) => Value::Null,
            Cell::Lsn(l) => Value::Lsn(*l),
            Cell::Float(v) => Value::Float8(*v),
            Cell::Text(s) => Value::Text(s),
        }
    }
}

fn int(v: u64) -> Cell {
    Cell::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Published {
    /// Rewrites the tables from the tracker.
    pub fn fill(&mut self, t: &Tracker, through_lsn: u64) {
        self.through_lsn = through_lsn;
        let rb = u64::from(t.limits.range_blocks.max(1));
        self.range_blocks = rb;
        let c = &t.counters;
        self.counters = PubCounters {
            pending_changes: t.n_pending() as u64,
            pending_transactions: t.n_pending_xacts() as u64,
            evicted_relations: c.evicted_relations,
            evicted_ranges: c.evicted_ranges,
            evicted_dead_tuples: c.evicted_dead_tuples,
            unattributed: c.unattributed,
            undecodable: c.undecodable,
            dropped_relations: c.dropped_relations,
            heap_bytes: crate::heap::live_bytes() as u64,
            unpublished_ranges: 0,
        };
        let (mut nr, mut ng) = (0usize, 0usize);
        let mut rels: Vec<(&RelKey, &Rel)> = t.rels.iter().collect();
        if t.n_ranges() > RANGE_CAP {
            // Not every range fits: the relations with most dead items go first.
            let dead = |r: &Rel| r.dead_tuples() + r.dead_lps();
            rels.sort_by_cached_key(|(k, r)| (std::cmp::Reverse(dead(r)), **k));
        }
        for (k, r) in rels {
            if nr >= REL_CAP {
                break;
            }
            let mut p = PubRel {
                db: k.db,
                ts: k.ts,
                rel: k.rel,
                ranges: r.ranges.len() as u32,
                last_change_lsn: r.last_change_lsn,
                ..PubRel::default()
            };
            let mut hottest = 0u64;
            for (i, g) in &r.ranges {
                p.dead_tuples += g.dead_tuples;
                p.dead_lps += g.dead_lps;
                let first = u64::from(*i) * rb;
                let end = g
                    .blocks
                    .last_block()
                    .map(|b| u64::from(b) + 1)
                    .unwrap_or(first + 1);
                p.end_block = p.end_block.max(end);
                if g.dead_tuples + g.dead_lps > hottest {
                    hottest = g.dead_tuples + g.dead_lps;
                    p.hottest_first_block = first;
                    p.hottest_dead_tuples = g.dead_tuples;
                    p.hottest_dead_lps = g.dead_lps;
                }
                if ng < RANGE_CAP {
                    self.ranges[ng] = PubRange {
                        db: k.db,
                        ts: k.ts,
                        rel: k.rel,
                        index: *i,
                        dead_tuples: g.dead_tuples,
                        dead_lps: g.dead_lps,
                        inserts: g.inserts,
                        updates: g.updates,
                        deletes: g.deletes,
                        last_prune_lsn: g.last_prune_lsn,
                        last_vacuum_lsn: g.last_vacuum_lsn,
                        last_change_lsn: g.last_change_lsn,
                        all_visible: g.all_visible(),
                        all_frozen: g.all_frozen(),
                    };
                    ng += 1;
                }
            }
            self.rels[nr] = p;
            nr += 1;
        }
        self.n_rels = nr as u64;
        self.n_ranges = ng as u64;
        self.counters.unpublished_ranges = (t.n_ranges() as u64).saturating_sub(self.n_ranges);
    }

    fn rels(&self) -> &[PubRel] {
        &self.rels[..(self.n_rels as usize).min(REL_CAP)]
    }

    fn ranges(&self) -> &[PubRange] {
        &self.ranges[..(self.n_ranges as usize).min(RANGE_CAP)]
    }

    /// Rows of view `view` (see the plugin's `describe`).
    pub fn rows(&self, view: usize) -> Vec<Vec<Cell>> {
        let rb = self.range_blocks.max(1);
        let key =
            |db: u32, ts: u32, rel: u32| vec![int(db.into()), int(ts.into()), int(rel.into())];
        match view {
            VIEW_RELATIONS => self
                .rels()
                .iter()
                .map(|r| {
                    let mut row = key(r.db, r.ts, r.rel);
                    row.extend([
                        int(r.dead_tuples),
                        int(r.dead_lps),
                        int(r.ranges.into()),
                        int(r.hottest_first_block),
                        int(r.hottest_dead_tuples),
                        Cell::Lsn(r.last_change_lsn),
                    ]);
                    row
                })
                .collect(),
            VIEW_HEATMAP => self
                .ranges()
                .iter()
                .map(|g| {
                    let first = u64::from(g.index) * rb;
                    let mut row = key(g.db, g.ts, g.rel);
                    row.extend([
                        int(first),
                        int(first + rb - 1),
                        int(g.dead_tuples),
                        int(g.dead_lps),
                        int(g.inserts),
                        int(g.updates),
                        int(g.deletes),
                        Cell::Lsn(g.last_prune_lsn),
                        Cell::Lsn(g.last_vacuum_lsn),
                        Cell::Lsn(g.last_change_lsn),
                        int(g.all_visible),
                        int(g.all_frozen),
                    ]);
                    row
                })
                .collect(),
            VIEW_ADVICE => self.advice(),
            VIEW_CUMULATIVE => self.cumulative(),
            VIEW_STATUS => {
                let c = &self.counters;
                vec![vec![
                    Cell::Lsn(self.through_lsn),
                    int(self.n_rels),
                    // Tracked: published and not.
                    int(self.n_ranges.saturating_add(c.unpublished_ranges)),
                    int(rb),
                    int(c.pending_changes),
                    int(c.pending_transactions),
                    int(c.evicted_relations),
                    int(c.evicted_ranges),
                    int(c.evicted_dead_tuples),
                    int(c.unattributed),
                    int(c.undecodable),
                    int(c.dropped_relations),
                    int(c.heap_bytes),
                    int(c.unpublished_ranges),
                ]]
            }
            _ => Vec::new(),
        }
    }

    /// The heat map of relation `key` (database, tablespace, relfilenode), titled with
    /// `name` (else its relfilenode and database); `None` when it is not published.
    pub fn svg(&self, key: (i64, i64, i64), name: Option<&str>) -> Option<String> {
        self.rels()
            .iter()
            .find(|r| (i64::from(r.db), i64::from(r.ts), i64::from(r.rel)) == key)
            .map(|r| self.svg_of(r, name))
    }

    fn svg_of(&self, r: &PubRel, name: Option<&str>) -> String {
        let rb = self.range_blocks.max(1);
        let cells: Vec<svg::Cell> = self
            .ranges()
            .iter()
            .filter(|g| (g.db, g.ts, g.rel) == (r.db, r.ts, r.rel))
            .map(|g| svg::Cell {
                first_block: u64::from(g.index).saturating_mul(rb),
                dead_tuples: g.dead_tuples,
                dead_lps: g.dead_lps,
            })
            .collect();
        let fallback = format!("relfilenode {} (database {})", r.rel, r.db);
        svg::render(
            &svg::Frame {
                name: name.unwrap_or(&fallback),
                range_blocks: rb,
                end_block: r.end_block,
                through_lsn: self.through_lsn,
            },
            &cells,
        )
    }

    /// Each relation's ranges ranked by dead tuples, most first (then by first
    /// block), with the running count and the running shares of the relation's
    /// published ranges and of its dead tuples, in percent.
    fn cumulative(&self) -> Vec<Vec<Cell>> {
        let rb = self.range_blocks.max(1);
        let mut ranges: Vec<&PubRange> = self.ranges().iter().collect();
        ranges.sort_by_key(|g| {
            (
                (g.db, g.ts, g.rel),
                std::cmp::Reverse(g.dead_tuples),
                g.index,
            )
        });
        let mut rows = Vec::with_capacity(ranges.len());
        for group in ranges.chunk_by(|a, b| (a.db, a.ts, a.rel) == (b.db, b.ts, b.rel)) {
            let total = group
                .iter()
                .fold(0u64, |t, g| t.saturating_add(g.dead_tuples));
            let mut running = 0u64;
            for (i, g) in group.iter().enumerate() {
                running = running.saturating_add(g.dead_tuples);
                let first = u64::from(g.index) * rb;
                let ranges_pct = 100.0 * (i + 1) as f64 / group.len() as f64;
                let dead_pct = if total == 0 {
                    0.0
                } else {
                    100.0 * running as f64 / total as f64
                };
                rows.push(vec![
                    int(g.db.into()),
                    int(g.ts.into()),
                    int(g.rel.into()),
                    int(i as u64 + 1),
                    int(first),
                    int(first + rb - 1),
                    int(g.dead_tuples),
                    int(running),
                    Cell::Float(ranges_pct),
                    Cell::Float(dead_pct),
                ]);
            }
        }
        rows
    }

    /// Relations with dead items, most first; the block range to start with and why.
    fn advice(&self) -> Vec<Vec<Cell>> {
        let rb = self.range_blocks.max(1);
        let mut rels: Vec<&PubRel> = self
            .rels()
            .iter()
            .filter(|r| r.dead_tuples + r.dead_lps > 0)
            .collect();
        rels.sort_by(|a, b| {
            (b.dead_tuples + b.dead_lps)
                .cmp(&(a.dead_tuples + a.dead_lps))
                .then(a.rel.cmp(&b.rel))
        });
        rels.iter()
            .enumerate()
            .map(|(i, r)| {
                let total = r.dead_tuples + r.dead_lps;
                let hot = r.hottest_dead_tuples + r.hottest_dead_lps;
                let share = hot * 100 / total.max(1);
                let mut why = format!(
                    "{} dead tuples and {} dead line pointers in {} range(s); {share}% of them in blocks {}..{}",
                    r.dead_tuples,
                    r.dead_lps,
                    r.ranges,
                    r.hottest_first_block,
                    r.hottest_first_block + rb - 1
                );
                if r.dead_lps > r.dead_tuples {
                    why.push_str("; mostly dead line pointers, which only VACUUM frees");
                }
                let mut row = vec![int(r.db.into()), int(r.ts.into()), int(r.rel.into())];
                row.extend([
                    int(i as u64 + 1),
                    int(r.dead_tuples),
                    int(r.dead_lps),
                    int(r.hottest_first_block),
                    int(r.hottest_first_block + rb - 1),
                    Cell::Text(why),
                ]);
                row
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Event, Item, RelKey};
    use crate::tracker::Limits;

    fn zeroed() -> Box<Published> {
        // SAFETY: all-zero is valid for Published; allocated on the heap directly
        // (it is too large for a test thread's stack).
        unsafe {
            let layout = std::alloc::Layout::new::<Published>();
            Box::from_raw(std::alloc::alloc_zeroed(layout) as *mut Published)
        }
    }

    fn delete(t: &mut Tracker, rel: RelKey, block: u32, offset: u16) {
        t.apply(
            Event::Delete {
                xid: 0,
                item: Item { rel, block, offset },
                now: true,
            },
            7,
        );
    }

    #[test]
    fn past_the_published_ranges_the_deadest_relations_go_first_and_the_rest_is_counted() {
        let mut t = Tracker::new(Limits {
            range_blocks: 1,
            max_relations: 10,
            max_ranges: MAX_RANGES,
            max_pending: 10,
        });
        let (a, b) = (
            RelKey {
                db: 5,
                ts: 1663,
                rel: 100,
            },
            RelKey {
                db: 5,
                ts: 1663,
                rel: 200,
            },
        );
        // a: RANGE_CAP one-block ranges with one dead tuple each; b: 200 with 100 each.
        for block in 0..RANGE_CAP as u32 {
            delete(&mut t, a, block, 1);
        }
        for block in 0..200 {
            for offset in 1..=100 {
                delete(&mut t, b, block, offset);
            }
        }
        assert_eq!(t.n_ranges(), RANGE_CAP + 200);
        let mut p = zeroed();
        p.fill(&t, 1);
        assert_eq!(p.n_ranges as usize, RANGE_CAP);
        let status = p.rows(VIEW_STATUS);
        assert_eq!(status[0][13], Cell::Int(200), "unpublished_ranges");
        assert_eq!(
            status[0][2],
            Cell::Int(RANGE_CAP as i64 + 200),
            "ranges tracked"
        );
        let heat = p.rows(VIEW_HEATMAP);
        assert_eq!(heat.iter().filter(|r| r[2] == Cell::Int(200)).count(), 200);
        // The relations' totals count every range.
        let rels = p.rows(VIEW_RELATIONS);
        let ra = rels.iter().find(|r| r[2] == Cell::Int(100)).unwrap();
        assert_eq!(
            (&ra[3], &ra[5]),
            (&Cell::Int(RANGE_CAP as i64), &Cell::Int(RANGE_CAP as i64))
        );
    }

    #[test]
    fn cumulative_ranks_each_relations_ranges_with_running_shares() {
        // Relation A: ranges 0..3 with 10, 0, 30 and 60 dead tuples; relation B: one
        // range without any. By hand: 60 (1 of 4 ranges = 25%, 60 of 100 = 60%),
        // 30 (50%, 90%), 10 (75%, 100%), 0 (100%, 100%); B: (100%, 0%).
        let mut p = zeroed();
        let a = |index, dead_tuples| PubRange {
            db: 5,
            ts: 1663,
            rel: 100,
            index,
            dead_tuples,
            ..PubRange::default()
        };
        for (i, g) in [
            a(0, 10),
            a(1, 0),
            a(2, 30),
            a(3, 60),
            PubRange { rel: 7, ..a(0, 0) },
        ]
        .into_iter()
        .enumerate()
        {
            p.ranges[i] = g;
        }
        p.n_ranges = 5;
        p.range_blocks = 4;
        let rows: Vec<(i64, i64, i64, i64, i64, f64, f64)> = p
            .rows(VIEW_CUMULATIVE)
            .into_iter()
            .map(|r| {
                let i = |c: &Cell| match c {
                    Cell::Int(v) => *v,
                    _ => panic!("{c:?}"),
                };
                let f = |c: &Cell| match c {
                    Cell::Float(v) => *v,
                    _ => panic!("{c:?}"),
                };
                (
                    i(&r[2]),
                    i(&r[3]),
                    i(&r[4]),
                    i(&r[6]),
                    i(&r[7]),
                    f(&r[8]),
                    f(&r[9]),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (7, 1, 0, 0, 0, 100.0, 0.0),
                (100, 1, 12, 60, 60, 25.0, 60.0),
                (100, 2, 8, 30, 90, 50.0, 90.0),
                (100, 3, 0, 10, 100, 75.0, 100.0),
                (100, 4, 4, 0, 100, 100.0, 100.0),
            ]
        );
    }

    #[test]
    fn fill_and_rows() {
        let limits = Limits {
            range_blocks: 10,
            max_relations: 10,
            max_ranges: 10,
            max_pending: 10,
        };
        let mut t = Tracker::new(limits);
        let a = RelKey {
            db: 5,
            ts: 1663,
            rel: 100,
        };
        let b = RelKey {
            db: 5,
            ts: 1663,
            rel: 200,
        };
        for (rel, block) in [(a, 1), (a, 2), (a, 25), (b, 3)] {
            t.apply(
                Event::Delete {
                    xid: 0,
                    item: Item {
                        rel,
                        block,
                        offset: 1,
                    },
                    now: true,
                },
                7,
            );
        }
        // SAFETY: all-zero is valid for Published; allocated on the heap directly
        // (it is too large for a test thread's stack).
        let mut p: Box<Published> = unsafe {
            let layout = std::alloc::Layout::new::<Published>();
            Box::from_raw(std::alloc::alloc_zeroed(layout) as *mut Published)
        };
        p.fill(&t, 99);
        assert_eq!((p.n_rels, p.n_ranges), (2, 3));
        let status = p.rows(VIEW_STATUS);
        assert_eq!(status[0][0], Cell::Lsn(99));
        let rels = p.rows(VIEW_RELATIONS);
        let ra = rels.iter().find(|r| r[2] == Cell::Int(100)).unwrap();
        // 3 dead tuples, 0 lps, 2 ranges, hottest range starts at block 0 with 2.
        assert_eq!(
            ra[3..8],
            [
                Cell::Int(3),
                Cell::Int(0),
                Cell::Int(2),
                Cell::Int(0),
                Cell::Int(2)
            ]
        );
        let advice = p.rows(VIEW_ADVICE);
        assert_eq!(
            advice[0][2],
            Cell::Int(100),
            "the relation with most dead tuples first"
        );
        assert_eq!(advice[0][3], Cell::Int(1));
        let Cell::Text(why) = &advice[0][8] else {
            panic!()
        };
        assert!(
            why.contains("3 dead tuples") && why.contains("66% of them in blocks 0..9"),
            "{why}"
        );
        let heat = p.rows(VIEW_HEATMAP);
        assert_eq!(heat.len(), 3);
        let (db, ts, rel) = (ra[0].clone(), ra[1].clone(), ra[2].clone());
        let (Cell::Int(db), Cell::Int(ts), Cell::Int(rel)) = (db, ts, rel) else {
            panic!("{ra:?}")
        };
        let s = p.svg((db, ts, rel), Some("public.t")).unwrap();
        assert!(
            s.contains("blocks 20..25: 1 dead tuples, 0 dead line pointers"),
            "{s}"
        );
        assert!(
            s.contains("<title>public.t: dead tuples"),
            "titled with the name given: {s}"
        );
        let unnamed = p.svg((db, ts, rel), None).unwrap();
        assert!(
            unnamed.contains(&format!("<title>relfilenode {rel} (database {db}): ")),
            "{unnamed}"
        );
        assert_eq!(p.svg((db, ts, rel + 1), None), None);
    }
}

/// The (database, tablespace, relfilenode) a row of a relation view starts with.
pub fn row_key(row: &[Cell]) -> Option<(i64, i64, i64)> {
    match row {
        [Cell::Int(d), Cell::Int(t), Cell::Int(r), ..] => Some((*d, *t, *r)),
        _ => None,
    }
}

/// Reads `{"database": .., "tablespace": .., "relfilenode": ..}` from a function's JSON
/// arguments (the host adds them when the caller passes `"relation"`).
pub fn relation_key(args: &str) -> Result<(i64, i64, i64), walker_abi::PluginError> {
    let num = |name: &str| -> Option<i64> {
        // A key is followed by a colon (a string value naming a key is not).
        let pattern = format!("\"{name}\":");
        let at = args.find(&pattern)? + pattern.len();
        let rest = args[at..].trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    match (num("database"), num("tablespace"), num("relfilenode")) {
        (Some(d), Some(t), Some(r)) => Ok((d, t, r)),
        _ => Err(walker_abi::PluginError::new(
            "pass the relation: walker.garbagemap_svg('{\"relation\": \"my_table\"}'), or its \"database\", \"tablespace\" and \"relfilenode\"",
        )),
    }
}

/// The relation as the caller named it (`{"relation": "public.t"}`), for a picture's
/// title; `None` when the arguments name it by number only.
pub fn relation_name(args: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(args).ok()?;
    v.get("relation")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn relation_key_from_args() {
        let a = r#"{"relation": "t", "database": 5, "tablespace": 1663, "relfilenode": 16384}"#;
        assert_eq!(relation_key(a).unwrap(), (5, 1663, 16384));
        let tricky =
            r#"{"database": 5, "relation": "tablespace", "tablespace": 1663, "relfilenode": 7}"#;
        assert_eq!(relation_key(tricky).unwrap(), (5, 1663, 7));
        assert_eq!(relation_name(a).as_deref(), Some("t"));
        assert_eq!(
            relation_name(r#"{"relation": "a\"b"}"#).as_deref(),
            Some("a\"b")
        );
        assert_eq!(relation_name(r#"{"database": 5}"#), None);
        assert!(relation_key(r#"{"relation": "t"}"#)
            .unwrap_err()
            .0
            .contains("pass the relation"));
        assert_eq!(
            row_key(&[
                Cell::Int(1),
                Cell::Int(2),
                Cell::Int(3),
                Cell::Text("x".into())
            ]),
            Some((1, 2, 3))
        );
    }
}

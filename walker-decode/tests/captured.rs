//! Decodes WAL records captured from real servers of each major
//! (`tests/fixtures/pg<major>/records.txt`, written by the harness's capture test with
//! the `fx_capture` fixture plugin; the file names the server version that wrote it)
//! and compares the events with what the capture workload's statements must produce,
//! derived by hand from the statements:
//!
//! ```sql
//! CREATE TABLE t (id int, pad text);                     -- relation t
//! INSERT INTO t SELECT g, 'row' FROM generate_series(1, 10) g; -- offsets 1..=10, block 0
//! DELETE FROM t WHERE id IN (2, 3);                      -- (0,2), (0,3)
//! UPDATE t SET pad = 'upd' WHERE id = 4;                 -- HOT: (0,4) -> (0,11)
//! BEGIN; DELETE FROM t WHERE id = 5; ROLLBACK;           -- (0,5), aborted
//! COPY t (id) FROM PROGRAM 'seq 21 23';                  -- multi-insert 12, 13, 14
//! VACUUM t;                                              -- 4 redirected, 2 and 3 unused
//! CHECKPOINT; DELETE FROM t WHERE id = 6; CHECKPOINT;    -- (0,6)
//! VACUUM t;                                              -- 6 unused (page image or offsets)
//! DROP TABLE t;                                          -- commit: t, its TOAST table and index dropped
//! BEGIN; CREATE TABLE p (a int); PREPARE TRANSACTION 'cap';
//! ROLLBACK PREPARED 'cap';                               -- abort: p dropped, stats item, xid
//! CHECKPOINT;
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use walker_decode::{checkpoint, decode, Block, Event, Format, Item, Rec, RelKey};

/// A captured block reference: id, fork, relation, block, data, page image.
type CapturedBlock = (u8, u8, RelKey, u32, Vec<u8>, Option<Vec<u8>>);

/// One captured record, owning its bytes.
struct Captured {
    lsn: u64,
    rmid: u8,
    info: u8,
    xid: u32,
    main: Vec<u8>,
    blocks: Vec<CapturedBlock>,
}

impl Captured {
    fn rec(&self) -> Rec<'_> {
        Rec {
            rmid: self.rmid,
            info: self.info,
            xid: self.xid,
            main: &self.main,
            blocks: self
                .blocks
                .iter()
                .map(|(id, fork, rel, block, data, image)| Block {
                    id: *id,
                    fork: *fork,
                    rel: *rel,
                    block: *block,
                    data,
                    image: image.as_deref(),
                })
                .collect(),
        }
    }
}

/// A fixture: the server version, named relations and transaction ids, the records.
struct Fixture {
    name: String,
    version: u32,
    rels: BTreeMap<String, RelKey>,
    xids: BTreeMap<String, u32>,
    records: Vec<Captured>,
}

fn hex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn rel(s: &str) -> RelKey {
    let v: Vec<u32> = s.split('/').map(|x| x.parse().expect("oid")).collect();
    RelKey {
        ts: v[0],
        db: v[1],
        rel: v[2],
    }
}

fn load(path: &PathBuf) -> Fixture {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let mut f = Fixture {
        name: path.display().to_string(),
        version: 0,
        rels: BTreeMap::new(),
        xids: BTreeMap::new(),
        records: Vec::new(),
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let w: Vec<&str> = line.split(' ').collect();
        match w[0] {
            "server_version_num" => f.version = w[1].parse().expect("version"),
            "rel" => {
                f.rels.insert(w[1].to_string(), rel(w[2]));
            }
            "xid" => {
                f.xids.insert(w[1].to_string(), w[2].parse().expect("xid"));
            }
            lsn => {
                let n: usize = w[5].parse().expect("block count");
                let blocks = w[6..6 + n]
                    .iter()
                    .map(|b| {
                        let p: Vec<&str> = b.split(':').collect();
                        let image = (p[5] != "-").then(|| hex(p[5]));
                        (
                            p[0].parse().expect("id"),
                            p[1].parse().expect("fork"),
                            rel(p[2]),
                            p[3].parse().expect("block"),
                            hex(p[4]),
                            image,
                        )
                    })
                    .collect();
                f.records.push(Captured {
                    lsn: u64::from_str_radix(lsn, 16).expect("lsn"),
                    rmid: w[1].parse().expect("rmid"),
                    info: u8::from_str_radix(w[2], 16).expect("info"),
                    xid: w[3].parse().expect("xid"),
                    main: hex(w[4]),
                    blocks,
                });
            }
        }
    }
    f
}

fn fixtures() -> Vec<Fixture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut all: Vec<Fixture> = std::fs::read_dir(&dir)
        .expect("tests/fixtures")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("records.txt"))
        .filter(|p| p.exists())
        .map(|p| load(&p))
        .collect();
    all.sort_by_key(|f| f.version);
    all
}

#[test]
fn fixtures_of_every_major_are_checked_in() {
    let majors: Vec<u32> = fixtures().iter().map(|f| f.version / 10_000).collect();
    for m in [15, 16, 17, 18] {
        assert!(
            majors.contains(&m),
            "no captured fixture of PostgreSQL {m}: {majors:?}"
        );
    }
}

/// Line pointer states the prune and vacuum events leave: 'r' redirect, 'd' dead, 'u' unused.
fn apply_pruning(states: &mut BTreeMap<u16, char>, e: &Event) {
    let mut set = |offsets: &[u16], state: char| {
        for o in offsets {
            states.insert(*o, state);
        }
    };
    match e {
        Event::Prune {
            redirected,
            dead,
            unused,
            ..
        } => {
            set(redirected, 'r');
            set(dead, 'd');
            set(unused, 'u');
        }
        Event::Vacuum { unused, .. } => set(unused, 'u'),
        Event::PageState { flags, .. } => {
            states.clear();
            for (i, f) in flags.iter().enumerate() {
                let o = u16::try_from(i + 1).expect("offset");
                let state = match f {
                    2 => 'r',
                    3 => 'd',
                    0 => 'u',
                    _ => continue,
                };
                states.insert(o, state);
            }
        }
        _ => {}
    }
}

#[test]
fn captured_records_decode_to_what_the_workload_did() {
    for f in fixtures() {
        let fmt = Format::for_server(f.version).expect("a known major");
        let t = f.rels["t"];
        let p = f.rels["p"];
        let x = |n: &str| f.xids[n];
        let at = |b: u32, o: u16| Item {
            rel: t,
            block: b,
            offset: o,
        };
        let mut inserted = Vec::new();
        let mut deleted = Vec::new();
        let mut updates = Vec::new();
        let mut ends = Vec::new();
        let mut prepares = Vec::new();
        let mut states = BTreeMap::new();
        for r in &f.records {
            let e = decode(&r.rec(), fmt)
                .unwrap_or_else(|e| panic!("{}: record at {:X}: {e}", f.name, r.lsn));
            match e {
                Some(Event::Insert {
                    xid,
                    rel,
                    block,
                    offsets,
                    init_page,
                }) if rel == t => inserted.push((xid, block, offsets, init_page)),
                Some(Event::Delete { xid, item, now }) if item.rel == t => {
                    deleted.push((xid, item, now))
                }
                Some(Event::Update {
                    xid, old, new, hot, ..
                }) if old.rel == t => updates.push((xid, old, new, hot)),
                Some(Event::End {
                    committed,
                    xid,
                    dropped,
                    prepared,
                    ..
                }) => ends.push((xid, committed, dropped, prepared)),
                Some(Event::Prepare { xid }) => prepares.push(xid),
                Some(
                    ref e @ (Event::Prune { rel, .. }
                    | Event::Vacuum { rel, .. }
                    | Event::PageState { rel, .. }),
                ) if rel == t => apply_pruning(&mut states, e),
                _ => {}
            }
        }
        let name = &f.name;
        // 17.11+ and 18.6+ reference the visibility-map page in heap records (the
        // DELETE after VACUUM set the page all-visible); the decoder skipped it.
        let vm_refs = f
            .records
            .iter()
            .filter(|r| r.rmid == walker_decode::RM_HEAP_ID)
            .filter(|r| {
                r.blocks
                    .iter()
                    .any(|b| b.1 == walker_decode::VISIBILITY_MAP_FORK)
            })
            .count();
        let vm_expected = (170_011..180_000).contains(&f.version) || f.version >= 180_006;
        assert_eq!(
            vm_refs > 0,
            vm_expected,
            "{name}: heap records referencing the VM"
        );
        let mut expect_inserts: Vec<_> = (1..=10u16)
            .map(|o| (x("insert"), 0, vec![o], o == 1))
            .collect();
        expect_inserts.push((x("copy"), 0, vec![12, 13, 14], false));
        assert_eq!(inserted, expect_inserts, "{name}");
        assert_eq!(
            deleted,
            vec![
                (x("delete"), at(0, 2), false),
                (x("delete"), at(0, 3), false),
                (x("aborted"), at(0, 5), false),
                (x("delete2"), at(0, 6), false),
            ],
            "{name}"
        );
        assert_eq!(
            updates,
            vec![(x("update"), at(0, 4), at(0, 11), true)],
            "{name}"
        );
        let mut expect_ends: Vec<_> = ["insert", "delete", "update"]
            .iter()
            .map(|n| (x(n), true, vec![], false))
            .collect();
        expect_ends.push((x("aborted"), false, vec![], false));
        expect_ends.push((x("copy"), true, vec![], false));
        expect_ends.push((x("delete2"), true, vec![], false));
        // The DROP's commit and the prepared transaction's abort list dropped
        // statistics before what follows (12-byte items up to 17, 16 on 18).
        let t_toast = [f.rels["t_toast"], f.rels["t_toast_index"]];
        expect_ends.push((x("drop"), true, vec![t, t_toast[0], t_toast[1]], false));
        expect_ends.push((x("prepared"), false, vec![p], true));
        assert_eq!(ends, expect_ends, "{name}");
        assert_eq!(prepares, vec![x("prepared")], "{name}");
        // After both VACUUMs: 2, 3 and 6 unused, 4 redirected to 11, the rest normal.
        let pruned: BTreeMap<u16, char> = states.into_iter().filter(|(o, _)| *o <= 14).collect();
        assert_eq!(
            pruned,
            BTreeMap::from([(2, 'u'), (3, 'u'), (4, 'r'), (6, 'u')]),
            "{name}"
        );
    }
}

#[test]
fn the_other_stats_item_size_misreads_the_captured_ends() {
    for f in fixtures() {
        let fmt = Format::for_server(f.version).expect("a known major");
        let wrong = Format {
            stats_item: 28 - fmt.stats_item,
            ..fmt
        };
        let p = f.rels["p"];
        let abort_prepared = f
            .records
            .iter()
            .find(|r| r.rmid == walker_decode::RM_XACT_ID && r.info & 0x70 == 0x40)
            .expect("the ROLLBACK PREPARED record");
        let right = decode(&abort_prepared.rec(), fmt).expect("decodes");
        assert!(
            matches!(&right, Some(Event::End { dropped, .. }) if dropped == &vec![p]),
            "{}: {right:?}",
            f.name
        );
        assert_ne!(
            decode(&abort_prepared.rec(), wrong).ok().flatten(),
            right,
            "{}: a {}-byte item must not read the same",
            f.name,
            wrong.stats_item
        );
    }
}

#[test]
fn checkpoint_redo_pointers_of_every_major() {
    for f in fixtures() {
        let fmt = Format::for_server(f.version).expect("a known major");
        let mut last_redo_record = None;
        let mut online = 0;
        for r in f
            .records
            .iter()
            .filter(|r| r.rmid == walker_decode::RM_XLOG_ID)
        {
            if r.info & 0xf0 == walker_decode::XLOG_CHECKPOINT_REDO {
                assert!(
                    fmt.checkpoint_redo_record,
                    "{}: a REDO record before 17",
                    f.name
                );
                assert_eq!(checkpoint(r.rmid, r.info, &r.main, fmt), None);
                last_redo_record = Some(r.lsn);
                continue;
            }
            let c = checkpoint(r.rmid, r.info, &r.main, fmt)
                .unwrap_or_else(|| panic!("{}: checkpoint at {:X}", f.name, r.lsn));
            assert!(!c.shutdown && c.redo <= r.lsn, "{}: {c:?}", f.name);
            assert!(
                c.time_s > 1_700_000_000,
                "{}: a 2023+ start time: {c:?}",
                f.name
            );
            if fmt.checkpoint_redo_record {
                // 17 on: the redo pointer is the REDO record written where it began.
                assert_eq!(Some(c.redo), last_redo_record, "{}", f.name);
            }
            online += 1;
        }
        assert_eq!(online, 3, "{}: the workload's three CHECKPOINTs", f.name);
    }
}

//! walker-walfile, the WAL reader in plain Rust (issue 19 item 1), against
//! PostgreSQL's own readers over the WAL of a real cluster: per-rmgr records, record
//! bytes and full-page-image bytes equal `pg_waldump --stats` exactly (full-page
//! images uncompressed, pglz, lz4 and zstd; a record spanning segments; a timeline
//! switch by promoting a standby), restored pages equal `pg_walinspect`'s
//! `block_fpi_data` (16 and later), and flipped bits or a truncated segment give
//! errors naming the file and the LSN, never a panic.

mod common;

use common::Stats;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use walker_abi::Record;
use walker_core::batch::BatchBuilder;
use walker_tests::Cluster;
use walker_walfile::format::{fmt_lsn, parse_lsn, rmgr_name, WAL_PAGE_SIZE};
use walker_walfile::{Options, WalDir, WalError, WalReader};

/// Full-page images under every compression the server has: before each, a
/// checkpoint, so the next change of every page logs its image.
const FPI_PHASE: &str = "CHECKPOINT;
UPDATE fp SET n = n + 1 WHERE id % 40 = 0;
INSERT INTO fp (n, v) SELECT g, md5(g::text) FROM generate_series(1, 2000) g;";

/// Index kinds beyond btree, so their resource managers are in the WAL.
const INDEXES: &str = "
CREATE TABLE docs (id int, tags text[], box box, body text);
INSERT INTO docs SELECT g, ARRAY['t' || (g % 13), 'u' || (g % 7)], box(point(g, g), point(g + 1, g + 2)), md5(g::text) FROM generate_series(1, 3000) g;
CREATE INDEX docs_gin ON docs USING gin (tags);
CREATE INDEX docs_gist ON docs USING gist (box);
CREATE INDEX docs_hash ON docs USING hash (id);
CREATE INDEX docs_brin ON docs USING brin (id);
CREATE INDEX docs_spgist ON docs USING spgist (body);
CREATE SEQUENCE s; SELECT nextval('s') FROM generate_series(1, 100);
INSERT INTO docs SELECT g, ARRAY['v'], box(point(0, 0), point(1, 1)), 'late' FROM generate_series(1, 500) g;";

/// What the reader produced over a range.
struct Walk {
    stats: Stats,
    /// (start LSN, timeline) of every record.
    records: Vec<(u64, u32)>,
    /// Restored pages of the blocks asked for, by (record LSN, block id).
    pages: BTreeMap<(u64, u8), Vec<u8>>,
    /// Per record, as pg_get_wal_records_info prints it: start|end|xid|rmgr|
    /// record length|main data length|FPI length.
    lines: Vec<String>,
    /// Per block reference, as pg_get_wal_block_info prints it: start|block id|
    /// tablespace|database|relfilenode|fork|block|data length|image length.
    block_lines: Vec<String>,
}

/// Reads [start, end] of `dir` with walker-walfile into batches, as a host would,
/// and sums what the batches say per resource manager.
fn walk(dir: &Path, start: u64, end: u64, want_pages: &[(u64, u8)]) -> Result<Walk, WalError> {
    let mut reader = WalReader::open(dir, Options::default())?;
    reader.set_end(Some(end));
    reader.seek(start)?;
    let mut w = Walk {
        stats: Stats::new(),
        records: Vec::new(),
        pages: BTreeMap::new(),
        lines: Vec::new(),
        block_lines: Vec::new(),
    };
    loop {
        let mut batch = BatchBuilder::with_capacity(1024, 1 << 20);
        let mut done = false;
        while batch.len() < 1024 {
            if reader.read_into(&mut batch)?.is_none() {
                done = true;
                break;
            }
        }
        let batch = batch.finish();
        for raw in batch.records() {
            // SAFETY: `batch` outlives the records read from it in this loop.
            let r = unsafe { Record::from_raw(raw) };
            let name = rmgr_name(r.rmid()).expect("a valid resource manager");
            let s = w.stats.entry(name).or_default();
            s.0 += 1;
            s.1 += i64::from(r.total_len() - r.fpi_len());
            s.2 += i64::from(r.fpi_len());
            w.records.push((r.lsn(), raw.timeline));
            w.lines.push(format!(
                "{}|{}|{}|{}|{}|{}|{}",
                fmt_lsn(r.lsn()),
                fmt_lsn(r.end_lsn()),
                r.xid(),
                rmgr_name(r.rmid()).unwrap_or_default(),
                r.total_len(),
                r.main_data().len(),
                r.fpi_len()
            ));
            for b in r.blocks() {
                w.block_lines.push(format!(
                    "{}|{}|{}|{}|{}|{}|{}|{}|{}",
                    fmt_lsn(r.lsn()),
                    b.block_id,
                    b.tablespace,
                    b.database,
                    b.relfilenode,
                    b.fork,
                    b.block,
                    r.block_data(b).len(),
                    b.image_len
                ));
            }
            for (i, b) in r.blocks().iter().enumerate() {
                if want_pages.contains(&(r.lsn(), b.block_id)) {
                    let page = r.block_image(i).expect("a restored page").to_vec();
                    w.pages.insert((r.lsn(), b.block_id), page);
                }
            }
        }
        if done {
            return Ok(w);
        }
    }
}

/// `pg_waldump --stats` over [start, end] of `dir` on timeline `tli`, per rmgr with
/// records: (records, record bytes, full-page-image bytes).
fn waldump_stats(dir: &Path, tli: u32, start: u64, end: u64) -> Stats {
    let (tli, start, end) = (tli.to_string(), fmt_lsn(start), fmt_lsn(end));
    common::waldump_stats(dir, &["-t", &tli, "-s", &start, "-e", &end])
}

fn add(into: &mut Stats, from: &Stats) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_default();
        e.0 += v.0;
        e.1 += v.1;
        e.2 += v.2;
    }
}

/// The end of a record written now (a logical message): a record boundary.
fn record_end(c: &Cluster, what: &str) -> u64 {
    parse_lsn(&c.query_one(&format!(
        "SELECT pg_logical_emit_message(false, 'walfile', '{what}')"
    )))
    .expect("an LSN")
}

fn builder(name: &str) -> walker_tests::ClusterBuilder {
    Cluster::builder(name)
        .preload_walker(false)
        .autovacuum(false)
        // Every segment of the test stays in pg_wal.
        .conf("wal_keep_size", "4GB")
        .conf("max_wal_size", "4GB")
}

fn compressions(c: &Cluster) -> Vec<&'static str> {
    // Debian's 15 and the pinned builds of 16-18 have lz4 and zstd; ask anyway.
    let mut m = vec!["off", "pglz"];
    for extra in ["lz4", "zstd"] {
        if c.psql("postgres", &format!("SET wal_compression = {extra}"))
            .is_ok()
        {
            m.push(extra);
        }
    }
    m
}

#[test]
fn walfile_reads_what_postgresql_reads() {
    let p = builder("walfile_primary").start();
    let version = common::server_version_num(&p);
    p.exec("CREATE EXTENSION pg_walinspect");
    let standby = builder("walfile_standby").standby_of(&p).start();

    let start = record_end(&p, "start");
    p.exec(common::WORKLOAD);
    p.exec(INDEXES);
    p.exec("CREATE TABLE fp (id serial PRIMARY KEY, n int, v text); INSERT INTO fp (n, v) SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
    let varied_end = record_end(&p, "varied");
    let methods = compressions(&p);
    let mut phases = Vec::new();
    for m in &methods {
        let from = record_end(&p, m);
        p.exec(&format!("SET wal_compression = {m}; {FPI_PHASE}"));
        phases.push((*m, from, record_end(&p, m)));
    }
    // A record longer than a segment: it spans at least two segment boundaries.
    let before_big = record_end(&p, "big");
    p.exec("SELECT pg_logical_emit_message(false, 'walfile-big', repeat('x', 40 * 1024 * 1024))");
    let end = record_end(&p, "end");
    p.exec("SELECT pg_switch_wal()");
    let pg_wal = p.data_dir().join("pg_wal");

    // 1. Per-rmgr statistics over the whole range equal pg_waldump's.
    let theirs = waldump_stats(&pg_wal, 1, start, end);
    let ours = walk(&pg_wal, start, end, &[]).unwrap_or_else(|e| panic!("walker-walfile: {e}"));
    assert_eq!(
        ours.stats,
        theirs,
        "walker-walfile vs pg_waldump --stats over {}..{}",
        fmt_lsn(start),
        fmt_lsn(end)
    );
    for rmgr in [
        "Heap",
        "Heap2",
        "Btree",
        "Gin",
        "Gist",
        "Hash",
        "SPGist",
        "Sequence",
        "Transaction",
        "Storage",
        "XLOG",
        "LogicalMessage",
    ] {
        assert!(
            ours.stats.contains_key(rmgr),
            "the workload wrote {rmgr} records: {:?}",
            ours.stats.keys()
        );
    }
    // Record by record and block by block, the batches hold what pg_walinspect
    // decodes (over the varied workload before the image phases).
    let records_sql = format!(
        "SELECT start_lsn, end_lsn, xid, resource_manager, record_length, main_data_length, fpi_length
         FROM pg_get_wal_records_info('{}', '{}')",
        fmt_lsn(start),
        fmt_lsn(varied_end)
    );
    let theirs: Vec<String> = p
        .query(&records_sql)
        .into_iter()
        .map(|r| r.join("|"))
        .collect();
    let varied = walk(&pg_wal, start, varied_end, &[]).unwrap();
    assert_eq!(
        varied.lines.len(),
        theirs.len(),
        "records over the varied workload"
    );
    for (o, t) in varied.lines.iter().zip(&theirs) {
        assert_eq!(o, t, "a record: walker-walfile vs pg_get_wal_records_info");
    }
    if version >= 160_000 {
        let blocks_sql = format!(
            "SELECT start_lsn, block_id, reltablespace, reldatabase, relfilenode, relforknumber, relblocknumber, block_data_length, coalesce(block_fpi_length, 0)
             FROM pg_get_wal_block_info('{}', '{}', false)",
            fmt_lsn(start),
            fmt_lsn(varied_end)
        );
        let theirs: Vec<String> = p
            .query(&blocks_sql)
            .into_iter()
            .map(|r| r.join("|"))
            .collect();
        assert_eq!(
            varied.block_lines.len(),
            theirs.len(),
            "block references over the varied workload"
        );
        for (o, t) in varied.block_lines.iter().zip(&theirs) {
            assert_eq!(
                o, t,
                "a block reference: walker-walfile vs pg_get_wal_block_info"
            );
        }
    }
    eprintln!(
        "walfile: {} records equal pg_get_wal_records_info's{}",
        varied.lines.len(),
        if version >= 160_000 {
            format!(
                ", {} block references pg_get_wal_block_info's",
                varied.block_lines.len()
            )
        } else {
            String::new()
        }
    );

    // Every phase logged full-page images, each range on its own equals too.
    for (m, from, to) in &phases {
        let theirs = waldump_stats(&pg_wal, 1, *from, *to);
        let ours = walk(&pg_wal, *from, *to, &[]).unwrap().stats;
        assert_eq!(ours, theirs, "wal_compression = {m}");
        assert!(
            ours.values().map(|s| s.2).sum::<i64>() > 0,
            "wal_compression = {m} logged images"
        );
    }
    // The big record crosses segment boundaries and is read whole.
    let seg = u64::from(WalDir::open(&pg_wal).unwrap().segment_size());
    let big = walk(&pg_wal, before_big, end, &[]).unwrap();
    let big_start = big
        .records
        .iter()
        .map(|r| r.0)
        .find(|l| *l >= before_big)
        .unwrap();
    let big_end = big
        .records
        .iter()
        .map(|r| r.0)
        .find(|l| *l > big_start)
        .unwrap();
    assert!(
        big_end / seg >= big_start / seg + 2,
        "the big record spans segments: {}..{}",
        fmt_lsn(big_start),
        fmt_lsn(big_end)
    );
    eprintln!(
        "walfile: {} records over {}..{}, compressions {methods:?}",
        ours.records.len(),
        fmt_lsn(start),
        fmt_lsn(end)
    );

    // 2. Restored pages equal pg_walinspect's block_fpi_data (16 and later), sampled
    //    per image kind (hole, compression).
    if version >= 160_000 {
        let sample = p.query(&format!(
            "SELECT start_lsn, block_id, info, encode(block_fpi_data, 'hex') FROM (
               SELECT start_lsn, block_id, array_to_string(block_fpi_info, ',') AS info, block_fpi_data,
                      row_number() OVER (PARTITION BY block_fpi_info ORDER BY start_lsn) AS n
               FROM pg_get_wal_block_info('{}', '{}') WHERE block_fpi_data IS NOT NULL) s
             WHERE n <= 12",
            fmt_lsn(start),
            fmt_lsn(end)
        ));
        let want: Vec<(u64, u8)> = sample
            .iter()
            .map(|r| (parse_lsn(&r[0]).unwrap(), r[1].parse().unwrap()))
            .collect();
        let got = walk(&pg_wal, start, end, &want).unwrap().pages;
        let mut kinds = std::collections::BTreeSet::new();
        for (r, key) in sample.iter().zip(&want) {
            let page = got
                .get(key)
                .unwrap_or_else(|| panic!("no page for {}/{}", r[0], r[1]));
            assert_eq!(page.len(), 8192);
            let hex: String = page.iter().map(|b| format!("{b:02x}")).collect();
            assert!(
                hex == r[3],
                "page of block {} of the record at {} ({}) differs from block_fpi_data",
                r[1],
                r[0],
                r[2]
            );
            kinds.insert(r[2].clone());
        }
        for m in &methods[1..] {
            let flag = format!("COMPRESS_{}", m.to_uppercase());
            assert!(
                kinds.iter().any(|k| k.contains(&flag)),
                "sampled {flag} images: {kinds:?}"
            );
        }
        assert!(
            kinds.iter().any(|k| !k.contains("COMPRESS")),
            "sampled uncompressed images: {kinds:?}"
        );
        eprintln!(
            "walfile: {} sampled pages equal block_fpi_data ({kinds:?})",
            sample.len()
        );
    }

    // 3. Bad bytes: a copy of one segment, bits flipped and then truncated.
    corrupted_segment_copies_are_errors(&pg_wal, start, seg);

    // 4. A timeline switch: the standby is promoted and writes on timeline 2. More
    //    WAL first, so the switch lies deep inside a segment.
    p.exec("INSERT INTO fp (n, v) SELECT g, 'before the switch' FROM generate_series(1, 5000) g");
    common::wait_reaches(
        &p,
        &standby,
        "the standby replays the workload",
        "SELECT pg_last_wal_replay_lsn()",
    );
    standby.promote();
    standby.wait_until("promoted", Duration::from_secs(60), || {
        standby.query_one("SELECT pg_is_in_recovery()") == "f"
    });
    standby.exec("INSERT INTO fp (n, v) SELECT g, 'tl2' FROM generate_series(1, 5000) g; SELECT pg_switch_wal(); CHECKPOINT; UPDATE fp SET n = 0 WHERE id % 100 = 0");
    let end2 = record_end(&standby, "end2");
    standby.exec("SELECT pg_switch_wal()");
    let s_wal = standby.data_dir().join("pg_wal");
    let history =
        std::fs::read_to_string(s_wal.join("00000002.history")).expect("timeline 2's history");
    let switch = parse_lsn(history.split_whitespace().nth(1).expect("a switch point")).unwrap();
    let mut theirs = waldump_stats(&s_wal, 1, start, switch);
    add(&mut theirs, &waldump_stats(&s_wal, 2, switch, end2));
    let ours = walk(&s_wal, start, end2, &[])
        .unwrap_or_else(|e| panic!("walker-walfile across the switch: {e}"));
    assert_eq!(
        ours.stats,
        theirs,
        "across the switch at {}",
        fmt_lsn(switch)
    );
    let switch_seg = switch / seg;
    for (lsn, tli) in &ours.records {
        let expect = if lsn / seg < switch_seg { 1 } else { 2 };
        assert_eq!(
            *tli,
            expect,
            "timeline of the record at {} (switch at {})",
            fmt_lsn(*lsn),
            fmt_lsn(switch)
        );
    }
    assert!(
        ours.records.iter().any(|r| r.0 >= switch + seg),
        "records on timeline 2 past its first segment"
    );
    assert!(
        switch % seg > seg / 64,
        "the switch lies inside a segment: {}",
        fmt_lsn(switch)
    );
    eprintln!(
        "walfile: timeline switch at {}, {} records to {}",
        fmt_lsn(switch),
        ours.records.len(),
        fmt_lsn(end2)
    );
}

/// A seeded xorshift generator: the same flips every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Copies the segment holding `start` alone into a directory, then: every flip of
/// one bit in a record's bytes or in a checked page-header field gives an error
/// naming the file and an LSN in the segment; a flip anywhere else either gives an
/// error or leaves the records read unchanged; truncating the file gives an error.
/// Each case reads a window of records around the flip, so the whole is bounded.
fn corrupted_segment_copies_are_errors(pg_wal: &Path, start: u64, seg: u64) {
    let segno = start / seg;
    let dir = walker_tests::clusters_dir().join(format!("walfile-corrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = walker_walfile::segment::segment_file_name(1, segno, seg as u32);
    let file: PathBuf = dir.join(&name);
    std::fs::copy(pg_wal.join(&name), &file).unwrap();
    let seg_start = segno * seg;
    let seg_end = seg_start + seg;

    // The clean reading: every record of the segment from `start` on.
    let mut clean = Vec::new();
    let mut r = WalReader::open(&dir, Options::default()).unwrap();
    r.seek(start).unwrap();
    let mut b = BatchBuilder::new();
    while let Some(pos) = r.read_into(&mut b).unwrap() {
        clean.push(pos);
    }
    assert!(clean.len() > 100, "a busy segment: {} records", clean.len());
    let last_end = clean.last().unwrap().end_lsn.min(seg_end);
    // Record bytes: from each start, its length, skipping page headers.
    let bytes = std::fs::read(&file).unwrap();
    let mut covered: Vec<(u64, usize)> = Vec::new(); // (LSN, record index)
    let page = WAL_PAGE_SIZE as u64;
    for (i, pos) in clean.iter().enumerate() {
        let off = (pos.lsn - seg_start) as usize;
        let total = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as u64;
        let (mut at, mut left) = (pos.lsn, total);
        while left > 0 && at < seg_end {
            if at % page == 0 {
                at += if at % seg == 0 { 40 } else { 24 };
            }
            let n = left.min(page - at % page);
            for k in (0..n).step_by(13) {
                covered.push((at + k, i));
            }
            at += n;
            left -= n;
        }
    }
    let window = |i: usize| -> (u64, u64) {
        let from = clean[i.saturating_sub(2)].lsn;
        let to = clean[(i + 2).min(clean.len() - 1)].end_lsn.min(last_end);
        (from, to)
    };
    let read = |from: u64, to: u64| -> Result<Vec<u64>, WalError> {
        let mut r = WalReader::open(&dir, Options::default())?;
        r.set_end(Some(to));
        r.seek(from)?;
        let mut b = BatchBuilder::new();
        let mut got = Vec::new();
        while let Some(p) = r.read_into(&mut b)? {
            got.push(p.lsn);
        }
        Ok(got)
    };
    let flip = |at: u64, bit: u8| {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .unwrap();
        let mut one = [0u8];
        f.read_exact_at(&mut one, at - seg_start).unwrap();
        one[0] ^= 1 << bit;
        f.write_all_at(&one, at - seg_start).unwrap();
    };
    let named = |e: &WalError, lo: u64, hi: u64| {
        let msg = e.to_string();
        // A length flipped upward is caught on the page the record would continue on.
        assert!(
            e.lsn >= lo.saturating_sub(page) && e.lsn <= hi + page,
            "error LSN {} outside {}..{}: {msg}",
            fmt_lsn(e.lsn),
            fmt_lsn(lo),
            fmt_lsn(hi)
        );
        assert!(msg.contains(&fmt_lsn(e.lsn)), "{msg}");
        assert!(e.file.is_none() || msg.contains(&name), "{msg}");
    };
    let mut rng = Rng(0x5EED_0019_C0FF_EE01);
    // Flips inside records: always an error.
    for _ in 0..150 {
        let (at, i) = covered[rng.below(covered.len() as u64) as usize];
        let bit = rng.below(8) as u8;
        let (from, to) = window(i);
        flip(at, bit);
        let res = read(from, to);
        flip(at, bit);
        match res {
            Err(e) => named(&e, from, to),
            Ok(got) => panic!(
                "bit {bit} of {} (record {} at {}) flipped, no error: {} records",
                fmt_lsn(at),
                i,
                fmt_lsn(clean[i].lsn),
                got.len()
            ),
        }
    }
    // Flips in the checked fields of page headers: magic, flags that matter, timeline,
    // address; the continuation length where a record continues.
    let pages: Vec<u64> = (seg_start..last_end)
        .step_by(page as usize)
        .filter(|p| *p > start + page)
        .collect();
    for _ in 0..60 {
        let pg = pages[rng.below(pages.len() as u64) as usize];
        let off = (pg - seg_start) as usize;
        let info = u16::from_le_bytes([bytes[off + 2], bytes[off + 3]]);
        let mut fields: Vec<(u64, u8)> = Vec::new();
        for byte in [0u64, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
            fields.extend((0..8).map(|b| (pg + byte, b)));
        }
        fields.extend([
            (pg + 2, 0),
            (pg + 2, 1),
            (pg + 2, 4),
            (pg + 3, 0),
            (pg + 3, 7),
        ]);
        if info & 1 != 0 {
            fields.extend((0..8).map(|b| (pg + 16, b)));
        }
        let (at, bit) = fields[rng.below(fields.len() as u64) as usize];
        let i = clean
            .iter()
            .position(|r| r.end_lsn > pg)
            .unwrap_or(clean.len() - 1);
        let (from, to) = window(i);
        flip(at, bit);
        let res = read(from, to);
        flip(at, bit);
        match res {
            Err(e) => named(&e, from, to),
            Ok(_) => panic!(
                "bit {bit} of page header byte {} of page {} flipped, no error",
                at - pg,
                fmt_lsn(pg)
            ),
        }
    }
    // Flips anywhere: an error or the same records, never a panic.
    for _ in 0..100 {
        let at = seg_start + rng.below(last_end - seg_start);
        let bit = rng.below(8) as u8;
        let i = clean
            .iter()
            .position(|r| r.end_lsn > at)
            .unwrap_or(clean.len() - 1);
        let (from, to) = window(i);
        flip(at, bit);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(from, to)))
            .unwrap_or_else(|_| panic!("panic with bit {bit} of {} flipped", fmt_lsn(at)));
        flip(at, bit);
        match res {
            Err(e) => named(&e, from, to),
            Ok(got) => assert_eq!(
                got,
                clean
                    .iter()
                    .filter(|r| r.lsn >= from && r.end_lsn <= to)
                    .map(|r| r.lsn)
                    .collect::<Vec<_>>(),
                "flip at {} changed the records without an error",
                fmt_lsn(at)
            ),
        }
    }
    // Truncation inside the records read: an error naming the position.
    for _ in 0..20 {
        let i = rng.below(clean.len() as u64 - 3) as usize + 2;
        let cut = clean[i].lsn + rng.below(clean[i].end_lsn - clean[i].lsn);
        std::fs::write(&file, &bytes[..(cut - seg_start) as usize]).unwrap();
        let (from, to) = window(i);
        match read(from, to) {
            Err(e) => named(&e, from, to),
            Ok(got) => panic!(
                "segment cut at {}: no error, {} records",
                fmt_lsn(cut),
                got.len()
            ),
        }
    }
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(
        read(clean[0].lsn, last_end).unwrap().len(),
        clean.iter().filter(|r| r.end_lsn <= last_end).count()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

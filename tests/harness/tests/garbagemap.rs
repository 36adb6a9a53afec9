//! garbagemap against pageinspect: dead tuples and dead line pointers per block range,
//! counted from the pages themselves, equal the plugin's numbers exactly.

mod common;

use std::collections::BTreeMap;
use walker_tests::Cluster;

const RANGE: i64 = 16;

/// Waits until garbagemap has applied and published every record written so far.
fn wait_published(c: &Cluster) {
    common::wait_reaches(
        c,
        c,
        "garbagemap publishes the WAL written so far",
        "SELECT through_lsn FROM walker.garbagemap_status",
    );
}

type Ranges = BTreeMap<i64, (i64, i64)>;

/// Per range: dead tuples (xmax committed and not a lock, or xmin aborted) and dead
/// line pointers, read from every page of `rel` in database `db` with pageinspect.
fn truth(c: &Cluster, db: &str, rel: &str) -> Ranges {
    let sql = format!(
        "SELECT blk / {RANGE},
                count(*) FILTER (WHERE lp_flags = 1 AND (
                    (t_xmax <> '0' AND t_infomask & 128 = 0 AND t_infomask & 4096 = 0
                     AND txid_status(t_xmax::text::bigint) = 'committed')
                    OR txid_status(t_xmin::text::bigint) = 'aborted')),
                count(*) FILTER (WHERE lp_flags = 3)
         FROM generate_series(0, pg_relation_size('{rel}') / 8192 - 1) blk,
              LATERAL heap_page_items(get_raw_page('{rel}', blk::int))
         GROUP BY 1 ORDER BY 1"
    );
    let out = c.psql(db, &sql).unwrap_or_else(|e| panic!("{e}"));
    out.lines()
        .map(|l| {
            l.split('|')
                .map(|x| x.parse::<i64>().unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|v| v[1] + v[2] > 0)
        .map(|v| (v[0], (v[1], v[2])))
        .collect()
}

/// The plugin's ranges of relation (database oid, relfilenode).
fn plugin(c: &Cluster, db_oid: &str, filenode: &str) -> Ranges {
    c.query(&format!(
        "SELECT first_block / {RANGE}, dead_tuples, dead_line_pointers FROM walker.garbagemap_heatmap
         WHERE database = {db_oid} AND relfilenode = {filenode} AND dead_tuples + dead_line_pointers > 0 ORDER BY 1"
    ))
    .into_iter()
    .map(|r| (r[0].parse().unwrap(), (r[1].parse().unwrap(), r[2].parse().unwrap())))
    .collect()
}

fn ids(c: &Cluster, db: &str, rel: &str) -> (String, String) {
    let out = c
        .psql(db, &format!("SELECT (SELECT oid FROM pg_database WHERE datname = current_database()), pg_relation_filenode('{rel}')"))
        .unwrap();
    let v: Vec<&str> = out.split('|').collect();
    (v[0].to_string(), v[1].to_string())
}

fn assert_same(c: &Cluster, db: &str, rel: &str) -> Ranges {
    let (oid, filenode) = ids(c, db, rel);
    let theirs = truth(c, db, rel);
    let ours = plugin(c, &oid, &filenode);
    assert_eq!(
        ours, theirs,
        "{db}.{rel}: garbagemap (left) against pageinspect (right), per {RANGE}-block range"
    );
    theirs
}

const WORKLOAD: &str = r#"
CREATE TABLE big (id int, pad text) WITH (fillfactor = 100);
INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
DELETE FROM big WHERE id % 7 = 0;
UPDATE big SET pad = pad || 'y' WHERE id % 11 = 0;
BEGIN; INSERT INTO big SELECT g, 'aborted' FROM generate_series(30001, 31000) g; ROLLBACK;
BEGIN; UPDATE big SET pad = 'z' WHERE id % 13 = 0; ROLLBACK;
BEGIN; COPY big (id) FROM PROGRAM 'seq 40001 41000'; ROLLBACK;
COPY big (id) FROM PROGRAM 'seq 50001 52000';
CREATE TABLE hot (id int PRIMARY KEY, n int) WITH (fillfactor = 50);
INSERT INTO hot SELECT g, 0 FROM generate_series(1, 2000) g;
UPDATE hot SET n = n + 1;
UPDATE hot SET n = n + 1;
UPDATE hot SET n = n + 1;
SELECT count(*) FROM hot WHERE n >= 0;
UPDATE hot SET n = n + 1 WHERE id % 2 = 0;
SELECT count(*) FROM hot WHERE n >= 0;
BEGIN;
DELETE FROM hot WHERE id <= 100;
SAVEPOINT s1;
DELETE FROM hot WHERE id BETWEEN 101 AND 200;
INSERT INTO hot VALUES (5001, 0);
ROLLBACK TO s1;
SAVEPOINT s2;
INSERT INTO hot VALUES (5002, 0);
UPDATE hot SET n = -1 WHERE id BETWEEN 201 AND 210;
RELEASE s2;
COMMIT;
BEGIN; DELETE FROM big WHERE id BETWEEN 1 AND 50; PREPARE TRANSACTION 'p1';
COMMIT PREPARED 'p1';
BEGIN; INSERT INTO big VALUES (-1, 'prepared, then rolled back'); DELETE FROM big WHERE id BETWEEN 51 AND 100; PREPARE TRANSACTION 'p2';
ROLLBACK PREPARED 'p2';
CREATE TABLE gone (a int); INSERT INTO gone SELECT generate_series(1, 100);
CREATE TABLE gone_prepared (a int);
DROP TABLE gone;
BEGIN; DELETE FROM big WHERE id BETWEEN 101 AND 150; DROP TABLE gone_prepared; PREPARE TRANSACTION 'p3';
COMMIT PREPARED 'p3';
BEGIN; CREATE TABLE born (a int); INSERT INTO big VALUES (-2, 'prepared with a new table, rolled back'); PREPARE TRANSACTION 'p4';
ROLLBACK PREPARED 'p4';
"#;

/// Whether records of [from, to) that first change a page after a checkpoint carry
/// its image: true when `counts` has such records, or when a hint-bit image
/// (`FPI_FOR_HINT`, with data checksums, PostgreSQL 18's default, or wal_log_hints)
/// took the page's image first, so the prune or vacuum record after it carries
/// offsets (both are decoded).
fn images_logged(c: &Cluster, from: &str, to: &str, counts: &BTreeMap<String, (i64, i64)>) -> bool {
    if counts.values().any(|v| v.1 > 0) {
        return true;
    }
    let hints =
        c.query_one("SHOW data_checksums") == "on" || c.query_one("SHOW wal_log_hints") == "on";
    hints
        && c.query_one(&format!(
            "SELECT count(*) > 0 FROM pg_get_wal_records_info('{from}', '{to}') WHERE resource_manager = 'XLOG' AND record_type = 'FPI_FOR_HINT'"
        )) == "t"
}

/// The current WAL insert position.
fn lsn(c: &Cluster) -> String {
    c.query_one("SELECT pg_current_wal_insert_lsn()")
}

#[test]
fn dead_tuples_per_range_equal_pageinspect() {
    let c = Cluster::builder("garbagemap")
        .plugins("garbagemap")
        .autovacuum(false)
        .conf("max_prepared_transactions", "5")
        .conf("garbagemap.range_blocks", &RANGE.to_string())
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pageinspect; CREATE EXTENSION pg_walinspect; CREATE DATABASE other;");
    let (on_access, by_vacuum) = common::prune_record_types(&c);
    c.psql("other", "CREATE EXTENSION pageinspect; CREATE TABLE o (a int, b text);
                     INSERT INTO o SELECT g, 'o' FROM generate_series(1, 5000) g;
                     DELETE FROM o WHERE a % 3 = 0;
                     BEGIN; INSERT INTO o SELECT g, 'rolled back' FROM generate_series(1, 500) g; ROLLBACK;")
        .unwrap();
    // The workload drops tables (commit and abort records with dropped statistics,
    // also prepared ones, whose transaction id follows the statistics).
    let w0 = lsn(&c);
    c.exec(WORKLOAD);
    let w1 = lsn(&c);
    wait_published(&c);
    assert_eq!(
        c.query_one("SELECT undecodable_records FROM walker.garbagemap_status"),
        "0"
    );
    // Pages pruned on access within a checkpoint cycle carry offsets, no image.
    let pruned = common::heap2_records(&c, &w0, &w1, on_access);
    assert!(
        pruned.values().any(|v| v.0 > 0),
        "on-access pruning without page images in the workload: {pruned:?}"
    );

    let big = assert_same(&c, "postgres", "big");
    assert!(
        big.len() >= 10,
        "big spans many ranges with dead tuples: {big:?}"
    );
    let hot = assert_same(&c, "postgres", "hot");
    assert!(
        hot.values().any(|v| v.1 > 0),
        "pruning left dead line pointers in hot: {hot:?}"
    );
    assert_same(&c, "other", "o");
    // The cumulative view against the heat map's rows: each relation's ranges
    // ranked by dead tuples, running sums and shares computed here by SQL window
    // functions (no rows on either side that the other lacks).
    let cumulative = "SELECT database, tablespace, relfilenode, rank, first_block, last_block, dead_tuples,
               cumulative_dead_tuples, round(ranges_pct::numeric, 9), round(dead_tuples_pct::numeric, 9)
        FROM walker.garbagemap_cumulative";
    let from_heatmap = "SELECT database, tablespace, relfilenode, row_number() OVER w, first_block, last_block,
               dead_tuples, sum(dead_tuples) OVER w,
               round(100.0 * row_number() OVER w / count(*) OVER p, 9),
               round(coalesce(100.0 * sum(dead_tuples) OVER w / nullif(sum(dead_tuples) OVER p, 0), 0), 9)
        FROM walker.garbagemap_heatmap
        WINDOW p AS (PARTITION BY database, tablespace, relfilenode),
               w AS (p ORDER BY dead_tuples DESC, first_block ROWS UNBOUNDED PRECEDING)";
    let differ = c.query(&format!(
        "(({cumulative}) EXCEPT ({from_heatmap})) UNION ALL (({from_heatmap}) EXCEPT ({cumulative}))"
    ));
    assert!(
        differ.is_empty(),
        "cumulative view against the heat map: {differ:?}"
    );
    let ranked = c.query(&format!(
        "SELECT rank, dead_tuples, cumulative_dead_tuples FROM walker.garbagemap_cumulative
         WHERE database = {} AND relfilenode = {} ORDER BY rank",
        ids(&c, "postgres", "big").0,
        ids(&c, "postgres", "big").1
    ));
    let big_total: i64 = big.values().map(|v| v.0).sum();
    assert_eq!(
        ranked.last().map(|r| r[2].clone()),
        Some(big_total.to_string()),
        "the last rank holds all of big's dead tuples (pageinspect's count)"
    );
    // The relation is resolved in the database that reads the view.
    let named = c.query_one(
        "SELECT dead_tuples FROM walker.garbagemap_relations WHERE relation = 'big'::regclass",
    );
    let total: i64 = big.values().map(|v| v.0).sum();
    assert_eq!(named, total.to_string());
    let advice = c.query("SELECT rank, relation::text, reason FROM walker.garbagemap_advice WHERE relation IS NOT NULL ORDER BY rank");
    assert!(advice[0][2].contains("dead tuples"), "{advice:?}");
    let svg = c.query_one("SELECT svg FROM walker.garbagemap_svg WHERE relation = 'big'::regclass");
    assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{svg}");
    // The view titles each picture with the relation's name as the catalog gives it
    // (qualified: the view reads with an empty search_path), never its relfilenode.
    assert!(
        svg.contains(
            "<title>public.big: dead tuples and dead line pointers per block range</title>"
        ),
        "the view's picture names the relation: {}",
        &svg[..300.min(svg.len())]
    );
    // The same heat map from the SQL function, by relation name, which titles it.
    let by_fn = c.query_one("SELECT walker.garbagemap_svg('{\"relation\": \"big\"}')");
    // The LSN the map is exact to may move between the two reads (the server writes
    // WAL of its own, e.g. running-transaction records); the rest must be equal.
    assert_eq!(
        without_lsn(&by_fn.replace("big: ", "public.big: ")),
        without_lsn(&svg)
    );
    // A relation of another database has no name here: its relfilenode and database.
    let (o_db, o_rfn) = ids(&c, "other", "o");
    let other = c.query_one(&format!(
        "SELECT svg FROM walker.garbagemap_svg WHERE database = {o_db} AND relfilenode = {o_rfn} AND relation IS NULL"
    ));
    assert!(
        other.contains(&format!("<title>relfilenode {o_rfn} (database {o_db}): ")),
        "{}",
        &other[..300.min(other.len())]
    );
    c.exec("CREATE TABLE untouched (v int)");
    let e = c
        .psql(
            "postgres",
            "SELECT walker.garbagemap_svg('{\"relation\": \"untouched\"}')",
        )
        .unwrap_err();
    assert!(e.contains("tracks no change of relfilenode"), "{e}");

    // The map survives a crash: restored from its snapshot, then the WAL after it.
    // After the checkpoint, the first prune or vacuum of each page carries its image
    // instead of offsets.
    // On-access pruning right after a checkpoint logs the pruned page's image.
    c.exec("UPDATE hot SET n = n + 1 WHERE id > 300");
    c.exec("CHECKPOINT");
    wait_published(&c);
    let p0 = lsn(&c);
    c.exec("SELECT count(*) FROM hot WHERE n >= 0");
    let p1 = lsn(&c);
    // (pg_walinspect reads flushed WAL only; walker has read past p1 once published.)
    wait_published(&c);
    let pruned = common::heap2_records(&c, &p0, &p1, on_access);
    assert!(
        images_logged(&c, &p0, &p1, &pruned),
        "on-access pruning with page images after the checkpoint: {pruned:?}"
    );
    assert_same(&c, "postgres", "hot");
    c.exec("DELETE FROM big WHERE id % 17 = 0");
    c.crash();
    c.start_again();
    wait_published(&c);
    let row = c.query("SELECT started_empty, start FROM walker.plugins WHERE name = 'garbagemap'");
    assert!(
        row[0][0] == "f" && row[0][1].starts_with("restored the snapshot"),
        "{row:?}"
    );
    assert_same(&c, "postgres", "big");
    assert_same(&c, "postgres", "hot");

    // VACUUM: the counts drop to what the pages show (no dead tuples, no dead line pointers).
    let v0 = lsn(&c);
    c.exec("VACUUM (INDEX_CLEANUP ON) big; VACUUM (INDEX_CLEANUP ON) hot;");
    let v1 = lsn(&c);
    c.psql("other", "VACUUM o").unwrap();
    wait_published(&c);
    // VACUUM's records of this major, with images (first change after the crash's
    // checkpoint) and without.
    let vacuumed = common::heap2_records(&c, &v0, &v1, by_vacuum);
    assert!(
        vacuumed.values().any(|v| v.0 > 0) && images_logged(&c, &v0, &v1, &vacuumed),
        "VACUUM wrote {by_vacuum:?} records with and without images: {vacuumed:?}"
    );
    assert_eq!(assert_same(&c, "postgres", "big"), Ranges::new());
    assert_eq!(assert_same(&c, "postgres", "hot"), Ranges::new());
    assert_eq!(assert_same(&c, "other", "o"), Ranges::new());

    // TRUNCATE and DROP: the old relation files leave the views.
    c.exec("DELETE FROM hot WHERE id < 50; DELETE FROM big WHERE id < 1000;");
    let (_, hot_old) = ids(&c, "postgres", "hot");
    let (_, big_old) = ids(&c, "postgres", "big");
    c.exec("TRUNCATE hot; DROP TABLE big;");
    wait_published(&c);
    let left = c.query_one(&format!("SELECT count(*) FROM walker.garbagemap_heatmap WHERE relfilenode IN ({hot_old}, {big_old})"));
    assert_eq!(left, "0", "truncated and dropped relations leave the map");
    assert_eq!(
        c.query_one("SELECT undecodable_records FROM walker.garbagemap_status"),
        "0"
    );
}

#[test]
fn the_relation_bound_evicts_the_least_recently_changed() {
    let c = Cluster::builder("gmbounds")
        .plugins("garbagemap")
        .autovacuum(false)
        .conf("garbagemap.max_relations", "10")
        .start();
    c.exec("CREATE EXTENSION walker;");
    c.exec("DO $$ BEGIN FOR i IN 1..30 LOOP EXECUTE format('CREATE TABLE t%s (a int); INSERT INTO t%s VALUES (1), (2)', i, i); END LOOP; END $$;");
    // No dead catalog tuples left, so reading the catalogs prunes nothing from here on.
    c.exec("VACUUM");
    wait_published(&c);
    let tracked = |c: &Cluster| -> Vec<String> {
        c.query("SELECT relfilenode FROM walker.garbagemap_relations ORDER BY 1")
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    };
    let filenode = |i: usize| c.query_one(&format!("SELECT pg_relation_filenode('t{i}')"));
    let before = tracked(&c);
    assert!(before.len() <= 10);
    let evicted_before: i64 = c
        .query_one("SELECT evicted_relations FROM walker.garbagemap_status")
        .parse()
        .unwrap();
    // The documented rule, modelled here: a relation entering a full map evicts the
    // least recently changed one. Before the deletes the map holds, oldest first, the
    // tables created last (in creation order) and then the catalogs VACUUM pruned.
    let nodes: Vec<String> = (1..=30).map(filenode).collect();
    let mut lru: Vec<String> = nodes
        .iter()
        .filter(|n| before.contains(n))
        .cloned()
        .collect();
    lru.extend(before.iter().filter(|n| !nodes.contains(n)).cloned());
    let mut expected_evictions = 0;
    for n in &nodes {
        if let Some(p) = lru.iter().position(|x| x == n) {
            lru.remove(p);
        } else if lru.len() >= 10 {
            lru.remove(0);
            expected_evictions += 1;
        }
        lru.push(n.clone());
    }
    let deletes: String = (1..=30)
        .map(|i| format!("DELETE FROM t{i} WHERE a = 1;\n"))
        .collect();
    c.exec(&deletes);
    wait_published(&c);
    let mut expect: Vec<String> = (21..=30).map(filenode).collect();
    expect.sort();
    assert_eq!(
        tracked(&c),
        expect,
        "the ten most recently changed relations are kept"
    );
    let evicted_after: i64 = c
        .query_one("SELECT evicted_relations FROM walker.garbagemap_status")
        .parse()
        .unwrap();
    assert_eq!(
        evicted_after - evicted_before,
        expected_evictions,
        "one eviction per relation entering a full map"
    );
    let dead = c.query("SELECT dead_tuples FROM walker.garbagemap_relations");
    assert!(
        dead.iter().all(|r| r[0] == "1"),
        "each kept table has its one dead tuple: {dead:?}"
    );
}

type VmRanges = BTreeMap<i64, (i64, i64)>;

/// Per range: blocks all-visible and all-frozen in the visibility map, read by
/// `pg_visibility_map` (ranges with neither left out).
fn vm_truth(c: &Cluster, rel: &str) -> VmRanges {
    c.query(&format!(
        "SELECT blkno / {RANGE}, count(*) FILTER (WHERE all_visible), count(*) FILTER (WHERE all_frozen)
         FROM pg_visibility_map('{rel}') GROUP BY 1
         HAVING count(*) FILTER (WHERE all_visible OR all_frozen) > 0 ORDER BY 1"
    ))
    .into_iter()
    .map(|r| (r[0].parse().unwrap(), (r[1].parse().unwrap(), r[2].parse().unwrap())))
    .collect()
}

/// garbagemap's all-visible and all-frozen blocks per range of `rel`.
fn vm_plugin(c: &Cluster, rel: &str) -> VmRanges {
    let (oid, filenode) = ids(c, "postgres", rel);
    c.query(&format!(
        "SELECT first_block / {RANGE}, all_visible_blocks, all_frozen_blocks FROM walker.garbagemap_heatmap
         WHERE database = {oid} AND relfilenode = {filenode} AND all_visible_blocks + all_frozen_blocks > 0 ORDER BY 1"
    ))
    .into_iter()
    .map(|r| (r[0].parse().unwrap(), (r[1].parse().unwrap(), r[2].parse().unwrap())))
    .collect()
}

fn assert_vm_same(c: &Cluster, rel: &str, step: &str) -> VmRanges {
    wait_published(c);
    let theirs = vm_truth(c, rel);
    assert_eq!(
        vm_plugin(c, rel),
        theirs,
        "{rel} after {step}: garbagemap (left) against pg_visibility_map (right), (all-visible, all-frozen) blocks per {RANGE}-block range"
    );
    theirs
}

/// Blocks with `bit` per range summed over the relation.
fn total(r: &VmRanges, frozen: bool) -> i64 {
    r.values().map(|v| if frozen { v.1 } else { v.0 }).sum()
}

/// A cluster with garbagemap in ranges of [`RANGE`] blocks, no autovacuum, walker and
/// pg_visibility created.
fn visibility_cluster(name: &str) -> Cluster {
    let c = Cluster::builder(name)
        .plugins("garbagemap")
        .autovacuum(false)
        .conf("garbagemap.range_blocks", &RANGE.to_string())
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_visibility;");
    c
}

#[test]
fn all_visible_blocks_per_range_equal_pg_visibility() {
    let c = visibility_cluster("gmvisible");
    c.exec(
        "CREATE TABLE vt (id int, pad text) WITH (fillfactor = 100);
         INSERT INTO vt SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
         CREATE TABLE fz (id int, pad text);
         INSERT INTO fz SELECT g, repeat('f', 100) FROM generate_series(1, 5000) g;",
    );
    // Nothing is all-visible before VACUUM.
    assert_eq!(assert_vm_same(&c, "vt", "the inserts"), VmRanges::new());

    // VACUUM sets all-visible (XLOG_HEAP2_VISIBLE), VACUUM (FREEZE) all-frozen too.
    c.exec("VACUUM vt; VACUUM (FREEZE) fz;");
    let vt = assert_vm_same(&c, "vt", "VACUUM");
    assert!(vt.len() >= 10 && total(&vt, false) > 150, "{vt:?}");
    let fz = assert_vm_same(&c, "fz", "VACUUM (FREEZE)");
    assert!(
        total(&fz, true) > 40 && total(&fz, true) == total(&fz, false),
        "{fz:?}"
    );

    // Deletes, updates (old and new pages, HOT and not), an insert and a COPY
    // (multi-insert) into all-visible pages clear the bits; row locks clear
    // all-frozen only.
    c.exec(
        "DELETE FROM vt WHERE id BETWEEN 1000 AND 1100;
         UPDATE vt SET pad = 'short' WHERE id BETWEEN 5000 AND 5010;
         UPDATE vt SET id = id WHERE id = 9000;
         INSERT INTO vt VALUES (-1, 'into the last page');
         COPY vt (id) FROM PROGRAM 'seq 30001 30100';
         SELECT count(*) FROM (SELECT * FROM fz WHERE id BETWEEN 100 AND 900 FOR UPDATE) l;
         SELECT count(*) FROM (SELECT * FROM fz WHERE id BETWEEN 3000 AND 3100 FOR KEY SHARE) l;",
    );
    let changed = assert_vm_same(&c, "vt", "deletes, updates, inserts");
    assert!(
        total(&changed, false) < total(&vt, false),
        "{changed:?} {vt:?}"
    );
    let locked = assert_vm_same(&c, "fz", "row locks");
    assert!(
        total(&locked, true) < total(&locked, false),
        "locks cleared all-frozen only: {locked:?}"
    );

    // VACUUM sets them again; deleting the tail (with the updated rows' new
    // versions, written at the end) and vacuuming truncates the relation.
    c.exec("VACUUM vt");
    c.exec("DELETE FROM vt WHERE id > 15000 OR id < 0 OR id BETWEEN 5000 AND 5010 OR id = 9000");
    c.exec("VACUUM vt");
    let truncated = assert_vm_same(&c, "vt", "VACUUM and truncation");
    let blocks: i64 = c
        .query_one("SELECT pg_relation_size('vt') / 8192")
        .parse()
        .unwrap();
    assert!(
        truncated.keys().all(|r| r * RANGE < blocks) && blocks < 300,
        "{truncated:?} in {blocks} blocks"
    );

    // COPY FREEZE into a table created in the same transaction marks its pages
    // all-visible and all-frozen as it writes them.
    c.exec(
        "BEGIN; CREATE TABLE cf (id int); COPY cf FROM PROGRAM 'seq 1 20000' WITH (FREEZE); COMMIT;",
    );
    let cf = assert_vm_same(&c, "cf", "COPY FREEZE");
    assert!(total(&cf, true) > 0, "{cf:?}");

    // The bits survive a crash: the snapshot, then the WAL after it.
    c.exec("CHECKPOINT; UPDATE vt SET pad = 'after the checkpoint' WHERE id % 500 = 0;");
    c.crash();
    c.start_again();
    assert_vm_same(&c, "vt", "a crash");
    assert_vm_same(&c, "fz", "a crash");
    assert_vm_same(&c, "cf", "a crash");
    assert_eq!(
        c.query_one("SELECT undecodable_records FROM walker.garbagemap_status"),
        "0"
    );
}

#[test]
fn the_vacuum_plan_names_the_action_its_cost_and_what_autovacuum_would_do() {
    let c = Cluster::builder("gmplan")
        .plugins("garbagemap")
        .autovacuum(false)
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_visibility;");
    // `few`: 10000 rows, vacuumed (reltuples 10000, every block all-visible), then
    // 100 deleted. `mostly`: 20000 rows, vacuumed, then 18000 deleted.
    c.exec(
        "CREATE TABLE few (id int PRIMARY KEY, pad text) WITH (fillfactor = 100);
         INSERT INTO few SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g;
         CREATE TABLE mostly (id int, pad text) WITH (fillfactor = 100);
         INSERT INTO mostly SELECT g, repeat('m', 100) FROM generate_series(1, 20000) g;",
    );
    c.exec("VACUUM few");
    c.exec("VACUUM mostly");
    c.exec("DELETE FROM few WHERE id <= 100");
    c.exec("DELETE FROM mostly WHERE id > 2000");
    wait_published(&c);
    // The statistics system counts the deletes once the deleting sessions flushed.
    c.wait_until("n_dead_tup counts the deletes", std::time::Duration::from_secs(60), || {
        c.query_one(
            "SELECT count(*) FROM pg_stat_user_tables WHERE (relname, n_dead_tup) IN (('few', 100), ('mostly', 18000))",
        ) == "2"
    });
    let plan = |rel: &str| -> Vec<String> {
        c.query(&format!(
            "SELECT action, vacuum_heap_blocks, vacuum_index_blocks, repack_heap_blocks, dead_tuples,
                    n_dead_tup, autovacuum_threshold, over_autovacuum_threshold, autovacuum_enabled, cost
             FROM walker.garbagemap_vacuum_plan WHERE relation = '{rel}'::regclass"
        ))
        .pop()
        .unwrap_or_else(|| panic!("no plan for {rel}"))
    };
    let blocks = |rel: &str| -> i64 {
        c.query_one(&format!("SELECT pg_relation_size('{rel}') / 8192"))
            .parse()
            .unwrap()
    };
    // Blocks VACUUM reads: those pg_visibility_map does not show all-visible.
    let not_visible = |rel: &str| {
        c.query_one(&format!(
            "SELECT count(*) FILTER (WHERE NOT all_visible) FROM pg_visibility_map('{rel}')"
        ))
    };

    // few: 100 dead of 10000; autovacuum's trigger 50 + 0.2 * 10000 = 2050, not
    // reached; VACUUM reads the blocks the deletes touched and the primary key.
    let few = plan("few");
    assert_eq!(few[0], "VACUUM", "{few:?}");
    assert_eq!(few[1], not_visible("few"), "{few:?}");
    assert_eq!(few[2], blocks("few_pkey").to_string(), "{few:?}");
    assert_eq!(few[4..9], ["100", "100", "2050", "f", "f"], "{few:?}");
    assert!(
        few[9].contains("autovacuum is off"),
        "the cluster runs without autovacuum: {few:?}"
    );

    // mostly: 18000 dead, 2000 live: a rewrite writes a tenth of the blocks
    // (rounded up); autovacuum's trigger 50 + 0.2 * 20000 = 4050 is passed.
    let mostly = plan("mostly");
    let m = blocks("mostly");
    assert!(
        mostly[0].starts_with("pg_repack or pg_squeeze"),
        "{mostly:?}"
    );
    assert_eq!(mostly[1], not_visible("mostly"), "{mostly:?}");
    assert_eq!(
        mostly[3],
        ((m * 2000 + 19999) / 20000).to_string(),
        "{mostly:?}"
    );
    assert_eq!(
        mostly[4..9],
        ["18000", "18000", "4050", "t", "f"],
        "{mostly:?}"
    );

    // A relation option changes the threshold as it changes autovacuum's.
    c.exec("ALTER TABLE few SET (autovacuum_vacuum_threshold = 10, autovacuum_vacuum_scale_factor = 0)");
    assert_eq!(plan("few")[6..8], ["10", "t"]);

    // An anti-wraparound VACUUM due (age(relfrozenxid) past the relation's
    // autovacuum_freeze_max_age, at its least, 100,000) with the primary key larger
    // than the blocks to read: VACUUM (INDEX_CLEANUP off) reads no index block.
    c.exec(
        "ALTER TABLE few SET (autovacuum_freeze_max_age = 100000);
         CREATE PROCEDURE burn(n int) LANGUAGE plpgsql AS $$
         BEGIN FOR i IN 1..n LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$;
         SET synchronous_commit = off; CALL burn(100100);",
    );
    assert_eq!(
        c.query_one("SELECT age(relfrozenxid) >= 100000 FROM pg_class WHERE relname = 'few'"),
        "t"
    );
    wait_published(&c);
    let (heap, index) = (not_visible("few"), blocks("few_pkey"));
    assert!(index > heap.parse::<i64>().unwrap(), "{heap} {index}");
    let due = plan("few");
    assert_eq!(due[0], "VACUUM (INDEX_CLEANUP off)", "{due:?}");
    assert_eq!(due[1..3], [heap.clone(), index.to_string()], "{due:?}");
    assert!(
        due[9].starts_with(&format!(
            "reads {heap} heap blocks and no index block; leaves the dead line pointers until a VACUUM that reads the {index} index blocks"
        )),
        "{due:?}"
    );
}

/// `svg` with the LSN of its "through LSN X/Y" subtitle blanked.
fn without_lsn(svg: &str) -> String {
    const MARK: &str = "through LSN ";
    match svg.find(MARK) {
        Some(i) => {
            let start = i + MARK.len();
            let end = svg[start..]
                .find(|ch: char| !(ch.is_ascii_hexdigit() || ch == '/'))
                .map_or(svg.len(), |n| start + n);
            format!("{}{}", &svg[..start], &svg[end..])
        }
        None => svg.to_string(),
    }
}

/// The fewest ranges holding 80% of `per_range`'s dead tuples (most first), as
/// integers: k with 5 × (sum of the k largest) ≥ 4 × total.
fn ranges_for_80pct(per_range: &[i64]) -> i64 {
    let mut v = per_range.to_vec();
    v.sort_unstable_by(|a, b| b.cmp(a));
    let total: i64 = v.iter().sum();
    let mut running = 0;
    for (i, n) in v.iter().enumerate() {
        running += n;
        if running * 5 >= total * 4 {
            return i as i64 + 1;
        }
    }
    panic!("no dead tuples in {per_range:?}")
}

/// `part` of `whole` in percent, rounded half up to one decimal, as numeric prints it.
fn pct(part: i64, whole: i64) -> String {
    let tenths = (2000 * part + whole) / (2 * whole);
    format!("{}.{}", tenths / 10, tenths % 10)
}

#[test]
fn the_vacuum_plan_says_when_vacuum_reads_only_the_ranges_with_dead_tuples() {
    let c = visibility_cluster("gmranges");
    // An earlier garbagemap's plan had fewer columns: refresh_views() replaces its
    // function and view (members of the extension) and they stay members.
    c.exec(
        "ALTER EXTENSION walker DROP VIEW walker.garbagemap_vacuum_plan;
         ALTER EXTENSION walker DROP FUNCTION walker.garbagemap_vacuum_plan_rows();
         DROP VIEW walker.garbagemap_vacuum_plan;
         DROP FUNCTION walker.garbagemap_vacuum_plan_rows();
         CREATE FUNCTION walker.garbagemap_vacuum_plan_rows() RETURNS TABLE (relation regclass, action text)
             LANGUAGE sql AS 'SELECT NULL::regclass, NULL::text';
         CREATE VIEW walker.garbagemap_vacuum_plan AS SELECT * FROM walker.garbagemap_vacuum_plan_rows();
         ALTER EXTENSION walker ADD FUNCTION walker.garbagemap_vacuum_plan_rows();
         ALTER EXTENSION walker ADD VIEW walker.garbagemap_vacuum_plan;",
    );
    c.query("SELECT walker.refresh_views()");
    assert_eq!(
        c.query_one(
            "SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
             WHERE e.extname = 'walker' AND d.deptype = 'e'
               AND (d.objid = 'walker.garbagemap_vacuum_plan'::regclass
                    OR d.objid = 'walker.garbagemap_vacuum_plan_rows()'::regprocedure)"
        ),
        "2",
        "the replaced plan's view and function belong to the extension"
    );
    // Three tables of 20,000 rows of about 130 bytes (about 330 blocks, 21 ranges of
    // 16 blocks). `conc`: vacuumed (every block all-visible), then its first 1,500
    // rows deleted: the dead tuples and the only blocks that are not all-visible sit
    // in the first two ranges. `late`: the same deletes, never vacuumed: nothing is
    // all-visible. `spread`: every tenth row deleted, never vacuumed. `wide`:
    // vacuumed, then every fifth row of every third range deleted: spread over a
    // third of the ranges, the rest all-visible.
    for t in ["conc", "late", "spread", "wide"] {
        c.exec(&format!(
            "CREATE TABLE {t} (id int, pad text) WITH (fillfactor = 100);
             INSERT INTO {t} SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;"
        ));
    }
    c.exec("VACUUM conc");
    c.exec("VACUUM wide");
    let doomed = [
        ("conc", "id <= 1500"),
        ("late", "id <= 1500"),
        ("spread", "id % 10 = 0"),
        (
            "wide",
            // (16: RANGE)
            "id % 5 = 0 AND (ctid::text::point)[0]::bigint / 16 % 3 = 0",
        ),
    ];
    // The rows each delete kills per range, read from their ctids before it.
    let mut dead_per_range = BTreeMap::new();
    for (t, cond) in doomed {
        let counts: Vec<i64> = c
            .query(&format!(
                "SELECT count(*) FROM {t} WHERE {cond} GROUP BY (ctid::text::point)[0]::bigint / {RANGE}"
            ))
            .iter()
            .map(|r| r[0].parse().unwrap())
            .collect();
        dead_per_range.insert(t, counts);
        c.exec(&format!("DELETE FROM {t} WHERE {cond}"));
    }
    wait_published(&c);
    c.wait_until(
        "n_dead_tup counts the deletes",
        std::time::Duration::from_secs(60),
        || {
            c.query_one(
                "SELECT count(*) FROM pg_stat_user_tables
                 WHERE (relname, n_dead_tup) IN (('conc', 1500), ('late', 1500), ('spread', 2000))
                    OR (relname = 'wide' AND n_dead_tup > 0)",
            ) == "4"
        },
    );
    let int = |sql: &str| -> i64 { c.query_one(sql).parse().unwrap() };
    for (t, _) in doomed {
        let blocks = int(&format!("SELECT pg_relation_size('{t}') / 8192"));
        // What VACUUM reads: the blocks pg_visibility_map does not show all-visible,
        // and the ranges they fall in.
        let not_visible = int(&format!(
            "SELECT count(*) FROM pg_visibility_map('{t}') WHERE NOT all_visible"
        ));
        let vacuum_ranges = int(&format!(
            "SELECT count(DISTINCT blkno / {RANGE}) FROM pg_visibility_map('{t}') WHERE NOT all_visible"
        ));
        let ranges = (blocks + RANGE - 1) / RANGE;
        let counts = &dead_per_range[t];
        let top = ranges_for_80pct(counts);
        let share = pct(not_visible, blocks);
        let got = c
            .query(&format!(
                "SELECT action, ranges, dead_ranges, ranges_for_80pct, vacuum_ranges, vacuum_heap_blocks,
                        vacuum_heap_pct, concentrated, n_dead_tup, range_advice
                 FROM walker.garbagemap_vacuum_plan WHERE relation = '{t}'::regclass"
            ))
            .pop()
            .unwrap_or_else(|| panic!("no plan for {t}"));
        let want = [
            "VACUUM".to_string(),
            ranges.to_string(),
            counts.len().to_string(),
            top.to_string(),
            vacuum_ranges.to_string(),
            not_visible.to_string(),
            share.clone(),
            if top * 5 <= ranges { "t" } else { "f" }.to_string(),
            counts.iter().sum::<i64>().to_string(),
        ];
        assert_eq!(
            got[..9],
            want,
            "{t}: the plan (left) against the table (right)"
        );
        println!("{t}: {got:?}");
        let advice = &got[9];
        let expected = match t {
            "conc" => {
                assert!(top <= 2 && vacuum_ranges <= 2, "{t}: {got:?}");
                format!(
                    "range-limited already: 80% of the dead tuples sit in {top} of {ranges} ranges and the rest is all-visible, so a plain VACUUM reads only {vacuum_ranges} ranges ({not_visible} blocks, {share}% of the relation)"
                )
            }
            "late" => {
                assert_eq!(
                    (not_visible, vacuum_ranges),
                    (blocks, ranges),
                    "{t}: {got:?}"
                );
                format!(
                    "80% of the dead tuples sit in {top} of {ranges} ranges, but {vacuum_ranges} ranges ({not_visible} blocks, {share}% of the relation) are not all-visible and VACUUM reads them all; once it has set them all-visible, the next VACUUM reads only the ranges changed since"
                )
            }
            "wide" => {
                assert!(
                    top * 5 > ranges && not_visible * 2 <= blocks,
                    "{t}: {got:?}"
                );
                format!(
                    "spread: 80% of the dead tuples take {top} of {ranges} ranges; VACUUM reads the {vacuum_ranges} ranges that are not all-visible ({not_visible} blocks, {share}% of the relation)"
                )
            }
            _ => {
                assert!(top * 5 > ranges && not_visible == blocks, "{t}: {got:?}");
                format!(
                    "spread: 80% of the dead tuples take {top} of {ranges} ranges and {share}% of the relation is not all-visible ({not_visible} blocks in {vacuum_ranges} ranges): VACUUM reads most of it and no range-limited approach helps"
                )
            }
        };
        assert_eq!(*advice, expected, "{t}");
    }
}

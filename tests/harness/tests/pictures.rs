//! The pictures: garbagemap's heat map, the autosizer's windows and the budget's top
//! writers, each read from its SQL function, rendered to PNG by a real renderer
//! (`rsvg-convert`, Debian's `librsvg2-bin`, installed by `./walker setup`), and the
//! numbers each draws (its cells' and bars' hover text) compared with the rows of the
//! SQL views they come from and with hand-derived counts, never with the renderer.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use walker_tests::Cluster;

/// The hover texts of an SVG's rectangles (`<rect ...><title>text</title></rect>`),
/// unescaped.
fn hovers(svg: &str) -> Vec<String> {
    svg.split("<rect")
        .skip(1)
        .filter_map(|r| {
            let head = r.split("</rect>").next()?;
            let t = head.split("<title>").nth(1)?;
            Some(unescape(t.split("</title>").next()?))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The `width` and `height` of the SVG's root element.
fn svg_size(svg: &str) -> (u32, u32) {
    let head = &svg[..svg.find('>').expect("an svg element")];
    let attr = |name: &str| -> u32 {
        let at = head.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
        head[at..].split('"').next().unwrap().parse().unwrap()
    };
    (attr("width"), attr("height"))
}

fn out_dir() -> PathBuf {
    let d = walker_tests::clusters_dir().join("pictures");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Renders `svg` to `<name>.png` with rsvg-convert; checks that it rendered without a
/// complaint, is a PNG of the SVG's size, and holds more than an empty page of the
/// same size does (the same renderer on a blank SVG).
fn render(name: &str, svg: &str) -> PathBuf {
    let dir = out_dir();
    let convert = |svg_text: &str, stem: &str| -> (PathBuf, Vec<u8>) {
        let (svg_path, png_path) = (
            dir.join(format!("{stem}.svg")),
            dir.join(format!("{stem}.png")),
        );
        std::fs::write(&svg_path, svg_text).unwrap();
        let out = Command::new("rsvg-convert")
            .arg("-o")
            .arg(&png_path)
            .arg(&svg_path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run rsvg-convert ({e}): install it with ./walker setup (Debian package librsvg2-bin)"));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "rsvg-convert {}: {}\n{}",
            svg_path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        (png_path.clone(), std::fs::read(&png_path).unwrap())
    };
    let (png_path, png) = convert(svg, name);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", png_path.display());
    // IHDR: width and height, big-endian, right after the 8-byte signature and the
    // chunk's length and type.
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    assert_eq!(&png[12..16], b"IHDR");
    let (w, h) = svg_size(svg);
    assert_eq!(
        (be(16), be(20)),
        (w, h),
        "{name}: PNG size against the SVG's"
    );
    let blank = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"><rect width="{w}" height="{h}" fill="#ffffff"/></svg>"##
    );
    let (_, empty) = convert(&blank, &format!("{name}-blank"));
    assert!(
        png.len() > 4 * empty.len(),
        "{name}: the PNG ({} bytes) is hardly more than a blank page ({} bytes)",
        png.len(),
        empty.len()
    );
    println!(
        "{name}: {w}x{h}, {} bytes of PNG ({})",
        png.len(),
        png_path.display()
    );
    png_path
}

fn cluster(name: &str) -> Cluster {
    let c = Cluster::builder(name)
        .plugins("garbagemap, autosizer, budget")
        .autovacuum(false)
        .conf("max_wal_size", "96MB")
        .conf("min_wal_size", "32MB")
        .conf("checkpoint_timeout", "30s")
        .conf("autosizer.window", "1s")
        // Recommend only: max_wal_size stays 96MB, so the burst below forces
        // checkpoints whatever the earlier windows measured.
        .conf("autosizer.dry_run", "on")
        .conf("walker.naptime", "50ms")
        .conf("budget.history_interval", "1s")
        .start();
    c.exec("CREATE EXTENSION walker");
    c
}

/// Numbers after `key` in `text`: `"12 dead tuples"` with key `" dead tuples"` gives
/// 12 (the number just before the key).
fn number_before(text: &str, key: &str) -> u64 {
    let end = text
        .find(key)
        .unwrap_or_else(|| panic!("{key:?} in {text:?}"));
    let start = text[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    text[start..end]
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

fn number_after(text: &str, key: &str) -> u64 {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("{key:?} in {text:?}"))
        + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

fn garbagemap_heat_map(c: &Cluster) -> PathBuf {
    // 20,000 rows of about 130 bytes: about 330 blocks, three 128-block ranges.
    // Every 7th row of the first 5,000 deleted: 714 dead tuples (5000 / 7), all
    // in the first range or two.
    c.exec(
        "CREATE TABLE pic (id int, pad text) WITH (fillfactor = 100);
         INSERT INTO pic SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
         DELETE FROM pic WHERE id <= 5000 AND id % 7 = 0;",
    );
    common::wait_reaches(
        c,
        c,
        "garbagemap publishes the WAL written so far",
        "SELECT through_lsn FROM walker.garbagemap_status",
    );
    let svg = c.query_one("SELECT walker.garbagemap_svg('{\"relation\": \"pic\"}')");
    assert!(
        svg.contains("<title>pic: dead tuples and dead line pointers per block range</title>"),
        "the title names the relation: {}",
        &svg[..300.min(svg.len())]
    );
    let cells: BTreeMap<u64, (u64, u64)> = hovers(&svg)
        .iter()
        .map(|h| {
            (
                number_after(h, "blocks "),
                (
                    number_before(h, " dead tuples"),
                    number_before(h, " dead line pointers"),
                ),
            )
        })
        .collect();
    let rows: BTreeMap<u64, (u64, u64)> = c
        .query("SELECT first_block, dead_tuples, dead_line_pointers FROM walker.garbagemap_heatmap WHERE relation = 'pic'::regclass")
        .iter()
        .map(|r| (r[0].parse().unwrap(), (r[1].parse().unwrap(), r[2].parse().unwrap())))
        .collect();
    assert_eq!(
        cells, rows,
        "the heat map's cells (left) against walker.garbagemap_heatmap (right)"
    );
    let dead: u64 = cells.values().map(|v| v.0).sum();
    assert_eq!(dead, 5000 / 7, "every 7th of the first 5,000 rows is dead");
    // The extent drawn ends in the last range the heat map holds.
    let last_block = number_after(&svg, "\">blocks 0..");
    let last_first = *rows.keys().last().unwrap();
    assert!(
        (last_first..last_first + 128).contains(&last_block),
        "the extent ends at block {last_block}, the last range starts at {last_first}"
    );
    // The view draws the same cells, titled with the relation's qualified name.
    let view =
        c.query_one("SELECT svg FROM walker.garbagemap_svg WHERE relation = 'pic'::regclass");
    assert_eq!(hovers(&view), hovers(&svg));
    assert!(
        view.contains(
            "<title>public.pic: dead tuples and dead line pointers per block range</title>"
        ),
        "the view's picture names the relation: {}",
        &view[..300.min(view.len())]
    );
    render("garbagemap", &svg)
}

/// Reads `sql` between two readings of `stable` and returns both once they agree,
/// so the picture and the rows it is compared with saw the same state.
fn between<T: PartialEq>(
    c: &Cluster,
    what: &str,
    stable: impl Fn() -> T,
    sql: &str,
) -> (T, String) {
    for _ in 0..100 {
        let before = stable();
        let got = c.query_one(sql);
        if stable() == before {
            return (before, got);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} kept changing while the picture was read");
}

fn autosizer_windows(c: &Cluster) -> PathBuf {
    // Checkpoints are classified once the services worker published the settings.
    c.wait_until(
        "the autosizer knows max_wal_size",
        Duration::from_secs(60),
        || c.query_one("SELECT walker.autosizer_status()->>'max_wal_size_mb'") == "96",
    );
    // A checkpoint the next ones are measured from (the first one seen has no
    // distance), then a burst of 120 MB and more against max_wal_size = 96MB: 6
    // segments, CheckPointSegments 3 (6 / 1.9), so the server forces a checkpoint
    // every 2 segments or so (32 MB), and the autosizer counts one as forced from 1
    // segment of redo distance (3 - 2).
    c.exec("CHECKPOINT");
    c.exec("CREATE TABLE burst (id int, pad text); INSERT INTO burst SELECT g, repeat('y', 200) FROM generate_series(1, 400000) g;");
    c.wait_until(
        "the autosizer closes a window with a checkpoint forced by WAL",
        Duration::from_secs(120),
        || {
            c.query_one(
                "SELECT count(*) FILTER (WHERE forced > 0) > 0 FROM walker.autosizer_windows",
            ) == "t"
        },
    );
    let rows_sql = "SELECT to_char(start_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                           bytes / 1048576, demand_bytes / 1048576, forced, timed, requested, max_wal_size_mb
                    FROM walker.autosizer_windows ORDER BY start_at";
    let (rows, svg) = between(
        c,
        "walker.autosizer_windows",
        || c.query(rows_sql),
        "SELECT walker.autosizer_svg()",
    );
    let bars: Vec<Vec<String>> = hovers(&svg)
        .iter()
        .filter(|h| h.contains(" MB written"))
        .map(|h| {
            vec![
                h[..h.find(" .. ").unwrap()].to_string(),
                number_before(h, " MB written").to_string(),
                number_after(h, "demand ").to_string(),
                number_after(h, "forced ").to_string(),
                number_after(h, "timed ").to_string(),
                number_after(h, "requested ").to_string(),
                number_after(h, "max_wal_size ").to_string(),
            ]
        })
        .collect();
    assert_eq!(
        bars, rows,
        "the autosizer's bars (left) against walker.autosizer_windows (right)"
    );
    let forced: u64 = rows.iter().map(|r| r[3].parse::<u64>().unwrap()).sum();
    assert!(forced > 0);
    assert!(
        svg.contains(&format!("checkpoints forced by WAL volume: {forced};")),
        "{}",
        &svg[..800]
    );
    render("autosizer", &svg)
}

fn budget_writers(c: &Cluster) -> PathBuf {
    c.exec("CREATE ROLE painter LOGIN; GRANT CREATE ON SCHEMA public TO painter;");
    c.psql_as(
        "painter",
        "postgres",
        "SET application_name = 'pictures'; CREATE TABLE canvas (id int, pad text); INSERT INTO canvas SELECT g, repeat('z', 50) FROM generate_series(1, 5000) g;",
    )
    .unwrap();
    common::wait_caught_up(c);
    let row_sql = "SELECT bytes, fpi_bytes, records, transactions FROM walker.budget_scopes WHERE role_name = 'painter' AND application = 'pictures'";
    let (row, svg) = between(
        c,
        "painter's scope",
        || c.query(row_sql),
        "SELECT walker.budget_svg()",
    );
    let bar = hovers(&svg)
        .into_iter()
        .find(|h| h.starts_with("session: role painter, database postgres, application pictures:"))
        .unwrap_or_else(|| panic!("no bar for painter's scope in {svg}"));
    let drawn = vec![
        number_after(&bar, "pictures: ").to_string(),
        number_after(&bar, "WAL (").to_string(),
        number_before(&bar, " records").to_string(),
        number_before(&bar, " transactions").to_string(),
    ];
    assert_eq!(
        vec![drawn],
        row,
        "painter's bar (left) against walker.budget_scopes (right)"
    );
    // Every scope the view holds is drawn or summed into the others' line.
    let scopes: usize = c
        .query_one("SELECT count(*) FROM walker.budget_scopes")
        .parse()
        .unwrap();
    assert!(
        svg.contains(&format!("{scopes} scopes, ")),
        "{}",
        &svg[..400]
    );
    render("budget", &svg)
}

/// The hover texts of an SVG's points (`<circle>` with a `<title>`).
fn point_hovers(svg: &str) -> Vec<String> {
    svg.split("<circle")
        .skip(1)
        .filter_map(|r| {
            let head = r.split("</circle>").next()?;
            let t = head.split("<title>").nth(1)?;
            Some(unescape(t.split("</title>").next()?))
        })
        .collect()
}

/// After `budget_writers`: painter's WAL over the history's intervals adds up to its
/// scope's bytes in `walker.budget_scopes` (checked against pg_walinspect by the
/// budget suites), in the view and in the picture's points.
fn budget_history(c: &Cluster) -> PathBuf {
    let scope_bytes: u64 = c
        .query_one("SELECT bytes FROM walker.budget_scopes WHERE role_name = 'painter' AND application = 'pictures'")
        .parse()
        .unwrap();
    let in_history = "SELECT coalesce(sum(bytes), 0) FROM walker.budget_history WHERE role_name = 'painter' AND application = 'pictures'";
    // An interval ends every second while the walker runs: painter's last one soon.
    c.wait_until(
        "painter's WAL in the budget's history",
        Duration::from_secs(60),
        || c.query_one(in_history).parse::<u64>().unwrap() == scope_bytes,
    );
    // Each interval's `all` row is at least what it names.
    let short = c.query_one(
        "SELECT count(*) FROM (SELECT sampled_at, sum(bytes) FILTER (WHERE rank = 0) AS every, sum(bytes) FILTER (WHERE rank > 0) AS named FROM walker.budget_history GROUP BY sampled_at) x WHERE named > every",
    );
    assert_eq!(short, "0", "an interval names more WAL than it holds");
    let (_, svg) = between(
        c,
        "painter's history",
        || c.query_one(in_history),
        "SELECT walker.budget_history_svg()",
    );
    let drawn: u64 = point_hovers(&svg)
        .iter()
        .filter(|h| h.starts_with("session: role painter, db postgres, app pictures: "))
        .map(|h| number_after(h, "pictures: "))
        .sum();
    assert_eq!(
        drawn, scope_bytes,
        "painter's points (left) against its scope's bytes (right)"
    );
    render("budget-history", &svg)
}

#[test]
fn each_picture_renders_and_draws_the_rows_of_its_view() {
    let c = cluster("pictures");
    let pngs = [
        garbagemap_heat_map(&c),
        budget_writers(&c),
        budget_history(&c),
        autosizer_windows(&c),
    ];
    for p in pngs {
        assert!(Path::new(&p).exists());
    }
}

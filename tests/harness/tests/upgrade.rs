//! The upgrade suite: `ALTER EXTENSION walker UPDATE` from every release frozen in
//! `walker-host/sql/releases/` gives the same database as a fresh `CREATE EXTENSION
//! walker` of the current version, and every release has an update path to it.
//!
//! "The same" is judged by the server, not by walker: `pg_dump --schema-only
//! --binary-upgrade` of the database (the one pg_dump mode that writes an
//! extension's member objects one by one, with their grants, comments and `ALTER
//! EXTENSION ... ADD`; the test clusters hold nothing else), compared as sets of pg_dump's entries after dropping what
//! legitimately differs (OIDs in `binary_upgrade_*` calls, the extension's version);
//! the extension's members (`pg_depend`, as `\dx+` lists them); its configuration
//! tables (`extconfig`); and walker's roles. Each comparison names the entries found
//! on one side only. An update script that misses an object, or a change of walker's
//! SQL without one, fails here.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use walker_tests::{client_command, workspace_dir, Cluster};

/// The plugins loaded on both sides: their views, functions and own SQL are part of
/// the extension (refresh_views()), so both sides must load the same ones.
const PLUGINS: &str = "rmgr_stats, garbagemap, autosizer, budget";

fn sql_dir() -> PathBuf {
    workspace_dir().join("walker-host").join("sql")
}

/// The current version: walker-host's `version = "..."` (walker.control's
/// `default_version` is `@CARGO_VERSION@`).
fn current_version() -> String {
    let path = workspace_dir().join("walker-host").join("Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("walker-host/Cargo.toml");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("version = \"")
                .and_then(|rest| rest.strip_suffix('"'))
        })
        .unwrap_or_else(|| panic!("no version = \"...\" line in {}", path.display()))
        .to_string()
}

/// The `walker--<...>.sql` names of `dir`, without prefix and suffix.
fn script_stems(dir: &str) -> Vec<String> {
    let path = sql_dir().join(dir);
    let mut stems: Vec<String> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|n| {
            n.strip_prefix("walker--")
                .and_then(|s| s.strip_suffix(".sql"))
                .map(str::to_string)
        })
        .collect();
    stems.sort();
    stems
}

/// The frozen releases (`releases/walker--<version>.sql`).
fn releases() -> Vec<String> {
    script_stems("releases")
}

/// The update scripts (`upgrades/walker--<from>--<to>.sql`) as (from, to).
fn updates() -> Vec<(String, String)> {
    script_stems("upgrades")
        .into_iter()
        .map(|s| {
            let (from, to) = s.split_once("--").unwrap_or_else(|| {
                panic!("upgrades/walker--{s}.sql is not named walker--<from>--<to>.sql")
            });
            (from.to_string(), to.to_string())
        })
        .collect()
}

/// The versions reachable from `from` through the update scripts.
fn reachable(from: &str, updates: &[(String, String)]) -> BTreeSet<String> {
    let mut seen = BTreeSet::from([from.to_string()]);
    let mut queue = VecDeque::from([from.to_string()]);
    while let Some(v) = queue.pop_front() {
        for (a, b) in updates {
            if *a == v && seen.insert(b.clone()) {
                queue.push_back(b.clone());
            }
        }
    }
    seen
}

#[test]
fn every_release_has_an_update_path_to_the_current_version() {
    let current = current_version();
    let releases = releases();
    let updates = updates();
    assert!(
        !releases.is_empty(),
        "no frozen release in {}",
        sql_dir().join("releases").display()
    );
    assert!(
        !releases.contains(&current),
        "releases/walker--{current}.sql freezes the current version {current}: bump walker-host's version first (the current install script is pgrx's, generated)"
    );
    let missing: Vec<String> = releases
        .iter()
        .filter(|r| !reachable(r, &updates).contains(&current))
        .map(|r| format!("walker--{r}.sql"))
        .collect();
    assert!(
        missing.is_empty(),
        "no chain of update scripts in walker-host/sql/upgrades/ leads from {missing:?} to the current version {current}: add walker--<from>--<to>.sql (README, \"Upgrades\")"
    );
    // An update script's versions are releases or the current version: a typo would
    // make a script nobody runs.
    for (from, to) in &updates {
        for v in [from, to] {
            assert!(
                *v == current || releases.contains(v),
                "upgrades/walker--{from}--{to}.sql names version {v}, which is neither frozen in releases/ nor the current {current}"
            );
        }
    }
}

/// `releases/SHA256SUMS` as (file name, SHA-256 in hex), in `sha256sum`'s format.
fn frozen_sums() -> BTreeMap<String, String> {
    let path = sql_dir().join("releases").join("SHA256SUMS");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (one `sha256sum walker--<version>.sql` line per release)",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (sum, name) = l.split_once("  ").unwrap_or_else(|| {
                panic!(
                    "{}: {l:?} is not a `sha256sum` line (<hex>  <file>)",
                    path.display()
                )
            });
            (name.to_string(), sum.to_string())
        })
        .collect()
}

/// The SHA-256 of `file`, by coreutils' `sha256sum` (nothing of walker's).
fn sha256(file: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sha256sum: {e} (install coreutils)"));
    assert!(
        out.status.success(),
        "sha256sum {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn released_scripts_are_never_edited() {
    let sums = frozen_sums();
    let releases = releases();
    for r in &releases {
        let name = format!("walker--{r}.sql");
        let want = sums.get(&name).unwrap_or_else(|| {
            panic!(
                "releases/{name} has no line in releases/SHA256SUMS: when freezing a release, add it (cd walker-host/sql/releases && sha256sum {name} >> SHA256SUMS)"
            )
        });
        let got = sha256(&sql_dir().join("releases").join(&name));
        assert_eq!(
            &got, want,
            "releases/{name} changed after its release (SHA-256 {got}, frozen as {want}): released scripts are frozen: add an upgrade script instead (walker-host/sql/upgrades/walker--<from>--<to>.sql, README \"Upgrades\") and restore the file (git checkout -- walker-host/sql/releases/{name})"
        );
    }
    let stale: Vec<&String> = sums
        .keys()
        .filter(|n| !releases.iter().any(|r| format!("walker--{r}.sql") == **n))
        .collect();
    assert!(
        stale.is_empty(),
        "releases/SHA256SUMS names {stale:?}, which releases/ does not hold: a released script is never removed"
    );
}

/// A cluster with the shipped plugins loaded.
fn cluster(name: &str) -> Cluster {
    Cluster::builder(name)
        .plugins(PLUGINS)
        .autovacuum(false)
        .start()
}

/// pg_dump's schema of the database (walker's objects: `--schema=walker` would leave
/// them out, as members of an extension not selected) as a set of entries (one per `-- Name:`
/// header), with OIDs and the version removed.
fn dump_entries(c: &Cluster) -> BTreeSet<String> {
    let out = client_command("pg_dump", c.port(), "postgres")
        .args(["--schema-only", "--binary-upgrade"])
        .args(["-d", "postgres"])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    normalise_dump(&String::from_utf8_lossy(&out.stdout))
}

/// Splits a dump into entries at its `-- Name:` headers and removes what differs
/// between two equal schemas: `binary_upgrade_set_next_*` calls (OIDs), the
/// extension's version and its configuration tables' OIDs in
/// `binary_upgrade_create_empty_extension` (compared separately), and `-- Dependencies:`
/// lines (dump ids).
fn normalise_dump(dump: &str) -> BTreeSet<String> {
    let mut entries = BTreeSet::new();
    let mut entry = String::new();
    for line in dump.lines() {
        if line.starts_with("-- Name:") || line.starts_with("-- Data for Name:") {
            if !entry.trim().is_empty() {
                entries.insert(entry.trim().to_string());
            }
            entry = String::new();
        }
        let skip = line.contains("binary_upgrade_set_next_")
            || line.starts_with("-- Dependencies:")
            || line.starts_with("-- Dumped from database version")
            || line.starts_with("-- Dumped by pg_dump version")
            || line.starts_with("\\restrict")
            || line.starts_with("\\unrestrict")
            || line.trim() == "--";
        if skip {
            continue;
        }
        if line.contains("binary_upgrade_create_empty_extension") {
            entry.push_str("SELECT pg_catalog.binary_upgrade_create_empty_extension(<version and extconfig compared apart>)\n");
            continue;
        }
        entry.push_str(line);
        entry.push('\n');
    }
    if !entry.trim().is_empty() {
        entries.insert(entry.trim().to_string());
    }
    entries
}

/// The extension's members as `\dx+ walker` lists them (pg_describe_object of its
/// `pg_depend` entries of type 'e').
fn members(c: &Cluster) -> BTreeSet<String> {
    c.query_one(
        "SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
         WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
           AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'walker')",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// The extension's configuration tables and filters, and its schema, relocatability
/// and owner.
fn extension_row(c: &Cluster) -> BTreeSet<String> {
    c.query_one(
        "SELECT format('extconfig %s, extcondition %s, schema %s, relocatable %s, owner %s',
                       extconfig::regclass[], extcondition, extnamespace::regnamespace,
                       extrelocatable, extowner::regrole)
         FROM pg_extension WHERE extname = 'walker'",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// The roles walker created (marked by its comment): attributes, memberships, comment.
fn roles(c: &Cluster) -> BTreeSet<String> {
    c.query_one(
        "SELECT format('%s super %s inherit %s createrole %s createdb %s login %s replication %s bypassrls %s member of %s comment %L',
                       r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb,
                       r.rolcanlogin, r.rolreplication, r.rolbypassrls,
                       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                             WHERE m.member = r.oid ORDER BY 1),
                       shobj_description(r.oid, 'pg_authid'))
         FROM pg_roles r
         WHERE shobj_description(r.oid, 'pg_authid') LIKE 'walker:%'",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// What is on one side only, for the failure message.
fn one_sided(what: &str, updated: &BTreeSet<String>, fresh: &BTreeSet<String>) -> Option<String> {
    let only_updated: Vec<&String> = updated.difference(fresh).collect();
    let only_fresh: Vec<&String> = fresh.difference(updated).collect();
    if only_updated.is_empty() && only_fresh.is_empty() {
        return None;
    }
    let mut msg = format!("{what}:\n");
    for e in only_fresh {
        msg.push_str(&format!(
            "  only in a fresh CREATE EXTENSION (the update script misses it):\n    {}\n",
            e.replace('\n', "\n    ")
        ));
    }
    for e in only_updated {
        msg.push_str(&format!("  only after the update (the update script leaves or makes it, a fresh install has not):\n    {}\n", e.replace('\n', "\n    ")));
    }
    Some(msg)
}

/// Everything compared, by name.
fn schema_of(c: &Cluster) -> BTreeMap<&'static str, BTreeSet<String>> {
    BTreeMap::from([
        (
            "pg_dump --schema-only --binary-upgrade (entries)",
            dump_entries(c),
        ),
        (
            "the extension's members (pg_depend, \\dx+ walker)",
            members(c),
        ),
        (
            "pg_extension (configuration tables, schema, owner)",
            extension_row(c),
        ),
        ("walker's roles", roles(c)),
    ])
}

#[test]
fn an_update_from_every_release_equals_a_fresh_install() {
    let current = current_version();
    let fresh = cluster("upgrade_fresh");
    fresh.exec("CREATE EXTENSION walker");
    assert_eq!(
        fresh.query_one("SELECT extversion FROM pg_extension WHERE extname = 'walker'"),
        current,
        "CREATE EXTENSION walker did not install the current version {current}: is walker.control's default_version installed from this tree (./walker install)?"
    );
    // The server's own view of the update paths: every version it knows reaches the
    // current one.
    let no_path = fresh.query_one(&format!(
        "SELECT string_agg(source, ', ') FROM pg_extension_update_paths('walker')
         WHERE target = '{current}' AND source <> '{current}' AND path IS NULL"
    ));
    assert!(
        no_path.is_empty(),
        "PostgreSQL finds no update path to {current} from: {no_path}"
    );
    let want = schema_of(&fresh);
    drop(fresh);

    for release in releases() {
        let old = cluster(&format!("upgrade_from_{}", release.replace('.', "_")));
        old.exec(&format!("CREATE EXTENSION walker VERSION '{release}'"));
        old.exec("ALTER EXTENSION walker UPDATE");
        assert_eq!(
            old.query_one("SELECT extversion FROM pg_extension WHERE extname = 'walker'"),
            current,
            "ALTER EXTENSION walker UPDATE from {release} did not reach {current}"
        );
        let got = schema_of(&old);
        let diffs: Vec<String> = want
            .iter()
            .filter_map(|(what, fresh)| one_sided(what, &got[what], fresh))
            .collect();
        assert!(
            diffs.is_empty(),
            "walker {release} updated to {current} differs from a fresh CREATE EXTENSION walker of {current}:\n{}\nAdd what is missing to (or remove what is left from) walker-host/sql/upgrades/walker--*--{current}.sql.",
            diffs.join("\n")
        );
        eprintln!(
            "{release} -> {current}: {} pg_dump entries, {} members, equal to a fresh install",
            got[want.keys().next().expect("comparisons")].len(),
            got["the extension's members (pg_depend, \\dx+ walker)"].len()
        );
    }
}

//! Least privilege (issue 15, items 1-4) against a real server: a role that is not a
//! superuser tries each way into the services worker's superuser SQL and the SQL
//! surface; no role gains anything, and the server log says why walker refused.

mod common;

use common::wait_caught_up;
use std::time::Duration;
use walker_tests::Cluster;

/// A function body that makes `attacker` a superuser when a superuser runs it, and does
/// nothing (quietly) when anyone else does.
const PWN: &str =
    "BEGIN ALTER ROLE attacker SUPERUSER; EXCEPTION WHEN insufficient_privilege THEN NULL; END;";

/// As role `attacker`, creates a schema `walker` in `db` holding a
/// `walker.budget_reload()` that would make the attacker a superuser if a superuser
/// ran it (what the services worker calls for budget).
fn squat(c: &Cluster, db: &str) {
    c.psql_as(
        "attacker",
        db,
        &format!(
            "CREATE SCHEMA walker;
             CREATE FUNCTION walker.budget_reload() RETURNS integer LANGUAGE plpgsql AS $f$
             BEGIN {PWN} RETURN 0; END $f$;"
        ),
    )
    .unwrap();
}

fn is_superuser(c: &Cluster, role: &str) -> bool {
    c.query_one(&format!(
        "SELECT rolsuper FROM pg_roles WHERE rolname = '{role}'"
    )) == "t"
}

/// `sql` as `user` in `db` with the SQLSTATE in error messages.
fn verbose(c: &Cluster, user: &str, db: &str, sql: &str) -> Result<String, String> {
    c.psql_as(user, db, &format!("\\set VERBOSITY verbose\n{sql}"))
}

fn log_count(c: &Cluster, needle: &str) -> usize {
    c.server_log().matches(needle).count()
}

/// Item 1: a `walker` schema squatted before CREATE EXTENSION, and `walker_*` roles
/// created by someone else, are never used or adopted.
#[test]
fn squatted_schema_and_roles_are_refused() {
    let c = Cluster::builder("priv-squat")
        .plugins("budget")
        .conf("walker.naptime", "50ms")
        .start();
    c.exec("CREATE ROLE attacker LOGIN CREATEROLE; GRANT CREATE ON DATABASE postgres TO attacker;");
    squat(&c, "postgres");
    // The budget asks the services worker to run `SELECT walker.budget_reload()` at
    // start: restart so that the first request meets the squatted schema.
    c.restart();
    c.wait_until(
        "the services worker refuses the squatted schema",
        Duration::from_secs(40),
        || {
            c.server_log().contains(
                "refuses to run a plugin's SQL: schema \"walker\" (owner \"attacker\") was not created by CREATE EXTENSION walker",
            )
        },
    );
    assert!(
        !is_superuser(&c, "attacker"),
        "the worker ran the squatter's function"
    );

    // CREATE EXTENSION does not adopt the schema.
    let e = verbose(&c, "postgres", "postgres", "CREATE EXTENSION walker").unwrap_err();
    assert!(
        e.contains("42501")
            && e.contains("schema \"walker\" already exists (owner \"attacker\") and was not created by CREATE EXTENSION walker")
            && e.contains("Drop schema walker"),
        "{e}"
    );
    // Nor a role named walker_admin that the attacker made (and holds).
    c.psql_as(
        "attacker",
        "postgres",
        "DROP SCHEMA walker CASCADE; CREATE ROLE walker_admin NOLOGIN ROLE attacker;",
    )
    .unwrap();
    let e = verbose(&c, "postgres", "postgres", "CREATE EXTENSION walker").unwrap_err();
    assert!(
        e.contains("42501")
            && e.contains("role \"walker_admin\" already exists and was not created by walker")
            && e.contains("DROP ROLE walker_admin"),
        "{e}"
    );
    assert_eq!(
        c.query_one("SELECT count(*) FROM pg_extension WHERE extname = 'walker'"),
        "0"
    );
    // Once it is gone, walker creates (and marks) its own roles, and the services
    // worker loads the policies through walker's own function.
    c.exec("DROP ROLE walker_admin; CREATE EXTENSION walker");
    assert_eq!(
        c.query_one(
            "SELECT string_agg(rolname || '=' || shobj_description(oid, 'pg_authid'), ',' ORDER BY rolname)
             FROM pg_roles WHERE rolname LIKE 'walker\\_%'"
        ),
        "walker_admin=walker: created by CREATE EXTENSION walker,\
         walker_budget_tenant_setter=walker: created by CREATE EXTENSION walker,\
         walker_monitor=walker: created by CREATE EXTENSION walker"
    );
    c.wait_until("the policies are loaded", Duration::from_secs(40), || {
        c.query_one("SELECT policies_loaded FROM walker.budget_counters") == "t"
    });
    assert!(!is_superuser(&c, "attacker"));
    // A second CREATE EXTENSION (after DROP EXTENSION) takes walker's own marked roles.
    c.exec("DROP EXTENSION walker CASCADE; DROP SCHEMA IF EXISTS walker CASCADE; CREATE EXTENSION walker");
}

/// Item 1: `ALTER DATABASE ... SET search_path` to a schema a non-superuser owns, with
/// an operator `=(text, text)` and a type `int8` there, does not redirect the worker's
/// per-second queries.
#[test]
fn database_search_path_cannot_redirect_the_worker() {
    let c = Cluster::builder("priv-path")
        .plugins("budget")
        .conf("walker.naptime", "50ms")
        .conf("walker.database", "walkerdb")
        .start();
    c.exec("CREATE DATABASE walkerdb; CREATE ROLE attacker LOGIN; GRANT CREATE ON DATABASE walkerdb TO attacker;");
    c.psql_as(
        "attacker",
        "walkerdb",
        &format!(
            "CREATE SCHEMA evil;
             CREATE FUNCTION evil.pwn() RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN {PWN} RETURN true; END $f$;
             CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$
             BEGIN PERFORM evil.pwn(); RETURN pg_catalog.texteq($1, $2); END $f$;
             CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
             CREATE DOMAIN evil.int8 AS pg_catalog.int8 CHECK (evil.pwn());"
        ),
    )
    .unwrap();
    c.psql("walkerdb", "CREATE EXTENSION walker").unwrap();
    c.exec("ALTER DATABASE walkerdb SET search_path = evil, pg_catalog");
    let starts = log_count(&c, "services worker started in database \"walkerdb\"");
    c.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'walker services'");
    c.wait_until(
        "the services worker starts again",
        Duration::from_secs(30),
        || log_count(&c, "services worker started in database \"walkerdb\"") > starts,
    );
    // It publishes every second: give it a few rounds.
    let facts = c
        .psql(
            "walkerdb",
            "SELECT pg_sleep(4); SELECT count(*) FROM walker.status WHERE services_pid IS NOT NULL",
        )
        .unwrap();
    assert!(facts.ends_with('1'), "{facts}");
    assert!(
        !is_superuser(&c, "attacker"),
        "the services worker resolved evil.= or evil.int8"
    );
    assert!(
        !c.server_log().contains("could not publish server facts"),
        "the worker's own queries must still work with the database's search_path"
    );
}

/// Item 1: a missing `walker.database` that a CREATEDB role creates (and so owns) is
/// refused: the worker runs nothing there.
#[test]
fn database_owned_by_a_non_superuser_is_refused() {
    let c = Cluster::builder("priv-db")
        .plugins("budget")
        .conf("walker.naptime", "50ms")
        .conf("walker.database", "walkerdb")
        .start();
    c.exec("CREATE ROLE attacker LOGIN CREATEDB");
    c.psql_as("attacker", "postgres", "CREATE DATABASE walkerdb")
        .unwrap();
    squat(&c, "walkerdb");
    c.wait_until(
        "the services worker refuses the database",
        Duration::from_secs(60),
        || {
            c.server_log().contains(
                "the services worker refuses database \"walkerdb\" (walker.database): its owner \"attacker\" is not a superuser",
            )
        },
    );
    // The budget's request (made at start, retried) is refused too, never run.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !is_superuser(&c, "attacker"),
        "the worker ran SQL in the attacker's database"
    );
}

/// Item 2 (plugin roles reach only their own functions; prometheus() honours declared
/// access), item 3 (label values escaped) and item 4 (refresh_views: plugin SQL only
/// for superusers, nothing left to PUBLIC, nothing adopted that walker did not make).
#[test]
fn sql_surface_grants_only_what_it_declares() {
    let c = Cluster::builder("priv-sql")
        .plugins("budget")
        .conf("walker.naptime", "50ms")
        .start();
    c.exec("CREATE EXTENSION walker");
    c.exec(
        "CREATE ROLE setter LOGIN IN ROLE walker_budget_tenant_setter;
         CREATE ROLE mon LOGIN IN ROLE walker_monitor;
         CREATE ROLE adm LOGIN IN ROLE walker_admin;",
    );

    // Item 2: the plugin's role calls its own function, not the monitor's metrics.
    c.psql_as(
        "setter",
        "postgres",
        "SELECT walker.budget_set_tenant('{\"tenant\": \"acme\"}')",
    )
    .unwrap();
    let e = verbose(
        &c,
        "setter",
        "postgres",
        "SELECT walker.plugin_call('budget', 'metrics', '{}')",
    )
    .unwrap_err();
    assert!(
        e.contains("42501") && e.contains("walker_monitor"),
        "a plugin role read monitor data: {e}"
    );
    let m = c
        .psql_as("mon", "postgres", "SELECT walker.prometheus()")
        .unwrap();
    assert!(m.contains("walker_budget_wal_bytes_total"), "{m}");

    // Item 3: a tenant name with a quote and line feeds cannot add a metric line.
    c.exec(
        "SELECT walker.budget_set_tenant(jsonb_build_object('tenant', E'x\"} 1\\nwalker_injected_total 42\\n# '));
         CREATE TABLE labelled (x int); INSERT INTO labelled SELECT generate_series(1, 1000);",
    );
    wait_caught_up(&c);
    c.wait_until(
        "the tenant's scope is in the metrics",
        Duration::from_secs(30),
        || {
            c.query_one("SELECT walker.prometheus()")
                .contains("walker_injected_total")
        },
    );
    let text = c.query_one("SELECT walker.prometheus()");
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(sample_line(line), "not one sample: {line:?}\n{text}");
        assert!(
            !line.starts_with("walker_injected_total"),
            "injected: {line:?}"
        );
    }
    assert!(
        text.contains(r#"tenant="x\"} 1\nwalker_injected_total 42\n# ""#),
        "{text}"
    );

    // Item 4: walker_admin refreshes views and functions, but the plugin's SQL (which
    // runs as the superuser owning refresh_views) is not run for it.
    let out = c
        .psql_as("adm", "postgres", "SELECT walker.refresh_views()")
        .unwrap();
    assert!(out.contains("walker.budget_metrics(jsonb)"), "{out}");
    assert!(
        !out.contains("sql of plugin budget"),
        "walker_admin made plugin SQL run as superuser: {out}"
    );
    // An object walker did not make is not adopted; a superuser's refresh runs the
    // plugin's SQL; nothing in the schema is left to PUBLIC.
    c.exec("CREATE FUNCTION walker.stray() RETURNS int LANGUAGE sql AS 'SELECT 1'");
    let out = c.query_one("SELECT walker.refresh_views()");
    assert!(out.contains("sql of plugin budget"), "{out}");
    assert_eq!(
        c.query_one(
            "SELECT count(*) FROM pg_depend WHERE classid = 'pg_proc'::regclass
             AND objid = 'walker.stray()'::regprocedure AND deptype = 'e'"
        ),
        "0",
        "refresh_views adopted a function it did not create"
    );
    c.exec("DROP FUNCTION walker.stray()");
    assert_eq!(
        c.query_one(
            "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
             WHERE p.pronamespace = 'walker'::regnamespace
               AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))"
        ),
        "",
        "functions executable by PUBLIC"
    );
    assert_eq!(
        c.query_one(
            "SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c
             WHERE c.relnamespace = 'walker'::regnamespace
               AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0)"
        ),
        "",
        "relations granted to PUBLIC"
    );
}

/// True when `line` is one sample of the text exposition format: a metric name,
/// optional `{name="value",...}` with escaped values, a space and a number.
fn sample_line(line: &str) -> bool {
    let mut chars = line.chars().peekable();
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            name.push(c);
            chars.next();
        } else {
            break;
        }
    }
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    if chars.peek() == Some(&'{') {
        chars.next();
        loop {
            let mut label = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    label.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if label.is_empty() || chars.next() != Some('=') || chars.next() != Some('"') {
                return false;
            }
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('\\' | '"' | 'n') => {}
                        _ => return false,
                    },
                    Some('"') => break,
                    Some('\n') | None => return false,
                    Some(_) => {}
                }
            }
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                _ => return false,
            }
        }
    }
    if chars.next() != Some(' ') {
        return false;
    }
    let value: String = chars.collect();
    value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value.as_str())
}

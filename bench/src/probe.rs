//! Questions to a running walker over a [`Session`]: where it is, whether it caught
//! up, which process it is.

use crate::lsn;
use crate::session::Session;
use std::thread;
use std::time::{Duration, Instant};

/// Timeout of one probe query.
pub const QUERY: Duration = Duration::from_secs(30);

/// Calls `f` every `every` until it returns `Ok(true)`; an error naming `what` after
/// `timeout`, or `f`'s own error.
pub fn poll(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if f()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        thread::sleep(every);
    }
}

/// Writes a WAL record now (a logical message) and returns its end: walker reaches
/// exactly that position once the record is flushed.
pub fn mark(s: &mut Session) -> Result<u64, String> {
    lsn::parse(&s.value(
        "SELECT pg_logical_emit_message(false, 'walker-bench', 'mark')",
        QUERY,
    )?)
}

/// `walker.status.processed_lsn` (0 before the worker positioned itself).
pub fn processed(s: &mut Session) -> Result<u64, String> {
    let v = s.value(
        "SELECT coalesce(processed_lsn, '0/0') FROM walker.status",
        QUERY,
    )?;
    lsn::parse(&v)
}

/// Waits until walker has processed `target`.
pub fn wait_processed(s: &mut Session, target: u64, timeout: Duration) -> Result<(), String> {
    poll(
        &format!("walker to process the WAL up to {}", lsn::format(target)),
        timeout,
        Duration::from_millis(20),
        || Ok(processed(s)? >= target),
    )
}

/// Waits until walker has processed everything written so far; returns that position.
pub fn wait_caught_up(s: &mut Session, timeout: Duration) -> Result<u64, String> {
    let target = mark(s)?;
    wait_processed(s, target, timeout)?;
    Ok(target)
}

/// Waits until the worker runs and is in state `state` (e.g. `paused`, `idle`);
/// returns its process id.
pub fn wait_worker(s: &mut Session, state: &str, timeout: Duration) -> Result<u32, String> {
    let mut pid = 0;
    poll(
        &format!("the walker worker to be {state}"),
        timeout,
        Duration::from_millis(50),
        || {
            let row = s.value(
                "SELECT coalesce(pid, 0) || '|' || state FROM walker.status",
                QUERY,
            )?;
            let (p, st) = row.split_once('|').unwrap_or(("0", ""));
            pid = p.parse().unwrap_or(0);
            Ok(pid != 0 && st == state)
        },
    )?;
    Ok(pid)
}

/// Waits until every plugin in `expected` is running; an error names the first that
/// failed or did not load (with its state and last error), or is still loading at the
/// timeout.
pub fn wait_plugins(s: &mut Session, expected: &[String], timeout: Duration) -> Result<(), String> {
    let mut waiting_for = String::new();
    poll(
        "the plugins to run",
        timeout,
        Duration::from_millis(50),
        || {
            let rows = s.query(
                "SELECT name || '|' || state || '|' || coalesce(last_error, '') FROM walker.plugins",
                QUERY,
            )?;
            for name in expected {
                let row = rows
                    .iter()
                    .find(|r| r.split('|').next() == Some(name.as_str()))
                    .ok_or_else(|| format!("plugin {name} is not listed in walker.plugins"))?;
                let mut parts = row.splitn(3, '|').skip(1);
                let (state, error) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                match state {
                    "running" => {}
                    "loaded" => {
                        waiting_for = name.clone();
                        return Ok(false);
                    }
                    _ => return Err(format!("plugin {name} is {state}: {error}")),
                }
            }
            Ok(true)
        },
    )
    .map_err(|e| {
        if e.starts_with("timed out") {
            format!("{e} (plugin {waiting_for} still loading)")
        } else {
            e
        }
    })
}

/// `walker.status.shmem_bytes`: shared memory reserved by the host and its plugins.
pub fn shmem_bytes(s: &mut Session) -> Result<u64, String> {
    let v = s.value("SELECT shmem_bytes FROM walker.status", QUERY)?;
    v.parse()
        .map_err(|e| format!("walker.status.shmem_bytes {v:?}: {e}"))
}

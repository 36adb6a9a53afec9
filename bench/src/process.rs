//! Running programs with a deadline, and reading the walker worker's counters from
//! `/proc`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `cmd` to completion within `timeout`; `Ok(stdout)` when it succeeds, else an
/// error naming `what`, with its exit status and output. A program still running at
/// the deadline is killed.
pub fn run(mut cmd: Command, what: &str, timeout: Duration) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot run {cmd:?}: {e}"))?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what}: timed out after {timeout:?} ({cmd:?}); stderr:\n{}",
                    err.join().unwrap_or_default()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{what}: waiting for {cmd:?}: {e}")),
        }
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if status.success() {
        Ok(out)
    } else {
        Err(format!("{what} failed ({status}): {cmd:?}\n{out}{err}"))
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`).
pub fn clock_ticks() -> Result<f64, String> {
    let mut cmd = Command::new("getconf");
    cmd.arg("CLK_TCK");
    let out = run(cmd, "getconf CLK_TCK", Duration::from_secs(10))?;
    out.trim()
        .parse::<f64>()
        .map_err(|e| format!("getconf CLK_TCK printed {out:?}: {e}"))
}

/// User plus system CPU time of a process and all its threads, in clock ticks,
/// from the text of `/proc/<pid>/stat` (fields 14 and 15, counted after the command
/// name, which may itself contain spaces and parentheses).
pub fn parse_cpu_ticks(stat: &str) -> Result<u64, String> {
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| format!("unexpected /proc stat line: {stat:?}"))?;
    // After ")": state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| format!("unexpected /proc stat line: {stat:?}"))
    };
    Ok(num(11)? + num(12)?)
}

/// CPU seconds (user + system, all threads) process `pid` has used so far.
pub fn cpu_seconds(pid: u32, ticks_per_sec: f64) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(parse_cpu_ticks(&stat)? as f64 / ticks_per_sec)
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS`, `RssAnon`) in bytes.
pub fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb = rest.split_whitespace().next()?.parse::<u64>().ok()?;
        Some(kb * 1024)
    })
}

/// Resident memory of process `pid`: (`VmRSS`, `RssAnon`) in bytes.
pub fn rss_bytes(pid: u32) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let get = |f| parse_status_kb(&status, f).ok_or_else(|| format!("no {f} in {path}"));
    Ok((get("VmRSS")?, get("RssAnon")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_stat() {
        // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let stat = "4242 (postgres: walker (x)) S 1 2 3 0 -1 4194560 10 0 0 0 150 25 0 0 20 0 3";
        assert_eq!(parse_cpu_ticks(stat), Ok(175));
        assert!(parse_cpu_ticks("garbage").is_err());
        assert!(parse_cpu_ticks("1 (x) S 1 2").is_err());
    }

    #[test]
    fn status_fields_in_bytes() {
        let status = "Name:\tpostgres\nVmRSS:\t   20480 kB\nRssAnon:\t    4096 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(20480 * 1024));
        assert_eq!(parse_status_kb(status, "RssAnon"), Some(4096 * 1024));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn runs_with_a_deadline() {
        let mut ok = Command::new("echo");
        ok.arg("hi");
        assert_eq!(run(ok, "echo", Duration::from_secs(10)).unwrap(), "hi\n");
        let mut slow = Command::new("sleep");
        slow.arg("5");
        let e = run(slow, "sleep", Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        let fail = Command::new("false");
        assert!(run(fail, "false", Duration::from_secs(10)).is_err());
    }
}

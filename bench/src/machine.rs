//! What the results were measured on: machine, PostgreSQL, commit.

use crate::process;
use std::fs;
use std::process::Command;
use std::time::Duration;
use walker_tests::{pg_bindir, workspace_dir};

/// The machine and software a run measured.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// Kernel release.
    pub kernel: String,
    /// `postgres --version`.
    pub postgres: String,
    /// `git rev-parse HEAD` of the workspace.
    pub commit: String,
    /// Whether the work tree had uncommitted changes.
    pub dirty: bool,
    /// 1-minute load average when the run started.
    pub load_at_start: String,
}

fn first_match(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

fn git(args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(workspace_dir()).args(args);
    process::run(
        cmd,
        &format!("git {}", args.join(" ")),
        Duration::from_secs(30),
    )
}

/// The 1-minute load average now.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

impl Machine {
    /// Reads `/proc`, `postgres --version` and git.
    pub fn detect() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = first_match(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        let mut pg = Command::new(pg_bindir().join("postgres"));
        pg.arg("--version");
        Machine {
            cpu: first_match(&cpuinfo, "model name").unwrap_or_else(|| "unknown".to_string()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_bytes,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".to_string()),
            postgres: process::run(pg, "postgres --version", Duration::from_secs(30))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|e| format!("unknown ({e})")),
            commit: git(&["rev-parse", "HEAD"])
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".to_string()),
            dirty: git(&["status", "--porcelain"]).is_ok_and(|s| !s.trim().is_empty()),
            load_at_start: load_average(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys() {
        let text = "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nMemTotal:  100 kB\n";
        assert_eq!(
            first_match(text, "model name").as_deref(),
            Some("Some CPU @ 2.0GHz")
        );
        assert_eq!(first_match(text, "MemTotal").as_deref(), Some("100 kB"));
        assert_eq!(first_match(text, "nope"), None);
    }
}

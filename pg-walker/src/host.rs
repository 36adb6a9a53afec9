//! The plugins of one `pg_walker` run: found in the plugin directory, loaded and
//! negotiated by walker-core's loader (as in the server), initialised with the same
//! host API table, given process-local host memory, and restored from the state
//! directory's snapshots.
//!
//! Host services that need a server are not attached here, so the host API answers
//! them with its status codes: service requests (ALTER SYSTEM, NOTIFY) fail with
//! `ERROR`, server settings are the ones given (`--set server.NAME=VALUE`, and
//! `wal_segment_size` from the WAL) and `NOT_FOUND` otherwise, checkpointer counters
//! are `NOT_FOUND`, and no backend events are ever dispatched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use walker_core::host_api::{self, HOST_API};
use walker_core::loader::{self, LibraryPaths};
use walker_core::names::parse_plugin_list;
use walker_core::persistence::{self, SnapshotConfig, StartFacts, Started};
use walker_core::registry::{self, PluginSlot};
use walker_core::shared::PluginState;
use walker_walfile::format::{rmgr_name, Major};

/// What a plugin's service request (ALTER SYSTEM, NOTIFY) is told: there is no server.
const NO_SERVICES: &str = "pg_walker runs without a server: ALTER SYSTEM and NOTIFY are not available here (the request is not carried out)";

/// The plugin directory: the one given, else the `pkglibdir` of the `pg_config`
/// found on PATH.
pub fn plugin_dir(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(d) = given {
        return Ok(d.to_path_buf());
    }
    let out = Command::new("pg_config").arg("--pkglibdir").output().map_err(|e| {
        format!("no --plugin-dir given and pg_config cannot be run ({e}): put PostgreSQL's bin directory on PATH or pass --plugin-dir")
    })?;
    if !out.status.success() {
        return Err(format!(
            "no --plugin-dir given and `pg_config --pkglibdir` failed ({}): pass --plugin-dir",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `PG_VERSION_NUM` of the first release of `major` (what plugins read as the server
/// version: the WAL says only the major).
pub fn version_num(major: Major) -> u32 {
    match major {
        Major::Pg15 => 150000,
        Major::Pg16 => 160000,
        Major::Pg17 => 170000,
        Major::Pg18 => 180000,
    }
}

/// Prints the log lines plugins queued, to stderr.
pub fn drain_logs() {
    let (lines, dropped) = host_api::drain_logs();
    for l in lines {
        eprintln!("pg_walker: plugin \"{}\": {}", l.plugin, l.message);
    }
    if dropped > 0 {
        eprintln!("pg_walker: {dropped} plugin log lines dropped (the queue was full)");
    }
}

/// Loads, initialises and attaches the plugins `names` (in order) from `dir`, for
/// WAL of `major`. Every plugin must load: a failure is an error naming it. `server`:
/// the server settings given (`--set server.NAME=VALUE`), which plugins read in place
/// of a server's, with `wal_segment_size` from the WAL (`segment_bytes`) unless given.
pub fn load(
    names: &[String],
    dir: &Path,
    major: Major,
    mut server: BTreeMap<String, String>,
    segment_bytes: Option<u64>,
) -> Result<Vec<&'static PluginSlot>, String> {
    if let Some(b) = segment_bytes {
        server
            .entry("wal_segment_size".to_string())
            .or_insert_with(|| b.to_string());
    }
    host_api::PROCESS_HOST.set_given_settings(server);
    host_api::set_server_version(version_num(major));
    host_api::set_no_services_reason(NO_SERVICES);
    host_api::set_rmgr_names((0..=255u8).map(rmgr_name).collect());
    let paths = LibraryPaths {
        dynamic_library_path: "$libdir".into(),
        pkglibdir: dir.to_path_buf(),
        dlsuffix: ".so".into(),
    };
    let mut slots = Vec::new();
    for (index, entry) in parse_plugin_list(&names.join(",")).into_iter().enumerate() {
        let name = entry.map_err(|e| loader::LoadError::from(e).to_string())?;
        let slot = registry::register(loader::load_plugin(index, &name, &paths));
        if let Some((_, msg)) = slot.load_error() {
            return Err(format!("plugin \"{name}\" not loaded: {msg}"));
        }
        slot.init(&HOST_API)
            .map_err(|m| format!("plugin \"{name}\" failed to start: {m}"))?;
        drain_logs();
        slots.push(slot);
    }
    // SAFETY: this is the main thread, the only one that writes setting variables.
    unsafe { registry::refresh_settings() };
    let defined: Vec<(String, Vec<String>)> = slots
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.settings().iter().map(|x| x.def.name.clone()).collect(),
            )
        })
        .collect();
    if let Some(u) = crate::config::unknown(&defined).first() {
        let (p, _) = u.split_once('.').unwrap_or((u, ""));
        let known = defined
            .iter()
            .find(|(n, _)| n == p)
            .map(|(_, s)| s.join(", "))
            .unwrap_or_default();
        return Err(format!(
            "setting {u} is not defined by plugin \"{p}\" (it defines: {known})"
        ));
    }
    let failed = walker_core::local::attach(&slots)?;
    drain_logs();
    if let Some(m) = failed.first() {
        return Err(m.clone());
    }
    Ok(slots)
}

/// Restores each plugin's state from the state directory (or starts it empty).
pub fn restore(slots: &[&'static PluginSlot], cfg: &SnapshotConfig) -> Vec<Started> {
    // pg_walker holds no slot (WAL it lacks is an error when reading) and knows no
    // end of WAL before reading it.
    let facts = StartFacts {
        slot_created: false,
        wal_end: u64::MAX,
    };
    let started = slots
        .iter()
        .map(|&s| persistence::restore(s, cfg, facts, &mut |m| eprintln!("pg_walker: {m}")))
        .collect();
    drain_logs();
    started
}

/// The plugins that failed or were cut off, each with why.
pub fn failed(slots: &[&'static PluginSlot]) -> Vec<(String, String)> {
    slots
        .iter()
        .filter(|s| {
            s.shared()
                .is_some_and(|sh| matches!(sh.state(), PluginState::Failed | PluginState::Stalled))
        })
        .map(|s| (s.name.clone(), s.last_error().unwrap_or_default()))
        .collect()
}

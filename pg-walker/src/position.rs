//! The walk's saved position in the state directory (`pg_walker.position`): which
//! cluster the state belongs to, its major, and the LSN the last walk stopped at (the
//! end of the last record applied), as `key = value` lines.

use std::path::{Path, PathBuf};
use walker_core::rows::{format_lsn, parse_lsn};
use walker_core::snapshot;

/// What the state directory says about the last walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The cluster's system identifier.
    pub system_id: u64,
    /// `PG_VERSION_NUM` of the WAL's major (e.g. 170000).
    pub version_num: u32,
    /// End of the last record every plugin applied.
    pub lsn: u64,
}

/// The file in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("pg_walker.position")
}

/// Reads the position (`Ok(None)`: no walk saved one yet).
pub fn read(dir: &Path) -> Result<Option<Position>, String> {
    let p = path(dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
    };
    let bad = |why: &str| {
        format!(
            "{} is damaged ({why}): remove the state directory to start over",
            p.display()
        )
    };
    let mut system_id = None;
    let mut version_num = None;
    let mut lsn = None;
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad("a line without ="))?;
        let v = v.trim();
        match k.trim() {
            "system_identifier" => system_id = v.parse().ok(),
            "version_num" => version_num = v.parse().ok(),
            "lsn" => lsn = parse_lsn(v),
            _ => {}
        }
    }
    Ok(Some(Position {
        system_id: system_id.ok_or_else(|| bad("no system_identifier"))?,
        version_num: version_num.ok_or_else(|| bad("no version_num"))?,
        lsn: lsn.ok_or_else(|| bad("no lsn"))?,
    }))
}

/// Writes the position atomically.
pub fn write(dir: &Path, p: &Position) -> Result<(), String> {
    let text = format!(
        "# written by pg_walker (walk or follow): the state in this directory reflects the WAL up to lsn\nsystem_identifier = {}\nversion_num = {}\nlsn = {}\n",
        p.system_id,
        p.version_num,
        format_lsn(p.lsn)
    );
    let path = path(dir);
    snapshot::write_atomic(&path, text.as_bytes()).map_err(|e| {
        format!(
            "cannot write {}: {e} (check the state directory's space and permissions)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("pgw-pos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read(&dir).unwrap(), None);
        let p = Position {
            system_id: 7_000_000_000_000_000_001,
            version_num: 170000,
            lsn: 0x1_0000_0028,
        };
        write(&dir, &p).unwrap();
        assert_eq!(read(&dir).unwrap(), Some(p));
        std::fs::write(path(&dir), "lsn = 0/10\n").unwrap();
        assert!(read(&dir).unwrap_err().contains("system_identifier"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

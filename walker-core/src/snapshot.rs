//! Plugin state snapshots: the file format, its validation, and the atomic write.
//!
//! A snapshot file holds one plugin's state as its `save_state` wrote it, with a
//! header that ties it to the plugin, the cluster and the WAL position it reflects:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `WALKSNAP` |
//! | 8 | 4 | format version (2; 1 is read too) |
//! | 12 | 4 | plugin ABI major |
//! | 16 | 4 | plugin ABI minor |
//! | 20 | 4 | length of the plugin name |
//! | 24 | 4 | length of the plugin version |
//! | 28 | 4 | timeline of the LSN (format 2; 0 in format 1: unknown) |
//! | 32 | 8 | cluster system identifier |
//! | 40 | 8 | LSN the state reflects (end of the last record applied) |
//! | 48 | 8 | written at, microseconds since the Unix epoch |
//! | 56 | 8 | payload length |
//! | 64 | n | plugin name, plugin version (UTF-8), payload |
//! | end | 4 | CRC-32 of every byte before it |
//!
//! Integers are little-endian. The file is written to a temporary name, synced,
//! renamed over the old one, and the directory is synced, so a crash leaves either the
//! old snapshot or the new one, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// First bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"WALKSNAP";
/// Version of the layout above written now. Format 2 stores the timeline in what
/// format 1 kept as a reserved zero, so format 1 files are read as "timeline unknown".
pub const FORMAT_VERSION: u32 = 2;
/// Oldest format still read.
pub const OLDEST_FORMAT: u32 = 1;
/// Bytes before the variable part.
pub const FIXED_HEADER: usize = 64;
/// Bytes of the trailing checksum.
pub const CHECKSUM_LEN: usize = 4;
/// Longest plugin name or version accepted in a header.
pub const MAX_NAME: usize = 4096;

/// What a snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Plugin that wrote it.
    pub plugin: String,
    /// That plugin's declared version.
    pub plugin_version: String,
    /// The plugin's ABI version.
    pub abi: (u32, u32),
    /// The cluster's system identifier (`pg_control_system()`).
    pub system_id: u64,
    /// End LSN of the last record the state reflects.
    pub lsn: u64,
    /// Timeline of that LSN (0: unknown, a format 1 file).
    pub timeline: u32,
    /// When it was written, microseconds since the Unix epoch.
    pub written_at: i64,
}

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Shorter than the fixed header and checksum.
    #[error("the file is truncated ({len} bytes, less than the {min}-byte header)")]
    TooShort {
        /// Bytes found.
        len: usize,
        /// Bytes a header needs.
        min: usize,
    },
    /// Not a walker snapshot.
    #[error("the file is not a walker snapshot (bad magic)")]
    BadMagic,
    /// Written by a walker with another file format.
    #[error("the file has snapshot format {0}, this walker reads formats {OLDEST_FORMAT} to {FORMAT_VERSION}")]
    Format(u32),
    /// Lengths in the header do not add up to the file's size.
    #[error("the file is truncated or padded (the header announces {expected} bytes, the file has {actual})")]
    Length {
        /// What the loading side expects (length, plugin name or system identifier).
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The checksum does not match: some byte changed.
    #[error("the file is damaged (checksum {stored:08x} stored, {computed:08x} computed)")]
    Checksum {
        /// CRC-32 stored in the file.
        stored: u32,
        /// CRC-32 of the bytes read.
        computed: u32,
    },
    /// The name or version is not UTF-8.
    #[error("the file's header has a name that is not UTF-8")]
    Utf8,
    /// Written by another plugin.
    #[error("the file belongs to plugin \"{found}\", not \"{expected}\"")]
    ForeignPlugin {
        /// What the file names (plugin or system identifier).
        found: String,
        /// What the loading side expects (length, plugin name or system identifier).
        expected: String,
    },
    /// Written by another cluster.
    #[error("the file was written by another cluster (system identifier {found}, this one is {expected})")]
    ForeignCluster {
        /// What the file names (plugin or system identifier).
        found: u64,
        /// What the loading side expects (length, plugin name or system identifier).
        expected: u64,
    },
}

/// CRC-32 (IEEE) of `bytes`.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Builds a snapshot file's bytes.
pub fn encode(h: &SnapshotHeader, payload: &[u8]) -> Vec<u8> {
    let name = h.plugin.as_bytes();
    let version = h.plugin_version.as_bytes();
    let mut out = Vec::with_capacity(
        FIXED_HEADER + name.len() + version.len() + payload.len() + CHECKSUM_LEN,
    );
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&h.abi.0.to_le_bytes());
    out.extend_from_slice(&h.abi.1.to_le_bytes());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(&(version.len() as u32).to_le_bytes());
    out.extend_from_slice(&h.timeline.to_le_bytes());
    out.extend_from_slice(&h.system_id.to_le_bytes());
    out.extend_from_slice(&h.lsn.to_le_bytes());
    out.extend_from_slice(&h.written_at.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    debug_assert_eq!(out.len(), FIXED_HEADER);
    out.extend_from_slice(name);
    out.extend_from_slice(version);
    out.extend_from_slice(payload);
    let crc = checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Parses and checks a snapshot file's bytes: structure and checksum first, then that
/// it belongs to `plugin` on the cluster `system_id`. Returns the header and payload.
pub fn decode<'a>(
    bytes: &'a [u8],
    plugin: &str,
    system_id: u64,
) -> Result<(SnapshotHeader, &'a [u8]), SnapshotError> {
    let min = FIXED_HEADER + CHECKSUM_LEN;
    if bytes.len() < min {
        return Err(SnapshotError::TooShort {
            len: bytes.len(),
            min,
        });
    }
    if bytes[..8] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let format = u32_at(bytes, 8);
    if !(OLDEST_FORMAT..=FORMAT_VERSION).contains(&format) {
        return Err(SnapshotError::Format(format));
    }
    let name_len = u32_at(bytes, 20) as u64;
    let version_len = u32_at(bytes, 24) as u64;
    let payload_len = u64_at(bytes, 56);
    let expected = (FIXED_HEADER as u64)
        .saturating_add(name_len)
        .saturating_add(version_len)
        .saturating_add(payload_len)
        .saturating_add(CHECKSUM_LEN as u64);
    if expected != bytes.len() as u64
        || name_len as usize > MAX_NAME
        || version_len as usize > MAX_NAME
    {
        return Err(SnapshotError::Length {
            expected,
            actual: bytes.len() as u64,
        });
    }
    let body = bytes.len() - CHECKSUM_LEN;
    let stored = u32_at(bytes, body);
    let computed = checksum(&bytes[..body]);
    if stored != computed {
        return Err(SnapshotError::Checksum { stored, computed });
    }
    let name_end = FIXED_HEADER + name_len as usize;
    let version_end = name_end + version_len as usize;
    let text = |r: std::ops::Range<usize>| {
        std::str::from_utf8(&bytes[r])
            .map(str::to_string)
            .map_err(|_| SnapshotError::Utf8)
    };
    let header = SnapshotHeader {
        plugin: text(FIXED_HEADER..name_end)?,
        plugin_version: text(name_end..version_end)?,
        abi: (u32_at(bytes, 12), u32_at(bytes, 16)),
        system_id: u64_at(bytes, 32),
        lsn: u64_at(bytes, 40),
        timeline: if format >= 2 { u32_at(bytes, 28) } else { 0 },
        written_at: u64_at(bytes, 48) as i64,
    };
    if header.plugin != plugin {
        return Err(SnapshotError::ForeignPlugin {
            found: header.plugin,
            expected: plugin.to_string(),
        });
    }
    if header.system_id != system_id {
        return Err(SnapshotError::ForeignCluster {
            found: header.system_id,
            expected: system_id,
        });
    }
    Ok((header, &bytes[version_end..body]))
}

/// The snapshot file of `plugin` in `dir`.
pub fn path_of(dir: &Path, plugin: &str) -> PathBuf {
    dir.join(format!("{plugin}.snapshot"))
}

/// Where a refused snapshot is kept for inspection (the next snapshot replaces the original).
pub fn refused_path_of(dir: &Path, plugin: &str) -> PathBuf {
    dir.join(format!("{plugin}.snapshot.refused"))
}

/// Writes `bytes` as `path` atomically: a temporary file in the same directory,
/// synced, renamed over `path`, then the directory synced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "snapshot path without a directory",
        )
    })?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Reads `path`; `None` when it does not exist.
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SnapshotHeader {
        SnapshotHeader {
            plugin: "rmgr_stats".into(),
            plugin_version: "0.1.0".into(),
            abi: (1, 1),
            system_id: 7_300_000_000_000_000_001,
            lsn: 0x1_0000_0028,
            timeline: 1,
            written_at: 1_700_000_000_000_000,
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let b = encode(&header(), b"abc");
        // 64 fixed + "rmgr_stats" (10) + "0.1.0" (5) + payload 3 + crc 4.
        assert_eq!(b.len(), 64 + 10 + 5 + 3 + 4);
        assert_eq!(&b[..8], b"WALKSNAP");
        assert_eq!(&b[8..12], &[2, 0, 0, 0], "format 2");
        assert_eq!(&b[28..32], &[1, 0, 0, 0], "timeline 1");
        assert_eq!(
            &b[40..48],
            &[0x28, 0, 0, 0, 1, 0, 0, 0],
            "LSN 1/28 little-endian"
        );
        assert_eq!(&b[56..64], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[64..74], b"rmgr_stats");
        assert_eq!(&b[79..82], b"abc");
        // CRC-32 (IEEE) check value of "123456789" is cbf43926.
        assert_eq!(checksum(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn a_format_1_file_is_read_with_an_unknown_timeline() {
        // Format 1 as the previous walker wrote it: version 1, reserved zero at 28.
        let mut b = encode(&header(), b"old");
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[28..32].copy_from_slice(&0u32.to_le_bytes());
        let body = b.len() - CHECKSUM_LEN;
        let crc = checksum(&b[..body]);
        b[body..].copy_from_slice(&crc.to_le_bytes());
        let (h, payload) = decode(&b, "rmgr_stats", header().system_id).unwrap();
        assert_eq!((h.timeline, h.lsn, payload), (0, header().lsn, &b"old"[..]));
        // A future format is refused, naming both.
        b[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = checksum(&b[..body]);
        b[body..].copy_from_slice(&crc.to_le_bytes());
        let e = decode(&b, "rmgr_stats", header().system_id).unwrap_err();
        assert_eq!(e, SnapshotError::Format(3));
    }

    #[test]
    fn round_trip() {
        let b = encode(&header(), b"state bytes");
        let (h, payload) = decode(&b, "rmgr_stats", header().system_id).unwrap();
        assert_eq!(h, header());
        assert_eq!(payload, b"state bytes");
        let empty = encode(&header(), b"");
        assert_eq!(
            decode(&empty, "rmgr_stats", header().system_id).unwrap().1,
            b""
        );
    }

    #[test]
    fn every_bit_flip_is_caught() {
        let b = encode(&header(), b"some plugin state");
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                assert!(
                    decode(&c, "rmgr_stats", header().system_id).is_err(),
                    "flip of bit {bit} in byte {i} accepted"
                );
            }
        }
    }

    #[test]
    fn truncation_and_padding_are_refused() {
        let b = encode(&header(), b"some plugin state");
        for n in 0..b.len() {
            let e = decode(&b[..n], "rmgr_stats", header().system_id).unwrap_err();
            assert!(
                matches!(
                    e,
                    SnapshotError::TooShort { .. } | SnapshotError::Length { .. }
                ),
                "{n}: {e}"
            );
        }
        let mut padded = b.clone();
        padded.push(0);
        assert!(matches!(
            decode(&padded, "rmgr_stats", header().system_id),
            Err(SnapshotError::Length { .. })
        ));
    }

    #[test]
    fn foreign_snapshots_are_refused() {
        let b = encode(&header(), b"x");
        assert_eq!(
            decode(&b, "garbagemap", header().system_id).unwrap_err(),
            SnapshotError::ForeignPlugin {
                found: "rmgr_stats".into(),
                expected: "garbagemap".into()
            }
        );
        assert!(matches!(
            decode(&b, "rmgr_stats", 1),
            Err(SnapshotError::ForeignCluster {
                found: 7_300_000_000_000_000_001,
                expected: 1
            })
        ));
        let mut other = b.clone();
        other[..8].copy_from_slice(b"NOTASNAP");
        assert_eq!(
            decode(&other, "rmgr_stats", header().system_id).unwrap_err(),
            SnapshotError::BadMagic
        );
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("walker-snap-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = path_of(&dir, "rmgr_stats");
        assert_eq!(read(&p).unwrap(), None);
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(read(&p).unwrap().as_deref(), Some(&b"two"[..]));
        assert!(!dir.join("rmgr_stats.snapshot.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}

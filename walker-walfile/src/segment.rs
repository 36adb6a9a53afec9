//! Segment files and timelines in a directory (a `pg_wal`, an archive): file names
//! `TTTTTTTTXXXXXXXXYYYYYYYY[.partial]`, the segment size from the first long page
//! header, `<tli>.history` files, and which file holds a segment when the WAL crosses
//! timeline switches.

use crate::error::{Fault, WalError};
use crate::format::{LONG_PAGE_HEADER, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use walker_core::timeline::{parse_history, TimelineSpan};

/// A segment file name, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentName {
    /// Timeline.
    pub tli: u32,
    /// The high 32 bits of the name's position (`XXXXXXXX`).
    pub log: u32,
    /// The segment within it (`YYYYYYYY`).
    pub seg: u32,
    /// A `.partial` file: the last, incomplete segment of a timeline that was left.
    pub partial: bool,
}

impl SegmentName {
    /// Parses `name`; `None` for anything else (history files, `.backup` labels, ...).
    pub fn parse(name: &str) -> Option<SegmentName> {
        let (stem, partial) = match name.strip_suffix(".partial") {
            Some(s) => (s, true),
            None => (name, false),
        };
        if stem.len() != 24 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let hex = |r: std::ops::Range<usize>| u32::from_str_radix(&stem[r], 16).ok();
        Some(SegmentName {
            tli: hex(0..8)?,
            log: hex(8..16)?,
            seg: hex(16..24)?,
            partial,
        })
    }

    /// The segment number for segments of `seg_size` bytes; `None` when the name is not
    /// one a cluster with that size writes.
    pub fn segno(&self, seg_size: u32) -> Option<u64> {
        let per_log = segments_per_log(seg_size);
        (u64::from(self.seg) < per_log).then(|| u64::from(self.log) * per_log + u64::from(self.seg))
    }
}

/// Segments per 4 GiB of WAL (the `XXXXXXXX` step of the names).
fn segments_per_log(seg_size: u32) -> u64 {
    0x1_0000_0000 / u64::from(seg_size.max(1))
}

/// The file name of segment `segno` of timeline `tli` (`XLogFileName`).
pub fn segment_file_name(tli: u32, segno: u64, seg_size: u32) -> String {
    let per_log = segments_per_log(seg_size);
    format!("{tli:08X}{:08X}{:08X}", segno / per_log, segno % per_log)
}

/// A power of two from 1 MiB to 1 GiB (`IsValidWalSegSize`).
pub fn valid_segment_size(size: u32) -> bool {
    size.is_power_of_two() && (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size)
}

/// The segment files of a directory and the timeline history they are read along.
#[derive(Debug, Clone)]
pub struct WalDir {
    dir: PathBuf,
    seg_size: u32,
    /// (timeline, segment number) → the file; a complete file wins over a `.partial`.
    files: BTreeMap<(u32, u64), PathBuf>,
    history: Vec<TimelineSpan>,
}

impl WalDir {
    /// Scans `dir` and reads along the newest timeline it has files of (its
    /// `.history` file gives the older ones).
    pub fn open(dir: &Path) -> Result<WalDir, WalError> {
        Self::open_timeline(dir, None)
    }

    /// Like [`WalDir::open`], reading along timeline `tli` (`None`: the newest).
    pub fn open_timeline(dir: &Path, tli: Option<u32>) -> Result<WalDir, WalError> {
        let io = |e: std::io::Error, p: &Path| WalError::new(0, Some(p.to_path_buf()), e.into());
        let mut names = Vec::new();
        let mut newest_history = 0u32;
        for entry in std::fs::read_dir(dir).map_err(|e| io(e, dir))? {
            let entry = entry.map_err(|e| io(e, dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = SegmentName::parse(&name) {
                names.push((n, entry.path()));
            } else if let Some(t) = name
                .strip_suffix(".history")
                .filter(|t| t.len() == 8)
                .and_then(|t| u32::from_str_radix(t, 16).ok())
            {
                newest_history = newest_history.max(t);
            }
        }
        // The size from the first (lowest-named) complete segment's long header.
        names.sort_by_key(|(n, _)| (n.log, n.seg, n.tli, n.partial));
        let Some((_, first)) = names.first() else {
            return Err(WalError::new(0, None, Fault::NoSegments(dir.to_path_buf())));
        };
        let seg_size = read_segment_size(first)?;
        let mut files = BTreeMap::new();
        for (n, path) in names {
            let Some(segno) = n.segno(seg_size) else {
                continue;
            };
            let slot = files.entry((n.tli, segno)).or_insert_with(|| path.clone());
            if !n.partial {
                *slot = path;
            }
        }
        let newest_file = files.keys().map(|(t, _)| *t).max().unwrap_or(1);
        let tli = tli.unwrap_or(newest_file.max(newest_history));
        let history = read_history(dir, tli)?;
        Ok(WalDir {
            dir: dir.to_path_buf(),
            seg_size,
            files,
            history,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Bytes per segment.
    pub fn segment_size(&self) -> u32 {
        self.seg_size
    }

    /// The timeline history read along, oldest first (its last span is the timeline
    /// read along, open-ended).
    pub fn history(&self) -> &[TimelineSpan] {
        &self.history
    }

    /// The file holding segment `segno` and its timeline: like the server's
    /// `XLogFileReadAnyTLI`, the newest timeline of the history that began at or
    /// before the segment and has a file of it. `Err` with the names tried.
    pub fn locate(&self, segno: u64) -> Result<(u32, &Path), Fault> {
        let mut tried = Vec::new();
        for span in self.history.iter().rev() {
            // A timeline that begins inside this segment holds it (the server copies
            // the switch segment's first part to the new timeline).
            if span.begin / u64::from(self.seg_size) > segno {
                continue;
            }
            if let Some(p) = self.files.get(&(span.tli, segno)) {
                return Ok((span.tli, p));
            }
            tried.push(segment_file_name(span.tli, segno, self.seg_size));
        }
        Err(Fault::MissingSegment {
            looked_for: tried.join(", "),
            dir: self.dir.clone(),
        })
    }

    /// True when the directory has a file of a segment after `segno` (on any
    /// timeline of the history): a missing `segno` is then a gap, not the end.
    pub fn has_after(&self, segno: u64) -> bool {
        self.files
            .keys()
            .any(|(t, s)| *s > segno && self.history.iter().any(|h| h.tli == *t))
    }

    /// The first segment number of the history's files.
    pub fn first_segment(&self) -> Option<u64> {
        self.files
            .keys()
            .filter(|(t, _)| self.history.iter().any(|h| h.tli == *t))
            .map(|(_, s)| *s)
            .min()
    }
}

/// The segment size a segment's long page header gives.
fn read_segment_size(path: &Path) -> Result<u32, WalError> {
    let mut head = [0u8; LONG_PAGE_HEADER];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| WalError::new(0, Some(path.to_path_buf()), e.into()))?;
    let size = u32::from_le_bytes([head[32], head[33], head[34], head[35]]);
    if !valid_segment_size(size) {
        return Err(WalError::new(
            0,
            Some(path.to_path_buf()),
            Fault::BadSegmentSize {
                found: size,
                expected: 16 << 20,
            },
        ));
    }
    Ok(size)
}

/// The history of timeline `tli` from `dir/<tli>.history` (none for timeline 1, or
/// when the file is missing: then only `tli` itself is read).
fn read_history(dir: &Path, tli: u32) -> Result<Vec<TimelineSpan>, WalError> {
    let path = dir.join(format!("{tli:08X}.history"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(WalError::new(0, Some(path), e.into())),
    };
    parse_history(tli, text.as_deref())
        .map_err(|msg| WalError::new(0, Some(path), Fault::BadHistory(msg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_every_segment_size() {
        let n = SegmentName::parse("000000020000000A000000FE").unwrap();
        assert_eq!((n.tli, n.log, n.seg, n.partial), (2, 10, 0xFE, false));
        assert_eq!(n.segno(16 << 20), Some(10 * 256 + 0xFE));
        assert_eq!(
            segment_file_name(2, 10 * 256 + 0xFE, 16 << 20),
            "000000020000000A000000FE"
        );
        // 64 MiB segments: 64 per 4 GiB, so 0xFE is no name such a cluster writes.
        assert_eq!(n.segno(64 << 20), None);
        assert_eq!(
            segment_file_name(1, 65, 64 << 20),
            "000000010000000100000001"
        );
        let p = SegmentName::parse("000000010000000000000003.partial").unwrap();
        assert!(p.partial);
        for bad in [
            "00000001000000000000003",
            "000000010000000000000003.history",
            "0000000G0000000000000003",
            "00000002.history",
        ] {
            assert_eq!(SegmentName::parse(bad), None, "{bad}");
        }
        assert!(valid_segment_size(1 << 20) && valid_segment_size(1 << 30));
        assert!(!valid_segment_size(3 << 20) && !valid_segment_size(1 << 19));
    }

    #[test]
    fn the_switch_segment_is_read_from_the_new_timeline() {
        let dir = std::env::temp_dir().join(format!("walfile-seg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut first = vec![0u8; 64];
        first[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
        for name in [
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003.partial",
            "000000020000000000000003",
            "000000020000000000000004",
        ] {
            std::fs::write(dir.join(name), &first).unwrap();
        }
        // Timeline 2 branched off 1 at 0/3000100, inside segment 3.
        std::fs::write(
            dir.join("00000002.history"),
            "1\t0/3000100\tno recovery target specified\n",
        )
        .unwrap();
        let d = WalDir::open(&dir).unwrap();
        assert_eq!(d.segment_size(), 16 << 20);
        let tli = |s| {
            d.locate(s)
                .map(|(t, p)| (t, p.file_name().unwrap().to_string_lossy().into_owned()))
        };
        assert_eq!(tli(2).unwrap(), (1, "000000010000000000000002".into()));
        assert_eq!(tli(3).unwrap(), (2, "000000020000000000000003".into()));
        assert_eq!(tli(4).unwrap().0, 2);
        assert!(d.has_after(3) && !d.has_after(4));
        let missing = d.locate(5).unwrap_err().to_string();
        assert!(
            missing.contains("000000020000000000000005")
                && missing.contains("000000010000000000000005"),
            "{missing}"
        );
        // Read along timeline 1 only: the partial switch segment is its segment 3.
        let d1 = WalDir::open_timeline(&dir, Some(1)).unwrap();
        assert_eq!(
            d1.locate(3).unwrap().1.file_name().unwrap(),
            "000000010000000000000003.partial"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

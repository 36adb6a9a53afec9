//! Streamed WAL kept as segment files in `STATE_DIR/wal`, as pg_receivewal keeps
//! them: the segment being received is `<name>.partial` and is renamed to its name
//! once complete. Streaming always starts at a segment's start, so every file holds
//! its segment from the first byte. The reader (walker-walfile) follows these files.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use walker_core::rows::format_lsn;
use walker_walfile::segment::{segment_file_name, SegmentName};

/// The start of the segment holding `lsn`.
pub fn segment_start(lsn: u64, seg_size: u32) -> u64 {
    lsn - lsn % u64::from(seg_size.max(1))
}

/// Removes every segment file of `dir` (history files stay): a new run streams what
/// it needs again.
pub fn clear_segments(dir: &Path) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))? {
        let e = e.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        if SegmentName::parse(&e.file_name().to_string_lossy()).is_some() {
            std::fs::remove_file(e.path())
                .map_err(|err| format!("cannot remove {}: {err}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Removes the segment files before segment `keep_from` (any timeline): the state
/// directory's position is past them, no restart needs them.
pub fn remove_before(dir: &Path, keep_from: u64, seg_size: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(segno) = SegmentName::parse(&name).and_then(|n| n.segno(seg_size)) {
            if segno < keep_from {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Writes the stream into segment files.
pub struct SegmentWriter {
    dir: PathBuf,
    seg_size: u32,
    tli: u32,
    /// The next LSN expected.
    next: u64,
    /// The open `.partial` file and its segment.
    file: Option<(u64, File)>,
}

impl SegmentWriter {
    /// A writer of timeline `tli` from `start` (a segment's start).
    pub fn new(dir: &Path, seg_size: u32, tli: u32, start: u64) -> SegmentWriter {
        debug_assert_eq!(start % u64::from(seg_size), 0);
        SegmentWriter {
            dir: dir.to_path_buf(),
            seg_size,
            tli,
            next: start,
            file: None,
        }
    }

    /// Where the bytes written so far end.
    pub fn end(&self) -> u64 {
        self.next
    }

    fn path(&self, segno: u64, partial: bool) -> PathBuf {
        let name = segment_file_name(self.tli, segno, self.seg_size);
        self.dir.join(if partial {
            format!("{name}.partial")
        } else {
            name
        })
    }

    /// Appends `data`, which the server sent as starting at `start`.
    pub fn write(&mut self, start: u64, mut data: &[u8]) -> Result<(), String> {
        if start != self.next {
            return Err(format!(
                "the server sent WAL from {} where {} was expected next (a gap or an overlap in the stream)",
                format_lsn(start),
                format_lsn(self.next)
            ));
        }
        let size = u64::from(self.seg_size);
        while !data.is_empty() {
            let segno = self.next / size;
            if self.file.as_ref().is_none_or(|(s, _)| *s != segno) {
                let p = self.path(segno, true);
                let f = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .open(&p)
                    .map_err(|e| {
                        format!(
                            "cannot create {}: {e} (check the state directory)",
                            p.display()
                        )
                    })?;
                self.file = Some((segno, f));
            }
            let room = (size - self.next % size) as usize;
            let n = room.min(data.len());
            let (_, f) = self.file.as_mut().expect("opened above");
            f.write_all(&data[..n]).map_err(|e| {
                format!(
                    "cannot write WAL to {}: {e} (check the state directory's space)",
                    self.path(segno, true).display()
                )
            })?;
            self.next = self.next.saturating_add(n as u64);
            data = &data[n..];
            if self.next.is_multiple_of(size) {
                self.file = None;
                let (from, to) = (self.path(segno, true), self.path(segno, false));
                std::fs::rename(&from, &to).map_err(|e| {
                    format!("cannot rename {} to {}: {e}", from.display(), to.display())
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_fill_rename_and_refuse_gaps() {
        let dir = std::env::temp_dir().join(format!("pgw-recv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let seg = 1u32 << 20;
        assert_eq!(segment_start(0x1_0012_3456, seg), 0x1_0010_0000);
        let start = 5 * u64::from(seg);
        let mut w = SegmentWriter::new(&dir, seg, 3, start);
        let chunk = vec![7u8; 700_000];
        w.write(start, &chunk).unwrap();
        w.write(start + 700_000, &chunk).unwrap();
        assert_eq!(w.end(), start + 1_400_000);
        let full = dir.join("000000030000000000000005");
        let partial = dir.join("000000030000000000000006.partial");
        assert_eq!(std::fs::metadata(&full).unwrap().len(), u64::from(seg));
        assert_eq!(
            std::fs::metadata(&partial).unwrap().len(),
            1_400_000 - u64::from(seg)
        );
        let e = w.write(start + 1_400_008, b"x").unwrap_err();
        assert!(e.contains("gap"), "{e}");
        remove_before(&dir, 6, seg);
        assert!(!full.exists() && partial.exists());
        std::fs::write(dir.join("00000003.history"), "").unwrap();
        clear_segments(&dir).unwrap();
        assert!(!partial.exists() && dir.join("00000003.history").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

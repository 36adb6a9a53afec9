//! Reading records in WAL order across pages, segments and timeline switches, into
//! walker's record batches (`walker_core::batch`), as the in-server host does.

use crate::error::{Fault, WalError};
use crate::format::*;
use crate::image;
use crate::record::{self, Layout};
use crate::segment::WalDir;
use std::path::{Path, PathBuf};
use walker_core::batch::{BatchBuilder, BlockHead, RecordHead};

/// What to read, beyond the directory.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `BLCKSZ` of the cluster: the size of the pages full-page images restore to
    /// (8192 unless the server was built otherwise).
    pub block_size: usize,
    /// Restore each full-page image into the batch (as the in-server host does). Off:
    /// the blocks carry no page, only their image length.
    pub restore_images: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            block_size: DEFAULT_BLOCK_SIZE,
            restore_images: true,
        }
    }
}

/// Where a record read lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPos {
    /// Its start.
    pub lsn: u64,
    /// Where the next record may start (the server's `EndRecPtr`): the record's end,
    /// aligned; for a segment switch the next segment's start.
    pub end_lsn: u64,
    /// The timeline of the file it was read from.
    pub timeline: u32,
    /// Its length (`xl_tot_len`).
    pub total_len: u32,
    /// The stored bytes of its page images, when it was decoded (0 otherwise).
    pub fpi_len: u32,
}

/// What reading a record does besides checking it.
enum Target<'a> {
    /// Nothing: its header and CRC are checked (seeking).
    Check,
    /// Decode it too, and measure its page images.
    Measure,
    /// Decode it into a batch.
    Batch(&'a mut BatchBuilder),
}

/// The segment file in memory.
struct Segment {
    segno: u64,
    tli: u32,
    path: PathBuf,
    /// The open file.
    file: Option<std::fs::File>,
    /// Where in the segment [`Segment::window`] starts.
    base: usize,
    /// Bytes of the file from `base`, [`READ_CHUNK`] at most: the page being read and
    /// those after it. A small buffer read again and again stays in the processor's
    /// cache, as pg_waldump's page buffer does; a whole 16 MiB segment read at once
    /// does not, and reading it cost several times more.
    window: Vec<u8>,
    /// How much of `window` holds bytes of the file.
    filled: usize,
    /// The file's length, once a read reached its end.
    eof_len: Option<usize>,
}

/// Bytes of a segment file read at a time.
const READ_CHUNK: usize = 32 * 1024;

impl Segment {
    fn new(segno: u64, tli: u32, path: PathBuf, file: std::fs::File) -> Segment {
        Segment {
            segno,
            tli,
            path,
            file: Some(file),
            base: 0,
            window: Vec::new(),
            filled: 0,
            eof_len: None,
        }
    }

    /// The end of what the file is known to hold (the file's length once a read
    /// reached its end).
    fn end(&self) -> usize {
        self.eof_len.unwrap_or(self.base + self.filled)
    }

    /// `n` bytes at segment offset `off`, when they are in the window.
    fn get(&self, off: usize, n: usize) -> Option<&[u8]> {
        let from = off.checked_sub(self.base)?;
        self.window[..self.filled].get(from..from.checked_add(n)?)
    }

    /// Makes the window hold `need` bytes at `off` (of a segment of `size`), reading
    /// [`READ_CHUNK`] bytes from `off` when it does not; fewer when the file ends
    /// (then [`Segment::get`] finds less, and the callers report the truncation).
    fn load(&mut self, off: usize, need: usize, size: usize) -> std::io::Result<()> {
        if self.get(off, need).is_some() {
            return Ok(());
        }
        let Some(f) = self.file.as_ref() else {
            return Ok(());
        };
        if self.window.len() < READ_CHUNK {
            self.window.resize(READ_CHUNK, 0);
        }
        let want = READ_CHUNK.min(size.saturating_sub(off));
        let mut got = 0;
        while got < want {
            use std::os::unix::fs::FileExt;
            match f.read_at(&mut self.window[got..want], (off + got) as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.base = off;
        self.filled = got;
        self.eof_len = if got < want {
            Some(f.metadata()?.len() as usize)
        } else {
            None
        };
        Ok(())
    }

    /// Forgets the window (the file may have grown since it was read).
    fn forget(&mut self) {
        self.filled = 0;
        self.eof_len = None;
    }
}

/// A page header's fields the record layer needs.
#[derive(Debug, Clone, Copy)]
struct PageInfo {
    header_len: usize,
    info: u16,
    rem_len: u32,
}

/// Reads records from segment files.
pub struct WalReader {
    dir: WalDir,
    opts: Options,
    seg: Option<Segment>,
    /// The page whose header was checked last, and its fields.
    checked: Option<(u64, PageInfo)>,
    major: Option<Major>,
    sysid: Option<u64>,
    /// Timeline and position of the latest page read (timelines never go back).
    latest_page: (u64, u32),
    /// Where the next record starts.
    next: u64,
    /// Start of the record read last (for `xl_prev`); `None` right after a seek.
    prev: Option<u64>,
    /// Stop before records ending after this (`None`: at the end of the files).
    end: Option<u64>,
    /// Streaming: the WAL is written up to here and no further yet (`None`: files
    /// hold whole segments or end for good).
    available: Option<u64>,
    /// A record spanning pages, assembled.
    buf: Vec<u8>,
    layout: Layout,
    scratch: Vec<u8>,
}

impl WalReader {
    /// A reader of the segment files in `dir` along the newest timeline, positioned
    /// nowhere yet (see [`WalReader::seek`]).
    pub fn open(dir: &Path, opts: Options) -> Result<WalReader, WalError> {
        Ok(Self::with_dir(WalDir::open(dir)?, opts))
    }

    /// A reader of `dir`'s files.
    pub fn with_dir(dir: WalDir, opts: Options) -> WalReader {
        WalReader {
            dir,
            opts,
            seg: None,
            checked: None,
            major: None,
            sysid: None,
            latest_page: (0, 0),
            next: 0,
            prev: None,
            end: None,
            available: None,
            buf: Vec::new(),
            layout: Layout::default(),
            scratch: Vec::new(),
        }
    }

    /// The directory and its timelines.
    pub fn dir(&self) -> &WalDir {
        &self.dir
    }

    /// The major the pages read so far belong to.
    pub fn major(&self) -> Option<Major> {
        self.major
    }

    /// The cluster's system identifier, once a long page header was read.
    pub fn system_identifier(&self) -> Option<u64> {
        self.sysid
    }

    /// Where the next record starts.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Reading stops before any record ending after `end` (`None`: at the end of the
    /// files).
    pub fn set_end(&mut self, end: Option<u64>) {
        self.end = end;
    }

    /// Streaming (the files are being written as the WAL arrives): the bytes up to
    /// `available` are written, nothing after them yet. A record needing bytes past it
    /// reads as `Ok(None)`, to be read again once more arrived (after
    /// [`WalReader::refresh`]); the last `.partial` file may end anywhere up to it.
    pub fn set_available(&mut self, available: Option<u64>) {
        self.available = available;
    }

    /// Streaming: rescans the directory (new segment files, a new timeline's history
    /// file: it then reads along the newest timeline) and reads what was appended to
    /// the segment file in memory since it was loaded.
    pub fn refresh(&mut self) -> Result<(), WalError> {
        self.dir = WalDir::open_timeline(self.dir.path(), None)?;
        self.checked = None;
        let Some(seg) = self.seg.as_mut() else {
            return Ok(());
        };
        match self.dir.locate(seg.segno) {
            // What was appended is read when its page is next reached.
            Ok((tli, path)) if tli == seg.tli && path == seg.path => seg.forget(),
            // Another file holds the segment now (the `.partial` completed, or a new
            // timeline's copy): load it afresh when next needed.
            _ => seg.segno = u64::MAX,
        }
        Ok(())
    }

    /// True when the bytes up to `lsn` are not written yet (streaming).
    fn beyond_available(&self, lsn: u64) -> bool {
        self.available.is_some_and(|a| lsn > a)
    }

    /// The length of the header of the page at `page`: long at a segment's start.
    fn header_len_at(&self, page: u64) -> u64 {
        if page.is_multiple_of(u64::from(self.dir.segment_size())) {
            LONG_PAGE_HEADER as u64
        } else {
            SHORT_PAGE_HEADER as u64
        }
    }

    /// The first LSN the directory's oldest segment holds.
    pub fn first_lsn(&self) -> Option<u64> {
        self.dir
            .first_segment()
            .map(|s| s.saturating_mul(u64::from(self.dir.segment_size())))
    }

    fn page_size() -> u64 {
        WAL_PAGE_SIZE as u64
    }

    fn err(&self, lsn: u64, fault: Fault) -> WalError {
        WalError::new(lsn, self.seg.as_ref().map(|s| s.path.clone()), fault)
    }

    /// Loads the segment holding `lsn`. `Ok(false)`: there is no such file and none
    /// after it (the end of the files).
    fn load_segment(&mut self, lsn: u64) -> Result<bool, WalError> {
        let size = u64::from(self.dir.segment_size());
        let segno = lsn / size;
        if self.seg.as_ref().is_some_and(|s| s.segno == segno) {
            return Ok(true);
        }
        let (tli, path) = match self.dir.locate(segno) {
            Ok((t, p)) => (t, p.to_path_buf()),
            Err(_) if !self.dir.has_after(segno) => return Ok(false),
            Err(f) => return Err(WalError::new(lsn, None, f)),
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return Err(WalError::new(lsn, Some(path), e.into())),
        };
        // The window's buffer is kept from segment to segment.
        let mut seg = match self.seg.take() {
            Some(mut old) => {
                (old.segno, old.tli, old.path, old.file) = (segno, tli, path, Some(file));
                old.forget();
                old
            }
            None => Segment::new(segno, tli, path, file),
        };
        seg.base = 0;
        self.seg = Some(seg);
        self.checked = None;
        Ok(true)
    }

    /// Checks the header of the page at `page` (`XLogReaderValidatePageHeader`).
    /// `Ok(None)`: the end of the files.
    fn page(&mut self, page: u64) -> Result<Option<PageInfo>, WalError> {
        let size = u64::from(self.dir.segment_size());
        let off = (page % size) as usize;
        if let Some((p, info)) = self.checked {
            let in_window = self
                .seg
                .as_ref()
                .is_some_and(|s| s.get(off, WAL_PAGE_SIZE).is_some());
            if p == page && in_window {
                return Ok(Some(info));
            }
        }
        if !self.load_segment(page)? {
            return Ok(None);
        }
        {
            // The whole page (records are read through the pages they are on).
            let seg = self.seg.as_mut().expect("loaded");
            if let Err(e) = seg.load(off, WAL_PAGE_SIZE, size as usize) {
                return Err(WalError::new(page, Some(seg.path.clone()), e.into()));
            }
        }
        let seg = self.seg.as_ref().expect("loaded");
        // Streaming, the last page may be partly written: its header is enough here
        // (record reads check the bytes they need).
        let need = if self.available.is_some() {
            if off == 0 {
                LONG_PAGE_HEADER
            } else {
                SHORT_PAGE_HEADER
            }
        } else {
            WAL_PAGE_SIZE
        };
        let Some(h) = seg.get(off, need) else {
            return Err(self.err(
                page,
                Fault::Truncated {
                    len: seg.end() as u64,
                    need: (off + need) as u64,
                },
            ));
        };
        let magic = u16::from_le_bytes([h[0], h[1]]);
        let info = u16::from_le_bytes([h[2], h[3]]);
        let tli = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let mut a = [0u8; 8];
        a.copy_from_slice(&h[8..16]);
        let pageaddr = u64::from_le_bytes(a);
        let rem_len = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
        let long = info & XLP_LONG_HEADER != 0;
        let file_tli = seg.tli;
        let path = seg.path.clone();
        let fault = |f| Err(WalError::new(page, Some(path.clone()), f));
        let Some(major) = Major::from_page_magic(magic) else {
            return fault(Fault::BadMagic { magic });
        };
        if let Some(first) = self.major {
            if first != major {
                return fault(Fault::MixedMajors { first, this: major });
            }
        }
        if info & !XLP_ALL_FLAGS != 0 {
            return fault(Fault::BadPageInfo { info });
        }
        if long != (off == 0) {
            return fault(Fault::LongHeaderMismatch { found: long });
        }
        if long {
            a.copy_from_slice(&h[24..32]);
            let sysid = u64::from_le_bytes(a);
            let seg_size = u32::from_le_bytes([h[32], h[33], h[34], h[35]]);
            let blcksz = u32::from_le_bytes([h[36], h[37], h[38], h[39]]);
            if seg_size != self.dir.segment_size() {
                return fault(Fault::BadSegmentSize {
                    found: seg_size,
                    expected: self.dir.segment_size(),
                });
            }
            if blcksz as usize != WAL_PAGE_SIZE {
                return fault(Fault::BadWalPageSize { found: blcksz });
            }
            match self.sysid {
                Some(s) if s != sysid => {
                    return fault(Fault::SystemIdMismatch {
                        found: sysid,
                        expected: s,
                    })
                }
                _ => self.sysid = Some(sysid),
            }
        }
        if pageaddr != page {
            return fault(Fault::BadPageAddress {
                found: pageaddr,
                expected: page,
            });
        }
        let (latest, latest_tli) = self.latest_page;
        if tli > file_tli || (page > latest && tli < latest_tli) {
            return fault(Fault::BadPageTimeline {
                page_tli: tli,
                previous: latest_tli,
                file_tli,
            });
        }
        let header_len = if long {
            LONG_PAGE_HEADER
        } else {
            SHORT_PAGE_HEADER
        };
        if info & XLP_FIRST_IS_CONTRECORD != 0 && u64::from(rem_len) > MAX_RECORD_SIZE as u64 {
            return fault(Fault::BadContrecordLength {
                rem_len,
                expected: MAX_RECORD_SIZE,
            });
        }
        self.major = Some(major);
        if page > latest {
            self.latest_page = (page, tli);
        }
        let pi = PageInfo {
            header_len,
            info,
            rem_len,
        };
        self.checked = Some((page, pi));
        Ok(Some(pi))
    }

    /// Positions at the first record starting at or after `lsn`
    /// (`XLogFindNextRecord`) and returns its start.
    pub fn seek(&mut self, lsn: u64) -> Result<u64, WalError> {
        let p = Self::page_size();
        let mut page = lsn - lsn % p;
        self.latest_page = (0, 0);
        // Past the rest of a record continued from the page before.
        let mut at = loop {
            if self.beyond_available(page.saturating_add(self.header_len_at(page))) {
                return Err(WalError::new(lsn, None, Fault::NoRecordAfter));
            }
            let Some(pi) = self.page(page)? else {
                return Err(WalError::new(lsn, None, Fault::NoRecordAfter));
            };
            if pi.info & XLP_FIRST_IS_CONTRECORD == 0 {
                break page.saturating_add(pi.header_len as u64);
            }
            if u64::from(pi.rem_len) >= p - pi.header_len as u64 {
                page = page.saturating_add(p);
                continue;
            }
            break page
                .saturating_add(pi.header_len as u64)
                .saturating_add(maxalign(u64::from(pi.rem_len)));
        };
        self.prev = None;
        let end = self.end.take();
        let found = loop {
            self.next = at;
            match self.read_one(Target::Check) {
                Ok(Some(r)) if r.lsn >= lsn => break Ok(r.lsn),
                Ok(Some(r)) => at = r.end_lsn,
                Ok(None) => break Err(WalError::new(lsn, None, Fault::NoRecordAfter)),
                Err(e) => break Err(e),
            }
        };
        self.end = end;
        let start = found?;
        self.next = start;
        self.prev = None;
        Ok(start)
    }

    /// Reads the next record into `batch` (header, block references with their data
    /// and, when restoring, their pages). `Ok(None)`: the end (the next record would
    /// end after the end set, or the files end). A fault leaves the reader where it
    /// was and nothing in the batch.
    pub fn read_into(&mut self, batch: &mut BatchBuilder) -> Result<Option<RecordPos>, WalError> {
        self.read_one(Target::Batch(batch))
    }

    /// Reads and decodes the next record as [`WalReader::read_into`] does, without
    /// gathering it anywhere: its position, length and page-image bytes (what
    /// `pg_waldump --stats` counts). `Ok(None)` and faults as there.
    pub fn read_measured(&mut self) -> Result<Option<RecordPos>, WalError> {
        self.read_one(Target::Measure)
    }

    /// The files end before the record at `start`: the end, unless an end position
    /// after it was set.
    fn files_ended(&self, start: u64) -> Result<Option<RecordPos>, WalError> {
        match self.end {
            Some(end) if start < end => Err(WalError::new(start, None, Fault::EndedBefore { end })),
            _ => Ok(None),
        }
    }

    /// Reads the next record; decodes it and fills a batch as `target` says.
    fn read_one(&mut self, target: Target<'_>) -> Result<Option<RecordPos>, WalError> {
        let p = Self::page_size();
        let mut start = self.next;
        if self.end.is_some_and(|end| start >= end) {
            return Ok(None);
        }
        let page = start - start % p;
        if self.beyond_available(page.saturating_add(self.header_len_at(page))) {
            return Ok(None);
        }
        let Some(pi) = self.page(page)? else {
            return self.files_ended(start);
        };
        if start % p < pi.header_len as u64 {
            if start.is_multiple_of(p) && pi.info & XLP_FIRST_IS_CONTRECORD != 0 {
                return Err(self.err(
                    page,
                    Fault::BadContrecordLength {
                        rem_len: pi.rem_len,
                        expected: 0,
                    },
                ));
            }
            start = page.saturating_add(pi.header_len as u64);
        }
        if let Some(end) = self.end {
            if start >= end {
                return Ok(None);
            }
        }
        let size = u64::from(self.dir.segment_size());
        let in_page = (p - start % p) as usize;
        if self.beyond_available(start.saturating_add(4)) {
            return Ok(None);
        }
        let seg = self.seg.as_ref().expect("page loaded");
        let off = (start % size) as usize;
        let have = seg.end();
        let truncated = |need: usize| Fault::Truncated {
            len: have as u64,
            need: need as u64,
        };
        let Some(b) = seg.get(off, 4) else {
            return Err(self.err(start, truncated(off + 4)));
        };
        let total = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if (total as usize) < RECORD_HEADER || total > MAX_RECORD_SIZE {
            return Err(self.err(start, Fault::BadRecordLength { len: total }));
        }
        let tli = seg.tli;
        let contiguous = total as usize <= in_page;
        let first_part = if contiguous { total as usize } else { in_page };
        if self.beyond_available(start.saturating_add(first_part as u64)) {
            return Ok(None);
        }
        if off + first_part > have {
            return Err(self.err(start, truncated(off + first_part)));
        }
        let Some(b) = seg.get(off, first_part) else {
            return Err(self.err(start, truncated(off + first_part)));
        };
        let mut end_lsn;
        if contiguous {
            end_lsn = start.saturating_add(maxalign(u64::from(total)));
        } else {
            // Gather the record over the pages it spans.
            self.buf.clear();
            self.buf.extend_from_slice(b);
            let mut page = page;
            loop {
                page = page.saturating_add(p);
                if self.beyond_available(page.saturating_add(self.header_len_at(page))) {
                    return Ok(None);
                }
                let Some(pi) = self.page(page)? else {
                    // The files end inside the record: nothing complete to read.
                    return self.files_ended(start);
                };
                let left = total as usize - self.buf.len();
                if pi.info & XLP_FIRST_IS_CONTRECORD == 0 {
                    return Err(self.err(page, Fault::MissingContrecord));
                }
                if pi.rem_len as usize != left {
                    return Err(self.err(
                        page,
                        Fault::BadContrecordLength {
                            rem_len: pi.rem_len,
                            expected: left as u32,
                        },
                    ));
                }
                let seg = self.seg.as_ref().expect("page loaded");
                let from = (page % size) as usize + pi.header_len;
                let n = left.min(WAL_PAGE_SIZE - pi.header_len);
                if self.beyond_available(page.saturating_add((pi.header_len + n) as u64)) {
                    return Ok(None);
                }
                let Some(part) = seg.get(from, n) else {
                    let need = Fault::Truncated {
                        len: seg.end() as u64,
                        need: (from + n) as u64,
                    };
                    return Err(self.err(page, need));
                };
                self.buf.extend_from_slice(part);
                if self.buf.len() == total as usize {
                    end_lsn = page
                        .saturating_add(pi.header_len as u64)
                        .saturating_add(maxalign(left as u64));
                    break;
                }
            }
        }
        let seg = self.seg.as_ref().expect("page loaded");
        let bytes: &[u8] = if contiguous {
            seg.get(off, total as usize).expect("checked above")
        } else {
            &self.buf
        };
        let path = || Some(seg.path.clone());
        let h =
            record::check(bytes, start, self.prev).map_err(|f| WalError::new(start, path(), f))?;
        if h.rmid == RM_XLOG_ID && h.info & !XLR_INFO_MASK == XLOG_SWITCH {
            // The rest of the segment is unused: the next record starts the next one.
            end_lsn = end_lsn.saturating_add(size - 1) / size * size;
        }
        if let Some(end) = self.end {
            if end_lsn > end {
                return Ok(None);
            }
        }
        let mut fpi_len = 0u32;
        if let Target::Measure = target {
            record::decode(bytes, self.opts.block_size, &mut self.layout)
                .map_err(|f| WalError::new(start, path(), f))?;
            fpi_len = self.layout.image_bytes();
        }
        if let Target::Batch(batch) = target {
            record::decode(bytes, self.opts.block_size, &mut self.layout)
                .map_err(|f| WalError::new(start, path(), f))?;
            let l = &self.layout;
            fpi_len = l.image_bytes();
            batch.start_record(
                RecordHead {
                    lsn: start,
                    end_lsn,
                    timeline: tli,
                    xid: h.xid,
                    toplevel_xid: l.toplevel_xid,
                    rmid: h.rmid,
                    info: h.info,
                    total_len: h.total_len,
                },
                &bytes[l.main.clone()],
            );
            let mut failed = None;
            for b in &l.blocks {
                let head = BlockHead {
                    block_id: b.id,
                    fork: b.fork,
                    has_image: b.image.is_some(),
                    apply_image: b.image.as_ref().is_some_and(|i| i.apply),
                    has_data: b.has_data,
                    tablespace: b.rel[0],
                    database: b.rel[1],
                    relfilenode: b.rel[2],
                    block: b.blkno,
                    image_len: b.image.as_ref().map_or(0, |i| i.bytes.len() as u32),
                };
                let data = &bytes[b.data.clone()];
                let Some(img) = b.image.as_ref().filter(|_| self.opts.restore_images) else {
                    batch.add_block(head, data, 0, |_| false);
                    continue;
                };
                let scratch = &mut self.scratch;
                batch.add_block(
                    head,
                    data,
                    self.opts.block_size,
                    |page| match image::restore(&bytes[img.bytes.clone()], img, page, scratch) {
                        Ok(()) => true,
                        Err(problem) => {
                            failed = Some(Fault::BadImage {
                                block_id: b.id,
                                problem,
                            });
                            false
                        }
                    },
                );
                if let Some(f) = failed.take() {
                    batch.discard_open_record();
                    return Err(WalError::new(start, path(), f));
                }
            }
            batch.finish_record();
        }
        self.prev = Some(start);
        self.next = end_lsn;
        Ok(Some(RecordPos {
            lsn: start,
            end_lsn,
            timeline: tli,
            total_len: h.total_len,
            fpi_len,
        }))
    }
}

#[cfg(test)]
#[path = "synth_tests.rs"]
mod synth_tests;

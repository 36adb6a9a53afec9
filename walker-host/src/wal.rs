//! Reading WAL with the server's own XLogReader, on the worker's main thread, and
//! decoding each record's header and block references into a batch.

use crate::pg_version::block_relation;
use pgrx::pg_sys;
use std::ffi::{c_char, c_int, CStr};
use walker_core::batch::{BatchBuilder, BlockHead, RecordHead};

// The server's page-read and segment callbacks. pgrx wraps its bindings in Rust
// functions, which cannot be stored in `XLogReaderRoutine`, so they are declared here
// with the signatures of `XLogPageReadCB`, `WALSegmentOpenCB` and `WALSegmentCloseCB`.
unsafe extern "C-unwind" {
    fn read_local_xlog_page_no_wait(
        state: *mut pg_sys::XLogReaderState,
        target_page: pg_sys::XLogRecPtr,
        req_len: c_int,
        target_rec: pg_sys::XLogRecPtr,
        cur_page: *mut c_char,
    ) -> c_int;
    fn wal_segment_open(
        state: *mut pg_sys::XLogReaderState,
        next_seg: pg_sys::XLogSegNo,
        tli: *mut pg_sys::TimeLineID,
    );
    fn wal_segment_close(state: *mut pg_sys::XLogReaderState);
}

/// What one read produced.
pub enum Read {
    /// A record was added to the batch.
    Record,
    /// No complete record past the current position yet.
    EndOfWal,
    /// The reader reported an invalid record or a read failure.
    Error(String),
    /// The record at `lsn` (ending at `end`) was not decoded: it is the one
    /// [`WalReader::skip_record_at`] named (it crashed the worker before).
    Skipped {
        /// Start of the skipped record.
        lsn: u64,
        /// Its end.
        end: u64,
    },
}

/// An XLogReader positioned in the WAL.
pub struct WalReader {
    state: *mut pg_sys::XLogReaderState,
    // Written by the page-read callback; must outlive the reader.
    private: Box<pg_sys::ReadLocalXLogPageNoWaitPrivate>,
    /// Where the next record starts (end of the last record read).
    next: u64,
    /// A record not to decode (0: none); see [`WalReader::skip_record_at`].
    skip: u64,
}

impl WalReader {
    /// Allocates a reader.
    pub fn new() -> WalReader {
        let mut private = Box::new(pg_sys::ReadLocalXLogPageNoWaitPrivate { end_of_wal: false });
        let routine = pg_sys::XLogReaderRoutine {
            page_read: Some(read_local_xlog_page_no_wait),
            segment_open: Some(wal_segment_open),
            segment_close: Some(wal_segment_close),
        };
        // SAFETY: main thread; the routine is copied by the reader; `private` is boxed
        // and lives as long as the reader (both owned by `WalReader`).
        let state = unsafe {
            pg_sys::XLogReaderAllocate(
                pg_sys::wal_segment_size,
                std::ptr::null(),
                &routine as *const _ as *mut _,
                &mut *private as *mut _ as *mut std::ffi::c_void,
            )
        };
        if state.is_null() {
            pgrx::error!("walker: out of memory allocating a WAL reader");
        }
        WalReader {
            state,
            private,
            next: 0,
            skip: 0,
        }
    }

    /// Positions at the first valid record at or after `lsn`; `None` when there is
    /// none yet (end of WAL).
    pub fn seek(&mut self, lsn: u64) -> Option<u64> {
        self.private.end_of_wal = false;
        // SAFETY: valid reader; main thread.
        let first = unsafe { pg_sys::XLogFindNextRecord(self.state, lsn) };
        if first == 0 {
            return None;
        }
        // SAFETY: `first` is the start of a valid record.
        unsafe { pg_sys::XLogBeginRead(self.state, first) };
        self.next = first;
        Some(first)
    }

    /// Restarts reading at the end of the last record read (after end of WAL or an error).
    /// Tries to read the record at `lsn` (a record start) and returns the reader's
    /// error message when it is invalid; `None` when it reads or the WAL ends there.
    /// The reader is then positioned where it was.
    pub fn probe(&mut self, lsn: u64) -> Option<String> {
        self.private.end_of_wal = false;
        let mut errmsg: *mut c_char = std::ptr::null_mut();
        // SAFETY: the reader is ours; `lsn` is where a record was expected; the server's
        // reader raises no ERROR for invalid data, it returns the message.
        let rec = unsafe {
            pg_sys::XLogBeginRead(self.state, lsn);
            pg_sys::XLogReadRecord(self.state, &mut errmsg)
        };
        let msg = (rec.is_null() && !self.private.end_of_wal && !errmsg.is_null()).then(|| {
            // SAFETY: a NUL-terminated message owned by the reader.
            unsafe { CStr::from_ptr(errmsg) }
                .to_string_lossy()
                .into_owned()
        });
        self.rewind();
        msg
    }

    fn rewind(&mut self) {
        self.private.end_of_wal = false;
        if self.next != 0 {
            // SAFETY: `next` is the end of a record that was read completely.
            unsafe { pg_sys::XLogBeginRead(self.state, self.next) };
        }
    }

    /// The record starting at `lsn` is read but not decoded: [`Read::Skipped`].
    pub fn skip_record_at(&mut self, lsn: u64) {
        self.skip = lsn;
    }

    /// End of the last record read.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Reads one record into `batch`.
    pub fn read(&mut self, batch: &mut BatchBuilder) -> Read {
        let mut errmsg: *mut c_char = std::ptr::null_mut();
        // SAFETY: valid, positioned reader; main thread.
        let rec = unsafe { pg_sys::XLogReadRecord(self.state, &mut errmsg) };
        if rec.is_null() {
            let eow = self.private.end_of_wal;
            let msg = if errmsg.is_null() {
                None
            } else {
                // SAFETY: the reader's error buffer is NUL-terminated.
                Some(
                    unsafe { CStr::from_ptr(errmsg) }
                        .to_string_lossy()
                        .into_owned(),
                )
            };
            self.rewind();
            return match (eow, msg) {
                (true, _) | (false, None) => Read::EndOfWal,
                (false, Some(m)) => Read::Error(m),
            };
        }
        let ledger = walker_core::crash::ledger().map(|l| &l.reader);
        // SAFETY: after a successful read, the reader's positions are set.
        let (start, end) = unsafe { ((*self.state).ReadRecPtr, (*self.state).EndRecPtr) };
        if self.skip != 0 && start == self.skip {
            self.skip = 0;
            self.next = end;
            return Read::Skipped { lsn: start, end };
        }
        // A crash while decoding is counted against this record (crash ledger).
        if let Some(r) = ledger {
            r.reading(start);
        }
        // SAFETY: after a successful read, `record` points to the decoded record,
        // valid until the next read; blocks 0..=max_block_id are initialised.
        unsafe {
            let st = &*self.state;
            let d = &*st.record;
            let head = RecordHead {
                lsn: st.ReadRecPtr,
                end_lsn: st.EndRecPtr,
                timeline: st.seg.ws_tli,
                xid: d.header.xl_xid.into(),
                toplevel_xid: d.toplevel_xid.into(),
                rmid: d.header.xl_rmid,
                info: d.header.xl_info,
                total_len: d.header.xl_tot_len,
            };
            if batch.wants(head.rmid) {
                copy_record(batch, self.state, d, head);
            } else {
                // No plugin reads this resource manager: counted, nothing copied.
                batch.pass_record(&head);
            }
            self.next = st.EndRecPtr;
        }
        if let Some(r) = ledger {
            r.done_reading();
            r.passed(start);
        }
        Read::Record
    }
}

/// Copies the decoded record `d` into `batch`, straight from the server's reader: no
/// buffer of our own, each page image restored in place.
///
/// # Safety
/// `d` is the record `state` decoded last, and `state` is not read again before this
/// returns.
unsafe fn copy_record(
    batch: &mut BatchBuilder,
    state: *mut pg_sys::XLogReaderState,
    d: &pg_sys::DecodedXLogRecord,
    head: RecordHead,
) {
    // SAFETY: the caller's contract: `d` and its blocks' data and images are the
    // reader's current record, valid and unchanged until the next read.
    unsafe {
        let main = slice(d.main_data as *const u8, d.main_data_len as usize);
        batch.start_record(head, main);
        for i in 0..=d.max_block_id {
            let b = &*d.blocks.as_ptr().add(i as usize);
            if !b.in_use {
                continue;
            }
            let (tablespace, database, relfilenode) = block_relation(b);
            let data = if b.has_data {
                slice(b.data as *const u8, b.data_len as usize)
            } else {
                &[][..]
            };
            let head = BlockHead {
                block_id: i as u8,
                fork: b.forknum as u8,
                has_image: b.has_image,
                apply_image: b.apply_image,
                has_data: b.has_data,
                tablespace,
                database,
                relfilenode,
                block: b.blkno,
                image_len: b.bimg_len as u32,
            };
            // The page the image restores, for plugins reading page state.
            let page_size = if b.has_image {
                pg_sys::BLCKSZ as usize
            } else {
                0
            };
            batch.add_block(head, data, page_size, |page| {
                // SAFETY: `page` is BLCKSZ writable bytes; block `i` has an image.
                pg_sys::RestoreBlockImage(state, i as u8, page.as_mut_ptr() as *mut c_char)
            });
        }
    }
    batch.finish_record();
}

/// # Safety
/// `p` valid for `len` bytes when `len > 0`.
unsafe fn slice<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: caller's contract.
        unsafe { std::slice::from_raw_parts(p, len) }
    }
}

impl Drop for WalReader {
    fn drop(&mut self) {
        // SAFETY: the reader was allocated by XLogReaderAllocate and is freed once.
        unsafe { pg_sys::XLogReaderFree(self.state) };
    }
}

/// Where WAL is durable: the flush pointer on a primary, the replay pointer on a standby.
pub fn durable_lsn() -> u64 {
    // SAFETY: plain reads of shared WAL positions; main thread.
    unsafe {
        if pg_sys::RecoveryInProgress() {
            pg_sys::GetXLogReplayRecPtr(std::ptr::null_mut())
        } else {
            pg_sys::GetFlushRecPtr(std::ptr::null_mut())
        }
    }
}

/// The redo pointer of the last checkpoint: a safe place to start (WAL from there is
/// always kept).
pub fn redo_lsn() -> u64 {
    // SAFETY: reads a shared WAL position; main thread.
    unsafe { pg_sys::GetRedoRecPtr() }
}

/// The server's resource-manager names, indexed by id.
pub fn rmgr_names() -> Vec<Option<String>> {
    (0..=255usize)
        .map(|i| {
            // SAFETY: RmgrTable has RM_MAX_ID + 1 = 256 entries; names are static strings
            // or null for unused ids.
            unsafe {
                let e = &*(std::ptr::addr_of!(pg_sys::RmgrTable) as *const pg_sys::RmgrData).add(i);
                if e.rm_name.is_null() {
                    None
                } else {
                    Some(CStr::from_ptr(e.rm_name).to_string_lossy().into_owned())
                }
            }
        })
        .collect()
}

/// The server's current timeline: the one it inserts WAL on, or replays on a standby.
pub fn current_timeline() -> u32 {
    // SAFETY: reading server state on the main thread.
    unsafe {
        if pg_sys::RecoveryInProgress() {
            let mut tli: pg_sys::TimeLineID = 0;
            pg_sys::GetXLogReplayRecPtr(&mut tli);
            tli
        } else {
            pg_sys::GetWALInsertionTimeLine()
        }
    }
}

thread_local! {
    static HISTORY_OF: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Reads the current timeline's history (`pg_wal/<tli>.history`) for the snapshot
/// checks when the timeline changed since the last call (main thread). A history that
/// cannot be read leaves the checks off and is logged.
pub fn refresh_history() {
    let tli = current_timeline();
    if tli == 0 || HISTORY_OF.with(|c| c.replace(tli)) == tli {
        return;
    }
    // SAFETY: DataDir is set in every server process; main thread.
    let dir = unsafe { CStr::from_ptr(pg_sys::DataDir) }
        .to_string_lossy()
        .into_owned();
    let path = std::path::Path::new(&dir)
        .join("pg_wal")
        .join(format!("{tli:08X}.history"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && tli == 1 => None,
        Err(e) => {
            pgrx::warning!(
                "walker: cannot read {}: {e}; snapshots are not checked against the timeline history",
                path.display()
            );
            walker_core::persistence::set_history(Vec::new());
            return;
        }
    };
    match walker_core::timeline::parse_history(tli, text.as_deref()) {
        Ok(h) => walker_core::persistence::set_history(h),
        Err(e) => {
            pgrx::warning!("walker: {e}; snapshots are not checked against the timeline history");
            walker_core::persistence::set_history(Vec::new());
        }
    }
}

//! WAL records as a plugin receives them: one [`Record`], or a run of them ([`Records`]).

use super::PluginError;
use crate::types::*;

/// A run of consecutive records for [`Plugin::on_records`](super::Plugin::on_records),
/// borrowed for the call.
pub struct Records<'a> {
    raw: &'a [WalkerRecord],
    mask: &'a [u64; WALKER_RMGR_MASK_WORDS],
    /// Index of the record [`Records::iter`] yielded last (named when a panic ends
    /// the call).
    pub(super) current: std::cell::Cell<usize>,
}

impl<'a> Records<'a> {
    /// Wraps a run of records; [`Records::iter`] yields those whose resource manager
    /// is in `mask`.
    ///
    /// # Safety
    /// Every record's pointers must be valid for `'a` with the lengths it states.
    pub unsafe fn from_raw(
        raw: &'a [WalkerRecord],
        mask: &'a [u64; WALKER_RMGR_MASK_WORDS],
    ) -> Self {
        Records {
            raw,
            mask,
            current: std::cell::Cell::new(0),
        }
    }

    /// The records of subscribed resource managers, with their index in the run.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Record<'a>)> + '_ {
        let mask = self.mask;
        self.raw
            .iter()
            .enumerate()
            .filter(move |(_, r)| mask_has(mask, r.rmid))
            .map(|(i, raw)| {
                self.current.set(i);
                (i, Record { raw })
            })
    }

    /// Records in the run, subscribed or not.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True for an empty run.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// Why [`Plugin::on_records`](super::Plugin::on_records) stopped: the record (index in the
/// run) and the error.
#[derive(Debug)]
pub struct RecordsError {
    /// Index of the failing record in the run.
    pub index: usize,
    /// What went wrong.
    pub error: PluginError,
}

impl RecordsError {
    /// The record at `index` failed with `error`.
    pub fn at(index: usize, error: impl Into<PluginError>) -> Self {
        RecordsError {
            index,
            error: error.into(),
        }
    }
}

/// A WAL record, borrowed for the duration of [`Plugin::on_record`](super::Plugin::on_record).
pub struct Record<'a> {
    raw: &'a WalkerRecord,
}

impl<'a> Record<'a> {
    /// The page restored from the full-page image of block reference number `i`
    /// (index into [`Record::blocks`]), when it has one and the host provides pages
    /// (ABI 1.1).
    pub fn block_image(&self, i: usize) -> Option<&'a [u8]> {
        let r = self.raw();
        let end = std::mem::offset_of!(WalkerRecord, page_size) + std::mem::size_of::<u32>();
        if (r.struct_size as usize) < end || r.block_images.is_null() || i >= r.n_blocks as usize {
            return None;
        }
        // SAFETY: the host passes `n_blocks` image pointers, each null or `page_size`
        // readable bytes, valid for the callback.
        unsafe {
            let p = *r.block_images.add(i);
            (!p.is_null()).then(|| std::slice::from_raw_parts(p, r.page_size as usize))
        }
    }

    /// Wraps a raw record.
    ///
    /// # Safety
    /// `raw`'s pointers must be valid for `'a` with the lengths it states.
    pub unsafe fn from_raw(raw: &'a WalkerRecord) -> Self {
        Record { raw }
    }
    /// The raw struct.
    pub fn raw(&self) -> &'a WalkerRecord {
        self.raw
    }
    /// Start LSN.
    pub fn lsn(&self) -> u64 {
        self.raw.lsn
    }
    /// End LSN.
    pub fn end_lsn(&self) -> u64 {
        self.raw.end_lsn
    }
    /// Resource manager id.
    pub fn rmid(&self) -> u8 {
        self.raw.rmid
    }
    /// `xl_info`.
    pub fn info(&self) -> u8 {
        self.raw.info
    }
    /// Writing transaction (0 when none).
    pub fn xid(&self) -> u32 {
        self.raw.xid
    }
    /// Top-level transaction when known (0 otherwise).
    pub fn toplevel_xid(&self) -> u32 {
        self.raw.toplevel_xid
    }
    /// Total record length, images included.
    pub fn total_len(&self) -> u32 {
        self.raw.total_len
    }
    /// Bytes of full-page images.
    pub fn fpi_len(&self) -> u32 {
        self.raw.fpi_len
    }
    /// Main data.
    pub fn main_data(&self) -> &'a [u8] {
        // SAFETY: guaranteed by `from_raw`'s contract.
        unsafe { slice_or_empty(self.raw.main_data, self.raw.main_data_len as usize) }
    }
    /// Block references.
    pub fn blocks(&self) -> &'a [WalkerBlockRef] {
        // SAFETY: guaranteed by `from_raw`'s contract.
        unsafe { slice_or_empty(self.raw.blocks, self.raw.n_blocks as usize) }
    }
    /// Per-block data of `block`.
    pub fn block_data(&self, block: &WalkerBlockRef) -> &'a [u8] {
        // SAFETY: guaranteed by `from_raw`'s contract.
        unsafe { slice_or_empty(block.data, block.data_len as usize) }
    }
}

/// # Safety
/// `ptr` must be valid for `len` elements when `len > 0`.
unsafe fn slice_or_empty<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees `ptr` is valid for `len` elements.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

//! Batches of decoded records: built on the worker's main thread from the server's
//! reader, then shared read-only by every dispatch thread.

use crate::recycle::Kept;
use walker_abi::{mask_has, WalkerBlockRef, WalkerRecord, WALKER_RMGR_MASK_WORDS};

/// Header fields of one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordHead {
    /// Start LSN.
    pub lsn: u64,
    /// End LSN.
    pub end_lsn: u64,
    /// Timeline read from.
    pub timeline: u32,
    /// Writing transaction.
    pub xid: u32,
    /// Top-level transaction, when the record names one.
    pub toplevel_xid: u32,
    /// Resource manager.
    pub rmid: u8,
    /// `xl_info`.
    pub info: u8,
    /// `xl_tot_len`.
    pub total_len: u32,
}

/// Fields of one block reference (its data travels separately).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockHead {
    /// Block id within the record.
    pub block_id: u8,
    /// Fork.
    pub fork: u8,
    /// Has a full-page image.
    pub has_image: bool,
    /// The image is applied at redo.
    pub apply_image: bool,
    /// Has per-block data.
    pub has_data: bool,
    /// Tablespace.
    pub tablespace: u32,
    /// Database.
    pub database: u32,
    /// Relation file number.
    pub relfilenode: u32,
    /// Block number.
    pub block: u32,
    /// Stored image length.
    pub image_len: u32,
}

struct Pending {
    head: RecordHead,
    fpi_len: u32,
    main: (usize, usize),
    blocks: (usize, usize),
}

/// (offset, length) of bytes in a batch's data.
type Span = (usize, usize);

/// The vectors of one batch: what the builder fills, and the ABI structs `finish`
/// makes from them. A dropped batch gives them to the next one ([`KEPT`]).
#[derive(Default)]
struct Storage {
    records: Vec<Pending>,
    /// Each block with the (offset, length) of its data and of its page image in `data`.
    blocks: Vec<(BlockHead, Span, Span)>,
    data: Vec<u8>,
    abi_records: Vec<WalkerRecord>,
    abi_blocks: Vec<WalkerBlockRef>,
    images: Vec<*const u8>,
}

// SAFETY: the raw pointers a storage holds (`images` and the ABI structs) point into
// its own `data` and `abi_blocks`, which move with it; a batch is read-only while
// shared, and a kept storage is emptied first.
unsafe impl Send for Storage {}

/// Emptied storage of dropped batches. A walk through a backlog builds a batch every
/// two thousand records; fresh vectors cost page faults, zeroing and reallocations
/// while they grow to the batch's size (a profile of a walk without plugins put
/// several percent of the reader's time there). At most 4 are kept (a few batches are
/// in flight at once).
static KEPT: Kept<Storage> = Kept::new(4);

/// A storage whose data grew past this (a batch of large page images) is freed rather
/// than kept, so a caught-up worker does not hold a backlog's memory.
const KEEP_DATA_BYTES: usize = 16 << 20;

impl Storage {
    /// Keeps the vectors, emptied, for a later batch (unless the data grew too large).
    fn recycle(mut self) {
        if self.data.capacity() > KEEP_DATA_BYTES {
            return;
        }
        self.records.clear();
        self.blocks.clear();
        self.data.clear();
        self.abi_records.clear();
        self.abi_blocks.clear();
        self.images.clear();
        KEPT.give(self);
    }
}

/// Records read but not copied because no plugin asked for their resource manager
/// ([`BatchBuilder::pass_record`]): counted, and their end carried, so the walk's
/// position, counters and snapshot triggers do not depend on what plugins read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Passed {
    records: u64,
    bytes: u64,
    end_lsn: u64,
    checkpoint: bool,
}

/// Accumulates records into a batch.
pub struct BatchBuilder {
    /// The records, blocks and data so far (and the vectors `finish` fills).
    st: Storage,
    page_size: u32,
    /// A record was started and not finished yet.
    open: bool,
    /// The resource managers whose records are copied (every one by default).
    wanted: [u64; WALKER_RMGR_MASK_WORDS],
    passed: Passed,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder {
            st: Storage::default(),
            page_size: 0,
            open: false,
            wanted: [u64::MAX; WALKER_RMGR_MASK_WORDS],
            passed: Passed::default(),
        }
    }
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `records` records and `bytes` bytes of data, so
    /// that filling it moves nothing.
    /// The storage of a batch dropped earlier is reused when there is one (it grew
    /// to its batch's size before).
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        let mut st = KEPT.take().unwrap_or_default();
        st.records.reserve(records);
        st.blocks.reserve(records.saturating_mul(2));
        st.data.reserve(bytes);
        BatchBuilder {
            st,
            ..BatchBuilder::default()
        }
    }

    /// Copies only the records of the resource managers in `mask` (the union of the
    /// loaded plugins' masks); the others are passed: counted, not copied.
    pub fn wanting(mut self, mask: [u64; WALKER_RMGR_MASK_WORDS]) -> Self {
        self.wanted = mask;
        self
    }

    /// Whether a record of resource manager `rmid` is copied (else the reader passes
    /// it with [`BatchBuilder::pass_record`]).
    pub fn wants(&self, rmid: u8) -> bool {
        mask_has(&self.wanted, rmid)
    }

    /// Counts a complete record no plugin asked for, without copying anything of it.
    pub fn pass_record(&mut self, head: &RecordHead) {
        self.discard_open_record();
        let p = &mut self.passed;
        p.records += 1;
        p.bytes = p.bytes.saturating_add(head.total_len as u64);
        p.end_lsn = p.end_lsn.max(head.end_lsn);
        p.checkpoint |= walker_decode::is_checkpoint(head.rmid, head.info);
    }

    /// Complete records read so far, copied or passed.
    pub fn len(&self) -> usize {
        self.st.records.len() - usize::from(self.open) + self.passed.records as usize
    }

    /// No complete record read yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of copied data so far.
    pub fn data_bytes(&self) -> usize {
        self.st.data.len()
    }

    fn copy(&mut self, bytes: &[u8]) -> (usize, usize) {
        let off = self.st.data.len();
        self.st.data.extend_from_slice(bytes);
        (off, bytes.len())
    }

    /// Starts a record; its blocks follow through [`BatchBuilder::add_block`], then
    /// [`BatchBuilder::finish_record`] completes it. The reader adds each block straight
    /// from the server's decoded record, with no buffer of its own. The record's
    /// full-page-image length is the sum of its blocks' image lengths, as PostgreSQL's
    /// own statistics count it.
    pub fn start_record(&mut self, head: RecordHead, main_data: &[u8]) {
        self.discard_open_record();
        self.open = true;
        let main = self.copy(main_data);
        self.st.records.push(Pending {
            head,
            fpi_len: 0,
            main,
            blocks: (self.st.blocks.len(), 0),
        });
    }

    /// Adds a block reference to the record started last. When `page_size` is not
    /// zero, `restore` writes the page its image restores into a `page_size` buffer
    /// in the batch (returning false when it cannot: then the block has no page).
    /// Every page has the same size, which the records report as `page_size`.
    pub fn add_block(
        &mut self,
        b: BlockHead,
        data: &[u8],
        page_size: usize,
        restore: impl FnOnce(&mut [u8]) -> bool,
    ) {
        let d = self.copy(data);
        let mut image = (self.st.data.len(), 0);
        if page_size > 0 {
            let off = self.st.data.len();
            self.st.data.resize(off + page_size, 0);
            if restore(&mut self.st.data[off..]) {
                image = (off, page_size);
                self.page_size = page_size as u32;
            } else {
                self.st.data.truncate(off);
            }
        }
        self.st.blocks.push((b, d, image));
        let r = self
            .st
            .records
            .last_mut()
            .expect("add_block follows start_record");
        r.blocks.1 += 1;
        if b.has_image {
            r.fpi_len = r.fpi_len.saturating_add(b.image_len);
        }
    }

    /// Ends the record started last: it is complete.
    pub fn finish_record(&mut self) {
        self.open = false;
    }

    /// Drops a record started and not finished, with its blocks (its reading failed
    /// midway); nothing when there is none.
    pub fn discard_open_record(&mut self) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        if let Some(r) = self.st.records.pop() {
            self.st.blocks.truncate(r.blocks.0);
            self.st.data.truncate(r.main.0);
        }
    }

    /// Freezes the batch: builds the ABI structs pointing into its own storage. A
    /// record left unfinished is not part of it.
    pub fn finish(mut self) -> Batch {
        self.discard_open_record();
        let page_size = self.page_size;
        let mut st = std::mem::take(&mut self.st);
        let base = st.data.as_ptr();
        let ptr_at = |(off, len): (usize, usize)| {
            if len == 0 {
                std::ptr::null()
            } else {
                base.wrapping_add(off)
            }
        };
        st.abi_blocks.clear();
        st.abi_blocks
            .extend(st.blocks.iter().map(|(b, d, _)| WalkerBlockRef {
                block_id: b.block_id,
                fork: b.fork,
                has_image: b.has_image,
                apply_image: b.apply_image,
                has_data: b.has_data,
                tablespace: b.tablespace,
                database: b.database,
                relfilenode: b.relfilenode,
                block: b.block,
                image_len: if b.has_image { b.image_len } else { 0 },
                data: ptr_at(*d),
                data_len: d.1 as u32,
            }));
        let bbase = st.abi_blocks.as_ptr();
        st.images.clear();
        st.images
            .extend(st.blocks.iter().map(|(_, _, i)| ptr_at(*i)));
        let ibase = st.images.as_ptr();
        st.abi_records.clear();
        st.abi_records
            .extend(st.records.iter().map(|r| WalkerRecord {
                struct_size: std::mem::size_of::<WalkerRecord>() as u32,
                rmid: r.head.rmid,
                info: r.head.info,
                timeline: r.head.timeline,
                lsn: r.head.lsn,
                end_lsn: r.head.end_lsn,
                xid: r.head.xid,
                toplevel_xid: r.head.toplevel_xid,
                total_len: r.head.total_len,
                fpi_len: r.fpi_len,
                main_data: ptr_at(r.main),
                main_data_len: r.main.1 as u32,
                blocks: if r.blocks.1 == 0 {
                    std::ptr::null()
                } else {
                    bbase.wrapping_add(r.blocks.0)
                },
                n_blocks: r.blocks.1 as u32,
                block_images: if r.blocks.1 == 0 {
                    std::ptr::null()
                } else {
                    ibase.wrapping_add(r.blocks.0)
                },
                page_size,
            }));
        let passed = self.passed;
        let copied_end = st.records.last().map_or(0, |r| r.head.end_lsn);
        let read_bytes = st
            .records
            .iter()
            .map(|r| r.head.total_len as u64)
            .fold(passed.bytes, u64::saturating_add);
        Batch {
            end_lsn: copied_end.max(passed.end_lsn),
            read_records: st.records.len() as u64 + passed.records,
            read_bytes,
            passed_checkpoint: passed.checkpoint,
            st,
        }
    }
}

/// An immutable batch of records in WAL order.
pub struct Batch {
    /// The records (`abi_records`) and the storage they point into; never mutated
    /// until the batch is dropped, when it is kept for a later batch.
    st: Storage,
    /// End LSN of the last record read, copied or passed (0 for an empty batch).
    pub end_lsn: u64,
    /// Records read, copied or passed.
    pub read_records: u64,
    /// Their `xl_tot_len` bytes.
    pub read_bytes: u64,
    /// A passed record was a checkpoint.
    passed_checkpoint: bool,
}

impl Drop for Batch {
    fn drop(&mut self) {
        std::mem::take(&mut self.st).recycle();
    }
}

// SAFETY: a batch is immutable after `finish`; its raw pointers target its own heap
// buffers, which live as long as the batch.
unsafe impl Send for Batch {}
// SAFETY: as above.
unsafe impl Sync for Batch {}

/// True for a checkpoint record (online or shutdown).
pub fn is_checkpoint(r: &WalkerRecord) -> bool {
    walker_decode::is_checkpoint(r.rmid, r.info)
}

impl Batch {
    /// The records, ready to hand to plugins.
    pub fn records(&self) -> &[WalkerRecord] {
        &self.st.abi_records
    }

    /// True when a checkpoint record was read into the batch (copied or passed).
    pub fn has_checkpoint(&self) -> bool {
        self.passed_checkpoint || self.records().iter().any(is_checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walker_abi::Record;

    #[test]
    fn records_point_into_their_batch() {
        let mut b = BatchBuilder::new();
        let h1 = RecordHead {
            lsn: 100,
            end_lsn: 150,
            rmid: 10,
            info: 0x20,
            total_len: 50,
            xid: 7,
            ..Default::default()
        };
        let blk = |id, img: Option<u32>| BlockHead {
            block_id: id,
            has_image: img.is_some(),
            image_len: img.unwrap_or(99),
            relfilenode: 16384,
            database: 5,
            block: id as u32,
            has_data: true,
            ..Default::default()
        };
        b.start_record(h1, b"main");
        for (h, data) in [
            (blk(0, Some(8000)), &b"d0"[..]),
            (blk(1, None), &b""[..]),
            (blk(2, Some(100)), &b"d2"[..]),
        ] {
            b.add_block(h, data, 0, |_| unreachable!("no page asked for"));
        }
        b.finish_record();
        let h2 = RecordHead {
            lsn: 152,
            end_lsn: 176,
            rmid: 1,
            total_len: 24,
            ..Default::default()
        };
        b.start_record(h2, b"");
        b.finish_record();
        assert_eq!(b.len(), 2);
        let batch = b.finish();
        assert_eq!(batch.end_lsn, 176);
        let r = batch.records();
        // SAFETY: the batch is alive.
        let r0 = unsafe { Record::from_raw(&r[0]) };
        assert_eq!(r0.main_data(), b"main");
        assert_eq!(r0.fpi_len(), 8100, "images of blocks 0 and 2");
        assert_eq!(r0.blocks().len(), 3);
        assert_eq!(r0.block_data(&r0.blocks()[0]), b"d0");
        assert_eq!(r0.block_data(&r0.blocks()[1]), b"");
        assert_eq!(r0.blocks()[1].image_len, 0, "no image, no image length");
        assert_eq!(r0.block_data(&r0.blocks()[2]), b"d2");
        // SAFETY: as above.
        let r1 = unsafe { Record::from_raw(&r[1]) };
        assert!(r1.main_data().is_empty() && r1.blocks().is_empty());
        assert_eq!((r1.lsn(), r1.end_lsn(), r1.rmid()), (152, 176, 1));
    }

    #[test]
    fn streamed_records_restore_pages_in_place_and_a_broken_one_is_dropped() {
        let mut b = BatchBuilder::with_capacity(4, 1 << 16);
        let head = |lsn| RecordHead {
            lsn,
            end_lsn: lsn + 40,
            total_len: 40,
            ..Default::default()
        };
        let blk = BlockHead {
            has_image: true,
            image_len: 30,
            ..Default::default()
        };
        b.start_record(head(100), b"m1");
        b.add_block(blk, b"x", 8, |page| {
            page.copy_from_slice(b"PAGE0001");
            true
        });
        // A page that cannot be restored leaves the block without one.
        b.add_block(blk, b"", 8, |_| false);
        b.finish_record();
        // A record whose reading fails midway is not delivered.
        b.start_record(head(140), b"broken");
        b.add_block(blk, b"yy", 8, |_| true);
        assert_eq!(b.len(), 1);
        b.discard_open_record();
        b.start_record(head(180), b"m3");
        b.finish_record();
        let batch = b.finish();
        let r = batch.records();
        assert_eq!(r.len(), 2);
        // SAFETY: the batch is alive.
        let (r0, r1) = unsafe { (Record::from_raw(&r[0]), Record::from_raw(&r[1])) };
        assert_eq!(r0.block_image(0), Some(&b"PAGE0001"[..]));
        assert_eq!(r0.block_image(1), None);
        assert_eq!(r0.fpi_len(), 60);
        assert_eq!(r0.block_data(&r0.blocks()[0]), b"x");
        assert_eq!((r1.lsn(), r1.main_data()), (180, &b"m3"[..]));
        assert_eq!(batch.end_lsn, 220);
    }

    #[test]
    fn a_dropped_batch_gives_its_storage_to_the_next_one_which_holds_only_its_own_records() {
        let build = |lsn: u64, main: &[u8], data: &[u8]| {
            let mut b = BatchBuilder::with_capacity(4, 64);
            let blk = BlockHead {
                has_data: true,
                block: lsn as u32,
                ..Default::default()
            };
            b.start_record(
                RecordHead {
                    lsn,
                    end_lsn: lsn + 8,
                    ..Default::default()
                },
                main,
            );
            b.add_block(blk, data, 0, |_| unreachable!("no page asked for"));
            b.finish_record();
            b.finish()
        };
        let first = build(100, &[7; 5000], &[8; 3000]);
        drop(first);
        // Kept for a later batch (other tests may take it first: then this one's is
        // fresh, and what follows holds all the same).
        let kept = KEPT.take();
        if let Some(st) = &kept {
            assert!(st.data.is_empty() && st.records.is_empty() && st.abi_records.is_empty());
            assert!(st.blocks.is_empty() && st.abi_blocks.is_empty() && st.images.is_empty());
        }
        if let Some(st) = kept {
            KEPT.give(st);
        }
        let second = build(200, b"m", b"d");
        let r = second.records();
        assert_eq!(r.len(), 1);
        // SAFETY: the batch is alive.
        let r0 = unsafe { Record::from_raw(&r[0]) };
        assert_eq!((r0.lsn(), r0.main_data()), (200, &b"m"[..]));
        assert_eq!(r0.blocks().len(), 1);
        assert_eq!(
            (r0.blocks()[0].block, r0.block_data(&r0.blocks()[0])),
            (200, &b"d"[..])
        );
        assert_eq!(second.end_lsn, 208);
    }

    #[test]
    fn passed_records_are_counted_not_copied() {
        // Only Heap (rmid 10) is wanted.
        let mut b = BatchBuilder::new().wanting([1 << 10, 0, 0, 0]);
        assert!(b.wants(10) && !b.wants(0) && !b.wants(1));
        let head = |lsn: u64, rmid: u8, info: u8, total_len: u32| RecordHead {
            lsn,
            end_lsn: lsn + total_len as u64,
            rmid,
            info,
            total_len,
            ..Default::default()
        };
        b.start_record(head(0x100, 10, 0, 60), b"heap");
        b.finish_record();
        // An online checkpoint (XLOG, info 0x10) and a commit, passed.
        b.pass_record(&head(0x140, 0, 0x10, 114));
        b.pass_record(&head(0x1b8, 1, 0, 34));
        assert_eq!(b.len(), 3);
        assert_eq!(b.data_bytes(), 4, "only the heap record's main data");
        let batch = b.finish();
        assert_eq!(batch.records().len(), 1);
        assert_eq!(batch.records()[0].lsn, 0x100);
        assert_eq!((batch.read_records, batch.read_bytes), (3, 60 + 114 + 34));
        assert_eq!(batch.end_lsn, 0x1b8 + 34);
        assert!(batch.has_checkpoint(), "the passed checkpoint");
        // By default every record is copied.
        assert!((0..=255).all(|r| BatchBuilder::new().wants(r)));
    }
}

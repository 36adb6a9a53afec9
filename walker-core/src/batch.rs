//! Batches of decoded records: built on the worker's main thread from the server's
//! reader, then shared read-only by every dispatch thread.

use walker_abi::{WalkerBlockRef, WalkerRecord};

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

/// Accumulates records into a batch.
#[derive(Default)]
pub struct BatchBuilder {
    records: Vec<Pending>,
    /// Each block with the (offset, length) of its data and of its page image in `data`.
    blocks: Vec<(BlockHead, Span, Span)>,
    data: Vec<u8>,
    page_size: u32,
    /// A record was started and not finished yet.
    open: bool,
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `records` records and `bytes` bytes of data, so
    /// that filling it moves nothing.
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        BatchBuilder {
            records: Vec::with_capacity(records),
            blocks: Vec::with_capacity(records.saturating_mul(2)),
            data: Vec::with_capacity(bytes),
            page_size: 0,
            open: false,
        }
    }

    /// Complete records so far.
    pub fn len(&self) -> usize {
        self.records.len() - usize::from(self.open)
    }

    /// No complete record yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of copied data so far.
    pub fn data_bytes(&self) -> usize {
        self.data.len()
    }

    fn copy(&mut self, bytes: &[u8]) -> (usize, usize) {
        let off = self.data.len();
        self.data.extend_from_slice(bytes);
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
        self.records.push(Pending {
            head,
            fpi_len: 0,
            main,
            blocks: (self.blocks.len(), 0),
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
        let mut image = (self.data.len(), 0);
        if page_size > 0 {
            let off = self.data.len();
            self.data.resize(off + page_size, 0);
            if restore(&mut self.data[off..]) {
                image = (off, page_size);
                self.page_size = page_size as u32;
            } else {
                self.data.truncate(off);
            }
        }
        self.blocks.push((b, d, image));
        let r = self
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
        if let Some(r) = self.records.pop() {
            self.blocks.truncate(r.blocks.0);
            self.data.truncate(r.main.0);
        }
    }

    /// Freezes the batch: builds the ABI structs pointing into its own storage. A
    /// record left unfinished is not part of it.
    pub fn finish(mut self) -> Batch {
        self.discard_open_record();
        let data = self.data;
        let base = data.as_ptr();
        let ptr_at = |(off, len): (usize, usize)| {
            if len == 0 {
                std::ptr::null()
            } else {
                base.wrapping_add(off)
            }
        };
        let blocks: Vec<WalkerBlockRef> = self
            .blocks
            .iter()
            .map(|(b, d, _)| WalkerBlockRef {
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
            })
            .collect();
        let bbase = blocks.as_ptr();
        let images: Vec<*const u8> = self.blocks.iter().map(|(_, _, i)| ptr_at(*i)).collect();
        let ibase = images.as_ptr();
        let records: Vec<WalkerRecord> = self
            .records
            .iter()
            .map(|r| WalkerRecord {
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
                page_size: self.page_size,
            })
            .collect();
        let end_lsn = self.records.last().map(|r| r.head.end_lsn).unwrap_or(0);
        Batch {
            records,
            _blocks: blocks,
            _images: images,
            _data: data,
            end_lsn,
        }
    }
}

/// An immutable batch of records in WAL order.
pub struct Batch {
    records: Vec<WalkerRecord>,
    // The storage the records point into; never mutated after `finish`.
    _blocks: Vec<WalkerBlockRef>,
    _images: Vec<*const u8>,
    _data: Vec<u8>,
    /// End LSN of the last record (0 for an empty batch).
    pub end_lsn: u64,
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
        &self.records
    }

    /// True when the batch holds a checkpoint record.
    pub fn has_checkpoint(&self) -> bool {
        self.records.iter().any(is_checkpoint)
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
}

//! One record's bytes: the fixed header (`XLogRecord`), its CRC-32C, then the block
//! reference headers, the special ids (main data, origin, top-level xid) and where
//! each piece of data lies. Offsets index the record's own bytes.

use crate::error::{BlockFault, Compression, Fault, ImageFault};
use crate::format::*;
use std::ops::Range;

/// The fixed record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `xl_tot_len`.
    pub total_len: u32,
    /// `xl_xid`.
    pub xid: u32,
    /// `xl_prev`.
    pub prev: u64,
    /// `xl_info`.
    pub info: u8,
    /// `xl_rmid`.
    pub rmid: u8,
    /// `xl_crc`.
    pub crc: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Header {
    /// The header in the first [`RECORD_HEADER`] bytes of `b` (which has them).
    pub fn parse(b: &[u8]) -> Header {
        Header {
            total_len: u32_at(b, 0),
            xid: u32_at(b, 4),
            prev: u64_at(b, 8),
            info: b[16],
            rmid: b[17],
            crc: u32_at(b, 20),
        }
    }
}

/// The CRC-32C PostgreSQL stores in `xl_crc`: over the bytes after the header, then
/// over the header up to the CRC field.
pub fn record_crc(record: &[u8]) -> u32 {
    let body = crate::crc::append(0, &record[RECORD_HEADER..]);
    crate::crc::append(body, &record[..RECORD_CRC_OFFSET])
}

/// Checks a whole record's header and CRC (`record` is `xl_tot_len` bytes long).
/// `prev`: the start of the record before it when read in sequence (`xl_prev` must
/// equal it), else `start` (`xl_prev` must lie before it).
pub fn check(record: &[u8], start: u64, prev: Option<u64>) -> Result<Header, Fault> {
    let h = Header::parse(record);
    if !rmgr_is_valid(h.rmid) {
        return Err(Fault::BadRmgr { rmid: h.rmid });
    }
    match prev {
        Some(p) if h.prev != p => {
            return Err(Fault::BadPrevLink {
                found: h.prev,
                expected: p,
            })
        }
        None if h.prev >= start => {
            return Err(Fault::BadPrevLink {
                found: h.prev,
                expected: start,
            })
        }
        _ => {}
    }
    let computed = record_crc(record);
    if computed != h.crc {
        return Err(Fault::BadCrc {
            stored: h.crc,
            computed,
        });
    }
    Ok(h)
}

/// A full-page image's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Stored bytes (in the record).
    pub bytes: Range<usize>,
    /// Where the page's hole starts.
    pub hole_offset: u16,
    /// Its length.
    pub hole_length: u16,
    /// How it is compressed.
    pub compression: Option<Compression>,
    /// `BKPIMAGE_APPLY`.
    pub apply: bool,
}

/// One block reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Block id (0 to 32).
    pub id: u8,
    /// Fork number.
    pub fork: u8,
    /// Tablespace, database and relation file number.
    pub rel: [u32; 3],
    /// Block number.
    pub blkno: u32,
    /// Its per-block data (empty range: none).
    pub data: Range<usize>,
    /// `BKPBLOCK_HAS_DATA`.
    pub has_data: bool,
    /// Its image, if any.
    pub image: Option<Image>,
}

/// A record's pieces.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Main data.
    pub main: Range<usize>,
    /// Top-level transaction (0: none).
    pub toplevel_xid: u32,
    /// Replication origin (0: none).
    pub origin: u16,
    /// Block references, by increasing id.
    pub blocks: Vec<Block>,
    /// Scratch: each block's image and data lengths while decoding.
    lens: Vec<(u32, u32)>,
}

impl Layout {
    /// The stored bytes of the record's page images (as a batch sums its blocks'
    /// `image_len`).
    pub fn image_bytes(&self) -> u32 {
        self.blocks
            .iter()
            .filter_map(|b| b.image.as_ref())
            .fold(0u32, |n, i| n.saturating_add(i.bytes.len() as u32))
    }
}

/// Reads little-endian fields of the headers, failing at the record's end.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, block_id: u8) -> Result<&[u8], Fault> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let Some(end) = end else {
            return Err(Fault::BadBlock {
                block_id,
                problem: BlockFault::HeadersTruncated,
            });
        };
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, id: u8) -> Result<u8, Fault> {
        Ok(self.take(1, id)?[0])
    }
    fn u16(&mut self, id: u8) -> Result<u16, Fault> {
        Ok(u16_at(self.take(2, id)?, 0))
    }
    fn u32(&mut self, id: u8) -> Result<u32, Fault> {
        Ok(u32_at(self.take(4, id)?, 0))
    }
}

fn compression(bimg_info: u8) -> Result<Option<Compression>, ImageFault> {
    let bits = bimg_info & !(BKPIMAGE_HAS_HOLE | BKPIMAGE_APPLY);
    match bits {
        0 => Ok(None),
        BKPIMAGE_COMPRESS_PGLZ => Ok(Some(Compression::Pglz)),
        BKPIMAGE_COMPRESS_LZ4 => Ok(Some(Compression::Lz4)),
        BKPIMAGE_COMPRESS_ZSTD => Ok(Some(Compression::Zstd)),
        other => Err(ImageFault::UnknownCompression(other)),
    }
}

/// Decodes the headers after the fixed one (`DecodeXLogRecord`'s checks) into
/// `out`, for pages of `block_size` bytes.
pub fn decode(record: &[u8], block_size: usize, out: &mut Layout) -> Result<(), Fault> {
    out.blocks.clear();
    out.main = 0..0;
    out.toplevel_xid = 0;
    out.origin = 0;
    let total = record.len();
    let mut c = Cursor {
        b: record,
        at: RECORD_HEADER,
    };
    let mut data_total = 0u64;
    let mut main_len = 0u64;
    let mut last_rel: Option<[u32; 3]> = None;
    // (image length, data length) of each block, to place the data after.
    let mut lens = std::mem::take(&mut out.lens);
    lens.clear();
    while (total - c.at) as u64 > data_total {
        let id = c.u8(0)?;
        match id {
            XLR_BLOCK_ID_DATA_SHORT => {
                main_len = u64::from(c.u8(id)?);
                data_total += main_len;
                break;
            }
            XLR_BLOCK_ID_DATA_LONG => {
                main_len = u64::from(c.u32(id)?);
                data_total += main_len;
                break;
            }
            XLR_BLOCK_ID_ORIGIN => out.origin = c.u16(id)?,
            XLR_BLOCK_ID_TOPLEVEL_XID => out.toplevel_xid = c.u32(id)?,
            id if id <= XLR_MAX_BLOCK_ID => {
                let bad = |problem| Fault::BadBlock {
                    block_id: id,
                    problem,
                };
                if out.blocks.last().is_some_and(|b| b.id >= id) {
                    return Err(bad(BlockFault::OutOfOrder));
                }
                let fork_flags = c.u8(id)?;
                let data_len = c.u16(id)?;
                let has_data = fork_flags & BKPBLOCK_HAS_DATA != 0;
                if has_data && data_len == 0 {
                    return Err(bad(BlockFault::DataFlagWithoutData));
                }
                if !has_data && data_len != 0 {
                    return Err(bad(BlockFault::DataWithoutFlag));
                }
                data_total += u64::from(data_len);
                let mut image = None;
                let mut image_len = 0u32;
                if fork_flags & BKPBLOCK_HAS_IMAGE != 0 {
                    let bimg_len = c.u16(id)?;
                    let hole_offset = c.u16(id)?;
                    let info = c.u8(id)?;
                    let comp = compression(info).map_err(|problem| Fault::BadImage {
                        block_id: id,
                        problem,
                    })?;
                    let has_hole = info & BKPIMAGE_HAS_HOLE != 0;
                    let hole_length = match (comp, has_hole) {
                        (Some(_), true) => c.u16(id)?,
                        (Some(_), false) => 0,
                        (None, _) => (block_size as u64).saturating_sub(u64::from(bimg_len)) as u16,
                    };
                    let full = usize::from(bimg_len) == block_size;
                    if has_hole && (hole_offset == 0 || hole_length == 0 || full) {
                        return Err(bad(BlockFault::BadHole));
                    }
                    if !has_hole && (hole_offset != 0 || hole_length != 0) {
                        return Err(bad(BlockFault::HoleWithoutFlag));
                    }
                    if comp.is_some() && full {
                        return Err(bad(BlockFault::CompressedFullSize));
                    }
                    if !has_hole && comp.is_none() && !full {
                        return Err(bad(BlockFault::UncompressedWrongSize));
                    }
                    if usize::from(hole_offset) + usize::from(hole_length) > block_size {
                        return Err(Fault::BadImage {
                            block_id: id,
                            problem: ImageFault::HoleOutsidePage,
                        });
                    }
                    data_total += u64::from(bimg_len);
                    image_len = u32::from(bimg_len);
                    image = Some(Image {
                        bytes: 0..0,
                        hole_offset,
                        hole_length,
                        compression: comp,
                        apply: info & BKPIMAGE_APPLY != 0,
                    });
                }
                let rel = if fork_flags & BKPBLOCK_SAME_REL == 0 {
                    let r = [c.u32(id)?, c.u32(id)?, c.u32(id)?];
                    last_rel = Some(r);
                    r
                } else {
                    last_rel.ok_or(bad(BlockFault::SameRelWithoutPrevious))?
                };
                let blkno = c.u32(id)?;
                lens.push((image_len, u32::from(data_len)));
                out.blocks.push(Block {
                    id,
                    fork: fork_flags & BKPBLOCK_FORK_MASK,
                    rel,
                    blkno,
                    data: 0..0,
                    has_data,
                    image,
                });
            }
            _ => {
                return Err(Fault::BadBlock {
                    block_id: id,
                    problem: BlockFault::InvalidId,
                })
            }
        }
    }
    let headers = c.at as u64;
    if headers + data_total != total as u64 {
        return Err(Fault::LengthMismatch {
            total: total as u32,
            headers,
            data: data_total,
        });
    }
    // The data follows the headers: per block its image then its data, then main.
    let mut at = c.at;
    for (b, &(img, data)) in out.blocks.iter_mut().zip(&lens) {
        if let Some(i) = b.image.as_mut() {
            i.bytes = at..at + img as usize;
            at += img as usize;
        }
        b.data = at..at + data as usize;
        at += data as usize;
    }
    out.main = at..at + main_len as usize;
    out.lens = lens;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of `rmid`/`info` with `body` after the header, its CRC set.
    pub(crate) fn record(rmid: u8, info: u8, prev: u64, body: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; RECORD_HEADER];
        r.extend_from_slice(body);
        let len = r.len() as u32;
        r[0..4].copy_from_slice(&len.to_le_bytes());
        r[4..8].copy_from_slice(&7u32.to_le_bytes());
        r[8..16].copy_from_slice(&prev.to_le_bytes());
        r[16] = info;
        r[17] = rmid;
        let crc = record_crc(&r);
        r[20..24].copy_from_slice(&crc.to_le_bytes());
        r
    }

    #[test]
    fn crc_is_crc32c_over_body_then_header() {
        // CRC-32C of "123456789" is 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let r = record(10, 0, 0x100, &[255, 3, b'a', b'b', b'c']);
        assert!(check(&r, 0x200, Some(0x100)).is_ok());
        assert!(matches!(
            check(&r, 0x200, Some(0x108)),
            Err(Fault::BadPrevLink { .. })
        ));
        let mut bad = r.clone();
        bad[26] ^= 1;
        assert!(matches!(
            check(&bad, 0x200, None),
            Err(Fault::BadCrc { .. })
        ));
        let mut rm = r;
        rm[17] = 40;
        assert!(matches!(
            check(&rm, 0x200, None),
            Err(Fault::BadRmgr { rmid: 40 })
        ));
    }

    #[test]
    fn blocks_images_and_main_data_by_hand() {
        let mut body = Vec::new();
        // Block 0: image with hole (uncompressed: 8192 - 100 stored), data of 2 bytes.
        body.extend_from_slice(&[0, BKPBLOCK_HAS_IMAGE | BKPBLOCK_HAS_DATA, 2, 0]);
        body.extend_from_slice(&8092u16.to_le_bytes());
        body.extend_from_slice(&40u16.to_le_bytes());
        body.push(BKPIMAGE_HAS_HOLE | BKPIMAGE_APPLY);
        for v in [1663u32, 5, 16384, 9] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        // Block 1: same relation, fork 2, no data.
        body.extend_from_slice(&[1, BKPBLOCK_SAME_REL | 2, 0, 0]);
        body.extend_from_slice(&3u32.to_le_bytes());
        // Top-level xid, then 3 bytes of main data.
        body.push(XLR_BLOCK_ID_TOPLEVEL_XID);
        body.extend_from_slice(&900u32.to_le_bytes());
        body.extend_from_slice(&[XLR_BLOCK_ID_DATA_SHORT, 3]);
        body.extend(std::iter::repeat_n(0xAA, 8092));
        body.extend_from_slice(b"dd");
        body.extend_from_slice(b"mmm");
        let r = record(10, 0, 0, &body);
        let mut l = Layout::default();
        decode(&r, 8192, &mut l).unwrap();
        assert_eq!(l.toplevel_xid, 900);
        assert_eq!(&r[l.main.clone()], b"mmm");
        assert_eq!(l.blocks.len(), 2);
        let b0 = &l.blocks[0];
        assert_eq!((b0.rel, b0.blkno, b0.fork), ([1663, 5, 16384], 9, 0));
        assert_eq!(&r[b0.data.clone()], b"dd");
        let i = b0.image.as_ref().unwrap();
        assert_eq!(
            (i.hole_offset, i.hole_length, i.apply, i.bytes.len()),
            (40, 100, true, 8092)
        );
        let b1 = &l.blocks[1];
        assert_eq!(
            (b1.rel, b1.blkno, b1.fork, b1.has_data),
            ([1663, 5, 16384], 3, 2, false)
        );
        // One byte less of main data than announced: the lengths disagree.
        let short = record(10, 0, 0, &body[..body.len() - 1]);
        assert!(matches!(
            decode(&short, 8192, &mut l),
            Err(Fault::LengthMismatch { .. })
        ));
        // SAME_REL on the first block.
        let lone = record(10, 0, 0, &[0, BKPBLOCK_SAME_REL, 0, 0, 1, 0, 0, 0]);
        assert!(matches!(
            decode(&lone, 8192, &mut l),
            Err(Fault::BadBlock {
                problem: BlockFault::SameRelWithoutPrevious,
                ..
            })
        ));
        // An id between 33 and 251.
        let odd = record(10, 0, 0, &[77, 0, 0, 0]);
        assert!(matches!(
            decode(&odd, 8192, &mut l),
            Err(Fault::BadBlock {
                block_id: 77,
                problem: BlockFault::InvalidId
            })
        ));
    }
}

//! Full-page images restored to whole pages (`RestoreBlockImage`): decompressed
//! (pglz, LZ4, zstd) when compressed, the hole filled with zeros.

use crate::error::{Compression, ImageFault};
use crate::pglz;
use crate::record::Image;

/// Writes the page `img` (stored in `stored`) restores into `page`, whose length is
/// the data page size. `scratch` holds a decompressed image between calls.
pub fn restore(
    stored: &[u8],
    img: &Image,
    page: &mut [u8],
    scratch: &mut Vec<u8>,
) -> Result<(), ImageFault> {
    let hole_off = usize::from(img.hole_offset);
    let hole_len = usize::from(img.hole_length);
    let want = page
        .len()
        .checked_sub(hole_len)
        .filter(|w| hole_off <= *w)
        .ok_or(ImageFault::HoleOutsidePage)?;
    let bytes: &[u8] = match img.compression {
        None => stored,
        Some(method) => {
            scratch.clear();
            scratch.resize(want, 0);
            let got = match method {
                Compression::Pglz => pglz::decompress(stored, scratch)
                    .map(|()| want)
                    .map_err(|_| ImageFault::Decompress(method))?,
                Compression::Lz4 => lz4_flex::block::decompress_into(stored, scratch)
                    .map_err(|_| ImageFault::Decompress(method))?,
                Compression::Zstd => zstd::bulk::decompress_to_buffer(stored, &mut scratch[..])
                    .map_err(|_| ImageFault::Decompress(method))?,
            };
            if got != want {
                return Err(ImageFault::WrongLength { method, got, want });
            }
            scratch
        }
    };
    if bytes.len() != want {
        return Err(ImageFault::WrongLength {
            method: img.compression.unwrap_or(Compression::Pglz),
            got: bytes.len(),
            want,
        });
    }
    page[..hole_off].copy_from_slice(&bytes[..hole_off]);
    page[hole_off..hole_off + hole_len].fill(0);
    page[hole_off + hole_len..].copy_from_slice(&bytes[hole_off..]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(compression: Option<Compression>, hole_offset: u16, hole_length: u16) -> Image {
        Image {
            bytes: 0..0,
            hole_offset,
            hole_length,
            compression,
            apply: true,
        }
    }

    /// A page with a header, a hole of zeros at 100..8000 and tuples after it.
    fn page() -> Vec<u8> {
        let mut p: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8 + 1).collect();
        p[100..8000].fill(0);
        p
    }

    fn without_hole(p: &[u8]) -> Vec<u8> {
        [&p[..100], &p[8000..]].concat()
    }

    #[test]
    fn hole_and_every_compression_restore_the_page() {
        let p = page();
        let stored = without_hole(&p);
        let mut scratch = Vec::new();
        let mut out = vec![0xEEu8; 8192];
        restore(&stored, &image(None, 100, 7900), &mut out, &mut scratch).unwrap();
        assert_eq!(out, p, "hole");
        restore(&p, &image(None, 0, 0), &mut out, &mut scratch).unwrap();
        assert_eq!(out, p, "whole page");

        let lz4 = lz4_flex::block::compress(&stored);
        let mut out = vec![0xEEu8; 8192];
        restore(
            &lz4,
            &image(Some(Compression::Lz4), 100, 7900),
            &mut out,
            &mut scratch,
        )
        .unwrap();
        assert_eq!(out, p, "lz4");

        let zstd = zstd::bulk::compress(&stored, 3).unwrap();
        let mut out = vec![0xEEu8; 8192];
        restore(
            &zstd,
            &image(Some(Compression::Zstd), 100, 7900),
            &mut out,
            &mut scratch,
        )
        .unwrap();
        assert_eq!(out, p, "zstd");

        // pglz by hand: the 192 bytes as literals (a control byte of 0 per 8).
        let mut pglz = Vec::new();
        for chunk in stored.chunks(8) {
            pglz.push(0);
            pglz.extend_from_slice(chunk);
        }
        let mut out = vec![0xEEu8; 8192];
        restore(
            &pglz,
            &image(Some(Compression::Pglz), 100, 7900),
            &mut out,
            &mut scratch,
        )
        .unwrap();
        assert_eq!(out, p, "pglz");
    }

    #[test]
    fn damaged_images_are_errors() {
        let p = page();
        let stored = without_hole(&p);
        let mut scratch = Vec::new();
        let mut out = vec![0u8; 8192];
        let mut lz4 = lz4_flex::block::compress(&stored);
        lz4.truncate(lz4.len() / 2);
        assert_eq!(
            restore(
                &lz4,
                &image(Some(Compression::Lz4), 100, 7900),
                &mut out,
                &mut scratch
            ),
            Err(ImageFault::Decompress(Compression::Lz4))
        );
        let zstd = zstd::bulk::compress(&stored, 3).unwrap();
        assert!(restore(
            &zstd[..zstd.len() - 3],
            &image(Some(Compression::Zstd), 100, 7900),
            &mut out,
            &mut scratch
        )
        .is_err());
        // Decompresses fine but to a length that does not fit the hole.
        let z = zstd::bulk::compress(&stored, 3).unwrap();
        assert!(restore(
            &z,
            &image(Some(Compression::Zstd), 100, 7000),
            &mut out,
            &mut scratch
        )
        .is_err());
        assert_eq!(
            restore(&stored, &image(None, 8000, 7900), &mut out, &mut scratch),
            Err(ImageFault::HoleOutsidePage)
        );
    }
}

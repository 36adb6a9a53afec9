//! The reader over WAL laid out here by hand from the format (1 MiB segments):
//! records across page and segment boundaries, a segment switch, seeking into the
//! middle of a record, and seeded bit flips and truncations that must give errors,
//! never panics, in bounded time. No server needed.

use super::*;
use crate::record::record_crc;
use walker_abi::Record;

const SEG: u64 = 1 << 20;
const PAGE: u64 = WAL_PAGE_SIZE as u64;
const SYSID: u64 = 0x7000_0000_1234_5678;

/// Segments being written, as PostgreSQL lays records out.
struct Writer {
    segs: Vec<Vec<u8>>,
    /// Insert position.
    pos: u64,
    prev: u64,
    major: Major,
    /// The first segment's start.
    base: u64,
}

impl Writer {
    fn new(first_seg: u64, major: Major) -> Writer {
        Writer {
            segs: Vec::new(),
            pos: first_seg * SEG,
            prev: 0,
            major,
            base: first_seg * SEG,
        }
    }

    fn byte(&mut self, at: u64) -> &mut u8 {
        let (segno, off) = ((at / SEG) as usize, (at % SEG) as usize);
        let first = self.first_seg();
        let i = segno - first;
        while self.segs.len() <= i {
            self.segs.push(vec![0; SEG as usize]);
        }
        &mut self.segs[i][off]
    }

    fn first_seg(&self) -> usize {
        (self.base / SEG) as usize
    }

    fn put(&mut self, at: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            *self.byte(at + i as u64) = *b;
        }
    }

    /// Writes a page header at `page` with `rem` bytes of a record continuing.
    fn header(&mut self, page: u64, rem: u32) -> u64 {
        let long = page.is_multiple_of(SEG);
        let mut info = if long { XLP_LONG_HEADER } else { 0 };
        if rem > 0 {
            info |= XLP_FIRST_IS_CONTRECORD;
        }
        let mut h = Vec::new();
        h.extend_from_slice(&self.major.page_magic().to_le_bytes());
        h.extend_from_slice(&info.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&page.to_le_bytes());
        h.extend_from_slice(&rem.to_le_bytes());
        h.extend_from_slice(&[0; 4]);
        if long {
            h.extend_from_slice(&SYSID.to_le_bytes());
            h.extend_from_slice(&(SEG as u32).to_le_bytes());
            h.extend_from_slice(&(PAGE as u32).to_le_bytes());
        }
        self.put(page, &h);
        h.len() as u64
    }

    /// Appends a record of `rmid`/`info` with `body` (block headers and data);
    /// returns its start.
    fn record(&mut self, rmid: u8, info: u8, body: &[u8]) -> u64 {
        let mut r = vec![0u8; RECORD_HEADER];
        r.extend_from_slice(body);
        let total = r.len() as u32;
        r[0..4].copy_from_slice(&total.to_le_bytes());
        r[4..8].copy_from_slice(&42u32.to_le_bytes());
        r[8..16].copy_from_slice(&self.prev.to_le_bytes());
        r[16] = info;
        r[17] = rmid;
        let crc = record_crc(&r);
        r[20..24].copy_from_slice(&crc.to_le_bytes());
        if self.pos.is_multiple_of(PAGE) {
            self.pos += self.header(self.pos, 0);
        }
        let start = self.pos;
        let mut written = 0usize;
        while written < r.len() {
            if self.pos.is_multiple_of(PAGE) {
                self.pos += self.header(self.pos, (r.len() - written) as u32);
            }
            let room = (PAGE - self.pos % PAGE) as usize;
            let n = room.min(r.len() - written);
            self.put(self.pos, &r[written..written + n]);
            self.pos += n as u64;
            written += n;
        }
        self.prev = start;
        self.pos = maxalign(self.pos);
        if rmid == RM_XLOG_ID && info == XLOG_SWITCH {
            self.pos = self.pos.div_ceil(SEG) * SEG;
        }
        start
    }

    fn save(&self, dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        for (i, s) in self.segs.iter().enumerate() {
            let segno = (self.first_seg() + i) as u64;
            let name = crate::segment::segment_file_name(1, segno, SEG as u32);
            std::fs::write(dir.join(name), s).unwrap();
        }
    }
}

/// Main data only: `XLR_BLOCK_ID_DATA_LONG` and `n` bytes of a pattern seeded by `n`.
fn main_only(n: usize) -> Vec<u8> {
    let mut b = vec![XLR_BLOCK_ID_DATA_LONG];
    b.extend_from_slice(&(n as u32).to_le_bytes());
    b.extend((0..n).map(|i| (i * 31 + n) as u8));
    b
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("walfile-{name}-{}", std::process::id()))
}

/// Lengths that cross pages, fill a page exactly, and cross segments (1.5 MiB).
const SIZES: [usize; 12] = [
    10, 8000, 8139, 100, 20000, 0, 3, 1_500_000, 77, 8168, 16384, 5,
];

fn layout() -> (Writer, Vec<(u64, usize)>, u64) {
    let mut w = Writer::new(3, Major::Pg16);
    let mut recs = Vec::new();
    for n in SIZES {
        let at = w.record(21, 0, &main_only(n));
        recs.push((at, n));
    }
    // A segment switch: the next record starts the next segment.
    let sw = w.record(RM_XLOG_ID, XLOG_SWITCH, &[]);
    recs.push((sw, usize::MAX));
    let after = w.record(21, 0, &main_only(9));
    recs.push((after, 9));
    let end = w.pos;
    (w, recs, end)
}

fn read_all(dir: &Path, from: u64, end: u64) -> Result<Vec<(RecordPos, Vec<u8>)>, WalError> {
    let mut r = WalReader::open(dir, Options::default())?;
    r.set_end(Some(end));
    r.seek(from)?;
    let mut b = BatchBuilder::new();
    let mut pos = Vec::new();
    while let Some(p) = r.read_into(&mut b)? {
        pos.push(p);
    }
    let batch = b.finish();
    Ok(pos
        .into_iter()
        .zip(batch.records())
        .map(|(p, raw)| {
            // SAFETY: `batch` is alive.
            let rec = unsafe { Record::from_raw(raw) };
            (p, rec.main_data().to_vec())
        })
        .collect())
}

#[test]
fn records_across_pages_segments_and_a_switch_read_back() {
    let (w, recs, end) = layout();
    let dir = tmp("synth");
    w.save(&dir);
    assert!(w.segs.len() >= 3, "the WAL spans segments");
    let got = read_all(&dir, recs[0].0, end).unwrap();
    assert_eq!(got.len(), recs.len());
    for ((p, main), (at, n)) in got.iter().zip(&recs) {
        assert_eq!(p.lsn, *at);
        if *n != usize::MAX {
            assert_eq!(main, &main_only(*n)[5..], "record at {}", fmt_lsn(*at));
        }
    }
    let sw = recs.len() - 2;
    assert_eq!(
        got[sw].0.end_lsn % SEG,
        0,
        "a switch ends at a segment start"
    );
    assert_eq!(
        got[sw + 1].0.lsn,
        got[sw].0.end_lsn + LONG_PAGE_HEADER as u64
    );
    // Seeking into the middle of the 1.5 MB record finds the record after it.
    let big = SIZES.iter().position(|n| *n == 1_500_000).unwrap();
    let mut r = WalReader::open(&dir, Options::default()).unwrap();
    assert_eq!(r.seek(recs[big].0 + 700_000).unwrap(), recs[big + 1].0);
    assert_eq!(r.seek(recs[0].0).unwrap(), recs[0].0);
    assert_eq!(r.major(), Some(Major::Pg16));
    assert_eq!(r.system_identifier(), Some(SYSID));
    // Without an end: the zeroed rest of the last segment reads as the end of WAL.
    let mut r = WalReader::open(&dir, Options::default()).unwrap();
    r.seek(recs[0].0).unwrap();
    let mut b = BatchBuilder::new();
    let e = loop {
        match r.read_into(&mut b) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the last segment is zeroed after the records"),
            Err(e) => break e,
        }
    };
    assert!(e.fault.is_end_of_wal(), "{e}");
    assert_eq!(b.len(), recs.len());
    // An end beyond the files is an error naming it.
    let last = dir.join(crate::segment::segment_file_name(
        1,
        (end - 1) / SEG,
        SEG as u32,
    ));
    std::fs::remove_file(&last).unwrap();
    let e = read_all(&dir, recs[0].0, end).unwrap_err();
    assert!(matches!(e.fault, Fault::EndedBefore { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn another_major_and_a_missing_segment_are_named() {
    let (mut w, recs, end) = layout();
    let dir = tmp("mixed");
    // The second segment's first page from another major's cluster.
    w.major = Major::Pg18;
    w.header(4 * SEG, 0);
    w.save(&dir);
    let e = read_all(&dir, recs[0].0, end).unwrap_err();
    assert!(
        matches!(
            e.fault,
            Fault::MixedMajors {
                first: Major::Pg16,
                this: Major::Pg18
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("000000010000000000000004"), "{e}");
    // A gap: segment 4 missing while 5 is there.
    std::fs::remove_file(dir.join("000000010000000000000004")).unwrap();
    let e = read_all(&dir, recs[0].0, end).unwrap_err();
    assert!(matches!(e.fault, Fault::MissingSegment { .. }), "{e}");
    assert!(e.to_string().contains("000000010000000000000004"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seeded_flips_and_truncations_are_errors_never_panics() {
    let (w, recs, end) = layout();
    let dir = tmp("flips");
    w.save(&dir);
    let clean = read_all(&dir, recs[0].0, end).unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let start = recs[0].0;
    // Past the switch record nothing is read until the next segment.
    let switch = recs[recs.len() - 2].0;
    for round in 0..300 {
        let mut segs = w.segs.clone();
        // Flip a bit in the written part, or cut a segment short.
        let cut = round % 10 == 9;
        let at = start + rnd(if cut { switch - start } else { end - start });
        let (i, off) = ((at / SEG - 3) as usize, (at % SEG) as usize);
        if cut {
            segs[i].truncate(off);
        } else {
            segs[i][off] ^= 1 << rnd(8);
        }
        for (k, s) in segs.iter().enumerate() {
            let name = crate::segment::segment_file_name(1, 3 + k as u64, SEG as u32);
            std::fs::write(dir.join(name), s).unwrap();
        }
        let res = std::panic::catch_unwind(|| read_all(&dir, start, end))
            .unwrap_or_else(|_| panic!("round {round}: a panic"));
        match res {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(&fmt_lsn(e.lsn)), "{msg}");
            }
            Ok(got) => {
                // Only bytes nothing reads (alignment padding, the padding and
                // unused flags of page headers, the zeroed tail) may change silently.
                assert!(
                    !cut,
                    "round {round}: cut at {} without an error",
                    fmt_lsn(at)
                );
                assert_eq!(
                    got,
                    clean,
                    "round {round}: flip at {} changed the records",
                    fmt_lsn(at)
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same WAL written into `.partial` files in uneven chunks as a replication
/// stream delivers it (segments renamed once complete), read as it arrives with
/// `set_available` and `refresh`: the same records as reading the whole files, none
/// read twice, none before its bytes arrived, and no error at any cut.
#[test]
fn streamed_in_chunks_reads_the_same_records() {
    let (w, recs, end) = layout();
    let whole = tmp("stream-whole");
    w.save(&whole);
    let expected = read_all(&whole, recs[0].0, end).unwrap();
    let dir = tmp("stream");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = w.base;
    let mut received = base;
    let mut chunk = 1u64;
    let mut reader: Option<WalReader> = None;
    let mut got: Vec<RecordPos> = Vec::new();
    let mut b = BatchBuilder::new();
    while received < end {
        // Chunks of every size from 1 byte up to 300 kB, cut anywhere.
        chunk = (chunk * 7 + 13) % 300_000 + 1;
        let to = (received + chunk).min(end);
        while received < to {
            let segno = received / SEG;
            let seg_end = (segno + 1) * SEG;
            let upto = to.min(seg_end);
            let name = crate::segment::segment_file_name(1, segno, SEG as u32);
            let partial = dir.join(format!("{name}.partial"));
            let bytes = &w.segs[(segno - base / SEG) as usize][(received % SEG) as usize..];
            let n = (upto - received) as usize;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&partial)
                .unwrap();
            std::io::Write::write_all(&mut f, &bytes[..n]).unwrap();
            received = upto;
            if received == seg_end {
                std::fs::rename(&partial, dir.join(name)).unwrap();
            }
        }
        // A reader opens once the first long page header arrived (the segment size).
        if reader.is_none() && received - base < LONG_PAGE_HEADER as u64 {
            continue;
        }
        if reader.is_none() {
            let mut r = WalReader::open(&dir, Options::default()).unwrap();
            r.set_available(Some(received));
            match r.seek(recs[0].0) {
                Ok(at) => assert_eq!(at, recs[0].0),
                Err(e) => {
                    assert!(matches!(e.fault, Fault::NoRecordAfter), "{e}");
                    continue;
                }
            }
            reader = Some(r);
        }
        let r = reader.as_mut().unwrap();
        r.set_available(Some(received));
        r.refresh().unwrap();
        while let Some(p) = r.read_into(&mut b).unwrap() {
            assert!(p.end_lsn <= received.max(p.end_lsn / SEG * SEG));
            got.push(p);
        }
    }
    assert_eq!(got, expected.iter().map(|(p, _)| *p).collect::<Vec<_>>());
    let batch = b.finish();
    for (raw, (_, main)) in batch.records().iter().zip(&expected) {
        // SAFETY: `batch` is alive.
        let rec = unsafe { Record::from_raw(raw) };
        assert_eq!(rec.main_data(), &main[..]);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&whole);
}

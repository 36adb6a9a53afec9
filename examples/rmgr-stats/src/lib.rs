//! # rmgr-stats: an example walker plugin
//!
//! Counts WAL records, record bytes and full-page-image bytes per resource manager,
//! the way `pg_waldump --stats` and `pg_walinspect.pg_get_wal_stats` do, and shows them
//! in the view `walker.rmgr_stats_rmgrs`. Written against `walker-abi` alone, as any
//! third party would write a plugin: no PostgreSQL headers, no pgrx.
//!
//! Every row also carries the LSN range the counts cover (`since_lsn`: start of the
//! first record counted; `through_lsn`: end of the last), read under the same lock as
//! the counts, so the numbers can be compared with
//! `pg_get_wal_stats(since_lsn, through_lsn)` exactly.

use walker_abi::{
    Envelope, Host, Plugin, PluginInfo, PluginResult, Record, Records, RecordsError, RowSink,
    SharedState, Value, ViewDef, WalkerType, ALL_RMGRS,
};

/// Counters of one resource manager.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Counters {
    /// Records.
    pub records: u64,
    /// Bytes of records without their full-page images.
    pub record_bytes: u64,
    /// Bytes of full-page images.
    pub fpi_bytes: u64,
}

/// The plugin's shared state.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct State {
    /// Start LSN of the first record counted (0 before any).
    pub since_lsn: u64,
    /// End LSN of the last record counted.
    pub through_lsn: u64,
    /// Counters by rmgr id.
    pub rmgrs: [Counters; 256],
}

// SAFETY: repr(C), plain integers, valid when zeroed.
unsafe impl SharedState for State {}

/// Version of the snapshot layout [`State::encode`] writes.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The snapshot's envelope, as the shipped plugins start theirs: `RMGRSTATS<format>\n`
/// names the plugin and the layout that follows, so a later release can change the
/// layout and still read this one, and a damaged or foreign file is refused by name.
pub const ENVELOPE: Envelope = Envelope {
    tag: "RMGRSTATS",
    current: SNAPSHOT_FORMAT,
    oldest: 1,
};

impl State {
    /// An empty state.
    pub fn empty() -> State {
        State {
            since_lsn: 0,
            through_lsn: 0,
            rmgrs: [Counters::default(); 256],
        }
    }

    /// Snapshot bytes: the envelope (`RMGRSTATS1\n`), then since, through, the number
    /// of rmgrs with records (u16), then for each its id (1 byte) and records, record
    /// bytes, FPI bytes (little-endian u64).
    pub fn encode(&self, out: &mut Vec<u8>) {
        ENVELOPE.begin(out);
        out.extend_from_slice(&self.since_lsn.to_le_bytes());
        out.extend_from_slice(&self.through_lsn.to_le_bytes());
        let used: Vec<(usize, &Counters)> = self
            .rmgrs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.records > 0)
            .collect();
        out.extend_from_slice(&(used.len() as u16).to_le_bytes());
        for (id, c) in used {
            out.push(id as u8);
            for v in [c.records, c.record_bytes, c.fpi_bytes] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// Reads what [`State::encode`] wrote, and the snapshots of releases before the
    /// envelope, which started with the format as a little-endian u32 (1) instead.
    pub fn decode(b: &[u8]) -> Result<State, String> {
        let body =
            if ENVELOPE.is_enveloped(b) {
                ENVELOPE.open(b).map_err(|e| e.to_string())?.1
            } else {
                match b.split_first_chunk::<4>() {
                    Some((head, body)) if u32::from_le_bytes(*head) == SNAPSHOT_FORMAT => body,
                    _ => return Err(
                        "not an rmgr_stats snapshot (no RMGRSTATS<format> line, nor the format 1 \
                         header of earlier releases): the counts start empty"
                            .into(),
                    ),
                }
            };
        State::decode_body(body)
    }

    /// Reads the body of format 1 (what follows the envelope).
    fn decode_body(mut b: &[u8]) -> Result<State, String> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
            if b.len() < n {
                return Err("snapshot ends early".into());
            }
            let (head, rest) = b.split_at(n);
            *b = rest;
            Ok(head)
        }
        let u64_of = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
        let mut s = State::empty();
        s.since_lsn = u64_of(take(&mut b, 8)?);
        s.through_lsn = u64_of(take(&mut b, 8)?);
        let n = u16::from_le_bytes(take(&mut b, 2)?.try_into().expect("2 bytes"));
        for _ in 0..n {
            let id = take(&mut b, 1)?[0] as usize;
            let c = &mut s.rmgrs[id];
            c.records = u64_of(take(&mut b, 8)?);
            c.record_bytes = u64_of(take(&mut b, 8)?);
            c.fpi_bytes = u64_of(take(&mut b, 8)?);
        }
        if !b.is_empty() {
            return Err(format!("{} bytes after the last counter", b.len()));
        }
        Ok(s)
    }

    /// Counts one record.
    pub fn count(&mut self, lsn: u64, end_lsn: u64, rmid: u8, total_len: u32, fpi_len: u32) {
        if self.since_lsn == 0 {
            self.since_lsn = lsn;
        }
        self.through_lsn = end_lsn;
        let c = &mut self.rmgrs[rmid as usize];
        c.records += 1;
        c.record_bytes += u64::from(total_len.saturating_sub(fpi_len));
        c.fpi_bytes += u64::from(fpi_len);
    }
}

/// The plugin.
pub struct RmgrStats;

impl Plugin for RmgrStats {
    fn describe() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION"),
            description: "WAL records and bytes per resource manager",
            rmgrs: ALL_RMGRS,
            views: vec![ViewDef {
                name: "rmgrs",
                description: "WAL records, record bytes and full-page-image bytes per resource manager since the walker started",
                columns: vec![
                    ("rmgr_id", WalkerType::INT8),
                    ("rmgr", WalkerType::TEXT),
                    ("records", WalkerType::INT8),
                    ("record_bytes", WalkerType::INT8),
                    ("fpi_bytes", WalkerType::INT8),
                    ("combined_bytes", WalkerType::INT8),
                    ("since_lsn", WalkerType::LSN),
                    ("through_lsn", WalkerType::LSN),
                ],
            }],
            snapshots: true,
            ..PluginInfo::default()
        }
    }

    fn init(_host: &Host) -> PluginResult<Self> {
        Ok(RmgrStats)
    }

    fn shmem_size(&self, _host: &Host) -> usize {
        std::mem::size_of::<State>()
    }

    fn on_record(&self, host: &Host, r: &Record<'_>) -> PluginResult {
        host.with_exclusive(|s: &mut State| {
            s.count(r.lsn(), r.end_lsn(), r.rmid(), r.total_len(), r.fpi_len())
        })
    }

    /// The fast pattern: one lock for a whole run of records, not one per record
    /// (readers of the view wait at most one run; the counts stay exact at each run's
    /// end, which is what `through_lsn` says).
    fn on_records(&self, host: &Host, records: &Records<'_>) -> Result<(), RecordsError> {
        host.with_exclusive(|s: &mut State| {
            for (_, r) in records.iter() {
                s.count(r.lsn(), r.end_lsn(), r.rmid(), r.total_len(), r.fpi_len());
            }
        })
        .map_err(|e| RecordsError::at(0, e))
    }

    fn save_state(&self, host: &Host, out: &mut Vec<u8>) -> PluginResult {
        let state = host.with_shared(|s: &State| *s)?;
        state.encode(out);
        Ok(())
    }

    fn load_state(&self, host: &Host, state: Option<&[u8]>, _lsn: u64) -> PluginResult {
        let new = match state {
            Some(b) => State::decode(b)?,
            None => State::empty(),
        };
        host.with_exclusive(|s: &mut State| *s = new)
    }

    fn view_rows(&self, host: &Host, _view: usize, sink: &mut RowSink<'_>) -> PluginResult {
        // Copy under the lock, emit outside it.
        let state = host.with_shared(|s: &State| *s)?;
        for (id, c) in state
            .rmgrs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.records > 0)
        {
            let name = host
                .rmgr_name(id as u8)
                .unwrap_or_else(|| format!("rmgr {id}"));
            let to_i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            sink.row(&[
                Value::Int8(id as i64),
                Value::Text(&name),
                Value::Int8(to_i(c.records)),
                Value::Int8(to_i(c.record_bytes)),
                Value::Int8(to_i(c.fpi_bytes)),
                Value::Int8(to_i(c.record_bytes + c.fpi_bytes)),
                Value::Lsn(state.since_lsn),
                Value::Lsn(state.through_lsn),
            ])?;
        }
        Ok(())
    }
}

walker_abi::export_plugin!(RmgrStats);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_split_images_from_records() {
        let mut s = State::empty();
        s.count(100, 180, 10, 80, 0);
        s.count(180, 8400, 10, 8220, 8192);
        s.count(8400, 8430, 1, 30, 0);
        assert_eq!((s.since_lsn, s.through_lsn), (100, 8430));
        let heap = s.rmgrs[10];
        assert_eq!(
            (heap.records, heap.record_bytes, heap.fpi_bytes),
            (2, 80 + 28, 8192)
        );
        assert_eq!(s.rmgrs[1].records, 1);
    }

    #[test]
    fn snapshot_bytes_are_as_documented() {
        let mut s = State::empty();
        s.count(0x100, 0x180, 10, 80, 0);
        let mut b = Vec::new();
        s.encode(&mut b);
        // Golden bytes, written out by hand from the layout in `encode`'s comment.
        let mut golden: Vec<u8> = b"RMGRSTATS1\n".to_vec();
        golden.extend([0x00, 0x01, 0, 0, 0, 0, 0, 0]); // since 0x100
        golden.extend([0x80, 0x01, 0, 0, 0, 0, 0, 0]); // through 0x180
        golden.extend([1, 0]); // one rmgr with records
        golden.push(10); // Heap
        golden.extend([1, 0, 0, 0, 0, 0, 0, 0]); // 1 record
        golden.extend([80, 0, 0, 0, 0, 0, 0, 0]); // 80 record bytes
        golden.extend([0; 8]); // no FPI bytes
        assert_eq!(b, golden);
        let back = State::decode(&b).unwrap();
        assert_eq!(
            (
                back.since_lsn,
                back.through_lsn,
                back.rmgrs[10].records,
                back.rmgrs[10].record_bytes
            ),
            (0x100, 0x180, 1, 80)
        );
        assert!(State::decode(&b[..b.len() - 1]).is_err());
        let mut extra = b.clone();
        extra.push(0);
        assert!(State::decode(&extra).is_err());
        // A snapshot of a release before the envelope: the same body after a u32 1.
        let mut bare = vec![1, 0, 0, 0];
        bare.extend_from_slice(&golden[b"RMGRSTATS1\n".len()..]);
        assert_eq!(State::decode(&bare).unwrap().rmgrs[10].record_bytes, 80);
        bare[0] = 2;
        assert!(State::decode(&bare)
            .err()
            .is_some_and(|e| e.contains("not an rmgr_stats snapshot")));
        let mut newer = b"RMGRSTATS2\n".to_vec();
        newer.extend_from_slice(&golden[b"RMGRSTATS1\n".len()..]);
        assert!(State::decode(&newer)
            .err()
            .is_some_and(|e| e.contains("newer release")));
    }
}

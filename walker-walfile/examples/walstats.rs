//! Per-resource-manager statistics of a range of WAL files, printed like
//! `pg_waldump --stats` (records, record bytes, full-page-image bytes), read through
//! walker's record batches: `walstats DIR START_LSN [END_LSN]`.

use std::collections::BTreeMap;
use walker_abi::Record;
use walker_core::batch::BatchBuilder;
use walker_walfile::format::{parse_lsn, rmgr_name};
use walker_walfile::{Options, WalReader};

fn main() {
    if let Err(e) = run() {
        eprintln!("walstats: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, start, rest @ ..] = &args[..] else {
        return Err("usage: walstats DIR START_LSN [END_LSN]".into());
    };
    let start = parse_lsn(start).ok_or("START_LSN: an LSN like 0/1500000")?;
    let end = rest
        .first()
        .map(|e| parse_lsn(e).ok_or("END_LSN: an LSN like 0/3000000"))
        .transpose()?;
    let mut reader = WalReader::open(std::path::Path::new(dir), Options::default())?;
    reader.set_end(end);
    reader.seek(start)?;
    let mut stats: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    loop {
        let mut batch = BatchBuilder::with_capacity(4096, 1 << 22);
        let mut done = false;
        while batch.len() < 4096 {
            match reader.read_into(&mut batch) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    done = true;
                    break;
                }
                Err(e) if e.fault.is_end_of_wal() && end.is_none() => {
                    done = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let batch = batch.finish();
        for r in batch.records() {
            // SAFETY: the batch is alive for this loop.
            let r = unsafe { Record::from_raw(r) };
            let name = rmgr_name(r.rmid()).unwrap_or_else(|| format!("rmgr{}", r.rmid()));
            let s = stats.entry(name).or_default();
            s.0 += 1;
            s.1 += u64::from(r.total_len().saturating_sub(r.fpi_len()));
            s.2 += u64::from(r.fpi_len());
        }
        if done {
            break;
        }
    }
    for (name, (n, rec, fpi)) in stats {
        println!("{name} {n} {rec} {fpi}");
    }
    Ok(())
}

//! The progress line of long runs (`walk`, `follow`): records/s, MiB/s of WAL and the
//! LSN reached, rewritten in place on stderr about once a second, only when stderr is
//! a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use walker_core::rows::format_lsn;

/// How often the line is rewritten.
const EVERY: Duration = Duration::from_secs(1);

/// The line for `records` and `bytes` of WAL read in `secs` seconds, at `lsn`, with
/// `total` records read in all.
pub fn line(records: u64, bytes: u64, secs: f64, lsn: u64, total: u64) -> String {
    let secs = secs.max(1e-6);
    format!(
        "pg_walker: {total} records, {:.0} records/s, {:.1} MiB/s, at {}",
        records as f64 / secs,
        bytes as f64 / secs / (1024.0 * 1024.0),
        format_lsn(lsn)
    )
}

/// The line's state.
pub struct Progress {
    on: bool,
    last: Instant,
    /// Records read and the reader's LSN at the last line.
    at_last: Option<(u64, u64)>,
    shown: bool,
}

impl Progress {
    /// A progress line, shown when stderr is a terminal.
    pub fn new() -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            last: Instant::now(),
            at_last: None,
            shown: false,
        }
    }

    /// Reports `records` read in all with the reader at `lsn`.
    pub fn update(&mut self, records: u64, lsn: u64) {
        if !self.on {
            return;
        }
        let Some((r0, l0)) = self.at_last else {
            self.at_last = Some((records, lsn));
            return;
        };
        let secs = self.last.elapsed();
        if secs < EVERY {
            return;
        }
        let text = line(
            records.saturating_sub(r0),
            lsn.saturating_sub(l0),
            secs.as_secs_f64(),
            lsn,
            records,
        );
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r{text}\x1b[K");
        let _ = e.flush();
        self.last = Instant::now();
        self.at_last = Some((records, lsn));
        self.shown = true;
    }

    /// Ends the line, so that the next message starts on a line of its own.
    pub fn finish(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_by_hand() {
        assert_eq!(
            line(2000, 3 << 20, 2.0, 0x1_0000_0028, 5000),
            "pg_walker: 5000 records, 1000 records/s, 1.5 MiB/s, at 1/28"
        );
    }
}

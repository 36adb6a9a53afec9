//! Walker's lag behind the flush LSN, from a history of samples: in bytes, and in
//! time (how long ago the flush LSN reached the position walker has processed).

use crate::stats::percentile;

/// One sample: when, the server's flush LSN and walker's processed LSN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the sampling started.
    pub t_ms: f64,
    /// `pg_current_wal_flush_lsn()`.
    pub flush: u64,
    /// `walker.status.processed_lsn`.
    pub processed: u64,
}

/// Lag percentiles over one sample history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Median lag in bytes.
    pub p50_bytes: f64,
    /// 99th percentile in bytes.
    pub p99_bytes: f64,
    /// Largest lag in bytes.
    pub max_bytes: f64,
    /// Median lag in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile in milliseconds.
    pub p99_ms: f64,
    /// Largest lag in milliseconds.
    pub max_ms: f64,
}

/// Lag of each sample in bytes: flush minus processed (0 when walker is at or past it,
/// which happens when the flush LSN was read a moment before the processed LSN).
pub fn lag_bytes(samples: &[Sample]) -> Vec<f64> {
    samples
        .iter()
        .map(|s| s.flush.saturating_sub(s.processed) as f64)
        .collect()
}

/// Lag of each sample in milliseconds: its time minus the time of the first sample
/// whose flush LSN had reached the sample's processed LSN (0 when none had, i.e.
/// walker was caught up). The resolution is the sampling interval, and a sample
/// whose processed LSN is behind the first sample's flush LSN gets a lower bound.
pub fn lag_ms(samples: &[Sample]) -> Vec<f64> {
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            samples[..=i]
                .iter()
                .find(|earlier| earlier.flush >= s.processed)
                .map_or(0.0, |earlier| s.t_ms - earlier.t_ms)
        })
        .collect()
}

/// Milliseconds between consecutive samples.
pub fn intervals(samples: &[Sample]) -> Vec<f64> {
    samples.windows(2).map(|w| w[1].t_ms - w[0].t_ms).collect()
}

/// p50, p99 and max of the lag in bytes and milliseconds; `None` without samples.
pub fn summarize(samples: &[Sample]) -> Option<Lag> {
    let bytes = lag_bytes(samples);
    let ms = lag_ms(samples);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    Some(Lag {
        p50_bytes: percentile(&bytes, 50.0)?,
        p99_bytes: percentile(&bytes, 99.0)?,
        max_bytes: max(&bytes),
        p50_ms: percentile(&ms, 50.0)?,
        p99_ms: percentile(&ms, 99.0)?,
        max_ms: max(&ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: f64, flush: u64, processed: u64) -> Sample {
        Sample {
            t_ms,
            flush,
            processed,
        }
    }

    /// Flush moves 0 -> 100 -> 200 -> 300 -> 300; walker follows one or two samples late.
    fn history() -> Vec<Sample> {
        vec![
            s(0.0, 0, 0),
            s(100.0, 100, 0),
            s(200.0, 200, 100),
            s(300.0, 300, 100),
            s(400.0, 300, 300),
        ]
    }

    #[test]
    fn bytes_are_flush_minus_processed() {
        assert_eq!(lag_bytes(&history()), vec![0.0, 100.0, 100.0, 200.0, 0.0]);
        // Processed read after a newer flush: no negative lag.
        assert_eq!(lag_bytes(&[s(0.0, 10, 20)]), vec![0.0]);
    }

    #[test]
    fn ms_since_flush_reached_the_processed_position() {
        // #0: processed 0, flush 0 at t=0 -> 0. #1: processed 0 -> since t=0 -> 100.
        // #2: processed 100, first flush >= 100 at t=100 -> 100.
        // #3: processed 100 -> 300 - 100 = 200. #4: processed 300, reached at t=300 -> 100.
        assert_eq!(lag_ms(&history()), vec![0.0, 100.0, 100.0, 200.0, 100.0]);
        // Processed past every flush seen so far: caught up.
        assert_eq!(lag_ms(&[s(0.0, 10, 20)]), vec![0.0]);
    }

    #[test]
    fn intervals_between_samples() {
        assert_eq!(intervals(&history()), vec![100.0; 4]);
        assert_eq!(
            intervals(&[s(5.0, 0, 0), s(17.5, 0, 0), s(27.5, 0, 0)]),
            vec![12.5, 10.0]
        );
        assert!(intervals(&[s(0.0, 0, 0)]).is_empty());
    }

    #[test]
    fn percentiles_of_a_history() {
        let lag = summarize(&history()).unwrap();
        // Bytes sorted 0,0,100,100,200: median 100; p99 rank 3.96 -> 100 + 0.96 * 100.
        assert_eq!(lag.p50_bytes, 100.0);
        assert!((lag.p99_bytes - 196.0).abs() < 1e-9);
        assert_eq!(lag.max_bytes, 200.0);
        // Ms sorted 0,100,100,100,200: median 100, p99 196, max 200.
        assert_eq!(lag.p50_ms, 100.0);
        assert!((lag.p99_ms - 196.0).abs() < 1e-9);
        assert_eq!(lag.max_ms, 200.0);
        assert_eq!(summarize(&[]), None);
    }
}

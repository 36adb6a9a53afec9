//! Summaries of repeated measurements: median, percentiles and spread.

/// The median and spread of a set of measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many measurements.
    pub n: usize,
    /// Median (the mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// The `p`-th percentile (0..=100) of `values` by linear interpolation between the
/// closest ranks (rank `(n - 1) * p / 100`, numpy's default); `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (v.len() - 1) as f64 * p.clamp(0.0, 100.0) / 100.0;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(v[lo] + (rank - lo as f64) * (v[hi] - v[lo]))
}

/// The median of `values`; `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

/// Median, minimum and maximum of `values`; `None` when empty.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    Some(Summary {
        n: values.len(),
        median: median(values)?,
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        // Even count: mean of 2 and 3.
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [10.0, 20.0, 30.0, 40.0];
        // rank = 3 * 0.25 = 0.75: 10 + 0.75 * 10.
        assert_eq!(percentile(&v, 25.0), Some(17.5));
        assert_eq!(percentile(&v, 0.0), Some(10.0));
        assert_eq!(percentile(&v, 100.0), Some(40.0));
        // 1..=100: rank = 99 * 0.99 = 98.01, between 99 and 100.
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let p99 = percentile(&hundred, 99.0).unwrap();
        assert!((p99 - 99.01).abs() < 1e-9, "{p99}");
        assert_eq!(percentile(&hundred, 50.0), Some(50.5));
    }

    #[test]
    fn summary_spread() {
        let s = summarize(&[5.0, 1.0, 9.0, 3.0, 7.0]).unwrap();
        assert_eq!(
            s,
            Summary {
                n: 5,
                median: 5.0,
                min: 1.0,
                max: 9.0
            }
        );
        assert_eq!(summarize(&[]), None);
    }
}

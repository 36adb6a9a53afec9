//! How big a run is: `smoke` (CI, seconds), `medium`, `full` (the README's figures).

use std::time::Duration;

/// The parameters of one run size.
#[derive(Debug, Clone, PartialEq)]
pub struct Size {
    /// `smoke`, `medium` or `full`.
    pub name: &'static str,
    /// Repetitions of each side-by-side measurement.
    pub reps: usize,
    /// Figure 1: `pgbench -i` scale of the backlog cluster.
    pub backlog_scale: u32,
    /// Figure 1: WAL to generate (bytes); pgbench TPC-B runs until it is reached.
    pub backlog_bytes: u64,
    /// Figures 1 and 2: pgbench clients (and threads).
    pub clients: u32,
    /// Figure 2: `pgbench -i` scale.
    pub load_scale: u32,
    /// Figure 2: seconds of each `pgbench -T` run.
    pub load_seconds: u32,
    /// Figure 3: interval between lag samples.
    pub sample_interval: Duration,
    /// Figure 4: seconds of each pgbench run (select-only, then TPC-B).
    pub admission_seconds: u32,
    /// Figure 6: seconds of each pgbench run of the short-statements script.
    pub short_seconds: u32,
    /// Figure 7: seconds of each pgbench run of the budget scopes script.
    pub scope_seconds: u32,
    /// Figure 8: seconds of the idle window whose worker CPU is measured.
    pub idle_seconds: u32,
    /// Figure 5: megabytes of each table of the garbagemap range workload.
    pub map_table_mb: u32,
    /// Figure 5: the tracked ranges at which the scale series measures garbagemap's
    /// memory per range (one-block ranges, so each is 8 kB of table).
    pub map_series: &'static [u32],
    /// Longest wait for walker to walk the backlog once.
    pub walk_timeout: Duration,
}

const MIB: u64 = 1 << 20;

impl Size {
    /// The size called `name`.
    pub fn named(name: &str) -> Option<Size> {
        let base = Size {
            name: "smoke",
            reps: 1,
            backlog_scale: 1,
            backlog_bytes: 32 * MIB,
            clients: 2,
            load_scale: 1,
            load_seconds: 3,
            sample_interval: Duration::from_millis(10),
            admission_seconds: 3,
            short_seconds: 2,
            scope_seconds: 2,
            idle_seconds: 2,
            map_table_mb: 8,
            map_series: &[1_000, 3_000],
            walk_timeout: Duration::from_secs(120),
        };
        match name {
            "smoke" => Some(base),
            "medium" => Some(Size {
                name: "medium",
                reps: 3,
                backlog_scale: 5,
                backlog_bytes: 256 * MIB,
                clients: 4,
                load_scale: 5,
                load_seconds: 10,
                admission_seconds: 10,
                short_seconds: 6,
                scope_seconds: 3,
                idle_seconds: 5,
                map_table_mb: 32,
                map_series: &[1_000, 10_000, 30_000],
                walk_timeout: Duration::from_secs(300),
                ..base
            }),
            "full" => Some(Size {
                name: "full",
                reps: 5,
                backlog_scale: 10,
                backlog_bytes: 1024 * MIB,
                clients: 4,
                load_scale: 10,
                load_seconds: 15,
                admission_seconds: 8,
                short_seconds: 6,
                scope_seconds: 3,
                idle_seconds: 10,
                map_table_mb: 64,
                map_series: &[1_000, 10_000, 100_000],
                walk_timeout: Duration::from_secs(600),
                ..base
            }),
            _ => None,
        }
    }

    /// The repetitions of a figure that runs at most `most` of them (its values vary
    /// little, or the run must stay within its time).
    pub fn reps_up_to(&self, most: usize) -> usize {
        self.reps.min(most).max(1)
    }

    /// The names [`Size::named`] knows.
    pub const NAMES: &'static [&'static str] = &["smoke", "medium", "full"];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_grow() {
        let all: Vec<Size> = Size::NAMES
            .iter()
            .map(|n| Size::named(n).unwrap())
            .collect();
        for w in all.windows(2) {
            assert!(w[0].reps <= w[1].reps && w[0].backlog_bytes < w[1].backlog_bytes);
        }
        assert!(Size::named("huge").is_none());
        let full = Size::named("full").unwrap();
        assert_eq!((full.reps_up_to(3), full.reps_up_to(9)), (3, 5));
        assert_eq!(Size { reps: 0, ..full }.reps_up_to(3), 1);
    }
}

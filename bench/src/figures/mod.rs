//! The figures of the issue, one module each (figures 2 and 3 come from the same
//! pgbench runs, on the pair of clusters figures 6 and 8 use too; figure 7 takes its
//! walks from figure 1).

pub mod admission;
pub mod idle;
pub mod memory;
pub mod overhead;
pub mod scale;
pub mod short;
pub mod throughput;

use crate::sizes::Size;

/// What every figure needs.
#[derive(Debug, Clone)]
pub struct Context {
    /// The run size.
    pub size: Size,
    /// "All shipped plugins".
    pub plugins: Vec<String>,
    /// Clock ticks per second of `/proc/<pid>/stat`.
    pub ticks: f64,
}

impl Context {
    /// The plugins as a `walker.plugins` value.
    pub fn plugin_list(&self) -> String {
        self.plugins.join(",")
    }

    /// Whether `name` is one of the shipped plugins.
    pub fn has(&self, name: &str) -> bool {
        self.plugins.iter().any(|p| p == name)
    }
}

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;
/// Bytes in a GiB.
pub const GIB: f64 = 1024.0 * MIB;

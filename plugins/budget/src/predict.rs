//! How a statement's WAL is predicted at admission: which profiles are consulted
//! (`budget.predictor`), how fast they learn (`budget.ewma_alpha`), what a statement
//! without a profile is assumed to write (`budget.default_write_prediction`,
//! `budget.default_utility_prediction`) and the cap (`budget.max_prediction`).
//!
//! [`Config`] is plain `#[repr(C)]` data kept in the shared region; all-zero bytes mean
//! "the defaults", so a region nobody configured yet predicts as documented.

use walker_abi::WalkerStatementKind;

/// Which profiles a prediction uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Predictor {
    /// The query's own profile for the scope, else its statement class's for the
    /// scope, else its class's over every scope, else the default.
    ProfileEwma = 0,
    /// Only statement-class profiles (for the scope, else over every scope), else the
    /// default: one average per kind of statement, whatever the query.
    StatementClass = 1,
}

impl Predictor {
    /// The setting's options, in [`Predictor`] number order.
    pub const NAMES: [&'static str; 2] = ["profile_ewma", "statement_class"];

    /// From the enum setting's index (an unknown one reads as the default).
    pub fn from_index(i: usize) -> Predictor {
        match i {
            1 => Predictor::StatementClass,
            _ => Predictor::ProfileEwma,
        }
    }

    /// Its name, as the setting spells it.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// Default of `budget.ewma_alpha`.
pub const DEFAULT_ALPHA: f64 = crate::shm::EWMA_ALPHA;
/// Default of `budget.default_write_prediction` (bytes): about one heap tuple with its
/// index entries and a commit record.
pub const DEFAULT_WRITE_BYTES: u64 = 8 * 1024;
/// Default of `budget.default_utility_prediction` (bytes): DDL and `COPY` write more
/// than a single row; 64 kB until a profile knows better.
pub const DEFAULT_UTILITY_BYTES: u64 = 64 * 1024;

/// The predictor's settings as kept in shared memory.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Config {
    /// 0: never set (use the defaults); 1: set.
    pub set: u32,
    /// [`Predictor`] number.
    pub predictor: u32,
    /// Weight of a new sample, in (0, 1].
    pub alpha: f64,
    /// Prediction for INSERT, UPDATE, DELETE and MERGE without a profile (bytes).
    pub default_write: u64,
    /// Prediction for utility statements (DDL, COPY, ...) without a profile (bytes).
    pub default_utility: u64,
    /// Largest prediction (bytes; 0: no cap other than the policy's burst).
    pub max: u64,
}

impl Config {
    /// The settings as given.
    pub fn new(
        predictor: Predictor,
        alpha: f64,
        default_write: u64,
        default_utility: u64,
        max: u64,
    ) -> Config {
        Config {
            set: 1,
            predictor: predictor as u32,
            alpha,
            default_write,
            default_utility,
            max,
        }
    }

    /// The defaults.
    pub fn defaults() -> Config {
        Config::new(
            Predictor::ProfileEwma,
            DEFAULT_ALPHA,
            DEFAULT_WRITE_BYTES,
            DEFAULT_UTILITY_BYTES,
            0,
        )
    }

    /// These settings, or the defaults when none were written.
    pub fn effective(&self) -> Config {
        if self.set == 0 {
            Config::defaults()
        } else {
            *self
        }
    }

    /// The predictor.
    pub fn predictor(&self) -> Predictor {
        Predictor::from_index(self.effective().predictor as usize)
    }

    /// The weight of a new sample, kept in (0, 1] whatever was stored.
    pub fn alpha(&self) -> f64 {
        let a = self.effective().alpha;
        if a.is_finite() && a > 0.0 {
            a.min(1.0)
        } else {
            DEFAULT_ALPHA
        }
    }

    /// The prediction for a statement of `class` that no profile covers.
    pub fn default_for(&self, class: u32) -> f64 {
        let c = self.effective();
        let k = WalkerStatementKind(class);
        if k == WalkerStatementKind::UTILITY {
            c.default_utility as f64
        } else if [
            WalkerStatementKind::INSERT,
            WalkerStatementKind::UPDATE,
            WalkerStatementKind::DELETE,
            WalkerStatementKind::MERGE,
        ]
        .contains(&k)
        {
            c.default_write as f64
        } else {
            0.0
        }
    }

    /// `bytes` within the cap.
    pub fn capped(&self, bytes: f64) -> f64 {
        let max = self.effective().max;
        let b = if bytes.is_finite() {
            bytes.max(0.0)
        } else {
            0.0
        };
        if max == 0 {
            b
        } else {
            b.min(max as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_means_the_defaults() {
        let z = Config::default();
        assert_eq!(z.effective(), Config::defaults());
        assert_eq!(z.predictor(), Predictor::ProfileEwma);
        assert_eq!(z.alpha(), 0.3);
        assert_eq!(z.default_for(WalkerStatementKind::INSERT.0), 8192.0);
        assert_eq!(z.default_for(WalkerStatementKind::UTILITY.0), 65536.0);
        assert_eq!(z.default_for(WalkerStatementKind::SELECT.0), 0.0);
        assert_eq!(z.capped(1e12), 1e12);
    }

    #[test]
    fn settings_are_applied_and_kept_in_range() {
        let c = Config::new(Predictor::StatementClass, 0.5, 100, 200, 1000);
        assert_eq!(c.predictor(), Predictor::StatementClass);
        assert_eq!(c.default_for(WalkerStatementKind::MERGE.0), 100.0);
        assert_eq!(c.default_for(WalkerStatementKind::UTILITY.0), 200.0);
        assert_eq!(c.capped(5000.0), 1000.0);
        assert_eq!(c.capped(-3.0), 0.0);
        assert_eq!(c.capped(f64::NAN), 0.0);
        let odd = Config::new(Predictor::ProfileEwma, 7.0, 0, 0, 0);
        assert_eq!(odd.alpha(), 1.0);
        let bad = Config::new(Predictor::ProfileEwma, f64::NAN, 0, 0, 0);
        assert_eq!(bad.alpha(), DEFAULT_ALPHA);
        assert_eq!(Predictor::from_index(1).name(), "statement_class");
        assert_eq!(Predictor::from_index(9), Predictor::ProfileEwma);
    }
}

//! Token buckets and the admission rule; plain Rust.
//!
//! A policy's bucket holds up to `burst` bytes and refills at `rate` bytes per second.
//! The walker side takes out the exact bytes of each WAL record the scope wrote, so
//! the bucket can go into debt. At statement start a backend asks for the bytes the
//! statement is predicted to write (at most `burst`, so any statement can run
//! eventually); while the statement runs that prediction is reserved, so concurrent
//! statements cannot all spend the same tokens.

use crate::policy::Mode;

/// A bucket's state (lives in shared memory).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bucket {
    /// Bytes available (negative: debt).
    pub tokens: f64,
    /// Bytes reserved by statements running now.
    pub reserved: f64,
    /// When `tokens` was last brought up to date (microseconds since the epoch).
    pub at_micros: i64,
    /// 1 once the bucket was filled the first time.
    pub primed: u32,
}

impl Bucket {
    /// Brings the tokens up to `now`: a new bucket starts full.
    pub fn refill(&mut self, rate: i64, burst: i64, now: i64) {
        if self.primed == 0 {
            self.tokens = burst as f64;
            self.at_micros = now;
            self.primed = 1;
            return;
        }
        let dt = now.saturating_sub(self.at_micros).max(0) as f64 / 1e6;
        self.tokens = (self.tokens + dt * rate as f64).min(burst as f64);
        self.at_micros = self.at_micros.max(now);
    }

    /// Takes out `bytes` the scope wrote.
    pub fn charge(&mut self, bytes: u64) {
        self.tokens -= bytes as f64;
    }

    /// Milliseconds until `need` bytes (capped at `burst`) are free, 0 when they are now.
    pub fn wait_ms(&self, need: f64, rate: i64, burst: i64) -> u64 {
        let need = need.clamp(0.0, burst as f64);
        let free = self.tokens - self.reserved;
        if free >= need {
            0
        } else {
            (((need - free) / rate.max(1) as f64) * 1000.0)
                .ceil()
                .max(1.0) as u64
        }
    }
}

/// What happens to a statement at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    /// No policy covers it, or its policy is off.
    Unlimited = 1,
    /// Within budget.
    Admit = 2,
    /// Over budget, observe mode: recorded, runs.
    ObserveOver = 3,
    /// Over budget, shadow mode: a queue or reject policy would have blocked it; runs.
    ShadowBlock = 4,
    /// Over budget, queue mode: waits.
    Queue = 6,
    /// Over budget, reject mode: refused.
    Reject = 7,
    /// Waited and then ran (queue mode).
    Queued = 8,
    /// Waited the longest allowed and then ran anyway (queue mode).
    QueueTimeout = 9,
    /// Cancelled while waiting (queue mode).
    Cancelled = 10,
    /// The plugin could not decide (an internal failure) and let it run (fail open).
    FailOpen = 11,
}

impl Action {
    /// Every action with its name.
    pub const ALL: [(Action, &'static str); 10] = [
        (Action::Unlimited, "unlimited"),
        (Action::Admit, "admit"),
        (Action::ObserveOver, "observe_over"),
        (Action::ShadowBlock, "shadow_would_block"),
        (Action::Queue, "queue"),
        (Action::Reject, "reject"),
        (Action::Queued, "queued"),
        (Action::QueueTimeout, "queue_timeout"),
        (Action::Cancelled, "cancelled"),
        (Action::FailOpen, "fail_open"),
    ];

    /// Its name in views.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("?", |(_, n)| n)
    }

    /// From its stored number.
    pub fn from_u32(v: u32) -> Option<Action> {
        Self::ALL
            .iter()
            .find(|(a, _)| *a as u32 == v)
            .map(|(a, _)| *a)
    }
}

/// The rule: what `mode` does when the statement would have to wait `wait_ms`.
pub fn decide(mode: Mode, wait_ms: u64) -> Action {
    match (mode, wait_ms) {
        (Mode::Off, _) => Action::Unlimited,
        (_, 0) => Action::Admit,
        (Mode::Observe, _) => Action::ObserveOver,
        (Mode::Shadow, _) => Action::ShadowBlock,
        (Mode::Queue, _) => Action::Queue,
        (Mode::Reject, _) => Action::Reject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_starts_full_refills_at_its_rate_and_caps_at_burst() {
        let mut b = Bucket::default();
        b.refill(1000, 5000, 10_000_000);
        assert_eq!(b.tokens, 5000.0);
        b.charge(8000);
        assert_eq!(b.tokens, -3000.0);
        // 2.5 s at 1000 B/s: -3000 + 2500.
        b.refill(1000, 5000, 12_500_000);
        assert_eq!(b.tokens, -500.0);
        // A clock going back changes nothing.
        b.refill(1000, 5000, 12_000_000);
        assert_eq!(b.tokens, -500.0);
        b.refill(1000, 5000, 100_000_000);
        assert_eq!(b.tokens, 5000.0);
    }

    #[test]
    fn waiting_time_counts_debt_reservations_and_caps_the_need_at_burst() {
        let b = Bucket {
            tokens: -500.0,
            reserved: 0.0,
            at_micros: 0,
            primed: 1,
        };
        // 0 bytes needed but 500 in debt at 1000 B/s: 500 ms.
        assert_eq!(b.wait_ms(0.0, 1000, 5000), 500);
        // 100 000 bytes predicted, capped at the 5000 burst: 5500 missing.
        assert_eq!(b.wait_ms(100_000.0, 1000, 5000), 5500);
        let r = Bucket {
            tokens: 3000.0,
            reserved: 2000.0,
            ..b
        };
        assert_eq!(r.wait_ms(1000.0, 1000, 5000), 0);
        assert_eq!(r.wait_ms(1500.0, 1000, 5000), 500);
    }

    #[test]
    fn modes_act_only_when_over_budget() {
        for m in [Mode::Observe, Mode::Shadow, Mode::Queue, Mode::Reject] {
            assert_eq!(decide(m, 0), Action::Admit);
        }
        assert_eq!(decide(Mode::Off, 9), Action::Unlimited);
        assert_eq!(decide(Mode::Observe, 9), Action::ObserveOver);
        assert_eq!(decide(Mode::Shadow, 9), Action::ShadowBlock);
        assert_eq!(decide(Mode::Queue, 9), Action::Queue);
        assert_eq!(decide(Mode::Reject, 9), Action::Reject);
        assert_eq!(
            Action::from_u32(Action::Queued as u32),
            Some(Action::Queued)
        );
    }
}

//! When to talk to central next: jitter, exponential back-off, long-poll detection.
//!
//! Owns: the pure timing decisions — [`jitter`] (±10 % around the poll interval),
//! [`Backoff`] (exponential with jitter, honouring `Retry-After`) and [`LongPoll`] (did
//! the server hold the request, or answer at once so we fall back to plain polling).
//! Does not: sleep, read the clock, or draw random numbers itself: callers pass the
//! elapsed time and a uniform sample in `[0, 1)`, so every rule is unit-testable.
//! Invariants: every delay is finite and at most the configured maximum (or the
//! clamped `Retry-After`); back-off never shortens a server's `Retry-After`.
//! Limitations: "held" is judged by elapsed time (≥ half the requested wait): a server
//! that answers a long-poll early but after half the wait still counts as holding.

use std::time::Duration;

/// Spread of the poll-interval jitter (contract §2: ±10 %).
pub const POLL_JITTER: f64 = 0.10;

/// `base` scaled by a factor in `[1 - spread, 1 + spread)` taken from `unit ∈ [0, 1)`.
pub fn jitter(base: Duration, spread: f64, unit: f64) -> Duration {
    let unit = unit.clamp(0.0, 1.0);
    let factor = 1.0 - spread + 2.0 * spread * unit;
    base.mul_f64(factor.max(0.0))
}

/// Exponential back-off with "equal jitter": attempt `n` waits between half and all of
/// `min(max, base · 2ⁿ)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A back-off starting at `base` and never exceeding `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// Back-off for transient failures (network, 5xx, 429): 5 s doubling to 10 min.
    pub fn transient() -> Self {
        Self::new(Duration::from_secs(5), Duration::from_secs(600))
    }

    /// Back-off for a rejected token: starts at the poll interval, doubles to 1 h.
    pub fn token_rejected(poll_interval: Duration) -> Self {
        Self::new(poll_interval, Duration::from_secs(3600))
    }

    /// The next delay; `retry_after` (from the server) is a floor.
    pub fn next(&mut self, unit: f64, retry_after: Option<Duration>) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(20));
        let ceiling = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let delay = ceiling / 2 + (ceiling / 2).mul_f64(unit.clamp(0.0, 1.0));
        delay.max(retry_after.unwrap_or_default())
    }

    /// Forget past failures (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures in a row so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// What we learnt about the server's long-poll support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LongPoll {
    /// Not long-polling (disabled in the config) or nothing learnt yet.
    #[default]
    Unknown,
    /// The last unchanged answer came after holding the request: ask again at once.
    Held,
    /// The last unchanged answer came at once: fall back to plain polling.
    Immediate,
}

impl LongPoll {
    /// Classifies an "unchanged" answer that took `elapsed` for a request with `wait`.
    pub fn observe(wait: Option<Duration>, elapsed: Duration) -> Self {
        match wait {
            Some(wait) if elapsed >= wait / 2 => LongPoll::Held,
            Some(_) => LongPoll::Immediate,
            None => LongPoll::Unknown,
        }
    }

    /// Delay before the next request after an unchanged answer.
    pub fn next_delay(self, poll_interval: Duration, unit: f64) -> Duration {
        match self {
            LongPoll::Held => Duration::ZERO,
            LongPoll::Immediate | LongPoll::Unknown => jitter(poll_interval, POLL_JITTER, unit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn poll_jitter_is_plus_minus_ten_percent() {
        assert_eq!(jitter(S(300), POLL_JITTER, 0.0), S(270));
        assert_eq!(jitter(S(300), POLL_JITTER, 0.5), S(300));
        assert!(jitter(S(300), POLL_JITTER, 0.999_999) < S(330));
        assert!(jitter(S(300), POLL_JITTER, 0.999_999) > S(329));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = Backoff::transient();
        let highs: Vec<_> = (0..10).map(|_| b.next(1.0, None)).collect();
        assert_eq!(
            highs,
            [
                S(5),
                S(10),
                S(20),
                S(40),
                S(80),
                S(160),
                S(320),
                S(600),
                S(600),
                S(600)
            ]
        );
        b.reset();
        assert_eq!(b.next(0.0, None), Duration::from_millis(2500));
        assert_eq!(b.attempts(), 1);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut b = Backoff::transient();
        assert_eq!(b.next(0.0, Some(S(120))), S(120));
        let mut b = Backoff::transient();
        assert_eq!(b.next(1.0, Some(S(1))), S(5));
    }

    #[test]
    fn token_rejection_backs_off_from_the_poll_interval() {
        let mut b = Backoff::token_rejected(S(300));
        assert_eq!(b.next(1.0, None), S(300));
        assert_eq!(b.next(1.0, None), S(600));
        assert_eq!(b.next(1.0, None), S(1200));
        assert_eq!(b.next(1.0, None), S(2400));
        assert_eq!(b.next(1.0, None), S(3600));
    }

    #[test]
    fn long_poll_detection() {
        assert_eq!(LongPoll::observe(Some(S(50)), S(50)), LongPoll::Held);
        assert_eq!(LongPoll::observe(Some(S(50)), S(25)), LongPoll::Held);
        assert_eq!(LongPoll::observe(Some(S(50)), S(1)), LongPoll::Immediate);
        assert_eq!(LongPoll::observe(None, S(1)), LongPoll::Unknown);
        assert_eq!(LongPoll::Held.next_delay(S(300), 0.3), Duration::ZERO);
        assert_eq!(LongPoll::Immediate.next_delay(S(300), 0.0), S(270));
    }

    proptest! {
        #[test]
        fn backoff_stays_within_bounds(units in proptest::collection::vec(0.0f64..1.0, 1..40)) {
            let mut b = Backoff::transient();
            for u in units {
                let d = b.next(u, None);
                prop_assert!(d >= Duration::from_millis(2500));
                prop_assert!(d <= S(600));
            }
        }
    }
}

//! When to talk to central next: jitter, exponential back-off, and the fetch session's
//! states.
//!
//! Owns: the pure timing decisions — [`jitter`] (±10 % around the poll interval),
//! [`Backoff`] (exponential with jitter, honouring `Retry-After`) and [`Session`], the
//! state machine of the config fetch (polling, long-polling, backing off) with its one
//! transition function [`Session::on_answer`] (did the server hold the request, or answer
//! at once so we fall back to plain polling; how far to back off after failures).
//! Does not: sleep, read the clock, or draw random numbers itself: callers pass the
//! elapsed time and a uniform sample in `[0, 1)`, so every rule is unit-testable.
//! Invariants: every delay is finite and at most the configured maximum (or the
//! clamped `Retry-After`); back-off never shortens a server's `Retry-After`.
//! Limitations: "held" is judged by elapsed time (≥ half the requested wait): a server
//! that answers a long-poll early but after half the wait still counts as holding.

use std::time::Duration;

/// Spread of the poll-interval jitter (contract §2: ±10 %).
pub(crate) const POLL_JITTER: f64 = 0.10;

/// `base` scaled by a factor in `[1 - spread, 1 + spread)` taken from `unit ∈ [0, 1)`.
pub(crate) fn jitter(base: Duration, spread: f64, unit: f64) -> Duration {
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
        let delay = self.delay(self.attempt, unit, retry_after);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// The delay after `failures` earlier failures in a row (0 for the first one);
    /// `retry_after` (from the server) is a floor.
    pub fn delay(&self, failures: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
        let exp = self.base.saturating_mul(1u32 << failures.min(20));
        let ceiling = exp.min(self.max);
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

/// What the config fetch waits on before its next request (contract §2). The only way
/// from one state to the next is [`Session::on_answer`].
///
/// ```text
///   Polling ──held 304/204/404, or a document with an ETag while long-polling──▶ LongPolling
///   LongPolling ──304/204/404 answered at once (the server does not hold)──▶ Polling
///   any ──failure──▶ BackingOff { transient + 1 }      (401/403: { rejected + 1 })
///   BackingOff ──any answer──▶ Polling or LongPolling  (failures forgotten)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Session {
    /// The next request after the poll interval ± 10 %: the start, long-polling not
    /// configured, or the server answered a long-poll at once (it does not hold requests).
    #[default]
    Polling,
    /// The next request goes at once: the server holds it until the document changes
    /// (it held the last one, or a document came with an ETag to wait on).
    LongPolling,
    /// The last requests failed; the next one after an exponential back-off
    /// ([`Timing`]), `Retry-After` being a floor. `transient`: failures in a row since
    /// the last answer or token rejection (back-off from 5 s); `rejected`: token
    /// rejections (401/403) since the last answer (back-off from the poll interval, not
    /// forgotten by a transient failure in between).
    BackingOff { transient: u32, rejected: u32 },
}

/// A response to a config request, as far as the schedule is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A document, accepted or refused; `etag`: it came with an ETag, so a long-poll can
    /// wait for it to change.
    Document { etag: bool },
    /// 304 Not Modified, or 204/404 no document, `elapsed` after the request was sent.
    Unchanged { elapsed: Duration },
    /// 401/403: central rejected the device token.
    TokenRejected,
    /// Any other failure (network, 5xx, 429, a malformed answer), with the server's
    /// `Retry-After`.
    Failed { retry_after: Option<Duration> },
}

/// The configured timing the session follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// The plain poll interval (jittered ± 10 %).
    pub poll_interval: Duration,
    /// The long-poll `wait` sent with each request; `None`: long-polling is off.
    pub wait: Option<Duration>,
    transient: Backoff,
    rejected: Backoff,
}

impl Timing {
    /// The timing of a session: transient failures back off from 5 s to 10 min, a
    /// rejected token from the poll interval to 1 h.
    pub fn new(poll_interval: Duration, wait: Option<Duration>) -> Self {
        Self {
            poll_interval,
            wait,
            transient: Backoff::transient(),
            rejected: Backoff::token_rejected(poll_interval),
        }
    }
}

impl Session {
    /// The state after `answer`, and how long to wait before the next request (`unit`: a
    /// uniform sample in `[0, 1)` for the jitter). Pure and total.
    pub fn on_answer(self, answer: Answer, timing: &Timing, unit: f64) -> (Session, Duration) {
        let (transient, rejected) = match self {
            Session::BackingOff {
                transient,
                rejected,
            } => (transient, rejected),
            Session::Polling | Session::LongPolling => (0, 0),
        };
        let polling = (
            Session::Polling,
            jitter(timing.poll_interval, POLL_JITTER, unit),
        );
        let long_polling = (Session::LongPolling, Duration::ZERO);
        match answer {
            Answer::Document { etag: true } if timing.wait.is_some() => long_polling,
            Answer::Document { .. } => polling,
            // "Held" is judged by time: at least half the requested wait.
            Answer::Unchanged { elapsed } => match timing.wait {
                Some(wait) if elapsed >= wait / 2 => long_polling,
                Some(_) | None => polling,
            },
            Answer::TokenRejected => (
                Session::BackingOff {
                    transient: 0,
                    rejected: rejected.saturating_add(1),
                },
                timing.rejected.delay(rejected, unit, None),
            ),
            Answer::Failed { retry_after } => (
                Session::BackingOff {
                    transient: transient.saturating_add(1),
                    rejected,
                },
                timing.transient.delay(transient, unit, retry_after),
            ),
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

    fn timing(wait: Option<u64>) -> Timing {
        Timing::new(S(300), wait.map(S))
    }

    #[test]
    fn long_poll_detection() {
        let t = timing(Some(50));
        let unchanged = |elapsed| Answer::Unchanged { elapsed };
        // Held for the whole wait, or at least half of it: ask again at once.
        for from in [Session::Polling, Session::LongPolling] {
            assert_eq!(
                from.on_answer(unchanged(S(50)), &t, 0.3),
                (Session::LongPolling, Duration::ZERO)
            );
            assert_eq!(
                from.on_answer(unchanged(S(25)), &t, 0.3),
                (Session::LongPolling, Duration::ZERO)
            );
            // Answered at once: the server does not hold, plain polling.
            assert_eq!(
                from.on_answer(unchanged(S(1)), &t, 0.0),
                (Session::Polling, S(270))
            );
        }
        // Long-polling off: always the poll interval.
        assert_eq!(
            Session::LongPolling.on_answer(unchanged(S(50)), &timing(None), 0.5),
            (Session::Polling, S(300))
        );
    }

    #[test]
    fn a_document_long_polls_only_with_an_etag_and_a_wait() {
        let doc = |etag| Answer::Document { etag };
        for from in [
            Session::Polling,
            Session::LongPolling,
            Session::BackingOff {
                transient: 3,
                rejected: 1,
            },
        ] {
            assert_eq!(
                from.on_answer(doc(true), &timing(Some(50)), 0.5),
                (Session::LongPolling, Duration::ZERO),
                "{from:?}"
            );
            assert_eq!(
                from.on_answer(doc(false), &timing(Some(50)), 0.5),
                (Session::Polling, S(300)),
                "{from:?}"
            );
            assert_eq!(
                from.on_answer(doc(true), &timing(None), 0.0),
                (Session::Polling, S(270)),
                "{from:?}"
            );
        }
    }

    #[test]
    fn failures_back_off_and_any_answer_ends_it() {
        let t = timing(Some(50));
        let failed = Answer::Failed { retry_after: None };
        let (s1, d1) = Session::LongPolling.on_answer(failed, &t, 1.0);
        assert_eq!(
            (s1, d1),
            (
                Session::BackingOff {
                    transient: 1,
                    rejected: 0
                },
                S(5)
            )
        );
        let (s2, d2) = s1.on_answer(failed, &t, 1.0);
        assert_eq!(
            (s2, d2),
            (
                Session::BackingOff {
                    transient: 2,
                    rejected: 0
                },
                S(10)
            )
        );
        // Retry-After is a floor.
        let limited = Answer::Failed {
            retry_after: Some(S(90)),
        };
        assert_eq!(s2.on_answer(limited, &t, 1.0).1, S(90));
        // An answer forgets the failures: the next one starts again at 5 s.
        let (answered, _) = s2.on_answer(Answer::Unchanged { elapsed: S(0) }, &t, 0.5);
        assert_eq!(answered, Session::Polling);
        assert_eq!(answered.on_answer(failed, &t, 1.0).1, S(5));
    }

    #[test]
    fn a_rejected_token_backs_off_from_the_poll_interval() {
        let t = timing(Some(50));
        let mut session = Session::Polling;
        let mut delays = Vec::new();
        for _ in 0..5 {
            let (next, delay) = session.on_answer(Answer::TokenRejected, &t, 1.0);
            session = next;
            delays.push(delay);
        }
        assert_eq!(delays, [S(300), S(600), S(1200), S(2400), S(3600)]);
        // A transient failure in between neither resets the token back-off nor is
        // counted in it; a rejection resets the transient one.
        let mut session = Session::BackingOff {
            transient: 0,
            rejected: 2,
        };
        let failed = Answer::Failed { retry_after: None };
        session = session.on_answer(failed, &t, 1.0).0;
        session = session.on_answer(failed, &t, 1.0).0;
        assert_eq!(
            session,
            Session::BackingOff {
                transient: 2,
                rejected: 2
            }
        );
        let (session, delay) = session.on_answer(Answer::TokenRejected, &t, 1.0);
        assert_eq!(delay, S(1200));
        assert_eq!(
            session,
            Session::BackingOff {
                transient: 0,
                rejected: 3
            }
        );
        assert_eq!(session.on_answer(failed, &t, 1.0).1, S(5));
    }

    proptest! {
        /// Whatever the answers, every wait is bounded: at most an hour (token back-off
        /// cap) or the server's clamped `Retry-After`, and zero only when long-polling.
        #[test]
        fn every_transition_waits_a_bounded_time(
            answers in proptest::collection::vec((0u8..4, 0u64..120, any::<bool>()), 1..60),
            unit in 0.0f64..1.0,
        ) {
            let t = timing(Some(50));
            let mut session = Session::default();
            for (kind, secs, flag) in answers {
                let answer = match kind {
                    0 => Answer::Document { etag: flag },
                    1 => Answer::Unchanged { elapsed: S(secs) },
                    2 => Answer::TokenRejected,
                    _ => Answer::Failed { retry_after: flag.then_some(S(secs)) },
                };
                let (next, delay) = session.on_answer(answer, &t, unit);
                prop_assert!(delay <= S(3600), "{delay:?}");
                prop_assert_eq!(delay == Duration::ZERO, next == Session::LongPolling);
                session = next;
            }
        }

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

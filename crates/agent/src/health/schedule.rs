//! PURE: when a task's cron schedule last fired, and whether its work is overdue.
//!
//! Owns: turning the middleware's five cron fields (plus a snapshot task's begin/end
//! window) into past fire times with the `croner` crate, and the two overdue rules:
//! Cloud Sync ("no successful run since the last fire that is at least `grace` ago") and
//! snapshots ("newest snapshot older than the second-to-last fire").
//! Does not: read the clock or the time zone — `now` and the NAS's UTC offset are inputs.
//! Invariants: total: a schedule croner cannot parse, or one that never fires in the
//! search horizon, yields `None` (the caller reports "cannot judge"), never a panic.
//! Limitations: the NAS's offset is applied as a fixed offset at `now`, so a daylight-
//! saving change between the last fires and `now` shifts them by the DST step (one hour);
//! the Cloud Sync grace (hours) absorbs that. Fires are searched at most
//! [`SEARCH_LIMIT`] occurrences back (a window that never matches yields `None`).

use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, Timelike, Utc};

use crate::desired::{Cron, HhMm};

/// How many past occurrences are inspected at most when a begin/end window filters them
/// (an hourly schedule with a one-hour window needs at most 24 per day).
pub const SEARCH_LIMIT: usize = 24 * 60 * 2;

/// A parsed schedule, optionally restricted to a daily window (snapshot tasks).
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    /// The five fields as the middleware holds them, for messages.
    text: String,
    window: Option<(HhMm, HhMm)>,
}

/// A schedule croner could not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule `{schedule}` is not a cron expression this agent understands: {reason}")]
pub struct ScheduleError {
    pub schedule: String,
    pub reason: String,
}

impl Schedule {
    /// Parses the five fields (POSIX semantics: day-of-month OR day-of-week when both
    /// are restricted, as the middleware's croniter does).
    pub fn parse(cron: &Cron) -> Result<Schedule, ScheduleError> {
        let text = cron.to_string();
        croner::Cron::from_str(&text)
            .map(|parsed| Schedule {
                cron: parsed,
                text: text.clone(),
                window: None,
            })
            .map_err(|e| ScheduleError {
                schedule: text,
                reason: e.to_string(),
            })
    }

    /// Restricts fires to `[begin, end]` local time of day (zettarepl's window; an
    /// `end` before `begin` spans midnight).
    #[must_use]
    pub fn with_window(mut self, begin: HhMm, end: HhMm) -> Schedule {
        self.window = Some((begin, end));
        self
    }

    /// The cron fields, e.g. `0 0 * * *`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The latest fire time at or before `at` (local wall clock = `at` + `offset`).
    pub fn previous(&self, at: DateTime<Utc>, offset: FixedOffset) -> Option<DateTime<Utc>> {
        self.previous_n(at, offset, 1).into_iter().next()
    }

    /// Up to `n` latest fire times at or before `at`, newest first.
    pub fn previous_n(
        &self,
        at: DateTime<Utc>,
        offset: FixedOffset,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let local = at.with_timezone(&offset);
        let mut out = Vec::with_capacity(n);
        // `iter_before` is exclusive; start one second later to include `at` itself.
        let start = local + Duration::seconds(1);
        for fire in self.cron.iter_before(start).take(SEARCH_LIMIT) {
            if out.len() == n {
                break;
            }
            if self.in_window(fire.time()) {
                out.push(fire.with_timezone(&Utc));
            }
        }
        out
    }

    fn in_window(&self, time: NaiveTime) -> bool {
        let Some((begin, end)) = self.window else {
            return true;
        };
        let minutes = |h: HhMm| {
            let text = h.to_string();
            let (hh, mm) = text.split_once(':').unwrap_or(("0", "0"));
            hh.parse::<u32>().unwrap_or(0) * 60 + mm.parse::<u32>().unwrap_or(0)
        };
        let now = time.hour() * 60 + time.minute();
        let (b, e) = (minutes(begin), minutes(end));
        if b <= e {
            (b..=e).contains(&now)
        } else {
            now >= b || now <= e
        }
    }
}

/// The Cloud Sync overdue rule.
///
/// The deadline is the latest scheduled fire `f` with `f + grace <= now`: that run has
/// had its grace to finish. The task is overdue when no successful run finished at or
/// after the deadline. A task that never succeeded is overdue only if the deadline is
/// not before `known_since` (the first time the task was seen or ran): a task created
/// this morning is not overdue for last night's fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncDue {
    /// The fire the last success must not be older than (`None`: no fire in reach yet).
    pub deadline: Option<DateTime<Utc>>,
    pub overdue: bool,
}

/// Applies the Cloud Sync overdue rule (see [`SyncDue`]).
pub fn sync_due(
    schedule: &Schedule,
    now: DateTime<Utc>,
    offset: FixedOffset,
    grace: Duration,
    last_success: Option<DateTime<Utc>>,
    known_since: Option<DateTime<Utc>>,
) -> SyncDue {
    let deadline = schedule.previous(now - grace, offset);
    let overdue = match (deadline, last_success) {
        (None, _) => false,
        (Some(d), Some(success)) => success < d,
        (Some(d), None) => known_since.is_none_or(|since| d >= since),
    };
    SyncDue { deadline, overdue }
}

/// The snapshot overdue rule: the newest snapshot must not be older than the
/// second-to-last fire (so one missed or in-progress fire is tolerated, "~2 periods"),
/// minus `tolerance` for snapshot names that round the time down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotDue {
    /// The time the newest snapshot must not be older than (`None`: fewer than two fires).
    pub deadline: Option<DateTime<Utc>>,
    pub overdue: bool,
}

/// Applies the snapshot overdue rule (see [`SnapshotDue`]). With no snapshot at all the
/// task is overdue once the deadline is not before `known_since`.
pub fn snapshot_due(
    schedule: &Schedule,
    now: DateTime<Utc>,
    offset: FixedOffset,
    newest: Option<DateTime<Utc>>,
    known_since: Option<DateTime<Utc>>,
) -> SnapshotDue {
    let tolerance = Duration::minutes(1);
    let fires = schedule.previous_n(now, offset, 2);
    let deadline = fires.get(1).map(|second| *second - tolerance);
    let overdue = match (deadline, newest) {
        (None, _) => false,
        (Some(d), Some(newest)) => newest < d,
        (Some(d), None) => known_since.is_none_or(|since| d >= since),
    };
    SnapshotDue { deadline, overdue }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn cron(line: &str) -> Schedule {
        let f: Vec<&str> = line.split_whitespace().collect();
        Schedule::parse(&Cron::from_fields(f[0], f[1], f[2], f[3], f[4])).unwrap()
    }

    const UTC0: i32 = 0;

    /// (last success or newest snapshot, known since, expected overdue, why)
    type Case = (
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        bool,
        &'static str,
    );

    fn off(hours: i32) -> FixedOffset {
        FixedOffset::east_opt(hours * 3600).unwrap()
    }

    #[test]
    fn previous_fires_daily_and_hourly() {
        let daily = cron("0 0 * * *");
        assert_eq!(
            daily.previous(utc(2026, 11, 23, 10, 0), off(UTC0)),
            Some(utc(2026, 11, 23, 0, 0))
        );
        // Inclusive: exactly at the fire time.
        assert_eq!(
            daily.previous(utc(2026, 11, 23, 0, 0), off(UTC0)),
            Some(utc(2026, 11, 23, 0, 0))
        );
        let hourly = cron("0 * * * *");
        assert_eq!(
            hourly.previous_n(utc(2026, 11, 23, 10, 30), off(UTC0), 3),
            vec![
                utc(2026, 11, 23, 10, 0),
                utc(2026, 11, 23, 9, 0),
                utc(2026, 11, 23, 8, 0)
            ]
        );
    }

    #[test]
    fn the_nas_offset_moves_local_midnight() {
        // 00:00 at UTC+2 is 22:00 UTC the day before.
        let daily = cron("0 0 * * *");
        assert_eq!(
            daily.previous(utc(2026, 11, 23, 10, 0), off(2)),
            Some(utc(2026, 11, 22, 22, 0))
        );
        // 00:00 at UTC-5 is 05:00 UTC.
        assert_eq!(
            daily.previous(utc(2026, 11, 23, 10, 0), off(-5)),
            Some(utc(2026, 11, 23, 5, 0))
        );
    }

    #[test]
    fn middleware_spellings_parse() {
        // The middleware's default minute is "00"; Observed normalises to "0".
        let s = Schedule::parse(&Cron::from_fields("00", "0", "*", "*", "*")).unwrap();
        assert_eq!(s.text(), "0 0 * * *");
        let weekdays = cron("30 2 * * 1-5");
        // 2026-11-23 is a Monday; Sunday 22nd is skipped going back from Monday 01:00.
        assert_eq!(
            weekdays.previous(utc(2026, 11, 23, 1, 0), off(UTC0)),
            Some(utc(2026, 11, 20, 2, 30))
        );
    }

    #[test]
    fn windows_filter_fires() {
        let hourly = cron("0 * * * *")
            .with_window(HhMm::parse("08:00").unwrap(), HhMm::parse("18:00").unwrap());
        assert_eq!(
            hourly.previous(utc(2026, 11, 23, 6, 30), off(UTC0)),
            Some(utc(2026, 11, 22, 18, 0))
        );
        let night = cron("0 * * * *")
            .with_window(HhMm::parse("22:00").unwrap(), HhMm::parse("02:00").unwrap());
        assert_eq!(
            night.previous_n(utc(2026, 11, 23, 12, 0), off(UTC0), 2),
            vec![utc(2026, 11, 23, 2, 0), utc(2026, 11, 23, 1, 0)]
        );
        let never = cron("0 12 * * *")
            .with_window(HhMm::parse("01:00").unwrap(), HhMm::parse("02:00").unwrap());
        assert_eq!(never.previous(utc(2026, 11, 23, 12, 0), off(UTC0)), None);
    }

    #[test]
    fn sync_overdue_table() {
        let daily = cron("0 0 * * *");
        let grace = Duration::hours(12);
        let now = utc(2026, 11, 23, 13, 0); // deadline = today 00:00 (13:00 - 12h = 01:00)
        let cases: &[Case] = &[
            (
                Some(utc(2026, 11, 23, 0, 40)),
                None,
                false,
                "tonight's run succeeded",
            ),
            (
                Some(utc(2026, 11, 22, 0, 40)),
                None,
                true,
                "only yesterday's run succeeded",
            ),
            (None, None, true, "never ran, known for long"),
            (
                None,
                Some(utc(2026, 11, 23, 9, 0)),
                false,
                "never ran but created after the deadline",
            ),
            (
                None,
                Some(utc(2026, 11, 22, 9, 0)),
                true,
                "never ran, created before the deadline",
            ),
        ];
        for (success, since, overdue, why) in cases {
            let due = sync_due(&daily, now, off(UTC0), grace, *success, *since);
            assert_eq!(due.overdue, *overdue, "{why}");
            assert_eq!(due.deadline, Some(utc(2026, 11, 23, 0, 0)), "{why}");
        }
        // Within the grace of tonight's fire, yesterday's success is still enough.
        let early = utc(2026, 11, 23, 11, 0);
        let due = sync_due(
            &daily,
            early,
            off(UTC0),
            grace,
            Some(utc(2026, 11, 22, 0, 40)),
            None,
        );
        assert_eq!(due.deadline, Some(utc(2026, 11, 22, 0, 0)));
        assert!(!due.overdue);
    }

    #[test]
    fn snapshot_overdue_table() {
        let hourly = cron("0 * * * *");
        let now = utc(2026, 11, 23, 10, 30); // fires 10:00, 09:00 → deadline 08:59
        let cases: &[Case] = &[
            (Some(utc(2026, 11, 23, 10, 0)), None, false, "current"),
            (
                Some(utc(2026, 11, 23, 9, 0)),
                None,
                false,
                "one fire missed/in progress",
            ),
            (
                Some(utc(2026, 11, 23, 8, 0)),
                None,
                true,
                "two fires missed",
            ),
            (None, None, true, "none at all"),
            (None, Some(utc(2026, 11, 23, 9, 30)), false, "task is new"),
        ];
        for (newest, since, overdue, why) in cases {
            let due = snapshot_due(&hourly, now, off(UTC0), *newest, *since);
            assert_eq!(due.overdue, *overdue, "{why}");
        }
    }

    #[test]
    fn unparsable_schedule_is_an_error_not_a_panic() {
        let bad = Schedule::parse(&Cron::from_fields("61", "*", "*", "*", "*"));
        assert!(bad.is_err());
        assert!(bad.unwrap_err().to_string().contains("61 * * * *"));
    }
}

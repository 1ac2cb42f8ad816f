//! PURE: one pool's Cloud Sync task — last run, last success, overdue, failure class,
//! and the verdict a technician reads.
//!
//! Owns: the last-success sources and their precedence, and the ordered verdict (disabled → locked →
//! failed → overdue → state). Dry runs are never runs: a task whose `job` field is a dry
//! run is judged by its last real run, or is "unknown" when that is no longer known.
//! Does not: find the pool's task (`tasks`), parse cron or classify texts (`schedule`,
//! `classify`), or do I/O.
//! Invariants: a run that failed only on Object Lock counts as a success and is never a
//! problem; every problem carries a next step; no task another pool owns is borrowed.
//! Limitations: a task matched by identity (not owned) is trusted to be the pool's when
//! it is the only PUSH task from `/mnt/<pool>` that fits best.

use chrono::{DateTime, Utc};

use super::classify::{Classified, ErrorClass, classify};
use super::observe::TaskRuns;
use super::schedule::{Schedule, sync_due};
use super::tasks::cloud_sync_task;
use super::{
    Area, CloudSyncHealth, Ctx, Level, Problem, SuccessSource, SyncState, age_seconds, human_age,
};
use crate::middleware::Job;
use crate::observe::CloudSyncTask;

/// Health of `pool`'s Cloud Sync task.
pub(crate) fn evaluate(ctx: &Ctx<'_>, pool: &str) -> CloudSyncHealth {
    let Some((task, source)) =
        cloud_sync_task(pool, ctx.observed, &ctx.obs.ownership, ctx.bucket())
    else {
        return missing(pool);
    };
    let runs = ctx.obs.runs.get(&task.id);
    let (last, state, only_dry_run) = last_real_run(task, runs);
    let failure = (state == SyncState::Failed).then(|| {
        classify(
            last.and_then(|j| j.error.as_deref()),
            last.and_then(|j| j.logs_excerpt.as_deref()),
            task.locked,
            ctx.redactor,
        )
    });
    let expected_failure = failure.as_ref().is_some_and(|f| f.class.is_expected());
    let remembered = ctx.obs.memory.cloud_sync_task(pool, task.id);
    let candidates = [
        runs.and_then(|r| r.last_success.as_ref())
            .and_then(|j| j.time_finished)
            .map(|t| (t, SuccessSource::Job)),
        last.filter(|_| state == SyncState::Success)
            .and_then(|j| j.time_finished)
            .map(|t| (t, SuccessSource::Job)),
        last.filter(|_| expected_failure)
            .and_then(|j| j.time_finished)
            .map(|t| (t, SuccessSource::ExpectedFailure)),
        remembered
            .and_then(|m| m.last_success)
            .map(|t| (t, SuccessSource::Remembered)),
    ];
    // Newest wins; on a tie the earlier candidate (a live job) is named as the source.
    let best =
        candidates
            .into_iter()
            .flatten()
            .fold(
                None::<(DateTime<Utc>, SuccessSource)>,
                |best, c| match best {
                    Some(b) if b.0 >= c.0 => Some(b),
                    _ => Some(c),
                },
            );
    let known_since = remembered
        .map(|m| m.first_seen)
        .into_iter()
        .chain(last.and_then(|j| j.time_started))
        .min()
        .unwrap_or(ctx.now);
    let schedule = Schedule::parse(&task.schedule);
    let due = schedule.as_ref().ok().map(|s| {
        sync_due(
            s,
            ctx.now,
            ctx.offset,
            ctx.policy.sync_grace,
            best.map(|b| b.0),
            Some(known_since),
        )
    });
    let mut health = CloudSyncHealth {
        pool: pool.to_owned(),
        task_id: Some(task.id),
        task_source: Some(source),
        description: Some(task.description.clone()),
        enabled: task.enabled,
        locked: task.locked,
        state,
        last_started: last.and_then(|j| j.time_started),
        last_finished: last.and_then(|j| j.time_finished),
        progress_percent: last
            .filter(|_| state == SyncState::Running)
            .and_then(|j| j.progress.percent),
        progress_description: last
            .filter(|_| state == SyncState::Running)
            .and_then(|j| j.progress.description.as_deref())
            .map(|d| ctx.redactor.scrub(d)),
        last_success: best.map(|b| b.0),
        last_success_source: best.map(|b| b.1),
        due_since: due.and_then(|d| d.deadline),
        overdue: due.is_some_and(|d| d.overdue),
        schedule: Some(task.schedule.to_string()),
        failure,
        level: Level::Ok,
        message: String::new(),
        next_step: None,
    };
    let (level, message, next_step) = verdict(
        &health,
        ctx.now,
        schedule.is_err(),
        ctx.bucket(),
        only_dry_run,
    );
    health.level = level;
    health.message = message;
    health.next_step = next_step;
    health
}

/// The last real run, its state, and whether TrueNAS shows only a dry run (the last real
/// run is then unknown).
fn last_real_run<'a>(
    task: &CloudSyncTask,
    runs: Option<&'a TaskRuns>,
) -> (Option<&'a Job>, SyncState, bool) {
    let last = runs.and_then(|r| r.last.as_ref());
    let only_dry_run = last.is_none() && runs.map_or(task.dry_run_shown, |r| r.dry_run_shown);
    let state = match (runs, last) {
        (_, Some(job)) => SyncState::from_job(job.state),
        _ if only_dry_run => SyncState::Unknown,
        // The runs could not be read: fall back to the state `Observed` carries.
        (None, None) => task
            .last_run
            .map_or(SyncState::NeverRun, SyncState::from_job),
        (Some(_), None) => SyncState::NeverRun,
    };
    (last, state, only_dry_run)
}

fn missing(pool: &str) -> CloudSyncHealth {
    CloudSyncHealth {
        pool: pool.to_owned(),
        task_id: None,
        task_source: None,
        description: None,
        enabled: false,
        locked: false,
        state: SyncState::Missing,
        last_started: None,
        last_finished: None,
        progress_percent: None,
        progress_description: None,
        last_success: None,
        last_success_source: None,
        due_since: None,
        overdue: false,
        schedule: None,
        failure: None,
        level: Level::Failing,
        message: format!(
            "no Cloud Sync task backs up /mnt/{pool}: this pool has no offsite backup"
        ),
        next_step: Some(format!(
            "Run `truenas-agent apply` with the NAS's desired-state document, or create the \
             task by hand as in SOP 5.2 (Data Protection → Cloud Sync Tasks → Add, source \
             /mnt/{pool})."
        )),
    }
}

type Verdict = (Level, String, Option<String>);

const RUN_NOW: &str = "then start it with Run Now (Data Protection → Cloud Sync Tasks) or run \
                       `truenas-agent apply` with a `run_cloud_sync` action";

/// What a technician is told: the first blocking fact wins, else the run state speaks.
fn verdict(
    h: &CloudSyncHealth,
    now: DateTime<Utc>,
    bad_schedule: bool,
    bucket: Option<&str>,
    only_dry_run: bool,
) -> Verdict {
    let name = format!(
        "\"{}\" (task {})",
        h.description.as_deref().unwrap_or("?"),
        h.task_id.unwrap_or_default()
    );
    let ago = |t: Option<DateTime<Utc>>| {
        t.map_or_else(
            || "never".to_owned(),
            |t| format!("{} ago", human_age(age_seconds(now, t))),
        )
    };
    blocking(h, &name, &ago, now, bad_schedule, bucket)
        .unwrap_or_else(|| by_state(h, &name, &ago, only_dry_run))
}

/// Disabled, locked, failed, overdue or not judgeable — in that order.
fn blocking(
    h: &CloudSyncHealth,
    name: &str,
    ago: &dyn Fn(Option<DateTime<Utc>>) -> String,
    now: DateTime<Utc>,
    bad_schedule: bool,
    bucket: Option<&str>,
) -> Option<Verdict> {
    let last_ok = ago(h.last_success);
    let run_now = RUN_NOW;
    let class = h.failure.as_ref().map(|f| f.class);
    let failed_hard = h.state == SyncState::Failed && !class.is_some_and(ErrorClass::is_expected);
    let in_progress = matches!(h.state, SyncState::Running | SyncState::Waiting);
    if !h.enabled {
        return Some((
            Level::Failing,
            format!("{name} is disabled: no backups run (last success: {last_ok})"),
            Some(format!(
                "Enable it (Data Protection → Cloud Sync Tasks → {} → Enabled), or run \
                 `truenas-agent apply`.",
                h.description.as_deref().unwrap_or("the task")
            )),
        ));
    }
    if h.locked {
        return Some((
            Level::Failing,
            format!(
                "{name} cannot run: the dataset under /mnt/{} is locked",
                h.pool
            ),
            Some(format!(
                "Unlock the encrypted dataset (Datasets → {} → Unlock) with its key or \
                 passphrase, {run_now}.",
                h.pool
            )),
        ));
    }
    if failed_hard {
        let failure = h.failure.as_ref();
        let summary = failure.map_or("", |f| f.summary.as_str());
        return Some((
            Level::Failing,
            format!(
                "{name} failed {} ({}): {summary}",
                ago(h.last_finished),
                class.map_or("other", ErrorClass::as_str)
            ),
            Some(failure_step(
                class.unwrap_or(ErrorClass::Other),
                h,
                bucket,
                run_now,
            )),
        ));
    }
    if h.overdue && in_progress {
        return Some((
            Level::Warning,
            format!(
                "{name} is running (started {}) but the last successful backup was {last_ok}",
                ago(h.last_started)
            ),
            Some(
                "Let it finish (a first upload can take days, SOP 7.1); if it stays stuck, \
                 check the task log and the uplink."
                    .to_owned(),
            ),
        ));
    }
    if h.overdue {
        let due = h.due_since.map_or_else(String::new, |d| {
            format!(
                " since the run scheduled {} ago",
                human_age(age_seconds(now, d))
            )
        });
        return Some((
            Level::Failing,
            format!("{name} is overdue: no successful backup{due} (last success: {last_ok})"),
            Some(format!(
                "Check that the schedule ({}) is right and read the task log (Data Protection → \
                 Cloud Sync Tasks → {} → Logs); {run_now}.",
                h.schedule.as_deref().unwrap_or("?"),
                h.description.as_deref().unwrap_or("the task")
            )),
        ));
    }
    if bad_schedule {
        return Some((
            Level::Unknown,
            format!(
                "{name}: cannot tell whether backups are on time, the schedule `{}` is not understood",
                h.schedule.as_deref().unwrap_or("?")
            ),
            Some("Set the SOP schedule (daily at 00:00) or run `truenas-agent apply`.".to_owned()),
        ));
    }
    None
}

/// The run state's verdict when nothing blocks.
fn by_state(
    h: &CloudSyncHealth,
    name: &str,
    ago: &dyn Fn(Option<DateTime<Utc>>) -> String,
    only_dry_run: bool,
) -> Verdict {
    let last_ok = ago(h.last_success);
    let run_now = RUN_NOW;
    match h.state {
        SyncState::Unknown if only_dry_run => (
            Level::Unknown,
            format!(
                "{name}: TrueNAS shows only a dry run, which uploads nothing; the last real run \
                 is no longer in the middleware's memory (last success: {last_ok})"
            ),
            Some(format!(
                "Wait for the next scheduled run or start a real one (Data Protection → Cloud \
                 Sync Tasks → {} → Run Now, not Dry Run), then run `truenas-agent verify` again.",
                h.description.as_deref().unwrap_or("the task")
            )),
        ),
        SyncState::NeverRun => (
            Level::Warning,
            format!("{name} has never run: nothing is in B2 yet"),
            Some(format!(
                "Start the first run now (SOP 7.1): Data Protection → Cloud Sync Tasks → {} → \
                 Run Now, or add a `run_cloud_sync` action to the document.",
                h.description.as_deref().unwrap_or("the task")
            )),
        ),
        SyncState::Aborted => (
            Level::Warning,
            format!(
                "{name}: the last run was aborted {} (last success: {last_ok})",
                ago(h.last_finished)
            ),
            Some(format!("If nobody meant to stop it, {run_now}.")),
        ),
        SyncState::Unknown => (
            Level::Unknown,
            format!("{name}: the state of the last run is unknown (last success: {last_ok})"),
            Some("Look at the task in Data Protection → Cloud Sync Tasks.".to_owned()),
        ),
        SyncState::Failed => (
            Level::Ok,
            format!(
                "{name} finished {}; some deletes were refused by B2 Object Lock — expected \
                 (SOP §7): those files stay until their 14-day lock ends",
                ago(h.last_finished)
            ),
            None,
        ),
        SyncState::Running => (
            Level::Ok,
            format!(
                "{name} is running{} (started {}; last success: {last_ok})",
                h.progress_percent
                    .map_or_else(String::new, |p| format!(", {p:.0}%")),
                ago(h.last_started)
            ),
            None,
        ),
        SyncState::Waiting => (
            Level::Ok,
            format!("{name} is queued (last success: {last_ok})"),
            None,
        ),
        SyncState::Success | SyncState::Missing => (
            Level::Ok,
            format!("{name}: last successful backup {last_ok}"),
            None,
        ),
    }
}

fn failure_step(
    class: ErrorClass,
    h: &CloudSyncHealth,
    bucket: Option<&str>,
    run_now: &str,
) -> String {
    // Without a document the bucket's name is not known here: name it by its rule.
    let scope = bucket.map_or_else(
        || "the NAS's bucket (truenas-<location UUID without dashes>, SOP 3.2)".to_owned(),
        |b| format!("bucket {b}"),
    );
    let desc = h.description.as_deref().unwrap_or("the task");
    match class {
        ErrorClass::Auth => format!(
            "B2 refused the task's key (SOP §7 \"B2 credential verification failed\"). In \
             Credentials → Backup Credentials → Cloud Credentials, open the credential and click \
             Verify Credential; if it fails, re-enter the Key ID and Application Key from the \
             client's IT Glue record — the key must be scoped to {scope} \
             (`truenas-agent verify` checks it). Then Run Now."
        ),
        ErrorClass::Network => format!(
            "The NAS could not reach Backblaze: check DNS and the gateway (does \
             `api.backblazeb2.com` resolve, is outbound port 443 open?) and status.backblaze.com; \
             {run_now}."
        ),
        ErrorClass::DatasetLocked => format!(
            "Unlock the encrypted dataset (Datasets → {} → Unlock), {run_now}.",
            h.pool
        ),
        ErrorClass::Other | ErrorClass::RetentionLocked => format!(
            "Read the task log (Data Protection → Cloud Sync Tasks → {desc} → Logs) and fix the \
             error it shows; {run_now}."
        ),
    }
}

/// The problem this task's health represents, if any.
pub(crate) fn problem(h: &CloudSyncHealth, out: &mut Vec<Problem>) {
    if h.level == Level::Ok {
        return;
    }
    out.push(Problem {
        level: h.level,
        area: Area::Backup,
        subject: Some(h.pool.clone()),
        message: h.message.clone(),
        next_step: h.next_step.clone().unwrap_or_default(),
    });
}

/// The failure's class string for the report (`None` unless the last run failed).
pub(crate) fn error_class(h: &CloudSyncHealth) -> Option<&'static str> {
    h.failure.as_ref().map(|f: &Classified| f.class.as_str())
}

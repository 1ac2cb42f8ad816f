//! PURE: the SOP §6 verification checklist, item by item, with stable ids.
//!
//! Owns: the item list (ids, SOP titles, scope), how each item is decided — the box
//! against the **SOP's** value, with the document's value only to tell a deliberate
//! deviation ([`ItemStatus::Deviates`]) from a failure — from `Observed`, the health
//! evaluation and the B2 report, the mapping of B2 findings onto items, and each item's
//! next step. The item types themselves are in `model` (re-exported here).
//! Does not: fetch anything, or decide exit codes beyond [`Checklist::verdict`]; judge
//! drift (box vs document: that is the plan's question).
//! Invariants: every SOP §6 line yields at least one item (per-pool lines one per
//! managed pool), always in SOP order, then the B2 checks the SOP implies but does not
//! list (`b2.*` finding ids); an item passes only when the box holds the SOP's value — a
//! document override never makes an item pass; items only central can check (NinjaOne,
//! IT Glue, HaloPSA) are [`ItemStatus::NotChecked`] — `unknown` on the wire — never
//! `pass`; a B2 `info` finding counts as `pass` (it never fails a box) and keeps its text
//! in the detail; an unknown item's next step says how to get an answer, never how to
//! fix a failure.
//! Limitations: the bucket-name line of SOP §6 (`truenas-{org-flat}-{loc-short}`)
//! contradicts SOP Phase 3; the Phase 3 formula (the central contract's) is checked and
//! the item's detail says so. Without `cloud_sync.bandwidth` the client's uplink is not
//! known, so a task that has some limit is `unknown` (one without any limit fails).

use std::collections::BTreeSet;
use std::fmt::Write as _;

pub(crate) use super::against::DEVIATES;
use super::against::{
    Against, Judged, Lifetime, Setting, Window, combine_lines, deviation_text, on_off,
    show_lifetime, show_window,
};
pub(crate) use super::model::{
    Checklist, ChecklistItem, Deviation, ItemScope, ItemStatus, Verdict, item_level,
};
use super::{Area, CloudSyncHealth, Health, HealthObservations, Level, Problem, SyncState};
use crate::b2::{self, CheckId, Finding};
use crate::desired::{
    BandwidthPlan, BwLimit, Cron, DesiredState, HhMm, SnapshotSettings, derive, sop,
};
use crate::observe::{CloudSyncTask, Observed, SecretView, SnapshotTask};
use crate::plan::{self, spec::show_bwlimit};

/// Items whose facts the health sections also judge (SNMP, the pool's backup task).
pub(crate) fn is_restated_by_health(id: &str) -> bool {
    id == "snmp.v3_only" || id.starts_with("cloud_sync.first_sync/")
}

/// True when `problems` (the health sections' own) already report this item's facts at
/// its level or worse, so the item need not be listed again. A failing item that the
/// health only calls a warning (a task that never ran yet, an aborted first run) is
/// listed: a failing checklist item is always a FAILING problem.
pub(crate) fn restated_in(item_id: &str, level: Level, problems: &[Problem]) -> bool {
    if !is_restated_by_health(item_id) {
        return false;
    }
    let pool = item_id.strip_prefix("cloud_sync.first_sync/");
    problems.iter().any(|p| {
        p.level >= level
            && match pool {
                Some(pool) => p.area == Area::Backup && p.subject.as_deref() == Some(pool),
                None => p.area == Area::Snmp,
            }
    })
}

/// Text for items only central can check.
const CENTRAL_ONLY: &str = "Not checked here: only central can see NinjaOne, IT Glue and \
                            HaloPSA; it reports this item.";

fn item(
    id: &str,
    title: &str,
    scope: ItemScope,
    status: ItemStatus,
    detail: String,
) -> ChecklistItem {
    ChecklistItem {
        id: id.to_owned(),
        title: title.to_owned(),
        status,
        scope,
        pool: None,
        detail,
        next_step: None,
        deviations: Vec::new(),
    }
}

fn central(id: &str, title: &str) -> ChecklistItem {
    item(
        id,
        title,
        ItemScope::Central,
        ItemStatus::NotChecked,
        CENTRAL_ONLY.to_owned(),
    )
}

fn with_step(mut item: ChecklistItem, step: &str) -> ChecklistItem {
    if item.status != ItemStatus::Pass {
        item.next_step = Some(step.to_owned());
    }
    item
}

/// One per-task field rule.
type Rule = fn(&Ctx<'_>, &str, &CloudSyncTask) -> Judged;

/// The next step of an item that deviates.
fn deviation_step(deviations: &[Deviation]) -> String {
    let keys = deviations
        .iter()
        .map(|d| d.setting.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "Nothing to fix on the box: it follows the document, which overrides the SOP here \
         ({keys}). If that is not intended, remove the override from the document at central \
         (the SOP value is the default); the next pass then sets the SOP value."
    )
}

/// The fix of a Cloud Sync task field.
const TASK_FIX: &str = "Run `truenas-agent apply` with the desired-state document (it sets \
                        every SOP 5.2 field), or fix the field in Data Protection → Cloud Sync \
                        Tasks.";

/// Inputs shared by the item rules.
struct Ctx<'a> {
    desired: &'a DesiredState,
    observed: &'a Observed,
    obs: &'a HealthObservations,
    health: &'a Health,
}

/// Evaluates the SOP §6 checklist.
pub(crate) fn evaluate(
    desired: &DesiredState,
    observed: &Observed,
    obs: &HealthObservations,
    health: &Health,
) -> Checklist {
    let c = Ctx {
        desired,
        observed,
        obs,
        health,
    };
    let pools: Vec<&str> = health.cloud_sync.iter().map(|h| h.pool.as_str()).collect();
    let mut items = vec![
        snmp_item(&c),
        guid_item(&c),
        central(
            "guid.ninjaone",
            "Device GUID mirrored in NinjaOne device custom field",
        ),
        bucket_name_item(&c),
        b2_item(
            &c,
            "b2.object_lock",
            "Bucket has object lock enabled in compliance mode",
            &[CheckId::BucketObjectLock, CheckId::BucketDefaultRetention],
        ),
        b2_item(
            &c,
            "b2.sse_b2",
            "Bucket has SSE-B2 enabled",
            &[
                CheckId::BucketDefaultEncryption,
                CheckId::ObjectsAtRestEncryption,
            ],
        ),
        b2_item(
            &c,
            "b2.lifecycle",
            "Bucket lifecycle rule: delete hidden versions after 30 days",
            &[CheckId::BucketLifecycle],
        ),
        b2_item(
            &c,
            "b2.key_scope",
            "Scoped application key restricted to this bucket only",
            &[CheckId::KeyBucketScope],
        ),
        central(
            "itglue.b2_key",
            "B2 Key ID and App Key stored in client's IT Glue record",
        ),
        central(
            "itglue.encryption",
            "Encryption Password and Salt stored in client's IT Glue record",
        ),
    ];
    let task_rules: [(&str, &str, Rule); 11] = [
        (
            "cloud_sync.mode",
            "Cloud Sync Task: PUSH + SYNC mode",
            rule_mode,
        ),
        (
            "cloud_sync.source",
            "Cloud Sync Task source: /mnt/{pool-name}",
            rule_source,
        ),
        (
            "cloud_sync.folder",
            "Cloud Sync Task folder: /{device-guid}/{pool-name}",
            rule_folder,
        ),
        (
            "cloud_sync.schedule",
            "Cloud Sync Task schedule: Daily at 00:00",
            rule_schedule,
        ),
        (
            "cloud_sync.take_snapshot",
            "Take Snapshot: unchecked",
            rule_take_snapshot,
        ),
        (
            "cloud_sync.exclude",
            "Exclude: both /Archive/** and /archive/**",
            rule_exclude,
        ),
        (
            "cloud_sync.chunk_size",
            "Upload Chunk Size: 96 MiB",
            rule_chunk,
        ),
        (
            "cloud_sync.fast_list",
            "Use --fast-list: checked",
            rule_fast_list,
        ),
        (
            "cloud_sync.remote_encryption",
            "Remote Encryption: on",
            rule_encryption,
        ),
        (
            "cloud_sync.filename_encryption",
            "Filename Encryption: off",
            rule_filename_encryption,
        ),
        (
            "cloud_sync.bandwidth",
            "Bandwidth Limit configured per Backup & Data Protection Standards (20% biz hours / 80% off-hours of client uplink)",
            rule_bandwidth,
        ),
    ];
    for (id, title, rule) in task_rules {
        for pool in &pools {
            let task = super::tasks::cloud_sync_task(
                pool,
                observed,
                &obs.ownership,
                Some(&desired.bucket),
            )
            .map(|(t, _)| t);
            let judged = match task {
                Some(task) => rule(&c, pool, task),
                None => Judged::new(
                    ItemStatus::Fail,
                    format!("no Cloud Sync task backs up /mnt/{pool}"),
                ),
            };
            items.push(judged_item(id, title, pool, judged, TASK_FIX));
        }
    }
    for pool in &pools {
        items.push(snapshot_task_item(&c, pool));
    }
    for pool in &pools {
        items.push(first_sync_item(&c, pool));
    }
    for pool in &pools {
        items.push(b2_pool_item(
            &c,
            "b2.archive_absent",
            "Archive folders confirmed absent from B2 listing",
            CheckId::PoolArchiveExcluded,
            pool,
        ));
    }
    for pool in &pools {
        items.push(b2_pool_item(
            &c,
            "b2.encryption_verified",
            "Encryption verified via downloaded file inspection",
            CheckId::PoolEncryptionOn,
            pool,
        ));
    }
    items.push(central(
        "halopsa.ticket",
        "HaloPSA ticket updated with bucket name, device GUID, first-run timestamp",
    ));
    items.extend(supplementary_b2(&c));
    Checklist { items }
}

fn per_pool(
    id: &str,
    title: &str,
    pool: &str,
    scope: ItemScope,
    status: ItemStatus,
    detail: String,
) -> ChecklistItem {
    ChecklistItem {
        id: format!("{id}/{pool}"),
        title: format!("{title} ({pool})"),
        status,
        scope,
        pool: Some(pool.to_owned()),
        detail,
        next_step: None,
        deviations: Vec::new(),
    }
}

/// A per-pool item from a rule's finding, with the next step its status calls for.
fn judged_item(id: &str, title: &str, pool: &str, judged: Judged, fix: &str) -> ChecklistItem {
    let mut out = per_pool(
        id,
        title,
        pool,
        ItemScope::Nas,
        judged.status,
        judged.detail,
    );
    out.next_step = match judged.status {
        ItemStatus::Pass | ItemStatus::NotChecked => None,
        ItemStatus::Deviates => Some(deviation_step(&judged.deviations)),
        ItemStatus::Unknown if id == "cloud_sync.bandwidth" => Some(
            "Add `cloud_sync.bandwidth` with the client's measured or contracted upload speed \
             (and business hours) to the document at central; `verify` can then compare the \
             task's limits with 20 % / 80 % of that uplink."
                .to_owned(),
        ),
        ItemStatus::Unknown => {
            Some("Look at the detail, then run `truenas-agent verify` again.".to_owned())
        }
        ItemStatus::Fail => Some(fix.to_owned()),
    };
    out.deviations = judged.deviations;
    out
}

fn snmp_item(c: &Ctx<'_>) -> ChecklistItem {
    let snmp = &c.health.snmp;
    let title = "TrueNAS box visible in NinjaOne NMS with SNMPv3 only (no v1/v2c)";
    let (status, detail) = if snmp.level == Level::Failing {
        (ItemStatus::Fail, format!("{}.", snmp.findings.join("; ")))
    } else {
        (
            ItemStatus::Pass,
            "SNMPv3 only (SHA/AES, community blank), service running. Whether NinjaOne NMS \
             shows the device green is checked by central."
                .to_owned(),
        )
    };
    let mut out = item("snmp.v3_only", title, ItemScope::Nas, status, detail);
    out.next_step.clone_from(
        &snmp
            .next_step
            .clone()
            .filter(|_| status != ItemStatus::Pass),
    );
    out
}

fn guid_item(c: &Ctx<'_>) -> ChecklistItem {
    let title = "Device GUID stored as com.dtctoday:device-guid ZFS property on root pool";
    let property = &c.obs.guid_property;
    let carriers: Vec<(&str, &str)> = c
        .observed
        .pools
        .iter()
        .filter_map(|p| {
            p.user_properties
                .get(property)
                .filter(|v| !v.is_empty() && *v != "-")
                .map(|v| (p.name.as_str(), v.as_str()))
        })
        .collect();
    let root = c
        .desired
        .device
        .root_pool
        .as_deref()
        .or(c.obs.configured_root.as_deref());
    let on_root = match root {
        Some(root) => carriers.iter().find(|(p, _)| *p == root).copied(),
        None if carriers.len() == 1 => carriers.first().copied(),
        None => None,
    };
    let fix = format!(
        "Run `truenas-agent identity ensure` (add `--guid <NinjaOne value>` when NinjaOne has \
         one): it writes the GUID on the root pool, as the daemon does when it receives a \
         document (`apply` never writes the GUID); by hand: `zfs set {property}=<guid> <root \
         pool>` (SOP 2.2)."
    );
    let (status, detail) = match (on_root, c.desired.device.guid) {
        (None, _) if root.is_none() && carriers.len() > 1 => (
            ItemStatus::Fail,
            format!(
                "several pools carry the property ({}); the GUID belongs on the root pool only",
                carriers
                    .iter()
                    .map(|(p, _)| *p)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (None, _) => (
            ItemStatus::Fail,
            format!(
                "the property is not set on the root pool{}",
                root.map_or_else(String::new, |r| format!(" ({r})"))
            ),
        ),
        (Some((pool, value)), want) => match (derive::parse_uuid(value), want) {
            (None, _) => (
                ItemStatus::Fail,
                format!("the property on {pool} is `{value}`, not a UUID"),
            ),
            (Some(have), Some(want)) if have != want => (
                ItemStatus::Fail,
                format!(
                    "{pool} carries {have} but NinjaOne (via central) says {want}; NinjaOne wins \
                     (SOP §7 \"Device GUID mismatch\")"
                ),
            ),
            (Some(have), _) => (ItemStatus::Pass, format!("{pool} carries {have}")),
        },
    };
    with_step(
        item("guid.zfs_property", title, ItemScope::Nas, status, detail),
        &fix,
    )
}

fn finding<'a>(c: &'a Ctx<'_>, id: CheckId, pool: Option<&str>) -> Option<&'a Finding> {
    c.obs.b2.as_ref().and_then(|r| r.finding(id, pool))
}

/// A finding's detail, saying when B2 was checked if the report is a remembered one.
fn b2_detail(c: &Ctx<'_>, f: &Finding) -> String {
    match (&c.obs.b2, c.obs.b2_reused) {
        (Some(r), true) => format!(
            "(B2 as checked at {}) {}",
            super::rfc3339(&r.checked_at),
            f.detail
        ),
        _ => f.detail.clone(),
    }
}

const B2_NOT_RUN: &str =
    "B2 was not checked in this run (`verify` checks it; `status` shows the last result)";

/// What to do about a B2 item that does not pass (SOP Phase 4 / 5 / 7.3).
fn b2_step(id: &str, bucket: &str) -> String {
    let then = "then run `truenas-agent verify` again.";
    match id {
        "b2.object_lock" => format!(
            "With the B2 admin key (1Password): `b2 update-bucket --defaultRetentionMode compliance \
             --defaultRetentionPeriod \"14 days\" {bucket} allPrivate` (SOP 4.2; compliance mode is \
             irreversible — check the bucket name); {then}"
        ),
        "b2.sse_b2" => format!(
            "Set default encryption SSE-B2 on bucket {bucket} (B2 web UI → Bucket Settings → \
             Encryption, or `b2 update-bucket --defaultServerSideEncryption SSE-B2`, SOP 4.1); \
             objects uploaded before stay unencrypted at rest until rewritten; {then}"
        ),
        "b2.lifecycle" => format!(
            "Set the lifecycle rule of {bucket} to keep only the last version, delete hidden \
             versions after 30 days (`--lifecycleRules '[{{\"daysFromHidingToDeleting\":30,\
             \"daysFromUploadingToHiding\":null,\"fileNamePrefix\":\"\"}}]'`, SOP 4.1); {then}"
        ),
        "b2.key_scope" => format!(
            "Create a key restricted to {bucket} (SOP 4.3), put it into the TrueNAS cloud \
             credential (SOP 5.1) and the client's IT Glue record, delete the old key; {then}"
        ),
        "b2.archive_absent" => format!(
            "Make the task exclude both /Archive/** and /archive/** with source /mnt/<pool> \
             (SOP 5.2, §7), then remove the Archive objects from {bucket} (they stay until their \
             Object Lock expires); {then}"
        ),
        "b2.encryption_verified" => format!(
            "Turn Remote Encryption on with the password and salt from IT Glue (SOP 5.2), run the \
             sync again, and hide the plaintext objects in {bucket} (Object Lock keeps them until their \
             retention ends; the lifecycle rule then deletes them) (SOP 7.3); {then}"
        ),
        _ => format!("Act on the detail above (B2 web UI or `b2` CLI, SOP Phase 4); {then}"),
    }
}

/// An item decided by B2 findings: a failing finding decides; else the first finding.
fn b2_item(c: &Ctx<'_>, id: &str, title: &str, checks: &[CheckId]) -> ChecklistItem {
    let found: Vec<&Finding> = checks.iter().filter_map(|k| finding(c, *k, None)).collect();
    let (status, detail) = combine(c, &found);
    with_b2_step(c, item(id, title, ItemScope::B2, status, detail), id)
}

/// The next step of a B2 item: the fix when it fails, how to get an answer when it is
/// only unknown (never a fix: an unknown item may well be fine).
fn with_b2_step(c: &Ctx<'_>, mut item: ChecklistItem, id: &str) -> ChecklistItem {
    item.next_step = match item.status {
        ItemStatus::Pass | ItemStatus::NotChecked => None,
        ItemStatus::Unknown => Some(b2_unknown_step(c)),
        ItemStatus::Fail | ItemStatus::Deviates => Some(b2_step(id, &c.desired.bucket)),
    };
    item
}

/// How to get an answer for a B2 item that is unknown.
fn b2_unknown_step(c: &Ctx<'_>) -> String {
    if c.obs.b2.is_none() {
        return "B2 was not checked: run `truenas-agent verify -f <document>` (without \
                --skip-b2), or `truenas-agent status -f <document> --check-b2`, to check the \
                bucket now."
            .to_owned();
    }
    "Nothing to change for this item yet: it is unknown, not failing — B2 gave no answer \
     (the detail says why: B2 unreachable, a setting the key may not read, or nothing \
     uploaded yet). To get one: check that the NAS reaches Backblaze (does \
     `api.backblazeb2.com` resolve, is outbound HTTPS/443 open, status.backblaze.com) and \
     that the first sync has uploaded files, then run `truenas-agent verify -f <document>` \
     again."
        .to_owned()
}

fn combine(c: &Ctx<'_>, found: &[&Finding]) -> (ItemStatus, String) {
    let Some(primary) = found.first() else {
        return (ItemStatus::Unknown, B2_NOT_RUN.to_owned());
    };
    let failing: Vec<&&Finding> = found
        .iter()
        .filter(|f| f.status == b2::Status::Fail)
        .collect();
    if !failing.is_empty() {
        let detail = failing
            .iter()
            .map(|f| b2_detail(c, f))
            .collect::<Vec<_>>()
            .join(" ");
        return (ItemStatus::Fail, detail);
    }
    (ItemStatus::from_b2(primary.status), b2_detail(c, primary))
}

fn b2_pool_item(c: &Ctx<'_>, id: &str, title: &str, check: CheckId, pool: &str) -> ChecklistItem {
    let (status, detail) = match finding(c, check, Some(pool)) {
        Some(f) => (ItemStatus::from_b2(f.status), b2_detail(c, f)),
        None => (ItemStatus::Unknown, B2_NOT_RUN.to_owned()),
    };
    with_b2_step(
        c,
        per_pool(id, title, pool, ItemScope::B2, status, detail),
        id,
    )
}

fn bucket_name_item(c: &Ctx<'_>) -> ChecklistItem {
    let title = "B2 bucket created with correct name: truenas-{location-uuid-no-dashes}";
    let want = &c.desired.bucket;
    let note = format!(
        "Expected `{want}` (SOP Phase 3, step 3.2, and the central contract). The SOP §6 line \
         reads `truenas-{{org-flat}}-{{loc-short}}`, which contradicts Phase 3; Phase 3 is checked."
    );
    let wrong: Vec<String> = c
        .health
        .cloud_sync
        .iter()
        .filter_map(|h| {
            let (task, _) =
                super::tasks::cloud_sync_task(&h.pool, c.observed, &c.obs.ownership, Some(want))?;
            (task.attributes.bucket != *want).then(|| {
                format!(
                    "the {} task uses bucket `{}`",
                    h.pool, task.attributes.bucket
                )
            })
        })
        .collect();
    let (status, seen) = if wrong.is_empty() {
        match finding(c, CheckId::BucketFound, None) {
            Some(f) => (ItemStatus::from_b2(f.status), b2_detail(c, f)),
            None => (ItemStatus::Unknown, B2_NOT_RUN.to_owned()),
        }
    } else {
        (ItemStatus::Fail, format!("{}.", wrong.join("; ")))
    };
    let mut out = item(
        "b2.bucket_name",
        title,
        ItemScope::B2,
        status,
        format!("{seen} {note}"),
    );
    out.next_step = match status {
        ItemStatus::Pass | ItemStatus::NotChecked => None,
        ItemStatus::Unknown => Some(b2_unknown_step(c)),
        ItemStatus::Fail | ItemStatus::Deviates => Some(
            "Point the tasks at the Phase 3 bucket (run `truenas-agent apply`); if the bucket \
             is missing, create it as in SOP 4.1."
                .to_owned(),
        ),
    };
    out
}

fn rule_mode(_: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> Judged {
    Judged::pass_fail(
        t.direction == plan::spec::sop::DIRECTION
            && t.transfer_mode == plan::spec::sop::TRANSFER_MODE,
        "PUSH + SYNC".to_owned(),
        format!(
            "direction {} + transfer mode {} (the SOP says PUSH + SYNC)",
            t.direction, t.transfer_mode
        ),
    )
}

fn rule_source(_: &Ctx<'_>, pool: &str, t: &CloudSyncTask) -> Judged {
    let want = derive::pool_path(pool);
    Judged::pass_fail(
        t.path.trim_end_matches('/') == want,
        format!("source {want}"),
        format!(
            "source is {} (want {want}; a narrower source makes the Archive exclude meaningless, SOP §7)",
            t.path
        ),
    )
}

fn rule_folder(c: &Ctx<'_>, pool: &str, t: &CloudSyncTask) -> Judged {
    let shared: Vec<String> = c
        .health
        .shared_folders
        .iter()
        .filter(|s| s.pool == pool && s.task_id == t.id && s.other_enabled)
        .map(|s| format!("task #{} \"{}\"", s.other_id, s.other_description))
        .collect();
    if !shared.is_empty() {
        return Judged::new(
            ItemStatus::Fail,
            format!(
                "{} also writes to this task's folder `{}` in {}: two SYNC tasks delete each \
                 other's files (SOP 5.3: one task per pool, each with its own folder)",
                shared.join(" and "),
                t.attributes.folder,
                t.attributes.bucket
            ),
        );
    }
    let Ok((guid, _)) = plan::resolve_device_guid(
        c.desired,
        c.observed,
        &c.obs.guid_property,
        c.obs.configured_root.as_deref(),
    ) else {
        return Judged::new(
            ItemStatus::Unknown,
            format!(
                "folder is `{}`; the device GUID is not known, so it cannot be checked",
                t.attributes.folder
            ),
        );
    };
    let want = derive::folder(&guid, pool);
    // The middleware strips leading/trailing slashes when it builds the remote path.
    let same = t.attributes.folder.trim_matches('/') == want.trim_matches('/');
    Judged::pass_fail(
        same,
        format!("folder {want}"),
        format!("folder is `{}` (want {want})", t.attributes.folder),
    )
}

/// A crontab line of the SOP as a schedule.
fn sop_cron(line: &str) -> Cron {
    #[allow(
        clippy::expect_used,
        reason = "invariant: the SOP constants are five-field crontab lines (tested)"
    )]
    let [m, h, dom, mon, dow] = derive::split_cron_line(line).expect("SOP schedule");
    Cron::from_fields(m, h, dom, mon, dow)
}

fn rule_schedule(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> Judged {
    if !t.enabled {
        return Judged::new(
            ItemStatus::Fail,
            format!(
                "the task is DISABLED, so it never runs (schedule {}; the SOP wants it enabled, \
                 daily at 00:00){}",
                t.schedule,
                if c.desired.cloud_sync.enabled {
                    String::new()
                } else {
                    "; the document sets cloud_sync.enabled: false".to_owned()
                }
            ),
        );
    }
    let sop = sop_cron(sop::CLOUD_SCHEDULE);
    Setting {
        key: "cloud_sync.schedule",
        have: &t.schedule,
        sop: &sop,
        doc: &c.desired.cloud_sync.schedule,
    }
    .item(|cron| format!("schedule {cron}"))
}

fn rule_take_snapshot(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> Judged {
    Setting {
        key: "cloud_sync.take_snapshot",
        have: &t.snapshot,
        sop: &sop::TAKE_SNAPSHOT,
        doc: &c.desired.cloud_sync.take_snapshot,
    }
    .item(|b| format!("Take Snapshot {}", on_off(*b)))
}

fn show_set(set: &BTreeSet<&str>) -> String {
    if set.is_empty() {
        "nothing excluded".to_owned()
    } else {
        format!(
            "excludes {}",
            set.iter().copied().collect::<Vec<_>>().join(", ")
        )
    }
}

fn rule_exclude(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> Judged {
    let have: BTreeSet<&str> = t.exclude.iter().map(String::as_str).collect();
    let sop: BTreeSet<&str> = sop::EXCLUDE.into_iter().collect();
    let doc: BTreeSet<&str> = c
        .desired
        .cloud_sync
        .exclude
        .iter()
        .map(String::as_str)
        .collect();
    let mut judged = Setting {
        key: "cloud_sync.exclude",
        have: &have,
        sop: &sop,
        doc: &doc,
    }
    .item(show_set);
    // What the difference from the SOP means for the data.
    let missing: Vec<&str> = sop.difference(&have).copied().collect();
    let extra: Vec<&str> = have.difference(&sop).copied().collect();
    if !missing.is_empty() {
        let _ = write!(
            judged.detail,
            "; without {} the Archive folders are uploaded",
            missing.join(" and ")
        );
        if judged.status == ItemStatus::Fail {
            judged
                .detail
                .push_str(" (TrueNAS sometimes reformats the list on save, SOP 5.2)");
        }
    }
    if !extra.is_empty() && judged.status != ItemStatus::Pass {
        let _ = write!(judged.detail, "; {} is not backed up", extra.join(" and "));
    }
    judged
}

fn rule_chunk(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> Judged {
    Setting {
        key: "cloud_sync.chunk_size_mib",
        have: &t.attributes.chunk_size,
        sop: &u64::from(sop::CHUNK_SIZE_MIB),
        doc: &u64::from(c.desired.cloud_sync.chunk_size_mib),
    }
    .item(|n| format!("{n} MiB"))
}

fn rule_fast_list(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> Judged {
    Setting {
        key: "cloud_sync.fast_list",
        have: &t.attributes.fast_list,
        sop: &sop::FAST_LIST,
        doc: &c.desired.cloud_sync.fast_list,
    }
    .item(|b| format!("--fast-list {}", on_off(*b)))
}

fn rule_encryption(_: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> Judged {
    let has_password = !matches!(t.encryption_password, SecretView::Empty);
    Judged::pass_fail(
        t.encryption && has_password,
        "Remote Encryption on, with a password (its value is checked against IT Glue by \
         nobody here: keep the IT Glue entry safe)"
            .to_owned(),
        if t.encryption {
            "Remote Encryption is on but the task has no encryption password".to_owned()
        } else {
            "Remote Encryption is OFF: backups are uploaded in plaintext (SOP 7.3)".to_owned()
        },
    )
}

fn rule_filename_encryption(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> Judged {
    Setting {
        key: "cloud_sync.filename_encryption",
        have: &t.filename_encryption,
        sop: &sop::FILENAME_ENCRYPTION,
        doc: &c.desired.cloud_sync.filename_encryption,
    }
    .item(|b| format!("Filename Encryption {}", on_off(*b)))
}

fn show_table(table: &[BwLimit]) -> String {
    if table.is_empty() {
        "no limit".to_owned()
    } else {
        format!("timetable {}", show_bwlimit(table))
    }
}

fn rule_bandwidth(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> Judged {
    match (t.bwlimit_unreadable, &c.desired.cloud_sync.bandwidth) {
        (true, _) => Judged::new(
            ItemStatus::Fail,
            format!(
                "the task's bandwidth timetable could not be read as times and bytes per second \
                 ({})",
                show_table(&t.bwlimit)
            ),
        ),
        (false, None) => bandwidth_without_plan(t),
        (false, Some(plan)) => bandwidth_against(plan, t),
    }
}

/// Without `cloud_sync.bandwidth` the uplink is unknown: no limit at all certainly is not
/// the SOP's; some limit may or may not be 20 % / 80 % of it.
fn bandwidth_without_plan(t: &CloudSyncTask) -> Judged {
    if t.bwlimit.is_empty() {
        return Judged::new(
            ItemStatus::Fail,
            "the task has no bandwidth limit; the SOP wants 20 % of the client's uplink in \
             business hours and 80 % off-hours (the document has no cloud_sync.bandwidth, so \
             `apply` sets none)"
                .to_owned(),
        );
    }
    Judged::new(
        ItemStatus::Unknown,
        format!(
            "the document carries no bandwidth plan (cloud_sync.bandwidth), so the client's \
             uplink is not known here and 20 % / 80 % of it cannot be computed; the task has {}",
            show_table(&t.bwlimit)
        ),
    )
}

/// The task's timetable against the SOP's shares of the document's uplink and hours.
fn bandwidth_against(plan: &BandwidthPlan, t: &CloudSyncTask) -> Judged {
    let sop = plan.sop_timetable();
    let doc = plan.timetable();
    let shares = |business: u8, off: u8, table: &[BwLimit]| {
        format!(
            "{business} % in business hours ({}–{}) / {off} % off-hours of {} Mbit/s: {}",
            plan.business_start,
            plan.business_end,
            mbps(plan.uplink_kbps),
            show_table(table)
        )
    };
    let sop_text = shares(sop::BUSINESS_PERCENT, sop::OFF_HOURS_PERCENT, &sop);
    let doc_text = shares(plan.business_percent, plan.off_hours_percent, &doc);
    let setting = Setting {
        key: "cloud_sync.bandwidth",
        have: &t.bwlimit,
        sop: &sop,
        doc: &doc,
    };
    match setting.judge(|table| show_table(table)) {
        Against::Meets(_) => Judged::new(ItemStatus::Pass, sop_text),
        Against::Deviates(_) => {
            let d = Deviation {
                setting: "cloud_sync.bandwidth".to_owned(),
                document: doc_text,
                sop: sop_text,
            };
            Judged {
                status: ItemStatus::Deviates,
                detail: format!("{DEVIATES}{}", deviation_text(&d)),
                deviations: vec![d],
            }
        }
        Against::Fails(_) => Judged::new(
            ItemStatus::Fail,
            format!(
                "the task has {} — the SOP says {sop_text}{}",
                show_table(&t.bwlimit),
                if plan.follows_sop() {
                    String::new()
                } else {
                    format!("; the document sets {doc_text}")
                }
            ),
        ),
    }
}

/// Kilobits per second as Mbit/s text (`100`, `2.5`).
fn mbps(kbps: u64) -> String {
    if kbps % 1000 == 0 {
        (kbps / 1000).to_string()
    } else {
        format!("{}.{:03}", kbps / 1000, kbps % 1000)
            .trim_end_matches('0')
            .to_owned()
    }
}

fn snapshot_task_item(c: &Ctx<'_>, pool: &str) -> ChecklistItem {
    let title = "Periodic Snapshot Task: hourly, 14-day retention, recursive, per pool";
    let want = &c.desired.snapshots;
    let task = super::tasks::snapshot_task(pool, c.observed, &c.obs.ownership).map(|(t, _)| t);
    let judged = match task {
        None => Judged::new(
            ItemStatus::Fail,
            format!("no periodic snapshot task on {pool}"),
        ),
        Some(t) if !t.enabled => Judged::new(
            ItemStatus::Fail,
            format!(
                "task {}: DISABLED, so no snapshots are taken{}",
                t.id,
                if want.enabled {
                    ""
                } else {
                    " (the document sets snapshots.enabled: false)"
                }
            ),
        ),
        Some(t) => snapshot_settings(t, want),
    };
    judged_item(
        "snapshots.task",
        title,
        pool,
        judged,
        "Run `truenas-agent apply`, or fix it in Data Protection → Periodic Snapshot Tasks \
         (SOP 6.1).",
    )
}

/// An enabled snapshot task's settings against the SOP (§6.1) and the document.
fn snapshot_settings(t: &SnapshotTask, want: &SnapshotSettings) -> Judged {
    let sop_schedule = sop_cron(sop::SNAPSHOT_SCHEDULE);
    let sop_window: Window = (
        HhMm::parse(sop::SNAPSHOT_BEGIN),
        HhMm::parse(sop::SNAPSHOT_END),
    );
    let doc_window: Window = (Some(want.begin), Some(want.end));
    let have_window: Window = (t.begin, t.end);
    let sop_life = Lifetime {
        value: u64::from(sop::LIFETIME_VALUE),
        unit: sop::LIFETIME_UNIT.as_str().to_owned(),
    };
    let doc_life = Lifetime {
        value: u64::from(want.lifetime_value),
        unit: want.lifetime_unit.as_str().to_owned(),
    };
    let have_life = Lifetime {
        value: t.lifetime_value,
        unit: t.lifetime_unit.clone(),
    };
    let sop_naming = sop::NAMING_SCHEMA.to_owned();
    let lines = vec![
        Setting {
            key: "snapshots.schedule",
            have: &t.schedule,
            sop: &sop_schedule,
            doc: &want.schedule,
        }
        .line(|cron| format!("schedule {cron}")),
        Setting {
            key: "snapshots.begin/end",
            have: &have_window,
            sop: &sop_window,
            doc: &doc_window,
        }
        .line(|w| show_window(*w)),
        Setting {
            key: "snapshots.lifetime_value/lifetime_unit",
            have: &have_life,
            sop: &sop_life,
            doc: &doc_life,
        }
        .line(show_lifetime),
        Setting {
            key: "snapshots.recursive",
            have: &t.recursive,
            sop: &sop::RECURSIVE,
            doc: &want.recursive,
        }
        .line(|b| format!("recursive {}", on_off(*b))),
        Setting {
            key: "snapshots.naming_schema",
            have: &t.naming_schema,
            sop: &sop_naming,
            doc: &want.naming_schema,
        }
        .line(|n| format!("naming {n}")),
    ];
    combine_lines(&format!("task {}", t.id), lines)
}

fn first_sync_item(c: &Ctx<'_>, pool: &str) -> ChecklistItem {
    let title = "First manual sync completed successfully";
    let h: Option<&CloudSyncHealth> = c.health.cloud_sync.iter().find(|h| h.pool == pool);
    let (status, detail, step) = match h {
        None => (ItemStatus::Fail, "no Cloud Sync task".to_owned(), None),
        Some(h) if h.last_success.is_some() => (
            ItemStatus::Pass,
            format!(
                "last successful run finished {}",
                h.last_success
                    .map(|t| super::rfc3339(&t))
                    .unwrap_or_default()
            ),
            None,
        ),
        Some(h) if matches!(h.state, SyncState::Running | SyncState::Waiting) => (
            ItemStatus::Unknown,
            format!(
                "the first sync is still running{} — on a large pool it can take days (SOP 7.1)",
                h.progress_percent
                    .map_or_else(String::new, |p| format!(" ({p:.0}%)"))
            ),
            Some("Check again when it has finished.".to_owned()),
        ),
        Some(h) => (
            ItemStatus::Fail,
            format!("no successful run yet (state {})", h.state.as_str()),
            h.next_step.clone(),
        ),
    };
    let mut out = per_pool(
        "cloud_sync.first_sync",
        title,
        pool,
        ItemScope::Nas,
        status,
        detail,
    );
    out.next_step = step.or_else(|| {
        (status == ItemStatus::Fail).then(|| {
            "Start it with Run Now (SOP 7.1) or a `run_cloud_sync` action, then check again."
                .to_owned()
        })
    });
    out
}

/// B2 checks the SOP implies but §6 does not list, under their own finding ids.
fn supplementary_b2(c: &Ctx<'_>) -> Vec<ChecklistItem> {
    const EXTRA: &[CheckId] = &[
        CheckId::KeyAuthorizes,
        CheckId::KeyRcloneCompatible,
        CheckId::KeySyncCapabilities,
        CheckId::KeyLeastPrivilege,
        CheckId::BucketPrivate,
    ];
    EXTRA
        .iter()
        .map(|id| {
            let entry = match finding(c, *id, None) {
                Some(f) if f.status == b2::Status::Info => item(
                    id.as_str(),
                    &f.title,
                    ItemScope::B2,
                    ItemStatus::Pass,
                    format!("For information: {}", b2_detail(c, f)),
                ),
                Some(f) => item(
                    id.as_str(),
                    &f.title,
                    ItemScope::B2,
                    ItemStatus::from_b2(f.status),
                    b2_detail(c, f),
                ),
                None => item(
                    id.as_str(),
                    id.title(),
                    ItemScope::B2,
                    ItemStatus::Unknown,
                    B2_NOT_RUN.to_owned(),
                ),
            };
            with_b2_step(c, entry, id.as_str())
        })
        .collect()
}

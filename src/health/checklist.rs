//! PURE: the SOP §6 verification checklist, item by item, with stable ids.
//!
//! Owns: the item list (ids, SOP titles, scope), how each item is decided from the
//! desired state, `Observed`, the health evaluation and the B2 report, and the mapping
//! of B2 findings onto items.
//! Does not: fetch anything, or decide exit codes beyond [`Checklist::verdict`].
//! Invariants: every SOP §6 line yields at least one item (per-pool lines one per
//! managed pool), always in SOP order, then the B2 checks the SOP implies but does not
//! list (`b2.*` finding ids); items only central can check (NinjaOne, IT Glue, HaloPSA)
//! are [`ItemStatus::NotChecked`] — `unknown` on the wire — never `pass`; a B2 `info`
//! finding counts as `pass` (it never fails a box) and keeps its text in the detail.
//! Limitations: the bucket-name line of SOP §6 (`truenas-{org-flat}-{loc-short}`)
//! contradicts SOP Phase 3; the Phase 3 formula (the central contract's) is checked and
//! the item's detail says so.

use serde::{Deserialize, Serialize};

use super::{Area, CloudSyncHealth, Health, HealthObservations, Level, Problem, SyncState};
use crate::b2::{self, CheckId, Finding};
use crate::desired::{DesiredState, derive};
use crate::observe::{CloudSyncTask, Observed, SecretView};
use crate::plan::{self, spec::show_bwlimit};

/// An item's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Pass,
    /// Only central can check it (NinjaOne, IT Glue, HaloPSA).
    NotChecked,
    /// The box or B2 could not tell; the detail says why.
    Unknown,
    Fail,
}

impl ItemStatus {
    /// The contract's `pass | fail | unknown` (a not-checked item is `unknown`).
    pub fn wire(self) -> &'static str {
        match self {
            ItemStatus::Pass => "pass",
            ItemStatus::Fail => "fail",
            ItemStatus::Unknown | ItemStatus::NotChecked => "unknown",
        }
    }

    fn from_b2(status: b2::Status) -> ItemStatus {
        match status {
            b2::Status::Pass | b2::Status::Info => ItemStatus::Pass,
            b2::Status::Unknown => ItemStatus::Unknown,
            b2::Status::Fail => ItemStatus::Fail,
        }
    }
}

/// Who can check an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemScope {
    /// The agent on the NAS (middleware, ZFS).
    Nas,
    /// The agent, in the B2 bucket with the task's key.
    B2,
    /// Only central (NinjaOne, IT Glue, HaloPSA).
    Central,
}

/// One checklist item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// Stable id, e.g. `cloud_sync.mode/pool0`, `b2.object_lock`, `snmp.v3_only`.
    pub id: String,
    /// The SOP's wording (plus the pool).
    pub title: String,
    pub status: ItemStatus,
    pub scope: ItemScope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// What was seen.
    pub detail: String,
    /// What to do, unless the item passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
}

/// The whole checklist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    pub items: Vec<ChecklistItem>,
}

/// Overall checklist outcome (drives `verify`'s exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every item the box can check passes.
    Pass,
    /// At least one item fails.
    Fail,
    /// Nothing fails, but at least one box/B2 item could not be determined.
    Undetermined,
}

impl Checklist {
    /// Fail if anything fails; else undetermined if a box/B2 item is unknown; else pass.
    /// Items only central can check do not count.
    pub fn verdict(&self) -> Verdict {
        let worst = self
            .items
            .iter()
            .filter(|i| i.status != ItemStatus::NotChecked)
            .map(|i| i.status)
            .max();
        match worst {
            Some(ItemStatus::Fail) => Verdict::Fail,
            Some(ItemStatus::Unknown) => Verdict::Undetermined,
            Some(ItemStatus::Pass | ItemStatus::NotChecked) | None => Verdict::Pass,
        }
    }

    /// Counts per status: (pass, fail, unknown, not checked).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |s| self.items.iter().filter(|i| i.status == s).count();
        (
            n(ItemStatus::Pass),
            n(ItemStatus::Fail),
            n(ItemStatus::Unknown),
            n(ItemStatus::NotChecked),
        )
    }

    /// Failing items as problems (unknown ones as warnings: they need a look, not a fix).
    /// Items that restate a health verdict (`snmp.v3_only`, `cloud_sync.first_sync/*`) are
    /// left out: the SNMP and backup sections already report them with their next step.
    pub fn problems(&self) -> Vec<Problem> {
        self.items
            .iter()
            .filter(|item| !is_restated_by_health(&item.id))
            .filter_map(|item| {
                let level = match item.status {
                    ItemStatus::Fail => Level::Failing,
                    ItemStatus::Unknown => Level::Warning,
                    ItemStatus::Pass | ItemStatus::NotChecked => return None,
                };
                Some(Problem {
                    level,
                    area: Area::Checklist,
                    subject: Some(item.id.clone()),
                    message: format!("{}: {}", item.title, item.detail),
                    next_step: item
                        .next_step
                        .clone()
                        .unwrap_or_else(|| "See the item's detail.".to_owned()),
                })
            })
            .collect()
    }
}

/// Items whose failure is always also a health problem (same facts, same next step).
pub fn is_restated_by_health(id: &str) -> bool {
    id == "snmp.v3_only" || id.starts_with("cloud_sync.first_sync/")
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
type Rule = fn(&Ctx<'_>, &str, &CloudSyncTask) -> (ItemStatus, String);

/// Inputs shared by the item rules.
struct Ctx<'a> {
    desired: &'a DesiredState,
    observed: &'a Observed,
    obs: &'a HealthObservations,
    health: &'a Health,
}

/// Evaluates the SOP §6 checklist.
pub fn evaluate(
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
            let task =
                super::sync::find_task(pool, observed, &obs.ownership, Some(&desired.bucket))
                    .map(|(t, _)| t);
            let (status, detail) = match task {
                Some(task) => rule(&c, pool, task),
                None => (
                    ItemStatus::Fail,
                    format!("no Cloud Sync task backs up /mnt/{pool}"),
                ),
            };
            items.push(with_step(
                per_pool(id, title, pool, ItemScope::Nas, status, detail),
                "Run `truenas-agent apply` with the desired-state document (it sets every SOP \
                 5.2 field), or fix the field in Data Protection → Cloud Sync Tasks.",
            ));
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
    }
}

fn pass_fail(ok: bool, pass: String, fail: String) -> (ItemStatus, String) {
    if ok {
        (ItemStatus::Pass, pass)
    } else {
        (ItemStatus::Fail, fail)
    }
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
        "Run `truenas-agent identity ensure` (or `apply`), which writes the GUID on the root \
         pool; by hand: `zfs set {property}=<guid> <root pool>` (SOP 2.2)."
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
    with_step(
        item(id, title, ItemScope::B2, status, detail),
        &b2_step(id, &c.desired.bucket),
    )
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
    with_step(
        per_pool(id, title, pool, ItemScope::B2, status, detail),
        &b2_step(id, &c.desired.bucket),
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
                super::sync::find_task(&h.pool, c.observed, &c.obs.ownership, Some(want))?;
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
    with_step(
        item(
            "b2.bucket_name",
            title,
            ItemScope::B2,
            status,
            format!("{seen} {note}"),
        ),
        "Point the tasks at the Phase 3 bucket (run `truenas-agent apply`); if the bucket is \
         missing, create it as in SOP 4.1.",
    )
}

fn rule_mode(_: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    pass_fail(
        t.direction == "PUSH" && t.transfer_mode == "SYNC",
        "PUSH + SYNC".to_owned(),
        format!(
            "direction {} + transfer mode {}",
            t.direction, t.transfer_mode
        ),
    )
}

fn rule_source(_: &Ctx<'_>, pool: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    let want = derive::pool_path(pool);
    pass_fail(
        t.path.trim_end_matches('/') == want,
        format!("source {want}"),
        format!(
            "source is {} (want {want}; a narrower source makes the Archive exclude meaningless, SOP §7)",
            t.path
        ),
    )
}

fn rule_folder(c: &Ctx<'_>, pool: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    let Ok((guid, _)) = plan::resolve_device_guid(
        c.desired,
        c.observed,
        &c.obs.guid_property,
        c.obs.configured_root.as_deref(),
    ) else {
        return (
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
    pass_fail(
        same,
        format!("folder {want}"),
        format!("folder is `{}` (want {want})", t.attributes.folder),
    )
}

fn rule_schedule(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    let want = &c.desired.cloud_sync.schedule;
    let note = if want.to_string() == "0 0 * * *" {
        String::new()
    } else {
        " — the desired state overrides the SOP's 0 0 * * *".to_owned()
    };
    pass_fail(
        t.schedule == *want,
        format!("schedule {want}{note}"),
        format!("schedule is {} (want {want}{note})", t.schedule),
    )
}

fn rule_take_snapshot(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    let want = c.desired.cloud_sync.take_snapshot;
    pass_fail(
        t.snapshot == want,
        format!("Take Snapshot {}", on_off(want)),
        format!(
            "Take Snapshot is {} (want {})",
            on_off(t.snapshot),
            on_off(want)
        ),
    )
}

fn rule_exclude(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    let want = &c.desired.cloud_sync.exclude;
    let missing: Vec<&String> = want.iter().filter(|w| !t.exclude.contains(w)).collect();
    let extra: Vec<&String> = t.exclude.iter().filter(|e| !want.contains(e)).collect();
    let show = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let detail = match (missing.is_empty(), extra.is_empty()) {
        (true, true) => format!("excludes {}", show(&want.iter().collect::<Vec<_>>())),
        (false, _) => format!(
            "missing {} (TrueNAS sometimes reformats the list on save, SOP 5.2){}",
            show(&missing),
            if extra.is_empty() {
                String::new()
            } else {
                format!("; also excludes {}", show(&extra))
            }
        ),
        (true, false) => format!(
            "also excludes {}: data there is not backed up",
            show(&extra)
        ),
    };
    (
        if missing.is_empty() && extra.is_empty() {
            ItemStatus::Pass
        } else {
            ItemStatus::Fail
        },
        detail,
    )
}

fn rule_chunk(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    let want = u64::from(c.desired.cloud_sync.chunk_size_mib);
    pass_fail(
        t.attributes.chunk_size == want,
        format!("{want} MiB"),
        format!("{} MiB (want {want})", t.attributes.chunk_size),
    )
}

fn rule_fast_list(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    let want = c.desired.cloud_sync.fast_list;
    pass_fail(
        t.attributes.fast_list == want,
        format!("--fast-list {}", on_off(want)),
        format!(
            "--fast-list is {} (want {})",
            on_off(t.attributes.fast_list),
            on_off(want)
        ),
    )
}

fn rule_encryption(_: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    let has_password = !matches!(t.encryption_password, SecretView::Empty);
    pass_fail(
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

fn rule_filename_encryption(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    let want = c.desired.cloud_sync.filename_encryption;
    pass_fail(
        t.filename_encryption == want,
        format!("Filename Encryption {}", on_off(want)),
        format!(
            "Filename Encryption is {} (want {})",
            on_off(t.filename_encryption),
            on_off(want)
        ),
    )
}

fn rule_bandwidth(c: &Ctx<'_>, _: &str, t: &CloudSyncTask) -> (ItemStatus, String) {
    let want = &c.desired.cloud_sync.bwlimit;
    if want.is_empty() {
        return (
            ItemStatus::Unknown,
            format!(
                "the desired state carries no bandwidth plan (cloud_sync.bandwidth), so the \
                 client's uplink is not known here; the task has {}",
                if t.bwlimit.is_empty() {
                    "no limit".to_owned()
                } else {
                    show_bwlimit(&t.bwlimit)
                }
            ),
        );
    }
    pass_fail(
        t.bwlimit == *want && !t.bwlimit_unreadable,
        format!("timetable {}", show_bwlimit(want)),
        format!(
            "timetable is {} (want {})",
            if t.bwlimit.is_empty() {
                "unlimited".to_owned()
            } else {
                show_bwlimit(&t.bwlimit)
            },
            show_bwlimit(want)
        ),
    )
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn snapshot_task_item(c: &Ctx<'_>, pool: &str) -> ChecklistItem {
    let title = "Periodic Snapshot Task: hourly, 14-day retention, recursive, per pool";
    let want = &c.desired.snapshots;
    let task = super::snapshots::find_task(pool, c.observed, &c.obs.ownership).map(|(t, _)| t);
    let (status, detail) = match task {
        None => (
            ItemStatus::Fail,
            format!("no periodic snapshot task on {pool}"),
        ),
        Some(t) => {
            let mut wrong = Vec::new();
            if t.schedule != want.schedule {
                wrong.push(format!("schedule {} (want {})", t.schedule, want.schedule));
            }
            if t.lifetime_value != u64::from(want.lifetime_value)
                || t.lifetime_unit != want.lifetime_unit.as_str()
            {
                wrong.push(format!(
                    "lifetime {} {} (want {} {})",
                    t.lifetime_value,
                    t.lifetime_unit,
                    want.lifetime_value,
                    want.lifetime_unit.as_str()
                ));
            }
            if t.recursive != want.recursive {
                wrong.push(format!("recursive {}", on_off(t.recursive)));
            }
            if t.naming_schema != want.naming_schema {
                wrong.push(format!(
                    "naming schema {} (want {})",
                    t.naming_schema, want.naming_schema
                ));
            }
            if !t.enabled {
                wrong.push("disabled".to_owned());
            }
            if wrong.is_empty() {
                (
                    ItemStatus::Pass,
                    format!(
                        "task {}: {}, {} {}, recursive, {}",
                        t.id, t.schedule, t.lifetime_value, t.lifetime_unit, t.naming_schema
                    ),
                )
            } else {
                (
                    ItemStatus::Fail,
                    format!("task {}: {}", t.id, wrong.join("; ")),
                )
            }
        }
    };
    with_step(
        per_pool(
            "snapshots.task",
            title,
            pool,
            ItemScope::Nas,
            status,
            detail,
        ),
        "Run `truenas-agent apply`, or fix it in Data Protection → Periodic Snapshot Tasks \
         (SOP 6.1).",
    )
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
            let step = b2_step(id.as_str(), &c.desired.bucket);
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
            with_step(entry, &step)
        })
        .collect()
}

//! The per-object rules: which existing object is the agent's, what conflicts, and
//! what to create, update, adopt, disable or delete.
//!
//! Owns: the claim order (recorded id → document `adopt` → exact identity after an
//! interrupted create), conflict detection, the rekey refusal (not for a task whose
//! bucket or folder changes with the secrets: a new destination), removed pools, SNMP.
//! Does not: order steps (see `plan`), or touch I/O.
//! Invariants: an object is claimed only through one of the three rules above; every
//! other overlapping object becomes a `Conflict` and is never the subject of a step.
//! Limitations: a Cloud Sync task's pool is read from its path (`/mnt/P` exactly); a
//! snapshot task's from its dataset (the pool's root dataset exactly).

use std::collections::BTreeMap;

use super::model::{
    AdoptReason, Blocker, Conflict, Forget, Inputs, Plan, SNMP_SERVICE, Step, TaskRef,
};
use super::ownership::{ObjectKind, OwnedObject, Ownership};
use super::spec::{self, CloudSyncSpec, CredentialRef, CredentialSpec, SnapshotSpec, SnmpSpec};
use crate::desired::{DesiredState, RemovedPools, derive};
use crate::observe::{CloudSyncTask, Observed, SnapshotTask};

/// The planner's read-only inputs.
pub(super) struct Ctx<'a> {
    pub desired: &'a DesiredState,
    pub observed: &'a Observed,
    pub owned: &'a Ownership,
    pub inputs: &'a Inputs,
}

/// What the planner needs to know about a task of either kind.
trait Task {
    const KIND: ObjectKind;
    fn id(&self) -> u64;
    /// The pool this task is for, when it covers exactly a pool's root.
    fn pool(&self) -> Option<&str>;
    fn enabled(&self) -> bool;
    fn name(&self) -> String;
    /// True while the object still belongs to `pool` by a field an admin rarely edits
    /// and a different object would not share. A recorded id whose object fails this
    /// is stale: TrueNAS's tables can hand a deleted row's id to a new object.
    fn anchored(&self, pool: &str) -> bool;
}

impl Task for CloudSyncTask {
    const KIND: ObjectKind = ObjectKind::CloudSync;
    fn id(&self) -> u64 {
        self.id
    }
    fn pool(&self) -> Option<&str> {
        let pool = self.path.strip_prefix("/mnt/")?.trim_end_matches('/');
        (!pool.is_empty() && !pool.contains('/')).then_some(pool)
    }
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn name(&self) -> String {
        self.description.clone()
    }
    fn anchored(&self, pool: &str) -> bool {
        self.pool() == Some(pool)
            || trim_slashes(&self.attributes.folder).ends_with(&format!("/{pool}"))
    }
}

impl Task for SnapshotTask {
    const KIND: ObjectKind = ObjectKind::SnapshotTask;
    fn id(&self) -> u64 {
        self.id
    }
    fn pool(&self) -> Option<&str> {
        (!self.dataset.is_empty() && !self.dataset.contains('/')).then_some(&self.dataset)
    }
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn name(&self) -> String {
        format!("{} ({})", self.dataset, self.naming_schema)
    }
    fn anchored(&self, pool: &str) -> bool {
        self.dataset == pool
    }
}

/// How an existing task relates to the pool's desired task when it is not ours.
struct Overlap {
    /// True when creating ours next to it would duplicate or fight it.
    serious: bool,
    /// True when it fights the pool's task even once the agent has its own (it pushes
    /// into the same bucket folder): the NAS cannot match the document while it exists.
    fights: bool,
    reason: String,
}

/// The task claimed as the agent's for one pool.
struct Claimed<'a, T> {
    task: &'a T,
    adopt: Option<AdoptReason>,
}

fn adopt_ids(desired: &DesiredState, kind: ObjectKind) -> &[u64] {
    match kind {
        ObjectKind::CloudSync => &desired.adopt.cloud_sync,
        ObjectKind::SnapshotTask => &desired.adopt.snapshots,
        ObjectKind::Credential => &[],
    }
}

/// Finds the agent's task for `pool`: recorded id, then `adopt`, then the exact identity
/// of an interrupted create (`ours` says whether a task has the agent's identity).
fn claim<'a, T: Task>(
    ctx: &Ctx<'_>,
    pool: &str,
    tasks: &'a [T],
    ours: impl Fn(&T) -> bool,
    p: &mut Plan,
) -> Option<Claimed<'a, T>> {
    let owned_map = ctx.owned.tasks(T::KIND)?;
    let recorded = owned_map.get(pool).and_then(|o| {
        let task = tasks.iter().find(|t| t.id() == o.id && t.anchored(pool));
        if task.is_none() {
            p.forget.push(Forget {
                kind: T::KIND,
                pool: Some(pool.to_owned()),
                id: o.id,
            });
        }
        task
    });
    let adoptable: Vec<&T> = adopt_ids(ctx.desired, T::KIND)
        .iter()
        .filter_map(|id| tasks.iter().find(|t| t.id() == *id))
        .filter(|t| t.pool() == Some(pool) && !ctx.owned.owns(T::KIND, t.id()))
        .collect();
    if let Some(task) = recorded {
        for other in adoptable {
            p.blockers.push(Blocker::AdoptIgnored {
                object: T::KIND,
                id: other.id(),
                owned_id: task.id(),
            });
        }
        return Some(Claimed { task, adopt: None });
    }
    if let Some(task) = adoptable.first() {
        for other in &adoptable[1..] {
            p.blockers.push(Blocker::AdoptIgnored {
                object: T::KIND,
                id: other.id(),
                owned_id: task.id(),
            });
        }
        return Some(Claimed {
            task,
            adopt: Some(AdoptReason::Document),
        });
    }
    let pending = ctx.owned.pending_for(T::KIND, Some(pool))?;
    let candidates: Vec<&T> = tasks
        .iter()
        .filter(|t| t.id() > pending.max_id_before && !ctx.owned.owns(T::KIND, t.id()))
        .filter(|t| !adopt_ids(ctx.desired, T::KIND).contains(&t.id()))
        .filter(|t| ours(t))
        .collect();
    match candidates.as_slice() {
        [task] => Some(Claimed {
            task,
            adopt: Some(AdoptReason::InterruptedCreate),
        }),
        _ => None,
    }
}

/// Reports tasks that overlap with the pool's task and are not the agent's. Returns
/// true when one of them must stop the agent from creating its own.
fn conflicts<T: Task>(
    ctx: &Ctx<'_>,
    pool: &str,
    tasks: &[T],
    claimed: Option<u64>,
    overlap: impl Fn(&T) -> Option<Overlap>,
    p: &mut Plan,
) -> bool {
    let mut blocking = false;
    for task in tasks {
        let foreign = Some(task.id()) != claimed
            && !ctx.owned.owns(T::KIND, task.id())
            && !adopt_ids(ctx.desired, T::KIND).contains(&task.id());
        let Some(found) = foreign.then(|| overlap(task)).flatten() else {
            continue;
        };
        let blocks = found.fights || (claimed.is_none() && found.serious);
        blocking |= blocks;
        p.conflicts.push(Conflict {
            kind: T::KIND,
            id: task.id(),
            name: task.name(),
            pool: Some(pool.to_owned()),
            blocking: blocks,
            reason: found.reason,
        });
    }
    blocking
}

/// The credential: returns how tasks should refer to it (`None` when blocked).
pub(super) fn plan_credential(ctx: &Ctx<'_>, p: &mut Plan) -> Option<CredentialRef> {
    let d = ctx.desired;
    let creds = &ctx.observed.credentials;
    let spec = CredentialSpec {
        name: d.bucket.clone(),
        key_id: d.b2.key_id.clone(),
        application_key: d.b2.application_key.clone(),
        key_fingerprint: ctx.inputs.fingerprints.application_key.clone(),
    };
    let record = ctx.owned.credential.as_ref();
    let recorded = record.and_then(|r| {
        creds
            .iter()
            .find(|c| c.id == r.id && c.provider == spec::sop::PROVIDER)
    });
    if let (Some(r), None) = (record, recorded) {
        p.forget.push(Forget {
            kind: ObjectKind::Credential,
            pool: None,
            id: r.id,
        });
    }
    let (found, adopt) = if let Some(c) = recorded {
        if let Some(id) = d.adopt.credential.filter(|id| *id != c.id) {
            p.blockers.push(Blocker::AdoptIgnored {
                object: ObjectKind::Credential,
                id,
                owned_id: c.id,
            });
        }
        (Some(c), None)
    } else if let Some(id) = d.adopt.credential {
        let Some(c) = creds.iter().find(|c| c.id == id) else {
            p.blockers.push(Blocker::AdoptedMissing {
                object: ObjectKind::Credential,
                id,
            });
            return None;
        };
        (Some(c), Some(AdoptReason::Document))
    } else {
        let interrupted = ctx
            .owned
            .pending_for(ObjectKind::Credential, None)
            .and_then(|pending| {
                let found: Vec<_> = creds
                    .iter()
                    .filter(|c| c.id > pending.max_id_before && c.name == spec.name)
                    .collect();
                (found.len() == 1).then(|| found[0])
            });
        (
            interrupted,
            interrupted.map(|_| AdoptReason::InterruptedCreate),
        )
    };
    let Some(found) = found else {
        if let Some(other) = creds.iter().find(|c| c.name == spec.name) {
            p.conflicts.push(Conflict {
                kind: ObjectKind::Credential,
                id: other.id,
                name: other.name.clone(),
                pool: None,
                blocking: true,
                reason: format!(
                    "a credential named after the bucket exists and was not made by the agent; \
                     add \"adopt\": {{\"credential\": {}}} to the document to let the agent manage it",
                    other.id
                ),
            });
            return None;
        }
        p.steps.push(Step::CreateCredential(spec));
        return Some(CredentialRef::Planned);
    };
    if let Some(reason) = adopt {
        p.steps.push(Step::Adopt {
            kind: ObjectKind::Credential,
            id: found.id,
            pool: None,
            reason,
        });
    }
    let recorded_key = record
        .filter(|r| r.id == found.id)
        .and_then(|r| r.fingerprints.get("key"));
    let changes = spec::diff_credential(found, &spec, recorded_key);
    if !changes.is_empty() {
        p.steps.push(Step::UpdateCredential {
            id: found.id,
            changes,
            spec,
        });
    }
    Some(CredentialRef::Existing(found.id))
}

fn trim_slashes(folder: &str) -> &str {
    folder.trim_matches('/')
}

fn cloud_sync_spec(ctx: &Ctx<'_>, pool: &str, credential: CredentialRef) -> CloudSyncSpec {
    let d = ctx.desired;
    let cs = &d.cloud_sync;
    let fps = &ctx.inputs.fingerprints;
    CloudSyncSpec {
        pool: pool.to_owned(),
        description: derive::description(pool),
        path: derive::pool_path(pool),
        credential,
        bucket: d.bucket.clone(),
        folder: derive::folder(&ctx.inputs.device_guid, pool),
        chunk_size: u64::from(cs.chunk_size_mib),
        fast_list: cs.fast_list,
        schedule: cs.schedule.clone(),
        enabled: cs.enabled,
        snapshot: cs.take_snapshot,
        exclude: cs.exclude.clone(),
        bwlimit: cs.bwlimit.clone(),
        transfers: cs.transfers.map(u64::from),
        filename_encryption: cs.filename_encryption,
        follow_symlinks: cs.follow_symlinks,
        encryption_password: d.encryption.password.clone(),
        encryption_salt: d.encryption.salt.clone(),
        password_fingerprint: fps.encryption_password.clone(),
        salt_fingerprint: fps.encryption_salt.clone(),
    }
}

fn cloud_sync_overlap(task: &CloudSyncTask, spec: &CloudSyncSpec) -> Option<Overlap> {
    let same_target = task.attributes.bucket == spec.bucket
        && trim_slashes(&task.attributes.folder) == trim_slashes(&spec.folder);
    let same_path = task.path.trim_end_matches('/') == spec.path;
    // An enabled PUSH task into the agent's folder deletes what the agent's SYNC task
    // uploads, and the other way round: a human must remove it (or adopt it, when it is
    // the agent's own task whose record was lost), whatever else happens.
    let fights = same_target && task.enabled && task.direction == spec::sop::DIRECTION;
    let identical = same_target && same_path && task.description == spec.description;
    let reason = if identical {
        // What the agent's own task looks like once its record is gone (state directory
        // lost) — or a task made by hand to the SOP: either way adopting it is the fix.
        "has the agent's name, path, bucket and folder (the agent's own task if its state directory was lost, or one made by hand to the SOP); list it in adopt.cloud_sync to let the agent manage it, or delete it: two SYNC tasks into one folder delete each other's files"
    } else if fights {
        "pushes into the same bucket folder as the agent's task: two SYNC tasks delete each other's files; delete it or point it at another folder (the agent never edits it)"
    } else if same_target {
        "writes to the same bucket folder as the agent's task (two SYNC tasks would delete each other's files)"
    } else if same_path && task.description == spec.description {
        "looks like a hand-made copy of the agent's task (same name and path); list it in adopt.cloud_sync to let the agent manage it"
    } else if same_path {
        "also backs up this pool; left untouched"
    } else {
        return None;
    };
    Some(Overlap {
        serious: same_target || task.description == spec.description,
        fights,
        reason: reason.to_owned(),
    })
}

/// Cloud Sync tasks, one per managed pool. Returns, per pool, the task an action can run.
pub(super) fn plan_cloud_sync(
    ctx: &Ctx<'_>,
    credential: Option<CredentialRef>,
    p: &mut Plan,
) -> BTreeMap<String, TaskRef> {
    let tasks = &ctx.observed.cloud_sync;
    let mut refs = BTreeMap::new();
    for pool in p.pools.clone() {
        // Identity for matching back an interrupted create: any credential will do.
        let probe = cloud_sync_spec(ctx, &pool, credential.unwrap_or(CredentialRef::Planned));
        let ours = |t: &CloudSyncTask| {
            t.description == probe.description
                && t.path == probe.path
                && t.attributes.bucket == probe.bucket
                && t.attributes.folder == probe.folder
        };
        let claimed = claim(ctx, &pool, tasks, ours, p);
        let claimed_id = claimed.as_ref().map(|c| c.task.id);
        let blocked = conflicts(
            ctx,
            &pool,
            tasks,
            claimed_id,
            |t| cloud_sync_overlap(t, &probe),
            p,
        );
        match claimed {
            Some(Claimed { task, adopt }) => {
                if let Some(reason) = adopt {
                    p.steps
                        .push(adopt_step(ObjectKind::CloudSync, task.id, &pool, reason));
                }
                // With the credential blocked, keep the task's current one.
                let cref = credential.or(task.credential_id.map(CredentialRef::Existing));
                let Some(cref) = cref else {
                    p.blockers
                        .push(Blocker::WaitingForCredential { pool: pool.clone() });
                    continue;
                };
                update_cloud_sync(ctx, task, cloud_sync_spec(ctx, &pool, cref), adopt, p);
                refs.insert(pool, TaskRef::Existing(task.id));
            }
            None if blocked => {}
            None => match credential {
                Some(cref) => {
                    p.steps
                        .push(Step::CreateCloudSync(cloud_sync_spec(ctx, &pool, cref)));
                    refs.insert(pool, TaskRef::Planned);
                }
                None => p.blockers.push(Blocker::WaitingForCredential { pool }),
            },
        }
    }
    refs
}

fn adopt_step(kind: ObjectKind, id: u64, pool: &str, reason: AdoptReason) -> Step {
    Step::Adopt {
        kind,
        id,
        pool: Some(pool.to_owned()),
        reason,
    }
}

fn update_cloud_sync(
    ctx: &Ctx<'_>,
    task: &CloudSyncTask,
    spec: CloudSyncSpec,
    adopt: Option<AdoptReason>,
    p: &mut Plan,
) {
    let empty = BTreeMap::new();
    // Fingerprints recorded for this task only (an adopted task has none yet).
    let recorded = match adopt {
        None => ctx
            .owned
            .cloud_sync
            .get(&spec.pool)
            .map_or(&empty, |o: &OwnedObject| &o.fingerprints),
        Some(_) => &empty,
    };
    let secrets = spec::encryption_secrets(task, &spec, recorded);
    let mut changes = spec::diff_cloud_sync(task, &spec);
    // A new destination (bucket or folder: a moved device) is a new target, not a re-key:
    // the task's uploaded data stays where it is, readable with the old secrets (central
    // keeps them), and the new place holds nothing written with them.
    let new_destination = task.attributes.bucket != spec.bucket
        || trim_slashes(&task.attributes.folder) != trim_slashes(&spec.folder);
    if secrets.rekeys() {
        if task.has_run() && !ctx.desired.encryption.allow_rekey && !new_destination {
            // The remote data was written with the old password/salt: changing them
            // would make it unreadable (SOP §7 "Encryption password lost").
            p.blockers.push(if secrets.known_to_differ() {
                Blocker::RekeyRefused {
                    pool: spec.pool.clone(),
                    id: task.id,
                }
            } else {
                Blocker::RekeyUnverifiable {
                    pool: spec.pool.clone(),
                    id: task.id,
                }
            });
        } else {
            changes.extend(spec::encryption_changes(task, secrets));
        }
    }
    if !changes.is_empty() {
        p.steps.push(Step::UpdateCloudSync {
            id: task.id,
            changes,
            spec,
        });
    }
}

fn snapshot_spec(ctx: &Ctx<'_>, pool: &str) -> SnapshotSpec {
    let s = &ctx.desired.snapshots;
    let prefix = format!("{pool}/");
    SnapshotSpec {
        pool: pool.to_owned(),
        dataset: pool.to_owned(),
        recursive: s.recursive,
        exclude: s
            .exclude
            .iter()
            .filter(|e| e.starts_with(&prefix))
            .cloned()
            .collect(),
        lifetime_value: u64::from(s.lifetime_value),
        lifetime_unit: s.lifetime_unit,
        naming_schema: s.naming_schema.clone(),
        schedule: s.schedule.clone(),
        begin: s.begin,
        end: s.end,
        allow_empty: s.allow_empty,
        enabled: s.enabled,
    }
}

/// Periodic snapshot tasks, one per managed pool.
pub(super) fn plan_snapshots(ctx: &Ctx<'_>, p: &mut Plan) {
    let tasks = &ctx.observed.snapshot_tasks;
    for pool in p.pools.clone() {
        let spec = snapshot_spec(ctx, &pool);
        let ours =
            |t: &SnapshotTask| t.dataset == spec.dataset && t.naming_schema == spec.naming_schema;
        let claimed = claim(ctx, &pool, tasks, ours, p);
        let claimed_id = claimed.as_ref().map(|c| c.task.id);
        let overlap = |t: &SnapshotTask| {
            ours(t).then(|| Overlap {
                serious: true,
                fights: false,
                reason: "snapshots the same dataset with the same naming schema; list it in adopt.snapshots to let the agent manage it".to_owned(),
            })
        };
        let blocked = conflicts(ctx, &pool, tasks, claimed_id, overlap, p);
        match claimed {
            Some(Claimed { task, adopt }) => {
                if let Some(reason) = adopt {
                    p.steps
                        .push(adopt_step(ObjectKind::SnapshotTask, task.id, &pool, reason));
                }
                let changes = spec::diff_snapshot(task, &spec);
                if !changes.is_empty() {
                    p.steps.push(Step::UpdateSnapshotTask {
                        id: task.id,
                        changes,
                        spec,
                    });
                }
            }
            None if blocked => {}
            None => p.steps.push(Step::CreateSnapshotTask(spec)),
        }
    }
}

/// Tasks the agent owns for pools that are no longer managed: disabled (default) or
/// deleted. Pools the document still lists but the NAS lacks are left alone.
pub(super) fn plan_removed_pools(ctx: &Ctx<'_>, p: &mut Plan) {
    let listed = ctx.desired.pools.as_deref().unwrap_or_default();
    let managed = p.pools.clone();
    let keep = |pool: &String| managed.contains(pool) || listed.contains(pool);
    let (mut steps, mut forget) = (Vec::new(), Vec::new());
    let (owned, observed) = (ctx.owned, ctx.observed);
    removed(
        ctx,
        &owned.cloud_sync,
        &observed.cloud_sync,
        &keep,
        &mut steps,
        &mut forget,
    );
    removed(
        ctx,
        &owned.snapshot_tasks,
        &observed.snapshot_tasks,
        &keep,
        &mut steps,
        &mut forget,
    );
    p.steps.extend(steps);
    p.forget.extend(forget);
}

fn removed<T: Task>(
    ctx: &Ctx<'_>,
    owned: &BTreeMap<String, OwnedObject>,
    tasks: &[T],
    keep: &impl Fn(&String) -> bool,
    steps: &mut Vec<Step>,
    forget: &mut Vec<Forget>,
) {
    for (pool, record) in owned.iter().filter(|(pool, _)| !keep(pool)) {
        match tasks
            .iter()
            .find(|t| t.id() == record.id && t.anchored(pool))
        {
            Some(task) => steps.extend(removal(ctx, task, pool)),
            None => forget.push(Forget {
                kind: T::KIND,
                pool: Some(pool.clone()),
                id: record.id,
            }),
        }
    }
}

fn removal<T: Task>(ctx: &Ctx<'_>, task: &T, pool: &str) -> Option<Step> {
    match ctx.desired.removed_pools {
        RemovedPools::Disable if task.enabled() => Some(Step::Disable {
            kind: T::KIND,
            id: task.id(),
            pool: pool.to_owned(),
        }),
        RemovedPools::Disable => None,
        RemovedPools::Delete => Some(Step::Delete {
            kind: T::KIND,
            id: task.id(),
            pool: pool.to_owned(),
        }),
    }
}

/// SNMPv3 only, SHA/AES, community empty; the service enabled at boot and running.
pub(super) fn plan_snmp(ctx: &Ctx<'_>, p: &mut Plan) {
    let Some(snmp) = &ctx.desired.snmp else {
        return;
    };
    let fps = &ctx.inputs.fingerprints;
    let spec = SnmpSpec {
        username: snmp.username.clone(),
        auth_password: snmp.auth_password.clone(),
        privacy_passphrase: snmp.privacy_passphrase.clone(),
        auth_fingerprint: fps.snmp_auth.clone(),
        privacy_fingerprint: fps.snmp_privacy.clone(),
    };
    let changes = spec::diff_snmp(&ctx.observed.snmp, &spec, &ctx.owned.snmp_fingerprints);
    if ctx.owned.snmp_retry.is_some() {
        // The last SNMP apply failed: the stored config may match while snmpd lacks the
        // user. Re-apply whatever the diff says.
        p.steps.push(Step::ReapplySnmp { spec });
    } else if !changes.is_empty() {
        p.steps.push(Step::UpdateSnmp { changes, spec });
    }
    let service = &ctx.observed.snmp_service;
    if !service.enable {
        p.steps.push(Step::EnableService {
            service: SNMP_SERVICE.to_owned(),
        });
    }
    if service.state != "RUNNING" {
        p.steps.push(Step::StartService {
            service: SNMP_SERVICE.to_owned(),
        });
    }
}

/// `adopt` ids that point at nothing, or at a task that is not for a managed pool.
pub(super) fn check_adopted(ctx: &Ctx<'_>, p: &mut Plan) {
    fn check<T: Task>(ids: &[u64], tasks: &[T], p: &mut Plan) {
        for id in ids {
            match tasks.iter().find(|t| t.id() == *id) {
                None => p.blockers.push(Blocker::AdoptedMissing {
                    object: T::KIND,
                    id: *id,
                }),
                Some(t)
                    if !t
                        .pool()
                        .is_some_and(|pool| p.pools.iter().any(|m| m == pool)) =>
                {
                    p.blockers.push(Blocker::AdoptedNotManaged {
                        object: T::KIND,
                        id: *id,
                    });
                }
                Some(_) => {}
            }
        }
    }
    check(&ctx.desired.adopt.cloud_sync, &ctx.observed.cloud_sync, p);
    check(
        &ctx.desired.adopt.snapshots,
        &ctx.observed.snapshot_tasks,
        p,
    );
}

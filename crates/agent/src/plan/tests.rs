//! Planner tests: one table test per rule, proptests for idempotence and for "never
//! touches what it does not own", and an in-memory model of what `apply` does.

#![allow(clippy::many_single_char_names, clippy::too_many_lines)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use super::*;
use crate::desired::{self, DesiredState, RemovedPools, derive};
use crate::middleware::{ApiFlavor, ApiInfo, JobState, Protocol, TransportKind};
use crate::observe::{
    B2Attributes, CloudSyncTask, Credential, Observed, Pool, SecretView, Service, SnapshotTask,
    Snmp,
};
use crate::state_dir::{Fingerprint, fingerprint_with_key};
use crate::zfs::DEFAULT_GUID_PROPERTY;

const EXAMPLE: &str = include_str!("../../../../tests/data/desired/example.json");
const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";

pub(crate) fn doc_with(edit: impl FnOnce(&mut serde_json::Value)) -> DesiredState {
    let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    edit(&mut v);
    desired::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
}

pub(crate) fn doc() -> DesiredState {
    doc_with(|_| {})
}

fn fp(secret: &SecretString) -> Fingerprint {
    fingerprint_with_key(b"test-key", secret)
}

pub(crate) fn inputs(d: &DesiredState) -> Inputs {
    Inputs {
        device_guid: derive::parse_uuid(GUID).unwrap(),
        guid_source: GuidSource::Document,
        fingerprints: SecretFingerprints {
            application_key: fp(&d.b2.application_key),
            encryption_password: fp(&d.encryption.password),
            encryption_salt: fp(&d.encryption.salt),
            snmp_auth: d.snmp.as_ref().map(|s| fp(&s.auth_password)),
            snmp_privacy: d.snmp.as_ref().map(|s| fp(&s.privacy_passphrase)),
        },
        root_pool: d.device.root_pool.clone(),
    }
}

fn pool(name: &str) -> Pool {
    Pool {
        name: name.into(),
        healthy: true,
        status: "ONLINE".into(),
        user_properties: BTreeMap::new(),
    }
}

/// A fresh box: pools, no credential or task, SNMP v2c "public", service stopped.
pub(crate) fn fresh(pools: &[&str]) -> Observed {
    Observed {
        api: ApiInfo {
            flavor: ApiFlavor::V25_04,
            version: "25.04.2.6".into(),
            protocol: Protocol::JsonRpc,
            transport: TransportKind::UnixSocket,
            api_version: Some("v25.04.2".into()),
            newer_than_known: false,
        },
        pools: pools.iter().map(|p| pool(p)).collect(),
        credentials: Vec::new(),
        cloud_sync: Vec::new(),
        snapshot_tasks: Vec::new(),
        snmp: Snmp {
            v3: false,
            community: "public".into(),
            v3_username: String::new(),
            v3_authtype: String::new(),
            v3_password: SecretView::Empty,
            v3_privproto: None,
            v3_privpassphrase: SecretView::Empty,
        },
        snmp_service: Service {
            enable: false,
            state: "STOPPED".into(),
        },
    }
}

fn next_id(ids: impl Iterator<Item = u64>) -> u64 {
    ids.max().unwrap_or(0) + 1
}

fn task_from(spec: &CloudSyncSpec, id: u64, credential: u64) -> CloudSyncTask {
    CloudSyncTask {
        id,
        description: spec.description.clone(),
        path: spec.path.clone(),
        credential_id: Some(credential),
        direction: "PUSH".into(),
        transfer_mode: "SYNC".into(),
        attributes: B2Attributes {
            bucket: spec.bucket.clone(),
            folder: spec.folder.clone(),
            chunk_size: spec.chunk_size,
            fast_list: spec.fast_list,
            other_keys: Vec::new(),
        },
        schedule: spec.schedule.clone(),
        enabled: spec.enabled,
        snapshot: spec.snapshot,
        pre_script: String::new(),
        post_script: String::new(),
        include: Vec::new(),
        exclude: spec.exclude.clone(),
        args: String::new(),
        bwlimit: spec.bwlimit.clone(),
        bwlimit_unreadable: false,
        transfers: spec.transfers,
        encryption: true,
        filename_encryption: spec.filename_encryption,
        encryption_password: SecretView::Value(spec.encryption_password.clone()),
        encryption_salt: SecretView::Value(spec.encryption_salt.clone()),
        create_empty_src_dirs: false,
        follow_symlinks: spec.follow_symlinks,
        last_run: None,
        dry_run_shown: false,
        locked: false,
    }
}

fn snapshot_from(spec: &SnapshotSpec, id: u64) -> SnapshotTask {
    SnapshotTask {
        id,
        dataset: spec.dataset.clone(),
        recursive: spec.recursive,
        exclude: spec.exclude.clone(),
        lifetime_value: spec.lifetime_value,
        lifetime_unit: spec.lifetime_unit.as_str().into(),
        naming_schema: spec.naming_schema.clone(),
        schedule: spec.schedule.clone(),
        begin: Some(spec.begin),
        end: Some(spec.end),
        allow_empty: spec.allow_empty,
        enabled: spec.enabled,
    }
}

fn changed(changes: &[FieldChange], key: &str) -> bool {
    changes.iter().any(|c| c.key() == key)
}

/// What `apply` would leave behind if every step succeeded (a model, not the real one).
#[allow(clippy::too_many_lines)]
pub(crate) fn apply_in_memory(
    p: &Plan,
    before: &Observed,
    own_before: &Ownership,
) -> (Observed, Ownership) {
    let mut o = before.clone();
    let mut own = own_before.clone();
    let mut new_credential = None;
    let mut new_task: BTreeMap<String, u64> = BTreeMap::new();
    let cred_id = |r: CredentialRef, new: Option<u64>| match r {
        CredentialRef::Existing(id) => id,
        CredentialRef::Planned => new.expect("credential created first"),
    };
    for step in &p.steps {
        match step {
            Step::CreateCredential(s) => {
                let id = next_id(o.credentials.iter().map(|c| c.id));
                o.credentials.push(Credential {
                    id,
                    name: s.name.clone(),
                    provider: "B2".into(),
                    account: Some(s.key_id.clone()),
                    key: SecretView::Value(s.application_key.clone()),
                });
                let mut rec = OwnedObject::new(id);
                rec.fingerprints
                    .insert("key".into(), s.key_fingerprint.clone());
                own.credential = Some(rec);
                new_credential = Some(id);
            }
            Step::UpdateCredential { id, spec, .. } => {
                let c = o.credentials.iter_mut().find(|c| c.id == *id).unwrap();
                c.name = spec.name.clone();
                c.provider = "B2".into();
                c.account = Some(spec.key_id.clone());
                c.key = SecretView::Value(spec.application_key.clone());
                let rec = own.credential.as_mut().unwrap();
                rec.fingerprints
                    .insert("key".into(), spec.key_fingerprint.clone());
            }
            Step::Adopt { kind, id, pool, .. } => match kind {
                ObjectKind::Credential => own.credential = Some(OwnedObject::new(*id)),
                _ => {
                    own.tasks_mut(*kind)
                        .unwrap()
                        .insert(pool.clone().unwrap(), OwnedObject::new(*id));
                }
            },
            Step::CreateCloudSync(s) => {
                let id = next_id(o.cloud_sync.iter().map(|t| t.id));
                o.cloud_sync
                    .push(task_from(s, id, cred_id(s.credential, new_credential)));
                let mut rec = OwnedObject::new(id);
                rec.fingerprints
                    .insert("encryption_password".into(), s.password_fingerprint.clone());
                rec.fingerprints
                    .insert("encryption_salt".into(), s.salt_fingerprint.clone());
                own.cloud_sync.retain(|p, r| *p == s.pool || r.id != id);
                own.cloud_sync.insert(s.pool.clone(), rec);
                new_task.insert(s.pool.clone(), id);
            }
            Step::UpdateCloudSync { id, changes, spec } => {
                let desired = task_from(spec, *id, cred_id(spec.credential, new_credential));
                let t = o.cloud_sync.iter_mut().find(|t| t.id == *id).unwrap();
                let keep = t.clone();
                *t = desired;
                // Only the sent keys change.
                macro_rules! keep {
                    ($key:literal, $($f:ident),+) => {
                        if !changed(changes, $key) { $( t.$f = keep.$f.clone(); )+ }
                    };
                }
                keep!("description", description);
                keep!("path", path);
                keep!("credentials", credential_id);
                keep!("direction", direction);
                keep!("transfer_mode", transfer_mode);
                keep!("attributes", attributes);
                keep!("schedule", schedule);
                keep!("enabled", enabled);
                keep!("snapshot", snapshot);
                keep!("pre_script", pre_script);
                keep!("post_script", post_script);
                keep!("include", include);
                keep!("exclude", exclude);
                keep!("args", args);
                keep!("bwlimit", bwlimit, bwlimit_unreadable);
                keep!("transfers", transfers);
                keep!("encryption", encryption);
                keep!("filename_encryption", filename_encryption);
                keep!("encryption_password", encryption_password);
                keep!("encryption_salt", encryption_salt);
                keep!("create_empty_src_dirs", create_empty_src_dirs);
                keep!("follow_symlinks", follow_symlinks);
                t.last_run = keep.last_run;
                let rec = own.cloud_sync.get_mut(&spec.pool).unwrap();
                if changed(changes, "encryption_password") {
                    rec.fingerprints.insert(
                        "encryption_password".into(),
                        spec.password_fingerprint.clone(),
                    );
                }
                if changed(changes, "encryption_salt") {
                    rec.fingerprints
                        .insert("encryption_salt".into(), spec.salt_fingerprint.clone());
                }
            }
            Step::CreateSnapshotTask(s) => {
                let id = next_id(o.snapshot_tasks.iter().map(|t| t.id));
                o.snapshot_tasks.push(snapshot_from(s, id));
                own.snapshot_tasks
                    .insert(s.pool.clone(), OwnedObject::new(id));
            }
            Step::UpdateSnapshotTask { id, spec, .. } => {
                let t = o.snapshot_tasks.iter_mut().find(|t| t.id == *id).unwrap();
                *t = snapshot_from(spec, *id);
            }
            Step::Disable { kind, id, .. } => match kind {
                ObjectKind::CloudSync => {
                    o.cloud_sync
                        .iter_mut()
                        .find(|t| t.id == *id)
                        .unwrap()
                        .enabled = false;
                }
                ObjectKind::SnapshotTask => {
                    o.snapshot_tasks
                        .iter_mut()
                        .find(|t| t.id == *id)
                        .unwrap()
                        .enabled = false;
                }
                ObjectKind::Credential => unreachable!(),
            },
            Step::Delete { kind, id, pool } => {
                match kind {
                    ObjectKind::CloudSync => o.cloud_sync.retain(|t| t.id != *id),
                    ObjectKind::SnapshotTask => o.snapshot_tasks.retain(|t| t.id != *id),
                    ObjectKind::Credential => unreachable!(),
                }
                own.tasks_mut(*kind).unwrap().remove(pool);
            }
            Step::UpdateSnmp { spec, .. } | Step::ReapplySnmp { spec } => {
                own.snmp_retry = None;
                o.snmp = Snmp {
                    v3: true,
                    community: String::new(),
                    v3_username: spec.username.clone(),
                    v3_authtype: "SHA".into(),
                    v3_password: SecretView::Value(spec.auth_password.clone()),
                    v3_privproto: Some("AES".into()),
                    v3_privpassphrase: SecretView::Value(spec.privacy_passphrase.clone()),
                };
                for (key, fp) in [
                    ("v3_password", &spec.auth_fingerprint),
                    ("v3_privpassphrase", &spec.privacy_fingerprint),
                ] {
                    if let Some(fp) = fp {
                        own.snmp_fingerprints.insert(key.into(), fp.clone());
                    }
                }
            }
            Step::EnableService { .. } => o.snmp_service.enable = true,
            Step::StartService { .. } => o.snmp_service.state = "RUNNING".into(),
            Step::RunCloudSync {
                action_id,
                pool,
                task,
            } => {
                let id = match task {
                    TaskRef::Existing(id) => *id,
                    TaskRef::Planned => new_task[pool],
                };
                own.executed_actions.insert(action_id.clone());
                o.cloud_sync
                    .iter_mut()
                    .find(|t| t.id == id)
                    .unwrap()
                    .last_run = Some(JobState::Running);
            }
        }
    }
    for f in &p.forget {
        match (f.kind, &f.pool) {
            (ObjectKind::Credential, _) => own.credential = None,
            (kind, Some(pool)) => {
                let map = own.tasks_mut(kind).unwrap();
                if map.get(pool).is_some_and(|r| r.id == f.id) {
                    map.remove(pool);
                }
            }
            (_, None) => {}
        }
    }
    own.pending.clear();
    own.last_revision = Some(p.revision);
    (o, own)
}

/// A converged box for `d` (plan + in-memory apply from fresh).
fn converged(d: &DesiredState) -> (Observed, Ownership) {
    let o = fresh(&["pool0", "pool1"]);
    let p = plan(d, &o, &Ownership::default(), &inputs(d));
    apply_in_memory(&p, &o, &Ownership::default())
}

fn kinds(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .map(|s| {
            let v = s.view();
            format!(
                "{} {}{}",
                v.action,
                v.object,
                v.pool.map(|p| format!(" {p}")).unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn fresh_box_gets_every_object_in_safe_order() {
    let d = doc();
    let p = plan(
        &d,
        &fresh(&["pool0", "pool1"]),
        &Ownership::default(),
        &inputs(&d),
    );
    assert_eq!(
        kinds(&p),
        [
            "create credential",
            "create cloud_sync pool0",
            "create cloud_sync pool1",
            "create snapshot_task pool0",
            "create snapshot_task pool1",
            "update snmp",
            "enable_at_boot service",
            "start service",
            "run cloud_sync pool0",
        ]
    );
    assert!(p.conflicts.is_empty() && p.blockers.is_empty());
    let Step::CreateCloudSync(s) = &p.steps[1] else {
        panic!()
    };
    assert_eq!(s.description, "Pool0 Cloud Backup");
    assert_eq!(s.path, "/mnt/pool0");
    assert_eq!(s.folder, format!("/{GUID}/pool0"));
    assert_eq!(s.bucket, "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9");
    assert_eq!(s.credential, CredentialRef::Planned);
    assert!(matches!(
        p.steps[8],
        Step::RunCloudSync {
            task: TaskRef::Planned,
            ..
        }
    ));
}

#[test]
fn converged_box_plans_zero_steps() {
    let d = doc();
    let (o, own) = converged(&d);
    let p = plan(&d, &o, &own, &inputs(&d));
    assert!(p.steps.is_empty(), "{p}");
    assert!(p.is_converged());
    assert!(
        p.to_string()
            .ends_with("No changes: the NAS matches the document.")
    );
}

#[test]
fn drift_shows_exactly_the_changed_field() {
    let d = doc();
    let (mut o, own) = converged(&d);
    o.cloud_sync[0].exclude = vec!["/Archive/**".into()];
    o.snapshot_tasks[1].lifetime_value = 4;
    let p = plan(&d, &o, &own, &inputs(&d));
    assert_eq!(
        kinds(&p),
        ["update cloud_sync pool0", "update snapshot_task pool1"]
    );
    let fields: Vec<&str> = p
        .steps
        .iter()
        .flat_map(Step::changes)
        .map(|c| c.field.as_str())
        .collect();
    assert_eq!(fields, ["exclude", "lifetime_value"]);
}

#[test]
fn normalised_values_are_not_drift() {
    let d = doc();
    let (mut o, own) = converged(&d);
    o.cloud_sync[0].exclude.reverse();
    // The middleware's "00" minute and a lenient time read back as the same value.
    o.cloud_sync[0].schedule = crate::desired::Cron::from_fields("00", "00", "*", "*", "*");
    let p = plan(&d, &o, &own, &inputs(&d));
    assert!(p.steps.is_empty(), "{p}");
}

#[test]
fn hand_made_task_on_the_same_path_is_reported_and_untouched() {
    let d = doc();
    let mut o = fresh(&["pool0", "pool1"]);
    let mut admin = task_from(&tasks_spec_for(&d, "pool0"), 40, 99);
    admin.description = "Nightly to Wasabi".into();
    admin.attributes.bucket = "someone-elses".into();
    o.cloud_sync.push(admin);
    let p = plan(&d, &o, &Ownership::default(), &inputs(&d));
    assert_eq!(p.conflicts.len(), 1);
    assert_eq!(p.conflicts[0].id, 40);
    assert!(!p.conflicts[0].blocking);
    assert!(
        p.steps
            .iter()
            .all(|s| s.touches() != Some((ObjectKind::CloudSync, 40)))
    );
    assert!(kinds(&p).contains(&"create cloud_sync pool0".to_owned()));
}

/// A spec for `pool` as the planner builds it (via a fresh plan).
fn tasks_spec_for(d: &DesiredState, pool_name: &str) -> CloudSyncSpec {
    let p = plan(
        d,
        &fresh(&["pool0", "pool1"]),
        &Ownership::default(),
        &inputs(d),
    );
    p.steps
        .iter()
        .find_map(|s| match s {
            Step::CreateCloudSync(s) if s.pool == pool_name => Some(s.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn hand_made_sop_copy_blocks_until_adopted() {
    let d = doc();
    let mut o = fresh(&["pool0", "pool1"]);
    let mut admin = task_from(&tasks_spec_for(&d, "pool0"), 12, 99);
    admin.exclude = vec!["/Archive/**".into()];
    o.cloud_sync.push(admin);
    let p = plan(&d, &o, &Ownership::default(), &inputs(&d));
    assert!(p.conflicts[0].blocking && p.has_blocking_conflict());
    assert!(!kinds(&p).contains(&"create cloud_sync pool0".to_owned()));
    assert!(
        p.steps
            .iter()
            .all(|s| s.touches() != Some((ObjectKind::CloudSync, 12)))
    );
    // The document adopts it: adopt + update (exclude and the new credential).
    let d = doc_with(|v| v["adopt"] = serde_json::json!({"cloud_sync": [12]}));
    let p = plan(&d, &o, &Ownership::default(), &inputs(&d));
    assert!(p.conflicts.is_empty());
    assert_eq!(
        kinds(&p)[..3],
        [
            "create credential",
            "adopt cloud_sync pool0",
            "update cloud_sync pool0"
        ]
    );
    let fields: Vec<&str> = p.steps[2]
        .changes()
        .iter()
        .map(|c| c.field.as_str())
        .collect();
    assert_eq!(fields, ["credentials", "exclude"]);
}

#[test]
fn foreign_credential_with_our_name_blocks_cloud_sync() {
    let d = doc();
    let mut o = fresh(&["pool0", "pool1"]);
    o.credentials.push(Credential {
        id: 3,
        name: d.bucket.clone(),
        provider: "B2".into(),
        account: Some("other".into()),
        key: SecretView::Redacted,
    });
    let p = plan(&d, &o, &Ownership::default(), &inputs(&d));
    assert!(p.conflicts[0].blocking);
    assert!(
        p.conflicts[0]
            .reason
            .contains("\"adopt\": {\"credential\": 3}")
    );
    assert!(
        p.steps
            .iter()
            .all(|s| !matches!(s, Step::CreateCloudSync(_) | Step::CreateCredential(_)))
    );
    assert_eq!(
        p.blockers
            .iter()
            .filter(|b| matches!(b, Blocker::WaitingForCredential { .. }))
            .count(),
        2
    );
    // Snapshots and SNMP still go ahead.
    assert!(kinds(&p).contains(&"create snapshot_task pool0".to_owned()));
    let d = doc_with(|v| v["adopt"] = serde_json::json!({"credential": 3}));
    let p = plan(&d, &o, &Ownership::default(), &inputs(&d));
    assert_eq!(kinds(&p)[..2], ["adopt credential", "update credential"]);
    let fields: Vec<&str> = p.steps[1]
        .changes()
        .iter()
        .map(|c| c.field.as_str())
        .collect();
    assert_eq!(fields, ["provider.account", "provider.key"]);
}

#[test]
fn rekey_of_a_task_that_ran_is_refused_unless_allowed() {
    let d = doc();
    let (mut o, own) = converged(&d);
    o.cloud_sync[0].last_run = Some(JobState::Success);
    o.cloud_sync[0].encryption_password = SecretView::Value(SecretString::from("old-password"));
    let p = plan(&d, &o, &own, &inputs(&d));
    assert_eq!(
        p.blockers,
        [Blocker::RekeyRefused {
            pool: "pool0".into(),
            id: o.cloud_sync[0].id
        }]
    );
    assert!(
        p.steps
            .iter()
            .all(|s| !changed(s.changes(), "encryption_password"))
    );
    // A task that never ran takes the new password without fuss.
    o.cloud_sync[0].last_run = None;
    let p = plan(&d, &o, &own, &inputs(&d));
    assert!(p.blockers.is_empty());
    assert!(changed(p.steps[0].changes(), "encryption_password"));
    // allow_rekey forces it.
    o.cloud_sync[0].last_run = Some(JobState::Success);
    let d = doc_with(|v| v["encryption"]["allow_rekey"] = serde_json::json!(true));
    let p = plan(&d, &o, &own, &inputs(&d));
    assert!(p.blockers.is_empty());
    let c = &p.steps[0].changes()[0];
    assert_eq!(
        (c.field.as_str(), c.from.as_str(), c.to.as_str()),
        ("encryption_password", "(set)", "(changed)")
    );
}

#[test]
fn a_new_destination_is_not_a_rekey() {
    // A device moved to another location (central provisioning, issue 15): new bucket,
    // new key, new encryption password/salt. The task's uploaded data stays in the old
    // bucket with the old secrets; the new bucket starts empty, so this is a new target,
    // not a re-key of data the task wrote.
    let d = doc();
    let (mut o, own) = converged(&d);
    o.cloud_sync[0].last_run = Some(JobState::Success);
    let moved = doc_with(|v| {
        v["device"]["location_uuid"] = serde_json::json!("0f0e0d0c-0b0a-4908-8706-050403020100");
        v["encryption"]["password"] = serde_json::json!("new-destination-password");
        v["encryption"]["salt"] = serde_json::json!("new-destination-salt");
    });
    let p = plan(&moved, &o, &own, &inputs(&moved));
    assert!(p.blockers.is_empty(), "{:?}", p.blockers);
    let task_step = p
        .steps
        .iter()
        .find(|s| s.changes().iter().any(|c| c.field == "attributes.bucket"))
        .expect("the task moves to the new bucket");
    assert!(changed(task_step.changes(), "encryption_password"));
    assert!(changed(task_step.changes(), "encryption_salt"));
    // Same destination, new password: still refused (the data would become unreadable).
    let rekey = doc_with(|v| {
        v["encryption"]["password"] = serde_json::json!("new-destination-password");
    });
    let p = plan(&rekey, &o, &own, &inputs(&rekey));
    assert!(
        matches!(p.blockers.as_slice(), [Blocker::RekeyRefused { .. }]),
        "{:?}",
        p.blockers
    );
}

#[test]
fn redacted_secrets_compare_by_recorded_fingerprint() {
    let d = doc();
    let (mut o, own) = converged(&d);
    for t in &mut o.cloud_sync {
        t.encryption_password = SecretView::Redacted;
        t.encryption_salt = SecretView::Redacted;
        t.last_run = Some(JobState::Success);
    }
    o.credentials[0].key = SecretView::Redacted;
    o.snmp.v3_password = SecretView::Redacted;
    let p = plan(&d, &o, &own, &inputs(&d));
    assert!(p.is_converged(), "{p}");
    // Without records the agent cannot tell; for a task that ran it refuses to guess.
    let mut forgetful = own.clone();
    for rec in forgetful.cloud_sync.values_mut() {
        rec.fingerprints.clear();
    }
    let p = plan(&d, &o, &forgetful, &inputs(&d));
    assert!(matches!(p.blockers[0], Blocker::RekeyUnverifiable { .. }));
    assert!(p.steps.is_empty());
}

#[test]
fn removed_pools_are_disabled_or_deleted() {
    let d = doc();
    let (o, own) = converged(&d);
    let only0 = doc_with(|v| {
        v["pools"] = serde_json::json!(["pool0"]);
    });
    let p = plan(&only0, &o, &own, &inputs(&only0));
    assert_eq!(
        kinds(&p),
        ["disable cloud_sync pool1", "disable snapshot_task pool1"]
    );
    let (o2, own2) = apply_in_memory(&p, &o, &own);
    assert!(
        plan(&only0, &o2, &own2, &inputs(&only0)).steps.is_empty(),
        "disabled stays disabled"
    );
    let delete = doc_with(|v| {
        v["pools"] = serde_json::json!(["pool0"]);
        v["removed_pools"] = serde_json::json!("delete");
    });
    let p = plan(&delete, &o, &own, &inputs(&delete));
    assert_eq!(
        kinds(&p),
        ["delete cloud_sync pool1", "delete snapshot_task pool1"]
    );
    // Re-adding the pool re-enables the same (kept) tasks.
    let p = plan(&d, &o2, &own2, &inputs(&d));
    assert_eq!(
        kinds(&p),
        ["update cloud_sync pool1", "update snapshot_task pool1"]
    );
}

#[test]
fn listed_pool_missing_on_the_nas_is_a_blocker_not_a_removal() {
    let d = doc();
    let (mut o, own) = converged(&d);
    o.pools.retain(|p| p.name != "pool1");
    let p = plan(&d, &o, &own, &inputs(&d));
    assert_eq!(
        p.blockers,
        [Blocker::PoolNotImported {
            pool: "pool1".into(),
            suggestion: None,
        }]
    );
    assert!(p.steps.is_empty());
    assert_eq!(p.pools, ["pool0"]);
}

/// Issue 13.4: `pools: ["Pool0", "Pool1"]` on a box with `pool0` and `pool1` must not
/// disable (or, with `removed_pools: delete`, delete) every backup and snapshot task.
#[test]
fn a_mistyped_pool_list_touches_no_task_and_suggests_the_real_name() {
    let (o, own) = converged(&doc());
    for policy in ["disable", "delete"] {
        let typo = doc_with(|v| {
            v["pools"] = serde_json::json!(["Pool0", "Pool1"]);
            v["actions"] = serde_json::json!([]);
            v["removed_pools"] = serde_json::json!(policy);
        });
        let p = plan(&typo, &o, &own, &inputs(&typo));
        assert!(p.pools.is_empty());
        assert!(
            p.steps
                .iter()
                .all(|s| !matches!(s, Step::Disable { .. } | Step::Delete { .. })),
            "{policy}: {p}"
        );
        assert!(p.steps.iter().all(|s| s.touches().is_none()), "{p}");
        assert_eq!(
            p.blockers,
            [
                Blocker::PoolNotImported {
                    pool: "Pool0".into(),
                    suggestion: Some("pool0".into()),
                },
                Blocker::PoolNotImported {
                    pool: "Pool1".into(),
                    suggestion: Some("pool1".into()),
                },
            ]
        );
        assert!(!p.is_converged());
        let text = p.to_string();
        assert!(text.contains("did you mean pool0?"), "{text}");
        assert!(
            text.contains("left alone until every listed pool is imported"),
            "{text}"
        );
    }
    // One typo among correct names: the correct pool is still managed, the other
    // pool's tasks are not treated as removed.
    let half = doc_with(|v| {
        v["pools"] = serde_json::json!(["pool0", "pool_1"]);
        v["removed_pools"] = serde_json::json!("delete");
    });
    let p = plan(&half, &o, &own, &inputs(&half));
    assert_eq!(p.pools, ["pool0"]);
    assert!(p.steps.is_empty(), "{p}");
    assert_eq!(
        p.blockers,
        [Blocker::PoolNotImported {
            pool: "pool_1".into(),
            suggestion: Some("pool1".into()),
        }]
    );
    // Once every listed pool is there, a pool dropped from the list is handled again.
    let only0 = doc_with(|v| {
        v["pools"] = serde_json::json!(["pool0"]);
        v["removed_pools"] = serde_json::json!("delete");
    });
    assert_eq!(
        kinds(&plan(&only0, &o, &own, &inputs(&only0))),
        ["delete cloud_sync pool1", "delete snapshot_task pool1"]
    );
}

/// Issue 12.5: after a failed SNMP apply, SNMP is re-applied although `snmp.config`
/// already reads as the document asks (the middleware stored it before failing).
#[test]
fn a_recorded_snmp_failure_is_reapplied_on_a_converged_box() {
    let d = doc();
    let (o, mut own) = converged(&d);
    assert!(plan(&d, &o, &own, &inputs(&d)).steps.is_empty());
    own.snmp_retry = Some(SnmpRetry {
        failed_at: "2026-12-01T00:00:00Z".into(),
        step: "update SNMP".into(),
        error: "Service not running after start".into(),
    });
    let p = plan(&d, &o, &own, &inputs(&d));
    assert_eq!(kinds(&p), ["reapply snmp"]);
    assert!(!p.is_converged());
    assert!(p.to_string().contains("re-create its v3 user"), "{p}");
    let (o2, own2) = apply_in_memory(&p, &o, &own);
    assert!(plan(&d, &o2, &own2, &inputs(&d)).steps.is_empty());
    // Without an `snmp` section there is nothing to re-apply.
    let no_snmp = doc_with(|v| {
        v.as_object_mut().unwrap().remove("snmp");
    });
    assert!(plan(&no_snmp, &o, &own, &inputs(&no_snmp)).steps.is_empty());
}

/// Issue 13.5: a recorded revision above 2^53 − 1 (accepted before the bound existed)
/// does not make every later document a rollback.
#[test]
fn a_recorded_revision_above_the_bound_is_not_a_rollback_floor() {
    let d = doc();
    let (o, mut own) = converged(&d);
    own.last_revision = Some(9_223_372_036_854_775_807);
    let p = plan(&d, &o, &own, &inputs(&d));
    assert!(p.blockers.is_empty() && p.steps.is_empty(), "{p}");
    own.last_revision = Some(8);
    assert!(matches!(
        plan(&d, &o, &own, &inputs(&d)).blockers[..],
        [Blocker::Rollback { .. }]
    ));
}

#[test]
fn similar_pool_names() {
    let o = fresh(&["pool0", "pool1", "tank", "boot-pool"]);
    let none: &[String] = &[];
    assert_eq!(similar_pool("POOL0", &o, none).as_deref(), Some("pool0"));
    assert_eq!(similar_pool("tnak", &o, none).as_deref(), Some("tank"));
    // pool2 is one edit from both pool0 and pool1: no single guess…
    assert_eq!(similar_pool("pool2", &o, none), None);
    // …unless one of them is already listed (it cannot be what was meant).
    let listed = ["pool0".to_owned()];
    assert_eq!(similar_pool("pool2", &o, &listed).as_deref(), Some("pool1"));
    assert_eq!(similar_pool("backup", &o, none), None);
    assert_eq!(
        similar_pool("boot-pol", &o, none),
        None,
        "the boot pool is never suggested"
    );
}

#[test]
fn implicit_pools_are_every_imported_pool_but_boot() {
    let d = doc_with(|v| {
        v.as_object_mut().unwrap().remove("pools");
        v["device"].as_object_mut().unwrap().remove("root_pool");
    });
    let p = plan(
        &d,
        &fresh(&["tank", "boot-pool", "pool9"]),
        &Ownership::default(),
        &inputs(&d),
    );
    assert_eq!(p.pools, ["tank", "pool9"]);
    assert!(
        matches!(&p.blockers[..], [Blocker::ActionWaiting { .. }]),
        "{:?}",
        p.blockers
    );
}

#[test]
fn interrupted_creates_are_matched_back_not_duplicated() {
    let d = doc();
    let o0 = fresh(&["pool0", "pool1"]);
    let full = plan(&d, &o0, &Ownership::default(), &inputs(&d));
    // The pass created the credential and pool0's task, then the reply was lost:
    // the objects exist, the records do not, the write-ahead records do.
    let mut partial = full.clone();
    partial.steps.truncate(2);
    let (o, _) = apply_in_memory(&partial, &o0, &Ownership::default());
    let mut own = Ownership::default();
    for (kind, pool) in [
        (ObjectKind::Credential, None),
        (ObjectKind::CloudSync, Some("pool0".to_owned())),
    ] {
        own.pending.push(PendingCreate {
            kind,
            pool,
            max_id_before: 0,
        });
    }
    let p = plan(&d, &o, &own, &inputs(&d));
    assert_eq!(
        kinds(&p)[..2],
        ["adopt credential", "adopt cloud_sync pool0"]
    );
    assert!(!kinds(&p).contains(&"create cloud_sync pool0".to_owned()));
    assert!(p.conflicts.is_empty());
    // Without the write-ahead record the same objects are someone else's.
    let p = plan(&d, &o, &Ownership::default(), &inputs(&d));
    assert!(p.has_blocking_conflict());
    // A matching object that existed before the create is not claimed either.
    let mut old = own.clone();
    for pending in &mut old.pending {
        pending.max_id_before = 5;
    }
    assert!(plan(&d, &o, &old, &inputs(&d)).has_blocking_conflict());
}

#[test]
fn rollback_is_refused_with_zero_steps() {
    let d = doc();
    let own = Ownership {
        last_revision: Some(8),
        ..Ownership::default()
    };
    let p = plan(&d, &fresh(&["pool0"]), &own, &inputs(&d));
    assert!(p.steps.is_empty());
    assert_eq!(
        p.blockers,
        [Blocker::Rollback {
            revision: 7,
            last_applied: 8
        }]
    );
    assert!(!p.is_converged());
    let same = Ownership {
        last_revision: Some(7),
        ..Ownership::default()
    };
    assert!(
        !plan(&d, &fresh(&["pool0"]), &same, &inputs(&d))
            .steps
            .is_empty()
    );
}

#[test]
fn actions_run_once_and_wait_for_their_pool() {
    let d = doc();
    let (o, own) = converged(&d);
    assert!(own.executed_actions.contains("5f0c2a9e-first-run"));
    let later = doc_with(|v| {
        v["actions"] =
            serde_json::json!([{"id": "again", "type": "run_cloud_sync", "pool": "pool1"}]);
    });
    let p = plan(&later, &o, &own, &inputs(&later));
    let id = o
        .cloud_sync
        .iter()
        .find(|t| t.path == "/mnt/pool1")
        .unwrap()
        .id;
    assert!(
        matches!(&p.steps[..], [Step::RunCloudSync { task: TaskRef::Existing(t), .. }] if *t == id)
    );
}

#[test]
fn adopt_ids_that_do_not_fit_are_blockers() {
    let d = doc_with(|v| v["adopt"] = serde_json::json!({"cloud_sync": [77], "snapshots": [5]}));
    let mut o = fresh(&["pool0", "pool1"]);
    o.snapshot_tasks.push(SnapshotTask {
        dataset: "pool0/child".into(),
        ..snapshot_from(&snapshot_spec_for(&d), 5)
    });
    let p = plan(&d, &o, &Ownership::default(), &inputs(&d));
    assert!(p.blockers.contains(&Blocker::AdoptedMissing {
        object: ObjectKind::CloudSync,
        id: 77
    }));
    assert!(p.blockers.contains(&Blocker::AdoptedNotManaged {
        object: ObjectKind::SnapshotTask,
        id: 5
    }));
    assert!(
        p.steps
            .iter()
            .all(|s| s.touches() != Some((ObjectKind::SnapshotTask, 5)))
    );
}

fn snapshot_spec_for(d: &DesiredState) -> SnapshotSpec {
    let p = plan(d, &fresh(&["pool0"]), &Ownership::default(), &inputs(d));
    p.steps
        .iter()
        .find_map(|s| match s {
            Step::CreateSnapshotTask(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn snmp_converges_service_state_separately() {
    let d = doc();
    let (mut o, own) = converged(&d);
    o.snmp_service.state = "STOPPED".into();
    assert_eq!(kinds(&plan(&d, &o, &own, &inputs(&d))), ["start service"]);
    o.snmp.community = "public".into();
    o.snmp.v3_privproto = Some("DES".into());
    let p = plan(&d, &o, &own, &inputs(&d));
    let fields: Vec<&str> = p.steps[0]
        .changes()
        .iter()
        .map(|c| c.field.as_str())
        .collect();
    assert_eq!(fields, ["community", "v3_privproto"]);
    let no_snmp = doc_with(|v| {
        v.as_object_mut().unwrap().remove("snmp");
    });
    assert!(
        plan(&no_snmp, &o, &own, &inputs(&no_snmp)).steps.is_empty(),
        "SNMP left alone without a section"
    );
}

#[test]
fn device_guid_resolution_order() {
    let with_guid = doc();
    let mut o = fresh(&["pool0", "pool1"]);
    assert_eq!(
        resolve_device_guid(&with_guid, &o, DEFAULT_GUID_PROPERTY, None)
            .unwrap()
            .1,
        GuidSource::Document
    );
    let no_guid = doc_with(|v| {
        v["device"].as_object_mut().unwrap().remove("guid");
    });
    assert_eq!(
        resolve_device_guid(&no_guid, &o, DEFAULT_GUID_PROPERTY, None),
        Err(GuidError::Missing)
    );
    o.pools[0].user_properties.insert(
        DEFAULT_GUID_PROPERTY.into(),
        "1d3d2c3b-6f7e-4b8a-9c0d-1e2f3a4b5c6d".into(),
    );
    let (g, src) = resolve_device_guid(&no_guid, &o, DEFAULT_GUID_PROPERTY, None).unwrap();
    assert_eq!(g.to_string(), "1d3d2c3b-6f7e-4b8a-9c0d-1e2f3a4b5c6d");
    assert_eq!(src, GuidSource::RootPool("pool0".into()));
    let no_root = doc_with(|v| {
        v["device"].as_object_mut().unwrap().remove("guid");
        v["device"].as_object_mut().unwrap().remove("root_pool");
    });
    assert!(
        resolve_device_guid(&no_root, &o, DEFAULT_GUID_PROPERTY, None).is_ok(),
        "the one carrier"
    );
    o.pools[1]
        .user_properties
        .insert(DEFAULT_GUID_PROPERTY.into(), "garbage".into());
    assert!(matches!(
        resolve_device_guid(&no_root, &o, DEFAULT_GUID_PROPERTY, None),
        Err(GuidError::Ambiguous { .. })
    ));
    let root1 = doc_with(|v| {
        v["device"].as_object_mut().unwrap().remove("guid");
        v["device"]["root_pool"] = serde_json::json!("pool1");
    });
    assert_eq!(
        resolve_device_guid(&root1, &o, DEFAULT_GUID_PROPERTY, None),
        Err(GuidError::NotAUuid {
            pool: "pool1".into()
        })
    );
    // The agent configuration's root pool counts when the document names none.
    assert_eq!(
        resolve_device_guid(&no_root, &o, DEFAULT_GUID_PROPERTY, Some("pool0"))
            .unwrap()
            .1,
        GuidSource::RootPool("pool0".into())
    );
    o.pools.pop();
    assert_eq!(
        resolve_device_guid(&root1, &o, DEFAULT_GUID_PROPERTY, None),
        Err(GuidError::RootPoolNotImported {
            pool: "pool1".into()
        })
    );
    assert!(
        GuidError::Missing
            .to_string()
            .contains("truenas-agent identity ensure")
    );
}

#[test]
fn rendering_never_shows_secrets() {
    let d = doc();
    let mut o = fresh(&["pool0", "pool1"]);
    o.snmp.v3_password = SecretView::Value(SecretString::from("CANARY-OLD-SNMP"));
    let p = plan(&d, &o, &Ownership::default(), &inputs(&d));
    let text = format!("{p}\n{}\n{p:?}", p.to_json());
    for secret in d.secrets() {
        assert!(
            !text.contains(secret.expose_secret()),
            "secret in plan output"
        );
    }
    assert!(!text.contains("CANARY-OLD-SNMP"));
    assert!(text.contains("(changed)"));
}

// ---------------------------------------------------------------------------------
// Property tests.

/// Random changes made to a converged box (by an admin, or by losing state).
#[derive(Debug, Clone)]
enum Mutation {
    Exclude(usize),
    Schedule(usize, u8),
    Folder(usize),
    Enabled(usize),
    Chunk(usize, u64),
    Bwlimit(usize),
    Password(usize, bool),
    Credential,
    DeleteTask(usize),
    SnapshotLifetime(usize, u64),
    SnapshotSchedule(usize),
    DeleteSnapshot(usize),
    SnmpUser,
    ServiceStopped,
    ForeignSamePath(usize),
    ForeignSameTarget(usize),
    ForeignSnapshot(usize),
    ForgetTask(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..2usize).prop_map(Mutation::Exclude),
        ((0..2usize), 0..24u8).prop_map(|(i, h)| Mutation::Schedule(i, h)),
        (0..2usize).prop_map(Mutation::Folder),
        (0..2usize).prop_map(Mutation::Enabled),
        ((0..2usize), 5..200u64).prop_map(|(i, c)| Mutation::Chunk(i, c)),
        (0..2usize).prop_map(Mutation::Bwlimit),
        ((0..2usize), any::<bool>()).prop_map(|(i, ran)| Mutation::Password(i, ran)),
        Just(Mutation::Credential),
        (0..2usize).prop_map(Mutation::DeleteTask),
        ((0..2usize), 1..30u64).prop_map(|(i, v)| Mutation::SnapshotLifetime(i, v)),
        (0..2usize).prop_map(Mutation::SnapshotSchedule),
        (0..2usize).prop_map(Mutation::DeleteSnapshot),
        Just(Mutation::SnmpUser),
        Just(Mutation::ServiceStopped),
        (0..2usize).prop_map(Mutation::ForeignSamePath),
        (0..2usize).prop_map(Mutation::ForeignSameTarget),
        (0..2usize).prop_map(Mutation::ForeignSnapshot),
        (0..2usize).prop_map(Mutation::ForgetTask),
    ]
}

const FOREIGN_BASE: u64 = 1000;

fn mutate(o: &mut Observed, own: &mut Ownership, m: &Mutation, n: u64) {
    let pool = |i: usize| ["pool0", "pool1"][i];
    let task = |o: &mut Observed, i: usize| -> Option<usize> {
        o.cloud_sync
            .iter()
            .position(|t| t.path == format!("/mnt/{}", pool(i)) && t.id < FOREIGN_BASE)
    };
    let snap = |o: &mut Observed, i: usize| -> Option<usize> {
        o.snapshot_tasks
            .iter()
            .position(|t| t.dataset == pool(i) && t.id < FOREIGN_BASE)
    };
    match m {
        Mutation::Exclude(i) => {
            if let Some(t) = task(o, *i) {
                o.cloud_sync[t].exclude = vec!["/x".into()];
            }
        }
        Mutation::Schedule(i, h) => {
            if let Some(t) = task(o, *i) {
                o.cloud_sync[t].schedule =
                    crate::desired::Cron::from_fields("0", &h.to_string(), "*", "*", "*");
            }
        }
        Mutation::Folder(i) => {
            if let Some(t) = task(o, *i) {
                o.cloud_sync[t].attributes.folder = "/elsewhere".into();
            }
        }
        Mutation::Enabled(i) => {
            if let Some(t) = task(o, *i) {
                o.cloud_sync[t].enabled = false;
            }
        }
        Mutation::Chunk(i, c) => {
            if let Some(t) = task(o, *i) {
                o.cloud_sync[t].attributes.chunk_size = *c;
            }
        }
        Mutation::Bwlimit(i) => {
            if let Some(t) = task(o, *i) {
                o.cloud_sync[t].bwlimit.clear();
            }
        }
        Mutation::Password(i, ran) => {
            if let Some(t) = task(o, *i) {
                o.cloud_sync[t].encryption_password =
                    SecretView::Value(SecretString::from("ui-changed"));
                o.cloud_sync[t].last_run = ran.then_some(JobState::Success);
            }
        }
        Mutation::Credential => {
            if let Some(c) = o.credentials.first_mut() {
                c.key = SecretView::Value(SecretString::from("ui"));
            }
        }
        Mutation::DeleteTask(i) => {
            if let Some(t) = task(o, *i) {
                o.cloud_sync.remove(t);
            }
        }
        Mutation::SnapshotLifetime(i, v) => {
            if let Some(t) = snap(o, *i) {
                o.snapshot_tasks[t].lifetime_value = *v;
            }
        }
        Mutation::SnapshotSchedule(i) => {
            if let Some(t) = snap(o, *i) {
                o.snapshot_tasks[t].end = derive::HhMm::new(12, 0);
            }
        }
        Mutation::DeleteSnapshot(i) => {
            if let Some(t) = snap(o, *i) {
                o.snapshot_tasks.remove(t);
            }
        }
        Mutation::SnmpUser => o.snmp.v3_username = "someoneelse".into(),
        Mutation::ServiceStopped => o.snmp_service.state = "STOPPED".into(),
        Mutation::ForeignSamePath(i) | Mutation::ForeignSameTarget(i) => {
            let mut t = o
                .cloud_sync
                .iter()
                .find(|t| t.id < FOREIGN_BASE)
                .cloned()
                .unwrap_or_else(|| task_from(&tasks_spec_for(&doc(), pool(*i)), 0, 1));
            t.id = FOREIGN_BASE + n;
            t.path = format!("/mnt/{}", pool(*i));
            t.description = "admin".into();
            if matches!(m, Mutation::ForeignSamePath(_)) {
                t.attributes.bucket = "admin-bucket".into();
            } else {
                t.attributes.folder = format!("/{GUID}/{}", pool(*i));
                t.attributes.bucket = doc().bucket;
            }
            o.cloud_sync.push(t);
        }
        Mutation::ForeignSnapshot(i) => {
            let mut t = snapshot_from(&snapshot_spec_for(&doc()), FOREIGN_BASE + n);
            t.dataset = pool(*i).into();
            o.snapshot_tasks.push(t);
        }
        Mutation::ForgetTask(i) => {
            own.cloud_sync.remove(pool(*i));
        }
    }
}

fn doc_variant(pools: u8, removed_delete: bool, rekey: bool) -> DesiredState {
    doc_with(|v| {
        v["pools"] = match pools {
            0 => serde_json::json!(["pool0"]),
            1 => serde_json::json!(["pool1"]),
            _ => serde_json::json!(["pool0", "pool1"]),
        };
        v["actions"] = serde_json::json!([]);
        if removed_delete {
            v["removed_pools"] = serde_json::json!("delete");
        }
        v["encryption"]["allow_rekey"] = serde_json::json!(rekey);
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// plan(d, apply_in_memory(plan(d, o), o)) plans nothing.
    #[test]
    fn planning_is_idempotent(
        mutations in proptest::collection::vec(mutation(), 0..6),
        pools in 0u8..3, delete in any::<bool>(), rekey in any::<bool>(),
    ) {
        let (mut o, mut own) = converged(&doc());
        for (n, m) in mutations.iter().enumerate() {
            mutate(&mut o, &mut own, m, n as u64);
        }
        let d = doc_variant(pools, delete, rekey);
        let first = plan(&d, &o, &own, &inputs(&d));
        let (o2, own2) = apply_in_memory(&first, &o, &own);
        let second = plan(&d, &o2, &own2, &inputs(&d));
        prop_assert!(second.steps.is_empty(), "second plan:\n{}\nfirst plan:\n{}", second, first);
    }

    /// No step names an object that is neither recorded, nor adopted.
    #[test]
    fn never_touches_unowned_objects(
        mutations in proptest::collection::vec(mutation(), 0..6),
        pools in 0u8..3, delete in any::<bool>(),
    ) {
        let (mut o, mut own) = converged(&doc());
        for (n, m) in mutations.iter().enumerate() {
            mutate(&mut o, &mut own, m, n as u64);
        }
        let d = doc_variant(pools, delete, false);
        let p = plan(&d, &o, &own, &inputs(&d));
        for step in &p.steps {
            if let Some((kind, id)) = step.touches() {
                prop_assert!(own.owns(kind, id), "step {} touches {kind:?} #{id} it does not own", step.summary());
            }
        }
        for c in &p.conflicts {
            prop_assert!(!own.owns(c.kind, c.id));
        }
    }
}

/// Pool lists mixing real names, case variants, typos and absent pools.
fn pool_list() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(
        vec![
            "pool0", "pool1", "Pool0", "POOL1", "pool_1", "pool2", "tank",
        ],
        1..4,
    )
    .prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Issue 13.4: whatever the box looks like, a listed pool that is not imported means
    /// no task is disabled or deleted in that pass, and no step touches a task of a pool
    /// the document does not manage.
    #[test]
    fn a_missing_listed_pool_means_no_disable_or_delete(
        listed in pool_list(),
        mutations in proptest::collection::vec(mutation(), 0..6),
        delete in any::<bool>(),
        exported in proptest::option::of(0usize..2),
    ) {
        let (mut o, mut own) = converged(&doc());
        for (n, m) in mutations.iter().enumerate() {
            mutate(&mut o, &mut own, m, n as u64);
        }
        if let Some(i) = exported {
            o.pools.remove(i);
        }
        let d = doc_with(|v| {
            v["pools"] = serde_json::json!(listed);
            v["actions"] = serde_json::json!([]);
            v["removed_pools"] = serde_json::json!(if delete { "delete" } else { "disable" });
        });
        let p = plan(&d, &o, &own, &inputs(&d));
        let missing = listed.iter().any(|l| o.pool(l).is_none());
        prop_assert_eq!(
            missing,
            p.blockers.iter().any(|b| matches!(b, Blocker::PoolNotImported { .. }))
        );
        if missing {
            for step in &p.steps {
                prop_assert!(
                    !matches!(step, Step::Disable { .. } | Step::Delete { .. }),
                    "a listed pool is missing, yet: {}", step.summary()
                );
            }
        }
        for step in &p.steps {
            if let Some(pool) = step.view().pool {
                prop_assert!(p.pools.iter().any(|m| m == pool) || !missing,
                    "step {} for unmanaged pool {pool}", step.summary());
            }
        }
    }
}

#[test]
fn removed_delete_policy_is_exercised() {
    // Keeps `RemovedPools` in the test imports honest.
    assert_eq!(
        doc_variant(0, true, false).removed_pools,
        RemovedPools::Delete
    );
}

/// Golden files of the text and JSON forms (crates/agent/src/plan/snapshots/).
#[test]
fn plans_render_as_golden_files() {
    let d = doc();
    let p = plan(
        &d,
        &fresh(&["pool0", "pool1"]),
        &Ownership::default(),
        &inputs(&d),
    );
    insta::assert_snapshot!("fresh_box_text", p.to_string());
    insta::assert_json_snapshot!("fresh_box_json", p.to_json());
    let (mut o, own) = converged(&d);
    o.cloud_sync[0].exclude = vec!["/Archive/**".into()];
    o.cloud_sync[1].encryption_password = SecretView::Value(SecretString::from("x"));
    o.cloud_sync[1].last_run = Some(JobState::Success);
    let mut admin = o.cloud_sync[0].clone();
    admin.id = 99;
    admin.description = "Admin copy".into();
    admin.attributes.bucket = "other".into();
    o.cloud_sync.push(admin);
    insta::assert_snapshot!(
        "drift_conflict_rekey_text",
        plan(&d, &o, &own, &inputs(&d)).to_string()
    );
}

/// Regression (found by `planning_is_idempotent`): TrueNAS's tables can give a deleted
/// row's id to the next object. A record whose object is gone must not follow its id to
/// a different object — neither the agent's own new task nor an admin's.
#[test]
fn regression_a_reused_id_does_not_redirect_a_stale_record() {
    let d = doc();
    let (mut o, own) = converged(&d);
    let pool0_snap = own.snapshot_tasks["pool0"].id;
    // pool0's snapshot task was deleted in the UI; an admin's new task got its id.
    o.snapshot_tasks.retain(|t| t.id != pool0_snap);
    let mut admin = o.snapshot_tasks[0].clone();
    admin.id = pool0_snap;
    admin.dataset = "pool1/vm".into();
    o.snapshot_tasks.push(admin);
    let p = plan(&d, &o, &own, &inputs(&d));
    assert!(
        p.steps
            .iter()
            .all(|s| s.touches() != Some((ObjectKind::SnapshotTask, pool0_snap))),
        "{p}"
    );
    assert!(kinds(&p).contains(&"create snapshot_task pool0".to_owned()));
    assert_eq!(
        p.forget,
        [Forget {
            kind: ObjectKind::SnapshotTask,
            pool: Some("pool0".into()),
            id: pool0_snap
        }]
    );
    // A removed pool's stale record is dropped, not used to disable whatever has its id.
    let only1 = doc_with(|v| {
        v["pools"] = serde_json::json!(["pool1"]);
        v["actions"] = serde_json::json!([]);
    });
    let p = plan(&only1, &o, &own, &inputs(&only1));
    assert_eq!(
        kinds(&p),
        ["disable cloud_sync pool0"],
        "the admin's task is not disabled"
    );
    assert_eq!(p.forget.len(), 1);
}

/// Issue 13.12: an enabled PUSH task into the agent's own bucket folder fights the
/// agent's task even when the agent has one: the NAS cannot converge until a human
/// removes it (the agent never edits it).
#[test]
fn a_second_sync_task_on_the_agents_folder_blocks_convergence() {
    let d = doc();
    let (mut o, own) = converged(&d);
    let mut other = o.cloud_sync[0].clone();
    other.id = 77;
    other.description = "Old manual backup".into();
    other.path = "/mnt/pool0/shares".into();
    o.cloud_sync.push(other);
    let p = plan(&d, &o, &own, &inputs(&d));
    assert!(p.steps.is_empty(), "{:?}", kinds(&p));
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    assert_eq!(p.conflicts[0].id, 77);
    assert!(p.conflicts[0].blocking);
    assert!(!p.is_converged());
    let text = p.to_string();
    assert!(text.contains("[blocks] cloud sync task #77"), "{text}");
    assert!(text.contains("delete each other's files"), "{text}");
    // Disabled, it deletes nothing: a note, and the NAS matches the document.
    o.cloud_sync.last_mut().unwrap().enabled = false;
    let p = plan(&d, &o, &own, &inputs(&d));
    assert!(!p.conflicts[0].blocking);
    assert!(p.is_converged());
}

/// Issue 13.3: a root pool that is not imported is not "converged", even when the
/// document carries the GUID (the tasks are still planned for the pools that are there).
#[test]
fn a_missing_root_pool_blocks_convergence() {
    let (o, own) = converged(&doc());
    let d = doc_with(|v| v["device"]["root_pool"] = serde_json::json!("tank"));
    let p = plan(&d, &o, &own, &inputs(&d));
    assert!(p.steps.is_empty(), "{:?}", kinds(&p));
    assert_eq!(
        p.blockers,
        [Blocker::RootPoolNotImported {
            pool: "tank".into()
        }]
    );
    assert!(!p.is_converged());
    assert!(p.to_string().contains("root pool tank"), "{p}");
    assert_eq!(p.to_json()["blockers"][0]["kind"], "root_pool_not_imported");
}

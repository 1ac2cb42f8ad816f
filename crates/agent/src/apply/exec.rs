//! Step executors: one function per kind of step, each call → record → read back.
//!
//! Owns: the write-ahead/record discipline around creates, read-back comparison, the
//! lazy credential verification, and redaction of middleware texts.
//! Does not: choose steps or their order.
//! Invariants: see the module above (`apply`).
//! Limitations: service starts on 25.10 wait for the `service.control` job; Cloud
//! Sync runs are started (`cloudsync.sync [id]`, checked to be a new run of the task),
//! not awaited.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tracing::{info, warn};

use super::outcome::{
    ApplyError, ApplyOptions, Extra, NotStarted, Origin, Outcome, StepResult, StepStatus,
};
use super::payload;
use super::store::OwnershipStore;
use crate::desired::DesiredState;
use crate::middleware::calls::{self, B2Key};
use crate::middleware::{
    ApiFlavor, Call, CallError, Job, JobState, Middleware, job_id_of, type_name,
};
use crate::observe::{self, Observed};
use crate::plan::spec::{self, CredentialRef, FieldChange};
use crate::plan::{
    CloudSyncSpec, CredentialSpec, Forget, ObjectKind, OwnedObject, Ownership, PendingCreate, Plan,
    SNMP_SERVICE, SnapshotSpec, SnmpRetry, SnmpSpec, Step, TaskRef,
};

/// Per-pass state.
struct Exec<'a, M> {
    mw: &'a M,
    flavor: ApiFlavor,
    desired: &'a DesiredState,
    store: &'a mut OwnershipStore,
    options: &'a ApplyOptions,
    /// Largest id seen per kind (observed or created in this pass).
    max_ids: BTreeMap<ObjectKind, u64>,
    new_credential: Option<u64>,
    new_tasks: BTreeMap<String, u64>,
    /// The credential verification of this pass, once done.
    verified: Option<Result<(), String>>,
    /// The NAS as the proven writes of this pass left it (`Outcome::observed`).
    after: Observed,
    /// A service was written: its row is read back at the end (the answers of
    /// `service.update` and of a start do not show the stored start-at-boot flag).
    reread_services: bool,
}

pub(super) async fn run(
    plan: &Plan,
    desired: &DesiredState,
    observed: &Observed,
    mw: &impl Middleware,
    store: &mut OwnershipStore,
    options: &ApplyOptions,
) -> Outcome {
    let max_ids = largest_ids(observed);
    let mut exec = Exec {
        mw,
        flavor: observed.api.flavor,
        desired,
        store,
        options,
        max_ids,
        new_credential: None,
        new_tasks: BTreeMap::new(),
        verified: None,
        after: observed.clone(),
        reread_services: false,
    };
    let mut outcome = Outcome::default();
    for (index, step) in plan.steps.iter().enumerate() {
        let origin = Origin::Step(index);
        let summary = step.summary();
        if outcome.aborted.is_some() {
            outcome.results.push(StepResult {
                origin,
                summary,
                status: StepStatus::NotAttempted,
            });
            continue;
        }
        let verified = exec.ensure_verified(step, &mut outcome).await;
        if outcome.aborted.is_some() {
            outcome.results.push(StepResult {
                origin,
                summary,
                status: StepStatus::NotAttempted,
            });
            continue;
        }
        if let Err(e) = verified {
            record(&mut outcome, origin, summary, Err(e));
            continue;
        }
        info!(step = %summary, "applying");
        let result = exec.step(step).await;
        let verify_after = matches!(
            (step, &result),
            (
                Step::CreateCredential(_) | Step::UpdateCredential { .. },
                Ok(_)
            )
        );
        let snmp_failure = snmp_failure(step, &summary, &result, desired);
        record(&mut outcome, origin, summary, result);
        if let Some(failure) = snmp_failure {
            exec.remember_snmp_failure(failure, &mut outcome);
        }
        if verify_after && outcome.aborted.is_none() {
            let spec = credential_spec(step);
            let id = exec.new_credential.or(step_credential_id(step));
            if let (Some(spec), Some(id)) = (spec, id) {
                exec.verify(spec, id, &mut outcome).await;
            }
        }
    }
    if let Err(e) = exec.forget(&plan.forget) {
        record(
            &mut outcome,
            Origin::Extra(Extra::ForgetStale),
            "drop stale ownership records".to_owned(),
            Err(e),
        );
    }
    if exec.reread_services && outcome.aborted.is_none() {
        exec.read_back_services(&mut outcome).await;
    }
    if desired.snmp.is_none() && exec.store.get().snmp_retry.is_some() {
        // The document no longer manages SNMP: nothing is left to retry.
        if let Err(e) = exec.state(|o| o.snmp_retry = None) {
            record(
                &mut outcome,
                Origin::Extra(Extra::ForgetSnmpRetry),
                "forget the failed SNMP apply".to_owned(),
                Err(e),
            );
        }
    }
    if outcome.aborted.is_none() {
        outcome.observed = Some(exec.after);
    }
    outcome
}

/// The largest id of each kind the observation shows (ids only grow).
fn largest_ids(observed: &Observed) -> BTreeMap<ObjectKind, u64> {
    let mut max_ids = BTreeMap::new();
    max_ids.insert(
        ObjectKind::Credential,
        observed.credentials.iter().map(|c| c.id).max().unwrap_or(0),
    );
    max_ids.insert(
        ObjectKind::CloudSync,
        observed.cloud_sync.iter().map(|t| t.id).max().unwrap_or(0),
    );
    max_ids.insert(
        ObjectKind::SnapshotTask,
        observed
            .snapshot_tasks
            .iter()
            .map(|t| t.id)
            .max()
            .unwrap_or(0),
    );
    max_ids
}

/// Replaces the entry with `id` in `list` (or adds it).
fn upsert<T>(list: &mut Vec<T>, item: T, id: impl Fn(&T) -> u64) {
    let key = id(&item);
    match list.iter_mut().find(|x| id(x) == key) {
        Some(slot) => *slot = item,
        None => list.push(item),
    }
}

/// The record of a failed SNMP step (see [`applies_snmp`]); `None` for anything else.
fn snmp_failure(
    step: &Step,
    summary: &str,
    result: &Result<Option<String>, ApplyError>,
    desired: &DesiredState,
) -> Option<SnmpRetry> {
    match result {
        Err(e) if applies_snmp(step) && !matches!(e, ApplyError::State(_)) => Some(SnmpRetry {
            failed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            step: summary.to_owned(),
            error: desired.redact(&crate::fault::error_chain(e)),
        }),
        _ => None,
    }
}

/// True for the steps whose failure can leave SNMP half-applied: the middleware stores
/// the settings before it re-creates the v3 user through snmpd (REFERENCE §8 row 5).
fn applies_snmp(step: &Step) -> bool {
    match step {
        Step::UpdateSnmp { .. } | Step::ReapplySnmp { .. } => true,
        Step::StartService { service } => service == SNMP_SERVICE,
        _ => false,
    }
}

/// A stand-in v3 user name that differs from `name` and passes the same rules (1–20 of
/// letters, digits, `_`, `.`, `-`).
fn stand_in_username(name: &str) -> String {
    let mut stand_in: String = name.chars().take(19).collect();
    stand_in.push(if name.ends_with('_') && name.chars().count() >= 20 {
        '-'
    } else {
        '_'
    });
    stand_in
}

fn credential_spec(step: &Step) -> Option<&CredentialSpec> {
    match step {
        Step::CreateCredential(spec) | Step::UpdateCredential { spec, .. } => Some(spec),
        _ => None,
    }
}

fn step_credential_id(step: &Step) -> Option<u64> {
    match step {
        Step::UpdateCredential { id, .. } => Some(*id),
        _ => None,
    }
}

fn record(
    outcome: &mut Outcome,
    origin: Origin,
    summary: String,
    result: Result<Option<String>, ApplyError>,
) {
    let status = match result {
        Ok(detail) => StepStatus::Done { detail },
        Err(e) => {
            warn!(step = %summary, error = %crate::fault::error_chain(&e), "step failed");
            if e.aborts_pass() {
                outcome.aborted = Some(crate::fault::error_chain(&e));
            }
            StepStatus::Failed(e)
        }
    };
    outcome.results.push(StepResult {
        origin,
        summary,
        status,
    });
}

fn b2_key(spec: &CredentialSpec) -> B2Key<'_> {
    B2Key {
        key_id: &spec.key_id,
        application_key: &spec.application_key,
    }
}

/// Ids of the jobs in a `core.get_jobs` answer.
fn job_ids(jobs: &Value) -> BTreeSet<u64> {
    jobs.as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j.get("id").and_then(Value::as_u64))
        .collect()
}

/// True when the middleware answered the call with an error, so it did not run it. A
/// timeout, a lost connection or a reply we cannot read leave it open.
fn certainly_not_executed(error: &CallError) -> bool {
    match error {
        CallError::Validation { .. }
        | CallError::NotFound { .. }
        | CallError::NotAuthenticated { .. }
        | CallError::NotAuthorized { .. }
        | CallError::RateLimited { .. }
        | CallError::MethodNotFound { .. }
        | CallError::Failed { .. }
        | CallError::Unavailable { .. } => true,
        CallError::Timeout { .. } | CallError::Disconnected { .. } | CallError::Protocol { .. } => {
            false
        }
    }
}

/// The `id` of a created entry.
fn entry_id(entry: &Value, operation: &'static str, resource: &str) -> Result<u64, ApplyError> {
    entry
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApplyError::Unexpected {
            operation,
            resource: resource.to_owned(),
            detail: format!(
                "expected an entry with an integer id, got {}",
                type_name(entry)
            ),
        })
}

/// Only the changes whose top-level key was sent.
fn sent(changes: Vec<FieldChange>, keys: &BTreeSet<String>) -> Vec<String> {
    changes
        .into_iter()
        .filter(|c| keys.contains(c.key()))
        .map(|c| c.field)
        .collect()
}

fn read_back(resource: &str, fields: Vec<String>) -> Result<(), ApplyError> {
    if fields.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::ReadBack {
            resource: resource.to_owned(),
            fields,
        })
    }
}

/// A `CallError` with the document's secrets removed from every text it carries.
fn redacted(err: CallError, d: &DesiredState) -> CallError {
    match err {
        CallError::Validation { method, items } => CallError::Validation {
            method,
            items: items
                .into_iter()
                .map(|mut i| {
                    i.message = d.redact(&i.message);
                    i
                })
                .collect(),
        },
        CallError::NotFound { method, reason } => CallError::NotFound {
            method,
            reason: d.redact(&reason),
        },
        CallError::NotAuthorized { method, reason } => CallError::NotAuthorized {
            method,
            reason: d.redact(&reason),
        },
        CallError::Failed {
            method,
            errno,
            errname,
            reason,
        } => CallError::Failed {
            method,
            errno,
            errname,
            reason: d.redact(&reason),
        },
        CallError::Disconnected { method, detail } => CallError::Disconnected {
            method,
            detail: d.redact(&detail),
        },
        CallError::Unavailable { method, detail } => CallError::Unavailable {
            method,
            detail: d.redact(&detail),
        },
        CallError::Protocol { method, detail } => CallError::Protocol {
            method,
            detail: d.redact(&detail),
        },
        other @ (CallError::NotAuthenticated { .. }
        | CallError::RateLimited { .. }
        | CallError::MethodNotFound { .. }
        | CallError::Timeout { .. }) => other,
    }
}

impl<M: Middleware> Exec<'_, M> {
    async fn call(
        &self,
        operation: &'static str,
        resource: &str,
        call: Call,
    ) -> Result<Value, ApplyError> {
        self.mw.call(call).await.map_err(|e| ApplyError::Call {
            operation,
            resource: resource.to_owned(),
            source: redacted(e, self.desired),
        })
    }

    fn state(&mut self, change: impl FnOnce(&mut Ownership)) -> Result<(), ApplyError> {
        self.store.update(change).map_err(ApplyError::State)
    }

    /// Saves the write-ahead record of a create (see `plan::PendingCreate`).
    fn intend(&mut self, kind: ObjectKind, pool: Option<&str>) -> Result<(), ApplyError> {
        let max = self.max_ids.get(&kind).copied().unwrap_or(0);
        let pending = PendingCreate {
            kind,
            pool: pool.map(str::to_owned),
            max_id_before: max,
        };
        self.state(|o| {
            o.pending
                .retain(|p| !(p.kind == kind && p.pool.as_deref() == pool));
            o.pending.push(pending);
        })
    }

    /// Drops ownership records the plan found stale (only if they still hold that id).
    fn forget(&mut self, stale: &[Forget]) -> Result<(), ApplyError> {
        if stale.is_empty() {
            return Ok(());
        }
        self.state(|o| {
            for f in stale {
                match (f.kind, &f.pool) {
                    (ObjectKind::Credential, _) => {
                        if o.credential.as_ref().is_some_and(|c| c.id == f.id) {
                            o.credential = None;
                        }
                    }
                    (kind, Some(pool)) => {
                        if let Some(map) = o.tasks_mut(kind) {
                            if map.get(pool).is_some_and(|r| r.id == f.id) {
                                map.remove(pool);
                            }
                        }
                    }
                    (_, None) => {}
                }
            }
        })
    }

    fn created(&mut self, kind: ObjectKind, id: u64) {
        let max = self.max_ids.entry(kind).or_default();
        *max = (*max).max(id);
    }

    fn fingerprint(
        &self,
        secret: &secrecy::SecretString,
    ) -> Result<crate::state_dir::Fingerprint, ApplyError> {
        self.store.fingerprint(secret).map_err(ApplyError::State)
    }

    async fn step(&mut self, step: &Step) -> Result<Option<String>, ApplyError> {
        match step {
            Step::CreateCredential(spec) => self.create_credential(spec).await,
            Step::UpdateCredential { id, spec, .. } => self.update_credential(*id, spec).await,
            Step::Adopt { kind, id, pool, .. } => self.adopt(*kind, *id, pool.as_deref()),
            Step::CreateCloudSync(spec) => self.create_cloud_sync(spec).await,
            Step::UpdateCloudSync { id, changes, spec } => {
                self.update_cloud_sync(*id, changes, spec).await
            }
            Step::CreateSnapshotTask(spec) => self.create_snapshot_task(spec).await,
            Step::UpdateSnapshotTask { id, changes, spec } => {
                self.update_snapshot_task(*id, changes, spec).await
            }
            Step::Disable { kind, id, .. } => self.disable(*kind, *id).await,
            Step::Delete { kind, id, pool } => self.delete(*kind, *id, pool).await,
            Step::UpdateSnmp { changes, spec } => self.update_snmp(changes, spec).await,
            Step::ReapplySnmp { spec } => self.reapply_snmp(spec).await,
            Step::EnableService { service } => self.enable_service(service).await,
            Step::StartService { service } => self.start_service(service).await,
            Step::RunCloudSync {
                action_id,
                pool,
                task,
            } => self.run_cloud_sync(action_id, pool, *task).await,
        }
    }

    async fn create_credential(
        &mut self,
        spec: &CredentialSpec,
    ) -> Result<Option<String>, ApplyError> {
        let resource = format!("credential \"{}\"", spec.name);
        self.intend(ObjectKind::Credential, None)?;
        let call = calls::credential_create(self.flavor, &spec.name, b2_key(spec));
        let entry = self.call("create", &resource, call).await?;
        let id = entry_id(&entry, "create", &resource)?;
        self.created(ObjectKind::Credential, id);
        self.new_credential = Some(id);
        let fp = spec.key_fingerprint.clone();
        self.state(|o| {
            let mut rec = OwnedObject::new(id);
            rec.fingerprints.insert("key".into(), fp);
            o.credential = Some(rec);
            o.pending.retain(|p| p.kind != ObjectKind::Credential);
        })?;
        self.read_back_credential(id, spec).await?;
        Ok(Some(format!("id {id}")))
    }

    async fn update_credential(
        &mut self,
        id: u64,
        spec: &CredentialSpec,
    ) -> Result<Option<String>, ApplyError> {
        let resource = format!("credential #{id}");
        let call = calls::credential_update(self.flavor, id, &spec.name, b2_key(spec));
        self.call("update", &resource, call).await?;
        let fp = spec.key_fingerprint.clone();
        self.state(|o| {
            let rec = o.credential.get_or_insert_with(|| OwnedObject::new(id));
            rec.id = id;
            rec.fingerprints.insert("key".into(), fp);
        })?;
        self.read_back_credential(id, spec).await?;
        Ok(None)
    }

    /// Proves a credential write from what the middleware stored: the create/update
    /// answer is built from the data sent (24.10 returns it as sent plus `id`; 25.04+
    /// the same data reshaped, `MW/plugins/cloud_sync.py` `CredentialsService`), so only
    /// `cloudsync.credentials.query` shows what a later read — and every run — gets.
    async fn read_back_credential(
        &mut self,
        id: u64,
        spec: &CredentialSpec,
    ) -> Result<(), ApplyError> {
        let resource = format!("credential #{id}");
        let stored = self
            .call("read back", &resource, calls::credential_by_id(id))
            .await?;
        let Some(entry) = stored.as_array().and_then(|list| list.first()) else {
            return Err(ApplyError::Unexpected {
                operation: "read back",
                resource,
                detail: "the credential is not listed right after it was written".to_owned(),
            });
        };
        let back = observe::decode_credential(entry).map_err(|detail| ApplyError::Unexpected {
            operation: "read back",
            resource: resource.clone(),
            detail,
        })?;
        let fields = spec::diff_credential(&back, spec, Some(&spec.key_fingerprint))
            .into_iter()
            .map(|c| c.field)
            .collect();
        upsert(&mut self.after.credentials, back, |c| c.id);
        read_back(&resource, fields)
    }

    /// Verifies the credential the Cloud Sync steps will use, once per pass, before
    /// the first step that creates a task or points one at a credential.
    async fn ensure_verified(
        &mut self,
        step: &Step,
        outcome: &mut Outcome,
    ) -> Result<(), ApplyError> {
        let credential = match step {
            Step::CreateCloudSync(spec) => Some(spec.credential),
            Step::UpdateCloudSync { changes, spec, .. }
                if changes.iter().any(|c| c.key() == "credentials") =>
            {
                Some(spec.credential)
            }
            _ => None,
        };
        let Some(credential) = credential else {
            return Ok(());
        };
        if self.verified.is_none() {
            let id = self.credential_id(credential)?;
            let spec = CredentialSpec {
                name: self.desired.bucket.clone(),
                key_id: self.desired.b2.key_id.clone(),
                application_key: self.desired.b2.application_key.clone(),
                key_fingerprint: self.fingerprint(&self.desired.b2.application_key)?,
            };
            self.verify(&spec, id, outcome).await;
        }
        match &self.verified {
            Some(Err(why)) => Err(ApplyError::DependencyFailed {
                reason: format!("the B2 credential did not verify ({why})"),
            }),
            Some(Ok(())) | None => Ok(()),
        }
    }

    /// `cloudsync.list_buckets` (and `cloudsync.credentials.verify` when it fails),
    /// recorded as a result.
    async fn verify(&mut self, spec: &CredentialSpec, id: u64, outcome: &mut Outcome) {
        let summary = format!(
            "verify the B2 key with B2 and check that bucket {} is listed",
            spec.name
        );
        info!(step = %summary, "applying");
        let result = self.verify_inner(spec, id).await;
        self.verified = Some(match &result {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        });
        record(
            outcome,
            Origin::Extra(Extra::VerifyCredential),
            summary,
            result,
        );
    }

    /// The bucket listed with the stored credential proves the key works (B2 signed it
    /// in) and sees the SOP's bucket. Only when the listing fails is the key checked on
    /// its own (`cloudsync.credentials.verify`), to say whether B2 rejected it.
    async fn verify_inner(
        &self,
        spec: &CredentialSpec,
        id: u64,
    ) -> Result<Option<String>, ApplyError> {
        let resource = format!("credential #{id}");
        let buckets = match self
            .call("list buckets with", &resource, calls::list_buckets(id))
            .await
        {
            Ok(buckets) => buckets,
            Err(ApplyError::Call { source, .. }) if source.is_transport() => {
                return Err(ApplyError::Call {
                    operation: "list buckets with",
                    resource,
                    source,
                });
            }
            Err(listing) => {
                let call = calls::credential_verify(self.flavor, b2_key(spec));
                let verdict = self.call("verify", &resource, call).await?;
                if verdict.get("valid").and_then(Value::as_bool) != Some(true) {
                    let detail = verdict
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given");
                    return Err(ApplyError::VerifyFailed {
                        detail: self.desired.redact(detail),
                    });
                }
                return Err(listing);
            }
        };
        let listed = buckets.as_array().is_some_and(|items| {
            items.iter().any(|b| {
                b.get("Name")
                    .or_else(|| b.get("Path"))
                    .and_then(Value::as_str)
                    == Some(spec.name.as_str())
            })
        });
        if listed {
            Ok(None)
        } else {
            Err(ApplyError::BucketMissing {
                bucket: spec.name.clone(),
            })
        }
    }

    fn credential_id(&self, credential: CredentialRef) -> Result<u64, ApplyError> {
        match credential {
            CredentialRef::Existing(id) => Ok(id),
            CredentialRef::Planned => {
                self.new_credential
                    .ok_or_else(|| ApplyError::DependencyFailed {
                        reason: "the B2 credential was not created".to_owned(),
                    })
            }
        }
    }

    fn adopt(
        &mut self,
        kind: ObjectKind,
        id: u64,
        pool: Option<&str>,
    ) -> Result<Option<String>, ApplyError> {
        self.state(|o| {
            match (kind, pool) {
                (ObjectKind::Credential, _) => o.credential = Some(OwnedObject::new(id)),
                (_, Some(pool)) => {
                    if let Some(map) = o.tasks_mut(kind) {
                        map.insert(pool.to_owned(), OwnedObject::new(id));
                    }
                }
                (_, None) => {}
            }
            o.pending
                .retain(|p| !(p.kind == kind && p.pool.as_deref() == pool));
        })?;
        Ok(None)
    }

    /// Compares a written Cloud Sync task with the spec, over the keys that were sent; the
    /// answer (`get_instance` of the stored row on every version: `MW/plugins/cloud_sync.py`
    /// `do_create`/`do_update`) becomes the task in `after`.
    fn check_cloud_sync(
        &mut self,
        entry: &Value,
        spec: &CloudSyncSpec,
        keys: &BTreeSet<String>,
        resource: &str,
    ) -> Result<(), ApplyError> {
        let back = observe::decode_cloud_sync(entry).map_err(|detail| ApplyError::Unexpected {
            operation: "read back",
            resource: resource.to_owned(),
            detail,
        })?;
        let recorded: BTreeMap<String, _> = [
            (
                "encryption_password".to_owned(),
                spec.password_fingerprint.clone(),
            ),
            ("encryption_salt".to_owned(), spec.salt_fingerprint.clone()),
        ]
        .into();
        let mut changes = spec::diff_cloud_sync(&back, spec);
        changes.extend(spec::encryption_changes(
            &back,
            spec::encryption_secrets(&back, spec, &recorded),
        ));
        upsert(&mut self.after.cloud_sync, back, |t| t.id);
        read_back(resource, sent(changes, keys))
    }

    async fn create_cloud_sync(
        &mut self,
        spec: &CloudSyncSpec,
    ) -> Result<Option<String>, ApplyError> {
        let resource = format!("cloud sync task \"{}\"", spec.description);
        let credential = self.credential_id(spec.credential)?;
        self.intend(ObjectKind::CloudSync, Some(&spec.pool))?;
        let fields = payload::cloud_sync(spec, credential, None);
        let keys: BTreeSet<String> = fields.keys().cloned().collect();
        let entry = self
            .call("create", &resource, calls::cloudsync_create(fields))
            .await?;
        let id = entry_id(&entry, "create", &resource)?;
        self.created(ObjectKind::CloudSync, id);
        self.new_tasks.insert(spec.pool.clone(), id);
        let (pw, salt) = (
            spec.password_fingerprint.clone(),
            spec.salt_fingerprint.clone(),
        );
        let pool = spec.pool.clone();
        self.state(|o| {
            let mut rec = OwnedObject::new(id);
            rec.fingerprints.insert("encryption_password".into(), pw);
            rec.fingerprints.insert("encryption_salt".into(), salt);
            // A record of another pool with this id is stale: its object was deleted
            // and TrueNAS handed the id to this new one.
            o.cloud_sync.retain(|p, r| *p == pool || r.id != id);
            o.cloud_sync.insert(pool.clone(), rec);
            o.pending
                .retain(|p| !(p.kind == ObjectKind::CloudSync && p.pool.as_deref() == Some(&pool)));
        })?;
        let resolved = CloudSyncSpec {
            credential: CredentialRef::Existing(credential),
            ..spec.clone()
        };
        self.check_cloud_sync(&entry, &resolved, &keys, &format!("cloud sync task #{id}"))?;
        Ok(Some(format!("id {id}")))
    }

    async fn update_cloud_sync(
        &mut self,
        id: u64,
        changes: &[FieldChange],
        spec: &CloudSyncSpec,
    ) -> Result<Option<String>, ApplyError> {
        let resource = format!("cloud sync task #{id}");
        let keys = payload::keys(changes);
        let credential = if keys.contains("credentials") {
            self.credential_id(spec.credential)?
        } else {
            // Not sent; any value is filtered out of the payload below.
            0
        };
        let fields = payload::cloud_sync(spec, credential, Some(&keys));
        let entry = self
            .call("update", &resource, calls::cloudsync_update(id, fields))
            .await?;
        let (pw, salt) = (
            spec.password_fingerprint.clone(),
            spec.salt_fingerprint.clone(),
        );
        let pool = spec.pool.clone();
        let (send_pw, send_salt) = (
            keys.contains("encryption_password"),
            keys.contains("encryption_salt"),
        );
        self.state(|o| {
            let rec = o
                .cloud_sync
                .entry(pool)
                .or_insert_with(|| OwnedObject::new(id));
            if send_pw {
                rec.fingerprints.insert("encryption_password".into(), pw);
            }
            if send_salt {
                rec.fingerprints.insert("encryption_salt".into(), salt);
            }
        })?;
        let resolved = CloudSyncSpec {
            credential: CredentialRef::Existing(credential),
            ..spec.clone()
        };
        self.check_cloud_sync(&entry, &resolved, &keys, &resource)?;
        Ok(None)
    }

    /// Compares a written snapshot task with the spec, over the keys that were sent; the
    /// answer (`get_instance` of the stored row on every version: `MW/plugins/snapshot.py`
    /// `do_create`/`do_update`) becomes the task in `after`.
    fn check_snapshot(
        &mut self,
        entry: &Value,
        spec: &SnapshotSpec,
        keys: &BTreeSet<String>,
        resource: &str,
    ) -> Result<(), ApplyError> {
        let back =
            observe::decode_snapshot_task(entry).map_err(|detail| ApplyError::Unexpected {
                operation: "read back",
                resource: resource.to_owned(),
                detail,
            })?;
        let fields = sent(spec::diff_snapshot(&back, spec), keys);
        upsert(&mut self.after.snapshot_tasks, back, |t| t.id);
        read_back(resource, fields)
    }

    async fn create_snapshot_task(
        &mut self,
        spec: &SnapshotSpec,
    ) -> Result<Option<String>, ApplyError> {
        let resource = format!("snapshot task for {}", spec.dataset);
        self.intend(ObjectKind::SnapshotTask, Some(&spec.pool))?;
        let fields = payload::snapshot_task(spec, None);
        let keys: BTreeSet<String> = fields.keys().cloned().collect();
        let entry = self
            .call("create", &resource, calls::snapshot_task_create(fields))
            .await?;
        let id = entry_id(&entry, "create", &resource)?;
        self.created(ObjectKind::SnapshotTask, id);
        let pool = spec.pool.clone();
        self.state(|o| {
            o.snapshot_tasks.retain(|p, r| *p == pool || r.id != id);
            o.snapshot_tasks.insert(pool.clone(), OwnedObject::new(id));
            o.pending.retain(|p| {
                !(p.kind == ObjectKind::SnapshotTask && p.pool.as_deref() == Some(&pool))
            });
        })?;
        self.check_snapshot(&entry, spec, &keys, &format!("snapshot task #{id}"))?;
        Ok(Some(format!("id {id}")))
    }

    async fn update_snapshot_task(
        &mut self,
        id: u64,
        changes: &[FieldChange],
        spec: &SnapshotSpec,
    ) -> Result<Option<String>, ApplyError> {
        let resource = format!("snapshot task #{id}");
        let keys = payload::keys(changes);
        let fields = payload::snapshot_task(spec, Some(&keys));
        let entry = self
            .call("update", &resource, calls::snapshot_task_update(id, fields))
            .await?;
        self.check_snapshot(&entry, spec, &keys, &resource)?;
        Ok(None)
    }

    async fn disable(&mut self, kind: ObjectKind, id: u64) -> Result<Option<String>, ApplyError> {
        let resource = format!("{} #{id}", kind.label());
        let call = match kind {
            ObjectKind::CloudSync => calls::cloudsync_update(id, payload::disabled()),
            ObjectKind::SnapshotTask => calls::snapshot_task_update(id, payload::disabled()),
            ObjectKind::Credential => {
                return Err(ApplyError::Unexpected {
                    operation: "disable",
                    resource,
                    detail: "credentials cannot be disabled".to_owned(),
                });
            }
        };
        let entry = self.call("disable", &resource, call).await?;
        // The answer is the stored row (`get_instance`), as for any update.
        match kind {
            ObjectKind::CloudSync => {
                if let Ok(back) = observe::decode_cloud_sync(&entry) {
                    upsert(&mut self.after.cloud_sync, back, |t| t.id);
                }
            }
            ObjectKind::SnapshotTask => {
                if let Ok(back) = observe::decode_snapshot_task(&entry) {
                    upsert(&mut self.after.snapshot_tasks, back, |t| t.id);
                }
            }
            ObjectKind::Credential => {}
        }
        match entry.get("enabled").and_then(Value::as_bool) {
            Some(false) => Ok(None),
            _ => read_back(&resource, vec!["enabled".to_owned()]).map(|()| None),
        }
    }

    async fn delete(
        &mut self,
        kind: ObjectKind,
        id: u64,
        pool: &str,
    ) -> Result<Option<String>, ApplyError> {
        let resource = format!("{} #{id}", kind.label());
        let call = match kind {
            ObjectKind::CloudSync => calls::cloudsync_delete(id),
            ObjectKind::SnapshotTask => calls::snapshot_task_delete(id),
            ObjectKind::Credential => {
                return Err(ApplyError::Unexpected {
                    operation: "delete",
                    resource,
                    detail: "the agent never deletes credentials".to_owned(),
                });
            }
        };
        self.call("delete", &resource, call).await?;
        match kind {
            ObjectKind::CloudSync => self.after.cloud_sync.retain(|t| t.id != id),
            ObjectKind::SnapshotTask => self.after.snapshot_tasks.retain(|t| t.id != id),
            ObjectKind::Credential => {}
        }
        self.state(|o| {
            if let Some(map) = o.tasks_mut(kind) {
                map.remove(pool);
            }
        })?;
        Ok(None)
    }

    async fn update_snmp(
        &mut self,
        changes: &[FieldChange],
        spec: &SnmpSpec,
    ) -> Result<Option<String>, ApplyError> {
        let resource = "the SNMP service configuration";
        let keys = payload::keys(changes);
        let entry = self
            .call(
                "update",
                resource,
                calls::snmp_update(payload::snmp(spec, Some(&keys))),
            )
            .await?;
        let (auth, privacy) = (
            spec.auth_fingerprint
                .clone()
                .filter(|_| keys.contains("v3_password")),
            spec.privacy_fingerprint
                .clone()
                .filter(|_| keys.contains("v3_privpassphrase")),
        );
        self.state(|o| {
            if let Some(fp) = auth {
                o.snmp_fingerprints.insert("v3_password".into(), fp);
            }
            if let Some(fp) = privacy {
                o.snmp_fingerprints.insert("v3_privpassphrase".into(), fp);
            }
        })?;
        // The answer is `snmp.config` after the write (`MW/plugins/snmp.py` `do_update`).
        let back = observe::decode_snmp(&entry);
        let recorded = &self.store.get().snmp_fingerprints;
        let fields = sent(spec::diff_snmp(&back, spec, recorded), &keys);
        self.after.snmp = back;
        read_back(resource, fields)?;
        Ok(None)
    }

    /// Re-applies the whole SNMP configuration after a failed apply. The middleware
    /// re-creates the v3 user only when a `v3_*` value differs from the stored one
    /// (`plugins/snmp.py` `do_update` → `init_v3_user`, which stops and starts snmpd), and
    /// after the failure the stored values may already be the document's. So the user is
    /// first set to a stand-in name (a difference: snmpd re-creates the user under it,
    /// same secrets), then to the real name (snmpd re-creates the real user). A failure
    /// of either call keeps the retry recorded; success clears it.
    /// Remembers a failed SNMP step so later passes re-apply SNMP until it works.
    fn remember_snmp_failure(&mut self, failure: SnmpRetry, outcome: &mut Outcome) {
        if let Err(e) = self.state(|o| o.snmp_retry = Some(failure)) {
            record(
                outcome,
                Origin::Extra(Extra::RememberSnmpFailure),
                "remember the failed SNMP apply".to_owned(),
                Err(e),
            );
        }
    }

    async fn reapply_snmp(&mut self, spec: &SnmpSpec) -> Result<Option<String>, ApplyError> {
        let resource = "the SNMP service configuration";
        let mut stand_in = payload::snmp(spec, None);
        stand_in.insert(
            "v3_username".to_owned(),
            Value::from(stand_in_username(&spec.username)),
        );
        self.call("re-apply", resource, calls::snmp_update(stand_in))
            .await?;
        let entry = self
            .call(
                "re-apply",
                resource,
                calls::snmp_update(payload::snmp(spec, None)),
            )
            .await?;
        let (auth, privacy) = (
            spec.auth_fingerprint.clone(),
            spec.privacy_fingerprint.clone(),
        );
        self.state(|o| {
            if let Some(fp) = auth {
                o.snmp_fingerprints.insert("v3_password".into(), fp);
            }
            if let Some(fp) = privacy {
                o.snmp_fingerprints.insert("v3_privpassphrase".into(), fp);
            }
        })?;
        let back = observe::decode_snmp(&entry);
        let recorded = &self.store.get().snmp_fingerprints;
        let fields: Vec<String> = spec::diff_snmp(&back, spec, recorded)
            .into_iter()
            .map(|c| c.field)
            .collect();
        self.after.snmp = back;
        read_back(resource, fields)?;
        self.state(|o| o.snmp_retry = None)?;
        Ok(Some("the middleware re-created the SNMPv3 user".to_owned()))
    }

    async fn enable_service(&mut self, service: &str) -> Result<Option<String>, ApplyError> {
        let resource = format!("service {service}");
        self.reread_services = true;
        self.call("enable at boot", &resource, calls::service_enable(service))
            .await?;
        Ok(None)
    }

    async fn start_service(&mut self, service: &str) -> Result<Option<String>, ApplyError> {
        let resource = format!("service {service}");
        self.reread_services = true;
        let call = calls::service_start(self.flavor, service);
        let method = call.method;
        let reply = self.call("start", &resource, call).await?;
        match self.flavor {
            ApiFlavor::V24_10 | ApiFlavor::V25_04 => match reply.as_bool() {
                Some(true) => Ok(None),
                _ => Err(ApplyError::Unexpected {
                    operation: "start",
                    resource,
                    detail: "the middleware reported that the service did not start".to_owned(),
                }),
            },
            ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => {
                let job = job_id_of(method, &reply).map_err(|source| ApplyError::Call {
                    operation: "start",
                    resource: resource.clone(),
                    source,
                })?;
                let done = self
                    .mw
                    .wait_job(job, self.options.job_timeout)
                    .await
                    .map_err(|e| ApplyError::Call {
                        operation: "wait for the start of",
                        resource: resource.clone(),
                        source: redacted(e, self.desired),
                    })?;
                if done.state == JobState::Success {
                    Ok(None)
                } else {
                    Err(ApplyError::JobFailed {
                        operation: "start",
                        resource,
                        job,
                        state: format!("{:?}", done.state).to_uppercase(),
                        detail: self
                            .desired
                            .redact(done.error.as_deref().unwrap_or("no error text")),
                    })
                }
            }
        }
    }

    async fn run_cloud_sync(
        &mut self,
        action_id: &str,
        pool: &str,
        task: TaskRef,
    ) -> Result<Option<String>, ApplyError> {
        let (id, created_now) = match task {
            TaskRef::Existing(id) => (id, false),
            TaskRef::Planned => (
                *self
                    .new_tasks
                    .get(pool)
                    .ok_or_else(|| ApplyError::DependencyFailed {
                        reason: format!("the cloud sync task for {pool} was not created"),
                    })?,
                true,
            ),
        };
        let started = self.start_run(action_id, id, created_now).await?;
        // A run exists now: the task counts as having run (it may upload data), which is
        // what guards it against a re-key.
        if let Some(t) = self.after.cloud_sync.iter_mut().find(|t| t.id == id) {
            t.last_run = Some(JobState::Waiting);
        }
        Ok(Some(started))
    }

    /// Starts a run of task `id` (see [`Self::run_cloud_sync`]). For a task created in
    /// this pass the job the middleware hands back needs no checks: its lock
    /// (`cloud_sync:{id}`, from the params `[id]`) is held only by runs of task `id`, and
    /// no run of a task that did not exist before this pass can have been queued — so
    /// whatever job comes back runs this task, and it is a new run.
    async fn start_run(
        &mut self,
        action_id: &str,
        id: u64,
        created_now: bool,
    ) -> Result<String, ApplyError> {
        let resource = format!("cloud sync task #{id}");
        if created_now {
            let action = action_id.to_owned();
            self.state(|o| {
                o.executed_actions.insert(action);
            })?;
            let reply = match self.call("run", &resource, calls::cloudsync_sync(id)).await {
                Ok(reply) => reply,
                Err(e) => {
                    if matches!(&e, ApplyError::Call { source, .. } if certainly_not_executed(source))
                    {
                        self.unrecord(action_id)?;
                    }
                    return Err(e);
                }
            };
            let method = crate::middleware::Method::CloudsyncSync;
            let job = job_id_of(method, &reply).map_err(|source| ApplyError::Call {
                operation: "run",
                resource: resource.clone(),
                source,
            })?;
            return Ok(format!("started job {job}"));
        }
        // The jobs `cloudsync.sync` could hand back instead of starting a run.
        let queued = self
            .call(
                "list the queued runs before running",
                &resource,
                calls::queued_cloudsync_runs(),
            )
            .await?;
        let queued = job_ids(&queued);
        // At most once: the id is recorded before the call, so a lost reply never
        // leads to a second run. It is dropped again only when the run certainly did
        // not start.
        let action = action_id.to_owned();
        self.state(|o| {
            o.executed_actions.insert(action);
        })?;
        let reply = match self.call("run", &resource, calls::cloudsync_sync(id)).await {
            Ok(reply) => reply,
            Err(e) => {
                if matches!(&e, ApplyError::Call { source, .. } if certainly_not_executed(source)) {
                    self.unrecord(action_id)?;
                }
                return Err(e);
            }
        };
        let method = crate::middleware::Method::CloudsyncSync;
        let job = job_id_of(method, &reply).map_err(|source| ApplyError::Call {
            operation: "run",
            resource: resource.clone(),
            source,
        })?;
        if queued.contains(&job) {
            self.unrecord(action_id)?;
            return Err(ApplyError::RunNotStarted {
                resource,
                reason: NotStarted::AlreadyQueued { job },
            });
        }
        let found = self
            .call("check the run of", &resource, calls::job(job))
            .await?;
        let first = found.as_array().and_then(|jobs| jobs.first());
        let Some(started) = first.and_then(|j| serde_json::from_value::<Job>(j.clone()).ok())
        else {
            return Err(ApplyError::Unexpected {
                operation: "check the run of",
                resource,
                detail: format!(
                    "job {job} is not listed by core.get_jobs right after it was started"
                ),
            });
        };
        if started.args.first_id != Some(id) {
            self.unrecord(action_id)?;
            return Err(ApplyError::RunNotStarted {
                resource,
                reason: NotStarted::OtherTask {
                    job,
                    task: started.args.first_id,
                },
            });
        }
        Ok(format!("started job {job}"))
    }

    /// Reads the SNMP service row back after a service step (see `reread_services`).
    async fn read_back_services(&mut self, outcome: &mut Outcome) {
        let result = self
            .call(
                "read back",
                "service snmp",
                calls::service_query(calls::SNMP_SERVICE),
            )
            .await
            .map(|row| {
                self.after.snmp_service = observe::decode_service(&row);
                None
            });
        record(
            outcome,
            Origin::Extra(Extra::ReadBackServices),
            "read back the SNMP service (start at boot, running)".to_owned(),
            result,
        );
    }

    /// Forgets an action recorded as executed whose run certainly did not start.
    fn unrecord(&mut self, action_id: &str) -> Result<(), ApplyError> {
        self.state(|o| {
            o.executed_actions.remove(action_id);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::stand_in_username;

    #[test]
    fn the_stand_in_user_name_differs_and_keeps_the_rules() {
        for name in [
            "a",
            "nmsQwErTyUiOp",
            "a2345678901234567890",
            "a234567890123456789_",
        ] {
            let stand_in = stand_in_username(name);
            assert_ne!(stand_in, name);
            assert!((1..=20).contains(&stand_in.chars().count()), "{stand_in}");
            assert!(
                stand_in
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            );
        }
    }
}

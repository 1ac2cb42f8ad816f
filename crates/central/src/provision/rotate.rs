//! `rotate-key`: a new scoped B2 key without downtime (the hardening guide's rung 2
//! applied to the B2 key).
//!
//! Owns: the rotation's order — create the new key (v3, `bucketId`) and prove it on
//! `/b2api/v1/`; record it (sealed) with the old one as "replaced, not yet deleted";
//! publish the device's document with the new key (revision + 1, validated by
//! `desired::parse`); wait for the device's report of that revision (or a later one) to
//! say `applied` — the agent writes the key into the TrueNAS credential, runs
//! `cloudsync.credentials.verify` with it and lists the bucket, and reports `failed` if
//! that does not work; only then delete the old key (through v3, the version that
//! deletes single-bucket keys; a multi-bucket key through v4).
//! Does not: touch the bucket or any other secret.
//! Invariants: the old key is deleted only after the device proved the new one; a run
//! that stops while waiting (timeout) leaves both keys valid and the rotation recorded,
//! and the next run resumes it (waits again) instead of making a third key; a device
//! that reports the new revision `failed` or `refused` keeps both keys and the run says
//! why.
//! Limitations: a device in `report-only` mode never applies, so the wait times out
//! (exit 6) and the old key stays; the wait reads the device's newest report from the
//! database once a second.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use super::inputs::{Problem, read_admin_key};
use super::{ADMIN_CAPABILITIES, Outcome, Report, SOP_CAPABILITIES, Stop, admin_client, b2};
use crate::b2admin::AdminOptions;
use crate::datastore;
use crate::db::{DEVICE_NAME_RULE, Database, Db, is_valid_device_name};
use crate::secrets::{DeviceSecrets, ReplacedKey, ScopedKey};
use truenas_agent::central::report::ConfigState;

/// The command line of `rotate-key`.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    pub dir: PathBuf,
    /// Where central's data lives (SQLite in `dir` by default).
    pub database: Database,
    pub device: String,
    pub admin_key_file: PathBuf,
    pub b2_api: String,
    /// How long to wait for the device's report.
    pub wait: Duration,
    /// How often the device's newest report is read while waiting.
    pub poll: Duration,
}

/// Runs `rotate-key`.
pub async fn rotate_key(req: &RotateRequest, options: AdminOptions) -> Report {
    let report = Report::new("rotate-key", &req.device, false);
    let mut run = Rotation { req, report };
    match run.go(options).await {
        Ok(outcome) => run.report.end(outcome, None),
        Err(stop) => {
            let report = run.report;
            match stop {
                Stop::Refused(why) => report.end(Outcome::Refused, Some(why)),
                Stop::BadInput(problems) => {
                    let mut r = report.end(Outcome::BadInput, Some("invalid input".into()));
                    r.problems = problems;
                    r
                }
                Stop::B2(why) => report.end(Outcome::B2Error, Some(why)),
                Stop::Central(why) => report.end(Outcome::CentralError, Some(why)),
                Stop::Pending => report.end(
                    Outcome::Pending,
                    Some("waiting for the device's report timed out".into()),
                ),
            }
        }
    }
}

struct Rotation<'a> {
    req: &'a RotateRequest,
    report: Report,
}

impl Rotation<'_> {
    async fn go(&mut self, mut options: AdminOptions) -> Result<Outcome, Stop> {
        let req = self.req;
        let mut problems = Vec::new();
        if !is_valid_device_name(&req.device) {
            problems.push(Problem::new("--device", DEVICE_NAME_RULE));
        }
        let admin = match read_admin_key(&req.admin_key_file) {
            Ok(a) => Some(a),
            Err(p) => {
                problems.extend(p);
                None
            }
        };
        if let Err(e) = crate::b2admin::check_api_url(&req.b2_api) {
            problems.push(Problem::new("--b2-api", e.to_string()));
        }
        let Some(admin) = admin.filter(|_| problems.is_empty()) else {
            return Err(Stop::BadInput(problems));
        };
        let store = datastore::open(&req.dir, &req.database).await?;
        let Some(mut record) = DeviceSecrets::load(&store, &req.device).await? else {
            return Err(Stop::BadInput(vec![Problem::new(
                "--device",
                "central holds no provisioning secrets for this device: run `provision` first",
            )]));
        };
        options.api_base.clone_from(&req.b2_api);
        let mut needs: Vec<&str> = ADMIN_CAPABILITIES.to_vec();
        needs.push("deleteKeys");
        let mut client = admin_client(&admin.key_id, &admin.key, options, &needs).await?;
        let bucket = record.current.bucket.clone();
        let bucket_id = record.current.bucket_id.clone();

        let pending = record
            .replaced_keys
            .iter()
            .position(|k| k.deleted_at.is_none() && k.bucket == bucket);
        let index = match pending {
            Some(i) => {
                self.report.notes.push(format!(
                    "resuming the rotation of key {} (new key published in revision {})",
                    record.replaced_keys[i].key_id, record.replaced_keys[i].new_key_revision
                ));
                i
            }
            None => {
                self.start(&store, &mut client, &mut record, &bucket, &bucket_id)
                    .await?
            }
        };
        let (old_key, revision, since) = {
            let r = &record.replaced_keys[index];
            (r.key_id.clone(), r.new_key_revision, r.replaced_at)
        };
        self.wait_for_device(&store, revision, since).await?;
        let deleted = client
            .delete_key(&old_key)
            .await
            .map_err(|e| b2("deleting the old key", &e))?;
        record.replaced_keys[index].deleted_at = Some(Utc::now());
        record.updated_at = Utc::now();
        record.save(&store).await?;
        self.report.done.push(if deleted {
            format!("deleted the old key {old_key} (b2_delete_key)")
        } else {
            format!("the old key {old_key} was already deleted in B2")
        });
        Ok(Outcome::Done)
    }

    /// New key, recorded, published. Returns the index of the replaced key's entry.
    async fn start(
        &mut self,
        store: &Db,
        client: &mut crate::b2admin::AdminClient,
        record: &mut DeviceSecrets,
        bucket: &str,
        bucket_id: &str,
    ) -> Result<usize, Stop> {
        let device = &self.req.device;
        let Some(published) = store.document(device).await? else {
            return Err(Stop::Refused(
                "no document is published for this device; run `provision` first".into(),
            ));
        };
        let mut doc: Value = serde_json::from_slice(&published.bytes)
            .map_err(|_| Stop::Central("the published document is not JSON".into()))?;
        let revision = published.revision + 1;
        let Some(old) = record.current.key.take() else {
            return Err(Stop::Refused(
                "no key is recorded for the device's bucket; run `provision` to make one".into(),
            ));
        };
        let new = client
            .create_bucket_key(bucket, SOP_CAPABILITIES, bucket_id)
            .await
            .map_err(|e| b2("creating the new key", &e))?;
        let now = Utc::now();
        let new_id = new.key_id.clone();
        record.current.key = Some(ScopedKey {
            key_id: new.key_id,
            application_key: new.application_key,
            name: bucket.to_owned(),
            capabilities: new.capabilities,
            created_via: "v3".to_owned(),
            created_at: now,
        });
        record.replaced_keys.push(ReplacedKey {
            key_id: old.key_id.clone(),
            bucket: bucket.to_owned(),
            replaced_at: now,
            new_key_revision: revision,
            deleted_at: None,
        });
        record.updated_at = now;
        record.save(store).await?;
        self.report.done.push(format!(
            "created key {new_id} named {bucket} restricted to bucket {bucket_id} (b2_create_key v3)"
        ));
        let Some(key) = &record.current.key else {
            return Err(Stop::Central("the new key vanished from the record".into()));
        };
        client
            .prove_scoped_key(&key.key_id, &key.application_key, bucket, bucket_id)
            .await
            .map_err(|e| b2("proving the new key on /b2api/v1/", &e))?;
        self.report.done.push(format!(
            "proved key {new_id}: signs in on /b2api/v1/ and lists the bucket and its files"
        ));
        doc["b2"] = json!({
            "key_id": key.key_id,
            "application_key": key.application_key.expose_secret(),
        });
        doc["revision"] = json!(revision);
        doc["issued_at"] = json!(now.to_rfc3339_opts(SecondsFormat::Secs, true));
        let bytes = secrecy::SecretBox::new(Box::new(
            serde_json::to_vec(&doc).map_err(|e| Stop::Central(e.to_string()))?,
        ));
        truenas_agent::desired::parse(bytes.expose_secret()).map_err(|e| {
            Stop::Refused(format!(
                "the device's document with the new key fails the agent's validation: {e}"
            ))
        })?;
        store.publish(device, bytes.expose_secret(), false).await?;
        self.report.done.push(format!(
            "published revision {revision} with the new key; the old key {} stays valid until \
             the device reports it applied",
            old.key_id
        ));
        Ok(record.replaced_keys.len() - 1)
    }

    /// Waits for a report of `revision` (or later) received after `since`.
    async fn wait_for_device(
        &mut self,
        store: &Db,
        revision: u64,
        since: chrono::DateTime<Utc>,
    ) -> Result<(), Stop> {
        let deadline = tokio::time::Instant::now() + self.req.wait;
        loop {
            if let Some(latest) = store.latest_report(&self.req.device).await? {
                let r = &latest.report;
                let fresh = latest.received_at >= since
                    && r.config.revision.is_some_and(|rev| rev >= revision);
                if fresh {
                    match r.config.state {
                        ConfigState::Applied => {
                            self.report.done.push(format!(
                                "device reported revision {} applied at {}: the NAS verified the \
                                 new key (cloudsync.credentials.verify, bucket listed)",
                                r.config.revision.unwrap_or(revision),
                                latest
                                    .received_at
                                    .to_rfc3339_opts(SecondsFormat::Secs, true)
                            ));
                            return Ok(());
                        }
                        ConfigState::Failed | ConfigState::Refused => {
                            let errors: Vec<String> = r
                                .config
                                .errors
                                .iter()
                                .map(|e| format!("{}: {}", e.path, e.message))
                                .collect();
                            return Err(Stop::Refused(format!(
                                "the device reported revision {revision} {:?}: {}. Both keys stay \
                                 valid; fix the cause and run rotate-key again",
                                r.config.state,
                                errors.join("; ")
                            )));
                        }
                        ConfigState::Pending | ConfigState::None => {}
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                self.report.notes.push(format!(
                    "no report of revision {revision} applied within {}s; the old key stays valid. \
                     Run rotate-key again to keep waiting and finish",
                    self.req.wait.as_secs()
                ));
                return Err(Stop::Pending);
            }
            tokio::time::sleep(self.req.poll).await;
        }
    }
}

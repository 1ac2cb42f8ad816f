//! `provision`: SOP phases 1.1, 3, 4, 4.4 and 4.5 done by software — the bucket, the
//! scoped key, every secret, and the device's document.
//!
//! Owns: the order of the steps and their idempotence: (1) every input checked
//! (`inputs`), (2) everything read — the admin key's sign-in, the bucket, the device's
//! sealed secrets, its published document, B2 keys named like the bucket — and the plan
//! made, (3) refusals decided **before the first write** (a bucket whose settings
//! differ, a compliance lock not confirmed, a token file in the way), (4) the writes:
//! bucket (`b2_create_bucket`), compliance 14 days (`b2_update_bucket`), read back and
//! proven; the device registered (token file like `register`: the database keeps secrets
//! only for a registered device); key (v3 `b2_create_key` with `bucketId`, proven on
//! `/b2api/v1/`); secrets sealed into the database; the document composed, validated by
//! the agent's own `desired::parse` and published (signed when served).
//! The outcome and its exit code ([`Outcome`]), the plan and report ([`Report`]).
//! Does not: print (the CLI renders [`Report`]), or delete anything in B2 (`rotate`
//! deletes the key it replaced, after the device proved the new one).
//! Invariants: `--dry-run` sends no writing call to B2 and writes nothing in DIR or the
//! database (it creates no SQLite file, key file or binding); a refused run creates none
//! either (only an old data directory not imported yet is imported first, as at any
//! command's first start); a run with the same inputs as the last successful one changes
//! nothing; no secret is in a
//! [`Report`], a log line or an error; secrets come only from the OS CSPRNG and are
//! kept across runs (new ones only for a new destination or when `--rotate` asks).
//! Limitations: one B2 account per admin key; a key created but whose answer was lost
//! cannot be recovered (its secret was only in that answer) — the next run lists it as
//! unknown and makes a new one.

pub mod bucket;
pub mod document;
pub mod inputs;
pub mod rotate;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::Value;

use self::bucket::{Setting, Verdict};
use self::inputs::{Inputs, Problem, Request, Rotate};
use super::b2admin::{AdminClient, AdminOptions, B2AdminError, BucketState};
use super::datastore::{self, DataError};
use super::db::{Db, DbError, token_hash};
use super::secrets::{self, Destination, DeviceSecrets, ScopedKey};
use truenas_agent::fault::error_chain;
use truenas_agent::fs;

/// The SOP 4.3 capability list, in the SOP's order: what the scoped key is asked for
/// (defined once, by the agent that checks the key).
pub use truenas_agent::b2::SOP_CAPABILITIES;

/// What the admin key needs for `provision`.
pub const ADMIN_CAPABILITIES: [&str; 8] = [
    "listBuckets",
    "writeBuckets",
    "readBucketEncryption",
    "writeBucketEncryption",
    "readBucketRetentions",
    "writeBucketRetentions",
    "listKeys",
    "writeKeys",
];

/// Report format tag.
pub const REPORT_SCHEMA: &str = "truenas-central.provision/v1";

/// How a run ended; each has its exit code (documented in docs/provisioning.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Changes were made (or, with `--dry-run`, would be made) and all went well: 0.
    Done,
    /// Everything already as asked: 0.
    NothingToDo,
    /// An input is wrong (flag, admin key file, token file in the way): 2.
    BadInput,
    /// Stopped on purpose before changing anything: a conflicting bucket, a bucket name
    /// taken by another account, a compliance lock not confirmed, a device that did not
    /// take a new key: 3.
    Refused,
    /// B2 failed or answered something unusable: 4.
    B2Error,
    /// Central's data directory or at-rest key failed: 5.
    CentralError,
    /// `rotate-key` only: the device has not yet reported the new key in use; the old key
    /// is kept, run it again to finish: 6.
    Pending,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Done | Outcome::NothingToDo => 0,
            Outcome::BadInput => 2,
            Outcome::Refused => 3,
            Outcome::B2Error => 4,
            Outcome::CentralError => 5,
            Outcome::Pending => 6,
        }
    }
}

/// `device` part of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct DevicePlan {
    /// `register` (new) or `registered`.
    pub action: &'static str,
    /// Where the new device's token is written.
    pub token_file: Option<PathBuf>,
    /// The bucket the device used before, when this run moves it.
    pub moved_from: Option<String>,
}

/// `bucket` part of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct BucketPlan {
    pub name: String,
    pub id: Option<String>,
    /// `create`, `reuse`, `finish` (exists with every setting but the default
    /// retention), `conflict`.
    pub action: &'static str,
    pub settings: Vec<Setting>,
    /// `set`, `already_set`, `needs_confirmation`, `conflict`.
    pub compliance_lock: &'static str,
}

/// `key` part of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct KeyPlan {
    /// `create`, `keep`, `replace`.
    pub action: &'static str,
    pub name: String,
    pub key_id: Option<String>,
    pub capabilities: Vec<String>,
    /// How it is created: `b2_create_key v3, bucketId` (a key v1 sign-in accepts).
    pub via: &'static str,
    pub reason: Option<String>,
}

/// `secrets` part of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct SecretsPlan {
    /// `generate`, `keep`, `restore` (a destination used before), `rotate`.
    pub encryption: &'static str,
    /// `generate`, `keep`, `rotate`.
    pub snmp: &'static str,
}

/// `document` part of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentPlan {
    /// `publish` or `unchanged`.
    pub action: &'static str,
    pub published_revision: Option<u64>,
    /// The revision this run publishes.
    pub revision: Option<u64>,
    /// Top-level keys that change (never values).
    pub changes: Vec<String>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub device: DevicePlan,
    pub bucket: BucketPlan,
    pub key: KeyPlan,
    pub secrets: SecretsPlan,
    pub document: DocumentPlan,
}

/// What a run reports (text or JSON); never a secret.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub command: &'static str,
    pub device: String,
    pub dry_run: bool,
    pub outcome: Outcome,
    pub exit_code: u8,
    /// Input problems (`BadInput`), all of them.
    pub problems: Vec<Problem>,
    /// Why the run stopped (`Refused`) or failed, in words.
    pub reason: Option<String>,
    pub plan: Option<Plan>,
    /// Steps carried out, in order.
    pub done: Vec<String>,
    pub notes: Vec<String>,
}

impl Report {
    pub(crate) fn new(command: &'static str, device: &str, dry_run: bool) -> Self {
        Self {
            schema: REPORT_SCHEMA,
            command,
            device: device.to_owned(),
            dry_run,
            outcome: Outcome::Done,
            exit_code: 0,
            problems: Vec::new(),
            reason: None,
            plan: None,
            done: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn end(mut self, outcome: Outcome, reason: Option<String>) -> Self {
        self.outcome = outcome;
        self.exit_code = outcome.exit_code();
        self.reason = reason;
        self
    }
}

/// The steps' errors, by outcome.
pub(crate) enum Stop {
    Refused(String),
    BadInput(Vec<Problem>),
    B2(String),
    Central(String),
    /// `rotate-key`: the device has not reported the new key in use yet.
    Pending,
}

impl From<DbError> for Stop {
    fn from(e: DbError) -> Self {
        Stop::Central(error_chain(&e))
    }
}

impl From<DataError> for Stop {
    fn from(e: DataError) -> Self {
        Stop::Central(error_chain(&e))
    }
}

pub(crate) fn b2(context: &str, e: &B2AdminError) -> Stop {
    Stop::B2(format!("{context}: {e}"))
}

/// Runs `provision`.
pub async fn provision(req: &Request, options: AdminOptions) -> Report {
    let report = Report::new("provision", &req.device, req.dry_run);
    let inputs = match inputs::validate(req) {
        Ok(i) => i,
        Err(problems) => {
            let mut r = report.end(Outcome::BadInput, Some("invalid input".to_owned()));
            r.problems = problems;
            return r;
        }
    };
    let mut run = Run {
        req,
        inputs: &inputs,
        report,
        now: Utc::now(),
    };
    match run.go(options).await {
        Ok(outcome) => {
            let report = run.report;
            report.end(outcome, None)
        }
        Err(stop) => {
            let report = run.report;
            match stop {
                Stop::Refused(why) => report.end(Outcome::Refused, Some(why)),
                Stop::BadInput(problems) => {
                    let mut r = report.end(Outcome::BadInput, Some("invalid input".to_owned()));
                    r.problems = problems;
                    r
                }
                Stop::B2(why) => report.end(Outcome::B2Error, Some(why)),
                Stop::Central(why) => report.end(Outcome::CentralError, Some(why)),
                Stop::Pending => report.end(Outcome::Pending, None),
            }
        }
    }
}

/// The admin client for an admin key, signed in, with its capabilities checked.
pub(crate) async fn admin_client(
    key_id: &str,
    key: &SecretString,
    options: AdminOptions,
    needs: &[&str],
) -> Result<AdminClient, Stop> {
    let mut client = AdminClient::new(key_id, key.clone(), options)
        .map_err(|e| Stop::BadInput(vec![Problem::new("--b2-api", e.to_string())]))?;
    let info = client.authorize().await.map_err(|e| {
        if e.status() == Some(401) {
            Stop::BadInput(vec![Problem::new(
                "--b2-admin-key-file",
                format!("B2 refused the admin key: {e}"),
            )])
        } else {
            b2("signing in with the admin key", &e)
        }
    })?;
    let missing: Vec<&str> = needs
        .iter()
        .filter(|c| !info.capabilities.iter().any(|h| h == *c))
        .copied()
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(Problem::new(
            "--b2-admin-key-file",
            format!(
                "the admin key lacks the capabilities {} (use the B2 admin key from 1Password, SOP 3.3)",
                missing.join(", ")
            ),
        ));
    }
    if info.restricted_to.is_some() {
        problems.push(Problem::new(
            "--b2-admin-key-file",
            "the admin key is restricted to buckets; provisioning needs the account-wide admin key",
        ));
    }
    if problems.is_empty() {
        Ok(client)
    } else {
        Err(Stop::BadInput(problems))
    }
}

/// Where a new device's token goes by default: beside the data directory (never in it).
pub fn default_token_file(dir: &Path, device: &str) -> PathBuf {
    let absolute = fs::canonical(dir)
        .or_else(|| std::path::absolute(dir).ok())
        .unwrap_or_else(|| dir.to_owned());
    absolute.with_file_name(format!("{device}.token"))
}

struct Run<'a> {
    req: &'a Request,
    inputs: &'a Inputs,
    report: Report,
    now: DateTime<Utc>,
}

/// What planning found, for execution.
struct Found {
    bucket: Option<BucketState>,
    verdict: Option<Verdict>,
    key_plan: KeyPlan,
    record: Option<DeviceSecrets>,
    /// The projected record: the secrets this run ends with (the key is a placeholder
    /// when one is to be created).
    projected: DeviceSecrets,
    published: Option<Value>,
    published_revision: Option<u64>,
    registered: bool,
    token_file: Option<PathBuf>,
}

impl Run<'_> {
    async fn go(&mut self, options: AdminOptions) -> Result<Outcome, Stop> {
        let inputs = self.inputs;
        // Nothing is created (no database, no key) before the plan is known to go ahead; an
        // old data directory is imported first (as any command's first start does), except
        // by a dry run, which refuses instead.
        let view = datastore::peek(&self.req.dir, &self.req.database, !self.req.dry_run).await?;
        let client = admin_client(
            &inputs.admin.key_id,
            &inputs.admin.key,
            options,
            &ADMIN_CAPABILITIES,
        )
        .await?;
        let mut client = client;
        let found = self.plan(view.as_ref(), &mut client).await?;
        if let Some(view) = view {
            view.close().await;
        }
        let plan = self.report.plan.clone();
        let Some(plan) = plan else {
            return Err(Stop::Central("no plan was made".to_owned()));
        };
        let account = client.account_id().unwrap_or("?").to_owned();
        let refusal = refusal(&plan, inputs, &account, self.req.confirm_compliance_lock);
        let nothing = plan.device.action == "registered"
            && plan.bucket.action == "reuse"
            && plan.key.action == "keep"
            && plan.secrets.encryption == "keep"
            && plan.secrets.snmp == "keep"
            && plan.document.action == "unchanged";
        if let Some(why) = refusal {
            return Err(Stop::Refused(why));
        }
        if self.req.dry_run {
            return Ok(if nothing {
                Outcome::NothingToDo
            } else {
                Outcome::Done
            });
        }
        if nothing {
            return Ok(Outcome::NothingToDo);
        }
        self.execute(&mut client, found).await?;
        Ok(Outcome::Done)
    }

    /// Reads everything and makes the plan; writes nothing.
    #[allow(clippy::too_many_lines, reason = "one read per SOP step, in order")]
    async fn plan(&mut self, view: Option<&Db>, client: &mut AdminClient) -> Result<Found, Stop> {
        let inputs = self.inputs;
        let device = &inputs.device;
        let (record, registered, document) = match view {
            Some(db) => (
                DeviceSecrets::load(db, device).await?,
                db.is_registered(device).await?,
                db.document(device).await?,
            ),
            None => (None, false, None),
        };
        let published_revision = document.as_ref().map(|d| d.revision);
        let published = match document {
            Some(d) => Some(serde_json::from_slice::<Value>(&d.bytes).map_err(|_| {
                Stop::Central(format!(
                    "the published document of {device} is not JSON; publish a valid one first"
                ))
            })?),
            None => None,
        };
        let token_file = if registered {
            None
        } else {
            let path = self
                .req
                .token_out
                .clone()
                .unwrap_or_else(|| default_token_file(&self.req.dir, device));
            if fs::stamp(&path)
                .map_err(|e| Stop::Central(error_chain(&e)))?
                .is_some()
            {
                return Err(Stop::BadInput(vec![Problem::new(
                    "--token-out",
                    format!(
                        "{} exists; refusing to overwrite a token file (move it away, or name \
                         another file with --token-out)",
                        path.display()
                    ),
                )]));
            }
            Some(path)
        };

        // Bucket.
        let bucket = client
            .find_bucket(&inputs.bucket)
            .await
            .map_err(|e| b2("reading the bucket", &e))?;
        let (bucket_action, verdict, settings) = match &bucket {
            None => ("create", None, bucket::planned()),
            Some(b) => {
                let (verdict, settings) = bucket::compare(b);
                let action = match verdict {
                    Verdict::Matches => "reuse",
                    Verdict::NeedsRetention => "finish",
                    Verdict::Differs => "conflict",
                };
                (action, Some(verdict), settings)
            }
        };
        let lock = match (bucket_action, self.req.confirm_compliance_lock) {
            ("reuse", _) => "already_set",
            ("conflict", _) => "conflict",
            (_, true) => "set",
            (_, false) => "needs_confirmation",
        };

        // A device provisioned by hand (a published document, no record): its secrets are
        // imported, not replaced — new ones would be a re-key the agent must refuse, and
        // IT Glue already holds these.
        let mut snmp_imported = false;
        let imported = record.is_none();
        let record = match record {
            Some(r) => Some(r),
            None => published.as_ref().and_then(|doc| {
                let (r, snmp) = import(doc, inputs, bucket.as_ref(), self.now)?;
                snmp_imported = snmp;
                Some(r)
            }),
        };
        let imported = imported && record.is_some();
        if imported {
            self.report.notes.push(
                "central holds no record for this device but its published document has \
                 secrets: they are imported (kept), not replaced"
                    .to_owned(),
            );
        }

        // Which destination of the record (if any) this bucket is.
        let same_bucket = record
            .as_ref()
            .is_some_and(|r| r.current.bucket == inputs.bucket);
        let previous = record
            .as_ref()
            .and_then(|r| r.previous.iter().find(|d| d.bucket == inputs.bucket));
        let known: Option<&Destination> = if same_bucket {
            record.as_ref().map(|r| &r.current)
        } else {
            previous
        };

        // Key.
        let key_plan = self.plan_key(client, bucket.as_ref(), known).await?;

        // Secrets.
        let rotate = |r: Rotate| self.req.rotate.contains(&r);
        let encryption_action = match (&record, same_bucket, previous.is_some()) {
            (Some(_), true, _) if rotate(Rotate::Encryption) => "rotate",
            (Some(_), true, _) if imported => "import",
            (Some(_), true, _) => "keep",
            (Some(_), false, true) => "restore",
            (None, _, _) | (Some(_), false, false) => "generate",
        };
        let snmp_action = match &record {
            None => "generate",
            Some(_) if imported && !snmp_imported => "generate",
            Some(_) if rotate(Rotate::Snmp) => "rotate",
            Some(_) if imported => "import",
            Some(_) => "keep",
        };
        let projected = self.project(
            record.as_ref(),
            known,
            bucket.as_ref(),
            &key_plan,
            encryption_action,
            snmp_action,
        );
        if record.is_some() && !same_bucket {
            if let Some(r) = &record {
                self.report.notes.push(format!(
                    "device moves from bucket {} to {}: the Cloud Sync tasks get the new bucket, \
                     a new key and {} encryption secrets; the data already in {} stays readable \
                     with its own password/salt (kept, shown by `escrow`)",
                    r.current.bucket,
                    inputs.bucket,
                    if encryption_action == "restore" {
                        "that destination's earlier"
                    } else {
                        "new"
                    },
                    r.current.bucket
                ));
            }
        }
        if encryption_action == "rotate" {
            self.report.notes.push(
                "--rotate encryption: new password/salt for the same destination; the agent \
                 refuses to re-key a Cloud Sync task that already uploaded data (the old data \
                 would become unreadable) unless the document sets encryption.allow_rekey; the \
                 old secrets are kept in the record"
                    .to_owned(),
            );
        }

        // Document.
        let next = published_revision.unwrap_or(0) + 1;
        let doc = document::compose(published.as_ref(), inputs, &projected, next, self.now);
        let mut changes = document::changed_keys(published.as_ref(), &doc);
        if key_plan.action != "keep" && !changes.iter().any(|c| c == "b2") {
            changes.push("b2".to_owned());
            changes.sort();
        }
        let doc_action = if changes.is_empty() {
            "unchanged"
        } else {
            "publish"
        };
        self.report.plan = Some(Plan {
            device: DevicePlan {
                action: if registered { "registered" } else { "register" },
                token_file: token_file.clone(),
                moved_from: record
                    .as_ref()
                    .filter(|_| !same_bucket)
                    .map(|r| r.current.bucket.clone()),
            },
            bucket: BucketPlan {
                name: inputs.bucket.clone(),
                id: bucket.as_ref().map(|b| b.id.clone()),
                action: bucket_action,
                settings,
                compliance_lock: lock,
            },
            key: key_plan.clone(),
            secrets: SecretsPlan {
                encryption: encryption_action,
                snmp: snmp_action,
            },
            document: DocumentPlan {
                action: doc_action,
                published_revision,
                revision: (doc_action == "publish").then_some(next),
                changes,
            },
        });
        Ok(Found {
            bucket,
            verdict,
            key_plan,
            record,
            projected,
            published,
            published_revision,
            registered,
            token_file,
        })
    }

    async fn plan_key(
        &mut self,
        client: &mut AdminClient,
        bucket: Option<&BucketState>,
        known: Option<&Destination>,
    ) -> Result<KeyPlan, Stop> {
        let name = self.inputs.bucket.clone();
        let mut plan = KeyPlan {
            action: "create",
            name: name.clone(),
            key_id: None,
            capabilities: SOP_CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
            via: "b2_create_key v3 with bucketId (a single-bucket key that v1 sign-in accepts)",
            reason: None,
        };
        let (Some(bucket), Some(dest)) = (bucket, known) else {
            if let Some(bucket) = bucket {
                self.note_unknown_keys(client, bucket, None).await?;
            }
            return Ok(plan);
        };
        self.note_unknown_keys(client, bucket, dest.key.as_ref().map(|k| k.key_id.as_str()))
            .await?;
        let Some(key) = &dest.key else {
            plan.reason = Some("no key is recorded for this destination".to_owned());
            return Ok(plan);
        };
        if dest.bucket_id != bucket.id {
            plan.action = "replace";
            plan.reason = Some(format!(
                "the recorded key {} is restricted to bucket id {}, but the bucket now has id {} \
                 (deleted and made again?)",
                key.key_id, dest.bucket_id, bucket.id
            ));
            return Ok(plan);
        }
        match client
            .prove_scoped_key(&key.key_id, &key.application_key, &bucket.name, &bucket.id)
            .await
        {
            Ok(proof) => {
                plan.action = "keep";
                plan.key_id = Some(key.key_id.clone());
                plan.capabilities.clone_from(&proof.capabilities);
                plan.reason = Some(
                    "signs in on /b2api/v1/ and lists the bucket and its files (checked now)"
                        .to_owned(),
                );
                note_capabilities(&mut self.report.notes, &proof.capabilities, "the kept key");
            }
            Err(e) if matches!(e.status(), Some(400 | 401)) => {
                plan.action = "replace";
                plan.reason = Some(format!(
                    "the recorded key {} no longer works on /b2api/v1/ ({e})",
                    key.key_id
                ));
            }
            Err(e) => return Err(b2("checking the recorded key", &e)),
        }
        Ok(plan)
    }

    /// Notes keys named like the bucket for this bucket that central does not know.
    async fn note_unknown_keys(
        &mut self,
        client: &AdminClient,
        bucket: &BucketState,
        known: Option<&str>,
    ) -> Result<(), Stop> {
        let keys = client
            .list_keys()
            .await
            .map_err(|e| b2("listing the account's keys", &e))?;
        let unknown: Vec<String> = keys
            .into_iter()
            .filter(|k| k.name == bucket.name && k.bucket_id.as_deref() == Some(&bucket.id))
            .filter(|k| Some(k.key_id.as_str()) != known)
            .map(|k| k.key_id)
            .collect();
        if !unknown.is_empty() {
            self.report.notes.push(format!(
                "B2 has {} key(s) named {} for this bucket that central did not make or no longer \
                 uses: {}. They are left alone; delete them once nothing uses them \
                 (e.g. a key typed in by hand before central provisioned the device)",
                unknown.len(),
                bucket.name,
                unknown.join(", ")
            ));
        }
        Ok(())
    }

    /// The record this run ends with (key placeholder when one is to be created).
    fn project(
        &self,
        record: Option<&DeviceSecrets>,
        known: Option<&Destination>,
        bucket: Option<&BucketState>,
        key_plan: &KeyPlan,
        encryption_action: &str,
        snmp_action: &str,
    ) -> DeviceSecrets {
        let inputs = self.inputs;
        let now = self.now;
        let encryption = match (encryption_action, known) {
            ("keep" | "restore" | "import", Some(d)) => clone_encryption(&d.encryption),
            _ => secrets::new_encryption(now),
        };
        let key = match (key_plan.action, known.and_then(|d| d.key.as_ref())) {
            ("keep", Some(k)) => Some(clone_key(k)),
            _ => None,
        };
        let snmp = match (snmp_action, record) {
            ("keep" | "import", Some(r)) => secrets::SnmpSecrets {
                username: r.snmp.username.clone(),
                auth_password: r.snmp.auth_password.clone(),
                privacy_passphrase: r.snmp.privacy_passphrase.clone(),
                created_at: r.snmp.created_at,
            },
            _ => secrets::new_snmp(now),
        };
        let current = Destination {
            org_uuid: inputs.org_uuid,
            location_uuid: inputs.location_uuid,
            location_name: inputs.location_name.clone(),
            bucket: inputs.bucket.clone(),
            bucket_id: bucket.map(|b| b.id.clone()).unwrap_or_default(),
            key,
            encryption,
            since: known.map_or(now, |d| d.since),
            retired_at: None,
        };
        DeviceSecrets {
            schema: secrets::SECRETS_SCHEMA.to_owned(),
            device: inputs.device.clone(),
            provisioned_at: record.map_or(now, |r| r.provisioned_at),
            updated_at: now,
            current,
            snmp,
            previous: Vec::new(),
            replaced_keys: Vec::new(),
        }
    }

    #[allow(clippy::too_many_lines, reason = "the SOP's writes, in order")]
    async fn execute(&mut self, client: &mut AdminClient, found: Found) -> Result<(), Stop> {
        let inputs = self.inputs;
        let Some(plan) = self.report.plan.clone() else {
            return Err(Stop::Central("no plan was made".to_owned()));
        };
        let Found {
            bucket,
            verdict,
            key_plan,
            record,
            mut projected,
            published,
            published_revision,
            registered,
            token_file,
        } = found;

        // 1. Bucket.
        let mut bucket = match bucket {
            Some(b) => b,
            None => self.create_bucket(client).await?,
        };
        if plan.bucket.compliance_lock == "set" {
            bucket = client
                .set_compliance_retention(&bucket.id, bucket::RETENTION_DAYS)
                .await
                .map_err(|e| b2("setting the compliance retention", &e))?;
            self.report.done.push(format!(
                "set default retention compliance, {} days on bucket {} (b2_update_bucket)",
                bucket::RETENTION_DAYS,
                bucket.name
            ));
        }
        if verdict != Some(Verdict::Matches) {
            // Read back and prove every setting.
            let read = client
                .find_bucket(&inputs.bucket)
                .await
                .map_err(|e| b2("reading the bucket back", &e))?
                .ok_or_else(|| Stop::B2("the bucket is not listed after creating it".into()))?;
            let (v, settings) = bucket::compare(&read);
            if v != Verdict::Matches {
                let differs: Vec<String> = settings
                    .iter()
                    .filter(|s| s.status != bucket::SettingStatus::Ok)
                    .map(|s| {
                        format!(
                            "{}: want {}, B2 shows {}",
                            s.setting,
                            s.want,
                            s.have.as_deref().unwrap_or("-")
                        )
                    })
                    .collect();
                return Err(Stop::B2(format!(
                    "bucket {} reads back with settings other than the SOP's: {}",
                    read.name,
                    differs.join("; ")
                )));
            }
            self.report.done.push(format!(
                "read bucket {} back: private, SSE-B2, Object Lock on, compliance {} days, \
                 lifecycle 30 days (every SOP 4.1/4.2 setting proven)",
                read.name,
                bucket::RETENTION_DAYS
            ));
            bucket = read;
        }
        projected.current.bucket_id.clone_from(&bucket.id);
        // DIR is written from here on (a refused bucket creation left it untouched).
        let db = &datastore::open(&self.req.dir, &self.req.database).await?;

        // 2. Register (the record and the document belong to a registered device).
        if !registered {
            if let Some(path) = &token_file {
                register(db, &inputs.device, path).await?;
                self.report.done.push(format!(
                    "registered device {}; its token is in {} (mode 0600): install it on the NAS \
                     as central.token_file and delete this copy",
                    inputs.device,
                    path.display()
                ));
            }
        }

        // 3. The record (with what it keeps of the old one).
        let mut next = projected;
        if let Some(old) = record {
            merge_history(&mut next, old, self.now);
        }

        // 4. Key.
        if key_plan.action == "keep" {
            next.save(db).await?;
        } else {
            let new = client
                .create_bucket_key(&bucket.name, SOP_CAPABILITIES, &bucket.id)
                .await
                .map_err(|e| {
                    if e.is_ambiguous() {
                        Stop::B2(format!(
                            "creating the key: {e}. B2 may have made the key without the answer \
                             reaching us; its secret is lost then. Run provision again: it makes \
                             a new key and lists unknown keys named {} to delete",
                            bucket.name
                        ))
                    } else {
                        b2("creating the scoped key", &e)
                    }
                })?;
            let key_id = new.key_id.clone();
            note_capabilities(&mut self.report.notes, &new.capabilities, "the new key");
            if let Some(old) = next.current.key.take() {
                // A replaced key of the same destination: no longer used by the document.
                next.replaced_keys.push(secrets::ReplacedKey {
                    key_id: old.key_id,
                    bucket: next.current.bucket.clone(),
                    replaced_at: self.now,
                    new_key_revision: published_revision.unwrap_or(0) + 1,
                    deleted_at: None,
                });
            }
            next.current.key = Some(ScopedKey {
                key_id: new.key_id,
                application_key: new.application_key,
                name: bucket.name.clone(),
                capabilities: new.capabilities,
                created_via: "v3".to_owned(),
                created_at: self.now,
            });
            // Persist at once: the secret exists only here.
            next.save(db).await?;
            self.report.done.push(format!(
                "created key {key_id} named {} restricted to bucket {} (b2_create_key v3, bucketId)",
                bucket.name, bucket.id
            ));
            let Some(key) = &next.current.key else {
                return Err(Stop::Central("the new key vanished from the record".into()));
            };
            let proof = client
                .prove_scoped_key(&key.key_id, &key.application_key, &bucket.name, &bucket.id)
                .await
                .map_err(|e| {
                    b2(
                        "proving the new key on /b2api/v1/ (what TrueNAS's rclone uses)",
                        &e,
                    )
                })?;
            if proof.bucket_id.as_deref() != Some(bucket.id.as_str()) {
                return Err(Stop::B2(format!(
                    "the new key signs in on v1 but is not restricted to bucket {}",
                    bucket.id
                )));
            }
            self.report.done.push(format!(
                "proved key {key_id}: signs in on /b2api/v1/, restricted to {}, lists the bucket and its files",
                bucket.name
            ));
        }
        self.report
            .done
            .push("sealed the device's secrets at rest".to_owned());

        // 5. Document.
        let revision = published_revision.unwrap_or(0) + 1;
        let doc = document::compose(published.as_ref(), inputs, &next, revision, self.now);
        let changed = published
            .as_ref()
            .is_none_or(|p| !document::same_content(p, &doc));
        if changed {
            let bytes = secrecy::SecretBox::new(Box::new(
                serde_json::to_vec(&doc).map_err(|e| Stop::Central(e.to_string()))?,
            ));
            if let Err(e) = truenas_agent::desired::parse(bytes.expose_secret()) {
                return Err(Stop::Central(format!(
                    "the composed document fails the agent's validation (a bug): {e}"
                )));
            }
            db.publish(&inputs.device, bytes.expose_secret(), false)
                .await?;
            self.report.done.push(format!(
                "published revision {revision} for device {} (sealed at rest; signed when served)",
                inputs.device
            ));
        }
        Ok(())
    }

    async fn create_bucket(&mut self, client: &AdminClient) -> Result<BucketState, Stop> {
        let name = &self.inputs.bucket;
        match client.create_sop_bucket(name).await {
            Ok(b) => {
                self.report.done.push(format!(
                    "created bucket {name} (id {}): allPrivate, Object Lock on, SSE-B2, lifecycle 30 days",
                    b.id
                ));
                Ok(b)
            }
            Err(e) if e.code() == Some("duplicate_bucket_name") => Err(Stop::Refused(format!(
                "bucket name {name} is taken by another B2 account (duplicate_bucket_name). \
                 Nothing was changed. SOP §7 \"Bucket name conflict\": if another DTC run made it, \
                 it would be in this account; it is not, so investigate — the location UUID is \
                 probably wrong (check NinjaOne's Location UUID field for this device's location)"
            ))),
            Err(e) if e.is_ambiguous() => {
                // The answer was lost: the bucket may exist now. Read, don't retry.
                match client.find_bucket(name).await {
                    Ok(Some(b)) => {
                        self.report
                            .done
                            .push(format!("created bucket {name} (answer lost; found it)"));
                        Ok(b)
                    }
                    _ => Err(b2("creating the bucket", &e)),
                }
            }
            Err(e) => Err(b2("creating the bucket", &e)),
        }
    }
}

/// A record made from a hand-published document (its `b2`, `encryption` and, when
/// complete, `snmp`); `None` without an encryption password and salt. The bool says
/// whether the SNMP credentials came from the document (else they are new).
fn import(
    doc: &Value,
    inputs: &Inputs,
    bucket: Option<&BucketState>,
    now: DateTime<Utc>,
) -> Option<(DeviceSecrets, bool)> {
    let text = |path: &str| doc.pointer(path).and_then(Value::as_str).map(str::to_owned);
    let secret = |path: &str| text(path).filter(|s| !s.is_empty()).map(SecretString::from);
    let location_text = text("/device/location_uuid")?;
    let location_uuid = truenas_agent::desired::derive::parse_uuid(&location_text)?;
    let bucket_name = truenas_agent::desired::derive::bucket_name(&location_text);
    let org_uuid = text("/device/org_uuid")
        .and_then(|o| truenas_agent::desired::derive::parse_uuid(&o))
        .unwrap_or(inputs.org_uuid);
    let encryption = secrets::EncryptionSecrets {
        password: secret("/encryption/password")?,
        salt: secret("/encryption/salt")?,
        created_at: now,
    };
    let key = match (text("/b2/key_id"), secret("/b2/application_key")) {
        (Some(key_id), Some(application_key)) => Some(ScopedKey {
            key_id,
            application_key,
            name: bucket_name.clone(),
            capabilities: Vec::new(),
            created_via: "imported".to_owned(),
            created_at: now,
        }),
        _ => None,
    };
    let snmp = match (
        text("/snmp/username"),
        secret("/snmp/auth_password"),
        secret("/snmp/privacy_passphrase"),
    ) {
        (Some(username), Some(auth_password), Some(privacy_passphrase)) => {
            Some(secrets::SnmpSecrets {
                username,
                auth_password,
                privacy_passphrase,
                created_at: now,
            })
        }
        _ => None,
    };
    let imported_snmp = snmp.is_some();
    let bucket_id = bucket
        .filter(|b| b.name == bucket_name)
        .map(|b| b.id.clone())
        .unwrap_or_default();
    let record = DeviceSecrets {
        schema: secrets::SECRETS_SCHEMA.to_owned(),
        device: inputs.device.clone(),
        provisioned_at: now,
        updated_at: now,
        current: Destination {
            org_uuid,
            location_uuid,
            location_name: text("/device/location_name"),
            bucket: bucket_name,
            bucket_id,
            key,
            encryption,
            since: now,
            retired_at: None,
        },
        snmp: snmp.unwrap_or_else(|| secrets::new_snmp(now)),
        previous: Vec::new(),
        replaced_keys: Vec::new(),
    };
    Some((record, imported_snmp))
}

/// Carries the old record's history into the new one: the old current destination
/// becomes a previous one when the device moved; a restored destination leaves the list.
fn merge_history(next: &mut DeviceSecrets, old: DeviceSecrets, now: DateTime<Utc>) {
    let DeviceSecrets {
        current,
        previous,
        replaced_keys,
        provisioned_at,
        ..
    } = old;
    next.provisioned_at = provisioned_at;
    next.replaced_keys = replaced_keys;
    let mut previous: Vec<Destination> = previous
        .into_iter()
        .filter(|d| d.bucket != next.current.bucket)
        .collect();
    if current.bucket == next.current.bucket {
        // Same destination; a rotated password/salt keeps the old pair readable.
        if current.encryption.password.expose_secret()
            != next.current.encryption.password.expose_secret()
        {
            previous.push(Destination {
                key: None,
                retired_at: Some(now),
                ..current
            });
        }
    } else {
        previous.push(Destination {
            retired_at: Some(now),
            ..current
        });
    }
    next.previous = previous;
}

fn clone_encryption(e: &secrets::EncryptionSecrets) -> secrets::EncryptionSecrets {
    secrets::EncryptionSecrets {
        password: e.password.clone(),
        salt: e.salt.clone(),
        created_at: e.created_at,
    }
}

fn clone_key(k: &ScopedKey) -> ScopedKey {
    ScopedKey {
        key_id: k.key_id.clone(),
        application_key: k.application_key.clone(),
        name: k.name.clone(),
        capabilities: k.capabilities.clone(),
        created_via: k.created_via.clone(),
        created_at: k.created_at,
    }
}

/// Notes when B2 granted other capabilities than the SOP 4.3 list.
pub(crate) fn note_capabilities(notes: &mut Vec<String>, granted: &[String], which: &str) {
    let missing: Vec<&str> = SOP_CAPABILITIES
        .iter()
        .filter(|c| !granted.iter().any(|g| g == *c))
        .copied()
        .collect();
    let extra: Vec<&str> = granted
        .iter()
        .filter(|g| !SOP_CAPABILITIES.contains(&g.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        notes.push(format!(
            "{which} does not carry exactly the SOP 4.3 capabilities: B2 left out [{}], added [{}] \
             (B2 documents that a key restricted to one bucket carries only bucket-level \
             capabilities; writeBuckets/deleteBuckets are not among them)",
            missing.join(", "),
            extra.join(", ")
        ));
    }
}

/// Why the plan must not run, if it must not.
fn refusal(plan: &Plan, inputs: &Inputs, account: &str, confirmed: bool) -> Option<String> {
    let b = &plan.bucket;
    if b.action == "conflict" {
        let differs: Vec<String> = b
            .settings
            .iter()
            .filter(|s| s.status == bucket::SettingStatus::Differs)
            .map(|s| {
                format!(
                    "{}: SOP wants {}, bucket has {}",
                    s.setting,
                    s.want,
                    s.have.as_deref().unwrap_or("-")
                )
            })
            .collect();
        return Some(format!(
            "bucket {} exists in this B2 account with settings other than the SOP's; nothing \
             was changed (a compliance retention is never \"fixed\": it cannot be undone). \
             Differences: {}. Check whether this is the right location UUID; if the bucket is \
             this location's, correct it by hand (B2 web UI / `b2 bucket update`) and run \
             provision again",
            b.name,
            differs.join("; ")
        ));
    }
    if b.compliance_lock == "needs_confirmation" && !confirmed {
        let what = if b.action == "create" {
            format!(
                "create bucket {} in B2 account {account} with Object Lock enabled (Object Lock \
                 can never be turned off) and then",
                b.name
            )
        } else {
            format!(
                "on the existing bucket {} (id {}, B2 account {account}),",
                b.name,
                b.id.clone().unwrap_or_default()
            )
        };
        return Some(format!(
            "stopped before the irreversible step; nothing was changed. This run would {what} set \
             the default retention to COMPLIANCE mode, {} days: every file uploaded to {} from \
             then on cannot be deleted, overwritten or have its retention shortened by anyone — \
             not even with the B2 master key or by Backblaze — until {} days after its upload. \
             Location {} ({}). If that is right, run again with --confirm-compliance-lock",
            bucket::RETENTION_DAYS,
            b.name,
            bucket::RETENTION_DAYS,
            inputs.location_uuid,
            inputs
                .location_name
                .as_deref()
                .unwrap_or("no location name given"),
        ));
    }
    None
}

/// Registers a new device with a fresh token written to `path` (mode 0600), as
/// `truenas-central register --token-out` does.
async fn register(db: &Db, device: &str, path: &Path) -> Result<(), Stop> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = SecretString::from(URL_SAFE_NO_PAD.encode(bytes));
    db.register(device, &token_hash(token.expose_secret()))
        .await?;
    let line = SecretString::from(format!("{}\n", token.expose_secret()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent, 0o700).map_err(|e| Stop::Central(error_chain(&e)))?;
    }
    fs::write_atomic(path, line.expose_secret().as_bytes(), 0o600)
        .map_err(|e| Stop::Central(error_chain(&e)))?;
    Ok(())
}

/// The text view of a report.
#[allow(clippy::too_many_lines, reason = "one block per plan part")]
pub fn render(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}{}",
        report.command,
        report.device,
        if report.dry_run {
            " (dry run: nothing is changed, neither in B2 nor in the data directory)"
        } else {
            ""
        }
    );
    for p in &report.problems {
        let _ = writeln!(out, "  problem {}: {}", p.field, p.rule);
    }
    if let Some(plan) = &report.plan {
        let d = &plan.device;
        let _ = writeln!(
            out,
            "  device    {}{}{}",
            d.action,
            d.token_file
                .as_ref()
                .map(|p| format!(" (token file {})", p.display()))
                .unwrap_or_default(),
            d.moved_from
                .as_ref()
                .map(|b| format!("; moves from bucket {b}"))
                .unwrap_or_default()
        );
        let b = &plan.bucket;
        let _ = writeln!(
            out,
            "  bucket    {}: {}{}",
            b.name,
            b.action,
            b.id.as_ref()
                .map(|i| format!(" (id {i})"))
                .unwrap_or_default()
        );
        for s in &b.settings {
            let status = match s.status {
                bucket::SettingStatus::Ok => "ok",
                bucket::SettingStatus::ToSet => "to set",
                bucket::SettingStatus::Differs => "DIFFERS",
            };
            let _ = writeln!(
                out,
                "              {:<28} want {:<24} have {:<24} {status}",
                s.setting,
                s.want,
                s.have.as_deref().unwrap_or("-"),
            );
        }
        let _ = writeln!(out, "              compliance lock: {}", b.compliance_lock);
        let k = &plan.key;
        let _ = writeln!(
            out,
            "  key       {} {}{} via {}",
            k.action,
            k.name,
            k.key_id
                .as_ref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default(),
            k.via
        );
        let _ = writeln!(
            out,
            "              capabilities: {}",
            k.capabilities.join(",")
        );
        if let Some(reason) = &k.reason {
            let _ = writeln!(out, "              {reason}");
        }
        let s = &plan.secrets;
        let _ = writeln!(
            out,
            "  secrets   encryption password/salt: {}; SNMPv3 credentials: {}",
            s.encryption, s.snmp
        );
        let doc = &plan.document;
        let _ = writeln!(
            out,
            "  document  {}{}{}",
            doc.action,
            doc.revision
                .map(|r| format!(
                    " revision {r} (published: {})",
                    doc.published_revision
                        .map_or_else(|| "none".to_owned(), |p| p.to_string())
                ))
                .unwrap_or_default(),
            if doc.changes.is_empty() {
                String::new()
            } else {
                format!("; changes {}", doc.changes.join(", "))
            }
        );
    }
    for step in &report.done {
        let _ = writeln!(out, "  done: {step}");
    }
    for note in &report.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    let word = match report.outcome {
        Outcome::Done if report.dry_run => "plan ok (run without --dry-run to carry it out)",
        Outcome::Done => "done",
        Outcome::NothingToDo => "nothing to do: everything is as asked",
        Outcome::BadInput => "bad input",
        Outcome::Refused => "refused",
        Outcome::B2Error => "B2 error",
        Outcome::CentralError => "central data directory error",
        Outcome::Pending => "pending",
    };
    let _ = writeln!(
        out,
        "result: {word}{} (exit {})",
        report
            .reason
            .as_ref()
            .filter(|_| report.outcome != Outcome::BadInput)
            .map(|r| format!(" — {r}"))
            .unwrap_or_default(),
        report.exit_code
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_notes_name_the_difference() {
        let mut notes = Vec::new();
        let all: Vec<String> = SOP_CAPABILITIES.iter().map(|c| (*c).to_owned()).collect();
        note_capabilities(&mut notes, &all, "the key");
        assert!(notes.is_empty());
        let fewer: Vec<String> = all
            .iter()
            .filter(|c| !matches!(c.as_str(), "writeBuckets" | "deleteBuckets"))
            .cloned()
            .chain(["shareFiles".to_owned()])
            .collect();
        note_capabilities(&mut notes, &fewer, "the key");
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("left out [writeBuckets, deleteBuckets], added [shareFiles]"),
            "{}",
            notes[0]
        );
    }

    #[test]
    fn exit_codes_are_distinct() {
        let all = [
            Outcome::Done,
            Outcome::BadInput,
            Outcome::Refused,
            Outcome::B2Error,
            Outcome::CentralError,
            Outcome::Pending,
        ];
        let codes: std::collections::BTreeSet<u8> = all.iter().map(|o| o.exit_code()).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(Outcome::NothingToDo.exit_code(), 0);
    }
}

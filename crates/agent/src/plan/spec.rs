//! The desired middleware objects (specs) and the field-by-field comparison with what
//! the NAS has.
//!
//! Owns: one spec per managed object, built from the `DesiredState` and the inputs,
//! and the comparison rules: exclude lists as sets, cron fields normalised, B2
//! attribute defaults filled (by `observe`), secrets compared by value when the
//! middleware shows them and by keyed fingerprint when it redacts them.
//! Does not: decide ownership or order (see `plan`), or build request params (`apply`).
//! Invariants: a spec compared with an object that was written from it yields no
//! change; a [`FieldChange`] never carries a secret (`(changed)` stands for it).
//! Limitations: a redacted secret that has no recorded fingerprint compares as
//! unknown; drift of a redacted secret made in the UI is invisible.

use std::collections::BTreeSet;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::desired::{BwLimit, Cron, HhMm, LifetimeUnit};
use crate::observe::{CloudSyncTask, Credential, SecretView, SnapshotTask, Snmp};
use crate::state_dir::Fingerprint;

/// Fixed values the SOP prescribes (§5.2) that the document cannot override.
pub(crate) mod sop {
    pub(crate) const PROVIDER: &str = "B2";
    pub(crate) const DIRECTION: &str = "PUSH";
    pub(crate) const TRANSFER_MODE: &str = "SYNC";
    pub(crate) const SNMP_AUTHTYPE: &str = "SHA";
    pub(crate) const SNMP_PRIVPROTO: &str = "AES";
}

/// One field that differs: shown values only, secrets as `(changed)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// Middleware field, dotted for nested ones (`attributes.folder`).
    pub field: String,
    pub from: String,
    pub to: String,
}

impl FieldChange {
    /// The top-level middleware key an update must send (complete) for this change.
    pub fn key(&self) -> &str {
        self.field.split('.').next().unwrap_or(&self.field)
    }
}

/// Which credential a task must point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialRef {
    /// An existing credential the agent owns.
    Existing(u64),
    /// The credential created earlier in the same plan.
    Planned,
}

/// The B2 credential (SOP 5.1): named after the bucket.
#[derive(Debug, Clone)]
pub struct CredentialSpec {
    pub name: String,
    pub key_id: String,
    pub application_key: SecretString,
    pub key_fingerprint: Fingerprint,
}

/// One pool's Cloud Sync task (SOP 5.2, every row).
#[derive(Debug, Clone)]
pub struct CloudSyncSpec {
    pub pool: String,
    pub description: String,
    pub path: String,
    pub credential: CredentialRef,
    pub bucket: String,
    pub folder: String,
    pub chunk_size: u64,
    pub fast_list: bool,
    pub schedule: Cron,
    pub enabled: bool,
    pub snapshot: bool,
    pub exclude: Vec<String>,
    pub bwlimit: Vec<BwLimit>,
    pub transfers: Option<u64>,
    pub filename_encryption: bool,
    pub follow_symlinks: bool,
    pub encryption_password: SecretString,
    pub encryption_salt: SecretString,
    pub password_fingerprint: Fingerprint,
    pub salt_fingerprint: Fingerprint,
}

/// One pool's periodic snapshot task (SOP 6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSpec {
    pub pool: String,
    pub dataset: String,
    pub recursive: bool,
    pub exclude: Vec<String>,
    pub lifetime_value: u64,
    pub lifetime_unit: LifetimeUnit,
    pub naming_schema: String,
    pub schedule: Cron,
    pub begin: HhMm,
    pub end: HhMm,
    pub allow_empty: bool,
    pub enabled: bool,
}

/// SNMPv3-only configuration (SOP 1.2).
#[derive(Debug, Clone)]
pub struct SnmpSpec {
    pub username: String,
    pub auth_password: SecretString,
    pub privacy_passphrase: SecretString,
    pub auth_fingerprint: Option<Fingerprint>,
    pub privacy_fingerprint: Option<Fingerprint>,
}

/// How a desired secret compares with what the middleware shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretMatch {
    Same,
    Differs,
    /// Redacted by the middleware and no fingerprint was recorded.
    Unknown,
}

/// Compares a desired secret with the observed one (by value) or, when the middleware
/// redacts it, with the fingerprint recorded when the agent last wrote it.
pub(crate) fn compare_secret(
    desired: &SecretString,
    desired_fp: Option<&Fingerprint>,
    observed: &SecretView,
    recorded: Option<&Fingerprint>,
) -> SecretMatch {
    match observed {
        SecretView::Value(v) if v.expose_secret() == desired.expose_secret() => SecretMatch::Same,
        SecretView::Value(_) | SecretView::Empty => SecretMatch::Differs,
        SecretView::Redacted => match (recorded, desired_fp) {
            (Some(r), Some(d)) if r == d => SecretMatch::Same,
            (Some(_), Some(_)) => SecretMatch::Differs,
            _ => SecretMatch::Unknown,
        },
    }
}

/// Accumulates field changes.
#[derive(Debug, Default)]
pub(crate) struct Diff(pub Vec<FieldChange>);

impl Diff {
    fn push(&mut self, field: &str, from: String, to: String) {
        self.0.push(FieldChange {
            field: field.to_owned(),
            from,
            to,
        });
    }

    /// Records a change when `observed != desired`, showing both as JSON.
    pub(crate) fn value<T: PartialEq + Serialize + ?Sized>(
        &mut self,
        field: &str,
        observed: &T,
        desired: &T,
    ) {
        if observed != desired {
            self.push(field, shown(observed), shown(desired));
        }
    }

    /// Records a change when the shown forms differ.
    pub(crate) fn shown(&mut self, field: &str, observed: String, desired: String) {
        if observed != desired {
            self.push(field, observed, desired);
        }
    }

    /// Records a secret change (never showing values) unless it is the same.
    pub(crate) fn secret(&mut self, field: &str, m: SecretMatch, observed: &SecretView) {
        match m {
            SecretMatch::Same => {}
            SecretMatch::Differs | SecretMatch::Unknown => {
                self.push(field, observed.shown().to_owned(), "(changed)".to_owned());
            }
        }
    }
}

/// A value as JSON text (`"AES"`, `null`, `["/x"]`), as a technician sees it in the API.
fn shown<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "(unprintable)".to_owned())
}

fn as_set(items: &[String]) -> BTreeSet<&str> {
    items.iter().map(String::as_str).collect()
}

/// Shows a `bwlimit` list like rclone's timetable, in bytes per second.
pub(crate) fn show_bwlimit(table: &[BwLimit]) -> String {
    if table.is_empty() {
        return "(unlimited)".to_owned();
    }
    table
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn show_script(script: &str) -> String {
    if script.is_empty() {
        "(empty)"
    } else {
        "(a script)"
    }
    .to_owned()
}

/// Field changes that take a credential from `observed` to `spec`.
pub(crate) fn diff_credential(
    observed: &Credential,
    spec: &CredentialSpec,
    recorded_key: Option<&Fingerprint>,
) -> Vec<FieldChange> {
    let mut d = Diff::default();
    d.value("name", observed.name.as_str(), spec.name.as_str());
    d.value("provider", observed.provider.as_str(), sop::PROVIDER);
    d.value(
        "provider.account",
        &observed.account.as_deref(),
        &Some(spec.key_id.as_str()),
    );
    let key = compare_secret(
        &spec.application_key,
        Some(&spec.key_fingerprint),
        &observed.key,
        recorded_key,
    );
    d.secret("provider.key", key, &observed.key);
    d.0
}

/// The outcome of comparing the encryption secrets of a Cloud Sync task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EncryptionSecrets {
    pub password: SecretMatch,
    pub salt: SecretMatch,
}

impl EncryptionSecrets {
    /// True when writing the spec would change (or might change) password or salt.
    pub(crate) fn rekeys(self) -> bool {
        self.password != SecretMatch::Same || self.salt != SecretMatch::Same
    }

    /// True when at least one of them is known to differ.
    pub(crate) fn known_to_differ(self) -> bool {
        self.password == SecretMatch::Differs || self.salt == SecretMatch::Differs
    }
}

/// Compares a task's encryption password/salt with the spec.
pub(crate) fn encryption_secrets(
    observed: &CloudSyncTask,
    spec: &CloudSyncSpec,
    recorded: &std::collections::BTreeMap<String, Fingerprint>,
) -> EncryptionSecrets {
    EncryptionSecrets {
        password: compare_secret(
            &spec.encryption_password,
            Some(&spec.password_fingerprint),
            &observed.encryption_password,
            recorded.get("encryption_password"),
        ),
        salt: compare_secret(
            &spec.encryption_salt,
            Some(&spec.salt_fingerprint),
            &observed.encryption_salt,
            recorded.get("encryption_salt"),
        ),
    }
}

/// Field changes that take a Cloud Sync task from `observed` to `spec`, except the
/// encryption secrets (see [`encryption_secrets`]).
pub(crate) fn diff_cloud_sync(observed: &CloudSyncTask, spec: &CloudSyncSpec) -> Vec<FieldChange> {
    let o = observed;
    let mut d = Diff::default();
    d.value(
        "description",
        o.description.as_str(),
        spec.description.as_str(),
    );
    d.value("path", o.path.as_str(), spec.path.as_str());
    match spec.credential {
        CredentialRef::Existing(id) => d.value("credentials", &o.credential_id, &Some(id)),
        CredentialRef::Planned => d.shown(
            "credentials",
            shown(&o.credential_id),
            "(the new credential)".to_owned(),
        ),
    }
    d.value("direction", o.direction.as_str(), sop::DIRECTION);
    d.value(
        "transfer_mode",
        o.transfer_mode.as_str(),
        sop::TRANSFER_MODE,
    );
    let a = &o.attributes;
    d.value("attributes.bucket", a.bucket.as_str(), spec.bucket.as_str());
    d.value("attributes.folder", a.folder.as_str(), spec.folder.as_str());
    d.value("attributes.chunk_size", &a.chunk_size, &spec.chunk_size);
    d.value("attributes.fast_list", &a.fast_list, &spec.fast_list);
    if !a.other_keys.is_empty() {
        d.shown(
            "attributes",
            format!("extra keys {}", shown(&a.other_keys)),
            "(B2 keys only)".to_owned(),
        );
    }
    d.shown(
        "schedule",
        o.schedule.to_string(),
        spec.schedule.to_string(),
    );
    d.value("enabled", &o.enabled, &spec.enabled);
    d.value("snapshot", &o.snapshot, &spec.snapshot);
    d.shown("pre_script", show_script(&o.pre_script), show_script(""));
    d.shown("post_script", show_script(&o.post_script), show_script(""));
    d.value("include", &o.include, &Vec::new());
    if as_set(&o.exclude) != as_set(&spec.exclude) {
        d.shown("exclude", shown(&o.exclude), shown(&spec.exclude));
    }
    d.value("args", o.args.as_str(), "");
    if o.bwlimit_unreadable || o.bwlimit != spec.bwlimit {
        d.shown(
            "bwlimit",
            show_bwlimit(&o.bwlimit),
            show_bwlimit(&spec.bwlimit),
        );
    }
    d.value("transfers", &o.transfers, &spec.transfers);
    d.value("encryption", &o.encryption, &true);
    d.value(
        "filename_encryption",
        &o.filename_encryption,
        &spec.filename_encryption,
    );
    d.value("create_empty_src_dirs", &o.create_empty_src_dirs, &false);
    d.value("follow_symlinks", &o.follow_symlinks, &spec.follow_symlinks);
    d.0
}

/// Secret field changes for a task's encryption, given the comparison.
pub(crate) fn encryption_changes(
    observed: &CloudSyncTask,
    m: EncryptionSecrets,
) -> Vec<FieldChange> {
    let mut d = Diff::default();
    d.secret(
        "encryption_password",
        m.password,
        &observed.encryption_password,
    );
    d.secret("encryption_salt", m.salt, &observed.encryption_salt);
    d.0
}

/// Shows a snapshot schedule with its window: `0 * * * * (00:00-23:59)`.
pub(crate) fn show_snapshot_schedule(
    cron: &Cron,
    begin: Option<HhMm>,
    end: Option<HhMm>,
) -> String {
    let t = |x: Option<HhMm>| x.map_or_else(|| "?".to_owned(), |t| t.to_string());
    format!("{cron} ({}-{})", t(begin), t(end))
}

/// Field changes that take a snapshot task from `observed` to `spec`.
pub(crate) fn diff_snapshot(observed: &SnapshotTask, spec: &SnapshotSpec) -> Vec<FieldChange> {
    let o = observed;
    let mut d = Diff::default();
    d.value("dataset", o.dataset.as_str(), spec.dataset.as_str());
    d.value("recursive", &o.recursive, &spec.recursive);
    if as_set(&o.exclude) != as_set(&spec.exclude) {
        d.shown("exclude", shown(&o.exclude), shown(&spec.exclude));
    }
    d.value("lifetime_value", &o.lifetime_value, &spec.lifetime_value);
    d.value(
        "lifetime_unit",
        o.lifetime_unit.as_str(),
        spec.lifetime_unit.as_str(),
    );
    d.value(
        "naming_schema",
        o.naming_schema.as_str(),
        spec.naming_schema.as_str(),
    );
    d.shown(
        "schedule",
        show_snapshot_schedule(&o.schedule, o.begin, o.end),
        show_snapshot_schedule(&spec.schedule, Some(spec.begin), Some(spec.end)),
    );
    d.value("allow_empty", &o.allow_empty, &spec.allow_empty);
    d.value("enabled", &o.enabled, &spec.enabled);
    d.0
}

/// Field changes that make SNMP v3-only with the spec's credentials.
pub(crate) fn diff_snmp(
    observed: &Snmp,
    spec: &SnmpSpec,
    recorded: &std::collections::BTreeMap<String, Fingerprint>,
) -> Vec<FieldChange> {
    let o = observed;
    let mut d = Diff::default();
    d.value("v3", &o.v3, &true);
    d.value("community", o.community.as_str(), "");
    d.value(
        "v3_username",
        o.v3_username.as_str(),
        spec.username.as_str(),
    );
    d.value("v3_authtype", o.v3_authtype.as_str(), sop::SNMP_AUTHTYPE);
    let auth = compare_secret(
        &spec.auth_password,
        spec.auth_fingerprint.as_ref(),
        &o.v3_password,
        recorded.get("v3_password"),
    );
    d.secret("v3_password", auth, &o.v3_password);
    d.value(
        "v3_privproto",
        &o.v3_privproto.as_deref(),
        &Some(sop::SNMP_PRIVPROTO),
    );
    let privacy = compare_secret(
        &spec.privacy_passphrase,
        spec.privacy_fingerprint.as_ref(),
        &o.v3_privpassphrase,
        recorded.get("v3_privpassphrase"),
    );
    d.secret("v3_privpassphrase", privacy, &o.v3_privpassphrase);
    d.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_dir::fingerprint_with_key;

    fn fp(s: &str) -> Fingerprint {
        fingerprint_with_key(b"k", &SecretString::from(s))
    }

    #[test]
    fn secrets_compare_by_value_or_fingerprint() {
        let want = SecretString::from("s3cret");
        let want_fp = fp("s3cret");
        let clear_same = SecretView::Value(SecretString::from("s3cret"));
        let clear_other = SecretView::Value(SecretString::from("other"));
        assert_eq!(
            compare_secret(&want, Some(&want_fp), &clear_same, None),
            SecretMatch::Same
        );
        assert_eq!(
            compare_secret(&want, Some(&want_fp), &clear_other, Some(&want_fp)),
            SecretMatch::Differs,
            "a visible value wins over the record (UI drift is detected)"
        );
        assert_eq!(
            compare_secret(&want, Some(&want_fp), &SecretView::Empty, None),
            SecretMatch::Differs
        );
        assert_eq!(
            compare_secret(&want, Some(&want_fp), &SecretView::Redacted, Some(&want_fp)),
            SecretMatch::Same
        );
        assert_eq!(
            compare_secret(
                &want,
                Some(&want_fp),
                &SecretView::Redacted,
                Some(&fp("old"))
            ),
            SecretMatch::Differs
        );
        assert_eq!(
            compare_secret(&want, Some(&want_fp), &SecretView::Redacted, None),
            SecretMatch::Unknown
        );
    }

    #[test]
    fn secret_changes_never_show_values() {
        let mut d = Diff::default();
        d.secret(
            "provider.key",
            SecretMatch::Differs,
            &SecretView::Value(SecretString::from("CANARY-OLD")),
        );
        let shown = format!("{:?}", d.0);
        assert!(!shown.contains("CANARY"));
        assert_eq!(d.0[0].to, "(changed)");
        assert_eq!(d.0[0].key(), "provider");
    }
}

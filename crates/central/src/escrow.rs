//! `escrow`: the records the SOP files in the client's IT Glue vault, from central's
//! sealed secrets.
//!
//! Owns: the SOP 4.5 record "TrueNAS Cloud Backup — {Location Name}" (bucket name, B2
//! key ID, B2 application key, encryption password, encryption salt, device GUID once
//! the device reported it, notes: hostname, provisioning date), the SOP 1.1 record
//! "TrueNAS — NMS Credentials" (SNMPv3 username, auth password, privacy passphrase), and
//! the password/salt of every destination the device used before (their data in B2 is
//! readable only with them). Text and JSON views.
//! Reads the sealed record and the newest report from the database.
//! Does not: log anything, or show a secret unless the caller passes `show_secrets`
//! (`--show-secrets`): otherwise every secret field says how to show it.
//! Invariants: secret values reach only the returned view, never a log or an error.
//! Limitations: the TrueNAS management IP (SOP 4.5 notes) is not known to central.

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;

use super::db::{Db, DbError};
use super::secrets::DeviceSecrets;

/// Shown instead of a secret without `--show-secrets`.
pub const HIDDEN: &str = "(hidden: add --show-secrets to show it)";

/// SOP 4.5 record.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRecord {
    pub label: String,
    pub bucket_name: String,
    pub b2_key_id: Option<String>,
    pub b2_application_key: Option<String>,
    pub encryption_password: String,
    pub encryption_salt: String,
    /// From the device's newest report (`None`: not reported yet).
    pub device_guid: Option<String>,
    pub notes: Notes,
}

/// SOP 4.5 "Notes".
#[derive(Debug, Clone, Serialize)]
pub struct Notes {
    pub hostname: Option<String>,
    pub management_ip: Option<String>,
    pub provisioning_date: String,
    pub org_uuid: String,
    pub location_uuid: String,
}

/// SOP 1.1 record.
#[derive(Debug, Clone, Serialize)]
pub struct NmsRecord {
    pub label: String,
    pub hostname: Option<String>,
    pub snmp_username: String,
    pub auth_password: String,
    pub privacy_passphrase: String,
}

/// A destination used before.
#[derive(Debug, Clone, Serialize)]
pub struct PreviousRecord {
    pub label: String,
    pub bucket_name: String,
    pub location_uuid: String,
    pub encryption_password: String,
    pub encryption_salt: String,
    pub b2_key_id: Option<String>,
    pub retired_at: Option<String>,
}

/// Everything `escrow` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Escrow {
    pub schema: &'static str,
    pub device: String,
    pub secrets_shown: bool,
    pub backup: BackupRecord,
    pub nms: NmsRecord,
    pub previous_destinations: Vec<PreviousRecord>,
}

fn date(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The device's escrow view, `None` when central never provisioned it.
pub async fn escrow(db: &Db, device: &str, show: bool) -> Result<Option<Escrow>, DbError> {
    let Some(record) = DeviceSecrets::load(db, device).await? else {
        return Ok(None);
    };
    let latest = db.latest_report(device).await?;
    let guid = latest.as_ref().and_then(|l| l.report.device.guid.clone());
    let hostname = latest
        .as_ref()
        .and_then(|l| l.report.device.hostname.clone());
    let secret = |s: &SecretString| {
        if show {
            s.expose_secret().to_owned()
        } else {
            HIDDEN.to_owned()
        }
    };
    let DeviceSecrets {
        current,
        snmp,
        previous,
        provisioned_at,
        ..
    } = &record;
    let place = |name: &Option<String>, uuid: &uuid::Uuid| {
        name.clone().unwrap_or_else(|| format!("location {uuid}"))
    };
    Ok(Some(Escrow {
        schema: "truenas-central.escrow/v1",
        device: device.to_owned(),
        secrets_shown: show,
        backup: BackupRecord {
            label: format!(
                "TrueNAS Cloud Backup — {}",
                place(&current.location_name, &current.location_uuid)
            ),
            bucket_name: current.bucket.clone(),
            b2_key_id: current.key.as_ref().map(|k| k.key_id.clone()),
            b2_application_key: current.key.as_ref().map(|k| secret(&k.application_key)),
            encryption_password: secret(&current.encryption.password),
            encryption_salt: secret(&current.encryption.salt),
            device_guid: guid,
            notes: Notes {
                hostname: hostname.clone(),
                management_ip: None,
                provisioning_date: date(provisioned_at),
                org_uuid: current.org_uuid.to_string(),
                location_uuid: current.location_uuid.to_string(),
            },
        },
        nms: NmsRecord {
            label: "TrueNAS — NMS Credentials".to_owned(),
            hostname,
            snmp_username: snmp.username.clone(),
            auth_password: secret(&snmp.auth_password),
            privacy_passphrase: secret(&snmp.privacy_passphrase),
        },
        previous_destinations: previous
            .iter()
            .map(|d| PreviousRecord {
                label: format!(
                    "TrueNAS Cloud Backup — {} (previous)",
                    place(&d.location_name, &d.location_uuid)
                ),
                bucket_name: d.bucket.clone(),
                location_uuid: d.location_uuid.to_string(),
                encryption_password: secret(&d.encryption.password),
                encryption_salt: secret(&d.encryption.salt),
                b2_key_id: d.key.as_ref().map(|k| k.key_id.clone()),
                retired_at: d.retired_at.as_ref().map(date),
            })
            .collect(),
    }))
}

/// The text view.
pub fn render(e: &Escrow) -> String {
    use std::fmt::Write as _;
    let opt = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.to_owned());
    let mut out = String::new();
    if e.secrets_shown {
        let _ = writeln!(
            out,
            "SECRETS BELOW: file them in the client's IT Glue record, then clear this terminal"
        );
    }
    let b = &e.backup;
    let _ = writeln!(out, "{}  (SOP 4.5)", b.label);
    let _ = writeln!(out, "  Bucket Name:          {}", b.bucket_name);
    let _ = writeln!(
        out,
        "  B2 Key ID:            {}",
        opt(&b.b2_key_id, "(none)")
    );
    let _ = writeln!(
        out,
        "  B2 Application Key:   {}",
        opt(&b.b2_application_key, "(none)")
    );
    let _ = writeln!(out, "  Encryption Password:  {}", b.encryption_password);
    let _ = writeln!(out, "  Encryption Salt:      {}", b.encryption_salt);
    let _ = writeln!(
        out,
        "  Device GUID:          {}",
        opt(&b.device_guid, "(not reported by the device yet)")
    );
    let _ = writeln!(
        out,
        "  Notes:                hostname {}; management IP {}; provisioned {}; org {}; location {}",
        opt(&b.notes.hostname, "(not reported yet)"),
        opt(&b.notes.management_ip, "(not known to central)"),
        b.notes.provisioning_date,
        b.notes.org_uuid,
        b.notes.location_uuid
    );
    let n = &e.nms;
    let _ = writeln!(out, "{}  (SOP 1.1)", n.label);
    let _ = writeln!(
        out,
        "  Hostname:             {}",
        opt(&n.hostname, "(not reported yet)")
    );
    let _ = writeln!(out, "  SNMPv3 Username:      {}", n.snmp_username);
    let _ = writeln!(out, "  Auth Password (SHA):  {}", n.auth_password);
    let _ = writeln!(out, "  Privacy Passphrase:   {}", n.privacy_passphrase);
    for p in &e.previous_destinations {
        let _ = writeln!(out, "{}", p.label);
        let _ = writeln!(out, "  Bucket Name:          {}", p.bucket_name);
        let _ = writeln!(out, "  Encryption Password:  {}", p.encryption_password);
        let _ = writeln!(out, "  Encryption Salt:      {}", p.encryption_salt);
        let _ = writeln!(
            out,
            "  B2 Key ID:            {}",
            opt(&p.b2_key_id, "(deleted or not kept)")
        );
        let _ = writeln!(out, "  Left:                 {}", opt(&p.retired_at, "-"));
    }
    out
}

//! A device's provisioning secrets on central, and how new ones are made.
//!
//! Owns: [`DeviceSecrets`] — the current destination (bucket, its scoped B2 key, the
//! Cloud Sync encryption password and salt), the SNMPv3 credentials, the destinations the
//! device used before (a moved device: their data stays readable only with their own
//! password and salt, so those are kept), keys replaced by `rotate-key` — its sealed
//! storage (the database's `credentials` row, with the B2 key id and non-secret facts
//! beside it: [`DeviceSecrets::facts`]), and the generators (OS CSPRNG only):
//! encryption password and salt = base64 of 32 random bytes (the SOP's
//! `openssl rand -base64 32`), SNMPv3 username = 12 ASCII letters, auth password and
//! privacy passphrase = 24 printable ASCII characters without `"`, `\`, space or control
//! characters (TrueNAS writes them unescaped into snmpd's configuration).
//! Does not: talk to B2 (`b2admin`) or decide when secrets change (`provision`).
//! Invariants: every secret is a `SecretString` in memory and leaves it only into the
//! sealed file, the published document or an explicit `escrow --show-secrets`; `Debug`
//! never shows one; the generators draw from `OsRng` with unbiased sampling.
//! Limitations: one record per device; history grows by one entry per move or rotation
//! (small).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rand::Rng as _;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, ExposeSecretMut as _, SecretBox, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use super::db::{Db, DbError};

/// Format tag of the sealed record.
pub const SECRETS_SCHEMA: &str = "truenas-central.device-secrets/v1";

/// Characters of generated SNMP secrets: printable ASCII (33–126) except `"` and `\`.
pub fn snmp_secret_alphabet() -> Vec<char> {
    (33u8..=126)
        .filter(|b| *b != b'"' && *b != b'\\')
        .map(char::from)
        .collect()
}

fn expose<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

/// A scoped B2 application key (SOP 4.3).
#[derive(Debug, Serialize, Deserialize)]
pub struct ScopedKey {
    pub key_id: String,
    #[serde(serialize_with = "expose")]
    pub application_key: SecretString,
    /// Key name (= the bucket name).
    pub name: String,
    /// The capabilities B2 reported for the new key.
    pub capabilities: Vec<String>,
    /// The API version it was created through (`v3`: a single-bucket key v1 accepts).
    pub created_via: String,
    pub created_at: DateTime<Utc>,
}

/// Cloud Sync remote-encryption secrets (SOP 4.4).
#[derive(Debug, Serialize, Deserialize)]
pub struct EncryptionSecrets {
    #[serde(serialize_with = "expose")]
    pub password: SecretString,
    #[serde(serialize_with = "expose")]
    pub salt: SecretString,
    pub created_at: DateTime<Utc>,
}

/// SNMPv3 credentials (SOP 1.1).
#[derive(Debug, Serialize, Deserialize)]
pub struct SnmpSecrets {
    pub username: String,
    #[serde(serialize_with = "expose")]
    pub auth_password: SecretString,
    #[serde(serialize_with = "expose")]
    pub privacy_passphrase: SecretString,
    pub created_at: DateTime<Utc>,
}

/// Where the device's backups go: one location's bucket, its key, its encryption.
#[derive(Debug, Serialize, Deserialize)]
pub struct Destination {
    pub org_uuid: uuid::Uuid,
    pub location_uuid: uuid::Uuid,
    pub location_name: Option<String>,
    pub bucket: String,
    pub bucket_id: String,
    /// `None` once retired and its key deleted.
    pub key: Option<ScopedKey>,
    pub encryption: EncryptionSecrets,
    pub since: DateTime<Utc>,
    /// When the device moved away from it (for a previous destination).
    #[serde(default)]
    pub retired_at: Option<DateTime<Utc>>,
}

/// A key `rotate-key` replaced, and what became of it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplacedKey {
    pub key_id: String,
    pub bucket: String,
    pub replaced_at: DateTime<Utc>,
    /// Revision of the document that carried the new key.
    pub new_key_revision: u64,
    /// Set once B2 deleted it.
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Everything central keeps secret about one device.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceSecrets {
    pub schema: String,
    pub device: String,
    pub provisioned_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub current: Destination,
    pub snmp: SnmpSecrets,
    /// Earlier destinations (moves), oldest first. Their data needs their password/salt.
    #[serde(default)]
    pub previous: Vec<Destination>,
    /// Keys replaced by `rotate-key`, oldest first.
    #[serde(default)]
    pub replaced_keys: Vec<ReplacedKey>,
}

impl DeviceSecrets {
    /// Reads the device's sealed record, `None` when it was never provisioned.
    pub async fn load(db: &Db, device: &str) -> Result<Option<Self>, DbError> {
        let Some(credentials) = db.credentials(device).await? else {
            return Ok(None);
        };
        let plain = SecretBox::new(Box::new(credentials.bytes));
        Self::from_record(plain.expose_secret(), device).map(Some)
    }

    /// Parses a record as [`DeviceSecrets::save`] stores it.
    pub fn from_record(bytes: &[u8], device: &str) -> Result<Self, DbError> {
        serde_json::from_slice(bytes).map_err(|source| DbError::Corrupt {
            what: format!("the provisioning secrets of `{device}`"),
            source,
        })
    }

    /// Seals and stores the record (replacing the device's previous one).
    pub async fn save(&self, db: &Db) -> Result<(), DbError> {
        #[allow(
            clippy::expect_used,
            reason = "invariant: plain data always serialises"
        )]
        let plain = SecretBox::new(Box::new(
            serde_json::to_vec(self).expect("invariant: serialises"),
        ));
        let (key_id, facts) = self.facts();
        db.set_credentials(
            &self.device,
            plain.expose_secret(),
            key_id.as_deref(),
            &facts,
        )
        .await
    }

    /// What the database keeps in clear beside the sealed record: the current B2 key id,
    /// and non-secret facts (which bucket, which keys, when each secret was made) — never
    /// a secret, nor a hash of one.
    pub fn facts(&self) -> (Option<String>, serde_json::Value) {
        let key_id = self.current.key.as_ref().map(|k| k.key_id.clone());
        let facts = serde_json::json!({
            "schema": SECRETS_SCHEMA,
            "bucket": self.current.bucket,
            "b2_key_id": key_id,
            "b2_key_created_at": self.current.key.as_ref().map(|k| k.created_at),
            "encryption_created_at": self.current.encryption.created_at,
            "snmp_created_at": self.snmp.created_at,
            "previous_buckets": self.previous.iter().map(|d| d.bucket.as_str()).collect::<Vec<_>>(),
            "keys_awaiting_deletion": self
                .replaced_keys
                .iter()
                .filter(|k| k.deleted_at.is_none())
                .map(|k| k.key_id.as_str())
                .collect::<Vec<_>>(),
            "updated_at": self.updated_at,
        });
        (key_id, facts)
    }

    /// Every secret value in the record, for scrubbing texts and canary checks.
    pub fn all_secrets(&self) -> Vec<&SecretString> {
        let mut all = Vec::new();
        for d in std::iter::once(&self.current).chain(&self.previous) {
            if let Some(k) = &d.key {
                all.push(&k.application_key);
            }
            all.push(&d.encryption.password);
            all.push(&d.encryption.salt);
        }
        all.push(&self.snmp.auth_password);
        all.push(&self.snmp.privacy_passphrase);
        all
    }
}

/// Base64 of 32 bytes from the OS CSPRNG (`openssl rand -base64 32`).
pub fn random_base64_32() -> SecretString {
    let mut bytes = SecretBox::new(Box::new([0u8; 32]));
    rand::rngs::OsRng.fill_bytes(bytes.expose_secret_mut());
    SecretString::from(STANDARD.encode(bytes.expose_secret()))
}

/// New encryption password and salt.
pub fn new_encryption(now: DateTime<Utc>) -> EncryptionSecrets {
    EncryptionSecrets {
        password: random_base64_32(),
        salt: random_base64_32(),
        created_at: now,
    }
}

fn random_from(alphabet: &[char], len: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
        .collect()
}

/// New SNMPv3 credentials.
pub fn new_snmp(now: DateTime<Utc>) -> SnmpSecrets {
    let letters: Vec<char> = ('A'..='Z').chain('a'..='z').collect();
    let alphabet = snmp_secret_alphabet();
    SnmpSecrets {
        username: random_from(&letters, 12),
        auth_password: SecretString::from(random_from(&alphabet, 24)),
        privacy_passphrase: SecretString::from(random_from(&alphabet, 24)),
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_follow_the_rules() {
        let now = Utc::now();
        for _ in 0..200 {
            let snmp = new_snmp(now);
            assert_eq!(snmp.username.len(), 12);
            assert!(snmp.username.chars().all(|c| c.is_ascii_alphabetic()));
            for s in [&snmp.auth_password, &snmp.privacy_passphrase] {
                let s = s.expose_secret();
                assert_eq!(s.chars().count(), 24);
                assert!(
                    s.chars()
                        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\'),
                    "{s}"
                );
            }
            let enc = new_encryption(now);
            for s in [&enc.password, &enc.salt] {
                let bytes = STANDARD.decode(s.expose_secret()).unwrap();
                assert_eq!(bytes.len(), 32);
            }
            assert_ne!(enc.password.expose_secret(), enc.salt.expose_secret());
        }
        let alphabet = snmp_secret_alphabet();
        assert_eq!(alphabet.len(), 92);
        assert!(!alphabet.contains(&' ') && !alphabet.contains(&'"'));
    }

    #[test]
    fn debug_hides_secrets() {
        let snmp = new_snmp(Utc::now());
        let shown = format!("{snmp:?}");
        assert!(
            !shown.contains(snmp.auth_password.expose_secret()),
            "{shown}"
        );
    }
}

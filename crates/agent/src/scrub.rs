//! The one secret scrubber: every text that leaves the agent — command output, error
//! messages, logs written to stderr, reports, state files — goes through a [`Scrubber`].
//!
//! Owns: [`Scrubber`] (known secrets replaced by `[REDACTED]`; for free text from the
//! NAS also values that *look* like secrets), where the known secrets come from
//! ([`Scrubber::add_desired`], [`Scrubber::add_observed`], [`learn`] — the secrets the
//! NAS itself holds, read from `cloudsync.query`, `cloudsync.credentials.query` and
//! `snmp.config`), and the process-wide register of known secrets ([`remember`],
//! [`scrub_output`], [`known`]) that the command-line edge scrubs every printed line and
//! every stderr log line with.
//! Does not: decide what is printed, or read secrets anywhere but the middleware reads
//! above (documents and token files register theirs when they are read).
//! Invariants: a secret is only ever held as a `SecretString` and never printed; the
//! register only grows up to [`REGISTER_CAP`] entries (oldest dropped), so a daemon that
//! sees secrets rotate for months stays flat; secrets shorter than [`MIN_SECRET_LEN`]
//! are not searched for (they would hit ordinary words); [`Scrubber::scrub_known`] never
//! changes a text that holds no known secret (safe on any output, e.g. public keys),
//! while [`Scrubber::scrub`] also hides key-looking tokens (for NAS free text only).
//! Limitations: a secret split across two writes of a stream, or re-encoded (escaped,
//! base64), is not recognised; journald log records (the daemon under systemd) are
//! built by `tracing-journald` and do not pass through this module — every log text of
//! the agent comes from its own error types, which carry no secret.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::desired::DesiredState;
use crate::middleware::{Call, Middleware, calls};
use crate::observe::{Observed, SecretView};

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";
/// Shorter known secrets are not searched for (they would hit ordinary words).
pub const MIN_SECRET_LEN: usize = 6;
/// The most secrets the process-wide register keeps (oldest dropped first).
pub const REGISTER_CAP: usize = 64;

/// Replaces known secrets (and, for free text from the NAS, values that look like
/// secrets) with `[REDACTED]`.
///
/// Two passes in [`Scrubber::scrub`]: every known secret is replaced; then anything that
/// *looks* like a secret value: the value after `key=`, `password:`, `token=`, `secret`,
/// `salt`, `passphrase`, `authorization` …, and any token of 20+ characters mixing upper
/// case, lower case and digits (keys and auth tokens do; bucket names, UUIDs, B2 file ids
/// and paths do not).
#[derive(Default, Clone)]
pub struct Scrubber {
    secrets: Vec<SecretString>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

impl Scrubber {
    /// A scrubber for these known secrets.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let mut scrubber = Self::default();
        for secret in secrets {
            scrubber.add(secret);
        }
        scrubber
    }

    /// Adds one more known secret (ignored when too short or already known).
    pub fn add(&mut self, secret: &SecretString) {
        let value = secret.expose_secret();
        if value.len() >= MIN_SECRET_LEN && !self.secrets.iter().any(|s| s.expose_secret() == value)
        {
            self.secrets.push(secret.clone());
        }
    }

    /// Adds every secret of another scrubber.
    pub fn merge(&mut self, other: &Scrubber) {
        for secret in &other.secrets {
            self.add(secret);
        }
    }

    /// Adds the document's secrets (B2 key, encryption password and salt, SNMP).
    pub fn add_desired(&mut self, desired: &DesiredState) {
        for secret in desired.secrets() {
            self.add(secret);
        }
    }

    /// Adds the secrets the NAS holds, as observed (credential keys, every Cloud Sync
    /// task's encryption password and salt, the SNMP v3 passwords).
    pub fn add_observed(&mut self, observed: &Observed) {
        let views = observed
            .credentials
            .iter()
            .map(|c| &c.key)
            .chain(
                observed
                    .cloud_sync
                    .iter()
                    .flat_map(|t| [&t.encryption_password, &t.encryption_salt]),
            )
            .chain([&observed.snmp.v3_password, &observed.snmp.v3_privpassphrase]);
        for view in views {
            if let SecretView::Value(secret) = view {
                self.add(secret);
            }
        }
    }

    /// Adds the secret values found in a middleware reply (see [`secret_values`]).
    pub fn add_reply(&mut self, reply: &Value) {
        let mut found = Vec::new();
        secret_values(reply, false, &mut found);
        for value in found {
            self.add(&SecretString::from(value));
        }
    }

    /// How many secrets are known.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// True when no secret is known.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The known secrets (for handing to a scrub that takes references).
    pub fn secrets(&self) -> &[SecretString] {
        &self.secrets
    }

    /// The text with every known secret replaced; nothing else changes.
    pub fn scrub_known(&self, text: &str) -> String {
        let mut out = text.to_owned();
        // Longest first, so a secret that contains another is replaced whole.
        let mut values: Vec<&str> = self
            .secrets
            .iter()
            .map(ExposeSecret::expose_secret)
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in values {
            if out.contains(value) {
                out = out.replace(value, REDACTED);
            }
        }
        out
    }

    /// The text with every known and apparent secret replaced (for free text from the
    /// NAS: job errors, log excerpts, alert texts, middleware error messages).
    pub fn scrub(&self, text: &str) -> String {
        scrub_assignments(&scrub_tokens(&self.scrub_known(text)))
    }

    /// Replaces every known secret in every string (and object key) of `value`.
    pub fn scrub_json(&self, value: &mut Value) {
        if self.secrets.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                let scrubbed = self.scrub_known(s);
                if scrubbed != *s {
                    *s = scrubbed;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.scrub_json(&mut v);
                    map.insert(self.scrub_known(&key), v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Field names whose string values are secrets in middleware replies (`cloudsync.query`
/// with its embedded credential, `cloudsync.credentials.query` in the 24.10 `attributes`
/// and the 25.04+ `provider` shape, `snmp.config`).
const SECRET_FIELDS: &[&str] = &[
    "encryption_password",
    "encryption_salt",
    "v3_password",
    "v3_privpassphrase",
    "password",
    "pass",
    "passphrase",
    "secret_access_key",
    "client_secret",
    "token",
    "private_key",
];

/// Inside a credential (`attributes` / `provider`), `key` is the secret (B2's
/// application key); elsewhere `key` names things (alerts, attributes maps).
const CREDENTIAL_CONTAINERS: &[&str] = &["attributes", "provider", "credentials"];

/// Collects the string values of secret fields anywhere in `value`. `in_credential`:
/// inside a credential object, where `key` is a secret too.
fn secret_values(value: &Value, in_credential: bool, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items
            .iter()
            .for_each(|v| secret_values(v, in_credential, out)),
        Value::Object(map) => {
            for (name, v) in map {
                let is_secret =
                    SECRET_FIELDS.contains(&name.as_str()) || (in_credential && name == "key");
                match v {
                    Value::String(s) if is_secret && !s.is_empty() && s != "********" => {
                        out.push(s.clone());
                    }
                    _ => secret_values(
                        v,
                        in_credential || CREDENTIAL_CONTAINERS.contains(&name.as_str()),
                        out,
                    ),
                }
            }
        }
        Value::String(_) | Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Reads the secrets the NAS holds — every Cloud Sync task's encryption password and
/// salt and its credential's key (`cloudsync.query`), every cloud credential's key
/// (`cloudsync.credentials.query`), the SNMP v3 passwords (`snmp.config`) — each read
/// bounded by `timeout`. Best effort: a read that fails adds nothing (the other reads
/// still count); the caller goes on either way.
pub async fn learn(mw: &impl Middleware, timeout: Duration) -> Scrubber {
    let mut scrubber = Scrubber::default();
    for call in [
        calls::cloudsync_query(),
        calls::credentials_query(),
        calls::snmp_config(),
    ] {
        if let Some(reply) = read(mw, call, timeout).await {
            scrubber.add_reply(&reply);
        }
    }
    scrubber
}

async fn read(mw: &impl Middleware, call: Call, timeout: Duration) -> Option<Value> {
    match tokio::time::timeout(timeout, mw.call(call)).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(_)) | Err(_) => None,
    }
}

/// The process-wide register of known secrets.
static REGISTER: Mutex<Vec<SecretString>> = Mutex::new(Vec::new());

fn register() -> std::sync::MutexGuard<'static, Vec<SecretString>> {
    // A panic while holding the lock leaves a list of whole secrets: still usable.
    REGISTER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds the scrubber's secrets to the process-wide register (deduplicated; the oldest
/// are dropped beyond [`REGISTER_CAP`]).
pub fn remember(scrubber: &Scrubber) {
    let mut known = register();
    for secret in &scrubber.secrets {
        let value = secret.expose_secret();
        if let Some(i) = known.iter().position(|s| s.expose_secret() == value) {
            known.remove(i);
        }
        known.push(secret.clone());
    }
    let excess = known.len().saturating_sub(REGISTER_CAP);
    known.drain(..excess);
}

/// Adds secrets to the process-wide register.
pub fn remember_all<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) {
    remember(&Scrubber::new(secrets));
}

/// A scrubber with every secret in the process-wide register.
pub fn known() -> Scrubber {
    Scrubber {
        secrets: register().clone(),
    }
}

/// `text` with every secret of the process-wide register replaced (what the command
/// line prints and logs).
pub fn scrub_output(text: &str) -> String {
    let known = register();
    if known.is_empty() {
        return text.to_owned();
    }
    Scrubber {
        secrets: known.clone(),
    }
    .scrub_known(text)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+_-".contains(c)
}

/// Replaces tokens that look like keys: ≥ 20 chars mixing upper, lower and digits.
fn scrub_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let looks_secret = token.len() >= 20
            && token.chars().any(|c| c.is_ascii_uppercase())
            && token.chars().any(|c| c.is_ascii_lowercase())
            && token.chars().any(|c| c.is_ascii_digit());
        out.push_str(if looks_secret { REDACTED } else { token });
        token.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// Replaces the value after `<secret word>[=: ]` up to the next blank, quote or comma.
fn scrub_assignments(text: &str) -> String {
    const WORDS: &[&str] = &[
        "password",
        "passphrase",
        "passwd",
        "secret",
        "token",
        "salt",
        "authorization",
        "application_key",
        "applicationkey",
        "app_key",
        "api_key",
        "apikey",
        "key",
        "pass",
    ];
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        let hit = WORDS.iter().find(|w| {
            lower[i..].starts_with(**w) && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
        });
        let Some(word) = hit else {
            let c = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + c]);
            i += c;
            continue;
        };
        let after = i + word.len();
        // Optional separator run: `=`, `:`, spaces, quotes, `Bearer`/`Basic`.
        let rest = &text[after..];
        let sep_len = rest
            .char_indices()
            .find(|(_, c)| !matches!(c, '=' | ':' | ' ' | '"' | '\''))
            .map_or(rest.len(), |(n, _)| n);
        let sep = &rest[..sep_len];
        if !sep.contains('=') && !sep.contains(':') {
            out.push_str(&text[i..after]);
            i = after;
            continue;
        }
        let mut value_start = after + sep_len;
        for scheme in ["bearer ", "basic "] {
            if lower[value_start..].starts_with(scheme) {
                value_start += scheme.len();
            }
        }
        let value_len = text[value_start..]
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';' | '}' | ')'))
            .map_or(text.len() - value_start, |(n, _)| n);
        out.push_str(&text[i..value_start]);
        if value_len > 0 && &text[value_start..value_start + value_len] != REDACTED {
            out.push_str(REDACTED);
        } else {
            out.push_str(&text[value_start..value_start + value_len]);
        }
        i = value_start + value_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_secrets_are_replaced_everywhere_and_nothing_else_changes() {
        let s = Scrubber::new([
            &SecretString::from("correct horse battery staple"),
            &SecretString::from("horse battery"),
            &SecretString::from("abc"),
        ]);
        assert_eq!(s.len(), 2, "too short to search for: ignored");
        assert_eq!(
            s.scrub_known(
                "pw=correct horse battery staple; ed25519:AbCdEf0123456789AbCdEf0123456789"
            ),
            "pw=[REDACTED]; ed25519:AbCdEf0123456789AbCdEf0123456789",
            "the longest secret wins; a key-looking public value stays"
        );
        assert_eq!(
            s.scrub("bad key ed25519:AbCdEf0123456789AbCdEf0123456789"),
            "bad key ed25519:[REDACTED]",
            "free text from the NAS: key-looking tokens go too"
        );
        let mut v = json!({"a": ["x horse battery y", {"horse battery": 1}], "n": 3});
        s.scrub_json(&mut v);
        assert_eq!(
            v,
            json!({"a": ["x [REDACTED] y", {"[REDACTED]": 1}], "n": 3})
        );
    }

    #[test]
    fn secrets_are_found_in_every_reply_shape() {
        let mut s = Scrubber::default();
        // cloudsync.query with the 24.10 credential shape, snmp.config, the 25.04+
        // credential shape; `********` (a redacted session) and empty values are not
        // secrets; an alert's `key` is not a secret.
        s.add_reply(&json!([{
            "id": 1, "encryption_password": "task-password-1", "encryption_salt": "task-salt-11",
            "credentials": {"id": 2, "attributes": {"account": "0051a2", "key": "b2-app-key-22"}},
            "attributes": {"bucket": "truenas-x", "folder": "/g/p"}
        }]));
        s.add_reply(
            &json!({"v3_password": "snmp-auth-33", "v3_privpassphrase": "********",
                            "community": ""}),
        );
        s.add_reply(
            &json!([{"id": 3, "provider": {"type": "B2", "account": "0051a2",
                                                   "key": "b2-app-key-44"}}]),
        );
        s.add_reply(&json!([{"klass": "X", "key": "alert-key-55"}]));
        let all = s.scrub_known(
            "task-password-1 task-salt-11 b2-app-key-22 snmp-auth-33 b2-app-key-44 \
             alert-key-55 truenas-x 0051a2 ********",
        );
        assert_eq!(
            all,
            "[REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED] alert-key-55 truenas-x \
             0051a2 ********"
        );
    }

    #[test]
    fn the_register_is_deduplicated_and_capped() {
        let unique = format!("register-test-{}", std::process::id());
        remember_all([&SecretString::from(unique.clone())]);
        remember_all([&SecretString::from(unique.clone())]);
        let count = known()
            .secrets()
            .iter()
            .filter(|s| s.expose_secret() == unique)
            .count();
        assert_eq!(count, 1);
        assert_eq!(scrub_output(&format!("x {unique} y")), "x [REDACTED] y");
        for n in 0..REGISTER_CAP {
            remember_all([&SecretString::from(format!("filler-secret-{n}"))]);
        }
        assert!(known().len() <= REGISTER_CAP);
        assert!(
            !scrub_output(&unique).contains(REDACTED),
            "the oldest secret is dropped first"
        );
    }
}

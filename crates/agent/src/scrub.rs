//! The one secret scrubber: every text that leaves the agent — command output, error
//! messages, logs written to stderr, reports, state files — goes through a [`Scrubber`].
//!
//! Owns: [`Scrubber`] (known secrets replaced by `[REDACTED]`; for free text from the
//! NAS also values that *look* like secrets), where the known secrets come from
//! ([`Scrubber::add_desired`], [`Scrubber::add_observed`], [`learn`] — the secrets the
//! NAS itself holds, read from `cloudsync.query`, `cloudsync.credentials.query` and
//! `snmp.config`; or, without reading anything for it, [`Learning`]: a middleware
//! wrapper that remembers the secrets of those replies as they pass and reads only what
//! has not passed before a NAS text reaches its caller), and the process-wide register
//! of known secrets ([`remember`], [`scrub_output`], [`known`]) that the command-line
//! edge scrubs every printed line and every stderr log line with.
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::desired::DesiredState;
use crate::middleware::{ApiInfo, Call, CallError, Job, JobId, Method, Middleware, calls};
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

/// The reads that show every secret the NAS holds: every Cloud Sync task's encryption
/// password and salt and its credential's key (`cloudsync.query`), every cloud
/// credential's key (`cloudsync.credentials.query`), the SNMP v3 passwords
/// (`snmp.config`).
fn learn_calls() -> [Call; 3] {
    [
        calls::cloudsync_query(),
        calls::credentials_query(),
        calls::snmp_config(),
    ]
}

/// True for the methods whose replies hold the NAS's secrets ([`learn_calls`]).
fn shows_secrets(method: Method) -> bool {
    matches!(
        method,
        Method::CloudsyncQuery | Method::CredentialsQuery | Method::SnmpConfig
    )
}

/// Reads the secrets the NAS holds ([`learn_calls`]), each read bounded by `timeout`.
/// Best effort: a read that fails adds nothing (the other reads still count); the
/// caller goes on either way.
pub async fn learn(mw: &impl Middleware, timeout: Duration) -> Scrubber {
    let mut scrubber = Scrubber::default();
    for call in learn_calls() {
        if let Some(reply) = read(mw, call, timeout).await {
            scrubber.add_reply(&reply);
        }
    }
    scrubber
}

/// A middleware that keeps the process-wide register ([`remember`]) knowing every
/// secret the NAS holds, without reading anything for it when the command reads the
/// NAS fully anyway (`plan`, `apply`, `verify`: their first observation reads the three
/// collections [`learn`] reads).
///
/// - Every reply of `cloudsync.query`, `cloudsync.credentials.query` and `snmp.config`
///   (whatever its filter) is scanned as it passes and its secrets are remembered before
///   the reply reaches the caller.
/// - Before a text that comes from the NAS reaches the caller — a middleware error
///   (anything but a timeout, an unreachable middleware, a rate limit, a missing login or
///   method: their texts are the agent's own) or a finished job with an error or a log
///   excerpt — whichever of the three full reads has not yet passed is made here (bounded
///   by `timeout`, best effort, as [`learn`]). So a text derived from the NAS is never
///   handed on while a secret the NAS holds is unknown to the register, even when the
///   command's observation failed before it read the secrets.
///
/// What it relies on: the command prints nothing derived from a successful reply of
/// another method before its observation has read the three collections (the
/// observation is the first thing `plan`, `apply` and `verify` do, and a failed
/// observation is a middleware error, handled above). Commands that print before
/// observing (`status`) use [`learn`] instead.
pub struct Learning<M> {
    inner: M,
    timeout: Duration,
    /// Which of [`learn_calls`] has passed (answered), in that order.
    seen: [AtomicBool; 3],
}

impl<M: Middleware> Learning<M> {
    /// Wraps `inner`; reads made here are bounded by `timeout`.
    pub fn new(inner: M, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            seen: Default::default(),
        }
    }

    /// True when every read [`learn`] makes has passed through (nothing more to learn).
    pub fn learned(&self) -> bool {
        self.seen.iter().all(|s| s.load(Ordering::Acquire))
    }

    /// Makes whichever read of [`learn_calls`] has not passed yet, and remembers what
    /// it shows.
    pub async fn complete(&self) {
        for (seen, call) in self.seen.iter().zip(learn_calls()) {
            if seen.load(Ordering::Acquire) {
                continue;
            }
            if let Some(reply) = read(&self.inner, call, self.timeout).await {
                remember_reply(&reply);
                seen.store(true, Ordering::Release);
            }
        }
    }

    /// Remembers the secrets of `reply` to `call`, and notes a full read.
    fn passed(&self, call: &Call, reply: &Value) {
        if !shows_secrets(call.method) {
            return;
        }
        remember_reply(reply);
        if let Some(i) = learn_calls().iter().position(|c| c == call) {
            self.seen[i].store(true, Ordering::Release);
        }
    }
}

/// True when the error's text can come from the NAS (a middleware's reason, validation
/// items, a reply's contents); false when the agent wrote all of it.
fn carries_nas_text(err: &CallError) -> bool {
    match err {
        CallError::Validation { .. }
        | CallError::NotFound { .. }
        | CallError::NotAuthorized { .. }
        | CallError::Failed { .. }
        | CallError::Disconnected { .. }
        | CallError::Protocol { .. } => true,
        CallError::NotAuthenticated { .. }
        | CallError::RateLimited { .. }
        | CallError::MethodNotFound { .. }
        | CallError::Timeout { .. }
        | CallError::Unavailable { .. } => false,
    }
}

fn remember_reply(reply: &Value) {
    let mut scrubber = Scrubber::default();
    scrubber.add_reply(reply);
    remember(&scrubber);
}

impl<M: Middleware> Middleware for Learning<M> {
    fn api(&self) -> ApiInfo {
        self.inner.api()
    }

    async fn call(&self, call: Call) -> Result<Value, CallError> {
        let sent = shows_secrets(call.method).then(|| call.clone());
        let result = self.inner.call(call).await;
        match &result {
            Ok(reply) => {
                if let Some(sent) = &sent {
                    self.passed(sent, reply);
                }
            }
            Err(err) if carries_nas_text(err) && !self.learned() => self.complete().await,
            Err(_) => {}
        }
        result
    }

    async fn wait_job(&self, id: JobId, timeout: Duration) -> Result<Job, CallError> {
        let result = self.inner.wait_job(id, timeout).await;
        let nas_text = match &result {
            Ok(job) => job.error.is_some() || job.logs_excerpt.is_some(),
            Err(err) => carries_nas_text(err),
        };
        if nas_text && !self.learned() {
            self.complete().await;
        }
        result
    }
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

    /// A NAS holding secrets no document knows: answers the three reads [`learn`]
    /// makes with them, `pool.query` with `[]` or the error it is given, and every job
    /// as failed with `job_error`. Records the calls.
    struct Nas {
        tag: String,
        pool_error: Option<CallError>,
        job_error: String,
        calls: Mutex<Vec<Method>>,
    }

    impl Nas {
        fn new(tag: &str, pool_error: Option<CallError>) -> Self {
            Self {
                tag: format!("{tag}-{}", std::process::id()),
                pool_error,
                job_error: String::new(),
                calls: Mutex::default(),
            }
        }
        fn secret(&self, what: &str) -> String {
            format!("{what}-{}", self.tag)
        }
        fn calls(&self) -> Vec<Method> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Middleware for Nas {
        fn api(&self) -> ApiInfo {
            ApiInfo {
                flavor: crate::middleware::ApiFlavor::V25_04,
                version: "25.04.2".into(),
                protocol: crate::middleware::Protocol::JsonRpc,
                transport: crate::middleware::TransportKind::UnixSocket,
                api_version: Some("v25.04.2".into()),
                newer_than_known: false,
            }
        }
        async fn call(&self, call: Call) -> Result<Value, CallError> {
            self.calls.lock().unwrap().push(call.method);
            Ok(match call.method {
                Method::CloudsyncQuery => json!([{"id": 1,
                    "encryption_password": self.secret("taskpass")}]),
                Method::CredentialsQuery => json!([{"id": 2,
                    "provider": {"type": "B2", "key": self.secret("credkey")}}]),
                Method::SnmpConfig => json!({"v3_password": self.secret("snmpauth")}),
                _ => match &self.pool_error {
                    Some(err) => return Err(err.clone()),
                    None => json!([]),
                },
            })
        }
        async fn wait_job(&self, id: JobId, _timeout: Duration) -> Result<Job, CallError> {
            Ok(serde_json::from_value(
                json!({"id": id, "state": "FAILED", "error": self.job_error}),
            )
            .unwrap())
        }
    }

    fn hidden(nas: &Nas) -> bool {
        ["taskpass", "credkey", "snmpauth"]
            .iter()
            .all(|what| scrub_output(&nas.secret(what)) == REDACTED)
    }

    /// What the command reads anyway teaches the register; nothing is read for it.
    #[tokio::test]
    async fn learning_remembers_the_secrets_that_pass_and_reads_nothing_more() {
        let nas = Nas::new("pass", None);
        let mw = Learning::new(&nas, Duration::from_secs(5));
        assert!(!mw.learned());
        mw.call(calls::pools_query()).await.unwrap();
        for call in learn_calls() {
            mw.call(call).await.unwrap();
        }
        assert!(mw.learned());
        assert!(hidden(&nas), "every secret the replies showed is known");
        let job = mw.wait_job(7, Duration::from_secs(1)).await.unwrap();
        assert_eq!(job.state, crate::middleware::JobState::Failed);
        assert_eq!(
            nas.calls(),
            [
                Method::PoolQuery,
                Method::CloudsyncQuery,
                Method::CredentialsQuery,
                Method::SnmpConfig
            ],
            "no read of its own"
        );
    }

    /// A NAS text that reaches the caller before the secrets passed — a middleware error
    /// (not one the agent wrote itself), a failed job — makes the missing reads first.
    #[tokio::test]
    async fn a_nas_text_before_the_secrets_passed_has_them_read_first() {
        let failed = CallError::Failed {
            method: Method::PoolQuery,
            errno: Some(14),
            errname: "EFAULT".into(),
            reason: "text from the NAS".into(),
        };
        let nas = Nas::new("error", Some(failed));
        let mw = Learning::new(&nas, Duration::from_secs(5));
        mw.call(calls::snmp_config()).await.unwrap();
        mw.call(calls::pools_query()).await.unwrap_err();
        assert!(hidden(&nas));
        assert_eq!(
            nas.calls(),
            [
                Method::SnmpConfig,
                Method::PoolQuery,
                Method::CloudsyncQuery,
                Method::CredentialsQuery
            ],
            "only what had not passed is read"
        );

        let mut nas = Nas::new("job", None);
        nas.job_error = "rclone said something".into();
        let mw = Learning::new(&nas, Duration::from_secs(5));
        mw.wait_job(3, Duration::from_secs(1)).await.unwrap();
        assert!(hidden(&nas));
        assert_eq!(nas.calls().len(), 3);

        let timeout = CallError::Timeout {
            method: Method::PoolQuery,
            after: Duration::from_secs(1),
        };
        let nas = Nas::new("timeout", Some(timeout));
        let mw = Learning::new(&nas, Duration::from_secs(5));
        mw.call(calls::pools_query()).await.unwrap_err();
        assert_eq!(
            nas.calls(),
            [Method::PoolQuery],
            "the agent's own text: nothing to learn for it"
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

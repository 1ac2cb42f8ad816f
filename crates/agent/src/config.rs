//! The agent's own configuration file (TOML) → [`AgentConfig`].
//!
//! Owns: parsing (`deny_unknown_fields` at every level), validation of every value with
//! an error that names the key and the rule, the defaults, command-line overrides, and
//! reading the secret files the config points at (device token, middleware API key)
//! after checking they are owned by the agent's user and not readable by group/other.
//! Does not: fetch anything, open connections, or decide what the daemon does with the
//! values. The desired-state document is `desired`'s business, not this file's.
//! Invariants: an [`AgentConfig`] is always fully validated (there is no way to build
//! one from unchecked input); all problems in a file are reported together; no secret
//! is ever held here except behind `SecretString`, and no error text contains a secret
//! file's content; the process owner is compared by numeric uid (`geteuid`), never by
//! looking a user name up (static glibc + NSS).
//! Command-line overrides are checked by the same rules, and their errors name the flag
//! (`--middleware: …`), never the config file.
//! Limitations: durations are whole seconds; `http://` central and B2 URLs are accepted
//! only for IP-literal loopback hosts (`127.0.0.0/8`, `[::1]`), not for the name
//! `localhost`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use secrecy::SecretString;
use serde::Deserialize;

use crate::central::dsse::{TrustPolicy, TrustedKey};
use crate::fault::Fault;
use crate::fs::{self, FsError};
use crate::middleware::{ApiKey, ConnectOptions};

/// Default poll interval when the server does not long-poll (contract §2).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(300);
/// Default long-poll `wait`: below the 60 s read timeout of common reverse proxies.
pub const DEFAULT_LONG_POLL_WAIT: Duration = Duration::from_secs(50);
/// Default spool cap (contract §4).
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// How often the daemon checks the B2 bucket by default (`[b2] check_interval_secs`).
pub const DEFAULT_B2_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// How often the daemon reads the NAS in full by default (`[middleware]
/// resync_interval_secs`); between full reads it follows the middleware's events.
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Full reads: at least every 10 minutes apart (events keep the view current in
/// between), at most a week apart.
const RESYNC_RANGE: (u64, u64) = (600, 7 * 86_400);

const POLL_RANGE: (u64, u64) = (30, 86_400);
const WAIT_MAX: u64 = 300;
const SPOOL_RANGE: (u64, u64) = (1024 * 1024, 1024 * 1024 * 1024);
/// B2 check interval: at least hourly (each run costs B2 transactions), at most 30 days.
const B2_INTERVAL_RANGE: (u64, u64) = (3600, 30 * 86_400);
const SECRET_FILE_MAX: usize = 4096;

/// One bad value: the dotted key and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub key: String,
    pub rule: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.rule)
    }
}

/// Why the configuration (or a file it points at) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read agent configuration")]
    Read(#[source] FsError),
    #[error("agent configuration {path} line {line} column {column}: {key}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("invalid agent configuration {path}:\n{}", list(.errors))]
    Invalid {
        path: String,
        errors: Vec<FieldError>,
    },
    /// A command-line flag (or its environment variable) breaks a rule; each error's
    /// `key` is the flag (`--middleware`), so the message never blames the config file.
    #[error("invalid command-line flag(s):\n{}", list(.errors))]
    Flags { errors: Vec<FieldError> },
    #[error(
        "{key} {path} has mode {mode:04o} and owner uid {owner}; it must be owned by uid {expected_owner} \
         (the user the agent runs as) and not readable by group or others. Fix: {fix}"
    )]
    InsecureSecretFile {
        key: &'static str,
        path: PathBuf,
        mode: u32,
        owner: u32,
        expected_owner: u32,
        fix: String,
    },
    #[error("cannot read {key} {path}", path = .source.path().display())]
    ReadSecretFile {
        key: &'static str,
        #[source]
        source: FsError,
    },
    #[error("{key} {path}: {rule}")]
    BadSecretFile {
        key: &'static str,
        path: PathBuf,
        rule: &'static str,
    },
    #[error("no `[central]` section in the agent configuration: the agent has no central endpoint")]
    NoCentral,
}

impl ConfigError {
    /// The party that has to act: always the operator who wrote the config or the files.
    pub fn fault(&self) -> Fault {
        match self {
            ConfigError::Read(_)
            | ConfigError::Syntax { .. }
            | ConfigError::Invalid { .. }
            | ConfigError::Flags { .. }
            | ConfigError::InsecureSecretFile { .. }
            | ConfigError::ReadSecretFile { .. }
            | ConfigError::BadSecretFile { .. }
            | ConfigError::NoCentral => Fault::Operator,
        }
    }
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The validated agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The file it came from (`None`: built-in defaults).
    pub source: Option<PathBuf>,
    /// The agent's state directory.
    pub state_dir: PathBuf,
    /// ZFS user property holding the device GUID.
    pub guid_property: String,
    /// The root pool (home of the GUID property); `None`: decided by `identity`.
    pub root_pool: Option<String>,
    /// The central endpoint; `None` when the agent runs from local documents only.
    pub central: Option<CentralConfig>,
    /// How to reach the local middleware.
    pub middleware: MiddlewareConfig,
    /// The daemon's B2 checks.
    pub b2: B2Config,
}

/// The `[b2]` section: how the daemon checks the B2 bucket with the Cloud Sync key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2Config {
    /// How often the daemon checks the bucket; `None`: never (`check_interval_secs = 0`).
    pub check_interval: Option<Duration>,
    /// B2 API base URL: `https://…`, or `http://` to a loopback IP (tests, simulator set-ups).
    pub api_url: String,
}

impl Default for B2Config {
    fn default() -> Self {
        Self {
            check_interval: Some(DEFAULT_B2_CHECK_INTERVAL),
            api_url: crate::b2::DEFAULT_API_BASE.to_owned(),
        }
    }
}

/// The `[central]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct CentralConfig {
    /// Base URL; always ends with `/` so `v1/config` joins below it.
    pub url: Url,
    /// File holding the device token (checked for owner and mode when read).
    pub token_file: PathBuf,
    /// Extra CA certificate(s) (PEM) trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Trusted signing keys and `allow_unsigned`.
    pub trust: TrustPolicy,
    /// Plain polling interval (±10 % jitter is applied by the fetch schedule).
    pub poll_interval: Duration,
    /// Long-poll `wait`; `None` disables long-polling.
    pub long_poll_wait: Option<Duration>,
    /// Reports are sent at least this often.
    pub report_interval: Duration,
    /// Cap of the on-disk report spool, in bytes.
    pub spool_max_bytes: u64,
}

/// The `[middleware]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiddlewareConfig {
    /// `unix:///…`, `ws://<loopback>…` or `wss://…`.
    pub url: String,
    pub api_key_file: Option<PathBuf>,
    pub api_user: Option<String>,
    pub tls_ca_file: Option<PathBuf>,
    /// SHA-256 of the server certificate, 64 hex digits (colons removed, lower-case).
    pub tls_pin: Option<String>,
    /// How often the daemon reads the NAS in full (`resync_interval_secs`).
    pub resync_interval: Duration,
}

impl Default for MiddlewareConfig {
    fn default() -> Self {
        Self {
            url: crate::middleware::DEFAULT_URL.to_owned(),
            api_key_file: None,
            api_user: None,
            tls_ca_file: None,
            tls_pin: None,
            resync_interval: DEFAULT_RESYNC_INTERVAL,
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            source: None,
            state_dir: PathBuf::from(crate::state_dir::DEFAULT_STATE_DIR),
            guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.to_owned(),
            root_pool: None,
            central: None,
            middleware: MiddlewareConfig::default(),
            b2: B2Config::default(),
        }
    }
}

/// Values from the command line that win over the file (`GlobalArgs`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub state_dir: Option<PathBuf>,
    pub middleware_url: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub api_user: Option<String>,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_pin: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Wire format: exactly the keys documented in docs/configuration.md.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    guid_property: Option<String>,
    root_pool: Option<String>,
    central: Option<RawCentral>,
    #[serde(default)]
    middleware: RawMiddleware,
    #[serde(default)]
    b2: RawB2,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawB2 {
    check_interval_secs: Option<u64>,
    api_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCentral {
    url: String,
    token_file: PathBuf,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    trusted_keys: Vec<String>,
    #[serde(default)]
    allow_unsigned: bool,
    poll_interval_secs: Option<u64>,
    long_poll_wait_secs: Option<u64>,
    report_interval_secs: Option<u64>,
    spool_max_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMiddleware {
    url: Option<String>,
    api_key_file: Option<PathBuf>,
    api_user: Option<String>,
    tls_ca_file: Option<PathBuf>,
    tls_pin: Option<String>,
    resync_interval_secs: Option<u64>,
}

impl AgentConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = fs::read_to_string(path).map_err(ConfigError::Read)?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// The config file when one is given (else the defaults), then the command-line
    /// overrides: what every subcommand should call.
    pub fn resolve(path: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let base = match path {
            Some(path) => Self::load(path)?,
            None => Self::default(),
        };
        base.with_overrides(overrides)
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(text, origin, &e))?;
        validate(raw).map_err(|errors| ConfigError::Invalid {
            path: origin.to_owned(),
            errors,
        })
    }

    /// Applies command-line overrides and re-validates the affected values. Errors name
    /// the flag that carries the value (`--middleware`, `--tls-pin`, …), and a value that
    /// still comes from the file is named as the file's key.
    pub fn with_overrides(mut self, o: Overrides) -> Result<Self, ConfigError> {
        // Which keys the command line set: their errors name the flag.
        let flags = [
            ("state_dir", "--state-dir", o.state_dir.is_some()),
            ("middleware.url", "--middleware", o.middleware_url.is_some()),
            (
                "middleware.api_key_file",
                "--api-key-file",
                o.api_key_file.is_some(),
            ),
            ("middleware.api_user", "--api-user", o.api_user.is_some()),
            (
                "middleware.tls_ca_file",
                "--tls-ca-file",
                o.tls_ca_file.is_some(),
            ),
            ("middleware.tls_pin", "--tls-pin", o.tls_pin.is_some()),
        ];
        let mut errors = Vec::new();
        if let Some(dir) = o.state_dir {
            self.state_dir = absolute(&mut errors, "state_dir", dir);
        }
        let m = &mut self.middleware;
        let raw = RawMiddleware {
            url: Some(o.middleware_url.unwrap_or_else(|| m.url.clone())),
            api_key_file: o.api_key_file.or_else(|| m.api_key_file.clone()),
            api_user: o.api_user.or_else(|| m.api_user.clone()),
            tls_ca_file: o.tls_ca_file.or_else(|| m.tls_ca_file.clone()),
            tls_pin: o.tls_pin.or_else(|| m.tls_pin.clone()),
            resync_interval_secs: Some(m.resync_interval.as_secs()),
        };
        *m = validate_middleware(&mut errors, raw);
        if errors.is_empty() {
            return Ok(self);
        }
        for error in &mut errors {
            match flags.iter().find(|(key, _, _)| *key == error.key) {
                Some((_, flag, true)) => error.key = (*flag).to_owned(),
                Some((key, _, false)) => error.key = format!("{key} (in the config file)"),
                None => {}
            }
        }
        Err(ConfigError::Flags { errors })
    }

    /// The `[central]` section, or an error saying it is missing.
    pub fn central(&self) -> Result<&CentralConfig, ConfigError> {
        self.central.as_ref().ok_or(ConfigError::NoCentral)
    }
}

impl CentralConfig {
    /// Reads the device token after checking the file's owner and mode.
    pub fn read_token(&self) -> Result<SecretString, ConfigError> {
        read_secret_file("central.token_file", &self.token_file)
    }

    /// `{url}v1/config`.
    pub fn config_url(&self) -> Url {
        join(&self.url, "v1/config")
    }

    /// `{url}v1/reports`.
    pub fn reports_url(&self) -> Url {
        join(&self.url, "v1/reports")
    }
}

fn join(base: &Url, path: &str) -> Url {
    #[allow(
        clippy::expect_used,
        reason = "invariant: `base` is an absolute http(s) URL ending in `/` (validated) and \
                  `path` is relative, so joining cannot fail"
    )]
    let url = base
        .join(path)
        .expect("invariant: validated base URL joins a relative path");
    url
}

impl MiddlewareConfig {
    /// Builds the middleware connect options, reading the API key file (checked like the
    /// token file) when one is configured.
    pub fn connect_options(&self) -> Result<ConnectOptions, ConfigError> {
        let api_key = match &self.api_key_file {
            Some(path) => Some(ApiKey {
                username: self.api_user.clone(),
                key: read_secret_file("middleware.api_key_file", path)?,
            }),
            None => None,
        };
        Ok(ConnectOptions {
            url: self.url.clone(),
            api_key,
            tls_ca_file: self.tls_ca_file.clone(),
            tls_pin_sha256: self.tls_pin.clone(),
            ..ConnectOptions::default()
        })
    }
}

/// Reads a one-line secret from a file that must be owned by the agent's effective uid
/// and have no group/other permission bits. `key` names the config key in errors.
pub fn read_secret_file(key: &'static str, path: &Path) -> Result<SecretString, ConfigError> {
    check_private_file(key, path)?;
    let bytes = fs::read(path).map_err(|source| ConfigError::ReadSecretFile { key, source })?;
    let bad = |rule| ConfigError::BadSecretFile {
        key,
        path: path.to_owned(),
        rule,
    };
    if bytes.len() > SECRET_FILE_MAX {
        return Err(bad(
            "is larger than 4096 bytes; it must hold only the secret",
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8 text"))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(bad("is empty"));
    }
    // The value goes into an HTTP header or a login call: one token of visible ASCII.
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "must contain a single line of visible ASCII characters (no spaces inside)",
        ));
    }
    let secret = SecretString::from(value.to_owned());
    // Nothing the process prints or logs afterwards may show it.
    crate::scrub::remember_all([&secret]);
    Ok(secret)
}

/// Refuses a secret file that is not owned by the agent's user or that group/other can
/// access, with the exact fix in the message.
pub fn check_private_file(key: &'static str, path: &Path) -> Result<(), ConfigError> {
    let (owner, mode) =
        fs::owner_and_mode(path).map_err(|source| ConfigError::ReadSecretFile { key, source })?;
    let expected_owner = nix::unistd::geteuid().as_raw();
    let wrong_owner = owner != expected_owner;
    let too_open = mode & 0o077 != 0;
    if !wrong_owner && !too_open {
        return Ok(());
    }
    let shown = path.display();
    let fix = match (wrong_owner, too_open) {
        (true, true) => format!("chown {expected_owner} {shown} && chmod 600 {shown}"),
        (true, false) => format!("chown {expected_owner} {shown}"),
        (false, _) => format!("chmod 600 {shown}"),
    };
    Err(ConfigError::InsecureSecretFile {
        key,
        path: path.to_owned(),
        mode,
        owner,
        expected_owner,
        fix,
    })
}

// ---------------------------------------------------------------------------------------
// Validation: pure, collects every problem.

fn validate(raw: RawConfig) -> Result<AgentConfig, Vec<FieldError>> {
    let mut errors = Vec::new();
    let defaults = AgentConfig::default();
    let state_dir = raw.state_dir.map_or(defaults.state_dir, |p| {
        absolute(&mut errors, "state_dir", p)
    });
    let guid_property = raw.guid_property.map_or(defaults.guid_property, |p| {
        check(&mut errors, "guid_property", user_property_rule(&p));
        p
    });
    if let Some(pool) = &raw.root_pool {
        check(&mut errors, "root_pool", pool_name_rule(pool));
    }
    let central = raw.central.map(|c| validate_central(&mut errors, c));
    let middleware = validate_middleware(&mut errors, raw.middleware);
    let b2 = validate_b2(&mut errors, raw.b2);
    if errors.is_empty() {
        Ok(AgentConfig {
            source: None,
            state_dir,
            guid_property,
            root_pool: raw.root_pool,
            central,
            middleware,
            b2,
        })
    } else {
        Err(errors)
    }
}

fn validate_central(errors: &mut Vec<FieldError>, raw: RawCentral) -> CentralConfig {
    let url = central_url(errors, &raw.url);
    let token_file = absolute(errors, "central.token_file", raw.token_file);
    let ca_file = raw.ca_file.map(|p| absolute(errors, "central.ca_file", p));
    let keys = trusted_keys(errors, &raw.trusted_keys);
    if raw.allow_unsigned && !keys.is_empty() {
        push(
            errors,
            "central.allow_unsigned",
            "must not be true when central.trusted_keys is set (signatures are always checked \
             when keys are configured); remove one of them",
        );
    }
    let poll = raw
        .poll_interval_secs
        .unwrap_or(DEFAULT_POLL_INTERVAL.as_secs());
    in_range(errors, "central.poll_interval_secs", poll, POLL_RANGE);
    let wait = raw
        .long_poll_wait_secs
        .unwrap_or(DEFAULT_LONG_POLL_WAIT.as_secs());
    in_range(errors, "central.long_poll_wait_secs", wait, (0, WAIT_MAX));
    // Defaults to the poll interval; only an explicit value is checked (no echo errors).
    let report = raw.report_interval_secs.unwrap_or(poll);
    if raw.report_interval_secs.is_some() {
        in_range(errors, "central.report_interval_secs", report, POLL_RANGE);
        if report > poll {
            push(
                errors,
                "central.report_interval_secs",
                format!(
                    "must be at most central.poll_interval_secs ({poll}): the contract asks for a \
                     report at least every poll interval (got {report})"
                ),
            );
        }
    }
    let spool = raw.spool_max_bytes.unwrap_or(DEFAULT_SPOOL_MAX_BYTES);
    in_range(errors, "central.spool_max_bytes", spool, SPOOL_RANGE);
    CentralConfig {
        url,
        token_file,
        ca_file,
        trust: TrustPolicy {
            keys,
            allow_unsigned: raw.allow_unsigned,
        },
        poll_interval: Duration::from_secs(poll),
        long_poll_wait: (wait > 0).then(|| Duration::from_secs(wait)),
        report_interval: Duration::from_secs(report),
        spool_max_bytes: spool,
    }
}

fn central_url(errors: &mut Vec<FieldError>, text: &str) -> Url {
    #[allow(
        clippy::expect_used,
        reason = "invariant: the literal is a valid absolute URL"
    )]
    let fallback = || Url::parse("https://invalid.invalid/").expect("invariant: literal URL");
    let mut url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            push(
                errors,
                "central.url",
                format!("must be an absolute URL ({e})"),
            );
            return fallback();
        }
    };
    let rule = match url.scheme() {
        "https" => None,
        "http" if is_loopback_ip(&url) => None,
        "http" => Some(
            "must use https:// (plain http:// is accepted only for a loopback IP such as \
             http://127.0.0.1:8080/ or http://[::1]:8080/)",
        ),
        _ => Some("must use https://"),
    };
    let rule = rule.or_else(|| {
        if !url.username().is_empty() || url.password().is_some() {
            Some("must not contain a user name or password (the token comes from central.token_file)")
        } else if url.query().is_some() || url.fragment().is_some() {
            Some("must not contain a query or fragment")
        } else if url.host().is_none() {
            Some("must name a host")
        } else {
            None
        }
    });
    if let Some(rule) = rule {
        push(errors, "central.url", rule);
        return fallback();
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

fn validate_b2(errors: &mut Vec<FieldError>, raw: RawB2) -> B2Config {
    let defaults = B2Config::default();
    let check_interval = match raw.check_interval_secs {
        None => defaults.check_interval,
        Some(0) => None,
        Some(secs) => {
            let (lo, hi) = B2_INTERVAL_RANGE;
            if !(lo..=hi).contains(&secs) {
                push(
                    errors,
                    "b2.check_interval_secs",
                    format!("must be 0 (B2 checks off) or between {lo} and {hi} (got {secs})"),
                );
            }
            Some(Duration::from_secs(secs))
        }
    };
    let api_url = raw.api_url.map_or(defaults.api_url, |text| {
        if let Err(rule) = b2_url_rule(&text) {
            push(errors, "b2.api_url", rule);
        }
        text.trim_end_matches('/').to_owned()
    });
    B2Config {
        check_interval,
        api_url,
    }
}

fn b2_url_rule(text: &str) -> Result<(), String> {
    let url = Url::parse(text).map_err(|e| format!("must be an absolute URL ({e})"))?;
    let rule = match url.scheme() {
        "https" => None,
        "http" if is_loopback_ip(&url) => None,
        "http" => Some(
            "must use https:// (plain http:// is accepted only for a loopback IP such as \
             http://127.0.0.1:8080, for a test B2 server)",
        ),
        _ => Some("must use https://"),
    };
    let rule = rule.or_else(|| {
        if !url.username().is_empty() || url.password().is_some() {
            Some("must not contain a user name or password")
        } else if url.query().is_some() || url.fragment().is_some() {
            Some("must not contain a query or fragment")
        } else if url.host().is_none() {
            Some("must name a host")
        } else {
            None
        }
    });
    rule.map_or(Ok(()), |r| Err(r.to_owned()))
}

/// True when the URL's host is an IP literal in a loopback range (no name lookup).
pub fn is_loopback_ip(url: &Url) -> bool {
    url.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

fn trusted_keys(errors: &mut Vec<FieldError>, texts: &[String]) -> Vec<TrustedKey> {
    let mut keys: Vec<TrustedKey> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let key = format!("central.trusted_keys[{i}]");
        match TrustedKey::parse(text) {
            Ok(k) if keys.contains(&k) => push(errors, &key, "is listed twice"),
            Ok(k) => keys.push(k),
            Err(e) => push(
                errors,
                &key,
                format!(
                    "{e}; expected `ed25519:<standard base64 of the 32-byte public key>` \
                     (as printed by `truenas-central keygen`)"
                ),
            ),
        }
    }
    keys
}

fn validate_middleware(errors: &mut Vec<FieldError>, raw: RawMiddleware) -> MiddlewareConfig {
    let url = raw
        .url
        .unwrap_or_else(|| crate::middleware::DEFAULT_URL.to_owned());
    let scheme = middleware_scheme(errors, &url);
    let api_key_file = raw
        .api_key_file
        .map(|p| absolute(errors, "middleware.api_key_file", p));
    if api_key_file.is_some() && scheme == Some(MwScheme::Unix) {
        push(
            errors,
            "middleware.api_key_file",
            "is only used with ws:// or wss:// (over the unix socket root needs no key)",
        );
    }
    if let Some(user) = &raw.api_user {
        if user.trim().is_empty() {
            push(errors, "middleware.api_user", "must not be empty");
        } else if api_key_file.is_none() {
            push(
                errors,
                "middleware.api_user",
                "needs middleware.api_key_file",
            );
        }
    }
    let tls_ca_file = raw
        .tls_ca_file
        .map(|p| absolute(errors, "middleware.tls_ca_file", p));
    let tls_pin = raw.tls_pin.and_then(|p| tls_pin(errors, &p));
    if (tls_ca_file.is_some() || tls_pin.is_some()) && scheme == Some(MwScheme::Ws) {
        push(
            errors,
            "middleware.url",
            "must use wss:// when tls_ca_file or tls_pin is set",
        );
    }
    let resync_interval = match raw.resync_interval_secs {
        None => DEFAULT_RESYNC_INTERVAL,
        Some(secs) => {
            let (lo, hi) = RESYNC_RANGE;
            if !(lo..=hi).contains(&secs) {
                push(
                    errors,
                    "middleware.resync_interval_secs",
                    format!("must be between {lo} and {hi} (got {secs})"),
                );
            }
            Duration::from_secs(secs)
        }
    };
    MiddlewareConfig {
        url,
        api_key_file,
        api_user: raw.api_user,
        tls_ca_file,
        tls_pin,
        resync_interval,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MwScheme {
    Unix,
    Ws,
    Wss,
}

fn middleware_scheme(errors: &mut Vec<FieldError>, text: &str) -> Option<MwScheme> {
    const KEY: &str = "middleware.url";
    let Ok(url) = Url::parse(text) else {
        push(
            errors,
            KEY,
            "must be a URL such as unix:///var/run/middleware/middlewared.sock",
        );
        return None;
    };
    let verdict = match url.scheme() {
        "unix" if url.path().starts_with('/') && url.host().is_none() => Ok(MwScheme::Unix),
        "unix" => Err("a unix:// URL must be unix:///absolute/path/to/middlewared.sock"),
        "ws" if is_loopback_ip(&url) => Ok(MwScheme::Ws),
        "ws" => {
            Err("plain ws:// is accepted only to a loopback IP (127.0.0.1 or [::1]); use wss://")
        }
        "wss" if url.host().is_some() => Ok(MwScheme::Wss),
        "wss" => Err("must name a host"),
        _ => Err("must start with unix://, ws:// (loopback only) or wss://"),
    };
    verdict.map_err(|rule| push(errors, KEY, rule)).ok()
}

fn tls_pin(errors: &mut Vec<FieldError>, text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Some(hex.to_ascii_lowercase())
    } else {
        push(
            errors,
            "middleware.tls_pin",
            "must be the SHA-256 of the certificate: 64 hex digits (`:` separators allowed)",
        );
        None
    }
}

fn user_property_rule(name: &str) -> Result<(), String> {
    // middleware: plugins/pool_/utils.py RE_ZFS_USER_PROP = [a-z0-9:._-]+, ≤ 255, has `:`.
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b":._-".contains(&b));
    if name.is_empty() || name.len() > 255 || !ok_chars || !name.contains(':') {
        return Err(
            "must be a ZFS user property: lower-case letters, digits and `:._-`, with a `:` \
             (e.g. com.dtctoday:device-guid), at most 255 characters"
                .to_owned(),
        );
    }
    Ok(())
}

fn pool_name_rule(name: &str) -> Result<(), String> {
    // zpool(8): starts with a letter; letters, digits, `_ - . :` and space; reserved words.
    let reserved = [
        "mirror", "raidz", "draid", "spare", "log", "cache", "special", "dedup",
    ];
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.: ".contains(c));
    if !starts_with_letter || !ok_chars || name.len() > 255 {
        return Err(
            "must be a ZFS pool name: a letter first, then letters, digits and `_-.:`".into(),
        );
    }
    if reserved.iter().any(|r| name.starts_with(r)) {
        return Err(format!(
            "must not start with a reserved word ({})",
            reserved.join(", ")
        ));
    }
    Ok(())
}

fn absolute(errors: &mut Vec<FieldError>, key: &str, path: PathBuf) -> PathBuf {
    if !path.is_absolute() {
        push(
            errors,
            key,
            format!("must be an absolute path (got `{}`)", path.display()),
        );
    }
    path
}

fn in_range(errors: &mut Vec<FieldError>, key: &str, value: u64, (lo, hi): (u64, u64)) {
    if value < lo || value > hi {
        push(
            errors,
            key,
            format!("must be between {lo} and {hi} (got {value})"),
        );
    }
}

fn check(errors: &mut Vec<FieldError>, key: &str, rule: Result<(), String>) {
    if let Err(rule) = rule {
        push(errors, key, rule);
    }
}

fn push(errors: &mut Vec<FieldError>, key: &str, rule: impl Into<String>) {
    errors.push(FieldError {
        key: key.to_owned(),
        rule: rule.into(),
    });
}

/// Turns a TOML/serde error into one naming the dotted key, without echoing the line.
fn syntax_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map_or(0, |s| s.start);
    let (line, column) = line_column(text, offset);
    ConfigError::Syntax {
        path: origin.to_owned(),
        line,
        column,
        key: key_at(text, offset),
        message: e.message().trim().to_owned(),
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = text[..before.len()].lines().count().max(1) + usize::from(before.ends_with(b"\n"));
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, column)
}

/// The dotted key whose value or name starts at `offset`: the last `[table]` header
/// before it plus the `key =` on its line.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let table = text[..line_start]
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            (l.starts_with('[') && l.ends_with(']')).then(|| l.trim_matches(['[', ']']).trim())
        })
        .unwrap_or("");
    let trimmed = line.trim();
    if trimmed.starts_with('[') {
        return trimmed.trim_matches(['[', ']']).trim().to_owned();
    }
    let name = line.split('=').next().unwrap_or("").trim();
    match (table.is_empty(), name.is_empty()) {
        (_, true) => table.to_owned(),
        (true, false) => name.to_owned(),
        (false, false) => format!("{table}.{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const KEY_A: &str = "ed25519:ebVWLo/mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ=";

    fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::parse(text, "agent.toml")
    }

    fn central(extra: &str) -> String {
        format!(
            "[central]\nurl = \"https://central.example.com/msp\"\ntoken_file = \"/etc/agent/token\"\n\
             trusted_keys = [\"{KEY_A}\"]\n{extra}"
        )
    }

    fn errors_of(text: &str) -> Vec<FieldError> {
        match parse(text) {
            Err(ConfigError::Invalid { errors, .. }) => errors,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, AgentConfig::default());
        assert_eq!(c.guid_property, "com.dtctoday:device-guid");
        assert!(c.central.is_none());
        assert!(matches!(c.central(), Err(ConfigError::NoCentral)));
    }

    #[test]
    fn full_central_section_and_defaults() {
        let c = parse(&central("")).unwrap();
        let cc = c.central.unwrap();
        assert_eq!(cc.url.as_str(), "https://central.example.com/msp/");
        assert_eq!(
            cc.config_url().as_str(),
            "https://central.example.com/msp/v1/config"
        );
        assert_eq!(
            cc.reports_url().as_str(),
            "https://central.example.com/msp/v1/reports"
        );
        assert_eq!(cc.poll_interval, Duration::from_secs(300));
        assert_eq!(cc.long_poll_wait, Some(Duration::from_secs(50)));
        assert_eq!(cc.report_interval, Duration::from_secs(300));
        assert_eq!(cc.spool_max_bytes, 10 * 1024 * 1024);
        assert_eq!(cc.trust.keys.len(), 1);
        assert!(!cc.trust.allow_unsigned);
        let c = parse(&central("long_poll_wait_secs = 0\npoll_interval_secs = 60")).unwrap();
        let cc = c.central.unwrap();
        assert_eq!(cc.long_poll_wait, None);
        assert_eq!(cc.report_interval, Duration::from_secs(60));
    }

    #[test]
    fn loopback_http_is_accepted() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3/",
            "http://[::1]:9/x/",
        ] {
            let text =
                format!("[central]\nurl = \"{url}\"\ntoken_file = \"/t\"\nallow_unsigned = true\n");
            assert!(parse(&text).is_ok(), "{url}");
        }
    }

    /// Every bad value → an error naming the key and the rule.
    #[test]
    #[expect(clippy::too_many_lines, reason = "one table row per rule")]
    fn bad_values_name_the_key_and_the_rule() {
        let table: &[(&str, &str, &str)] = &[
            (
                "[central]\nurl = \"http://central.example.com\"\ntoken_file = \"/t\"",
                "central.url",
                "https://",
            ),
            (
                "[central]\nurl = \"http://localhost:8080\"\ntoken_file = \"/t\"",
                "central.url",
                "loopback IP",
            ),
            (
                "[central]\nurl = \"ftp://x\"\ntoken_file = \"/t\"",
                "central.url",
                "must use https://",
            ),
            (
                "[central]\nurl = \"not a url\"\ntoken_file = \"/t\"",
                "central.url",
                "absolute URL",
            ),
            (
                "[central]\nurl = \"https://u:p@x/\"\ntoken_file = \"/t\"",
                "central.url",
                "user name or password",
            ),
            (
                "[central]\nurl = \"https://x/?a=b\"\ntoken_file = \"/t\"",
                "central.url",
                "query",
            ),
            (
                "[central]\nurl = \"https://x\"\ntoken_file = \"token\"",
                "central.token_file",
                "absolute path",
            ),
            (
                "[central]\nurl = \"https://x\"\ntoken_file = \"/t\"\nca_file = \"ca.pem\"",
                "central.ca_file",
                "absolute path",
            ),
            (
                "[central]\nurl = \"https://x\"\ntoken_file = \"/t\"\ntrusted_keys = [\"rsa:AAAA\"]",
                "central.trusted_keys[0]",
                "must start with `ed25519:`",
            ),
            (
                "[central]\nurl = \"https://x\"\ntoken_file = \"/t\"\ntrusted_keys = [\"ed25519:AAAA\"]",
                "central.trusted_keys[0]",
                "exactly 32 bytes",
            ),
            (
                "[central]\nurl = \"https://x\"\ntoken_file = \"/t\"\ntrusted_keys = [\"ed25519:!!\"]",
                "central.trusted_keys[0]",
                "base64",
            ),
            (
                &format!(
                    "[central]\nurl = \"https://x\"\ntoken_file = \"/t\"\ntrusted_keys = [\"{KEY_A}\", \"{KEY_A}\"]"
                ),
                "central.trusted_keys[1]",
                "listed twice",
            ),
            (
                &central("allow_unsigned = true"),
                "central.allow_unsigned",
                "must not be true",
            ),
            (
                &central("poll_interval_secs = 5"),
                "central.poll_interval_secs",
                "between 30 and 86400 (got 5)",
            ),
            (
                &central("poll_interval_secs = 100000"),
                "central.poll_interval_secs",
                "between 30 and 86400",
            ),
            (
                &central("long_poll_wait_secs = 301"),
                "central.long_poll_wait_secs",
                "between 0 and 300 (got 301)",
            ),
            (
                &central("report_interval_secs = 600"),
                "central.report_interval_secs",
                "at most central.poll_interval_secs",
            ),
            (
                &central("report_interval_secs = 10"),
                "central.report_interval_secs",
                "between 30",
            ),
            (
                &central("spool_max_bytes = 1000"),
                "central.spool_max_bytes",
                "between 1048576",
            ),
            ("state_dir = \"var/lib\"", "state_dir", "absolute path"),
            (
                "guid_property = \"Com.Example:Guid\"",
                "guid_property",
                "ZFS user property",
            ),
            (
                "guid_property = \"no-colon\"",
                "guid_property",
                "with a `:`",
            ),
            ("root_pool = \"1pool\"", "root_pool", "a letter first"),
            ("root_pool = \"mirror0\"", "root_pool", "reserved word"),
            (
                "[middleware]\nurl = \"http://x\"",
                "middleware.url",
                "must start with unix://",
            ),
            (
                "[middleware]\nurl = \"ws://192.168.1.5:6000\"",
                "middleware.url",
                "loopback",
            ),
            (
                "[middleware]\nurl = \"unix://relative\"",
                "middleware.url",
                "unix:///absolute",
            ),
            (
                "[middleware]\napi_key_file = \"/k\"",
                "middleware.api_key_file",
                "only used with ws://",
            ),
            (
                "[middleware]\nurl = \"wss://nas\"\napi_user = \"agent\"",
                "middleware.api_user",
                "needs middleware.api_key_file",
            ),
            (
                "[middleware]\nurl = \"wss://nas\"\ntls_pin = \"abcd\"",
                "middleware.tls_pin",
                "64 hex digits",
            ),
            (
                "[middleware]\nurl = \"ws://127.0.0.1:6000\"\ntls_ca_file = \"/ca.pem\"",
                "middleware.url",
                "must use wss://",
            ),
        ];
        for (text, key, rule) in table {
            let errors = errors_of(text);
            assert!(
                errors
                    .iter()
                    .any(|e| e.key == *key && e.rule.contains(rule)),
                "{text:?}: expected {key}: …{rule}…, got {errors:?}"
            );
        }
    }

    #[test]
    fn all_errors_are_reported_together() {
        let errors = errors_of(
            "state_dir = \"rel\"\n[central]\nurl = \"http://x\"\ntoken_file = \"t\"\npoll_interval_secs = 1\n",
        );
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "state_dir",
                "central.url",
                "central.token_file",
                "central.poll_interval_secs"
            ]
        );
        let shown = ConfigError::Invalid {
            path: "agent.toml".into(),
            errors,
        }
        .to_string();
        assert!(shown.starts_with("invalid agent configuration agent.toml:\n  state_dir: must be"));
    }

    #[test]
    fn unknown_keys_and_type_errors_name_the_key() {
        let err = parse(&central("tokenfile = \"/x\"")).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("central.tokenfile"), "{shown}");
        assert!(shown.contains("unknown field `tokenfile`"), "{shown}");
        let err = parse(&central("poll_interval_secs = \"five minutes\"")).unwrap_err();
        let ConfigError::Syntax { key, line, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(key, "central.poll_interval_secs");
        assert_eq!(*line, 5);
        let err = parse("bogus = 1").unwrap_err();
        assert!(
            err.to_string().contains("bogus: unknown field `bogus`"),
            "{err}"
        );
        let err = parse("[centrl]\nurl = \"x\"").unwrap_err();
        assert!(err.to_string().contains("centrl"), "{err}");
        // A secret pasted into an unknown key is never echoed.
        let err = parse("[central]\ntoken = \"CANARY-DEVICE-TOKEN-5e19b3\"\n").unwrap_err();
        assert!(!err.to_string().contains("CANARY"), "{err}");
    }

    #[test]
    fn resolve_without_a_file_uses_defaults_and_overrides() {
        let c = AgentConfig::resolve(
            None,
            Overrides {
                state_dir: Some("/srv/state".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/srv/state"));
        assert!(c.central.is_none());
        let err = AgentConfig::resolve(
            Some(Path::new("/nonexistent/agent.toml")),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(
            state_chain(&err).contains("cannot read /nonexistent/agent.toml"),
            "{err}"
        );
    }

    fn state_chain(e: &ConfigError) -> String {
        crate::fault::error_chain(e)
    }

    #[test]
    fn overrides_win_and_are_validated() {
        let c = parse("").unwrap();
        let c = c
            .with_overrides(Overrides {
                state_dir: Some("/tmp/state".into()),
                middleware_url: Some("ws://127.0.0.1:6000".into()),
                ..Overrides::default()
            })
            .unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/tmp/state"));
        assert_eq!(c.middleware.url, "ws://127.0.0.1:6000");
        let err = parse("")
            .unwrap()
            .with_overrides(Overrides {
                middleware_url: Some("ws://10.0.0.1".into()),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("--middleware: "), "{err}");
        let ok = parse("")
            .unwrap()
            .with_overrides(Overrides {
                middleware_url: Some("wss://nas.local".into()),
                tls_pin: Some("AB:".repeat(32).trim_end_matches(':').into()),
                ..Overrides::default()
            })
            .unwrap();
        assert_eq!(ok.middleware.tls_pin.unwrap(), "ab".repeat(32));
    }

    /// A bad flag is an error naming the flag and the rule — never the config file, and
    /// never a silent fall-back to the default. A relative `--state-dir` is refused
    /// (docs/configuration.md: flags follow the file's rules).
    #[test]
    fn bad_flags_are_named_as_flags() {
        let file = parse("[middleware]\nurl = \"ws://127.0.0.1:6000\"\n").unwrap();
        let cases: &[(Overrides, &str, &str)] = &[
            (
                Overrides {
                    middleware_url: Some("bogus".into()),
                    ..Overrides::default()
                },
                "--middleware",
                "must be a URL such as unix://",
            ),
            (
                Overrides {
                    middleware_url: Some("wss://nas.local".into()),
                    tls_pin: Some("zz".into()),
                    ..Overrides::default()
                },
                "--tls-pin",
                "64 hex digits",
            ),
            (
                Overrides {
                    state_dir: Some("relative/state".into()),
                    ..Overrides::default()
                },
                "--state-dir",
                "must be an absolute path (got `relative/state`)",
            ),
            (
                Overrides {
                    middleware_url: Some("wss://nas.local".into()),
                    api_key_file: Some("key".into()),
                    ..Overrides::default()
                },
                "--api-key-file",
                "absolute path",
            ),
            (
                // The flag and the file's value together break a rule: both are named.
                Overrides {
                    tls_pin: Some("ab".repeat(32)),
                    ..Overrides::default()
                },
                "middleware.url (in the config file)",
                "must use wss://",
            ),
        ];
        for (overrides, key, rule) in cases {
            let err = file.clone().with_overrides(overrides.clone()).unwrap_err();
            let ConfigError::Flags { errors } = &err else {
                panic!("{overrides:?}: expected a flag error, got {err:?}");
            };
            assert!(
                errors
                    .iter()
                    .any(|e| e.key == *key && e.rule.contains(rule)),
                "{overrides:?}: expected {key}: …{rule}…, got {errors:?}"
            );
            let shown = err.to_string();
            assert!(
                shown.starts_with("invalid command-line flag(s):"),
                "{shown}"
            );
        }
    }

    #[test]
    fn b2_section_defaults_off_and_url_rules() {
        let c = parse("").unwrap();
        assert_eq!(c.b2.check_interval, Some(Duration::from_secs(86_400)));
        assert_eq!(c.b2.api_url, "https://api.backblazeb2.com");
        let c = parse("[b2]\ncheck_interval_secs = 0\n").unwrap();
        assert_eq!(c.b2.check_interval, None, "0 turns the checks off");
        let c =
            parse("[b2]\ncheck_interval_secs = 3600\napi_url = \"http://127.0.0.1:9/\"\n").unwrap();
        assert_eq!(c.b2.check_interval, Some(Duration::from_secs(3600)));
        assert_eq!(c.b2.api_url, "http://127.0.0.1:9");
        let c = parse("[b2]\napi_url = \"https://b2.example.net\"\n").unwrap();
        assert_eq!(c.b2.api_url, "https://b2.example.net");
        for (text, rule) in [
            (
                "check_interval_secs = 60",
                "0 (B2 checks off) or between 3600 and 2592000 (got 60)",
            ),
            ("check_interval_secs = 99999999", "between 3600 and 2592000"),
            ("api_url = \"http://api.backblazeb2.com\"", "loopback IP"),
            ("api_url = \"http://localhost:9\"", "loopback IP"),
            ("api_url = \"ftp://x\"", "must use https://"),
            ("api_url = \"b2\"", "absolute URL"),
            ("api_url = \"https://k:s@x\"", "user name or password"),
        ] {
            let errors = errors_of(&format!("[b2]\n{text}\n"));
            assert!(
                errors
                    .iter()
                    .any(|e| e.key.starts_with("b2.") && e.rule.contains(rule)),
                "{text}: {errors:?}"
            );
        }
        let err = parse("[b2]\nchecks = false\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `checks`"), "{err}");
    }

    #[test]
    fn resync_interval_defaults_to_six_hours_and_is_bounded() {
        let c = parse("").unwrap();
        assert_eq!(c.middleware.resync_interval, Duration::from_secs(6 * 3600));
        let c = parse("[middleware]\nresync_interval_secs = 600\n").unwrap();
        assert_eq!(c.middleware.resync_interval, Duration::from_secs(600));
        for (secs, rule) in [
            (599, "must be between 600 and 604800 (got 599)"),
            (604_801, "must be between 600 and 604800 (got 604801)"),
        ] {
            let errors = errors_of(&format!("[middleware]\nresync_interval_secs = {secs}\n"));
            assert!(
                errors
                    .iter()
                    .any(|e| e.key == "middleware.resync_interval_secs" && e.rule == rule),
                "{secs}: {errors:?}"
            );
        }
    }

    fn write_mode(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write_atomic(&path, content.as_bytes(), mode).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn token_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_mode(dir.path(), "token", "CANARY-DEVICE-TOKEN-5e19b3\n", 0o644);
        let err = read_secret_file("central.token_file", &path).unwrap_err();
        let shown = err.to_string();
        let euid = nix::unistd::geteuid().as_raw();
        assert!(shown.contains("central.token_file"), "{shown}");
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(shown.contains("mode 0644"), "{shown}");
        assert!(shown.contains(&format!("owner uid {euid}")), "{shown}");
        assert!(
            shown.contains(&format!("chmod 600 {}", path.display())),
            "{shown}"
        );
        assert!(!shown.contains("CANARY"));
        assert_eq!(err.fault(), Fault::Operator);
        for mode in [0o640, 0o604, 0o660, 0o700 | 0o004] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(read_secret_file("k", &path).is_err(), "{mode:o}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let token = read_secret_file("k", &path).unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&token),
            "CANARY-DEVICE-TOKEN-5e19b3"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read_secret_file("k", &path).is_ok());
    }

    #[test]
    fn token_file_wrong_owner_says_chown() {
        // Only root can create a file owned by someone else; otherwise check the text.
        let err = ConfigError::InsecureSecretFile {
            key: "central.token_file",
            path: "/t".into(),
            mode: 0o600,
            owner: 0,
            expected_owner: 1000,
            fix: "chown 1000 /t".into(),
        };
        assert!(err.to_string().contains("owned by uid 1000"));
        if nix::unistd::geteuid().is_root() {
            let dir = tempfile::tempdir().unwrap();
            let path = write_mode(dir.path(), "token", "tok", 0o600);
            nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(4242)), None).unwrap();
            let shown = read_secret_file("central.token_file", &path)
                .unwrap_err()
                .to_string();
            assert!(shown.contains("owner uid 4242"), "{shown}");
            assert!(
                shown.contains(&format!("chown 0 {}", path.display())),
                "{shown}"
            );
        }
    }

    #[test]
    fn token_file_content_rules() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write_mode(dir.path(), "empty", "\n", 0o600);
        assert!(
            read_secret_file("k", &empty)
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
        let spaced = write_mode(dir.path(), "spaced", "a b", 0o600);
        assert!(
            read_secret_file("k", &spaced)
                .unwrap_err()
                .to_string()
                .contains("single line")
        );
        let missing = dir.path().join("missing");
        let err = read_secret_file("central.token_file", &missing).unwrap_err();
        assert!(
            err.to_string().contains("cannot read central.token_file"),
            "{err}"
        );
    }

    #[test]
    fn middleware_connect_options_read_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = write_mode(dir.path(), "key", "1-CANARY-API-KEY-0a7d62\n", 0o600);
        let text = format!(
            "[middleware]\nurl = \"wss://nas.local\"\napi_key_file = \"{}\"\napi_user = \"agent\"\n",
            key.display()
        );
        let opts = parse(&text).unwrap().middleware.connect_options().unwrap();
        let api = opts.api_key.unwrap();
        assert_eq!(api.username.as_deref(), Some("agent"));
        assert!(!format!("{api:?}").contains("CANARY"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = parse(&text)
            .unwrap()
            .middleware
            .connect_options()
            .unwrap_err();
        assert!(err.to_string().contains("middleware.api_key_file"), "{err}");
    }

    /// The example in docs/configuration.md parses (the docs cannot drift from the code).
    #[test]
    fn documented_example_parses() {
        let doc = include_str!("../../../docs/configuration.md");
        let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
        let example = &doc[start..start + doc[start..].find("```").unwrap()];
        let c = AgentConfig::parse(example, "docs/configuration.md").unwrap();
        assert_eq!(c.root_pool.as_deref(), Some("pool0"));
        assert_eq!(c.central.unwrap().trust.keys.len(), 1);
    }

    #[test]
    fn key_at_finds_table_and_key() {
        let text = "a = 1\n[central]\nurl = \"x\"\n";
        assert_eq!(key_at(text, text.find('"').unwrap()), "central.url");
        assert_eq!(key_at(text, 0), "a");
        assert_eq!(line_column(text, text.find("url").unwrap()), (3, 1));
    }
}

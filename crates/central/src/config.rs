//! The central config file (TOML, `truenas-central serve --config FILE`) → [`CentralConfig`].
//!
//! Owns: parsing (`deny_unknown_fields` at every level), validation of every value with an
//! error naming the key and the rule (all problems at once), the defaults, and reading the
//! webhook secret files (owned by central's user, not readable by group/other — the
//! agent's rule for secret files).
//! Does not: start anything. `[fleet]` feeds `fleet::Policy`, `[dashboard]` the web
//! pages, `[[webhook]]` the delivery worker.
//! Invariants: a [`CentralConfig`] is always fully validated; no secret is written in the
//! file itself (only `secret_file` paths), and no error text contains a secret file's
//! content; a webhook URL is `https://`, or `http://` to a loopback IP (tests, a local
//! relay).
//! Limitations: one UTC offset for the whole fleet (`nas_utc_offset`); the file is read
//! at start (restart central to change it).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use reqwest::Url;
use secrecy::SecretString;
use serde::Deserialize;

use crate::alerts::Event;
use crate::fleet::Policy;
use truenas_agent::config::{ConfigError as AgentConfigError, is_loopback_ip, read_secret_file};
use truenas_agent::fault::Fault;
use truenas_agent::fs::{self, FsError};

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

/// Why the config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the central config file")]
    Read(#[source] FsError),
    #[error("central config {path} line {line} column {column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid central config {path}:\n  {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid {
        path: String,
        errors: Vec<FieldError>,
    },
    #[error("webhook `{name}`: cannot use its secret_file")]
    Secret {
        name: String,
        #[source]
        source: AgentConfigError,
    },
}

impl ConfigError {
    /// The party that has to act: the operator who wrote the file.
    pub fn fault(&self) -> Fault {
        match self {
            ConfigError::Read(_)
            | ConfigError::Syntax { .. }
            | ConfigError::Invalid { .. }
            | ConfigError::Secret { .. } => Fault::Operator,
        }
    }
}

/// `[dashboard]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardConfig {
    /// How long a login lasts.
    pub session: Duration,
    /// The origin browsers use (`https://central.example-msp.com`), when the TLS proxy
    /// does not pass the `Host` header through; POSTs whose `Origin` is anything else are
    /// refused. `None`: the request's own `Host`.
    pub public_origin: Option<String>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            session: Duration::from_secs(12 * 3600),
            public_origin: None,
        }
    }
}

/// `[[webhook]]`: one receiver.
#[derive(Clone)]
pub struct WebhookTarget {
    /// A short name (letters, digits, `-`, `_`), unique.
    pub name: String,
    pub url: Url,
    /// The shared HMAC-SHA256 key.
    pub secret: SecretString,
    /// The events sent to it (all when the file lists none).
    pub events: BTreeSet<Event>,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("name", &self.name)
            // The URL itself may carry a secret (Slack-style hooks): only its origin.
            .field("url", &self.url.origin().ascii_serialization())
            .field("secret", &"[REDACTED]")
            .field("events", &self.events)
            .finish()
    }
}

/// `[webhooks]`: how delivery goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Timeout of one POST.
    pub timeout: Duration,
    /// Attempts before an entry is given up (back-off 30 s doubling to 1 h between them).
    pub max_attempts: u64,
    /// How often the worker looks for due entries when nothing wakes it.
    pub poll: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 30,
            poll: Duration::from_secs(5),
        }
    }
}

/// The validated config file.
#[derive(Debug, Clone)]
pub struct CentralConfig {
    pub fleet: Policy,
    /// How often every device is re-judged (silence and overdue are transitions of time).
    pub evaluate_every: Duration,
    pub dashboard: DashboardConfig,
    pub delivery: DeliveryConfig,
    pub webhooks: Vec<WebhookTarget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    fleet: RawFleet,
    #[serde(default)]
    dashboard: RawDashboard,
    #[serde(default)]
    webhooks: RawDelivery,
    #[serde(default)]
    webhook: Vec<RawWebhook>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    report_interval_secs: Option<u64>,
    silent_grace_secs: Option<u64>,
    backup_grace_hours: Option<u64>,
    nas_utc_offset: Option<String>,
    drops_window_days: Option<u64>,
    evaluate_interval_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDashboard {
    session_hours: Option<u64>,
    public_origin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    timeout_secs: Option<u64>,
    max_attempts: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: String,
    url: String,
    secret_file: PathBuf,
    #[serde(default)]
    events: Vec<String>,
}

/// The defaults (no config file): no webhooks.
impl Default for CentralConfig {
    fn default() -> Self {
        Self {
            fleet: Policy::default(),
            evaluate_every: Duration::from_secs(30),
            dashboard: DashboardConfig::default(),
            delivery: DeliveryConfig::default(),
            webhooks: Vec::new(),
        }
    }
}

impl CentralConfig {
    /// Reads and validates `path`, and reads every webhook's secret file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let bytes = fs::read(path).map_err(ConfigError::Read)?;
        let text = String::from_utf8_lossy(&bytes);
        let origin = path.display().to_string();
        let (config, secrets) = Self::parse(&text, &origin)?;
        config.with_secrets(secrets)
    }

    /// Parses and validates `text` (from `origin`), without reading secret files:
    /// returns the config (webhook secrets empty) and each webhook's `secret_file`.
    pub fn parse(text: &str, origin: &str) -> Result<(Self, Vec<PathBuf>), ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start).min(text.len());
            let before = &text[..offset];
            ConfigError::Syntax {
                path: origin.to_owned(),
                line: before.matches('\n').count() + 1,
                column: before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                message: e.message().trim().to_owned(),
            }
        })?;
        validate(raw).map_err(|errors| ConfigError::Invalid {
            path: origin.to_owned(),
            errors,
        })
    }

    fn with_secrets(mut self, files: Vec<PathBuf>) -> Result<Self, ConfigError> {
        for (target, file) in self.webhooks.iter_mut().zip(files) {
            target.secret = read_secret_file("webhook secret_file", &file).map_err(|source| {
                ConfigError::Secret {
                    name: target.name.clone(),
                    source,
                }
            })?;
        }
        Ok(self)
    }
}

fn range(
    errors: &mut Vec<FieldError>,
    key: &str,
    value: Option<u64>,
    default: u64,
    (lo, hi): (u64, u64),
) -> u64 {
    let v = value.unwrap_or(default);
    if !(lo..=hi).contains(&v) {
        errors.push(FieldError {
            key: key.to_owned(),
            rule: format!("must be between {lo} and {hi} (got {v})"),
        });
    }
    v
}

fn validate(raw: RawConfig) -> Result<(CentralConfig, Vec<PathBuf>), Vec<FieldError>> {
    let mut e = Vec::new();
    let f = &raw.fleet;
    let d = &raw.dashboard;
    let w = &raw.webhooks;
    // (key, value, default, range) of every number, in the order of the file.
    #[rustfmt::skip]
    let numbers = [
        ("fleet.report_interval_secs", f.report_interval_secs, 300, (10, 86_400)),
        ("fleet.silent_grace_secs", f.silent_grace_secs, 600, (0, 7 * 86_400)),
        ("fleet.backup_grace_hours", f.backup_grace_hours, 12, (0, 168)),
        ("fleet.drops_window_days", f.drops_window_days, 7, (0, 365)),
        ("fleet.evaluate_interval_secs", f.evaluate_interval_secs, 30, (1, 3600)),
        ("dashboard.session_hours", d.session_hours, 12, (1, 720)),
        ("webhooks.timeout_secs", w.timeout_secs, 10, (1, 120)),
        ("webhooks.max_attempts", w.max_attempts, 30, (1, 1000)),
    ]
    .map(|(key, value, default, bounds)| range(&mut e, key, value, default, bounds));
    let [
        report,
        grace,
        backup,
        drops,
        every,
        session,
        timeout,
        attempts,
    ] = numbers;
    let nas_offset = f.nas_utc_offset.as_deref().and_then(|text| {
        let parsed = parse_offset(text);
        if parsed.is_none() {
            e.push(FieldError {
                key: "fleet.nas_utc_offset".to_owned(),
                rule: "must be `+HH:MM` or `-HH:MM` between -12:00 and +14:00".to_owned(),
            });
        }
        parsed
    });
    let public_origin = d.public_origin.as_deref().and_then(|text| {
        check_origin(text)
            .map_err(|rule| {
                e.push(FieldError {
                    key: "dashboard.public_origin".to_owned(),
                    rule,
                });
            })
            .ok()
    });
    let (webhooks, files) = webhooks(raw.webhook, &mut e);
    if !e.is_empty() {
        return Err(e);
    }
    // Every value is range-checked above, so these conversions cannot saturate.
    let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
    let config = CentralConfig {
        fleet: Policy {
            report_interval: secs(report),
            silent_grace: secs(grace),
            backup_grace: secs(backup * 3600),
            nas_offset,
            drops_window: secs(drops * 86_400),
        },
        evaluate_every: Duration::from_secs(every),
        dashboard: DashboardConfig {
            session: Duration::from_secs(session * 3600),
            public_origin,
        },
        delivery: DeliveryConfig {
            timeout: Duration::from_secs(timeout),
            max_attempts: attempts,
            ..DeliveryConfig::default()
        },
        webhooks,
    };
    Ok((config, files))
}

fn webhooks(
    raw: Vec<RawWebhook>,
    errors: &mut Vec<FieldError>,
) -> (Vec<WebhookTarget>, Vec<PathBuf>) {
    let mut out = Vec::new();
    let mut files = Vec::new();
    let mut names = BTreeSet::new();
    for (i, w) in raw.into_iter().enumerate() {
        let at = |k: &str| format!("webhook[{i}].{k}");
        let mut bad = |k: &str, rule: String| {
            errors.push(FieldError { key: at(k), rule });
        };
        let name_ok = !w.name.is_empty()
            && w.name.len() <= 64
            && w.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            bad("name", "use 1 to 64 letters, digits, `-` or `_`".to_owned());
        } else if !names.insert(w.name.clone()) {
            bad("name", format!("`{}` is used by another webhook", w.name));
        }
        let url = match check_webhook_url(&w.url) {
            Ok(url) => Some(url),
            Err(rule) => {
                bad("url", rule);
                None
            }
        };
        let mut events = BTreeSet::new();
        for (j, name) in w.events.iter().enumerate() {
            match Event::from_name(name) {
                Some(e) => {
                    events.insert(e);
                }
                None => errors.push(FieldError {
                    key: format!("webhook[{i}].events[{j}]"),
                    rule: format!(
                        "unknown event; known: {}",
                        Event::ALL.map(Event::name).join(", ")
                    ),
                }),
            }
        }
        if events.is_empty() {
            events = Event::ALL.into_iter().collect();
        }
        if let Some(url) = url {
            out.push(WebhookTarget {
                name: w.name,
                url,
                secret: SecretString::from(String::new()),
                events,
            });
            files.push(w.secret_file);
        }
    }
    (out, files)
}

/// `+HH:MM` / `-HH:MM` in −12:00 … +14:00.
pub fn parse_offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    let secs = sign * (h * 3600 + m * 60);
    if m >= 60 || !(-12 * 3600..=14 * 3600).contains(&secs) {
        return None;
    }
    FixedOffset::east_opt(secs)
}

fn check_webhook_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_ip(&url) => {}
        _ => {
            return Err(
                "must be https:// (http:// only to a loopback IP such as 127.0.0.1)".to_owned(),
            );
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials (the body is signed with secret_file)".to_owned());
    }
    Ok(url)
}

fn check_origin(text: &str) -> Result<String, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    let origin = url.origin().ascii_serialization();
    let plain = format!("{origin}/");
    if !matches!(url.scheme(), "https" | "http")
        || (url.as_str() != plain && url.as_str() != origin)
    {
        return Err(
            "must be an origin: scheme, host and optional port, e.g. https://central.example.com"
                .to_owned(),
        );
    }
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match CentralConfig::parse(text, "central.toml") {
            Err(ConfigError::Invalid { errors, .. }) => {
                errors.iter().map(|e| e.key.clone()).collect()
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let (c, files) = CentralConfig::parse("", "x").unwrap();
        assert_eq!(c.fleet, Policy::default());
        assert_eq!(c.evaluate_every, Duration::from_secs(30));
        assert_eq!(c.dashboard, DashboardConfig::default());
        assert!(c.webhooks.is_empty() && files.is_empty());
        let d = CentralConfig::default();
        assert_eq!(d.evaluate_every, c.evaluate_every);
        assert_eq!(d.delivery, c.delivery);
    }

    #[test]
    fn a_full_file_parses() {
        let text = r#"
[fleet]
report_interval_secs = 60
silent_grace_secs = 120
backup_grace_hours = 6
nas_utc_offset = "+05:45"
evaluate_interval_secs = 10

[dashboard]
session_hours = 8
public_origin = "https://central.example.com"

[webhooks]
timeout_secs = 5
max_attempts = 3

[[webhook]]
name = "ops"
url = "https://hooks.example.com/truenas"
secret_file = "/etc/truenas-central/ops.secret"
events = ["backup.failed", "device.silent"]

[[webhook]]
name = "local"
url = "http://127.0.0.1:9000/hook"
secret_file = "/etc/truenas-central/local.secret"
"#;
        let (c, files) = CentralConfig::parse(text, "x").unwrap();
        assert_eq!(c.fleet.report_interval, chrono::Duration::seconds(60));
        assert_eq!(c.fleet.silent_after(), chrono::Duration::seconds(180));
        assert_eq!(c.fleet.backup_grace, chrono::Duration::hours(6));
        assert_eq!(
            c.fleet.nas_offset,
            FixedOffset::east_opt(5 * 3600 + 45 * 60)
        );
        assert_eq!(c.evaluate_every, Duration::from_secs(10));
        assert_eq!(c.dashboard.session, Duration::from_secs(8 * 3600));
        assert_eq!(
            c.dashboard.public_origin.as_deref(),
            Some("https://central.example.com")
        );
        assert_eq!(c.delivery.max_attempts, 3);
        assert_eq!(c.webhooks.len(), 2);
        assert_eq!(
            c.webhooks[0].events,
            [Event::BackupFailed, Event::DeviceSilent]
                .into_iter()
                .collect()
        );
        assert_eq!(c.webhooks[1].events.len(), Event::ALL.len());
        assert_eq!(files[1], PathBuf::from("/etc/truenas-central/local.secret"));
        assert!(!format!("{:?}", c.webhooks[0]).contains("secret_file"));
    }

    #[test]
    fn every_problem_is_named() {
        let text = r#"
[fleet]
report_interval_secs = 1
nas_utc_offset = "+15:00"
[dashboard]
public_origin = "https://central.example.com/path"
[[webhook]]
name = "bad name"
url = "http://hooks.example.com/x"
secret_file = "/x"
events = ["backup.*"]
[[webhook]]
name = "dup"
url = "https://user:pw@hooks.example.com/"
secret_file = "/x"
[[webhook]]
name = "dup"
url = "https://hooks.example.com/"
secret_file = "/x"
"#;
        assert_eq!(
            errors(text),
            [
                "fleet.report_interval_secs",
                "fleet.nas_utc_offset",
                "dashboard.public_origin",
                "webhook[0].name",
                "webhook[0].url",
                "webhook[0].events[0]",
                "webhook[1].url",
                "webhook[2].name",
            ]
        );
    }

    #[test]
    fn unknown_keys_and_syntax_errors_are_refused() {
        let err = CentralConfig::parse("[fleet]\nreport_interval = 5\n", "c.toml").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("c.toml line 2"), "{err}");
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+00:00"), FixedOffset::east_opt(0));
        assert_eq!(parse_offset("-12:00"), FixedOffset::east_opt(-12 * 3600));
        assert_eq!(parse_offset("+14:00"), FixedOffset::east_opt(14 * 3600));
        for bad in [
            "", "0", "+1:00", "+14:01", "-12:30", "+05:60", "05:00", "+05",
        ] {
            assert_eq!(parse_offset(bad), None, "{bad}");
        }
    }
}

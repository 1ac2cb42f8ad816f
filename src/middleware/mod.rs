//! The TrueNAS middleware, as the rest of the agent sees it.
//!
//! Owns: the [`Middleware`] seam (one call, wait for a job), the [`Call`] value, the
//! [`Method`] allow-list, the decoded [`Job`] and [`CallError`], the detected
//! [`ApiInfo`], and — in its submodules — the real client (transports, both wire
//! protocols, auth, reconnect) and the per-version request builders.
//! Does not: decide what to change on the NAS (`plan`), nor interpret task health
//! (`health`). Only `apply` (and `install`) send calls that write.
//! Invariants: params are always a positional JSON array; a [`Call`]'s `Debug` never
//! shows its params (they may hold secrets); an API key is never sent over a transport
//! that is not a unix socket, TLS or loopback.
//! Limitations: supports TrueNAS SCALE 24.10, 25.04 and 25.10; newer releases are
//! treated as 25.10 and flagged in `status`.

pub mod calls;
pub mod client;
pub mod client_calls;
pub mod conn;
pub mod ejson;
pub mod error;
pub mod job;
pub mod jobs;
pub mod method;
pub mod rpc;
pub mod tls;
pub mod transport;
pub mod url;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use client::{Client, ClientSettings, ConnectError};
pub use conn::{Subscription, SubscriptionError};
pub use error::{CallError, ValidationItem};
pub use job::{Job, JobArgs, JobId, JobProgress, JobState};
pub use method::Method;
pub use rpc::{Event, EventKind};

/// Default middleware URL: WebSocket over the local unix socket (root is logged in
/// implicitly from the peer credentials; no secret needed).
pub const DEFAULT_URL: &str = "unix:///var/run/middleware/middlewared.sock";

/// One middleware call: a method from the allow-list and its positional params.
#[derive(Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    pub params: Vec<Value>,
}

impl Call {
    /// A call with positional params.
    pub fn new(method: Method, params: Vec<Value>) -> Self {
        Self { method, params }
    }

    /// A call without params.
    pub fn bare(method: Method) -> Self {
        Self {
            method,
            params: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Call {
    // Params may carry B2 keys, encryption passwords or SNMP secrets: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("params", &format_args!("[{} redacted]", self.params.len()))
            .finish()
    }
}

/// Which TrueNAS API family a box speaks (REFERENCE §6 lists the differences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ApiFlavor {
    /// 24.10 "Electric Eel": legacy `/websocket` only.
    #[serde(rename = "24.10")]
    V24_10,
    /// 25.04 "Fangtooth": JSON-RPC 2.0 at `/api/current`.
    #[serde(rename = "25.04")]
    V25_04,
    /// 25.10 "Goldeye" (and newer, best effort).
    #[serde(rename = "25.10")]
    V25_10,
}

impl ApiFlavor {
    /// Every supported flavour.
    pub const ALL: [ApiFlavor; 3] = [ApiFlavor::V24_10, ApiFlavor::V25_04, ApiFlavor::V25_10];

    /// Maps `system.version_short` (e.g. `25.04.2.6`) to a flavour. Releases newer
    /// than 25.10 map to 25.10 (`newer_than_known` is then true).
    pub fn from_version_short(version: &str) -> Result<(ApiFlavor, bool), UnsupportedVersion> {
        let mut parts = version.trim().split('.');
        let parse = |p: Option<&str>| p.and_then(|s| s.parse::<u32>().ok());
        let (Some(major), Some(minor)) = (parse(parts.next()), parse(parts.next())) else {
            return Err(UnsupportedVersion(version.to_owned()));
        };
        match (major, minor) {
            (24, 10) => Ok((ApiFlavor::V24_10, false)),
            (25, 4) => Ok((ApiFlavor::V25_04, false)),
            (25, 10) => Ok((ApiFlavor::V25_10, false)),
            (m, n) if (m, n) > (25, 10) => Ok((ApiFlavor::V25_10, true)),
            _ => Err(UnsupportedVersion(version.to_owned())),
        }
    }

    /// The directory name under `shared/truenas-api/`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiFlavor::V24_10 => "24.10",
            ApiFlavor::V25_04 => "25.04",
            ApiFlavor::V25_10 => "25.10",
        }
    }
}

impl std::fmt::Display for ApiFlavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TrueNAS release this agent cannot talk to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TrueNAS version `{0}` is not supported (supported: 24.10, 25.04, 25.10 and newer)")]
pub struct UnsupportedVersion(pub String);

/// Which wire protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// JSON-RPC 2.0 at `/api/current` (25.04+).
    JsonRpc,
    /// The DDP-style `/websocket` protocol (24.10).
    Legacy,
}

/// How the connection reaches the middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// WebSocket over the middleware's unix socket.
    UnixSocket,
    /// Plain WebSocket to a loopback address.
    Loopback,
    /// WebSocket over TLS (`wss://`).
    Tls,
}

/// What was detected when the connection was set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiInfo {
    pub flavor: ApiFlavor,
    /// `system.version_short`, e.g. `25.04.2.6`.
    pub version: String,
    pub protocol: Protocol,
    pub transport: TransportKind,
}

/// An API key and the user it belongs to (25.04+ keys are user-linked).
pub struct ApiKey {
    /// Key owner (required by `auth.login_ex` on 25.04+; ignored on 24.10).
    pub username: Option<String>,
    /// `<id>-<secret>`.
    pub key: SecretString,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("username", &self.username)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// How to reach and log in to the middleware.
#[derive(Debug)]
pub struct ConnectOptions {
    /// `unix:///path`, `ws://127.0.0.1:6000` (loopback only) or `wss://host[:port]`.
    pub url: String,
    /// API key for TCP transports; `None` for the unix socket as root.
    pub api_key: Option<ApiKey>,
    /// Extra CA certificate (PEM) for `wss://`.
    pub tls_ca_file: Option<PathBuf>,
    /// Pinned SHA-256 of the server certificate (hex, `:` separators allowed) for `wss://`.
    pub tls_pin_sha256: Option<String>,
    /// Timeout of each call.
    pub call_timeout: Duration,
    /// Timeout of connecting + handshake + login.
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            api_key: None,
            tls_ca_file: None,
            tls_pin_sha256: None,
            call_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
        }
    }
}

/// What the agent needs from a middleware connection. Implemented by the real client,
/// by the in-process simulator (tests), and by wrappers (recording, fault injection).
pub trait Middleware: Send + Sync {
    /// What was detected at connect time.
    fn api(&self) -> ApiInfo;

    /// Sends one call and returns its `result`. Job methods return the job id.
    fn call(&self, call: Call) -> impl Future<Output = Result<Value, CallError>> + Send;

    /// Waits until job `id` reaches a terminal state and returns it.
    fn wait_job(
        &self,
        id: JobId,
        timeout: Duration,
    ) -> impl Future<Output = Result<Job, CallError>> + Send;
}

impl<T: Middleware + ?Sized> Middleware for &T {
    fn api(&self) -> ApiInfo {
        (**self).api()
    }
    fn call(&self, call: Call) -> impl Future<Output = Result<Value, CallError>> + Send {
        (**self).call(call)
    }
    fn wait_job(
        &self,
        id: JobId,
        timeout: Duration,
    ) -> impl Future<Output = Result<Job, CallError>> + Send {
        (**self).wait_job(id, timeout)
    }
}

impl<T: Middleware + ?Sized> Middleware for Arc<T> {
    fn api(&self) -> ApiInfo {
        (**self).api()
    }
    fn call(&self, call: Call) -> impl Future<Output = Result<Value, CallError>> + Send {
        (**self).call(call)
    }
    fn wait_job(
        &self,
        id: JobId,
        timeout: Duration,
    ) -> impl Future<Output = Result<Job, CallError>> + Send {
        (**self).wait_job(id, timeout)
    }
}

/// Decodes a job method's answer (the job id).
pub fn job_id_of(method: Method, value: &Value) -> Result<JobId, CallError> {
    value.as_u64().ok_or_else(|| CallError::Protocol {
        method,
        detail: format!("expected a job id, got {}", type_name(value)),
    })
}

/// JSON type name, for error texts that must not echo values.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flavours_from_versions() {
        assert_eq!(
            ApiFlavor::from_version_short("24.10.2.4").unwrap(),
            (ApiFlavor::V24_10, false)
        );
        assert_eq!(
            ApiFlavor::from_version_short("25.04.2.6").unwrap(),
            (ApiFlavor::V25_04, false)
        );
        assert_eq!(
            ApiFlavor::from_version_short("25.10.7").unwrap(),
            (ApiFlavor::V25_10, false)
        );
        assert_eq!(
            ApiFlavor::from_version_short("26.04.0").unwrap(),
            (ApiFlavor::V25_10, true)
        );
        assert!(ApiFlavor::from_version_short("24.04.2").is_err());
        assert!(ApiFlavor::from_version_short("garbage").is_err());
    }

    #[test]
    fn call_debug_hides_params() {
        let call = Call::new(
            Method::CredentialsCreate,
            vec![json!({"provider": {"key": "CANARY-B2-KEY"}})],
        );
        let shown = format!("{call:?}");
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(shown.contains("CredentialsCreate"));
    }
}

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
//! Limitations: supports TrueNAS SCALE 24.10, 25.04, 25.10, 26.0 and 27.0; a newer
//! release is driven through the newest API version it serves that the agent knows
//! ([`choose_api_version`]) and flagged in `status` ([`ApiInfo::newer_than_known`]).

pub mod calls;
pub(crate) mod client;
pub mod client_calls;
pub(crate) mod conn;
pub(crate) mod connect_error;
pub mod ejson;
pub(crate) mod error;
pub(crate) mod flavor;
pub(crate) mod job;
pub mod jobs;
pub(crate) mod method;
pub mod rpc;
mod session;
pub mod tls;
pub(crate) mod transport;
pub(crate) mod url;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use client::{Client, ClientSettings};
pub use conn::{Subscription, SubscriptionError};
pub use connect_error::ConnectError;
pub use error::{CallError, ValidationItem};
pub use flavor::{
    ApiFlavor, KNOWN_API_VERSIONS, UnsupportedVersion, choose_api_version, release_of,
};
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

/// Which wire protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// JSON-RPC 2.0 at `/api/vX.Y.Z` (25.04+).
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
    /// The family whose request shapes are used (the pinned API version's family).
    pub flavor: ApiFlavor,
    /// `system.version_short` (the TrueNAS release), e.g. `25.04.2.6`, `26.0.0-BETA.3`.
    pub version: String,
    pub protocol: Protocol,
    pub transport: TransportKind,
    /// The versioned JSON-RPC endpoint in use, e.g. `v26.0.0` (`/api/v26.0.0`); `None`
    /// on the legacy `/websocket` protocol (24.10).
    #[serde(default)]
    pub api_version: Option<String>,
    /// The release is newer than the family it is driven as (a release this agent does
    /// not know, e.g. 28.0 driven through API v27.0.0).
    #[serde(default)]
    pub newer_than_known: bool,
}

impl ApiInfo {
    /// `v26.0.0`, or `legacy /websocket` — for humans (`status`).
    pub fn api_label(&self) -> String {
        match (&self.api_version, self.protocol) {
            (Some(v), _) => v.clone(),
            (None, Protocol::Legacy) => "legacy /websocket".to_owned(),
            (None, Protocol::JsonRpc) => "current".to_owned(),
        }
    }
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

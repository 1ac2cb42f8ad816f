//! Why a middleware session could not be set up: [`ConnectError`].
//!
//! Owns: the error type of connecting (transport, TLS, HTTP route, login, version) and
//! who has to act on each ([`ConnectError::fault`]), and how a call that found no
//! connection reports it.
//! Does not: connect (`client.rs`, `transport.rs`).
//! Invariants: no variant carries the API key or call params.
//! Limitations: none known.

use std::net::IpAddr;
use std::time::Duration;

use super::tls::{CertFingerprint, TlsError};
use super::url::UrlError;
use super::{CallError, Method, UnsupportedVersion};
use crate::fault::{Fault, error_chain};

/// Setting up a middleware session failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is malformed.
    #[error("invalid middleware URL")]
    Url(#[from] UrlError),
    /// Plain ws:// to something that is not loopback.
    #[error(
        "refusing plain ws:// to {url}{}: plain WebSocket is only allowed to a loopback address. TrueNAS 25.04+ revokes an API key used over a transport that is not a unix socket, TLS or loopback; use the unix socket ({}), or wss://",
        peer.map(|p| format!(" (address {p})")).unwrap_or_default(),
        super::DEFAULT_URL
    )]
    InsecureTransport { url: String, peer: Option<IpAddr> },
    /// Nothing listens on the loopback port of a plain ws:// URL.
    #[error(
        "nothing listens at {url}: TrueNAS 26.0 and later open 127.0.0.1:6000 only on vendor builds; use the unix socket {} (the default; no API key needed) or wss://<the box>",
        super::DEFAULT_URL
    )]
    LoopbackRefused {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// TCP without an API key cannot log in.
    #[error(
        "{url} needs an API key: only the unix socket logs root in implicitly (give --api-key-file)"
    )]
    ApiKeyRequired { url: String },
    /// 25.04+ keys are user-linked; `auth.login_ex` needs the owner.
    #[error(
        "{url} runs TrueNAS 25.04 or newer, whose API keys belong to a user: give the key's owner (--api-user)"
    )]
    ApiUserRequired { url: String },
    /// TLS options with a URL that is not wss://.
    #[error("TLS options (extra CA file, pin) only apply to wss:// URLs, not to {url}")]
    TlsOptionsWithoutTls { url: String },
    /// The TLS configuration could not be built.
    #[error("TLS set-up failed")]
    Tls(#[from] TlsError),
    /// The server certificate is not the pinned one.
    #[error(
        "the TLS certificate of {url} does not match the pin: the server presented SHA-256 {presented}, the pin is {expected}"
    )]
    PinMismatch {
        url: String,
        expected: CertFingerprint,
        presented: CertFingerprint,
    },
    /// The TLS handshake failed on certificate verification.
    #[error("the TLS certificate of {url} was not accepted")]
    TlsRejected {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// A socket operation failed.
    #[error("cannot {step} {url}")]
    Transport {
        url: String,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP upgrade (or `GET /api/versions`) was answered with this status.
    #[error("{url}{route} answered HTTP {status}{}", http_hint(*status))]
    HttpStatus {
        url: String,
        route: String,
        status: u16,
    },
    /// `GET /api/versions` answered 200 with something that is not a version list.
    #[error("{url}/api/versions answered something that is not a list of API versions: {detail}")]
    BadVersions { url: String, detail: String },
    /// The box is 25.04 or newer but offered no versioned API on this URL, only the
    /// legacy `/websocket` (a proxy that does not forward `/api`?).
    #[error(
        "{url} runs TrueNAS {version}, but offered no JSON-RPC API there (GET /api/versions answered HTTP {status}); the agent speaks the legacy protocol to 24.10 only: connect through the unix socket {}",
        super::DEFAULT_URL
    )]
    NoVersionedApi {
        url: String,
        version: String,
        status: u16,
    },
    /// The WebSocket handshake failed.
    #[error("WebSocket handshake on {url}{route} failed")]
    WebSocket {
        url: String,
        route: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The legacy `connect` exchange failed.
    #[error("the legacy /websocket handshake with {url} failed: {detail}")]
    LegacyHandshake { url: String, detail: String },
    /// Connecting and logging in took too long.
    #[error("connecting to {url} timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    /// `auth.login_ex` answered `EXPIRED`.
    #[error(
        "API key revoked or expired: {url} refused it (TrueNAS 25.04+ also revokes a key that was used over an insecure transport); create a new key"
    )]
    ApiKeyRevoked { url: String },
    /// The login was refused for another reason.
    #[error("logging in to {url} failed: {reason}")]
    LoginFailed { url: String, reason: String },
    /// A call made while setting up the session failed.
    #[error("cannot {step} on {url}")]
    Setup {
        url: String,
        step: &'static str,
        #[source]
        source: CallError,
    },
    /// The box runs a release this agent cannot talk to.
    #[error("{url} runs a TrueNAS version this agent does not support")]
    UnsupportedVersion {
        url: String,
        #[source]
        source: UnsupportedVersion,
    },
}

impl ConnectError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ConnectError::Url(_)
            | ConnectError::InsecureTransport { .. }
            | ConnectError::NoVersionedApi { .. }
            | ConnectError::ApiKeyRequired { .. }
            | ConnectError::ApiUserRequired { .. }
            | ConnectError::TlsOptionsWithoutTls { .. }
            | ConnectError::PinMismatch { .. }
            | ConnectError::TlsRejected { .. }
            | ConnectError::ApiKeyRevoked { .. }
            | ConnectError::LoginFailed { .. } => Fault::Operator,
            ConnectError::Tls(e) => e.fault(),
            ConnectError::Transport { .. }
            | ConnectError::LoopbackRefused { .. }
            | ConnectError::WebSocket { .. }
            | ConnectError::LegacyHandshake { .. }
            | ConnectError::Timeout { .. } => Fault::Transient,
            ConnectError::HttpStatus { status, .. } if *status >= 500 => Fault::Transient,
            ConnectError::HttpStatus { status, .. } if is_redirect(*status) => Fault::Operator,
            ConnectError::HttpStatus { .. }
            | ConnectError::BadVersions { .. }
            | ConnectError::UnsupportedVersion { .. } => Fault::Nas,
            ConnectError::Setup { source, .. } => source.fault(),
        }
    }

    /// The error as seen by a call that could not get a connection.
    pub(crate) fn for_call(&self, method: Method) -> CallError {
        match self {
            ConnectError::ApiKeyRevoked { .. } | ConnectError::LoginFailed { .. } => {
                CallError::NotAuthorized {
                    method,
                    reason: error_chain(self),
                }
            }
            _ => CallError::Unavailable {
                method,
                detail: error_chain(self),
            },
        }
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// What an HTTP status instead of a WebSocket upgrade means, for the error text.
fn http_hint(status: u16) -> &'static str {
    match status {
        s if is_redirect(s) => {
            " (a redirect instead of a WebSocket upgrade): TrueNAS's web server redirects plain HTTP to HTTPS when that is on (307), and paths it does not serve to the web UI (302); use wss://<the box> or the unix socket"
        }
        401 | 403 => {
            " (the request was refused: check the API key, its user, and the UI address allow-list)"
        }
        404 => " (no such route: this TrueNAS does not serve this API version)",
        _ => " instead of a WebSocket upgrade",
    }
}

//! The HTTPS client for central: one request in, one classified response out.
//!
//! Owns: the reqwest client (rustls with the ring provider; system roots plus the
//! optional extra CA; `https_only` unless the URL is a loopback IP; no redirects; no
//! proxy for loopback; connect and per-request timeouts), the `Authorization: Bearer`
//! and `User-Agent` headers, the 1 MiB response cap enforced while streaming, the
//! mapping of status codes to [`ConfigResponse`] / [`ReportResponse`] / [`ClientError`]
//! exactly as contract §2 and §4 say, and `Retry-After` parsing.
//! Does not: verify signatures, compare revisions, retry, or sleep — `fetch` and `outbox`
//! decide what to do next.
//! Invariants: the token is only ever put into a header marked sensitive; no error text
//! contains the token or a response body; every request has a timeout; a body larger
//! than [`MAX_BODY`] is refused before more than `MAX_BODY` bytes are buffered.
//! Limitations: HTTP/1.1 only (no `http2` feature); proxies from the environment
//! (`HTTPS_PROXY`) apply to https:// URLs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{CentralConfig, is_loopback_ip};
use crate::fault::Fault;
use crate::fs::{self, FsError};

/// Largest response body accepted (contract §1).
pub const MAX_BODY: usize = 1024 * 1024;
/// Timeout of the TCP/TLS connection set-up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of a request on top of the long-poll wait.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `Retry-After` honoured; a longer one is clamped (a broken server must not
/// silence the agent for days).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// Which request failed, for error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    FetchConfig,
    PostReport,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::FetchConfig => "GET /v1/config",
            Operation::PostReport => "POST /v1/reports",
        })
    }
}

/// A request to central failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read central.ca_file")]
    ReadCa(#[source] FsError),
    #[error("central.ca_file {path} holds no PEM certificate")]
    BadCa { path: String },
    #[error("cannot set up the HTTPS client for central")]
    Setup(#[source] reqwest::Error),
    #[error("the device token cannot be sent in an HTTP header")]
    BadToken,
    #[error("{op} failed: network or TLS error")]
    Transport {
        op: Operation,
        #[source]
        source: reqwest::Error,
    },
    #[error("{op}: central rejected the device token (HTTP {status})")]
    TokenRejected { op: Operation, status: u16 },
    #[error("{op}: central is rate-limiting this device (HTTP 429{})", retry_note(*.retry_after))]
    RateLimited {
        op: Operation,
        retry_after: Option<Duration>,
    },
    #[error("{op}: central is unavailable (HTTP {status}{})", retry_note(*.retry_after))]
    ServerError {
        op: Operation,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{op}: unexpected HTTP {status} from central")]
    UnexpectedStatus { op: Operation, status: u16 },
    #[error("{op}: response body is larger than {MAX_BODY} bytes")]
    BodyTooLarge { op: Operation },
}

fn retry_note(after: Option<Duration>) -> String {
    after.map_or_else(String::new, |d| format!(", retry after {}s", d.as_secs()))
}

impl ClientError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ClientError::ReadCa(_) | ClientError::BadCa { .. } | ClientError::BadToken => {
                Fault::Operator
            }
            ClientError::Setup(_) => Fault::Bug,
            ClientError::Transport { .. }
            | ClientError::RateLimited { .. }
            | ClientError::ServerError { .. } => Fault::Transient,
            ClientError::TokenRejected { .. }
            | ClientError::UnexpectedStatus { .. }
            | ClientError::BodyTooLarge { .. } => Fault::Central,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::RateLimited { retry_after, .. }
            | ClientError::ServerError { retry_after, .. } => *retry_after,
            ClientError::ReadCa(_)
            | ClientError::BadCa { .. }
            | ClientError::Setup(_)
            | ClientError::BadToken
            | ClientError::Transport { .. }
            | ClientError::TokenRejected { .. }
            | ClientError::UnexpectedStatus { .. }
            | ClientError::BodyTooLarge { .. } => None,
        }
    }
}

/// What `GET /v1/config` returned.
#[derive(Clone, PartialEq, Eq)]
pub enum ConfigResponse {
    /// 200: an envelope (unverified) and its ETag.
    Document { etag: Option<String>, body: Vec<u8> },
    /// 304: the document with the ETag we sent is still current.
    NotModified,
    /// 204 or 404: no document is assigned to this device yet.
    NoDocument { status: u16 },
}

impl std::fmt::Debug for ConfigResponse {
    // The body holds the document's secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigResponse::Document { etag, body } => f
                .debug_struct("Document")
                .field("etag", etag)
                .field("body", &format_args!("[{} bytes]", body.len()))
                .finish(),
            ConfigResponse::NotModified => f.write_str("NotModified"),
            ConfigResponse::NoDocument { status } => f
                .debug_struct("NoDocument")
                .field("status", status)
                .finish(),
        }
    }
}

/// What `POST /v1/reports` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportResponse {
    /// 2xx: stored (or already stored: central de-duplicates on `report_id`).
    Accepted { status: u16 },
    /// 4xx other than 401/403/408/429: rejected for good; the report is dropped.
    Rejected { status: u16 },
}

/// The client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct CentralClient {
    http: reqwest::Client,
    config_url: Url,
    reports_url: Url,
    auth: HeaderValue,
}

impl std::fmt::Debug for CentralClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CentralClient")
            .field("config_url", &self.config_url.as_str())
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl CentralClient {
    /// Builds the client for a validated `[central]` section and the device token.
    pub fn new(config: &CentralConfig, token: &SecretString) -> Result<Self, ClientError> {
        // reqwest's `rustls-no-provider` needs a process-wide provider.
        crate::middleware::tls::install_crypto_provider();
        let loopback_http = config.url.scheme() == "http" && is_loopback_ip(&config.url);
        let mut builder = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            .https_only(!loopback_http)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .http1_only();
        if loopback_http {
            builder = builder.no_proxy();
        }
        if let Some(path) = &config.ca_file {
            let pem = fs::read(path).map_err(ClientError::ReadCa)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| ClientError::BadCa {
                    path: path.display().to_string(),
                })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(ClientError::Setup)?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| ClientError::BadToken)?;
        auth.set_sensitive(true);
        Ok(Self {
            http,
            config_url: config.config_url(),
            reports_url: config.reports_url(),
            auth,
        })
    }

    /// `GET /v1/config`, with `If-None-Match` when `etag` is known and `wait=<s>` when
    /// long-polling. The request times out after `wait` + [`REQUEST_TIMEOUT`].
    pub async fn get_config(
        &self,
        etag: Option<&str>,
        wait: Option<Duration>,
    ) -> Result<ConfigResponse, ClientError> {
        const OP: Operation = Operation::FetchConfig;
        let mut url = self.config_url.clone();
        if let Some(wait) = wait {
            url.query_pairs_mut()
                .append_pair("wait", &wait.as_secs().clamp(1, 300).to_string());
        }
        let mut request = self
            .http
            .get(url)
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::ACCEPT, "application/json")
            .timeout(wait.unwrap_or_default() + REQUEST_TIMEOUT);
        if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|source| transport(OP, source))?;
        let status = response.status();
        match status.as_u16() {
            200 => {
                let etag = header_string(response.headers(), header::ETAG);
                let body = read_capped(OP, response).await?;
                Ok(ConfigResponse::Document { etag, body })
            }
            304 => Ok(ConfigResponse::NotModified),
            204 | 404 => Ok(ConfigResponse::NoDocument {
                status: status.as_u16(),
            }),
            _ => Err(status_error(OP, status, response.headers())),
        }
    }

    /// `POST /v1/reports` with a JSON body (already encoded, at most [`MAX_BODY`]).
    ///
    /// 401/403 are [`ClientError::TokenRejected`], not [`ReportResponse::Rejected`]: they
    /// say nothing about the report, only that the token is wrong (mis-set, rotated,
    /// device disabled), so the report must be kept until the token works again
    /// (docs/central.md, "Reports and a rejected token").
    pub async fn post_report(&self, body: Vec<u8>) -> Result<ReportResponse, ClientError> {
        const OP: Operation = Operation::PostReport;
        let response = self
            .http
            .post(self.reports_url.clone())
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .timeout(REQUEST_TIMEOUT)
            .body(body)
            .send()
            .await
            .map_err(|source| transport(OP, source))?;
        let status = response.status();
        let headers = response.headers().clone();
        // Drain (capped) so the connection can be reused; the content is not needed.
        let _ = read_capped(OP, response).await;
        match status.as_u16() {
            200..=299 => Ok(ReportResponse::Accepted {
                status: status.as_u16(),
            }),
            401 | 403 | 408 | 429 => Err(status_error(OP, status, &headers)),
            400..=499 => Ok(ReportResponse::Rejected {
                status: status.as_u16(),
            }),
            _ => Err(status_error(OP, status, &headers)),
        }
    }
}

fn transport(op: Operation, source: reqwest::Error) -> ClientError {
    // reqwest errors carry the URL, which holds no secret (no userinfo, only `wait`).
    ClientError::Transport { op, source }
}

/// Maps a status that is neither success nor "no document" to its error.
fn status_error(op: Operation, status: StatusCode, headers: &HeaderMap) -> ClientError {
    let retry_after = || {
        header_string(headers, header::RETRY_AFTER).and_then(|v| parse_retry_after(&v, Utc::now()))
    };
    match status.as_u16() {
        401 | 403 => ClientError::TokenRejected {
            op,
            status: status.as_u16(),
        },
        429 => ClientError::RateLimited {
            op,
            retry_after: retry_after(),
        },
        408 | 500..=599 => ClientError::ServerError {
            op,
            status: status.as_u16(),
            retry_after: retry_after(),
        },
        other => ClientError::UnexpectedStatus { op, status: other },
    }
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Reads a body, refusing it as soon as it exceeds [`MAX_BODY`] (also when the
/// `Content-Length` announces more).
async fn read_capped(
    op: Operation,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, ClientError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY as u64)
    {
        return Err(ClientError::BodyTooLarge { op });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| transport(op, source))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ClientError::BodyTooLarge { op });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date (relative to `now`), clamped to
/// [`MAX_RETRY_AFTER`]. A date in the past is zero.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let after = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = DateTime::parse_from_rfc2822(value)
            .ok()?
            .with_timezone(&Utc);
        (at - now).to_std().unwrap_or_default()
    };
    Some(after.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn retry_after_forms() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn status_mapping() {
        let h = HeaderMap::new();
        let op = Operation::FetchConfig;
        assert!(matches!(
            status_error(op, StatusCode::UNAUTHORIZED, &h),
            ClientError::TokenRejected { status: 401, .. }
        ));
        assert!(matches!(
            status_error(op, StatusCode::FORBIDDEN, &h),
            ClientError::TokenRejected { status: 403, .. }
        ));
        let mut with_retry = HeaderMap::new();
        with_retry.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        let e = status_error(op, StatusCode::TOO_MANY_REQUESTS, &with_retry);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(e.fault(), Fault::Transient);
        assert!(e.to_string().contains("retry after 7s"), "{e}");
        assert!(matches!(
            status_error(op, StatusCode::BAD_GATEWAY, &h),
            ClientError::ServerError { status: 502, .. }
        ));
        assert!(matches!(
            status_error(op, StatusCode::REQUEST_TIMEOUT, &h),
            ClientError::ServerError { status: 408, .. }
        ));
        let e = status_error(op, StatusCode::MOVED_PERMANENTLY, &h);
        assert!(matches!(
            e,
            ClientError::UnexpectedStatus { status: 301, .. }
        ));
        assert_eq!(e.fault(), Fault::Central);
        assert_eq!(
            ClientError::TokenRejected { op, status: 401 }.to_string(),
            "GET /v1/config: central rejected the device token (HTTP 401)"
        );
    }

    #[test]
    fn debug_hides_the_token_and_bodies() {
        let config = crate::config::AgentConfig::parse(
            "[central]\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"/t\"\nallow_unsigned = true\n",
            "t",
        )
        .unwrap()
        .central
        .unwrap();
        let client =
            CentralClient::new(&config, &SecretString::from("CANARY-DEVICE-TOKEN-5e19b3")).unwrap();
        assert!(!format!("{client:?}").contains("CANARY"));
        assert!(!format!("{:?}", client.auth).contains("CANARY"));
        let doc = ConfigResponse::Document {
            etag: None,
            body: b"CANARY-ENC-SALT-9d0c55".to_vec(),
        };
        assert!(!format!("{doc:?}").contains("CANARY"));
    }

    #[test]
    fn a_token_that_is_not_a_header_value_is_refused() {
        let config = crate::config::AgentConfig::parse(
            "[central]\nurl = \"https://c.example\"\ntoken_file = \"/t\"\nallow_unsigned = true\n",
            "t",
        )
        .unwrap()
        .central
        .unwrap();
        let err = CentralClient::new(&config, &SecretString::from("a\nb")).unwrap_err();
        assert!(matches!(err, ClientError::BadToken));
        assert!(!err.to_string().contains("a\nb"));
    }
}

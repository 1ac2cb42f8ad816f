//! truenas-central: the reference central server — the other side of the central
//! protocol, small but real — and its tools (the `truenas-central` binary, [`cli`]). It
//! runs off the NAS: never part of the agent's binary. It uses the agent's library for
//! what both sides must agree on (the document's validation, DSSE, the report types).
//!
//! Owns: the HTTP endpoints `GET /v1/config` (bearer token → device, its document signed
//! on the fly as a DSSE envelope, strong ETag, `If-None-Match` → 304, long-poll `wait`
//! that wakes within [`ServerOptions::change_check`] of a publish) and `POST /v1/reports`
//! (1 MiB cap, v1 schema check, de-duplication on `report_id`, durable append), plus the
//! data directory (`store`), key files (`keys`) and the `truenas-central devices` view (`devices`).
//! Does not: compute documents (central ops' own service does, from NinjaOne/IT Glue;
//! here an operator publishes them), terminate TLS (run it behind a TLS proxy), or rate
//! limit.
//! Invariants: tokens are compared by SHA-256 and never stored or logged; a report is
//! acknowledged only after it is on disk (fsync); the same `report_id` is stored once;
//! a held long-poll ends on shutdown with 503 + `Retry-After`.
//! Limitations: one process, one data directory; file I/O on the async runtime's thread
//! (fine for a few hundred devices); long-polls notice changes by polling file metadata.

pub mod alerts;
pub mod b2admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod devices;
pub mod escrow;
pub mod fleet;
pub mod keys;
pub mod metrics;
pub mod monitor;
pub mod provision;
pub mod secrets;
pub mod store;
pub mod web;
pub mod webhooks;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use ed25519_dalek::SigningKey;
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use store::{DropTally, Store, StoreError, StoredReport, token_hash};
use truenas_agent::central::client::MAX_BODY;
use truenas_agent::central::dsse::{self, CONFIG_PAYLOAD_TYPE};
use truenas_agent::central::report::{self, REPORT_SCHEMA};
use truenas_agent::fault::Fault;

/// How the server runs.
pub struct ServerOptions {
    /// The data directory (see `store`).
    pub dir: PathBuf,
    /// The key documents are signed with.
    pub key: SigningKey,
    /// How often a held long-poll checks whether the document changed.
    pub change_check: Duration,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("dir", &self.dir)
            .field("key", &"[REDACTED]")
            .field("change_check", &self.change_check)
            .finish()
    }
}

/// The server failed to start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the central data directory")]
    Store(#[source] StoreError),
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

impl ServerError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ServerError::Store(e) => e.fault(),
            ServerError::Serve(_) => Fault::Central,
        }
    }
}

/// Serves until `shutdown` is cancelled; held long-polls are ended first.
pub async fn serve(
    listener: TcpListener,
    options: ServerOptions,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let store = Store::open(&options.dir).map_err(ServerError::Store)?;
    // Documents published before at-rest sealing existed are sealed now (their secrets
    // must not stay in clear); this also binds an unbound directory to its key.
    store.seal_plain_documents().map_err(ServerError::Store)?;
    let server = Arc::new(Server {
        store,
        key: options.key,
        change_check: options.change_check,
        tokens: Mutex::new(TokenCache::default()),
        seen_reports: tokio::sync::Mutex::new(HashMap::new()),
        shutdown: shutdown.clone(),
    });
    axum::serve(listener, router(server))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(ServerError::Serve)
}

fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/v1/config", get(get_config))
        .route("/v1/reports", post(post_report))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(server)
}

struct Server {
    store: Store,
    key: SigningKey,
    change_check: Duration,
    tokens: Mutex<TokenCache>,
    /// Report ids and the drop tally per device, loaded from `reports.jsonl` on first use.
    seen_reports: tokio::sync::Mutex<HashMap<String, (HashSet<Uuid>, DropTally)>>,
    shutdown: CancellationToken,
}

/// Why a request was not authenticated.
enum Denied {
    NoToken,
    UnknownToken,
    Disabled,
    Store(StoreError),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::NoToken => unauthorized("missing bearer token"),
            Denied::UnknownToken => unauthorized("unknown token"),
            Denied::Disabled => text(StatusCode::FORBIDDEN, "device disabled"),
            Denied::Store(e) => internal(&e),
        }
    }
}

#[derive(Default)]
struct TokenCache {
    by_hash: HashMap<String, String>,
    scanned: Option<Instant>,
}

/// A signed document ready to send.
struct Signed {
    etag: String,
    body: Vec<u8>,
}

impl Server {
    /// Bearer token → device name, or why not.
    fn authenticate(&self, headers: &HeaderMap) -> Result<String, Denied> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(Denied::NoToken);
        };
        let hash = token_hash(token);
        let Some(name) = self.lookup(&hash).map_err(Denied::Store)? else {
            return Err(Denied::UnknownToken);
        };
        if self.store.is_disabled(&name).map_err(Denied::Store)? {
            tracing::info!(device = %name, "refused a disabled device");
            return Err(Denied::Disabled);
        }
        Ok(name)
    }

    fn lookup(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let mut cache = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(name) = cache.by_hash.get(hash) {
            return Ok(Some(name.clone()));
        }
        // Unknown: a device may have been registered since; rescan at most once a second
        // so a flood of bad tokens cannot turn into a flood of directory scans.
        let fresh = cache
            .scanned
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1));
        if fresh {
            return Ok(None);
        }
        cache.by_hash = self.store.token_index()?.into_iter().collect();
        cache.scanned = Some(Instant::now());
        Ok(cache.by_hash.get(hash).cloned())
    }

    fn signed(&self, device: &str) -> Result<Option<Signed>, StoreError> {
        let Some(document) = self.store.document(device)? else {
            return Ok(None);
        };
        let envelope = dsse::sign(CONFIG_PAYLOAD_TYPE, &document, &self.key, None).to_json();
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&envelope))[..32]);
        Ok(Some(Signed {
            etag,
            body: envelope,
        }))
    }

    /// Holds a request whose document is unchanged until it changes, `wait` ends, or
    /// the server shuts down.
    async fn hold(&self, device: &str, current: &str, wait: Duration) -> Response {
        let deadline = Instant::now() + wait;
        let mut stamp = match self.store.document_stamp(device) {
            Ok(s) => s,
            Err(e) => return internal(&e),
        };
        loop {
            let step = self
                .change_check
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                () = tokio::time::sleep(step) => {}
                () = self.shutdown.cancelled() => return shutting_down(),
            }
            if Instant::now() >= deadline {
                return not_modified(current);
            }
            let now = match self.store.document_stamp(device) {
                Ok(s) => s,
                Err(e) => return internal(&e),
            };
            if now == stamp {
                continue;
            }
            stamp = now;
            match self.signed(device) {
                Ok(Some(s)) if s.etag != current => return document(s),
                Ok(Some(_)) => {}
                Ok(None) => return StatusCode::NO_CONTENT.into_response(),
                Err(e) => return internal(&e),
            }
        }
    }
}

async fn get_config(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let device = match server.authenticate(&headers) {
        Ok(d) => d,
        Err(denied) => return denied.into_response(),
    };
    let wait = match parse_wait(query.as_deref()) {
        Ok(w) => w,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let signed = match server.signed(&device) {
        Ok(Some(s)) => s,
        Ok(None) => return StatusCode::NO_CONTENT.into_response(),
        Err(e) => return internal(&e),
    };
    if !etag_matches(&headers, &signed.etag) {
        tracing::info!(device = %device, etag = %signed.etag, "served the document");
        return document(signed);
    }
    match wait {
        Some(wait) => server.hold(&device, &signed.etag, wait).await,
        None => not_modified(&signed.etag),
    }
}

async fn post_report(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let device = match server.authenticate(&headers) {
        Ok(d) => d,
        Err(denied) => return denied.into_response(),
    };
    let report = match report::decode(&body) {
        Ok(r) if r.schema == REPORT_SCHEMA => r,
        Ok(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "`schema` must be truenas-agent.report/v1",
            );
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("not a v1 report: {e}")),
    };
    let mut seen = server.seen_reports.lock().await;
    if !seen.contains_key(&device) {
        match server.store.report_log(&device) {
            Ok((ids, tally)) => {
                seen.insert(device.clone(), (ids.into_iter().collect(), tally));
            }
            Err(e) => return internal(&e),
        }
    }
    let (ids, tally) = seen.entry(device.clone()).or_default();
    if ids.contains(&report.report_id) {
        return json_status(StatusCode::OK, "duplicate");
    }
    let id = report.report_id;
    let received_at = Utc::now();
    let after = tally.after(&report, received_at);
    let stored = StoredReport {
        received_at,
        report,
        dropped: Some(after),
    };
    if let Err(e) = server.store.append_report(&device, &stored) {
        return internal(&e);
    }
    // Durable from here on: remember the id (and count its drops) even if the
    // `latest.json` cache fails, so a retry is answered as a duplicate, never stored or
    // counted twice.
    ids.insert(id);
    *tally = after;
    if let Err(e) = server.store.write_latest(&device, &stored) {
        tracing::warn!(device = %device, error = %truenas_agent::fault::error_chain(&e), "cannot update latest.json");
    }
    tracing::info!(device = %device, report_id = %id, "stored a report");
    json_status(StatusCode::ACCEPTED, "accepted")
}

/// `wait=<1..300>` from the query string.
fn parse_wait(query: Option<&str>) -> Result<Option<Duration>, &'static str> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut wait = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "wait" {
            let secs = value
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=300).contains(s))
                .ok_or("`wait` must be an integer number of seconds between 1 and 300")?;
            wait = Some(Duration::from_secs(secs));
        }
    }
    Ok(wait)
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn document(signed: Signed) -> Response {
    let mut response = (StatusCode::OK, signed.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // The document holds secrets: no shared cache may keep it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(etag) = HeaderValue::from_str(&signed.etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}

fn not_modified(etag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(etag) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn shutting_down() -> Response {
    let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "server shutting down");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

fn unauthorized(message: &str) -> Response {
    let mut response = text(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

fn json_status(status: StatusCode, word: &str) -> Response {
    let mut response = (status, format!("{{\"status\":\"{word}\"}}")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn internal(error: &StoreError) -> Response {
    tracing::error!(error = %truenas_agent::fault::error_chain(error), "central data directory error");
    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_parameter() {
        assert_eq!(parse_wait(None), Ok(None));
        assert_eq!(
            parse_wait(Some("wait=30")),
            Ok(Some(Duration::from_secs(30)))
        );
        assert_eq!(
            parse_wait(Some("x=1&wait=300")),
            Ok(Some(Duration::from_secs(300)))
        );
        assert!(parse_wait(Some("wait=0")).is_err());
        assert!(parse_wait(Some("wait=301")).is_err());
        assert!(parse_wait(Some("wait=abc")).is_err());
    }

    #[test]
    fn if_none_match_forms() {
        let mut h = HeaderMap::new();
        assert!(!etag_matches(&h, "\"a\""));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"b\", W/\"a\""),
        );
        assert!(etag_matches(&h, "\"a\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(etag_matches(&h, "\"zzz\""));
    }
}

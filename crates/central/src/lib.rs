//! truenas-central: the reference central server — the other side of the central
//! protocol, small but real — and its tools (the `truenas-central` binary, [`cli`]). It
//! runs off the NAS: never part of the agent's binary. It uses the agent's library for
//! what both sides must agree on (the document's validation, DSSE, the report types).
//!
//! Owns: the HTTP endpoints `GET /v1/config` (bearer token → device, its document signed
//! on the fly as a DSSE envelope, strong ETag, `If-None-Match` → 304, long-poll `wait`
//! that wakes when a document is published through any process or instance) and
//! `POST /v1/reports` (1 MiB cap, v1 schema check, de-duplication on `report_id`, durable
//! store), the [`Service`] that serves them together with the fleet dashboard, `/metrics`
//! and the login (`web`) on one listener, and runs beside them report retention, the fleet
//! evaluator that announces state transitions (`monitor`, `alerts`, `fleet`) and the
//! webhook outbox worker (`webhooks`), all configured by the central config file
//! (`config`) and judged by one clock (`clock`); and the modules behind them: the
//! database (`db`), opening it with its at-rest key and the old directory's import
//! (`datastore`, `at_rest`, `store`), key files (`keys`) and the `truenas-central
//! devices` view (`devices`).
//! Does not: compute documents (central ops' own service does, from NinjaOne/IT Glue;
//! here an operator publishes them), terminate TLS (run it behind a TLS proxy), or rate
//! limit.
//! Invariants: tokens are compared by SHA-256 and never stored or logged; a report is
//! acknowledged only after its transaction committed; the same `report_id` is stored once
//! per device; a held long-poll subscribes to publish wake-ups before it reads the
//! document's tag, so no publish falls between; a held long-poll ends on shutdown with
//! 503 + `Retry-After`; the ETag names the document (revision and content hash) and the
//! signing key, so a new key changes it; the agents' routes accept device tokens only and
//! the dashboard's routes operator credentials only (two tables: a token of one kind is
//! unknown to the other); a stored report nudges the evaluator, so its transitions are
//! announced within moments.
//! Limitations: every request reads the database (one token lookup, one tag read; a
//! document is opened and signed only when sent); on SQLite one process writes at a time.

pub mod alerts;
pub mod at_rest;
pub mod b2admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod datastore;
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

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ed25519_dalek::SigningKey;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use clock::{Clock, SystemClock, TokioHold};
use config::CentralConfig;
use db::{Accepted, Db, DbError, token_hash};
use monitor::{Counters, Monitor};
use truenas_agent::central::client::MAX_BODY;
use truenas_agent::central::dsse::{self, CONFIG_PAYLOAD_TYPE, TrustedKey};
use truenas_agent::central::report::{self, REPORT_SCHEMA};
use truenas_agent::fault::Fault;
use webhooks::{Deliverer, WebhookError};

/// Report retention while serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Reports received more than this many days ago are deleted (each device's latest
    /// is always kept).
    pub days: u32,
    /// How often retention runs (first right after start).
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            days: db::DEFAULT_RETENTION_DAYS,
            every: Duration::from_secs(3600),
        }
    }
}

/// How the server runs.
pub struct ServerOptions {
    /// The key documents are signed with.
    pub key: SigningKey,
    /// Report retention.
    pub retention: Retention,
    /// For tests on tokio's paused clock (`start_paused`) only: every database call then
    /// holds a blocking task, so the clock cannot jump ahead while the call waits for
    /// SQLite's worker thread or for PostgreSQL. Off in production (where it would only
    /// cost a thread hop per call).
    pub hold_clock: bool,
    /// The central config file (`serve --config`): fleet policy, dashboard, webhooks.
    pub config: Arc<CentralConfig>,
    /// The clock verdicts, reports' arrival times, sessions and webhook back-off are
    /// judged by ([`SystemClock`]; tests script time with a `ManualClock`).
    pub clock: Arc<dyn Clock>,
}

impl ServerOptions {
    /// Signing with `key`, default retention, the default config, the system clock.
    pub fn new(key: SigningKey) -> Self {
        Self {
            key,
            retention: Retention::default(),
            hold_clock: false,
            config: Arc::new(CentralConfig::default()),
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("key", &"[REDACTED]")
            .field("retention", &self.retention)
            .field("hold_clock", &self.hold_clock)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error("cannot start the webhook worker")]
    Webhooks(#[source] WebhookError),
}

impl ServerError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ServerError::Serve(_) | ServerError::Webhooks(_) => Fault::Central,
        }
    }
}

/// Serves `db` until `shutdown` is cancelled (held long-polls are ended first), running
/// report retention, the fleet evaluator and the webhook worker meanwhile.
pub async fn serve(
    listener: TcpListener,
    db: Db,
    options: ServerOptions,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    Service::new(db, options)?.serve(listener, shutdown).await
}

/// Central's parts over one database, built before they serve (a caller may keep the
/// evaluator, e.g. to read its counters).
pub struct Service {
    db: Db,
    options: ServerOptions,
    monitor: Arc<Monitor>,
    deliverer: Arc<Deliverer>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// The evaluator and the webhook worker over `db`, configured by `options.config`.
    pub fn new(db: Db, options: ServerOptions) -> Result<Self, ServerError> {
        let counters = Arc::new(Counters::default());
        let monitor = Arc::new(
            Monitor::new(
                db.clone(),
                Arc::clone(&options.config),
                Arc::clone(&options.clock),
                Arc::clone(&counters),
            )
            .with_clock_hold(options.hold_clock),
        );
        let deliverer = Arc::new(
            Deliverer::new(
                db.clone(),
                options.config.webhooks.clone(),
                options.config.delivery,
                Arc::clone(&options.clock),
                counters,
            )
            .map_err(ServerError::Webhooks)?
            .with_clock_hold(options.hold_clock),
        );
        Ok(Self {
            db,
            options,
            monitor,
            deliverer,
        })
    }

    /// The fleet evaluator (its snapshot, counters, config and clock).
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// Serves until `shutdown` is cancelled; retention, the evaluator and (when a webhook
    /// is configured) the delivery worker run meanwhile and stop with it.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(retain(
            self.db.clone(),
            self.options.retention,
            Arc::clone(&self.options.clock),
            self.options.hold_clock,
            shutdown.clone(),
        ));
        tasks.spawn(Arc::clone(&self.monitor).run(shutdown.clone()));
        if self.deliverer.has_targets() {
            tasks.spawn(
                Arc::clone(&self.deliverer).run(self.monitor.deliveries(), shutdown.clone()),
            );
        }
        tracing::info!(
            webhooks = self.options.config.webhooks.len(),
            evaluate_every_s = self.options.config.evaluate_every.as_secs(),
            "fleet evaluator started"
        );
        let app = self.router(shutdown.clone());
        let served = axum::serve(listener, app)
            .with_graceful_shutdown({
                let shutdown = shutdown.clone();
                async move { shutdown.cancelled().await }
            })
            .await
            .map_err(ServerError::Serve);
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        served
    }

    /// Every HTTP route central serves: the agents' protocol (`/v1/config`,
    /// `/v1/reports`) and the dashboard's (`/`, `/devices/…`, `/login`, `/metrics`, …).
    pub fn router(&self, shutdown: CancellationToken) -> Router {
        let options = &self.options;
        let key_id = TrustedKey::from_signing_key(&options.key).key_id();
        let server = Arc::new(Server {
            db: self.db.clone(),
            key: options.key.clone(),
            key_id,
            hold_clock: options.hold_clock,
            shutdown,
            clock: Arc::clone(&options.clock),
            monitor: Arc::clone(&self.monitor),
        });
        Router::new()
            .route("/v1/config", get(get_config))
            .route("/v1/reports", post(post_report))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(server)
            .merge(web::router(Arc::clone(&self.monitor)))
    }
}

/// Deletes old reports now and every `retention.every` until shutdown.
async fn retain(
    db: Db,
    retention: Retention,
    clock: Arc<dyn Clock>,
    hold_clock: bool,
    shutdown: CancellationToken,
) {
    loop {
        let hold = TokioHold::new(hold_clock);
        match db.apply_retention(retention.days, clock.now()).await {
            Ok(deleted) => {
                tracing::debug!(deleted, days = retention.days, "report retention ran");
            }
            Err(e) => {
                tracing::warn!(error = %truenas_agent::fault::error_chain(&e), "report retention failed; trying again later");
            }
        }
        drop(hold);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(retention.every) => {}
        }
    }
}

struct Server {
    db: Db,
    key: SigningKey,
    /// The signing key's DSSE key id, part of every ETag.
    key_id: String,
    hold_clock: bool,
    shutdown: CancellationToken,
    /// Reports' arrival times.
    clock: Arc<dyn Clock>,
    /// Nudged after each stored report.
    monitor: Arc<Monitor>,
}

/// Why a request was not authenticated.
enum Denied {
    NoToken,
    UnknownToken,
    Disabled,
    Db(DbError),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::NoToken => unauthorized("missing bearer token"),
            Denied::UnknownToken => unauthorized("unknown token"),
            Denied::Disabled => text(StatusCode::FORBIDDEN, "device disabled"),
            Denied::Db(e) => internal(&e),
        }
    }
}

/// A signed document ready to send.
struct Signed {
    etag: String,
    body: Vec<u8>,
}

impl Server {
    /// Runs one database call (holding the test clock when asked).
    async fn db<T>(&self, call: impl Future<Output = T>) -> T {
        let _clock = TokioHold::new(self.hold_clock);
        call.await
    }

    /// The ETag of the document with database tag `tag` (`"r<rev>-<hash>"`), signed with
    /// this server's key: `"r<rev>-<hash>-k<key id>"`.
    fn etag(&self, tag: &str) -> String {
        format!("\"{}-k{}\"", tag.trim_matches('"'), self.key_id)
    }

    /// Bearer token → device name, or why not (one lookup).
    async fn authenticate(&self, headers: &HeaderMap) -> Result<String, Denied> {
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
        let owner = self
            .db(self.db.token_owner(&hash))
            .await
            .map_err(Denied::Db)?;
        let Some(owner) = owner else {
            return Err(Denied::UnknownToken);
        };
        if owner.disabled {
            tracing::info!(device = %owner.device, "refused a disabled device");
            return Err(Denied::Disabled);
        }
        Ok(owner.device)
    }

    /// The current ETag of the device's document (`None`: nothing published).
    async fn current_etag(&self, device: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .db(self.db.document_tag(device))
            .await?
            .map(|(_, tag)| self.etag(&tag)))
    }

    async fn signed(&self, device: &str) -> Result<Option<Signed>, DbError> {
        let Some(document) = self.db(self.db.document(device)).await? else {
            return Ok(None);
        };
        let envelope = dsse::sign(CONFIG_PAYLOAD_TYPE, &document.bytes, &self.key, None).to_json();
        Ok(Some(Signed {
            etag: self.etag(&document.etag),
            body: envelope,
        }))
    }

    /// Holds a request whose document is unchanged until it changes (a publish through
    /// any process or instance), `wait` ends, or the server shuts down.
    async fn hold(&self, device: &str, current: &str, wait: Duration) -> Response {
        let deadline = Instant::now() + wait;
        // Subscribe first, then read: a publish between the two is seen by the read.
        let mut watch = self.db.watch_documents();
        tracing::debug!(device = %device, wait_s = wait.as_secs(), "holding the request until the document changes");
        loop {
            match self.current_etag(device).await {
                Ok(Some(etag)) if etag != current => {
                    return match self.signed(device).await {
                        Ok(Some(s)) => {
                            tracing::info!(device = %device, etag = %s.etag, "served the document to a held request");
                            document(s)
                        }
                        Ok(None) => StatusCode::NO_CONTENT.into_response(),
                        Err(e) => internal(&e),
                    };
                }
                Ok(Some(_)) => {}
                Ok(None) => return StatusCode::NO_CONTENT.into_response(),
                Err(e) => return internal(&e),
            }
            tokio::select! {
                event = watch.wait_for(device) => {
                    if event.is_none() {
                        return shutting_down();
                    }
                }
                () = tokio::time::sleep_until(deadline) => return not_modified(current),
                () = self.shutdown.cancelled() => return shutting_down(),
            }
        }
    }
}

async fn get_config(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let device = match server.authenticate(&headers).await {
        Ok(d) => d,
        Err(denied) => return denied.into_response(),
    };
    let wait = match parse_wait(query.as_deref()) {
        Ok(w) => w,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let etag = match server.current_etag(&device).await {
        Ok(Some(etag)) => etag,
        Ok(None) => return StatusCode::NO_CONTENT.into_response(),
        Err(e) => return internal(&e),
    };
    if !etag_matches(&headers, &etag) {
        return match server.signed(&device).await {
            Ok(Some(signed)) => {
                tracing::info!(device = %device, etag = %signed.etag, "served the document");
                document(signed)
            }
            Ok(None) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => internal(&e),
        };
    }
    match wait {
        Some(wait) => server.hold(&device, &etag, wait).await,
        None => not_modified(&etag),
    }
}

async fn post_report(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let device = match server.authenticate(&headers).await {
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
    let id = report.report_id;
    match server
        .db(server
            .db
            .accept_report(&device, &report, server.clock.now()))
        .await
    {
        Ok(Accepted::Stored { .. }) => {
            tracing::info!(device = %device, report_id = %id, "stored a report");
            server.monitor.report_stored();
            json_status(StatusCode::ACCEPTED, "accepted")
        }
        Ok(Accepted::Duplicate) => json_status(StatusCode::OK, "duplicate"),
        Err(e) => internal(&e),
    }
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

fn internal(error: &DbError) -> Response {
    tracing::error!(error = %truenas_agent::fault::error_chain(error), "central database error");
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

//! The real middleware client: [`Client`], which implements [`Middleware`].
//!
//! Owns: setting up a session (transport; `GET /api/versions` and pinning the highest
//! API version the agent knows among those the box serves — any other answer that is not
//! an auth failure means the legacy `/websocket` of 24.10; login; `system.version_short`
//! → the release), the per-version differences of the session itself (login method,
//! error decoding by protocol, job ids on every version because `legacy_jobs` is left at
//! its default), and reconnecting: bounded exponential back-off with jitter, one
//! reconnect shared by all concurrent callers, and waiting for a job across reconnects.
//! Does not: build method params per version (`calls.rs`), define [`ConnectError`]
//! (`connect_error.rs`) or the session (`session.rs`), decide what to call, or repeat a
//! call whose request may have reached the middleware.
//! Invariants: only a call that was certainly not written ([`CallFailure::NotSent`]) is
//! sent again, on the next connection; middleware errors and calls lost in flight go
//! back to the caller at once; an API key is only sent over a unix socket, TLS, or a
//! connection whose peer is a loopback address; a refused login (revoked key, wrong
//! key) is never retried within a call; no log line or error carries params, results or
//! the key.
//! Limitations: one WebSocket per client; a subscription ends with its connection (the
//! caller subscribes again); an `auth.login_ex` that asks for OTP is a login failure.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::client_calls;
use super::conn::{CallFailure, Conn, ConnSettings, Subscription, Ws};
use super::connect_error::ConnectError;
use super::jobs;
use super::session::{Identity, JobWait, Session, call_error, wait_on};
use super::transport::{self, Dial, ROUTE_CURRENT, ROUTE_LEGACY, VersionsProbe};
use super::url::MiddlewareUrl;
use super::{
    ApiFlavor, ApiInfo, ApiKey, Call, CallError, ConnectOptions, Job, JobId, Method, Middleware,
    Protocol,
};
use crate::fault::error_chain;

/// Tunables beyond [`ConnectOptions`]; the defaults suit the agent.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Per-connection settings (calls in flight, request size, keepalive, event buffer).
    pub conn: ConnSettings,
    /// Largest message accepted from the middleware; a bigger one closes the connection.
    pub max_message_bytes: usize,
    /// First reconnect back-off; doubles per failure up to `reconnect_max`, with jitter.
    pub reconnect_initial: Duration,
    /// Longest back-off between two connection attempts.
    pub reconnect_max: Duration,
    /// How long one call waits, in total, for a connection before failing `Unavailable`.
    pub reconnect_budget: Duration,
    /// How often a job being waited for is polled, events or not.
    pub job_poll_interval: Duration,
    /// Jobs whose latest state is kept from events.
    pub job_cache_capacity: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            conn: ConnSettings::default(),
            max_message_bytes: 64 << 20,
            reconnect_initial: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
            reconnect_budget: Duration::from_secs(60),
            job_poll_interval: Duration::from_secs(10),
            job_cache_capacity: 256,
        }
    }
}

/// Delay before connection attempt number `failures + 1`: `initial · 2^(failures-1)`
/// capped at `max`, scaled by `jitter` ∈ [0.5, 1] so that agents do not reconnect in
/// lockstep. Zero for the first attempt.
pub(crate) fn backoff_delay(
    failures: u32,
    initial: Duration,
    max: Duration,
    jitter: f64,
) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 2_u32.saturating_pow(failures.saturating_sub(1).min(20));
    let base = initial.saturating_mul(factor).min(max);
    base.mul_f64(jitter.clamp(0.5, 1.0))
}

/// Which endpoint a connection was opened on.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// `/api/<version>`, an API version this agent knows.
    Pinned {
        version: &'static str,
        family: ApiFlavor,
    },
    /// `/api/current`: the box serves no API version this agent knows.
    Current,
    /// `/websocket`; `GET /api/versions` answered `status`.
    Legacy { status: u16 },
}

/// The client's connection state.
enum Link {
    /// A session exists (it may have died since; checked on use).
    Up(Arc<Session>),
    /// No session: the next attempt may start at `retry_at`. `last_error` is the
    /// outcome of the last attempt (`None` before the first attempt after a loss).
    Down {
        failures: u32,
        retry_at: Instant,
        last_error: Option<Arc<ConnectError>>,
    },
}

struct Inner {
    url: MiddlewareUrl,
    dial: Dial,
    api_key: Option<ApiKey>,
    call_timeout: Duration,
    connect_timeout: Duration,
    settings: ClientSettings,
    link: tokio::sync::Mutex<Link>,
    /// Bumped whenever a (re)connect sequence ends, so waiters can share its outcome.
    generation: AtomicU64,
    api: Mutex<ApiInfo>,
}

/// A client of the TrueNAS middleware. Cheap to clone (shared connection).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.url.to_string())
            .field("api", &self.api())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects and logs in (one attempt) with default [`ClientSettings`].
    pub async fn connect(options: ConnectOptions) -> Result<Client, ConnectError> {
        Self::connect_with(options, ClientSettings::default()).await
    }

    /// Connects and logs in (one attempt). Later calls reconnect as needed.
    pub async fn connect_with(
        options: ConnectOptions,
        settings: ClientSettings,
    ) -> Result<Client, ConnectError> {
        let url = MiddlewareUrl::parse(&options.url)?;
        let dial = Dial::new(
            &url,
            options.tls_ca_file.as_deref(),
            options.tls_pin_sha256.as_deref(),
        )?;
        if options.api_key.is_none() && !matches!(dial, Dial::Unix(_)) {
            return Err(ConnectError::ApiKeyRequired {
                url: url.to_string(),
            });
        }
        let mut inner = Inner {
            url,
            dial,
            api_key: options.api_key,
            call_timeout: options.call_timeout,
            connect_timeout: options.connect_timeout,
            settings,
            link: tokio::sync::Mutex::new(Link::Down {
                failures: 0,
                retry_at: Instant::now(),
                last_error: None,
            }),
            generation: AtomicU64::new(0),
            api: Mutex::new(ApiInfo {
                flavor: ApiFlavor::NEWEST,
                version: String::new(),
                protocol: Protocol::JsonRpc,
                transport: super::TransportKind::UnixSocket,
                api_version: None,
                newer_than_known: false,
            }),
        };
        let session = inner.establish_in_time().await?;
        *inner.api.get_mut().unwrap_or_else(PoisonError::into_inner) = session.api.clone();
        *inner.link.get_mut() = Link::Up(Arc::new(session));
        Ok(Client {
            inner: Arc::new(inner),
        })
    }

    /// The URL connected to (never contains a secret).
    pub fn url(&self) -> &MiddlewareUrl {
        &self.inner.url
    }

    /// True while a session is up (false during a reconnect, or once the connection
    /// was seen to close). For diagnostics only: calls reconnect by themselves.
    pub fn is_connected(&self) -> bool {
        match self.inner.link.try_lock() {
            Ok(link) => matches!(&*link, Link::Up(session) if session.is_open()),
            Err(_busy) => false,
        }
    }

    /// Sends a call with its own timeout (for slow methods such as
    /// `cloudsync.credentials.verify`). Job methods return the job id.
    pub async fn call_with_timeout(
        &self,
        call: Call,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let method = call.method;
        // A call is resent only when it certainly never left this process; bound that
        // in case connections keep dying between "connected" and "written".
        for _ in 0..3 {
            let session = self.session(method).await?;
            if jobs::subscribe_before(method) {
                // Subscribe before starting a job the caller waits for, so that the
                // wait follows it from its first event.
                session
                    .jobs(
                        self.inner.settings.job_cache_capacity,
                        self.inner.call_timeout,
                    )
                    .await;
            }
            match session.conn.call(method, &call.params, timeout).await {
                Ok(value) => return Ok(value),
                Err(CallFailure::NotSent(reason)) => {
                    debug!(method = method.as_str(), %reason, "call not sent; reconnecting");
                }
                Err(failure) => {
                    return Err(call_error(method, session.api.protocol, timeout, failure));
                }
            }
        }
        Err(CallError::Unavailable {
            method,
            detail: "the connection kept closing before the call could be sent".to_owned(),
        })
    }

    /// Subscribes to a middleware event (e.g. `core.get_jobs`, `cloudsync.query`).
    /// The subscription ends when the connection drops; subscribe again then.
    pub async fn subscribe(&self, name: &str) -> Result<Subscription, CallError> {
        let method = Method::CoreSubscribe;
        let session = self.session(method).await?;
        let timeout = self.inner.call_timeout;
        session
            .conn
            .subscribe(name, timeout)
            .await
            .map_err(|failure| call_error(method, session.api.protocol, timeout, failure))
    }

    /// The current session, reconnecting if needed. Concurrent callers share one
    /// reconnect: the first does it, the others wait for it and take its outcome.
    pub(crate) async fn session(&self, method: Method) -> Result<Arc<Session>, CallError> {
        let inner = &self.inner;
        let generation = inner.generation.load(Ordering::Acquire);
        let mut link = inner.link.lock().await;
        match &*link {
            Link::Up(session) if session.is_open() => return Ok(session.clone()),
            Link::Up(session) => {
                let reason = session.conn.closed_reason().unwrap_or_default();
                warn!(url = %inner.url, %reason, "middleware connection lost; reconnecting");
                *link = Link::Down {
                    failures: 0,
                    retry_at: Instant::now(),
                    last_error: None,
                };
            }
            Link::Down {
                last_error: Some(error),
                ..
            } if inner.generation.load(Ordering::Acquire) != generation => {
                // Someone else just tried while we waited for the lock: share the result.
                return Err(error.for_call(method));
            }
            Link::Down { .. } => {}
        }
        let outcome = inner.reconnect(&mut link).await;
        inner.generation.fetch_add(1, Ordering::AcqRel);
        outcome.map_err(|error| error.for_call(method))
    }

    /// The API info (interior lock; never poisoned in a way that matters).
    fn api_info(&self) -> ApiInfo {
        self.inner
            .api
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn settings(&self) -> &ClientSettings {
        &self.inner.settings
    }

    pub(crate) fn call_timeout(&self) -> Duration {
        self.inner.call_timeout
    }
}

impl Inner {
    /// Tries to connect until it works, a non-transient error occurs, or the budget
    /// is spent. Holds the link lock throughout: that is what makes it single-flight.
    async fn reconnect(&self, link: &mut Link) -> Result<Arc<Session>, Arc<ConnectError>> {
        let give_up_at = Instant::now() + self.settings.reconnect_budget;
        loop {
            let (failures, retry_at) = match &*link {
                Link::Up(session) => return Ok(session.clone()),
                // Out of budget, or a refusal (revoked key, bad certificate, ...) that
                // is remembered until its retry time: fail at once.
                Link::Down {
                    last_error: Some(error),
                    retry_at,
                    ..
                } if *retry_at > give_up_at
                    || (!error.fault().is_retryable() && *retry_at > Instant::now()) =>
                {
                    return Err(error.clone());
                }
                Link::Down {
                    failures, retry_at, ..
                } => (*failures, *retry_at),
            };
            tokio::time::sleep_until(retry_at).await;
            match self.establish_in_time().await {
                Ok(session) => {
                    let session = Arc::new(session);
                    *self.api.lock().unwrap_or_else(PoisonError::into_inner) = session.api.clone();
                    *link = Link::Up(session.clone());
                    return Ok(session);
                }
                Err(error) => {
                    let error = Arc::new(error);
                    *link = self.after_failure(failures + 1, error.clone());
                    // A refused login or a bad certificate will not fix itself.
                    if !error.fault().is_retryable() {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// The link after failed attempt number `failures`: transient errors back off
    /// exponentially with jitter; refusals wait the longest back-off.
    fn after_failure(&self, failures: u32, error: Arc<ConnectError>) -> Link {
        let delay = if error.fault().is_retryable() {
            let jitter = rand::thread_rng().gen_range(0.5..=1.0);
            let (initial, max) = (self.settings.reconnect_initial, self.settings.reconnect_max);
            backoff_delay(failures, initial, max, jitter)
        } else {
            self.settings.reconnect_max
        };
        warn!(url = %self.url, failures, ?delay, error = %error_chain(&*error), "cannot reconnect to the middleware");
        Link::Down {
            failures,
            retry_at: Instant::now() + delay,
            last_error: Some(error),
        }
    }

    async fn establish_in_time(&self) -> Result<Session, ConnectError> {
        tokio::time::timeout(self.connect_timeout, self.establish())
            .await
            .unwrap_or_else(|_| {
                Err(ConnectError::Timeout {
                    url: self.url.to_string(),
                    after: self.connect_timeout,
                })
            })
    }

    /// One connection attempt: transport, route, login, version.
    async fn establish(&self) -> Result<Session, ConnectError> {
        // Boxed: the HTTP probe and the TLS handshake make a large future, and every
        // caller of `connect` would carry it.
        let (ws, route) = Box::pin(self.open_websocket()).await?;
        let protocol = match route {
            Route::Pinned { .. } | Route::Current => Protocol::JsonRpc,
            Route::Legacy { .. } => Protocol::Legacy,
        };
        let conn = Conn::start(ws, protocol, self.settings.conn.clone());
        if let Some(key) = &self.api_key {
            self.login(&conn, key).await?;
        }
        let version = self
            .setup_call(
                &conn,
                client_calls::version_short(),
                "ask the TrueNAS version",
            )
            .await?;
        let version = version.as_str().unwrap_or_default().to_owned();
        let (release, newer) = ApiFlavor::from_version_short(&version).map_err(|source| {
            ConnectError::UnsupportedVersion {
                url: self.url.to_string(),
                source,
            }
        })?;
        let (flavor, api_version) = match route {
            // The shapes are those of the API version in use.
            Route::Pinned { version, family } => (family, Some(version.to_owned())),
            Route::Current => (release, None),
            // Only the legacy endpoint: that is 24.10. A newer box reached this way would
            // be driven with the wrong shapes.
            Route::Legacy { .. } if release == ApiFlavor::V24_10 => (release, None),
            Route::Legacy { status } => {
                return Err(ConnectError::NoVersionedApi {
                    url: self.url.to_string(),
                    version,
                    status,
                });
            }
        };
        let newer_than_known = newer || release > flavor;
        if newer_than_known {
            warn!(%version, api = %flavor, "TrueNAS is newer than the releases this agent knows; driving it through the newest API version it serves that the agent knows");
        }
        let api = ApiInfo {
            flavor,
            version,
            protocol,
            transport: self.url.endpoint().kind(),
            api_version,
            newer_than_known,
        };
        info!(url = %self.url, ?protocol, version = %api.version, api = %api.api_label(), "connected to the middleware");
        Ok(Session::new(conn, api))
    }

    /// Asks `GET /api/versions` and opens the highest API version this agent knows that
    /// the box serves (`/api/vX.Y.Z`; `/api/current` if it knows none of them). Any other
    /// answer that is not an auth failure (24.10: 404 from the middleware, 302 from its
    /// nginx) means the legacy protocol at `/websocket` (REFERENCE §8 #2, #7).
    async fn open_websocket(&self) -> Result<(Ws, Route), ConnectError> {
        let max = self.settings.max_message_bytes;
        match transport::probe_versions(&self.url, &self.dial).await? {
            VersionsProbe::Listed(served) => {
                let route = if let Some((version, family)) = super::choose_api_version(&served) {
                    Route::Pinned { version, family }
                } else {
                    warn!(url = %self.url, served = ?served, "the box serves no API version this agent knows; using /api/current");
                    Route::Current
                };
                let path = match route {
                    Route::Pinned { version, .. } => transport::api_route(version),
                    _ => ROUTE_CURRENT.to_owned(),
                };
                let ws = transport::open(&self.url, &self.dial, &path, max).await?;
                Ok((ws, route))
            }
            VersionsProbe::NotServed { status } => {
                debug!(url = %self.url, status, "no /api/versions: the legacy /websocket protocol");
                let mut ws = transport::open(&self.url, &self.dial, ROUTE_LEGACY, max).await?;
                transport::legacy_handshake(&self.url, &mut ws).await?;
                Ok((ws, Route::Legacy { status }))
            }
        }
    }

    async fn setup_call(
        &self,
        conn: &Conn,
        call: Call,
        step: &'static str,
    ) -> Result<Value, ConnectError> {
        let method = call.method;
        conn.call(method, &call.params, self.call_timeout)
            .await
            .map_err(|failure| ConnectError::Setup {
                url: self.url.to_string(),
                step,
                source: call_error(method, conn.protocol(), self.call_timeout, failure),
            })
    }

    /// API-key login: `auth.login_ex` (25.04+, JSON-RPC) or `auth.login_with_api_key`
    /// (24.10, legacy). The key is only in the request frame, never in a log or error.
    async fn login(&self, conn: &Conn, key: &ApiKey) -> Result<(), ConnectError> {
        let url = self.url.to_string();
        match conn.protocol() {
            Protocol::JsonRpc => {
                let username = key
                    .username
                    .as_deref()
                    .ok_or_else(|| ConnectError::ApiUserRequired { url: url.clone() })?;
                let call = client_calls::login_ex_api_key(username, &key.key);
                let reply = self
                    .setup_call(conn, call, "log in with the API key")
                    .await?;
                login_ex_outcome(&url, username, &reply)
            }
            Protocol::Legacy => {
                let call = client_calls::login_with_api_key(&key.key);
                let reply = self
                    .setup_call(conn, call, "log in with the API key")
                    .await?;
                match reply {
                    Value::Bool(true) => Ok(()),
                    _ => Err(ConnectError::LoginFailed {
                        url,
                        reason: "the middleware rejected the API key (wrong, deleted or expired)"
                            .to_owned(),
                    }),
                }
            }
        }
    }
}

/// Interprets `auth.login_ex`'s `response_type` (REFERENCE §2.1).
fn login_ex_outcome(url: &str, username: &str, reply: &Value) -> Result<(), ConnectError> {
    let failed = |reason: String| ConnectError::LoginFailed {
        url: url.to_owned(),
        reason,
    };
    match reply.get("response_type").and_then(Value::as_str) {
        Some("SUCCESS") => Ok(()),
        Some("EXPIRED") => Err(ConnectError::ApiKeyRevoked {
            url: url.to_owned(),
        }),
        Some("AUTH_ERR") => Err(failed(format!(
            "the middleware rejected the API key for user `{username}` (wrong key, wrong user, or key deleted)"
        ))),
        Some("OTP_REQUIRED") => Err(failed(
            "the account requires a one-time password, which an API key login cannot give"
                .to_owned(),
        )),
        Some("REDIRECT") => Err(failed(
            "this controller is an HA standby; connect to the active controller".to_owned(),
        )),
        Some(other) => Err(failed(format!("unexpected login answer `{other}`"))),
        None => Err(failed(format!(
            "unexpected login answer ({})",
            super::type_name(reply)
        ))),
    }
}

/// Waits until job `id` is SUCCESS, FAILED or ABORTED, at most `timeout`.
async fn wait_job(client: &Client, id: JobId, timeout: Duration) -> Result<Job, CallError> {
    let how = JobWait {
        poll_interval: client.settings().job_poll_interval,
        cache_capacity: client.settings().job_cache_capacity,
        call_timeout: client.call_timeout(),
    };
    let deadline = Instant::now() + timeout;
    let timed_out = CallError::Timeout {
        method: Method::CoreGetJobs,
        after: timeout,
    };
    let mut identity: Option<Identity> = None;
    // Reconnects while waiting are bounded: each needs a live session first.
    for _ in 0..5 {
        let session = tokio::time::timeout_at(deadline, client.session(Method::CoreGetJobs))
            .await
            .map_err(|_| timed_out.clone())??;
        match wait_on(&session, how, id, deadline, timeout, &mut identity).await {
            Err(error @ (CallError::Disconnected { .. } | CallError::Unavailable { .. }))
                if identity.is_some() =>
            {
                debug!(id, %error, "connection lost while waiting for a job; reconnecting");
            }
            other => return other,
        }
    }
    Err(CallError::Unavailable {
        method: Method::CoreGetJobs,
        detail: format!("the connection kept dropping while waiting for job {id}"),
    })
}

impl Middleware for Client {
    fn api(&self) -> ApiInfo {
        self.api_info()
    }

    async fn call(&self, call: Call) -> Result<Value, CallError> {
        self.call_with_timeout(call, self.inner.call_timeout).await
    }

    async fn wait_job(&self, id: JobId, timeout: Duration) -> Result<Job, CallError> {
        wait_job(self, id, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fault::Fault;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let initial = Duration::from_millis(250);
        let max = Duration::from_secs(30);
        assert_eq!(backoff_delay(0, initial, max, 1.0), Duration::ZERO);
        assert_eq!(backoff_delay(1, initial, max, 1.0), initial);
        assert_eq!(backoff_delay(2, initial, max, 1.0), initial * 2);
        assert_eq!(backoff_delay(4, initial, max, 1.0), initial * 8);
        assert_eq!(backoff_delay(30, initial, max, 1.0), max);
        assert_eq!(backoff_delay(u32::MAX, initial, max, 1.0), max);
        assert_eq!(backoff_delay(2, initial, max, 0.5), initial);
        // Jitter outside [0.5, 1] is clamped.
        assert_eq!(backoff_delay(2, initial, max, 7.0), initial * 2);
    }

    #[test]
    fn login_answers() {
        let url = "wss://nas:443";
        assert!(
            login_ex_outcome(
                url,
                "agent",
                &json!({"response_type": "SUCCESS", "user_info": null})
            )
            .is_ok()
        );
        let revoked =
            login_ex_outcome(url, "agent", &json!({"response_type": "EXPIRED"})).unwrap_err();
        assert!(
            revoked
                .to_string()
                .starts_with("API key revoked or expired"),
            "{revoked}"
        );
        assert_eq!(revoked.fault(), Fault::Operator);
        for (answer, needle) in [
            (
                json!({"response_type": "AUTH_ERR"}),
                "rejected the API key for user `agent`",
            ),
            (
                json!({"response_type": "OTP_REQUIRED", "username": "agent"}),
                "one-time password",
            ),
            (
                json!({"response_type": "REDIRECT", "urls": []}),
                "HA standby",
            ),
            (json!({"response_type": "NEW"}), "`NEW`"),
            (json!(true), "a boolean"),
        ] {
            let err = login_ex_outcome(url, "agent", &answer).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn connect_errors_classify_and_reach_calls() {
        let revoked = ConnectError::ApiKeyRevoked {
            url: "wss://nas:443".into(),
        };
        assert!(matches!(
            revoked.for_call(Method::PoolQuery),
            CallError::NotAuthorized { ref reason, .. } if reason.starts_with("API key revoked or expired")
        ));
        let refused = ConnectError::Transport {
            url: "unix:///x.sock".into(),
            step: "connect to",
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(refused.fault(), Fault::Transient);
        let CallError::Unavailable { detail, .. } = refused.for_call(Method::PoolQuery) else {
            panic!("not unavailable")
        };
        assert!(
            detail.starts_with("cannot connect to unix:///x.sock: "),
            "{detail}"
        );
        assert_eq!(
            ConnectError::HttpStatus {
                url: String::new(),
                route: String::new(),
                status: 502
            }
            .fault(),
            Fault::Transient
        );
        assert_eq!(
            ConnectError::HttpStatus {
                url: String::new(),
                route: String::new(),
                status: 403
            }
            .fault(),
            Fault::Nas
        );
        // nginx's HTTP→HTTPS redirect (307) and its /ui/ rewrite (302): use wss://.
        for status in [302, 307] {
            let redirect = ConnectError::HttpStatus {
                url: "ws://127.0.0.1:80".into(),
                route: "/websocket".into(),
                status,
            };
            assert_eq!(redirect.fault(), Fault::Operator);
            let text = redirect.to_string();
            assert!(
                text.contains("redirect") && text.contains("use wss://"),
                "{text}"
            );
        }
        let refused = ConnectError::LoopbackRefused {
            url: "ws://127.0.0.1:6000".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let text = refused.to_string();
        assert!(
            text.contains("26.0") && text.contains(crate::middleware::DEFAULT_URL),
            "{text}"
        );
        assert_eq!(refused.fault(), Fault::Transient);
    }

    #[test]
    fn failures_map_to_call_errors() {
        let m = Method::CloudsyncSync;
        let t = Duration::from_secs(5);
        assert!(matches!(
            call_error(m, Protocol::JsonRpc, t, CallFailure::NotSent("x".into())),
            CallError::Unavailable { .. }
        ));
        assert!(matches!(
            call_error(m, Protocol::JsonRpc, t, CallFailure::Lost("x".into())),
            CallError::Disconnected { .. }
        ));
        assert_eq!(
            call_error(m, Protocol::JsonRpc, t, CallFailure::TimedOut),
            CallError::Timeout {
                method: m,
                after: t
            }
        );
        let CallError::Protocol { detail, .. } = call_error(
            m,
            Protocol::Legacy,
            t,
            CallFailure::TooLarge {
                bytes: 70_000,
                limit: 65_536,
            },
        ) else {
            panic!("not protocol")
        };
        assert!(
            detail.contains("70000 bytes") && detail.contains("not sent"),
            "{detail}"
        );
    }
}

//! The fleet dashboard and `/metrics`: server-rendered HTML behind operator
//! authentication, merged beside the agents' protocol by `Service::router` (what
//! `truenas-central serve` runs).
//!
//! Owns: the routes — `GET /` (the fleet, worst first, `?org=&location=`), `GET
//! /devices/{name}`, the actions `POST /devices/{name}/first-backup`, `…/disable`,
//! `…/enable`, `GET|POST /login`, `POST /logout`, `GET /metrics` (Prometheus text),
//! `GET /static/dashboard.css` — and the response headers every page carries (no store,
//! a CSP without scripts, no framing, no referrer to other sites).
//! Does not: speak the agents' protocol (`/v1/…` stays the server's), judge devices
//! (`monitor`, `fleet`) or build HTML (`pages`, `html`).
//! Invariants: every route but the login form, the style sheet and the logout answers only
//! an authenticated operator (`auth`): agents' device tokens never open it; a
//! cookie-authenticated POST needs the session's CSRF token and a same-origin request; an
//! action changes a document only through the validated publish; responses never carry a
//! secret (documents are masked, tokens never echoed).
//! Limitations: no roles — every operator sees and acts on the whole fleet.

pub mod actions;
pub mod auth;
pub mod html;
pub mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::db::DbError;
use crate::metrics::{self, Totals};
use crate::monitor::{Counters, DeviceView, Monitor, MonitorError, Snapshot};
use crate::store::token_hash;
use auth::{Credential, Denied};
use pages::{DeviceExtras, Filter, Viewer};

/// Form bodies are small.
const MAX_FORM: usize = 16 * 1024;
/// Reports shown in a device's history.
const HISTORY: u32 = 50;

struct Web {
    monitor: Arc<Monitor>,
}

/// The dashboard's routes over `monitor` (its database, config and clock).
pub fn router(monitor: Arc<Monitor>) -> Router {
    Router::new()
        .route("/", get(fleet_page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/devices/{name}", get(device_page))
        .route("/devices/{name}/first-backup", post(first_backup))
        .route("/devices/{name}/disable", post(disable))
        .route("/devices/{name}/enable", post(enable))
        .route("/metrics", get(metrics_page))
        .route(html::STYLE_PATH, get(style))
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .with_state(Arc::new(Web { monitor }))
}

type WebState = State<Arc<Web>>;

/// The headers of every dashboard response.
fn secure_headers(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it browsers send `Origin: null` with form POSTs, and the
    // origin check needs the real one; `same-origin` still tells other sites nothing.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn page(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(&mut r);
    r
}

fn plain(status: StatusCode, message: &str) -> Response {
    let mut r = (status, format!("{message}\n")).into_response();
    secure_headers(&mut r);
    r
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure_headers(&mut r);
    r
}

fn internal(error: &dyn std::error::Error) -> Response {
    tracing::error!(error = %truenas_agent::fault::error_chain(error), "dashboard request failed");
    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Whether a refused request is a browser's page view (→ the login form) or an API call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Page,
    Api,
}

impl Web {
    /// The operator behind a request, or the answer that refuses it.
    async fn require(&self, headers: &HeaderMap, want: Want) -> Result<Credential, Response> {
        let now = self.monitor.now();
        match auth::authenticate(self.monitor.db(), headers, now).await {
            Ok(c) => Ok(c),
            Err(Denied::NoCredential) if want == Want::Page => Err(redirect("/login")),
            Err(Denied::NoCredential | Denied::BadToken) => {
                Counters::bump(&self.monitor.counters().auth_failures);
                let mut r = plain(
                    StatusCode::UNAUTHORIZED,
                    "an operator token is required (Authorization: Bearer …, or log in at /login)",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Err(r)
            }
            Err(Denied::Db(e)) => Err(internal(&e)),
        }
    }

    /// As [`Web::require`], for a POST: a session also needs its CSRF token and a
    /// same-origin request.
    async fn require_post(&self, headers: &HeaderMap, csrf: &str) -> Result<Credential, Response> {
        let credential = self.require(headers, Want::Api).await?;
        if let Credential::Session { .. } = credential {
            let origin = self.monitor.config().dashboard.public_origin.as_deref();
            let forged = auth::same_origin(headers, origin).is_err()
                || !auth::session_id(headers).is_some_and(|id| auth::csrf_matches(&id, csrf));
            if forged {
                Counters::bump(&self.monitor.counters().auth_failures);
                tracing::warn!(operator = %credential.operator().name, "refused a dashboard POST: cross-site or without its CSRF token");
                return Err(plain(
                    StatusCode::FORBIDDEN,
                    "refused: the form's CSRF token is missing or wrong, or the request came from another site",
                ));
            }
        }
        Ok(credential)
    }

    async fn snapshot(&self) -> Result<Snapshot, Response> {
        self.monitor
            .snapshot()
            .await
            .map_err(|e: MonitorError| internal(&e))
    }
}

async fn style() -> Response {
    let mut r = html::STYLE.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    secure_headers(&mut r);
    r
}

async fn login_page(State(web): WebState, headers: HeaderMap) -> Response {
    if auth::authenticate(web.monitor.db(), &headers, web.monitor.now())
        .await
        .is_ok()
    {
        return redirect("/");
    }
    page(StatusCode::OK, pages::login(web.monitor.now(), None))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(State(web): WebState, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let now = web.monitor.now();
    let counters = web.monitor.counters();
    let origin = web.monitor.config().dashboard.public_origin.as_deref();
    if auth::same_origin(&headers, origin).is_err() {
        Counters::bump(&counters.login_failures);
        return plain(StatusCode::FORBIDDEN, "refused: a login from another site");
    }
    let token = form.token.trim();
    let operator = if token.is_empty() {
        None
    } else {
        match web
            .monitor
            .db()
            .operator_for_token(&token_hash(token))
            .await
        {
            Ok(o) => o,
            Err(e) => return internal(&e),
        }
    };
    let Some(operator) = operator else {
        Counters::bump(&counters.login_failures);
        tracing::warn!("refused a dashboard login: unknown or disabled operator token");
        return page(
            StatusCode::UNAUTHORIZED,
            pages::login(now, Some("Unknown or disabled operator token.")),
        );
    };
    let session = auth::new_session_id();
    let lifetime = web.monitor.config().dashboard.session;
    let expires = now + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(12));
    if let Err(e) = web
        .monitor
        .db()
        .create_session(operator.id, &token_hash(&session), expires)
        .await
    {
        return internal(&e);
    }
    Counters::bump(&counters.logins);
    tracing::info!(operator = %operator.name, "operator logged in to the dashboard");
    let mut r = redirect("/");
    if let Some(cookie) = auth::session_cookie(&session, lifetime.as_secs()) {
        r.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(web): WebState, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Err(r) = web.require_post(&headers, &form.csrf).await {
        return r;
    }
    if let Some(id) = auth::session_id(&headers) {
        if let Err(e) = web.monitor.db().delete_session(&token_hash(&id)).await {
            return internal(&e);
        }
    }
    let mut r = redirect("/login");
    r.headers_mut()
        .insert(header::SET_COOKIE, auth::clear_cookie());
    r
}

async fn fleet_page(
    State(web): WebState,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Response {
    let credential = match web.require(&headers, Want::Page).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let snapshot = match web.snapshot().await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let viewer = Viewer {
        operator: &credential.operator().name,
        csrf: credential.csrf(),
    };
    page(StatusCode::OK, pages::fleet(&snapshot, &filter, viewer))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeviceQuery {
    done: String,
    revision: Option<u64>,
}

/// Renders a device page; `notice`: (`done`, `error`) messages.
async fn render_device(
    web: &Web,
    credential: &Credential,
    name: &str,
    done: Option<&str>,
    error: Option<(StatusCode, &str)>,
) -> Response {
    let snapshot = match web.snapshot().await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(view) = snapshot.devices.iter().find(|d| d.row.name == name) else {
        return plain(StatusCode::NOT_FOUND, "no such device");
    };
    match device_html(web, view, credential, snapshot.at, done, error.map(|e| e.1)).await {
        Ok(html) => page(error.map_or(StatusCode::OK, |e| e.0), html),
        Err(e) => internal(&e),
    }
}

async fn device_html(
    web: &Web,
    view: &DeviceView,
    credential: &Credential,
    now: chrono::DateTime<chrono::Utc>,
    done: Option<&str>,
    error: Option<&str>,
) -> Result<String, DbError> {
    let db = web.monitor.db();
    let name = &view.row.name;
    let latest = db.latest_report(name).await?;
    let history = db.reports(name, HISTORY).await?;
    let document = db.document(name).await?;
    let masked = document.as_ref().map(|d| actions::masked(&d.bytes));
    let reported: Vec<String> = view.state.pools.iter().map(|p| p.pool.clone()).collect();
    let pools = document
        .as_ref()
        .map(|d| actions::action_pools(&d.bytes, &reported))
        .unwrap_or_default();
    let extras = DeviceExtras {
        latest: latest.as_ref(),
        history: &history,
        document: document.as_ref(),
        masked_document: masked.as_deref(),
        action_pools: &pools,
        done,
        error,
        policy: &web.monitor.config().fleet,
    };
    let viewer = Viewer {
        operator: &credential.operator().name,
        csrf: credential.csrf(),
    };
    Ok(pages::device(view, extras, viewer, now))
}

async fn device_page(
    State(web): WebState,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<DeviceQuery>,
) -> Response {
    let credential = match web.require(&headers, Want::Page).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    // Fixed texts only: nothing from the query string is reflected.
    let done = match (q.done.as_str(), q.revision) {
        ("first-backup", Some(rev)) => Some(format!(
            "Published revision {rev} with a run_cloud_sync action: the device runs the backup \
             when it fetches it."
        )),
        ("disabled", _) => Some("Token disabled: the device now gets 403.".to_owned()),
        ("enabled", _) => Some("Token enabled: the device is accepted again.".to_owned()),
        _ => None,
    };
    render_device(&web, &credential, &name, done.as_deref(), None).await
}

#[derive(Deserialize)]
struct FirstBackupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pool: String,
}

async fn first_backup(
    State(web): WebState,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<FirstBackupForm>,
) -> Response {
    let credential = match web.require_post(&headers, &form.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let db = web.monitor.db();
    let reported: Vec<String> = match db.device_state(&name).await {
        Ok(Some(s)) => s.pools.into_iter().map(|p| p.pool).collect(),
        Ok(None) | Err(DbError::BadName { .. }) => {
            return plain(StatusCode::NOT_FOUND, "no such device");
        }
        Err(e) => return internal(&e),
    };
    let now = web.monitor.now();
    match actions::first_backup(db, &name, &form.pool, &reported, now).await {
        Ok(revision) => {
            Counters::bump(&web.monitor.counters().actions);
            tracing::info!(operator = %credential.operator().name, device = %name, pool = %form.pool,
                revision, "published a first-backup action from the dashboard");
            redirect(&format!(
                "/devices/{name}?done=first-backup&revision={revision}"
            ))
        }
        Err(e) => {
            let status = match &e {
                actions::ActionError::Raced { .. } => StatusCode::CONFLICT,
                actions::ActionError::NoDocument { .. }
                | actions::ActionError::UnknownPool { .. }
                | actions::ActionError::NotJson => StatusCode::BAD_REQUEST,
                actions::ActionError::Db(DbError::Refused(_)) => StatusCode::UNPROCESSABLE_ENTITY,
                actions::ActionError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let message = truenas_agent::fault::error_chain(&e);
            tracing::warn!(operator = %credential.operator().name, device = %name, error = %message,
                "a first-backup action was not published");
            render_device(&web, &credential, &name, None, Some((status, &message))).await
        }
    }
}

async fn set_disabled(
    web: &Web,
    headers: &HeaderMap,
    name: &str,
    csrf: &str,
    disabled: bool,
) -> Response {
    let credential = match web.require_post(headers, csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match web.monitor.db().set_disabled(name, disabled).await {
        Ok(()) => {
            Counters::bump(&web.monitor.counters().actions);
            tracing::info!(operator = %credential.operator().name, device = %name, disabled,
                "changed a device token from the dashboard");
            let word = if disabled { "disabled" } else { "enabled" };
            redirect(&format!("/devices/{name}?done={word}"))
        }
        Err(DbError::UnknownDevice { .. } | DbError::BadName { .. }) => {
            plain(StatusCode::NOT_FOUND, "no such device")
        }
        Err(e) => internal(&e),
    }
}

async fn disable(
    State(web): WebState,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    set_disabled(&web, &headers, &name, &form.csrf, true).await
}

async fn enable(
    State(web): WebState,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    set_disabled(&web, &headers, &name, &form.csrf, false).await
}

async fn metrics_page(State(web): WebState, headers: HeaderMap) -> Response {
    if let Err(r) = web.require(&headers, Want::Api).await {
        return r;
    }
    let snapshot = match web.snapshot().await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let db = web.monitor.db();
    let totals = async {
        let (pending, delivered, given_up) = db.webhook_totals().await?;
        Ok::<_, DbError>(Totals {
            reports_stored: db.report_count().await?,
            webhooks_pending: pending,
            webhooks_delivered: delivered,
            webhooks_given_up: given_up,
            backend: match db.backend() {
                crate::db::Backend::Sqlite => "sqlite",
                crate::db::Backend::Postgres => "postgresql",
            },
        })
    }
    .await;
    let totals = match totals {
        Ok(t) => t,
        Err(e) => return internal(&e),
    };
    let text = metrics::render(&snapshot, web.monitor.counters(), &totals);
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

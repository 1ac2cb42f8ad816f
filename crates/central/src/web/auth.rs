//! Who is asking: operator bearer tokens, login sessions, and the CSRF defences of the
//! dashboard's POSTs.
//!
//! Owns: reading `Authorization: Bearer …` and the session cookie, the cookie's attributes
//! (`__Host-` prefix, `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`), drawing session ids
//! (256 bits from the OS CSPRNG), the per-session CSRF token (HMAC-SHA256 keyed by the
//! session id: only a holder of the HttpOnly cookie can compute it) and the request-origin
//! check (`Sec-Fetch-Site`, `Origin` against `[dashboard] public_origin` or the `Host`).
//! Does not: store anything itself (the database keeps hashes of operator tokens and
//! session ids) or render.
//! Invariants: only operator tokens open the dashboard — a device token is looked up among
//! operator tokens only, and fails; a request with a bearer header is judged by it alone
//! (a bad token is never rescued by a cookie); a cookie-authenticated POST needs the
//! session's CSRF token *and* a same-origin request (when the browser says where it comes
//! from); no token, session id or CSRF token is logged.
//! Limitations: the cookie is `Secure`, so the form login works over HTTPS (the TLS
//! proxy) and on loopback addresses, which browsers treat as secure; no lock-out after
//! failed logins (tokens are 256-bit random: guessing is hopeless).

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use sha2::Sha256;

use crate::db::{Db, DbError, Operator};
use crate::store::token_hash;

/// The session cookie's name (`__Host-`: the browser keeps it to this origin, `Secure`,
/// `Path=/`).
pub const SESSION_COOKIE: &str = "__Host-truenas-central-session";

/// How a request authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    /// `Authorization: Bearer <operator token>`.
    Bearer(Operator),
    /// A login session (the form).
    Session {
        operator: Operator,
        /// The session's CSRF token (for forms).
        csrf: String,
    },
}

impl Credential {
    /// The operator.
    pub fn operator(&self) -> &Operator {
        match self {
            Credential::Bearer(o) | Credential::Session { operator: o, .. } => o,
        }
    }

    /// The CSRF token forms carry (empty for bearer requests, which need none).
    pub fn csrf(&self) -> &str {
        match self {
            Credential::Bearer(_) => "",
            Credential::Session { csrf, .. } => csrf,
        }
    }
}

/// Why a request is not authenticated.
#[derive(Debug)]
pub enum Denied {
    /// No bearer header and no (valid) session: a browser goes to the login form.
    NoCredential,
    /// A bearer token that is no enabled operator's.
    BadToken,
    /// The database failed.
    Db(DbError),
}

/// The bearer token of the request, if it has an `Authorization: Bearer` header
/// (`Some("")` for an empty one).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The session id from the cookie header, if any.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Authenticates an operator by bearer token or session cookie.
pub async fn authenticate(
    db: &Db,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<Credential, Denied> {
    if headers.contains_key(header::AUTHORIZATION) {
        let token = bearer(headers)
            .filter(|t| !t.is_empty())
            .ok_or(Denied::BadToken)?;
        return match db.operator_for_token(&token_hash(token)).await {
            Ok(Some(operator)) => Ok(Credential::Bearer(operator)),
            Ok(None) => Err(Denied::BadToken),
            Err(e) => Err(Denied::Db(e)),
        };
    }
    let Some(id) = session_id(headers) else {
        return Err(Denied::NoCredential);
    };
    match db.session_operator(&token_hash(&id), now).await {
        Ok(Some(operator)) => Ok(Credential::Session {
            operator,
            csrf: csrf_token(&id),
        }),
        Ok(None) => Err(Denied::NoCredential),
        Err(e) => Err(Denied::Db(e)),
    }
}

/// A new session id (256 bits, URL-safe base64).
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn csrf_mac(session_id: &str) -> Hmac<Sha256> {
    #[allow(
        clippy::expect_used,
        reason = "invariant: HMAC accepts keys of any length"
    )]
    let mut mac =
        Hmac::<Sha256>::new_from_slice(session_id.as_bytes()).expect("invariant: any key length");
    mac.update(b"truenas-central dashboard csrf v1");
    mac
}

/// The CSRF token of a session.
pub fn csrf_token(session_id: &str) -> String {
    hex::encode(csrf_mac(session_id).finalize().into_bytes())
}

/// True when `token` is the session's CSRF token (constant-time).
pub fn csrf_matches(session_id: &str, token: &str) -> bool {
    hex::decode(token).is_ok_and(|bytes| csrf_mac(session_id).verify_slice(&bytes).is_ok())
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(id: &str, max_age_secs: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; Path=/; Max-Age={max_age_secs}; Secure; HttpOnly; SameSite=Lax"
    ))
    .ok()
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-truenas-central-session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
    )
}

/// Why a state-changing request is refused as cross-site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossSite {
    /// `Sec-Fetch-Site` is `cross-site` or `same-site`.
    FetchSite,
    /// `Origin` is not the dashboard's.
    Origin,
}

/// Refuses a request a browser sent from another site. `public_origin`: the configured
/// origin (`https://central.example`); without it the `Origin`'s host must be the `Host`.
/// A request that says nothing (no `Origin`, no `Sec-Fetch-Site`: not a current browser)
/// passes: the CSRF token still guards cookie-authenticated forms.
pub fn same_origin(headers: &HeaderMap, public_origin: Option<&str>) -> Result<(), CrossSite> {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Err(CrossSite::FetchSite);
        }
    }
    let Some(origin) = get("origin") else {
        return Ok(());
    };
    let ok = public_origin.map_or_else(
        || {
            let host = get("host").unwrap_or_default();
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            authority.is_some_and(|a| !host.is_empty() && a.eq_ignore_ascii_case(host))
        },
        |expected| origin == expected,
    );
    if ok { Ok(()) } else { Err(CrossSite::Origin) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn csrf_token_is_bound_to_the_session() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let token = csrf_token(&a);
        assert!(csrf_matches(&a, &token));
        assert!(!csrf_matches(&b, &token));
        assert!(!csrf_matches(&a, ""));
        assert!(!csrf_matches(&a, "zz"));
        assert_ne!(token, a, "the token is not the session id");
    }

    #[test]
    fn cookie_and_bearer_parsing() {
        let h = headers(&[("cookie", "a=1; __Host-truenas-central-session=abc ; b=2")]);
        assert_eq!(session_id(&h).as_deref(), Some("abc"));
        assert_eq!(session_id(&headers(&[("cookie", "a=1")])), None);
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer tok ")])),
            Some("tok")
        );
        assert_eq!(bearer(&headers(&[("authorization", "bearer")])), Some(""));
        assert_eq!(bearer(&headers(&[("authorization", "Basic x")])), None);
        let cookie = session_cookie("abc", 60).unwrap();
        let text = cookie.to_str().unwrap();
        for part in ["__Host-", "Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(text.contains(part), "{text}");
        }
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(same_origin(&headers(&[host]), None), Ok(()));
        assert_eq!(
            same_origin(&headers(&[host, ("origin", "http://127.0.0.1:8080")]), None),
            Ok(())
        );
        assert_eq!(
            same_origin(&headers(&[host, ("origin", "https://evil.example")]), None),
            Err(CrossSite::Origin)
        );
        assert_eq!(
            same_origin(&headers(&[host, ("origin", "null")]), None),
            Err(CrossSite::Origin)
        );
        assert_eq!(
            same_origin(&headers(&[host, ("sec-fetch-site", "cross-site")]), None),
            Err(CrossSite::FetchSite)
        );
        assert_eq!(
            same_origin(&headers(&[host, ("sec-fetch-site", "same-site")]), None),
            Err(CrossSite::FetchSite)
        );
        let public = Some("https://central.example.com");
        assert_eq!(
            same_origin(
                &headers(&[host, ("origin", "https://central.example.com")]),
                public
            ),
            Ok(())
        );
        assert_eq!(
            same_origin(
                &headers(&[host, ("origin", "http://127.0.0.1:8080")]),
                public
            ),
            Err(CrossSite::Origin)
        );
    }
}

//! HTTP routing per version: what middlewared and TrueNAS's nginx answer for a request
//! path, and which API versions a release serves.
//!
//! Owns: [`api_versions`] (the `GET /api/versions` list of a release: the API modules
//! under `MW/api/` at its tag, minus the hidden `v24.10`, plus 27's aliases), [`route`]
//! (middlewared's routes, `MW/main.py`, and nginx's locations,
//! `MW/etc_files/local/nginx/nginx.conf.mako`, per [`Front`]).
//! Does not: accept connections or speak WebSocket (`server.rs`).
//! Invariants: pure; a path is only ever answered with a WebSocket upgrade where the real
//! box upgrades it.
//! Limitations: older versioned endpoints are served with the box's own API (the model
//! conversion of `MW/api/base/server/legacy_api_method.py` is not simulated); the hidden
//! `/api/v24.10`, `/api/boot_id`, `/api/docs`, REST `/api/v2.0` and the UI are not served
//! (404 from middlewared; through nginx `/ui/` itself is a 404 too).

use truenas_agent::middleware::{ApiFlavor, release_of};

/// Who answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// middlewared itself: its unix socket, or the loopback TCP listener.
    Middleware,
    /// nginx on HTTPS (`tls`) or on plain HTTP without the HTTPS redirect: proxies
    /// `/websocket` always and `/api` from 25.04 on; any other path is rewritten to
    /// `$scheme://$http_host/ui/` (302).
    Nginx { tls: bool },
    /// nginx's plain HTTP port with the HTTP→HTTPS redirect on: every request is
    /// answered `307` to `https://$host:<https_port>$request_uri`.
    NginxRedirect { https_port: u16 },
}

/// What a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A WebSocket with the legacy protocol (`/websocket`).
    Legacy,
    /// A WebSocket with JSON-RPC 2.0, serving API version `api` (e.g. `v26.0.0`).
    JsonRpc { api: String },
    /// `200` with the JSON array of API versions.
    Versions(Vec<String>),
    /// Any other HTTP answer (no upgrade).
    Status { code: u16, location: Option<String> },
}

/// The API versions a release serves, as `GET /api/versions` lists them (sorted; the
/// hidden `v24.10` left out). Empty for 24.10. A release newer than its family's known
/// releases (e.g. `28.0.0` on a 27.0 box) also serves its own version, named after its
/// numeric prefix, as the current one.
pub fn api_versions(flavor: ApiFlavor, release: &str) -> Vec<String> {
    let patch = patch_of(release);
    let range = |family: &'static str, last: u32| (0..=last).map(move |p| format!("v{family}.{p}"));
    let v25_04 = || range("25.04", 2);
    let mut out: Vec<String> = match flavor {
        ApiFlavor::V24_10 => Vec::new(),
        // TS-25.04.0: v25_04_0; .1 adds v25_04_1; .2+ adds v25_04_2.
        ApiFlavor::V25_04 => range("25.04", patch.unwrap_or(0).min(2)).collect(),
        // TS-25.10.3 has no v25_10_3 module (its current API is v25.10.2); 25.10.4 adds
        // v25_10_3 and v25_10_4; 25.10.5+ v25_10_5.
        ApiFlavor::V25_10 => {
            let last = match patch.unwrap_or(0) {
                p @ 0..=2 => p,
                3 => 2,
                4 => 4,
                _ => 5,
            };
            v25_04().chain(range("25.10", last)).collect()
        }
        // TS-26.0.0-BETA.1/.2 stop at v25_10_2, BETA.3 at v25_10_4 (no v25_10_5, NEWER.md);
        // stable/26 (26.0.0-RC.1 on) has v25_10_5.
        ApiFlavor::V26_0 => {
            let last = if release.contains("BETA.1") || release.contains("BETA.2") {
                2
            } else if release.contains("BETA.3") {
                4
            } else {
                5
            };
            v25_04()
                .chain(range("25.10", last))
                .chain(["v26.0.0".to_owned()])
                .collect()
        }
        // master: v25_10_3 and v25_10_4 are aliases of v25_10_2 (`MW/api/aliases.py`).
        ApiFlavor::V27_0 => v25_04()
            .chain(range("25.10", 5))
            .chain(["v26.0.0".to_owned(), "v27.0.0".to_owned()])
            .collect(),
    };
    if flavor != ApiFlavor::V24_10 {
        if let Some(own) = own_version(release) {
            if !out.contains(&own) && release_of(release) > Some(flavor.release()) {
                out.push(own);
            }
        }
    }
    out.sort();
    out
}

/// The third number of a version (`25.10.6` → 6; `25.10-RC.1` → `None`).
fn patch_of(release: &str) -> Option<u32> {
    release
        .split('-')
        .next()?
        .split('.')
        .nth(2)
        .and_then(|p| p.parse().ok())
}

/// `v28.0.0` for release `28.0.0-BETA.1`.
fn own_version(release: &str) -> Option<String> {
    let (major, minor) = release_of(release)?;
    Some(format!(
        "v{major}.{minor}.{}",
        patch_of(release).unwrap_or(0)
    ))
}

/// What `front` answers for `path` on this box. `upgrade`: the request asks for a
/// WebSocket. `host` is the request's `Host` header (nginx builds redirects from it).
pub fn route(
    flavor: ApiFlavor,
    release: &str,
    front: Front,
    host: &str,
    path: &str,
    upgrade: bool,
) -> Answer {
    let path = path.split('?').next().unwrap_or(path);
    match front {
        Front::NginxRedirect { https_port } => {
            let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
            Answer::Status {
                code: 307,
                location: Some(format!("https://{name}:{https_port}{path}")),
            }
        }
        Front::Nginx { tls } => {
            let proxied = path == "/websocket"
                || path.starts_with("/websocket/")
                || (flavor != ApiFlavor::V24_10 && (path == "/api" || path.starts_with("/api/")));
            if proxied {
                middleware(flavor, release, path, upgrade)
            } else if path.starts_with("/ui") {
                not_found()
            } else {
                // `location / { rewrite ^.* $scheme://$http_host/ui/ redirect; }`
                let scheme = if tls { "https" } else { "http" };
                Answer::Status {
                    code: 302,
                    location: Some(format!("{scheme}://{host}/ui/")),
                }
            }
        }
        Front::Middleware => middleware(flavor, release, path, upgrade),
    }
}

fn not_found() -> Answer {
    Answer::Status {
        code: 404,
        location: None,
    }
}

/// middlewared's own routes (`MW/main.py`): `/websocket`; from 25.04 `/api/versions`,
/// `/api/current` and `/api/<version>` for every version.
fn middleware(flavor: ApiFlavor, release: &str, path: &str, upgrade: bool) -> Answer {
    let websocket = |answer: Answer| {
        if upgrade {
            answer
        } else {
            // aiohttp's `WebSocketResponse.prepare` on a plain request.
            Answer::Status {
                code: 400,
                location: None,
            }
        }
    };
    if path == "/websocket" {
        return websocket(Answer::Legacy);
    }
    if flavor == ApiFlavor::V24_10 {
        return not_found();
    }
    let versions = api_versions(flavor, release);
    match path {
        "/api/versions" => Answer::Versions(versions),
        "/api/current" => match versions.last() {
            Some(api) => websocket(Answer::JsonRpc { api: api.clone() }),
            None => not_found(),
        },
        p => match p.strip_prefix("/api/") {
            Some(v) if versions.iter().any(|known| known == v) => {
                websocket(Answer::JsonRpc { api: v.to_owned() })
            }
            _ => not_found(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jsonrpc(api: &str) -> Answer {
        Answer::JsonRpc { api: api.into() }
    }

    #[test]
    fn versions_per_release() {
        assert!(api_versions(ApiFlavor::V24_10, "24.10.2.4").is_empty());
        assert_eq!(
            api_versions(ApiFlavor::V25_04, "25.04.2.6"),
            ["v25.04.0", "v25.04.1", "v25.04.2"]
        );
        assert_eq!(
            api_versions(ApiFlavor::V25_04, "25.04-BETA.1"),
            ["v25.04.0"]
        );
        let v25_10 = api_versions(ApiFlavor::V25_10, "25.10.6");
        assert_eq!(v25_10.last().map(String::as_str), Some("v25.10.5"));
        assert_eq!(v25_10.len(), 9);
        assert!(!api_versions(ApiFlavor::V25_10, "25.10.3").contains(&"v25.10.3".to_owned()));
        let beta3 = api_versions(ApiFlavor::V26_0, "26.0.0-BETA.3");
        assert!(!beta3.contains(&"v25.10.5".to_owned()), "{beta3:?}");
        assert!(beta3.contains(&"v25.10.4".to_owned()));
        assert_eq!(beta3.last().map(String::as_str), Some("v26.0.0"));
        assert!(api_versions(ApiFlavor::V26_0, "26.0.0-RC.1").contains(&"v25.10.5".to_owned()));
        let master = api_versions(ApiFlavor::V27_0, "27.0.0-MASTER-20260822-095245");
        assert_eq!(master.len(), 11);
        assert_eq!(master.last().map(String::as_str), Some("v27.0.0"));
        // A newer box also serves its own (unknown) version, as the current one.
        let newer = api_versions(ApiFlavor::V27_0, "28.0.0");
        assert_eq!(newer.last().map(String::as_str), Some("v28.0.0"));
        assert!(newer.contains(&"v27.0.0".to_owned()));
    }

    #[test]
    fn middleware_routes() {
        let m = Front::Middleware;
        let r = |f, v, p| route(f, v, m, "localhost", p, true);
        assert_eq!(
            r(ApiFlavor::V24_10, "24.10.2.4", "/websocket"),
            Answer::Legacy
        );
        assert_eq!(
            r(ApiFlavor::V24_10, "24.10.2.4", "/api/current"),
            not_found()
        );
        assert_eq!(
            route(
                ApiFlavor::V24_10,
                "24.10.2.4",
                m,
                "localhost",
                "/api/versions",
                false
            ),
            not_found()
        );
        assert_eq!(
            r(ApiFlavor::V25_04, "25.04.2.6", "/api/current"),
            jsonrpc("v25.04.2")
        );
        assert_eq!(
            r(ApiFlavor::V25_04, "25.04.2.6", "/api/v25.04.0"),
            jsonrpc("v25.04.0")
        );
        assert_eq!(
            r(ApiFlavor::V25_04, "25.04.2.6", "/api/v25.10.0"),
            not_found()
        );
        assert_eq!(
            r(ApiFlavor::V25_10, "25.10.6", "/api/v25.10.5"),
            jsonrpc("v25.10.5")
        );
        assert_eq!(r(ApiFlavor::V25_10, "25.10.6", "/"), not_found());
        assert_eq!(
            r(ApiFlavor::V26_0, "26.0.0-BETA.3", "/api/v25.10.5"),
            not_found(),
            "26.0.0-BETA.3 lacks v25.10.5"
        );
        assert_eq!(
            r(ApiFlavor::V27_0, "27.0.0", "/api/current"),
            jsonrpc("v27.0.0")
        );
        assert_eq!(r(ApiFlavor::V27_0, "27.0.0", "/websocket"), Answer::Legacy);
        assert!(matches!(
            route(ApiFlavor::V26_0, "26.0.0-BETA.3", m, "localhost", "/api/versions", false),
            Answer::Versions(v) if v.len() == 9
        ));
        assert_eq!(
            route(
                ApiFlavor::V26_0,
                "26.0.0",
                m,
                "localhost",
                "/api/current",
                false
            ),
            Answer::Status {
                code: 400,
                location: None
            }
        );
    }

    #[test]
    fn nginx_routes() {
        let n = |f, p| route(f, "x", Front::Nginx { tls: true }, "nas:443", p, true);
        // 24.10 has no `location /api`: the /ui/ rewrite answers.
        let ui = Answer::Status {
            code: 302,
            location: Some("https://nas:443/ui/".into()),
        };
        assert_eq!(n(ApiFlavor::V24_10, "/api/current"), ui);
        assert_eq!(n(ApiFlavor::V24_10, "/api/versions"), ui);
        assert_eq!(n(ApiFlavor::V24_10, "/websocket"), Answer::Legacy);
        assert_eq!(n(ApiFlavor::V25_04, "/api/current"), jsonrpc("v25.04.0"));
        assert_eq!(n(ApiFlavor::V25_04, "/"), ui);
        assert_eq!(
            route(
                ApiFlavor::V24_10,
                "x",
                Front::Nginx { tls: false },
                "nas",
                "/api/current",
                true
            ),
            Answer::Status {
                code: 302,
                location: Some("http://nas/ui/".into())
            }
        );
        let redirect = route(
            ApiFlavor::V26_0,
            "26.0.0",
            Front::NginxRedirect { https_port: 8443 },
            "nas:80",
            "/api/current",
            true,
        );
        assert_eq!(
            redirect,
            Answer::Status {
                code: 307,
                location: Some("https://nas:8443/api/current".into())
            }
        );
    }
}

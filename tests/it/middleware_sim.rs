//! The agent's middleware client against the simulator, for every supported TrueNAS
//! version (24.10 legacy protocol; 25.04, 25.10, 26.0 and 27.0 JSON-RPC pinned to the
//! highest API version the agent knows) over the unix socket, middlewared's loopback TCP
//! listener (a vendor-build feature on 26.0+) and nginx's HTTPS listener with a pinned
//! certificate, with an API key: calls, validation errors with their paths, jobs
//! awaited, events, injected drops (reported, never repeated, reconnect on the next
//! call), API-key revocation over an insecure transport; nginx's routing (24.10's 302,
//! the HTTP→HTTPS redirect's 307) and the refused loopback port of 26.0+.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use truenas_agent::middleware::{
    ApiFlavor, ApiKey, Call, CallError, Client, ClientSettings, ConnectError, ConnectOptions,
    JobState, Method, Middleware, Protocol, TransportKind,
};
use truenas_sim::scenario::{ApiKeyEntry, B2Account};
use truenas_sim::{
    DropAt, DropWhen, JobTiming, Scenario, ServeOptions, Server, Simulator, TlsIdentity,
};

use crate::support::assert_no_canary;

const KEY: &str = "7-CANARY-API-KEY-0a7d62";
const USER: &str = "truenas_admin";
/// Far beyond any correct outcome: a broken behaviour fails instead of hanging.
const LONG: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Unix,
    /// middlewared's loopback TCP listener (`ws://127.0.0.1:…`).
    Tcp,
    /// nginx's HTTPS listener (`wss://127.0.0.1:…`), certificate pinned.
    Wss,
}

const TRANSPORTS: [Transport; 3] = [Transport::Unix, Transport::Tcp, Transport::Wss];

/// The API version the agent pins on each simulated release (`None`: legacy protocol).
fn pinned(flavor: ApiFlavor) -> Option<&'static str> {
    match flavor {
        ApiFlavor::V24_10 => None,
        ApiFlavor::V25_04 => Some("v25.04.2"),
        ApiFlavor::V25_10 => Some("v25.10.5"),
        ApiFlavor::V26_0 => Some("v26.0.0"),
        ApiFlavor::V27_0 => Some("v27.0.0"),
    }
}

fn scenario(flavor: ApiFlavor) -> Scenario {
    let mut s = Scenario::two_pools(flavor);
    // 26.0+ opens middlewared's TCP listener on vendor builds only: these tests use one
    // (the refused port of a stock box is tested on its own below).
    s.system.vendored = flavor >= ApiFlavor::V26_0;
    s.api_keys.push(ApiKeyEntry::new(7, "agent", USER, KEY));
    s.b2_accounts.push(B2Account {
        account: "0012ab".into(),
        valid: true,
        buckets: Some(vec!["truenas-loc".into()]),
    });
    s
}

async fn serve(scenario: Scenario) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(scenario).with_job_timing(JobTiming::Auto {
        duration: Duration::from_millis(20),
    });
    let identity = TlsIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let options = ServeOptions {
        socket: Some(dir.path().join("middlewared.sock")),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        https: Some(("127.0.0.1:0".parse().unwrap(), identity)),
        ..Default::default()
    };
    (sim.serve(options).await.unwrap(), dir)
}

fn settings() -> ClientSettings {
    ClientSettings {
        reconnect_initial: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(50),
        reconnect_budget: Duration::from_secs(5),
        job_poll_interval: Duration::from_millis(200),
        ..ClientSettings::default()
    }
}

fn options(server: &Server, transport: Transport, key: &str) -> ConnectOptions {
    let mut options = ConnectOptions {
        call_timeout: LONG,
        connect_timeout: LONG,
        ..ConnectOptions::default()
    };
    let api_key = || {
        Some(ApiKey {
            username: Some(USER.to_owned()),
            key: SecretString::from(key.to_owned()),
        })
    };
    match transport {
        Transport::Unix => options.url = server.unix_url().unwrap(),
        Transport::Tcp => {
            options.url = server.ws_url().unwrap();
            options.api_key = api_key();
        }
        Transport::Wss => {
            options.url = server.wss_url().unwrap();
            options.tls_pin_sha256 = Some(server.tls_fingerprint().unwrap().to_string());
            options.api_key = api_key();
        }
    }
    options
}

async fn connect(server: &Server, transport: Transport) -> Client {
    Client::connect_with(options(server, transport, KEY), settings())
        .await
        .unwrap()
}

/// The B2 credential in the version's shape (REFERENCE §4.2).
fn credential(flavor: ApiFlavor) -> Value {
    let secret = "CANARY-B2-APPKEY-7f3a9c";
    match flavor {
        ApiFlavor::V24_10 => {
            json!({"name": "truenas-loc", "provider": "B2", "attributes": {"account": "0012ab", "key": secret}})
        }
        _ => {
            json!({"name": "truenas-loc", "provider": {"type": "B2", "account": "0012ab", "key": secret}})
        }
    }
}

fn task(credential_id: &Value) -> Value {
    json!({
        "description": "Pool0 Cloud Backup", "path": "/mnt/pool0", "credentials": credential_id,
        "attributes": {"bucket": "truenas-loc", "folder": "/device/pool0", "chunk_size": 96, "fast_list": true},
        "schedule": {"minute": "0", "hour": "0", "dom": "*", "month": "*", "dow": "*"},
        "direction": "PUSH", "transfer_mode": "SYNC", "encryption": true,
        "encryption_password": "CANARY-ENC-PASSWORD-2b8e41", "encryption_salt": "CANARY-ENC-SALT-9d0c55",
        "bwlimit": [{"time": "00:00", "bandwidth": 10_000_000}, {"time": "08:00", "bandwidth": 2_500_000}],
    })
}

async fn call(client: &Client, method: Method, params: Vec<Value>) -> Result<Value, CallError> {
    client.call(Call::new(method, params)).await
}

#[tokio::test]
async fn calls_validation_errors_jobs_and_events_on_every_version_and_transport() {
    for flavor in ApiFlavor::ALL {
        for transport in TRANSPORTS {
            let (server, _dir) = serve(scenario(flavor)).await;
            let client = connect(&server, transport).await;
            let case = format!("{flavor} over {transport:?}");
            let info = client.api();
            assert_eq!(info.flavor, flavor, "{case}");
            assert_eq!(info.version, server.simulator().version(), "{case}");
            let expected_protocol = if flavor == ApiFlavor::V24_10 {
                Protocol::Legacy
            } else {
                Protocol::JsonRpc
            };
            assert_eq!(info.protocol, expected_protocol, "{case}");
            let expected_transport = match transport {
                Transport::Unix => TransportKind::UnixSocket,
                Transport::Tcp => TransportKind::Loopback,
                Transport::Wss => TransportKind::Tls,
            };
            assert_eq!(info.transport, expected_transport, "{case}");
            // Pinned to the highest API version it knows that the box serves.
            assert_eq!(info.api_version.as_deref(), pinned(flavor), "{case}");
            assert!(!info.newer_than_known, "{case}");
            let upgrades: Vec<_> = server
                .simulator()
                .http_requests()
                .into_iter()
                .filter(|r| r.status == 101)
                .collect();
            assert_eq!(upgrades.len(), 1, "{case}: {upgrades:?}");
            let expected_path =
                pinned(flavor).map_or("/websocket".to_owned(), |v| format!("/api/{v}"));
            assert_eq!(upgrades[0].path, expected_path, "{case}");
            assert_eq!(upgrades[0].api.as_deref(), pinned(flavor), "{case}");

            let pools = call(&client, Method::PoolQuery, vec![json!([]), json!({})])
                .await
                .unwrap();
            let names: Vec<&str> = pools
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert!(
                names.contains(&"pool0") && names.contains(&"pool1"),
                "{case}: {names:?}"
            );

            let cred = call(&client, Method::CredentialsCreate, vec![credential(flavor)])
                .await
                .unwrap();
            let mut bad = task(&cred["id"]);
            bad["bwlimit"] =
                json!([{"time": "08:00", "bandwidth": 1}, {"time": "00:00", "bandwidth": 1}]);
            let err = call(&client, Method::CloudsyncCreate, vec![bad])
                .await
                .unwrap_err();
            let CallError::Validation { items, .. } = &err else {
                panic!("{case}: {err}")
            };
            assert!(
                items
                    .iter()
                    .any(|i| i.path == "cloud_sync_create.bwlimit.1.time"),
                "{case}: {items:?}"
            );
            let missing = call(&client, Method::CloudsyncUpdate, vec![json!(99), json!({})])
                .await
                .unwrap_err();
            assert!(
                matches!(missing, CallError::NotFound { .. }),
                "{case}: {missing}"
            );

            let created = call(&client, Method::CloudsyncCreate, vec![task(&cred["id"])])
                .await
                .unwrap();
            let id = client
                .call(Call::new(
                    Method::CloudsyncSync,
                    vec![created["id"].clone()],
                ))
                .await
                .unwrap()
                .as_u64()
                .unwrap();
            let job = client.wait_job(id, LONG).await.unwrap();
            assert_eq!(job.state, JobState::Success, "{case}");
            assert_eq!(job.method.as_deref(), Some("cloudsync.sync"));

            // A failing run, followed through a subscription as the daemon would.
            let mut alerts = client.subscribe("alert.list").await.unwrap();
            server
                .simulator()
                .fail_next_sync("ERROR : a.bin: file is retention-locked (403)");
            let id = client
                .call(Call::new(
                    Method::CloudsyncSync,
                    vec![created["id"].clone()],
                ))
                .await
                .unwrap()
                .as_u64()
                .unwrap();
            let job = client.wait_job(id, LONG).await.unwrap();
            assert_eq!(job.state, JobState::Failed, "{case}");
            assert!(
                job.error
                    .as_deref()
                    .unwrap_or_default()
                    .contains("retention-locked"),
                "{case}"
            );
            let alert = tokio::time::timeout(LONG, alerts.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                alert.fields.as_ref().unwrap()["klass"],
                "CloudSyncTaskFailed",
                "{case}"
            );

            assert_no_canary(
                &case,
                &format!("{err} {err:?} {missing} {job:?} {alert:?} {client:?}"),
            );
            server.shutdown().await;
        }
    }
}

#[tokio::test]
async fn injected_drops_are_reported_never_repeated_and_the_next_call_reconnects() {
    for flavor in ApiFlavor::ALL {
        for transport in TRANSPORTS {
            let (server, _dir) = serve(scenario(flavor)).await;
            let client = connect(&server, transport).await;
            let case = format!("{flavor} over {transport:?}");
            let sim = server.simulator().clone();
            let cred = call(&client, Method::CredentialsCreate, vec![credential(flavor)])
                .await
                .unwrap();

            // Dropped before executing: the task must not exist — the client did not
            // quietly send the create again on the new connection.
            sim.update_faults(|f| {
                f.drop_at.push(DropAt {
                    method: "cloudsync.create".into(),
                    when: DropWhen::Before,
                    times: Some(1),
                });
            });
            let err = call(&client, Method::CloudsyncCreate, vec![task(&cred["id"])])
                .await
                .unwrap_err();
            assert!(
                matches!(err, CallError::Disconnected { .. }),
                "{case}: {err}"
            );
            let tasks = call(&client, Method::CloudsyncQuery, vec![]).await.unwrap();
            assert_eq!(
                tasks,
                json!([]),
                "{case}: nothing created, nothing repeated"
            );

            // Dropped after executing: the change happened, the caller is told it may have.
            sim.update_faults(|f| {
                f.drop_at.push(DropAt {
                    method: "cloudsync.create".into(),
                    when: DropWhen::After,
                    times: Some(1),
                });
            });
            let err = call(&client, Method::CloudsyncCreate, vec![task(&cred["id"])])
                .await
                .unwrap_err();
            assert!(
                matches!(err, CallError::Disconnected { .. }),
                "{case}: {err}"
            );
            let tasks = call(&client, Method::CloudsyncQuery, vec![]).await.unwrap();
            assert_eq!(tasks.as_array().unwrap().len(), 1, "{case}: created once");

            let creates = sim
                .calls()
                .iter()
                .filter(|c| c.method == "cloudsync.create")
                .count();
            assert_eq!(creates, 2, "{case}: one request per call");
            let conns: std::collections::BTreeSet<u64> =
                sim.calls().iter().map(|c| c.conn).collect();
            assert_eq!(conns.len(), 3, "{case}: reconnected after each drop");
            server.shutdown().await;
        }
    }
}

#[tokio::test]
async fn an_api_key_used_over_an_insecure_transport_is_revoked_on_25_04_and_later() {
    for flavor in ApiFlavor::ALL {
        let mut s = scenario(flavor);
        // TCP counts as insecure here, as `ws://<LAN IP>` would on a real box.
        s.faults.insecure_tcp = true;
        let (server, _dir) = serve(s).await;
        let result = Client::connect_with(options(&server, Transport::Tcp, KEY), settings()).await;
        if flavor == ApiFlavor::V24_10 {
            // 24.10 has no revocation.
            assert!(result.is_ok(), "{flavor}");
        } else {
            let err = result.unwrap_err();
            assert!(
                matches!(err, ConnectError::ApiKeyRevoked { .. }),
                "{flavor}: {err}"
            );
            assert!(err.to_string().starts_with("API key revoked or expired"));
            assert!(server.simulator().state().api_keys[0].revoked, "{flavor}");
            let logins = server
                .simulator()
                .calls()
                .iter()
                .filter(|c| c.method == "auth.login_ex")
                .count();
            assert_eq!(logins, 1, "{flavor}: not retried");
            assert_no_canary("revocation error", &format!("{err} {err:?}"));
        }
        server.shutdown().await;
    }
}

#[tokio::test]
async fn an_api_key_used_over_tls_is_not_revoked_on_any_version() {
    for flavor in ApiFlavor::ALL {
        let mut s = scenario(flavor);
        // Even where plain TCP would count as insecure: nginx marks TLS `X-Https: on`.
        s.faults.insecure_tcp = true;
        let (server, _dir) = serve(s).await;
        let client = Client::connect_with(options(&server, Transport::Wss, KEY), settings())
            .await
            .unwrap_or_else(|e| panic!("{flavor}: {e}"));
        assert_eq!(client.api().transport, TransportKind::Tls);
        assert!(!server.simulator().state().api_keys[0].revoked, "{flavor}");
        server.shutdown().await;
    }
}

/// A box behind nginx only: HTTPS (certificate pinned) and its plain HTTP port.
async fn serve_nginx(flavor: ApiFlavor, https_redirect: bool) -> (Server, TlsIdentity) {
    let identity = TlsIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let sim = Simulator::new(scenario(flavor)).with_job_timing(JobTiming::Auto {
        duration: Duration::from_millis(20),
    });
    let server = sim
        .serve(ServeOptions {
            https: Some(("127.0.0.1:0".parse().unwrap(), identity.clone())),
            http: Some("127.0.0.1:0".parse().unwrap()),
            https_redirect,
            ..Default::default()
        })
        .await
        .unwrap();
    (server, identity)
}

#[tokio::test]
async fn wss_to_24_10_falls_back_to_the_legacy_route_behind_nginx() {
    // 24.10's nginx has no `location /api`: `/api/versions` (and `/api/current`) answer
    // 302 to /ui/, not 404. The agent must still find `/websocket`.
    let (server, identity) = serve_nginx(ApiFlavor::V24_10, false).await;
    let mut opts = options(&server, Transport::Wss, KEY);
    opts.tls_pin_sha256 = Some(identity.fingerprint().to_string());
    let client = Client::connect_with(opts, settings())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let info = client.api();
    assert_eq!(info.protocol, Protocol::Legacy);
    assert_eq!(info.flavor, ApiFlavor::V24_10);
    assert_eq!(info.api_version, None);
    assert_eq!(
        call(&client, Method::CorePing, vec![]).await.unwrap(),
        json!("pong")
    );
    let seen: Vec<(String, u16)> = server
        .simulator()
        .http_requests()
        .into_iter()
        .map(|r| (r.path, r.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("/api/versions".to_owned(), 302),
            ("/websocket".to_owned(), 101)
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn wss_through_nginx_pins_the_api_on_25_04_and_later() {
    for flavor in ApiFlavor::ALL.into_iter().skip(1) {
        let (server, _identity) = serve_nginx(flavor, true).await;
        let client = Client::connect_with(options(&server, Transport::Wss, KEY), settings())
            .await
            .unwrap_or_else(|e| panic!("{flavor}: {e:#}"));
        assert_eq!(
            client.api().api_version.as_deref(),
            pinned(flavor),
            "{flavor}"
        );
        assert_eq!(
            call(&client, Method::CorePing, vec![]).await.unwrap(),
            json!("pong")
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn the_http_port_with_the_https_redirect_is_refused_with_what_to_use() {
    for flavor in ApiFlavor::ALL {
        let (server, _identity) = serve_nginx(flavor, true).await;
        // `ws://127.0.0.1:<http port>` is loopback, so the agent may try it; nginx answers
        // every request with 307 to HTTPS.
        let opts = ConnectOptions {
            url: server.http_ws_url().unwrap(),
            api_key: Some(ApiKey {
                username: Some(USER.to_owned()),
                key: SecretString::from(KEY.to_owned()),
            }),
            connect_timeout: LONG,
            call_timeout: LONG,
            ..ConnectOptions::default()
        };
        let err = Client::connect_with(opts, settings()).await.unwrap_err();
        let ConnectError::HttpStatus { status, .. } = &err else {
            panic!("{flavor}: {err}")
        };
        assert_eq!(*status, 307, "{flavor}");
        let text = err.to_string();
        assert!(text.contains("use wss://"), "{flavor}: {text}");
        assert!(
            server.simulator().calls().is_empty(),
            "{flavor}: nothing reached the middleware, the key was never sent"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn the_plain_http_port_without_redirect_works_like_https() {
    for flavor in ApiFlavor::ALL {
        let (server, _identity) = serve_nginx(flavor, false).await;
        let opts = ConnectOptions {
            url: server.http_ws_url().unwrap(),
            api_key: Some(ApiKey {
                username: Some(USER.to_owned()),
                key: SecretString::from(KEY.to_owned()),
            }),
            connect_timeout: LONG,
            call_timeout: LONG,
            ..ConnectOptions::default()
        };
        let client = Client::connect_with(opts, settings())
            .await
            .unwrap_or_else(|e| panic!("{flavor}: {e:#}"));
        assert_eq!(
            client.api().api_version.as_deref(),
            pinned(flavor),
            "{flavor}"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_refused_loopback_port_names_the_unix_socket_on_26_and_later() {
    for flavor in [ApiFlavor::V26_0, ApiFlavor::V27_0] {
        // A stock 26+ box does not open middlewared's TCP listener at all.
        let mut s = scenario(flavor);
        s.system.vendored = false;
        let sim = Simulator::new(s);
        let refused = sim
            .serve(ServeOptions {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("vendor"),
            "{flavor}: {refused}"
        );
    }
    // So `ws://127.0.0.1:<port>` finds nothing listening: the error says what to use.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let opts = ConnectOptions {
        url: format!("ws://127.0.0.1:{port}"),
        api_key: Some(ApiKey {
            username: Some(USER.to_owned()),
            key: SecretString::from(KEY.to_owned()),
        }),
        connect_timeout: LONG,
        ..ConnectOptions::default()
    };
    let err = Client::connect_with(opts, settings()).await.unwrap_err();
    assert!(matches!(err, ConnectError::LoopbackRefused { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("unix:///var/run/middleware/middlewared.sock") && text.contains("26.0"),
        "{text}"
    );
    // `status` says it too.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::bin(crate::support::AGENT))
        .args([
            "--log",
            "warn",
            "--middleware",
            &format!("ws://127.0.0.1:{port}"),
        ])
        .arg("--api-key-file")
        .arg(&key_file)
        .args(["--api-user", USER, "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("status")
        .env_remove("TRUENAS_AGENT_CONFIG")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    let screen = screen.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        screen.contains("open 127.0.0.1:6000 only on vendor builds; use the unix socket unix:///var/run/middleware/middlewared.sock"),
        "{screen}"
    );
    assert_no_canary("status", &screen);
}

#[tokio::test]
async fn a_box_newer_than_every_known_release_is_driven_through_the_newest_known_api() {
    let mut s = scenario(ApiFlavor::V27_0);
    s.system.version = Some("28.0.0".into());
    let (server, _dir) = serve(s).await;
    assert!(
        server
            .simulator()
            .api_versions()
            .contains(&"v28.0.0".to_owned()),
        "the box serves its own, unknown API as the current one"
    );
    for transport in TRANSPORTS {
        let client = connect(&server, transport).await;
        let info = client.api();
        assert_eq!(info.version, "28.0.0");
        assert_eq!(info.flavor, ApiFlavor::V27_0, "{transport:?}");
        assert_eq!(
            info.api_version.as_deref(),
            Some("v27.0.0"),
            "{transport:?}"
        );
        assert!(info.newer_than_known, "{transport:?}");
        assert_eq!(
            call(&client, Method::CorePing, vec![]).await.unwrap(),
            json!("pong")
        );
    }
    // `status` names the release and the API in use, and warns.
    let state = tempfile::tempdir().unwrap();
    let mut status = tokio::process::Command::new(crate::support::bin(crate::support::AGENT));
    status
        .args(["--log", "warn", "--middleware", &server.unix_url().unwrap()])
        .arg("--state-dir")
        .arg(state.path())
        .args(["status", "--json"])
        .env_remove("TRUENAS_AGENT_CONFIG");
    // Asynchronously: the simulator answers on this test's runtime.
    let out = tokio::time::timeout(LONG, status.output())
        .await
        .unwrap()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let mw = &json["middleware"];
    assert_eq!(mw["truenas_version"], "28.0.0", "{mw}");
    assert_eq!(mw["api_version"], "v27.0.0", "{mw}");
    assert_eq!(mw["newer_than_supported"], true, "{mw}");
    let warned = json["problems"].as_array().unwrap().iter().any(|p| {
        p["level"] == "warning"
            && p["area"] == "middleware"
            && p["message"].as_str().unwrap().contains("28.0.0 is newer")
    });
    assert!(warned, "{}", json["problems"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_fails_the_login_on_every_version() {
    for flavor in ApiFlavor::ALL {
        let (server, _dir) = serve(scenario(flavor)).await;
        let err = Client::connect_with(
            options(&server, Transport::Tcp, "7-not-the-key"),
            settings(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, ConnectError::LoginFailed { .. }),
            "{flavor}: {err}"
        );
        server.shutdown().await;
    }
}

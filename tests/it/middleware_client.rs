//! The middleware client over real sockets (unix, loopback TCP, TLS) against a scripted
//! middleware speaking both protocols (`server.rs`).
//!
//! Time: tokio's paused clock auto-advances while socket I/O is in flight, so these tests
//! run in real time with short tunables and never assert on durations; "prompt" is shown
//! by getting the connection error instead of the (long) call timeout. The one test
//! that pauses the clock does so only while no socket I/O is pending.

mod server;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use server::{Action, Api, Fail, Options, Server};
use truenas_agent::fault::Fault;
use truenas_agent::middleware::{
    ApiFlavor, ApiKey, Call, CallError, Client, ClientSettings, ConnectError, ConnectOptions,
    EventKind, JobState, Method, Middleware, Protocol, SubscriptionError, TransportKind,
    ValidationItem,
};

use crate::support::assert_no_canary;

const BOTH: [Api; 2] = [Api::Legacy, Api::JsonRpc];
const USER: &str = "agent";
const KEY: &str = "1-CANARY-API-KEY-0a7d62";
const HOUR: Duration = Duration::from_secs(3600);
/// Call timeout and job-wait bound: far beyond any correct outcome, so a broken
/// behaviour fails with a timeout instead of hanging the suite.
const LONG: Duration = Duration::from_secs(20);

fn options(url: &str) -> ConnectOptions {
    ConnectOptions {
        url: url.to_owned(),
        call_timeout: LONG,
        connect_timeout: Duration::from_secs(30),
        ..ConnectOptions::default()
    }
}

fn with_key(mut options: ConnectOptions, user: Option<&str>, key: &str) -> ConnectOptions {
    options.api_key = Some(ApiKey {
        username: user.map(str::to_owned),
        key: SecretString::from(key.to_owned()),
    });
    options
}

fn fast() -> ClientSettings {
    ClientSettings {
        reconnect_initial: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(50),
        reconnect_budget: Duration::from_secs(5),
        job_poll_interval: Duration::from_millis(100),
        ..ClientSettings::default()
    }
}

async fn unix_client(api: Api) -> (tempfile::TempDir, Server, Client) {
    unix_client_with(api, fast()).await
}

async fn unix_client_with(
    api: Api,
    settings: ClientSettings,
) -> (tempfile::TempDir, Server, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::unix(api, dir.path()).await;
    let client = Client::connect_with(options(&server.unix_url()), settings)
        .await
        .unwrap();
    (dir, server, client)
}

fn flavor(api: Api) -> ApiFlavor {
    match api {
        Api::Legacy => ApiFlavor::V24_10,
        Api::JsonRpc => ApiFlavor::V25_04,
    }
}

fn protocol(api: Api) -> Protocol {
    match api {
        Api::Legacy => Protocol::Legacy,
        Api::JsonRpc => Protocol::JsonRpc,
    }
}

/// Captures this thread's log output (the tests run on a current-thread runtime, so
/// spawned tasks log here too).
fn capture_logs() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), buffer)
}

fn logs(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn detects_protocol_and_version_and_calls_over_the_unix_socket() {
    for api in BOTH {
        let (_dir, server, client) = unix_client(api).await;
        let info = client.api();
        assert_eq!(info.flavor, flavor(api));
        assert_eq!(info.version, api.version());
        assert_eq!(info.protocol, protocol(api));
        assert_eq!(info.transport, TransportKind::UnixSocket);
        // `GET /api/versions` first; then the highest known version, or `/websocket`.
        let (pinned, route) = match api {
            Api::Legacy => (None, "/websocket"),
            Api::JsonRpc => (Some("v25.04.2"), "/api/v25.04.2"),
        };
        assert_eq!(info.api_version.as_deref(), pinned);
        assert_eq!(server.routes(), ["/api/versions", route], "{api:?}");

        assert_eq!(
            client.call(Call::bare(Method::CorePing)).await.unwrap(),
            json!("pong")
        );
        server.script("pool.query", [Action::Reply(json!([{"name": "pool0"}]))]);
        let pools = client
            .call(Call::new(Method::PoolQuery, vec![json!([]), json!({})]))
            .await
            .unwrap();
        assert_eq!(pools, json!([{"name": "pool0"}]));
        let recorded = server.calls();
        let query = recorded.iter().find(|c| c.method == "pool.query").unwrap();
        assert_eq!(
            query.params,
            json!([[], {}]),
            "params go as a positional array"
        );
        // Unix socket: implicit login, no auth call at all.
        assert!(
            !server.methods().iter().any(|m| m.starts_with("auth.")),
            "{api:?}"
        );
        // An unknown method is reported as such on both protocols.
        let err = client
            .call(Call::bare(Method::AlertList))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            CallError::MethodNotFound {
                method: Method::AlertList
            },
            "{api:?}"
        );
        if api == Api::Legacy {
            assert!(
                server.frames()[0].contains(r#""msg":"connect""#),
                "legacy handshake first"
            );
        }
    }
}

/// How the rest of the agent uses the client: through `impl Middleware`.
async fn ping_through_the_seam(mw: &impl Middleware) -> serde_json::Value {
    mw.call(Call::bare(Method::CorePing)).await.unwrap()
}

#[tokio::test]
async fn the_client_serves_the_middleware_seam_from_spawned_tasks() {
    let (_dir, _server, client) = unix_client(Api::JsonRpc).await;
    let shared = std::sync::Arc::new(client.clone());
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let mw = shared.clone();
            tokio::spawn(async move { ping_through_the_seam(&mw).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), json!("pong"));
    }
    assert_eq!(ping_through_the_seam(&client).await, json!("pong"));
}

#[tokio::test]
async fn validation_errors_are_decoded_with_their_paths() {
    for api in BOTH {
        let (_dir, server, client) = unix_client(api).await;
        server.script(
            "cloudsync.create",
            [Action::Fail(Fail::Validation(vec![
                (
                    "cloud_sync_create.bwlimit.1.time".into(),
                    "Invalid time order".into(),
                ),
                (
                    "cloud_sync_create.credentials".into(),
                    "Invalid credentials".into(),
                ),
            ]))],
        );
        let err = client
            .call(Call::new(
                Method::CloudsyncCreate,
                vec![json!({"path": "/mnt/pool0"})],
            ))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            CallError::Validation {
                method: Method::CloudsyncCreate,
                items: vec![
                    ValidationItem {
                        path: "cloud_sync_create.bwlimit.1.time".into(),
                        message: "Invalid time order".into(),
                        errno: 22
                    },
                    ValidationItem {
                        path: "cloud_sync_create.credentials".into(),
                        message: "Invalid credentials".into(),
                        errno: 22
                    },
                ]
            },
            "{api:?}"
        );
        assert_eq!(err.fault(), Fault::Nas);
        server.script(
            "cloudsync.delete",
            [Action::Fail(Fail::Call(
                13,
                "EACCES",
                "Not authorized".into(),
            ))],
        );
        let err = client
            .call(Call::new(Method::CloudsyncDelete, vec![json!(3)]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallError::NotAuthorized { .. }),
            "{api:?}: {err}"
        );
    }
}

#[tokio::test]
async fn concurrent_calls_are_demultiplexed_and_capped_below_ten() {
    for api in BOTH {
        let (_dir, server, client) = unix_client(api).await;
        // Replies come back in the reverse order of the requests.
        let n = 12_u64;
        for i in 0..n {
            let delay = Duration::from_millis(50 * (n - i));
            server.script(
                "pool.query",
                [Action::Delay(delay, Box::new(Action::Reply(json!(i))))],
            );
        }
        let calls = (0..n).map(|_| client.call(Call::new(Method::PoolQuery, vec![])));
        let results = futures_util::future::join_all(calls).await;
        let mut answers: Vec<u64> = results
            .into_iter()
            .map(|r| r.unwrap().as_u64().unwrap())
            .collect();
        answers.sort_unstable();
        assert_eq!(answers, (0..n).collect::<Vec<_>>(), "{api:?}");
        // At most 8 were in flight: the 9th request only left after a reply came back.
        let before_first_reply = server.requests_before_first_reply("pool.query");
        assert!(
            before_first_reply <= 8,
            "{api:?}: {before_first_reply} in flight"
        );
        assert!(before_first_reply >= 1);
    }
}

#[tokio::test]
async fn a_late_answer_to_an_abandoned_call_is_dropped_without_a_warning() {
    for api in BOTH {
        let (_guard, buffer) = capture_logs();
        let (_dir, server, client) = unix_client(api).await;
        server.script(
            "pool.query",
            [Action::Delay(
                Duration::from_millis(300),
                Box::new(Action::Reply(json!([]))),
            )],
        );
        // The caller gives up (a timeout, a cancelled pass) before the answer comes.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(50),
            client.call(Call::new(Method::PoolQuery, vec![])),
        )
        .await;
        assert!(abandoned.is_err(), "{api:?}: the call was not cut short");
        // The late answer arrives while the connection keeps serving calls.
        tokio::time::sleep(Duration::from_millis(500)).await;
        client
            .call(Call::bare(Method::SystemVersionShort))
            .await
            .unwrap();
        let text = logs(&buffer);
        assert!(
            text.contains("late answer to a call its caller stopped waiting for"),
            "{api:?}: {text}"
        );
        assert!(
            !text.contains("WARN"),
            "{api:?}: an expected late answer is not a warning: {text}"
        );
    }
}

#[tokio::test]
async fn events_reach_subscribers_and_unsubscribe_on_drop() {
    for api in BOTH {
        let (_dir, server, client) = unix_client(api).await;
        let mut sub = client.subscribe("cloudsync.query").await.unwrap();
        assert_eq!(server.subscribers("cloudsync.query"), 1);
        server.push_event(
            "cloudsync.query",
            "changed",
            json!(4),
            Some(json!({"job": {"state": "RUNNING"}})),
        );
        let event = sub.next().await.unwrap();
        assert_eq!(event.collection, "cloudsync.query");
        assert_eq!(event.kind, EventKind::Changed);
        assert_eq!(event.id, Some(json!(4)));
        assert_eq!(event.fields, Some(json!({"job": {"state": "RUNNING"}})));
        // A second subscriber to the same event shares the server-side subscription.
        let mut second = client.subscribe("cloudsync.query").await.unwrap();
        assert_eq!(server.calls_of("core.subscribe"), 1, "{api:?}");
        server.push_event("cloudsync.query", "removed", json!(4), None);
        assert_eq!(sub.next().await.unwrap().kind, EventKind::Removed);
        assert_eq!(second.next().await.unwrap().kind, EventKind::Removed);
        drop(sub);
        drop(second);
        wait_until(|| server.subscribers("cloudsync.query") == 0).await;
        assert_eq!(server.calls_of("core.unsubscribe"), 1, "{api:?}");
    }
}

#[tokio::test]
async fn subscriptions_end_when_the_connection_drops() {
    for api in BOTH {
        let (_dir, server, client) = unix_client(api).await;
        let mut sub = client.subscribe("alert.list").await.unwrap();
        server.drop_connections();
        let err = sub.next().await.unwrap_err();
        assert!(
            matches!(err, SubscriptionError::Ended { .. }),
            "{api:?}: {err}"
        );
        // Ending is final and repeated.
        assert!(matches!(
            sub.next().await,
            Err(SubscriptionError::Ended { .. })
        ));
        // Subscribing again reconnects.
        let _again = client.subscribe("alert.list").await.unwrap();
        assert_eq!(server.connections(), 2);
    }
}

#[tokio::test]
async fn jobs_are_awaited_through_events() {
    for api in BOTH {
        let settings = ClientSettings {
            job_poll_interval: HOUR,
            ..fast()
        };
        let (_dir, server, client) = unix_client_with(api, settings).await;
        let id = client
            .call(Call::new(Method::CloudsyncSync, vec![json!(1)]))
            .await
            .unwrap()
            .as_u64()
            .unwrap();
        // Starting a run costs no subscription; waiting for it subscribes before its
        // catch-up query (checked below, once the wait has run).
        assert!(
            !server.methods().iter().any(|m| m == "core.subscribe"),
            "{api:?}: {:?}",
            server.methods()
        );

        let finisher = {
            let job = json!({"id": id, "method": "cloudsync.sync", "state": "SUCCESS",
                "progress": {"percent": 100, "description": "done"},
                "logs_excerpt": "Transferred: 1 / 1, 100%",
                "time_started": {"$date": 1_700_000_000_000_i64},
                "time_finished": {"$date": 1_700_000_100_000_i64}});
            let server = server.handle();
            tokio::spawn(async move {
                // After the catch-up query, so that only events can tell the outcome.
                wait_until(|| server.calls_of("core.get_jobs") == 1).await;
                server.set_job(
                    json!({"id": id, "method": "cloudsync.sync", "state": "RUNNING",
                    "progress": {"percent": 50}, "time_started": {"$date": 1_700_000_000_000_i64}}),
                    true,
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                server.set_job(job, true);
            })
        };
        // Polling is set to an hour: only an event can end this wait before `LONG`.
        let job = client.wait_job(id, LONG).await.unwrap();
        finisher.await.unwrap();
        assert_eq!(job.state, JobState::Success, "{api:?}");
        assert_eq!(
            job.logs_excerpt.as_deref(),
            Some("Transferred: 1 / 1, 100%")
        );
        assert_eq!(job.progress.percent, Some(100.0));
        assert!(job.time_finished.is_some());
        assert_eq!(
            server.calls_of("core.get_jobs"),
            1,
            "{api:?}: one catch-up query only"
        );
        let methods = server.methods();
        let sub_at = methods.iter().position(|m| m == "core.subscribe").unwrap();
        let query_at = methods.iter().position(|m| m == "core.get_jobs").unwrap();
        assert!(
            sub_at < query_at,
            "{api:?}: subscribed before the catch-up query: {methods:?}"
        );
    }
}

#[tokio::test]
async fn jobs_are_polled_when_events_are_refused() {
    for api in BOTH {
        let (_dir, server, client) = unix_client(api).await;
        server.refuse_subscriptions();
        let id = client
            .call(Call::new(Method::CloudsyncSync, vec![json!(1)]))
            .await
            .unwrap()
            .as_u64()
            .unwrap();
        let handle = server.handle();
        let finisher = tokio::spawn(async move {
            wait_until(|| handle.calls_of("core.get_jobs") == 1).await;
            // No event: only a later poll can see this.
            handle.set_job(json!({"id": id, "method": "cloudsync.sync", "state": "FAILED",
                "error": "[EFAULT] rclone failed", "time_started": {"$date": 1_700_000_000_000_i64}}), false);
        });
        let job = client.wait_job(id, LONG).await.unwrap();
        finisher.await.unwrap();
        assert_eq!(job.state, JobState::Failed, "{api:?}");
        assert_eq!(job.error.as_deref(), Some("[EFAULT] rclone failed"));
        assert!(server.calls_of("core.get_jobs") >= 2, "{api:?}: polled");
    }
}

#[tokio::test]
async fn a_job_that_finished_before_the_wait_is_returned_at_once() {
    for api in BOTH {
        let settings = ClientSettings {
            job_poll_interval: HOUR,
            ..fast()
        };
        let (_dir, server, client) = unix_client_with(api, settings).await;
        // `cloudsync.sync` may answer with an already queued (here: finished) job's id.
        server.set_job(
            json!({"id": 42, "method": "cloudsync.sync", "state": "SUCCESS", "result": null}),
            false,
        );
        server.script("cloudsync.sync", [Action::Reply(json!(42))]);
        let id = client
            .call(Call::new(Method::CloudsyncSync, vec![json!(1)]))
            .await
            .unwrap();
        assert_eq!(id, json!(42));
        let job = client.wait_job(42, LONG).await.unwrap();
        assert_eq!(job.state, JobState::Success, "{api:?}");

        let err = client.wait_job(7, LONG).await.unwrap_err();
        assert!(matches!(err, CallError::NotFound { .. }), "{api:?}: {err}");
    }
}

#[tokio::test]
async fn waiting_for_a_job_times_out() {
    let (_dir, server, client) = unix_client(Api::JsonRpc).await;
    server.set_job(
        json!({"id": 5, "method": "cloudsync.sync", "state": "RUNNING"}),
        false,
    );
    let err = client
        .wait_job(5, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn a_drop_mid_call_fails_promptly_and_the_next_call_reconnects() {
    for api in BOTH {
        let (_dir, server, client) = unix_client(api).await;
        server.script("cloudsync.sync", [Action::Drop]);
        // Only the dropped connection can end this call before its (long) timeout.
        let err = client
            .call(Call::new(Method::CloudsyncSync, vec![json!(1)]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallError::Disconnected { .. }),
            "{api:?}: {err}"
        );
        assert_eq!(err.fault(), Fault::Transient);
        assert_eq!(
            client.call(Call::bare(Method::CorePing)).await.unwrap(),
            json!("pong")
        );
        assert_eq!(server.connections(), 2, "{api:?}");
        assert_eq!(
            server.calls().last().unwrap().conn,
            2,
            "{api:?}: on the new connection"
        );
        assert_eq!(
            server.calls_of("cloudsync.sync"),
            1,
            "{api:?}: never repeated"
        );
    }
}

#[tokio::test]
async fn pending_calls_all_fail_when_the_connection_drops() {
    for api in BOTH {
        let (_dir, server, client) = unix_client(api).await;
        server.script(
            "pool.query",
            [Action::Silence, Action::Silence, Action::Silence],
        );
        let calls = (0..3).map(|_| client.call(Call::new(Method::PoolQuery, vec![])));
        let dropper = async {
            wait_until(|| server.calls_of("pool.query") == 3).await;
            server.drop_connections();
        };
        let (results, ()) = tokio::join!(futures_util::future::join_all(calls), dropper);
        for result in results {
            assert!(
                matches!(result, Err(CallError::Disconnected { .. })),
                "{api:?}: {result:?}"
            );
        }
        assert_eq!(server.open_connections(), 0);
        assert_eq!(server.calls_of("pool.query"), 3, "{api:?}: none repeated");
    }
}

#[tokio::test]
async fn concurrent_callers_share_one_reconnect() {
    for api in BOTH {
        let (_dir, server, client) = unix_client(api).await;
        server.drop_connections();
        wait_until(|| !client.is_connected()).await;
        let calls = (0..6).map(|_| client.call(Call::bare(Method::CorePing)));
        for result in futures_util::future::join_all(calls).await {
            assert_eq!(result.unwrap(), json!("pong"));
        }
        assert_eq!(
            server.connections(),
            2,
            "{api:?}: one reconnect for six callers"
        );
    }
}

#[tokio::test]
async fn a_reply_for_an_unknown_id_is_dropped() {
    for api in BOTH {
        let (_dir, server, client) = unix_client(api).await;
        let stray = match api {
            Api::Legacy => json!({"msg": "result", "id": "999999", "result": 1}),
            Api::JsonRpc => json!({"jsonrpc": "2.0", "id": "not-ours", "result": 1}),
        };
        server.send_raw(&stray.to_string());
        assert_eq!(
            client.call(Call::bare(Method::CorePing)).await.unwrap(),
            json!("pong")
        );
        assert_eq!(server.connections(), 1, "{api:?}: the connection survived");
    }
}

#[tokio::test]
async fn a_hung_middleware_is_detected_by_keepalive() {
    for api in BOTH {
        let mut settings = fast();
        settings.conn.keepalive_interval = Duration::from_millis(200);
        let (_dir, server, client) = unix_client_with(api, settings).await;
        server.script("pool.query", [Action::Hang]);
        let err = client
            .call(Call::new(Method::PoolQuery, vec![]))
            .await
            .unwrap_err();
        let CallError::Disconnected { detail, .. } = &err else {
            panic!("{api:?}: {err}")
        };
        assert!(detail.contains("keepalive"), "{detail}");
    }
}

#[tokio::test]
async fn an_oversized_reply_closes_the_connection_with_a_clear_error() {
    let settings = ClientSettings {
        max_message_bytes: 16 * 1024,
        ..fast()
    };
    let (_dir, server, client) = unix_client_with(Api::JsonRpc, settings).await;
    server.script("pool.query", [Action::Reply(json!("x".repeat(64 * 1024)))]);
    let err = client
        .call(Call::new(Method::PoolQuery, vec![]))
        .await
        .unwrap_err();
    let CallError::Disconnected { detail, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        detail.contains("exceeds the limit of 16384 bytes"),
        "{detail}"
    );
    assert_eq!(
        client.call(Call::bare(Method::CorePing)).await.unwrap(),
        json!("pong")
    );
}

#[tokio::test]
async fn an_oversized_request_is_refused_before_sending() {
    let (_dir, server, client) = unix_client(Api::JsonRpc).await;
    let big = json!({"description": "y".repeat(70 * 1024)});
    let err = client
        .call(Call::new(Method::CloudsyncCreate, vec![big]))
        .await
        .unwrap_err();
    let CallError::Protocol { detail, .. } = &err else {
        panic!("{err}")
    };
    assert!(detail.contains("not sent"), "{detail}");
    assert_eq!(server.calls_of("cloudsync.create"), 0);
    assert_eq!(server.connections(), 1, "the connection is still fine");
}

#[tokio::test]
async fn a_vanished_middleware_gives_unavailable_after_bounded_backoff_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::unix(Api::JsonRpc, dir.path()).await;
    let settings = ClientSettings {
        reconnect_initial: Duration::from_millis(50),
        reconnect_max: Duration::from_secs(1),
        reconnect_budget: Duration::from_secs(10),
        ..ClientSettings::default()
    };
    let client = Client::connect_with(options(&server.unix_url()), settings)
        .await
        .unwrap();
    let url = server.unix_url();
    drop(server); // removes the socket: connecting fails at once, no I/O to wait for
    wait_until(|| !client.is_connected()).await;
    // Only timers are pending from here on, so the paused clock is exact.
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let err = client.call(Call::bare(Method::CorePing)).await.unwrap_err();
    let waited = start.elapsed();
    let CallError::Unavailable { detail, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        detail.contains(&format!("cannot connect to {url}")),
        "{detail}"
    );
    // 10 s budget; the first six delays alone are at least 25+50+100+200+400+500 ms.
    assert!(
        waited <= Duration::from_secs(10),
        "bounded by the budget: {waited:?}"
    );
    assert!(
        waited >= Duration::from_millis(1275),
        "backed off between attempts: {waited:?}"
    );
    tokio::time::resume();

    let server = Server::unix(Api::JsonRpc, dir.path()).await;
    assert_eq!(
        client.call(Call::bare(Method::CorePing)).await.unwrap(),
        json!("pong")
    );
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn an_unsupported_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::unix(Api::JsonRpc, dir.path()).await;
    server.script("system.version_short", [Action::Reply(json!("23.10.2"))]);
    let err = Client::connect(options(&server.unix_url()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::UnsupportedVersion { .. }),
        "{err}"
    );
    assert!(format!("{:#}", anyhow::Error::from(err)).contains("23.10.2"));
}

#[tokio::test]
async fn a_newer_release_offering_only_the_legacy_route_is_refused() {
    // A 25.10 box whose /api is not reachable on this URL (no /api/versions, only
    // /websocket): driving it with 24.10's shapes would be wrong.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::unix(Api::Legacy, dir.path()).await;
    server.script("system.version_short", [Action::Reply(json!("25.10.6"))]);
    let err = Client::connect(options(&server.unix_url()))
        .await
        .unwrap_err();
    let ConnectError::NoVersionedApi {
        version, status, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((version.as_str(), *status), ("25.10.6", 404));
    assert!(err.to_string().contains("unix socket"), "{err}");
    assert!(
        !server.methods().iter().any(|m| m != "system.version_short"),
        "nothing but the version was asked: {:?}",
        server.methods()
    );
}

// ---- API keys and TCP ----------------------------------------------------------------

async fn tcp_server(api: Api, keys: Vec<(&'static str, &'static str, bool)>) -> Server {
    Server::start(Options {
        api,
        unix: None,
        tcp: true,
        tls: None,
        keys,
    })
    .await
}

#[tokio::test]
async fn an_api_key_is_refused_over_a_non_loopback_plain_url_before_connecting() {
    for url in [
        "ws://192.0.2.10:6000",
        "ws://[2001:db8::1]:6000",
        "ws://10.0.0.5",
    ] {
        let err = Client::connect(with_key(options(url), Some(USER), KEY))
            .await
            .unwrap_err();
        let ConnectError::InsecureTransport { peer, .. } = &err else {
            panic!("{url}: {err}")
        };
        assert!(peer.is_some());
        let text = err.to_string();
        assert!(
            text.contains("only allowed to a loopback address"),
            "{text}"
        );
        assert!(text.contains("revokes an API key"), "{text}");
        assert_eq!(err.fault(), Fault::Operator);
        assert_no_canary("insecure transport error", &format!("{err:?} {text}"));
    }
}

#[tokio::test]
async fn tcp_needs_an_api_key_and_25_04_needs_its_user() {
    let server = tcp_server(Api::JsonRpc, vec![(USER, KEY, false)]).await;
    let err = Client::connect(options(&server.ws_url()))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::ApiKeyRequired { .. }), "{err}");
    let err = Client::connect(with_key(options(&server.ws_url()), None, KEY))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::ApiUserRequired { .. }), "{err}");
    assert_eq!(server.calls_of("auth.login_ex"), 0, "the key was not sent");
}

#[tokio::test]
async fn api_key_login_over_loopback_tcp_without_dns_and_without_leaks() {
    for api in BOTH {
        let (_guard, buffer) = capture_logs();
        let server = tcp_server(api, vec![(USER, KEY, false)]).await;
        // `localhost` is connected as 127.0.0.1 (no resolver involved).
        let url = format!("ws://localhost:{}", server.tcp.unwrap().port());
        let client = Client::connect_with(with_key(options(&url), Some(USER), KEY), fast())
            .await
            .unwrap();
        assert_eq!(client.api().transport, TransportKind::Loopback);
        assert_eq!(client.api().protocol, protocol(api));
        let login = match api {
            Api::Legacy => "auth.login_with_api_key",
            Api::JsonRpc => "auth.login_ex",
        };
        assert_eq!(server.methods()[0], login, "{api:?}: login first");
        // A call carrying secrets, an error, a reconnect with a second login.
        server.script(
            "cloudsync.credentials.create",
            [Action::Fail(Fail::Validation(vec![(
                "cloud_sync_credentials_create.name".into(),
                "already exists".into(),
            )]))],
        );
        let err = client
            .call(Call::new(
                Method::CredentialsCreate,
                vec![json!({"name": "b2", "provider": {"type": "B2", "account": "id", "key": "CANARY-B2-APPKEY-7f3a9c"}})],
            ))
            .await
            .unwrap_err();
        server.drop_connections();
        wait_until(|| !client.is_connected()).await;
        client.call(Call::bare(Method::CorePing)).await.unwrap();
        assert_eq!(
            server.calls_of(login),
            2,
            "{api:?}: logged in again after the reconnect"
        );
        let text = logs(&buffer);
        assert!(
            text.contains("connected to the middleware"),
            "logs were captured: {text}"
        );
        assert_no_canary("client logs", &text);
        assert_no_canary("call error", &format!("{err} {err:?}"));
        assert_no_canary("client debug", &format!("{client:?}"));
    }
}

#[tokio::test]
async fn a_revoked_key_is_reported_and_not_retried() {
    let server = tcp_server(Api::JsonRpc, vec![(USER, KEY, true)]).await;
    let err = Client::connect(with_key(options(&server.ws_url()), Some(USER), KEY))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::ApiKeyRevoked { .. }), "{err}");
    assert!(
        err.to_string().starts_with("API key revoked or expired"),
        "{err}"
    );
    assert_eq!(err.fault(), Fault::Operator);
    assert_eq!(server.calls_of("auth.login_ex"), 1, "not retried");
    assert_no_canary("revoked error", &format!("{err} {err:?}"));

    let wrong = Client::connect(with_key(options(&server.ws_url()), Some(USER), "2-wrong"))
        .await
        .unwrap_err();
    assert!(matches!(wrong, ConnectError::LoginFailed { .. }), "{wrong}");

    let legacy = tcp_server(Api::Legacy, vec![(USER, KEY, false)]).await;
    let err = Client::connect(with_key(options(&legacy.ws_url()), None, "3-wrong"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::LoginFailed { .. }), "{err}");
    assert_eq!(legacy.calls_of("auth.login_with_api_key"), 1, "not retried");
}

#[tokio::test]
async fn a_key_revoked_while_connected_fails_calls_without_a_login_loop() {
    let server = tcp_server(Api::JsonRpc, vec![(USER, KEY, false)]).await;
    let settings = ClientSettings {
        reconnect_max: HOUR,
        ..fast()
    };
    let client = Client::connect_with(
        with_key(options(&server.ws_url()), Some(USER), KEY),
        settings,
    )
    .await
    .unwrap();
    server.script(
        "auth.login_ex",
        [Action::Reply(json!({"response_type": "EXPIRED"}))],
    );
    server.drop_connections();
    wait_until(|| !client.is_connected()).await;
    let err = client.call(Call::bare(Method::CorePing)).await.unwrap_err();
    let CallError::NotAuthorized { reason, .. } = &err else {
        panic!("{err}")
    };
    assert!(reason.starts_with("API key revoked or expired"), "{reason}");
    // The refusal is remembered: the next call fails at once without logging in again.
    let again = client.call(Call::bare(Method::CorePing)).await.unwrap_err();
    assert!(matches!(again, CallError::NotAuthorized { .. }), "{again}");
    assert_eq!(
        server.calls_of("auth.login_ex"),
        2,
        "one initial login, one refused"
    );
}

// ---- TLS -------------------------------------------------------------------------------

struct Pki {
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: Vec<u8>,
    ca_pem: Option<String>,
}

fn self_signed() -> Pki {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    Pki {
        server_cert: certified.cert.der().clone(),
        server_key: certified.signing_key.serialize_der(),
        ca_pem: None,
    }
}

fn ca_issued() -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    Pki {
        server_cert: leaf.der().clone(),
        server_key: leaf_key.serialize_der(),
        ca_pem: Some(ca.pem()),
    }
}

async fn tls_server(pki: &Pki) -> Server {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pki.server_key.clone().into());
    Server::start(Options {
        api: Api::JsonRpc,
        unix: None,
        tcp: false,
        tls: Some((pki.server_cert.clone(), key)),
        keys: vec![(USER, KEY, false)],
    })
    .await
}

fn sha256_hex(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}

#[tokio::test]
async fn wss_with_the_right_pin_connects() {
    let pki = self_signed();
    let server = tls_server(&pki).await;
    let mut opts = with_key(options(&server.wss_url()), Some(USER), KEY);
    opts.tls_pin_sha256 = Some(sha256_hex(&pki.server_cert));
    let client = Client::connect(opts).await.unwrap();
    assert_eq!(client.api().transport, TransportKind::Tls);
    assert_eq!(
        client.call(Call::bare(Method::CorePing)).await.unwrap(),
        json!("pong")
    );
}

#[tokio::test]
async fn wss_with_a_wrong_pin_is_refused_showing_both_fingerprints() {
    let pki = self_signed();
    let server = tls_server(&pki).await;
    let mut opts = with_key(options(&server.wss_url()), Some(USER), KEY);
    let wrong = "00".repeat(32);
    opts.tls_pin_sha256 = Some(wrong.clone());
    let err = Client::connect(opts).await.unwrap_err();
    let ConnectError::PinMismatch {
        expected,
        presented,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    let presented_hex = presented.to_string().replace(':', "").to_lowercase();
    assert_eq!(presented_hex, sha256_hex(&pki.server_cert));
    assert_eq!(expected.to_string().replace(':', ""), wrong);
    let text = err.to_string();
    assert!(
        text.contains(&presented.to_string()) && text.contains(&expected.to_string()),
        "{text}"
    );
    assert_eq!(err.fault(), Fault::Operator);
    assert_eq!(server.calls_of("auth.login_ex"), 0, "the key never left");
}

#[tokio::test]
async fn wss_with_an_extra_ca_connects_and_without_it_is_refused() {
    let pki = ca_issued();
    let server = tls_server(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, pki.ca_pem.as_ref().unwrap()).unwrap();

    let mut opts = with_key(options(&server.wss_url()), Some(USER), KEY);
    opts.tls_ca_file = Some(ca_file);
    let client = Client::connect(opts).await.unwrap();
    assert_eq!(client.api().transport, TransportKind::Tls);

    let err = Client::connect(with_key(options(&server.wss_url()), Some(USER), KEY))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::TlsRejected { .. }), "{err}");
    assert!(format!("{:#}", anyhow::Error::from(err)).contains("UnknownIssuer"));
    assert_eq!(
        server.calls_of("auth.login_ex"),
        1,
        "only the trusted connection logged in"
    );
}

#[tokio::test]
async fn tls_options_are_refused_for_plain_urls() {
    let mut opts = options("unix:///run/x.sock");
    opts.tls_pin_sha256 = Some("00".repeat(32));
    let err = Client::connect(opts).await.unwrap_err();
    assert!(
        matches!(err, ConnectError::TlsOptionsWithoutTls { .. }),
        "{err}"
    );
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

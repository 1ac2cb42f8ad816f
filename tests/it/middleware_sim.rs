//! The agent's middleware client against the simulator, for every supported TrueNAS
//! version (24.10 legacy protocol, 25.04 and 25.10 JSON-RPC) over the unix socket and
//! loopback TCP with an API key: calls, validation errors with their paths, jobs
//! awaited, events, injected drops (reported, never repeated, reconnect on the next
//! call), and API-key revocation over an insecure transport.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use truenas_agent::middleware::{
    ApiFlavor, ApiKey, Call, CallError, Client, ClientSettings, ConnectError, ConnectOptions,
    JobState, Method, Middleware, Protocol, TransportKind,
};
use truenas_agent::sim::scenario::{ApiKeyEntry, B2Account};
use truenas_agent::sim::{DropAt, DropWhen, JobTiming, Scenario, ServeOptions, Server, Simulator};

use crate::support::assert_no_canary;

const KEY: &str = "7-CANARY-API-KEY-0a7d62";
const USER: &str = "truenas_admin";
/// Far beyond any correct outcome: a broken behaviour fails instead of hanging.
const LONG: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Unix,
    Tcp,
}

const TRANSPORTS: [Transport; 2] = [Transport::Unix, Transport::Tcp];

fn scenario(flavor: ApiFlavor) -> Scenario {
    let mut s = Scenario::two_pools(flavor);
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
    let options = ServeOptions {
        socket: Some(dir.path().join("middlewared.sock")),
        listen: Some("127.0.0.1:0".parse().unwrap()),
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
    match transport {
        Transport::Unix => options.url = server.unix_url().unwrap(),
        Transport::Tcp => {
            options.url = server.ws_url().unwrap();
            options.api_key = Some(ApiKey {
                username: Some(USER.to_owned()),
                key: SecretString::from(key.to_owned()),
            });
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
        ApiFlavor::V25_04 | ApiFlavor::V25_10 => {
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
            let expected_protocol = match flavor {
                ApiFlavor::V24_10 => Protocol::Legacy,
                ApiFlavor::V25_04 | ApiFlavor::V25_10 => Protocol::JsonRpc,
            };
            assert_eq!(info.protocol, expected_protocol, "{case}");
            let expected_transport = match transport {
                Transport::Unix => TransportKind::UnixSocket,
                Transport::Tcp => TransportKind::Loopback,
            };
            assert_eq!(info.transport, expected_transport, "{case}");

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
        match flavor {
            ApiFlavor::V24_10 => {
                // 24.10 has no revocation.
                assert!(result.is_ok(), "{flavor}");
            }
            ApiFlavor::V25_04 | ApiFlavor::V25_10 => {
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
        }
        server.shutdown().await;
    }
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

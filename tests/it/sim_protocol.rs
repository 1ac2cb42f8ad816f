//! The simulator over real sockets, driven by raw WebSocket clients (tokio-tungstenite
//! directly, not the agent's client): routes per version, both protocols' handshakes,
//! error shapes, auth over TCP, key revocation, size limits, subscriptions and job
//! events, injected drops/delays/failures, the concurrency cap and the call record.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use truenas_agent::middleware::{ApiFlavor, Call, Method, Middleware};
use truenas_sim::scenario::{ApiKeyEntry, B2Account};
use truenas_sim::{
    CallOutcome, DropAt, DropWhen, JobTiming, Scenario, ServeOptions, Server, Simulator,
};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

const API_KEY: &str = "7-CANARY-API-KEY-0a7d62";
const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Unix,
    Tcp,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Proto {
    JsonRpc,
    Legacy,
}

fn scenario(flavor: ApiFlavor) -> Scenario {
    let mut s = Scenario::two_pools(flavor);
    // These tests use middlewared's TCP listener: on 26.0+ only vendor builds open it.
    s.system.vendored = flavor >= ApiFlavor::V26_0;
    s.api_keys
        .push(ApiKeyEntry::new(7, "agent", "truenas_admin", API_KEY));
    s.b2_accounts.push(B2Account {
        account: "0012ab".into(),
        valid: true,
        buckets: Some(vec!["truenas-loc".into()]),
    });
    s
}

async fn start(flavor: ApiFlavor) -> (Server, tempfile::TempDir) {
    start_with(
        Simulator::new(scenario(flavor)).with_job_timing(JobTiming::Auto {
            duration: Duration::from_millis(20),
        }),
    )
    .await
}

async fn start_with(sim: Simulator) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let opts = ServeOptions {
        socket: Some(dir.path().join("middlewared.sock")),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    (sim.serve(opts).await.unwrap(), dir)
}

/// A raw test client.
struct Client {
    ws: WebSocketStream<Box<dyn Io>>,
    proto: Proto,
    next_id: u64,
    /// Notifications/events received while waiting for replies.
    events: Vec<Value>,
}

async fn open(
    server: &Server,
    transport: Transport,
    path: &str,
) -> Result<WebSocketStream<Box<dyn Io>>, String> {
    let io: Box<dyn Io> = match transport {
        Transport::Unix => Box::new(
            tokio::net::UnixStream::connect(server.socket_path().unwrap())
                .await
                .unwrap(),
        ),
        Transport::Tcp => Box::new(
            tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
                .await
                .unwrap(),
        ),
    };
    let url = format!("ws://localhost{path}");
    tokio_tungstenite::client_async(url, io)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

impl Client {
    async fn connect(server: &Server, transport: Transport, proto: Proto) -> Client {
        let path = match proto {
            Proto::JsonRpc => "/api/current",
            Proto::Legacy => "/websocket",
        };
        let ws = open(server, transport, path).await.unwrap();
        let mut c = Client {
            ws,
            proto,
            next_id: 1,
            events: Vec::new(),
        };
        if proto == Proto::Legacy {
            c.send(json!({"msg": "connect", "version": "1", "support": ["1"]}))
                .await;
            let reply = c.recv().await.unwrap();
            assert_eq!(reply["msg"], "connected", "{reply}");
            assert!(reply["session"].is_string());
        }
        c
    }

    /// Connects the way a client of this flavour would (JSON-RPC on 25.x, legacy on 24.10).
    async fn native(server: &Server, transport: Transport) -> Client {
        let proto = match server.simulator().flavor() {
            ApiFlavor::V24_10 => Proto::Legacy,
            _ => Proto::JsonRpc,
        };
        Client::connect(server, transport, proto).await
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn recv(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("reply in time")?;
            match msg {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends a call and returns its whole reply frame (`None` if the connection closed).
    async fn call(&mut self, method: &str, params: Value) -> Option<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = match self.proto {
            Proto::JsonRpc => {
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            }
            Proto::Legacy => {
                json!({"msg": "method", "id": id.to_string(), "method": method, "params": params})
            }
        };
        self.send(frame).await;
        self.reply_to(id).await
    }

    async fn reply_to(&mut self, id: u64) -> Option<Value> {
        loop {
            let v = self.recv().await?;
            let mine = v["id"] == json!(id) || v["id"] == json!(id.to_string());
            if mine && (v.get("result").is_some() || v.get("error").is_some()) {
                return Some(v);
            }
            self.events.push(v);
        }
    }

    async fn ok(&mut self, method: &str, params: Value) -> Value {
        let r = self.call(method, params).await.expect("connection open");
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    /// Logs in with the scenario's API key (the way the version expects).
    async fn login(&mut self, flavor: ApiFlavor) -> Value {
        match flavor {
            ApiFlavor::V24_10 => self.ok("auth.login_with_api_key", json!([API_KEY])).await,
            _ => {
                self.ok(
                    "auth.login_ex",
                    json!([{"mechanism": "API_KEY_PLAIN", "username": "truenas_admin", "api_key": API_KEY}]),
                )
                .await
            }
        }
    }

    /// Waits for an event matching `pred` (already received ones first).
    async fn event(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.remove(i);
        }
        loop {
            let v = self.recv().await.expect("connection open");
            if pred(&v) {
                return v;
            }
            self.events.push(v);
        }
    }
}

/// The body of an event in either protocol (JSON-RPC wraps it in `params`).
fn body(e: &Value) -> &Value {
    if e["method"] == "collection_update" {
        &e["params"]
    } else {
        e
    }
}

fn credential(flavor: ApiFlavor) -> Value {
    match flavor {
        ApiFlavor::V24_10 => {
            json!({"name": "truenas-loc", "provider": "B2", "attributes": {"account": "0012ab", "key": "CANARY-B2-APPKEY-7f3a9c"}})
        }
        _ => {
            json!({"name": "truenas-loc", "provider": {"type": "B2", "account": "0012ab", "key": "CANARY-B2-APPKEY-7f3a9c"}})
        }
    }
}

fn task(cred_id: &Value) -> Value {
    json!({
        "description": "Pool0 Cloud Backup", "path": "/mnt/pool0", "credentials": cred_id,
        "attributes": {"bucket": "truenas-loc", "folder": "/9babab19-acc0-4587-aa05-ccd8103a1148/pool0", "chunk_size": 96, "fast_list": true},
        "schedule": {"minute": "0", "hour": "0", "dom": "*", "month": "*", "dow": "*"},
        "direction": "PUSH", "transfer_mode": "SYNC", "encryption": true,
        "encryption_password": "CANARY-ENC-PASSWORD-2b8e41", "encryption_salt": "CANARY-ENC-SALT-9d0c55",
        "exclude": ["/Archive/**", "/archive/**"],
        "bwlimit": [{"time": "00:00", "bandwidth": 10_000_000}, {"time": "08:00", "bandwidth": 2_500_000}, {"time": "18:00", "bandwidth": 10_000_000}],
    })
}

#[tokio::test]
async fn api_current_is_404_on_24_10_and_routes_per_version() {
    let (server, _dir) = start(ApiFlavor::V24_10).await;
    for transport in [Transport::Unix, Transport::Tcp] {
        let Err(err) = open(&server, transport, "/api/current").await else {
            panic!("upgrade accepted")
        };
        assert!(err.contains("404"), "{err}");
        assert!(open(&server, transport, "/websocket").await.is_ok());
    }
    server.shutdown().await;
    for flavor in [ApiFlavor::V25_04, ApiFlavor::V25_10] {
        let (server, _dir) = start(flavor).await;
        assert!(open(&server, Transport::Unix, "/api/current").await.is_ok());
        assert!(open(&server, Transport::Unix, "/websocket").await.is_ok());
        let Err(err) = open(&server, Transport::Unix, "/api/v24.10").await else {
            panic!("upgrade accepted")
        };
        assert!(err.contains("404"), "{err}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn calls_on_every_flavour_protocol_and_transport() {
    for flavor in ApiFlavor::ALL {
        let (server, _dir) = start(flavor).await;
        let protos: &[Proto] = if flavor == ApiFlavor::V24_10 {
            &[Proto::Legacy]
        } else {
            &[Proto::JsonRpc, Proto::Legacy]
        };
        for &proto in protos {
            for transport in [Transport::Unix, Transport::Tcp] {
                let mut c = Client::connect(&server, transport, proto).await;
                if transport == Transport::Tcp {
                    c.login(flavor).await;
                }
                let version = c.ok("system.version_short", json!([])).await;
                assert!(
                    version.as_str().unwrap().starts_with(flavor.as_str()),
                    "{version}"
                );
                let pools = c.ok("pool.query", json!([])).await;
                let names: Vec<&str> = pools
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                assert_eq!(names, vec!["pool0", "pool1"], "boot-pool is hidden");
                let info = c.ok("system.info", json!([])).await;
                assert_eq!(info["hostname"], "truenas-sim");
                assert!(info["boottime"]["$date"].is_i64(), "{info}");
            }
        }
        server.shutdown().await;
    }
}

#[tokio::test]
async fn legacy_handshake_rules_and_ping() {
    let (server, _dir) = start(ApiFlavor::V24_10).await;
    let ws = open(&server, Transport::Unix, "/websocket").await.unwrap();
    let mut c = Client {
        ws,
        proto: Proto::Legacy,
        next_id: 1,
        events: Vec::new(),
    };
    c.send(json!({"msg": "method", "id": "1", "method": "core.ping", "params": []}))
        .await;
    assert_eq!(
        c.recv().await.unwrap(),
        json!({"msg": "failed", "version": "1"})
    );
    c.send(json!({"msg": "connect", "version": "2", "support": ["2"]}))
        .await;
    assert_eq!(
        c.recv().await.unwrap(),
        json!({"msg": "failed", "version": "1"})
    );
    c.send(json!({"msg": "connect", "version": "1", "support": ["1"]}))
        .await;
    assert_eq!(c.recv().await.unwrap()["msg"], "connected");
    c.send(json!({"msg": "ping", "id": "p1"})).await;
    assert_eq!(c.recv().await.unwrap(), json!({"msg": "pong", "id": "p1"}));
    assert_eq!(c.ok("core.ping", json!([])).await, "pong");
    server.shutdown().await;
}

#[tokio::test]
async fn error_shapes_of_both_protocols() {
    let (server, _dir) = start(ApiFlavor::V25_04).await;
    let mut rpc = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    let mut legacy = Client::connect(&server, Transport::Unix, Proto::Legacy).await;
    let cred = rpc
        .ok(
            "cloudsync.credentials.create",
            json!([credential(ApiFlavor::V25_04)]),
        )
        .await;
    let mut bad = task(&cred["id"]);
    bad["bwlimit"] = json!([{"time": "08:00", "bandwidth": 1}, {"time": "00:00", "bandwidth": 1}]);

    let r = rpc
        .call("cloudsync.create", json!([bad.clone()]))
        .await
        .unwrap();
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(r["error"]["message"], "Invalid params");
    let data = &r["error"]["data"];
    assert_eq!(data["error"], 22);
    assert_eq!(data["errname"], "EINVAL");
    assert_eq!(data["trace"], Value::Null);
    assert_eq!(
        data["extra"],
        json!([[
            "cloud_sync_create.bwlimit.1.time",
            "Invalid time order: 08:00, 00:00",
            22
        ]])
    );
    assert_eq!(
        data["reason"],
        "[EINVAL] cloud_sync_create.bwlimit.1.time: Invalid time order: 08:00, 00:00\n"
    );
    assert!(
        !r.to_string().contains("CANARY"),
        "errors never echo params"
    );

    let l = legacy.call("cloudsync.create", json!([bad])).await.unwrap();
    assert_eq!(l["msg"], "result");
    assert_eq!(l["error"]["error"], 11);
    assert_eq!(l["error"]["errname"], "EAGAIN");
    assert_eq!(l["error"]["type"], "VALIDATION");
    assert_eq!(
        l["error"]["extra"][0][0],
        "cloud_sync_create.bwlimit.1.time"
    );

    let r = rpc.call("system.reboot", json!([])).await.unwrap();
    assert_eq!(
        r["error"],
        json!({"code": -32601, "message": "Method does not exist"})
    );
    let l = legacy.call("system.reboot", json!([])).await.unwrap();
    assert_eq!(l["error"]["error"], 201);
    assert_eq!(l["error"]["errname"], "ENOMETHOD");

    // A method of another version is unknown here.
    let r = rpc.call("pool.snapshot.query", json!([])).await.unwrap();
    assert_eq!(r["error"]["code"], -32601);

    let r = rpc.call("cloudsync.update", json!([99, {}])).await.unwrap();
    assert_eq!(r["error"]["code"], -32602);
    assert_eq!(
        r["error"]["data"]["extra"],
        json!([[null, "CloudSync 99 does not exist", 2]])
    );
    let l = legacy
        .call("cloudsync.update", json!([99, {}]))
        .await
        .unwrap();
    assert_eq!(l["error"]["error"], 2);
    assert_eq!(l["error"]["errname"], "ENOENT");

    let r = rpc.call("pool.snapshottask.run", json!([1])).await.unwrap();
    assert_eq!(r["error"]["data"]["extra"][0][2], 2);
    let r = rpc
        .call("cloudsync.query", json!([[["id", "=", 1]], {"get": true}]))
        .await
        .unwrap();
    assert_eq!(r["error"]["code"], -32001);
    assert_eq!(r["error"]["data"]["reason"], "MatchNotFound()");

    // JSON-RPC envelope errors.
    rpc.send(json!({"jsonrpc": "2.0", "id": 900, "method": "core.ping", "params": {}}))
        .await;
    assert_eq!(rpc.reply_to(900).await.unwrap()["error"]["code"], -32600);
    rpc.ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(rpc.recv().await.unwrap()["error"]["code"], -32700);
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_peers_must_log_in() {
    for flavor in ApiFlavor::ALL {
        let (server, _dir) = start(flavor).await;
        let mut c = Client::native(&server, Transport::Tcp).await;
        let r = c.call("pool.query", json!([])).await.unwrap();
        match c.proto {
            Proto::JsonRpc => {
                assert_eq!(r["error"]["code"], -32001, "{r}");
                assert_eq!(r["error"]["data"]["error"], 207);
                assert_eq!(r["error"]["data"]["errname"], "ENOTAUTHENTICATED");
            }
            Proto::Legacy => {
                assert_eq!(r["error"]["error"], 207, "{r}");
                assert_eq!(r["error"]["reason"], "Not authenticated");
            }
        }
        if flavor >= ApiFlavor::V27_0 {
            // `removed_in='v27'`: private on the v27 API (`MW/plugins/auth.py`, master).
            let r = c
                .call("auth.login_with_api_key", json!(["7-wrong"]))
                .await
                .unwrap();
            assert_eq!(r["error"]["code"], -32601, "{r}");
        } else {
            assert_eq!(
                c.ok("auth.login_with_api_key", json!(["7-wrong"])).await,
                false
            );
        }
        if flavor == ApiFlavor::V24_10 {
            assert_eq!(c.login(flavor).await, true);
        } else {
            let bad_user = c
                .ok(
                    "auth.login_ex",
                    json!([{"mechanism": "API_KEY_PLAIN", "username": "root", "api_key": API_KEY}]),
                )
                .await;
            assert_eq!(bad_user["response_type"], "AUTH_ERR");
            let ok = c.login(flavor).await;
            assert_eq!(ok["response_type"], "SUCCESS");
            assert_eq!(ok["user_info"]["pw_name"], "truenas_admin");
        }
        assert_eq!(
            c.ok("pool.query", json!([]))
                .await
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // 24.10 has no `auth.login_ex`.
        if flavor == ApiFlavor::V24_10 {
            let r = c.call("auth.login_ex", json!([{}])).await.unwrap();
            assert_eq!(r["error"]["error"], 201);
        }
        server.shutdown().await;
    }
}

#[tokio::test]
async fn api_key_used_over_insecure_tcp_is_revoked() {
    let mut s = scenario(ApiFlavor::V25_04);
    s.faults.insecure_tcp = true;
    let (server, _dir) = start_with(Simulator::new(s)).await;
    let mut c = Client::connect(&server, Transport::Tcp, Proto::JsonRpc).await;
    let r = c.ok("auth.login_ex", json!([{"mechanism": "API_KEY_PLAIN", "username": "truenas_admin", "api_key": API_KEY}])).await;
    assert_eq!(r, json!({"response_type": "EXPIRED"}));
    assert!(server.simulator().state().api_keys[0].revoked);
    // Unusable afterwards, even over a secure transport.
    server.simulator().update_faults(|f| f.insecure_tcp = false);
    let mut again = Client::connect(&server, Transport::Tcp, Proto::JsonRpc).await;
    assert_eq!(
        again.ok("auth.login_with_api_key", json!([API_KEY])).await,
        false
    );
    let mut unix = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    let alerts = unix.ok("alert.list", json!([])).await;
    assert_eq!(alerts[0]["klass"], "ApiKeyRevoked");
    assert!(!alerts.to_string().contains("CANARY"));
    server.shutdown().await;

    // 24.10 has no revocation.
    let mut s = scenario(ApiFlavor::V24_10);
    s.faults.insecure_tcp = true;
    let (server, _dir) = start_with(Simulator::new(s)).await;
    let mut c = Client::connect(&server, Transport::Tcp, Proto::Legacy).await;
    assert_eq!(
        c.ok("auth.login_with_api_key", json!([API_KEY])).await,
        true
    );
    server.shutdown().await;
}

async fn close_code(c: &mut Client) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, c.ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => return Some(frame.code.into()),
            Some(Ok(Message::Close(None)) | Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn message_size_limits() {
    let (server, _dir) = start(ApiFlavor::V25_10).await;
    let big = "x".repeat(9000);
    let mut c = Client::connect(&server, Transport::Tcp, Proto::JsonRpc).await;
    c.send(json!({"jsonrpc": "2.0", "id": 1, "method": "core.ping", "params": [big]}))
        .await;
    assert_eq!(close_code(&mut c).await, Some(1007));

    let mut c = Client::connect(&server, Transport::Tcp, Proto::JsonRpc).await;
    c.login(ApiFlavor::V25_10).await;
    // 9 KB is fine once logged in (and fails validation, not the transport).
    let r = c.call("core.ping", json!([big])).await.unwrap();
    assert_eq!(r["error"]["code"], -32602);
    let huge = "x".repeat(70_000);
    c.send(json!({"jsonrpc": "2.0", "id": 2, "method": "core.ping", "params": [huge]}))
        .await;
    assert_eq!(close_code(&mut c).await, Some(1009));
    server.shutdown().await;
}

#[tokio::test]
async fn job_events_and_task_state_over_both_protocols() {
    for flavor in ApiFlavor::ALL {
        let (server, _dir) = start(flavor).await;
        let mut c = Client::native(&server, Transport::Unix).await;
        match c.proto {
            Proto::JsonRpc => {
                let sub = c.ok("core.subscribe", json!(["core.get_jobs"])).await;
                assert!(sub.is_string());
                c.ok("core.subscribe", json!(["alert.list"])).await;
            }
            Proto::Legacy => {
                c.send(json!({"msg": "sub", "id": "jobs", "name": "core.get_jobs"}))
                    .await;
                assert_eq!(
                    c.recv().await.unwrap(),
                    json!({"msg": "ready", "subs": ["jobs"]})
                );
                c.send(json!({"msg": "sub", "id": "alerts", "name": "alert.list"}))
                    .await;
                assert_eq!(c.recv().await.unwrap()["msg"], "ready");
            }
        }
        let cred = c
            .ok("cloudsync.credentials.create", json!([credential(flavor)]))
            .await;
        let t = c.ok("cloudsync.create", json!([task(&cred["id"])])).await;
        let job = c.ok("cloudsync.sync", json!([t["id"]])).await;
        let id = job.as_u64().expect("a job id");
        let added = c
            .event(|e| body(e)["msg"] == "added" && body(e)["id"] == json!(id))
            .await;
        assert_eq!(body(&added)["collection"], "core.get_jobs");
        assert_eq!(body(&added)["fields"]["method"], "cloudsync.sync");
        assert_eq!(body(&added)["fields"]["state"], "WAITING");
        let running = c.event(|e| body(e)["fields"]["state"] == "RUNNING").await;
        assert_eq!(body(&running)["fields"]["id"], json!(id));
        let done = c.event(|e| body(e)["fields"]["state"] == "SUCCESS").await;
        assert_eq!(body(&done)["fields"]["progress"]["percent"], 100);
        assert!(body(&done)["fields"]["time_finished"]["$date"].is_i64());
        let q = c
            .ok(
                "cloudsync.query",
                json!([[["id", "=", t["id"]]], {"get": true}]),
            )
            .await;
        assert_eq!(q["job"]["state"], "SUCCESS");
        assert_eq!(q["job"]["id"], json!(id));

        // A failing run: FAILED event and a CloudSyncTaskFailed alert event.
        server.simulator().fail_next_sync(
            "ERROR : a/b.bin: Failed to delete: file is retention-locked (403 access_denied)",
        );
        let job = c
            .ok("cloudsync.sync", json!([t["id"]]))
            .await
            .as_u64()
            .unwrap();
        let failed = c
            .event(|e| body(e)["fields"]["state"] == "FAILED" && body(e)["id"] == json!(job))
            .await;
        assert!(
            body(&failed)["fields"]["error"]
                .as_str()
                .unwrap()
                .contains("retention-locked")
        );
        let alert = c
            .event(|e| body(e)["collection"] == "alert.list" && body(e)["msg"] == "added")
            .await;
        assert_eq!(body(&alert)["fields"]["klass"], "CloudSyncTaskFailed");
        assert_eq!(body(&alert)["fields"]["args"]["name"], "Pool0 Cloud Backup");
        server.shutdown().await;
    }
}

/// The events a technician's edits send, per version, as the middleware sends them:
/// CRUD `ADDED`/`CHANGED` with the stored entry as `fields` from 25.10 on and with the id
/// only before, `REMOVED` with the id; `pool.dataset.query` with the dataset on every
/// version; `service.query` CHANGED (fields, no id) when a service starts or stops and
/// nothing for `service.update`. Edits through `admin_call` send them; `update_state`
/// changes the box without any event.
#[tokio::test]
async fn crud_events_carry_the_entry_from_25_10_and_the_id_before() {
    for flavor in ApiFlavor::ALL {
        let (server, _dir) = start(flavor).await;
        let sim = server.simulator().clone();
        let mut c = Client::native(&server, Transport::Unix).await;
        for name in [
            "cloudsync.query",
            "pool.snapshottask.query",
            "service.query",
            "pool.dataset.query",
        ] {
            match c.proto {
                Proto::JsonRpc => {
                    c.ok("core.subscribe", json!([name])).await;
                }
                Proto::Legacy => {
                    c.send(json!({"msg": "sub", "id": name, "name": name}))
                        .await;
                    assert_eq!(c.recv().await.unwrap()["msg"], "ready");
                }
            }
        }
        let full = flavor >= ApiFlavor::V25_10;
        let cred = c
            .ok("cloudsync.credentials.create", json!([credential(flavor)]))
            .await;
        let t = c.ok("cloudsync.create", json!([task(&cred["id"])])).await;
        let added = c
            .event(|e| body(e)["collection"] == "cloudsync.query" && body(e)["msg"] == "added")
            .await;
        assert_eq!(body(&added)["id"], t["id"], "{flavor}");
        if full {
            assert_eq!(
                body(&added)["fields"],
                t,
                "{flavor}: fields = the stored entry"
            );
        } else {
            assert!(body(&added).get("fields").is_none(), "{flavor}: {added}");
        }
        // A technician disables the task in the UI.
        sim.admin_call(
            "cloudsync.update",
            &[t["id"].clone(), json!({"enabled": false})],
        )
        .unwrap();
        let changed = c
            .event(|e| body(e)["collection"] == "cloudsync.query" && body(e)["msg"] == "changed")
            .await;
        assert_eq!(body(&changed)["id"], t["id"], "{flavor}");
        if full {
            assert_eq!(body(&changed)["fields"]["enabled"], false, "{flavor}");
        } else {
            assert!(
                body(&changed).get("fields").is_none(),
                "{flavor}: {changed}"
            );
        }
        sim.admin_call("cloudsync.delete", &[t["id"].clone()])
            .unwrap();
        let removed = c
            .event(|e| body(e)["collection"] == "cloudsync.query" && body(e)["msg"] == "removed")
            .await;
        assert_eq!(body(&removed)["id"], t["id"]);
        assert!(
            body(&removed).get("fields").is_none(),
            "{flavor}: {removed}"
        );
        // A user property set through the API: the dataset as fields, every version.
        sim.admin_call(
            "pool.dataset.update",
            &[
                json!("pool0"),
                json!({"user_properties_update": [{"key": "com.example:x", "value": "1"}]}),
            ],
        )
        .unwrap();
        let ds = c
            .event(|e| body(e)["collection"] == "pool.dataset.query")
            .await;
        assert_eq!(body(&ds)["id"], "pool0", "{flavor}");
        assert_eq!(body(&ds)["fields"]["id"], "pool0", "{flavor}: {ds}");
        // Start at boot: no event; a start: the row, without an id key.
        let start = if flavor >= ApiFlavor::V25_10 {
            ("service.control", json!(["START", "snmp", {}]))
        } else {
            ("service.start", json!(["snmp", {}]))
        };
        c.ok("service.update", json!(["snmp", {"enable": true}]))
            .await;
        c.ok(start.0, start.1).await;
        let svc = c.event(|e| body(e)["collection"] == "service.query").await;
        assert_eq!(body(&svc)["fields"]["service"], "snmp", "{flavor}");
        assert_eq!(body(&svc)["fields"]["state"], "RUNNING", "{flavor}");
        assert!(body(&svc).get("id").is_none(), "{flavor}: {svc}");
        // Behind the middleware's back: no event at all.
        sim.update_state(|s| s.snapshot_tasks.clear());
        c.ok("core.ping", json!([])).await;
        let stray: Vec<&Value> = c
            .events
            .iter()
            .filter(|e| {
                let b = body(e);
                b["collection"] == "service.query"
                    && b["msg"] == "changed"
                    && b["fields"]["state"] != "RUNNING"
                    || b["collection"] == "pool.snapshottask.query"
            })
            .collect();
        assert!(stray.is_empty(), "{flavor}: {stray:?}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn snapshot_task_state_events() {
    for flavor in [ApiFlavor::V25_04, ApiFlavor::V25_10] {
        let (server, _dir) = start(flavor).await;
        let mut c = Client::native(&server, Transport::Unix).await;
        c.ok("core.subscribe", json!(["pool.snapshottask.query"]))
            .await;
        let t = c
            .ok("pool.snapshottask.create", json!([{"dataset": "pool0", "recursive": true, "lifetime_value": 2, "lifetime_unit": "WEEK",
                "naming_schema": "auto-%Y-%m-%d_%H-%M", "schedule": {"minute": "0", "hour": "*", "dom": "*", "month": "*", "dow": "*", "begin": "00:00", "end": "23:59"},
                "allow_empty": false}]))
            .await;
        assert_eq!(t["state"], json!({"state": "PENDING"}));
        assert!(
            c.ok("pool.snapshottask.run", json!([t["id"]]))
                .await
                .is_null()
        );
        let finished = c
            .event(|e| body(e)["fields"]["state"]["state"] == "FINISHED")
            .await;
        assert_eq!(body(&finished)["id"], t["id"]);
        let last = &body(&finished)["fields"]["state"]["last_snapshot"];
        if flavor == ApiFlavor::V25_10 {
            assert!(last.as_str().unwrap().starts_with("pool0@auto-"), "{last}");
        } else {
            assert!(last.is_null());
        }
        let method = if flavor == ApiFlavor::V25_10 {
            "pool.snapshot.query"
        } else {
            "zfs.snapshot.query"
        };
        let count = c
            .ok(
                method,
                json!([[["pool", "=", "pool0"], ["name", "rin", "@auto-"]], {"count": true}]),
            )
            .await;
        assert_eq!(count, 1);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn injected_drops_close_the_connection_before_or_after_executing() {
    let (server, _dir) = start(ApiFlavor::V25_04).await;
    let sim = server.simulator().clone();
    sim.update_faults(|f| {
        f.drop_at.push(DropAt {
            method: "cloudsync.credentials.create".into(),
            when: DropWhen::Before,
            times: Some(1),
        });
        f.drop_at.push(DropAt {
            method: "snmp.update".into(),
            when: DropWhen::After,
            times: Some(1),
        });
    });
    let mut c = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    assert_eq!(
        c.call(
            "cloudsync.credentials.create",
            json!([credential(ApiFlavor::V25_04)])
        )
        .await,
        None
    );
    assert!(sim.state().credentials.is_empty(), "not executed");

    let mut c = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    assert_eq!(
        c.call("snmp.update", json!([{"location": "rack 4"}])).await,
        None
    );
    assert_eq!(
        sim.state().snmp.location,
        "rack 4",
        "executed before the drop"
    );

    // One-shot: the next connection works.
    let mut c = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    assert_eq!(c.ok("snmp.config", json!([])).await["location"], "rack 4");
    let outcomes: Vec<(String, CallOutcome)> = sim
        .calls()
        .into_iter()
        .map(|r| (r.method, r.outcome))
        .collect();
    assert_eq!(
        outcomes[0],
        (
            "cloudsync.credentials.create".into(),
            CallOutcome::Dropped { executed: false }
        )
    );
    assert_eq!(
        outcomes[1],
        (
            "snmp.update".into(),
            CallOutcome::Dropped { executed: true }
        )
    );
    assert_eq!(outcomes[2], ("snmp.config".into(), CallOutcome::Ok));

    // drop_after_calls: two more answered, the third dropped.
    sim.update_faults(|f| f.drop_after_calls = Some(2));
    let mut c = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    c.ok("core.ping", json!([])).await;
    c.ok("core.ping", json!([])).await;
    assert_eq!(c.call("core.ping", json!([])).await, None);

    // Dropping every connection (a middleware restart) from the handle.
    let mut c = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    c.ok("core.ping", json!([])).await;
    server.drop_connections();
    assert_eq!(c.call("core.ping", json!([])).await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn injected_failures_and_holds() {
    let (server, _dir) = start(ApiFlavor::V25_10).await;
    let sim = server.simulator().clone();
    sim.update_faults(|f| {
        f.failures.push(truenas_sim::Failure {
            method: "service.control".into(),
            errno: 202,
            reason: "snmpd failed to start".into(),
            path: None,
            times: Some(1),
        });
    });
    let mut c = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    let r = c
        .call("service.control", json!(["START", "snmp", {}]))
        .await
        .unwrap();
    assert_eq!(r["error"]["data"]["error"], 202);
    assert_eq!(r["error"]["data"]["errname"], "ESERVICESTARTFAILURE");
    assert_eq!(
        sim.state().service("snmp").unwrap().state,
        "STOPPED",
        "not executed"
    );
    // A held call is answered after a later one; released, it completes.
    sim.update_faults(|f| f.holds.push("system.info".into()));
    c.send(json!({"jsonrpc": "2.0", "id": 50, "method": "system.info", "params": []}))
        .await;
    c.send(json!({"jsonrpc": "2.0", "id": 51, "method": "core.ping", "params": []}))
        .await;
    assert_eq!(c.recv().await.unwrap()["id"], 51);
    sim.release_holds();
    let held = c.recv().await.unwrap();
    assert_eq!(held["id"], 50);
    assert_eq!(held["result"]["hostname"], "truenas-sim");
    server.shutdown().await;
}

#[tokio::test]
async fn concurrency_cap_refuses_the_21st_call() {
    let (server, _dir) = start(ApiFlavor::V25_04).await;
    let sim = server.simulator().clone();
    sim.update_faults(|f| f.holds.push("core.ping".into()));
    let mut c = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    for id in 1..=21 {
        c.send(json!({"jsonrpc": "2.0", "id": id, "method": "core.ping", "params": []}))
            .await;
    }
    // The 20 held calls are in flight; the 21st is refused at once.
    let refused = c.recv().await.unwrap();
    assert_eq!(refused["id"], 21);
    assert_eq!(refused["error"]["code"], -32000);
    sim.release_holds();
    let mut answered = Vec::new();
    for _ in 1..=20 {
        let r = c.recv().await.unwrap();
        assert_eq!(r["result"], "pong", "{r}");
        answered.push(r["id"].as_i64().unwrap());
    }
    answered.sort_unstable();
    assert_eq!(answered, (1..=20).collect::<Vec<_>>());
    server.shutdown().await;
}

#[tokio::test]
async fn legacy_jobs_false_waits_for_the_job_on_25_10() {
    let (server, _dir) = start(ApiFlavor::V25_10).await;
    let mut c = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    let opts = c
        .ok("core.set_options", json!([{"legacy_jobs": false}]))
        .await;
    assert_eq!(opts["legacy_jobs"], false);
    let r = c
        .ok(
            "service.control",
            json!(["START", "snmp", {"ha_propagate": true, "silent": true, "timeout": 120}]),
        )
        .await;
    assert_eq!(r, true);
    assert_eq!(
        server.simulator().state().service("snmp").unwrap().state,
        "RUNNING"
    );
    let jobs = c
        .ok(
            "core.get_jobs",
            json!([[["method", "=", "service.control"]]]),
        )
        .await;
    assert_eq!(jobs[0]["message_ids"], json!([2]));
    server.shutdown().await;
}

#[tokio::test]
async fn the_call_record_tells_reads_from_writes() {
    let (server, _dir) = start(ApiFlavor::V25_04).await;
    let mut c = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    c.ok("cloudsync.query", json!([])).await;
    c.ok(
        "pool.dataset.query",
        json!([[["id", "=", "pool0"]], {"extra": {"retrieve_children": false}}]),
    )
    .await;
    let sim = server.simulator();
    assert!(sim.write_calls().is_empty(), "zero writing calls");
    c.ok("pool.dataset.update", json!(["pool0", {"user_properties_update": [{"key": "com.dtctoday:device-guid", "value": "9babab19-acc0-4587-aa05-ccd8103a1148"}]}])).await;
    let writes = sim.write_calls();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].method, "pool.dataset.update");
    assert_eq!(writes[0].params[0], "pool0");
    let calls = sim.calls();
    assert!(calls.iter().all(|r| r.conn == calls[0].conn));
    assert_eq!(
        sim.state().dataset("pool0").unwrap().user_properties["com.dtctoday:device-guid"],
        "9babab19-acc0-4587-aa05-ccd8103a1148"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_sim_command_prints_its_addresses_and_saves_on_sigterm() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let scenario_path = dir.path().join("in.json");
    scenario(ApiFlavor::V25_04).save(&scenario_path).unwrap();
    let saved = dir.path().join("out.json");
    let socket = dir.path().join("mw.sock");
    let mut child = std::process::Command::new(crate::support::bin(crate::support::SIM))
        .args([
            "--version",
            "25.10",
            "--listen",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--job-duration",
            "50ms",
        ])
        .arg("--socket")
        .arg(&socket)
        .arg("--scenario")
        .arg(&scenario_path)
        .arg("--save")
        .arg(&saved)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(
        ready["flavor"], "25.10",
        "--version overrides the scenario's flavour"
    );
    assert_eq!(ready["socket"], json!(socket));
    assert!(
        ready["ws_url"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:")
    );
    assert_eq!(ready["api_versions"].as_array().unwrap().len(), 9);
    // The HTTPS listener: the agent's client connects with the printed pin.
    let wss = ready["wss_url"].as_str().unwrap();
    assert!(wss.starts_with("wss://127.0.0.1:"), "{ready}");
    let pin = ready["tls_sha256"].as_str().unwrap();
    assert_eq!(pin.len(), 32 * 3 - 1, "{ready}");
    let agent =
        truenas_agent::middleware::Client::connect(truenas_agent::middleware::ConnectOptions {
            url: wss.to_owned(),
            api_key: Some(truenas_agent::middleware::ApiKey {
                username: Some("truenas_admin".to_owned()),
                key: secrecy::SecretString::from(API_KEY.to_owned()),
            }),
            tls_pin_sha256: Some(pin.to_owned()),
            ..truenas_agent::middleware::ConnectOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(agent.api().api_version.as_deref(), Some("v25.10.5"));

    let io = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async("ws://localhost/api/current", Box::new(io) as Box<dyn Io>)
            .await
            .unwrap();
    let mut c = Client {
        ws,
        proto: Proto::JsonRpc,
        next_id: 1,
        events: Vec::new(),
    };
    assert_eq!(c.ok("system.version_short", json!([])).await, "25.10.6");
    let cred = c
        .ok(
            "cloudsync.credentials.create",
            json!([credential(ApiFlavor::V25_10)]),
        )
        .await;
    c.ok("cloudsync.create", json!([task(&cred["id"])])).await;

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket file is removed");
    let text = std::fs::read_to_string(&saved).unwrap();
    crate::support::assert_no_canary("saved scenario", &text);
    let back = Scenario::load(&saved).unwrap();
    assert_eq!(back.cloud_sync_tasks.len(), 1);
    assert_eq!(back.flavor, ApiFlavor::V25_10);
}

#[tokio::test]
async fn scenario_files_load_and_serve() {
    let dir = crate::support::repo_root().join("tests/data/sim");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let flavor = s.flavor;
        let mw = Simulator::new(s).in_process();
        for m in [
            Method::PoolQuery,
            Method::DatasetQuery,
            Method::CloudsyncQuery,
            Method::SnapshotTaskQuery,
            Method::SnmpConfig,
            Method::AlertList,
        ] {
            let r = mw.call(Call::bare(m)).await;
            assert!(r.is_ok(), "{}: {m}: {r:?}", path.display());
        }
        let tasks = mw.call(Call::bare(Method::CloudsyncQuery)).await.unwrap();
        for t in tasks.as_array().unwrap() {
            assert!(t["credentials"].is_object(), "{}: {t}", path.display());
        }
        assert!(mw.api().version.starts_with(flavor.as_str()));
        seen += 1;
    }
    assert!(seen >= 3);
}

#[tokio::test]
async fn degraded_scenario_runs_fail_the_way_the_box_says() {
    let path = crate::support::repo_root().join("tests/data/sim/degraded_25_10.json");
    let sim = Simulator::new(Scenario::load(&path).unwrap()).with_job_timing(JobTiming::Manual);
    let job = sim.run_cloud_sync(1).unwrap();
    assert!(sim.start_job(job));
    assert_eq!(sim.job(job).unwrap()["state"], "RUNNING");
    sim.finish_job(job);
    let done = sim.job(job).unwrap();
    assert_eq!(done["state"], "FAILED");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("401 bad_auth_token"),
        "{done}"
    );
    // An admin fixes the key in the UI: no call is recorded, the next run succeeds.
    sim.update_state(|s| s.b2_accounts[0].valid = true);
    sim.admin_call("cloudsync.update", &[json!(1), json!({"enabled": true})])
        .unwrap();
    assert!(sim.calls().is_empty());
    let job = sim.run_cloud_sync(1).unwrap();
    assert!(sim.run_job(job));
    assert_eq!(sim.job(job).unwrap()["state"], "SUCCESS");
    let alerts = sim.admin_call("alert.list", &[]).unwrap();
    assert_eq!(
        alerts,
        json!([]),
        "a successful run clears CloudSyncTaskFailed"
    );
    // The locked dataset's snapshot task fails.
    sim.run_snapshot_task(1).unwrap();
    let task = sim
        .admin_call(
            "pool.snapshottask.query",
            &[json!([["id", "=", 1]]), json!({"get": true})],
        )
        .unwrap();
    assert_eq!(task["state"]["state"], "ERROR");
}

#[tokio::test]
async fn the_legacy_endpoint_of_25_x_takes_24_10_credential_shapes() {
    let (server, _dir) = start(ApiFlavor::V25_04).await;
    let mut legacy = Client::connect(&server, Transport::Unix, Proto::Legacy).await;
    let made = legacy
        .ok(
            "cloudsync.credentials.create",
            json!([credential(ApiFlavor::V24_10)]),
        )
        .await;
    assert_eq!(made["provider"], "B2");
    assert_eq!(made["attributes"]["account"], "0012ab");
    let r = legacy
        .call(
            "cloudsync.credentials.create",
            json!([credential(ApiFlavor::V25_04)]),
        )
        .await
        .unwrap();
    assert_eq!(r["error"]["type"], "VALIDATION", "{r}");
    let r = legacy
        .call(
            "cloudsync.credentials.create",
            json!([{"name": "x", "provider": "B2", "attributes": {"account": "a"}}]),
        )
        .await
        .unwrap();
    assert_eq!(
        r["error"]["extra"][0][0], "cloud_sync_credentials_create.provider.B2.key",
        "{r}"
    );
    // JSON-RPC on the same box shows the current shape.
    let mut rpc = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    let listed = rpc.ok("cloudsync.credentials.query", json!([])).await;
    assert_eq!(listed[0]["provider"]["type"], "B2");
    server.shutdown().await;
}

#[tokio::test]
async fn login_rate_limit_answers_ebusy() {
    let mut s = scenario(ApiFlavor::V25_10);
    s.faults.login_rate_limit = Some(2);
    let (server, _dir) = start_with(Simulator::new(s)).await;
    let mut c = Client::connect(&server, Transport::Tcp, Proto::JsonRpc).await;
    assert_eq!(
        c.ok("auth.login_with_api_key", json!(["7-nope"])).await,
        false
    );
    assert_eq!(
        c.ok("auth.login_with_api_key", json!(["7-nope"])).await,
        false
    );
    let r = c
        .call("auth.login_with_api_key", json!([API_KEY]))
        .await
        .unwrap();
    assert_eq!(r["error"]["data"]["error"], 16, "{r}");
    assert_eq!(r["error"]["data"]["errname"], "EBUSY");
    // Unix sockets are never rate limited.
    let mut unix = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    assert_eq!(
        unix.ok("auth.login_with_api_key", json!([API_KEY])).await,
        true
    );
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_calls_still_in_flight() {
    let (server, dir) = start(ApiFlavor::V25_04).await;
    server
        .simulator()
        .update_faults(|f| f.holds.push("core.ping".into()));
    let mut c = Client::connect(&server, Transport::Unix, Proto::JsonRpc).await;
    c.send(json!({"jsonrpc": "2.0", "id": 1, "method": "core.ping", "params": []}))
        .await;
    // A later call is answered: the held one has been received by then.
    c.ok("system.version_short", json!([])).await;
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("shutdown does not wait for held calls");
    assert!(!dir.path().join("middlewared.sock").exists());
}

//! A scripted TrueNAS middleware for the client tests: real sockets (unix, loopback TCP,
//! TLS), both protocols (24.10: legacy `/websocket` only, `/api/versions` and
//! `/api/current` answer 404; 25.04: `GET /api/versions` and JSON-RPC at `/api/current`
//! and `/api/v25.04.0…2`), the real error shapes, API-key login, events,
//! jobs, and per-method scripted answers (reply, error, drop the connection, delay,
//! silence). It records every frame and call it receives.

#![allow(
    clippy::needless_pass_by_value,
    clippy::format_collect,
    clippy::result_large_err,
    reason = "test scaffolding: clarity over micro-efficiency; the error type is tungstenite's"
)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Which middleware generation to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// 24.10: only the legacy protocol.
    Legacy,
    /// 25.04+: JSON-RPC 2.0 at /api/current.
    JsonRpc,
}

impl Api {
    pub fn version(self) -> &'static str {
        match self {
            Api::Legacy => "24.10.2.4",
            Api::JsonRpc => "25.04.2.6",
        }
    }
}

/// An error to answer with, encoded per protocol as the real middleware does.
#[derive(Debug, Clone)]
pub enum Fail {
    /// Validation errors: `[path, message]` pairs (errno 22).
    Validation(Vec<(String, String)>),
    /// A `CallError`: errno, errname, reason.
    Call(i64, &'static str, String),
    /// Unknown method.
    NoMethod,
}

/// A scripted answer to one call.
#[derive(Debug, Clone)]
pub enum Action {
    Reply(Value),
    Fail(Fail),
    /// Close the connection without answering.
    Drop,
    /// Answer after a delay (other calls are served meanwhile).
    Delay(Duration, Box<Action>),
    /// Never answer.
    Silence,
    /// Never answer, and stop reading the connection (a hung process: pings go
    /// unanswered too).
    Hang,
}

/// What the connection does after a message.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Close,
    Hang,
}

/// A call the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub conn: u64,
    pub method: String,
    pub params: Value,
}

enum Out {
    Text(String),
    Close,
}

struct ConnHandle {
    tx: mpsc::UnboundedSender<Out>,
    close: CancellationToken,
    protocol: Api,
    /// collection → subscription id
    subs: HashMap<String, String>,
}

/// Order of requests received and replies sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Log {
    Received(String),
    Replied(String),
}

#[derive(Default)]
struct State {
    calls: Vec<Recorded>,
    log: Vec<Log>,
    frames: Vec<String>,
    connections: u64,
    scripts: HashMap<String, VecDeque<Action>>,
    jobs: BTreeMap<u64, Value>,
    conns: HashMap<u64, ConnHandle>,
    refuse_subscriptions: bool,
    /// The path of every HTTP request, in order.
    routes: Vec<String>,
}

pub struct Options {
    pub api: Api,
    pub unix: Option<PathBuf>,
    pub tcp: bool,
    pub tls: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    /// `(username, key, revoked)`
    pub keys: Vec<(&'static str, &'static str, bool)>,
}

struct Inner {
    api: Api,
    keys: Vec<(&'static str, &'static str, bool)>,
    state: Mutex<State>,
    next_id: AtomicU64,
}

/// A running scripted middleware. Dropping it stops the listeners and connections.
pub struct Server {
    handle: Handle,
    pub unix: Option<PathBuf>,
    pub tcp: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

/// Scripting and inspection of a server; cheap to clone into tasks.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

impl std::ops::Deref for Server {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.drop_connections();
        if let Some(path) = &self.unix {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Server {
    pub async fn start(options: Options) -> Server {
        let inner = Arc::new(Inner {
            api: options.api,
            keys: options.keys,
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
        });
        let mut tasks = Vec::new();
        if let Some(path) = &options.unix {
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path).unwrap();
            let inner = inner.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(inner.clone(), Box::new(stream), true));
                }
            }));
        }
        let mut tcp = None;
        if options.tcp || options.tls.is_some() {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tcp = Some(listener.local_addr().unwrap());
            let inner = inner.clone();
            let acceptor = options.tls.map(|(cert, key)| tls_acceptor(cert, key));
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let inner = inner.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        match acceptor {
                            None => serve(inner, Box::new(stream), false).await,
                            Some(acceptor) => {
                                if let Ok(tls) = acceptor.accept(stream).await {
                                    serve(inner, Box::new(tls), false).await;
                                }
                            }
                        }
                    });
                }
            }));
        }
        Server {
            handle: Handle { inner },
            unix: options.unix,
            tcp,
            tasks,
        }
    }

    /// A handle for tasks.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Unix-socket server of the given generation.
    pub async fn unix(api: Api, dir: &Path) -> Server {
        Server::start(Options {
            api,
            unix: Some(dir.join("middlewared.sock")),
            tcp: false,
            tls: None,
            keys: vec![],
        })
        .await
    }

    pub fn unix_url(&self) -> String {
        format!("unix://{}", self.unix.as_ref().unwrap().display())
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.tcp.unwrap().port())
    }

    pub fn wss_url(&self) -> String {
        format!("wss://127.0.0.1:{}", self.tcp.unwrap().port())
    }
}

impl Handle {
    /// Queues scripted answers for `method` (used in order, then the defaults).
    pub fn script(&self, method: &str, actions: impl IntoIterator<Item = Action>) {
        let mut state = self.inner.state.lock().unwrap();
        state
            .scripts
            .entry(method.to_owned())
            .or_default()
            .extend(actions);
    }

    pub fn refuse_subscriptions(&self) {
        self.inner.state.lock().unwrap().refuse_subscriptions = true;
    }

    pub fn calls(&self) -> Vec<Recorded> {
        self.inner.state.lock().unwrap().calls.clone()
    }

    pub fn calls_of(&self, method: &str) -> usize {
        self.calls().iter().filter(|c| c.method == method).count()
    }

    pub fn methods(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.method).collect()
    }

    pub fn frames(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().frames.clone()
    }

    pub fn connections(&self) -> u64 {
        self.inner.state.lock().unwrap().connections
    }

    /// The path of every HTTP request received, in order.
    pub fn routes(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().routes.clone()
    }

    /// Open connections right now.
    pub fn open_connections(&self) -> usize {
        self.inner.state.lock().unwrap().conns.len()
    }

    /// Closes every open connection (the socket is shut, no close handshake).
    pub fn drop_connections(&self) {
        let mut state = self.inner.state.lock().unwrap();
        for (_, conn) in state.conns.drain() {
            conn.close.cancel();
        }
    }

    /// Sends a raw text frame on every open connection.
    pub fn send_raw(&self, text: &str) {
        let state = self.inner.state.lock().unwrap();
        for conn in state.conns.values() {
            let _ = conn.tx.send(Out::Text(text.to_owned()));
        }
    }

    /// How many `method` requests arrived before the first `method` reply was sent.
    pub fn requests_before_first_reply(&self, method: &str) -> usize {
        let state = self.inner.state.lock().unwrap();
        state
            .log
            .iter()
            .take_while(|entry| **entry != Log::Replied(method.to_owned()))
            .filter(|entry| **entry == Log::Received(method.to_owned()))
            .count()
    }

    /// Stores a job; with `notify`, subscribers of `core.get_jobs` get a `changed` event.
    pub fn set_job(&self, job: Value, notify: bool) {
        let id = job["id"].as_u64().unwrap();
        self.inner
            .state
            .lock()
            .unwrap()
            .jobs
            .insert(id, job.clone());
        if notify {
            self.push_event("core.get_jobs", "changed", json!(id), Some(job));
        }
    }

    /// Sends an event to every connection subscribed to `collection`.
    pub fn push_event(&self, collection: &str, msg: &str, id: Value, fields: Option<Value>) {
        let state = self.inner.state.lock().unwrap();
        let mut event = json!({"msg": msg, "collection": collection, "id": id});
        if let Some(fields) = fields {
            event["fields"] = fields;
        }
        for conn in state.conns.values() {
            if !conn.subs.contains_key(collection) {
                continue;
            }
            let frame = match conn.protocol {
                Api::Legacy => event.clone(),
                Api::JsonRpc => {
                    json!({"jsonrpc": "2.0", "method": "collection_update", "params": event})
                }
            };
            let _ = conn.tx.send(Out::Text(frame.to_string()));
        }
    }

    /// Number of subscriptions to `collection` currently registered.
    pub fn subscribers(&self, collection: &str) -> usize {
        let state = self.inner.state.lock().unwrap();
        state
            .conns
            .values()
            .filter(|c| c.subs.contains_key(collection))
            .count()
    }
}

fn tls_acceptor(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// The API versions a 25.04.2 box serves.
const VERSIONS: [&str; 3] = ["v25.04.0", "v25.04.1", "v25.04.2"];

/// One connection: the HTTP request (`GET /api/versions`, or an upgrade with the route
/// check), then messages.
async fn serve(inner: Arc<Inner>, mut stream: Box<dyn Io>, unix: bool) {
    use truenas_sim::http;
    let Some((head, raw)) = http::read_request_head(&mut stream).await else {
        return;
    };
    let api = inner.api;
    let route = head.path.clone();
    inner.state.lock().unwrap().routes.push(route.clone());
    let json_rpc = api == Api::JsonRpc
        && (route == "/api/current" || VERSIONS.iter().any(|v| route == format!("/api/{v}")));
    if api == Api::JsonRpc && route == "/api/versions" {
        let body = serde_json::to_vec(&VERSIONS).unwrap();
        let _ = http::write_response(
            &mut stream,
            200,
            &[("Content-Type", "application/json")],
            &body,
        )
        .await;
        return;
    }
    if !(json_rpc || route == "/websocket") {
        let _ = http::write_response(&mut stream, 404, &[], b"404: Not Found").await;
        return;
    }
    let Ok(ws) = tokio_tungstenite::accept_async(http::Prefixed::new(raw, stream)).await else {
        return;
    };
    let protocol = if json_rpc { Api::JsonRpc } else { Api::Legacy };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let close = CancellationToken::new();
    let conn_id = {
        let mut state = inner.state.lock().unwrap();
        state.connections += 1;
        let id = state.connections;
        state.conns.insert(
            id,
            ConnHandle {
                tx: tx.clone(),
                close: close.clone(),
                protocol,
                subs: HashMap::new(),
            },
        );
        id
    };
    let writer_close = close.clone();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Out::Text(text) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Out::Close => break,
            }
        }
        writer_close.cancel();
        sink
    });
    let mut session = Session {
        inner: inner.clone(),
        conn: conn_id,
        protocol,
        tx,
        authenticated: unix,
        handshake: protocol == Api::JsonRpc,
    };
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = close.cancelled() => break,
        };
        let Some(Ok(message)) = message else { break };
        let Message::Text(text) = message else {
            continue;
        };
        inner.state.lock().unwrap().frames.push(text.to_string());
        match session.handle(text.as_str()) {
            Next::Continue => {}
            Next::Close => break,
            Next::Hang => std::future::pending::<()>().await,
        }
    }
    inner.state.lock().unwrap().conns.remove(&conn_id);
    // Both halves dropped: the socket closes without a close handshake, as when the
    // middleware process dies.
    writer.abort();
    drop(stream);
}

struct Session {
    inner: Arc<Inner>,
    conn: u64,
    protocol: Api,
    tx: mpsc::UnboundedSender<Out>,
    authenticated: bool,
    handshake: bool,
}

impl Session {
    /// Handles one message.
    fn handle(&mut self, text: &str) -> Next {
        let message: Value = serde_json::from_str(text).unwrap();
        if self.protocol == Api::Legacy {
            let msg = message["msg"].as_str().unwrap_or_default();
            if !self.handshake {
                if msg == "connect" && message["version"] == "1" {
                    self.handshake = true;
                    self.send(json!({"msg": "connected", "session": "s"}));
                } else {
                    self.send(json!({"msg": "failed", "version": "1"}));
                }
                return Next::Continue;
            }
            match msg {
                "ping" => {
                    self.send(json!({"msg": "pong", "id": message["id"]}));
                    return Next::Continue;
                }
                "sub" => {
                    self.subscribe(&message["id"], message["name"].as_str().unwrap());
                    return Next::Continue;
                }
                "unsub" => {
                    self.unsubscribe(message["id"].as_str().unwrap());
                    return Next::Continue;
                }
                "method" => {}
                other => panic!("unexpected legacy message {other}"),
            }
        } else {
            assert_eq!(message["jsonrpc"], "2.0");
        }
        let id = message.get("id").cloned();
        let method = message["method"].as_str().unwrap().to_owned();
        let params = message["params"].clone();
        assert!(params.is_array(), "params must always be an array");
        self.record(&method, params.clone());
        let action = self.decide(&method, &params);
        match id {
            Some(id) => self.execute(id, &method, action),
            // A JSON-RPC notification: executed, never answered.
            None => Next::Continue,
        }
    }

    fn record(&self, method: &str, params: Value) {
        let mut state = self.inner.state.lock().unwrap();
        state.log.push(Log::Received(method.to_owned()));
        state.calls.push(Recorded {
            conn: self.conn,
            method: method.to_owned(),
            params,
        });
    }

    fn send(&self, frame: Value) {
        let _ = self.tx.send(Out::Text(frame.to_string()));
    }

    fn send_reply(&self, method: &str, frame: Value) {
        replied(&self.inner, method);
        self.send(frame);
    }

    fn decide(&mut self, method: &str, params: &Value) -> Action {
        let login = matches!(method, "auth.login_ex" | "auth.login_with_api_key");
        if !self.authenticated && !login {
            return Action::Fail(Fail::Call(
                207,
                "ENOTAUTHENTICATED",
                "Not authenticated".into(),
            ));
        }
        let scripted = self
            .inner
            .state
            .lock()
            .unwrap()
            .scripts
            .get_mut(method)
            .and_then(VecDeque::pop_front);
        if let Some(action) = scripted {
            return action;
        }
        self.default_action(method, params)
    }

    fn default_action(&mut self, method: &str, params: &Value) -> Action {
        let inner = self.inner.clone();
        match method {
            "system.version_short" => Action::Reply(json!(inner.api.version())),
            "core.ping" => Action::Reply(json!("pong")),
            "auth.login_ex" if self.protocol == Api::JsonRpc => {
                let data = &params[0];
                assert_eq!(data["mechanism"], "API_KEY_PLAIN");
                let answer = match inner
                    .keys
                    .iter()
                    .find(|(user, key, _)| data["username"] == *user && data["api_key"] == *key)
                {
                    Some((_, _, true)) => "EXPIRED",
                    Some(_) => {
                        self.authenticated = true;
                        "SUCCESS"
                    }
                    None => "AUTH_ERR",
                };
                Action::Reply(json!({"response_type": answer, "user_info": null}))
            }
            "auth.login_with_api_key" => {
                let ok = inner
                    .keys
                    .iter()
                    .any(|(_, key, revoked)| params[0] == *key && !revoked);
                self.authenticated |= ok;
                Action::Reply(json!(ok))
            }
            "core.subscribe" if self.protocol == Api::JsonRpc => {
                if inner.state.lock().unwrap().refuse_subscriptions {
                    return Action::Fail(Fail::Call(13, "EACCES", "Not authorized".into()));
                }
                let sub_id = format!("sub-{}", inner.next_id.fetch_add(1, Ordering::Relaxed));
                self.register(params[0].as_str().unwrap(), &sub_id);
                Action::Reply(json!(sub_id))
            }
            "core.unsubscribe" => {
                self.unregister(params[0].as_str().unwrap());
                Action::Reply(Value::Null)
            }
            "core.get_jobs" => {
                let state = inner.state.lock().unwrap();
                let wanted = params[0][0][2].as_u64();
                let jobs: Vec<Value> = state
                    .jobs
                    .iter()
                    .filter(|(id, _)| wanted.is_none_or(|w| w == **id))
                    .map(|(_, job)| job.clone())
                    .collect();
                Action::Reply(json!(jobs))
            }
            "cloudsync.sync" => {
                let id = 100 + inner.next_id.fetch_add(1, Ordering::Relaxed);
                let job = json!({"id": id, "method": "cloudsync.sync", "state": "RUNNING",
                    "progress": {"percent": 0, "description": ""},
                    "time_started": {"$date": 1_700_000_000_000_i64}});
                inner.state.lock().unwrap().jobs.insert(id, job);
                Action::Reply(json!(id))
            }
            _ => Action::Fail(Fail::NoMethod),
        }
    }

    fn register(&self, collection: &str, sub_id: &str) {
        let mut state = self.inner.state.lock().unwrap();
        if let Some(conn) = state.conns.get_mut(&self.conn) {
            conn.subs.insert(collection.to_owned(), sub_id.to_owned());
        }
    }

    fn unregister(&self, sub_id: &str) {
        let mut state = self.inner.state.lock().unwrap();
        if let Some(conn) = state.conns.get_mut(&self.conn) {
            conn.subs.retain(|_, id| id != sub_id);
        }
    }

    fn subscribe(&self, id: &Value, name: &str) {
        self.record("core.subscribe", json!([name]));
        if self.inner.state.lock().unwrap().refuse_subscriptions {
            let error = legacy_error(&Fail::Call(13, "EACCES", "Not authorized".into()), "sub");
            self.send(json!({"msg": "result", "id": id, "error": error}));
            return;
        }
        self.register(name, id.as_str().unwrap());
        self.send(json!({"msg": "ready", "subs": [id]}));
    }

    fn unsubscribe(&self, id: &str) {
        self.record("core.unsubscribe", json!([id]));
        self.unregister(id);
    }

    /// Sends the action's answer.
    fn execute(&self, id: Value, method: &str, action: Action) -> Next {
        match action {
            Action::Reply(result) => {
                self.send_reply(method, self.reply(&id, Ok(result), method));
                Next::Continue
            }
            Action::Fail(fail) => {
                self.send_reply(method, self.reply(&id, Err(fail), method));
                Next::Continue
            }
            Action::Drop => Next::Close,
            Action::Silence => Next::Continue,
            Action::Hang => Next::Hang,
            Action::Delay(delay, action) => {
                let tx = self.tx.clone();
                let inner = self.inner.clone();
                let method_name = method.to_owned();
                let frame = match *action {
                    Action::Reply(result) => Some(self.reply(&id, Ok(result), method)),
                    Action::Fail(fail) => Some(self.reply(&id, Err(fail), method)),
                    Action::Drop => None,
                    other => panic!("unsupported delayed action {other:?}"),
                };
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    replied(&inner, &method_name);
                    let _ = tx.send(frame.map_or(Out::Close, |f| Out::Text(f.to_string())));
                });
                Next::Continue
            }
        }
    }

    fn reply(&self, id: &Value, outcome: Result<Value, Fail>, method: &str) -> Value {
        match (self.protocol, outcome) {
            (Api::JsonRpc, Ok(result)) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            (Api::Legacy, Ok(result)) => json!({"msg": "result", "id": id, "result": result}),
            (Api::JsonRpc, Err(fail)) => {
                json!({"jsonrpc": "2.0", "id": id, "error": jsonrpc_error(&fail)})
            }
            (Api::Legacy, Err(fail)) => {
                json!({"msg": "result", "id": id, "error": legacy_error(&fail, method)})
            }
        }
    }
}

fn replied(inner: &Inner, method: &str) {
    inner
        .state
        .lock()
        .unwrap()
        .log
        .push(Log::Replied(method.to_owned()));
}

fn triples(items: &[(String, String)]) -> (Value, String) {
    let extra: Vec<Value> = items.iter().map(|(p, m)| json!([p, m, 22])).collect();
    let reason = items
        .iter()
        .map(|(p, m)| format!("[EINVAL] {p}: {m}\n"))
        .collect();
    (json!(extra), reason)
}

/// `api/base/server/ws_handler/rpc.py` shapes.
fn jsonrpc_error(fail: &Fail) -> Value {
    match fail {
        Fail::Validation(items) => {
            let (extra, reason) = triples(items);
            json!({"code": -32602, "message": "Invalid params", "data": {
                "error": 22, "errname": "EINVAL", "reason": reason, "trace": null, "extra": extra}})
        }
        Fail::Call(errno, errname, reason) => {
            json!({"code": -32001, "message": "Method call error",
            "data": {"error": errno, "errname": errname, "reason": reason, "trace": null, "extra": null}})
        }
        Fail::NoMethod => json!({"code": -32601, "message": "Method does not exist"}),
    }
}

/// `main.py` `send_error` shapes [24.10].
fn legacy_error(fail: &Fail, method: &str) -> Value {
    match fail {
        Fail::Validation(items) => {
            let (extra, reason) = triples(items);
            json!({"error": 11, "errname": "EAGAIN", "type": "VALIDATION", "reason": reason,
                   "trace": {"formatted": "Traceback ..."}, "extra": extra})
        }
        Fail::Call(errno, errname, reason) => json!({"error": errno, "errname": errname,
            "type": null, "reason": reason, "trace": null, "extra": null}),
        Fail::NoMethod => {
            let (service, name) = method.rsplit_once('.').unwrap_or(("", method));
            json!({"error": 201, "errname": "ENOMETHOD", "type": null,
                   "reason": format!("Method {name:?} not found in {service:?}"), "trace": null, "extra": null})
        }
    }
}

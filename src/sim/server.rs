//! The simulator's I/O shell: listens on a unix socket and/or loopback TCP and speaks
//! both middleware wire protocols over WebSocket.
//!
//! Owns: listeners and connections; HTTP routing per version (24.10: only `/websocket`,
//! anything else 404; 25.04/25.10: `/api/current` (and the current `/api/vX.Y.Z`) →
//! JSON-RPC 2.0, `/websocket` → legacy); sessions (unix peers are root, logged in; TCP
//! peers must log in with an API key); per-connection limits (8 KiB per message before
//! login → close 1007, 64 KiB after → close 1009; 10 calls executing, 20 in flight, the
//! 21st refused); subscriptions and event delivery; injected connection drops.
//! Does not: decide any call's outcome (`Simulator::handle` → `core.rs`) or build frames
//! (`wire.rs`); log params (they may hold secrets).
//! Invariants: every call is answered exactly once, or the connection is closed instead
//! (an injected drop); closing a connection ends every task it started; shutting the
//! server down removes the socket file it created.
//! Limitations: no TLS listener (use loopback TCP; "insecure" is a fault flag), no
//! `GET /api/versions`, no rate limiting of login attempts, no UI allow-list.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::core::{Reply, RpcError, Session};
use super::simulator::{Handled, Simulator};
use super::wire;
use crate::middleware::ApiFlavor;

/// Where to listen.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// A unix socket path (created; removed again on shutdown).
    pub socket: Option<PathBuf>,
    /// A loopback TCP address, e.g. `127.0.0.1:0`.
    pub listen: Option<SocketAddr>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("nothing to listen on: give a unix socket path and/or a loopback TCP address")]
    NoListener,
    #[error("refusing to listen on {0}: the simulator only listens on loopback addresses")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on unix socket {path}")]
    BindUnix {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}")]
    BindTcp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl ServerError {
    /// Who has to act.
    pub fn fault(&self) -> crate::fault::Fault {
        match self {
            ServerError::NoListener | ServerError::NotLoopback(_) => crate::fault::Fault::Operator,
            ServerError::BindUnix { .. } | ServerError::BindTcp { .. } => {
                crate::fault::Fault::Transient
            }
        }
    }
}

/// A running simulator server.
pub struct Server {
    sim: Simulator,
    socket: Option<PathBuf>,
    tcp: Option<SocketAddr>,
    shutdown: CancellationToken,
    connections: Arc<Mutex<Vec<CancellationToken>>>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("socket", &self.socket)
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

/// Messages from a client before login are capped at 8 KiB, after at 64 KiB
/// (`MW/utils/limits.py`).
const UNAUTHENTICATED_LIMIT: usize = 8192;
const AUTHENTICATED_LIMIT: usize = 65536;
/// Calls executing at once / in flight per connection (`SoftHardSemaphore(10, 20)`).
const CONCURRENT_CALLS: usize = 10;
const IN_FLIGHT_CALLS: usize = 20;
/// How long one frame may take to be written before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl Simulator {
    /// Starts listening. Returns once the listeners are bound (addresses are known).
    pub async fn serve(&self, opts: ServeOptions) -> Result<Server, ServerError> {
        if opts.socket.is_none() && opts.listen.is_none() {
            return Err(ServerError::NoListener);
        }
        let server = Server {
            sim: self.clone(),
            socket: None,
            tcp: None,
            shutdown: CancellationToken::new(),
            connections: Arc::new(Mutex::new(Vec::new())),
            tasks: TaskTracker::new(),
        };
        let server = match opts.listen {
            Some(addr) => server.bind_tcp(addr).await?,
            None => server,
        };
        match opts.socket {
            Some(path) => server.bind_unix(&path),
            None => Ok(server),
        }
    }
}

impl Server {
    async fn bind_tcp(mut self, addr: SocketAddr) -> Result<Self, ServerError> {
        if !addr.ip().is_loopback() {
            return Err(ServerError::NotLoopback(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::BindTcp { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServerError::BindTcp { addr, source })?;
        self.tcp = Some(bound);
        let ctx = self.acceptor();
        self.tasks.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = ctx.shutdown.cancelled() => break,
                    a = listener.accept() => a,
                };
                if let Ok((stream, _peer)) = accepted {
                    ctx.start(stream, Peer::Tcp);
                }
            }
        });
        Ok(self)
    }

    fn bind_unix(mut self, path: &Path) -> Result<Self, ServerError> {
        // A stale socket file from an earlier run would make bind fail.
        if path.exists() {
            let _ = crate::fs::remove_file_if_exists(path);
        }
        let listener = UnixListener::bind(path).map_err(|source| ServerError::BindUnix {
            path: path.to_owned(),
            source,
        })?;
        self.socket = Some(path.to_owned());
        let ctx = self.acceptor();
        self.tasks.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = ctx.shutdown.cancelled() => break,
                    a = listener.accept() => a,
                };
                if let Ok((stream, _peer)) = accepted {
                    ctx.start(stream, Peer::Unix);
                }
            }
        });
        Ok(self)
    }

    fn acceptor(&self) -> Acceptor {
        Acceptor {
            sim: self.sim.clone(),
            shutdown: self.shutdown.clone(),
            connections: self.connections.clone(),
            tasks: self.tasks.clone(),
        }
    }

    /// The unix socket path, if listening on one.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// The bound TCP address, if listening on TCP.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// `unix:///path` for the agent's `--middleware`.
    pub fn unix_url(&self) -> Option<String> {
        self.socket
            .as_ref()
            .map(|p| format!("unix://{}", p.display()))
    }

    /// `ws://127.0.0.1:port` for the agent's `--middleware`.
    pub fn ws_url(&self) -> Option<String> {
        self.tcp.map(|a| format!("ws://{a}"))
    }

    /// The simulator served.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// Closes every open connection now (as a middleware restart would), without a close frame.
    pub fn drop_connections(&self) {
        let live = std::mem::take(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for c in live {
            c.cancel();
        }
    }

    /// Stops listening, closes every connection and waits for their tasks to end.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.drop_connections();
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(path) = &self.socket {
            let _ = crate::fs::remove_file_if_exists(path);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.drop_connections();
    }
}

/// What a listener needs to start connections.
#[derive(Clone)]
struct Acceptor {
    sim: Simulator,
    shutdown: CancellationToken,
    connections: Arc<Mutex<Vec<CancellationToken>>>,
    tasks: TaskTracker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Unix,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    JsonRpc,
    Legacy,
}

impl Acceptor {
    fn start<S>(&self, stream: S, peer: Peer)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let kill = self.shutdown.child_token();
        {
            let mut live = self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            live.retain(|c| !c.is_cancelled());
            live.push(kill.clone());
        }
        let sim = self.sim.clone();
        let links = Links {
            kill: kill.clone(),
            server_down: self.shutdown.clone(),
            tasks: self.tasks.clone(),
        };
        self.tasks.spawn(async move {
            tokio::select! {
                () = kill.cancelled() => {}
                () = connection(stream, peer, sim, links) => {}
            }
            kill.cancel();
        });
    }
}

/// The route a request path maps to on this flavour (`MW/main.py` routes).
fn route(flavor: ApiFlavor, version: &str, path: &str) -> Option<Proto> {
    let current = format!("/api/v{}", api_version_name(flavor, version));
    match (flavor, path) {
        (_, "/websocket") => Some(Proto::Legacy),
        (ApiFlavor::V24_10, _) => None,
        (_, "/api/current") => Some(Proto::JsonRpc),
        (_, p) if p == current => Some(Proto::JsonRpc),
        _ => None,
    }
}

/// The current API version name of a release (`MW/api/current.py`), e.g. `25.04.2`.
fn api_version_name(flavor: ApiFlavor, version: &str) -> String {
    match flavor {
        ApiFlavor::V24_10 => String::new(),
        ApiFlavor::V25_04 => version.split('.').take(3).collect::<Vec<_>>().join("."),
        ApiFlavor::V25_10 => "25.10.5".to_owned(),
    }
}

/// The WebSocket upgrade: routes the request path per version, or answers 404.
async fn upgrade<S>(stream: S, sim: &Simulator) -> Option<(WebSocketStream<S>, Proto)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (flavor, version) = (sim.flavor(), sim.version());
    let chosen: Arc<Mutex<Option<Proto>>> = Arc::new(Mutex::new(None));
    let slot = chosen.clone();
    #[expect(
        clippy::result_large_err,
        reason = "the signature tungstenite's callback requires"
    )]
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let Some(p) = route(flavor, &version, req.uri().path()) else {
            let mut not_found = ErrorResponse::new(Some("404: Not Found".to_owned()));
            *not_found.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
            return Err(not_found);
        };
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(p);
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(4 << 20))
        .max_frame_size(Some(4 << 20));
    let handshake = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)),
    );
    let ws = handshake.await.ok()?.ok()?;
    let proto = (*chosen.lock().unwrap_or_else(PoisonError::into_inner))?;
    Some((ws, proto))
}

/// What ties a connection to its server.
struct Links {
    /// Cancelled when this connection must close.
    kill: CancellationToken,
    /// Cancelled when the server shuts down.
    server_down: CancellationToken,
    tasks: TaskTracker,
}

async fn connection<S>(stream: S, peer: Peer, sim: Simulator, links: Links)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some((ws, proto)) = upgrade(stream, &sim).await else {
        return;
    };
    let conn_id = sim.next_conn();
    let mut session = match peer {
        Peer::Unix => Session::unix(conn_id),
        Peer::Tcp => Session::tcp(conn_id, !sim.state().faults.insecure_tcp),
    };
    session.legacy_protocol = proto == Proto::Legacy;
    let (mut sink, mut source) = ws.split();
    let (out, mut outbox) = mpsc::unbounded_channel::<Message>();
    let conn = Conn {
        sim,
        proto,
        session: Arc::new(Mutex::new(session)),
        out,
        subs: Arc::new(Mutex::new(HashMap::new())),
        in_flight: Arc::new(AtomicUsize::new(0)),
        executing: Arc::new(Semaphore::new(CONCURRENT_CALLS)),
        kill: links.kill.clone(),
        server_down: links.server_down.clone(),
        handshake_done: Arc::new(Mutex::new(proto == Proto::JsonRpc)),
        tasks: links.tasks.clone(),
    };
    links.tasks.spawn(forward_events(conn.clone()));
    let writer = async move {
        while let Some(msg) = outbox.recv().await {
            let closing = matches!(msg, Message::Close(_));
            // A client that stops reading must not wedge the connection forever.
            let sent = tokio::time::timeout(WRITE_TIMEOUT, sink.send(msg)).await;
            if !matches!(sent, Ok(Ok(()))) || closing {
                break;
            }
        }
    };
    let reader = async move {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Text(text) if !conn.on_text(text.as_str()) => break,
                Message::Binary(_) => {
                    conn.close(CloseCode::Unsupported, "Invalid websocket message type");
                    break;
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    let mut writer = std::pin::pin!(writer);
    tokio::select! {
        () = &mut writer => {}
        () = reader => {
            // Let a close frame already queued go out before the socket is dropped.
            let _ = tokio::time::timeout(Duration::from_millis(200), &mut writer).await;
        }
        () = links.kill.cancelled() => {}
    }
    links.kill.cancel();
}

/// One WebSocket connection's state, shared by the tasks answering its calls.
#[derive(Clone)]
struct Conn {
    sim: Simulator,
    proto: Proto,
    session: Arc<Mutex<Session>>,
    out: mpsc::UnboundedSender<Message>,
    /// Subscription id → event name.
    subs: Arc<Mutex<HashMap<String, String>>>,
    in_flight: Arc<AtomicUsize>,
    executing: Arc<Semaphore>,
    kill: CancellationToken,
    /// The server is shutting down: calls still running stop too. (A call outlives its
    /// connection otherwise, as on the box.)
    server_down: CancellationToken,
    /// Legacy protocol: `connect` was accepted.
    handshake_done: Arc<Mutex<bool>>,
    tasks: TaskTracker,
}

impl Conn {
    fn session(&self) -> Session {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn send(&self, frame: &Value) {
        let _ = self.out.send(Message::text(frame.to_string()));
    }

    fn close(&self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.to_owned().into(),
        };
        let _ = self.out.send(Message::Close(Some(frame)));
    }

    /// Handles one text frame; false = stop reading (the connection is closing).
    fn on_text(&self, text: &str) -> bool {
        let authenticated = self.session().user.is_some();
        if !authenticated && text.len() > UNAUTHENTICATED_LIMIT {
            self.close(
                CloseCode::Invalid,
                "Anonymous connection max message length is 8 kB",
            );
            return false;
        }
        if authenticated && text.len() > AUTHENTICATED_LIMIT {
            self.close(CloseCode::Size, "Max message length is 64 kB");
            return false;
        }
        match self.proto {
            Proto::JsonRpc => self.on_jsonrpc(text),
            Proto::Legacy => self.on_legacy(text),
        }
        true
    }

    fn on_jsonrpc(&self, text: &str) {
        match wire::parse_jsonrpc(text) {
            Ok(req) => self.spawn_call(req.id, req.method, req.params),
            Err(Some(frame)) => self.send(&frame),
            Err(None) => {}
        }
    }

    fn on_legacy(&self, text: &str) {
        let Some(msg) = wire::parse_legacy(text) else {
            return;
        };
        let done = *self
            .handshake_done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match (msg, done) {
            (wire::Legacy::Connect { version_ok: true }, _) => {
                *self
                    .handshake_done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = true;
                self.send(&serde_json::json!({"msg": "connected", "session": uuid::Uuid::new_v4().to_string()}));
            }
            (wire::Legacy::Connect { version_ok: false }, _) | (_, false) => {
                self.send(&serde_json::json!({"msg": "failed", "version": "1"}));
            }
            (
                wire::Legacy::Method {
                    id, method: None, ..
                },
                true,
            ) => {
                self.send(&wire::legacy_error(
                    &id,
                    &RpcError::Other("Message is malformed: 'method' is absent.".into()),
                ));
            }
            (
                wire::Legacy::Method {
                    id,
                    params: Err(()),
                    ..
                },
                true,
            ) => {
                self.send(&wire::legacy_error(
                    &id,
                    &RpcError::Other("`params` must be a list.".into()),
                ));
            }
            (
                wire::Legacy::Method {
                    id,
                    method: Some(m),
                    params: Ok(p),
                },
                true,
            ) => self.spawn_call(Some(id), m, p),
            (wire::Legacy::Ping { id }, true) => {
                let mut pong = serde_json::json!({"msg": "pong"});
                if let Some(id) = id {
                    pong["id"] = id;
                }
                self.send(&pong);
            }
            (wire::Legacy::Sub { id, name }, true) => self.legacy_sub(&id, name),
            (wire::Legacy::Unsub { id }, true) => {
                self.subs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id_key(&id));
            }
            (wire::Legacy::Other, true) => {}
        }
    }

    fn legacy_sub(&self, id: &Value, name: String) {
        if self.session().user.is_none() {
            // middleware [24.10]: main.py `sub` from an unauthenticated session.
            let reason = "Not authorized".to_owned();
            self.send(&wire::legacy_error_frame(
                id,
                super::core::errno::EACCES,
                Value::Null,
                reason,
                Value::Null,
            ));
            return;
        }
        self.subs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id_key(id), name);
        self.send(&serde_json::json!({"msg": "ready", "subs": [id]}));
    }

    fn spawn_call(&self, id: Option<Value>, method: String, params: Vec<Value>) {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= IN_FLIGHT_CALLS {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.refuse_too_many(id.as_ref());
            return;
        }
        let conn = self.clone();
        self.tasks.spawn(async move {
            let run = async {
                let Ok(_permit) = conn.executing.clone().acquire_owned().await else {
                    return;
                };
                conn.call(id, &method, params).await;
            };
            tokio::select! {
                () = conn.server_down.cancelled() => {}
                () = run => {}
            }
            conn.in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn refuse_too_many(&self, id: Option<&Value>) {
        let Some(id) = id else {
            return;
        };
        let why = format!("Maximum number of concurrent calls ({IN_FLIGHT_CALLS}) has exceeded");
        let frame = match self.proto {
            Proto::JsonRpc => {
                wire::error_frame(id, wire::code::TOO_MANY_CONCURRENT_CALLS, &why, None)
            }
            Proto::Legacy => wire::legacy_error_frame(
                id,
                super::core::errno::ETOOMANYREFS,
                Value::Null,
                format!("{why}."),
                Value::Null,
            ),
        };
        self.send(&frame);
    }

    async fn call(&self, id: Option<Value>, method: &str, params: Vec<Value>) {
        let before = self.session();
        let mut session = before.clone();
        let request_id = if self.proto == Proto::JsonRpc {
            id.clone()
        } else {
            None
        };
        let sub_arg = match method {
            "core.subscribe" | "core.unsubscribe" => {
                params.first().and_then(Value::as_str).map(str::to_owned)
            }
            _ => None,
        };
        let handled = self
            .sim
            .handle(&mut session, method, params, request_id)
            .await;
        self.merge_session(&before, &session);
        let result = match handled {
            Handled::Drop => {
                // An injected fault: the connection goes away without an answer.
                self.kill.cancel();
                return;
            }
            Handled::Reply(r) => r,
        };
        let result = match result {
            Ok(Reply::Value(v)) => Ok(v),
            Ok(Reply::Job(job)) if session.legacy_jobs || self.proto == Proto::Legacy => {
                Ok(Value::from(job))
            }
            Ok(Reply::Job(job)) => self.await_job(job).await,
            Err(e) => Err(e),
        };
        self.track_subscription(method, sub_arg, &result);
        let Some(id) = id else {
            return;
        };
        let frame = match (self.proto, result) {
            (Proto::JsonRpc, Ok(v)) => wire::result_frame(&id, v),
            (Proto::JsonRpc, Err(e)) => wire::jsonrpc_error(&id, &e),
            (Proto::Legacy, Ok(v)) => wire::legacy_result(&id, v),
            (Proto::Legacy, Err(e)) => wire::legacy_error(&id, &e),
        };
        self.send(&frame);
    }

    /// `core.subscribe [name]` → remember the returned id; `core.unsubscribe [id]` → forget it.
    fn track_subscription(
        &self,
        method: &str,
        arg: Option<String>,
        result: &Result<Value, RpcError>,
    ) {
        let mut subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
        match (method, arg, result) {
            ("core.subscribe", Some(name), Ok(Value::String(sub_id))) => {
                subs.insert(sub_id.clone(), name);
            }
            ("core.unsubscribe", Some(sub_id), Ok(_)) => {
                subs.remove(&sub_id);
            }
            _ => {}
        }
    }

    /// Keeps what a call changed in the session (login, `core.set_options`).
    fn merge_session(&self, before: &Session, after: &Session) {
        let mut s = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        if after.user != before.user {
            s.user.clone_from(&after.user);
        }
        if after.legacy_jobs != before.legacy_jobs {
            s.legacy_jobs = after.legacy_jobs;
        }
    }

    /// 25.10 with `legacy_jobs=false`: the call answers with the job's result or error.
    async fn await_job(&self, job: u64) -> Result<Value, RpcError> {
        let done = self
            .sim
            .wait_job_value(job, Duration::from_secs(24 * 3600))
            .await;
        let done = done.unwrap_or(Value::Null);
        if done.get("state").and_then(Value::as_str) == Some("SUCCESS") {
            return Ok(done.get("result").cloned().unwrap_or(Value::Null));
        }
        let error = done
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("[EFAULT] job failed");
        let message = error.strip_prefix("[EFAULT] ").unwrap_or(error).to_owned();
        Err(RpcError::Call {
            errno: super::core::errno::EFAULT,
            message,
            extra: None,
        })
    }
}

/// Subscription ids are kept as strings whatever their JSON type.
fn id_key(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_owned)
}

/// Sends the connection every event one of its subscriptions asks for.
async fn forward_events(conn: Conn) {
    let mut events = conn.sim.events();
    loop {
        let event = tokio::select! {
            () = conn.kill.cancelled() => return,
            e = events.recv() => e,
        };
        let event = match event {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let wanted = conn
            .subs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|name| name == "*" || *name == event.collection);
        if wanted {
            let frame = match conn.proto {
                Proto::JsonRpc => wire::notification(&event),
                Proto::Legacy => wire::legacy_event(&event),
            };
            conn.send(&frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_per_version() {
        assert_eq!(
            route(ApiFlavor::V24_10, "24.10.2.4", "/websocket"),
            Some(Proto::Legacy)
        );
        assert_eq!(route(ApiFlavor::V24_10, "24.10.2.4", "/api/current"), None);
        assert_eq!(
            route(ApiFlavor::V25_04, "25.04.2.6", "/api/current"),
            Some(Proto::JsonRpc)
        );
        assert_eq!(
            route(ApiFlavor::V25_04, "25.04.2.6", "/api/v25.04.2"),
            Some(Proto::JsonRpc)
        );
        assert_eq!(route(ApiFlavor::V25_04, "25.04.2.6", "/api/v25.04.0"), None);
        assert_eq!(
            route(ApiFlavor::V25_10, "25.10.6", "/websocket"),
            Some(Proto::Legacy)
        );
        assert_eq!(
            route(ApiFlavor::V25_10, "25.10.6", "/api/v25.10.5"),
            Some(Proto::JsonRpc)
        );
        assert_eq!(route(ApiFlavor::V25_10, "25.10.6", "/"), None);
    }
}

//! The simulator's I/O shell: listens like a TrueNAS box does and speaks both middleware
//! wire protocols over WebSocket.
//!
//! Owns: listeners and connections — middlewared's unix socket, its loopback TCP
//! listener (not offered on 26.0+ unless the box is vendored: `MW/main.py`, ef45f3bd5d),
//! and nginx's HTTPS listener and plain HTTP port (with or without the HTTP→HTTPS
//! redirect); the HTTP edge (`http.rs`) and routing per version and front (`routes.rs`:
//! `/websocket`, `/api/versions`, `/api/current`, `/api/vX.Y.Z`, nginx's 302 to `/ui/`
//! on 24.10 and its 307 redirect); sessions (unix peers are root, logged in; TCP peers
//! must log in with an API key; TLS counts as a secure transport); per-connection limits
//! (8 KiB per message before login → close 1007, 64 KiB after → close 1009; 10 calls
//! executing, 20 in flight, the 21st refused); subscriptions and event delivery;
//! injected connection drops; the record of HTTP requests ([`HttpRecord`]).
//! Does not: decide any call's outcome (`Simulator::handle` → `core.rs`) or build frames
//! (`wire.rs`); log params (they may hold secrets).
//! Invariants: every call is answered exactly once, or the connection is closed instead
//! (an injected drop); closing a connection ends every task it started; shutting the
//! server down removes the socket file it created; every listener is on loopback.
//! Limitations: no rate limiting of login attempts unless injected, no UI allow-list;
//! the HTTPS listener uses one certificate (no SNI); older versioned endpoints behave as
//! the box's own API (see `routes.rs`).

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
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::core::{Reply, RpcError, Session};
use super::http::{self, Prefixed, TlsIdentity};
use super::routes::{self, Answer, Front};
use super::simulator::{Handled, Simulator};
use super::wire;
use truenas_agent::middleware::ApiFlavor;

/// Where to listen.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// middlewared's unix socket path (created; removed again on shutdown).
    pub socket: Option<PathBuf>,
    /// middlewared's loopback TCP listener (`127.0.0.1:6000` on a box), e.g.
    /// `127.0.0.1:0`. Refused on 26.0+ unless the scenario's box is vendored.
    pub listen: Option<SocketAddr>,
    /// nginx's HTTPS listener (a loopback address) and its certificate.
    pub https: Option<(SocketAddr, TlsIdentity)>,
    /// nginx's plain HTTP port (a loopback address).
    pub http: Option<SocketAddr>,
    /// With `http`: the HTTP→HTTPS redirect is on (`system.general` `ui_httpsredirect`),
    /// so every request there is answered 307 to the HTTPS port.
    pub https_redirect: bool,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "nothing to listen on: give a unix socket path, a loopback TCP address, or an HTTP(S) address"
    )]
    NoListener,
    #[error("refusing to listen on {0}: the simulator only listens on loopback addresses")]
    NotLoopback(SocketAddr),
    /// 26.0.0-BETA.3+ opens `127.0.0.1:6000` only on vendor builds.
    #[error(
        "TrueNAS {version} does not open middlewared's TCP listener (since 26.0.0-BETA.3 only vendor builds do): use the unix socket or the HTTPS listener, or make the box vendored (scenario `system.vendored`, `--vendored`)"
    )]
    NoTcpListener { version: String },
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
    pub fn fault(&self) -> truenas_agent::fault::Fault {
        match self {
            ServerError::NoListener
            | ServerError::NotLoopback(_)
            | ServerError::NoTcpListener { .. } => truenas_agent::fault::Fault::Operator,
            ServerError::BindUnix { .. } | ServerError::BindTcp { .. } => {
                truenas_agent::fault::Fault::Transient
            }
        }
    }
}

/// A running simulator server.
pub struct Server {
    sim: Simulator,
    socket: Option<PathBuf>,
    tcp: Option<SocketAddr>,
    https: Option<(SocketAddr, TlsIdentity)>,
    http: Option<SocketAddr>,
    shutdown: CancellationToken,
    connections: Arc<Mutex<Vec<CancellationToken>>>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("socket", &self.socket)
            .field("tcp", &self.tcp)
            .field("https", &self.https)
            .field("http", &self.http)
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
        if opts.socket.is_none()
            && opts.listen.is_none()
            && opts.https.is_none()
            && opts.http.is_none()
        {
            return Err(ServerError::NoListener);
        }
        let (flavor, vendored) = {
            let state = self.state();
            (state.flavor, state.system.vendored)
        };
        if opts.listen.is_some() && flavor >= ApiFlavor::V26_0 && !vendored {
            return Err(ServerError::NoTcpListener {
                version: self.version(),
            });
        }
        let mut server = Server {
            sim: self.clone(),
            socket: None,
            tcp: None,
            https: None,
            http: None,
            shutdown: CancellationToken::new(),
            connections: Arc::new(Mutex::new(Vec::new())),
            tasks: TaskTracker::new(),
        };
        if let Some(addr) = opts.listen {
            server.tcp = Some(server.bind_tcp(addr, Listener::Middleware).await?);
        }
        if let Some((addr, identity)) = opts.https {
            let acceptor = tokio_rustls::TlsAcceptor::from(identity.config.clone());
            let bound = server.bind_tcp(addr, Listener::Https(acceptor)).await?;
            server.https = Some((bound, identity));
        }
        if let Some(addr) = opts.http {
            let https_port = server.https.as_ref().map_or(443, |(a, _)| a.port());
            let front = if opts.https_redirect {
                Front::NginxRedirect { https_port }
            } else {
                Front::Nginx { tls: false }
            };
            server.http = Some(server.bind_tcp(addr, Listener::Http(front)).await?);
        }
        match opts.socket {
            Some(path) => server.bind_unix(&path),
            None => Ok(server),
        }
    }
}

/// What a TCP listener is.
#[derive(Clone)]
enum Listener {
    /// middlewared's own TCP listener.
    Middleware,
    /// nginx over TLS.
    Https(tokio_rustls::TlsAcceptor),
    /// nginx on plain HTTP.
    Http(Front),
}

/// How long a client may take for the TLS handshake and its request head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

impl Server {
    async fn bind_tcp(&self, addr: SocketAddr, kind: Listener) -> Result<SocketAddr, ServerError> {
        if !addr.ip().is_loopback() {
            return Err(ServerError::NotLoopback(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::BindTcp { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServerError::BindTcp { addr, source })?;
        let ctx = self.acceptor();
        self.tasks.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = ctx.shutdown.cancelled() => break,
                    a = listener.accept() => a,
                };
                let Ok((stream, _peer)) = accepted else {
                    continue;
                };
                // Nagle would delay small request/reply frames.
                let _ = stream.set_nodelay(true);
                let insecure = ctx.sim.update_faults(|f| f.insecure_tcp);
                match &kind {
                    Listener::Middleware => ctx.start(
                        stream,
                        Peer::Tcp {
                            front: Front::Middleware,
                            secure: !insecure,
                        },
                    ),
                    Listener::Http(front) => ctx.start(
                        stream,
                        Peer::Tcp {
                            front: *front,
                            secure: !insecure,
                        },
                    ),
                    Listener::Https(acceptor) => {
                        let (acceptor, ctx2) = (acceptor.clone(), ctx.clone());
                        ctx.tasks.spawn(async move {
                            let handshake =
                                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                            if let Ok(Ok(tls)) = handshake.await {
                                // nginx sets `X-Https: on`: TLS is a secure transport.
                                ctx2.start(
                                    tls,
                                    Peer::Tcp {
                                        front: Front::Nginx { tls: true },
                                        secure: true,
                                    },
                                );
                            }
                        });
                    }
                }
            }
        });
        Ok(bound)
    }

    fn bind_unix(mut self, path: &Path) -> Result<Self, ServerError> {
        // A stale socket file from an earlier run would make bind fail.
        if path.exists() {
            let _ = truenas_agent::fs::remove_file_if_exists(path);
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

    /// `ws://127.0.0.1:port` (middlewared's TCP listener) for the agent's `--middleware`.
    pub fn ws_url(&self) -> Option<String> {
        self.tcp.map(|a| format!("ws://{a}"))
    }

    /// The HTTPS listener's address, if any.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().map(|(a, _)| *a)
    }

    /// `wss://127.0.0.1:port` (nginx over TLS) for the agent's `--middleware`.
    pub fn wss_url(&self) -> Option<String> {
        self.https_addr().map(|a| format!("wss://{a}"))
    }

    /// The SHA-256 of the HTTPS listener's certificate (for the agent's `--tls-pin`).
    pub fn tls_fingerprint(&self) -> Option<truenas_agent::middleware::tls::CertFingerprint> {
        self.https.as_ref().map(|(_, id)| id.fingerprint())
    }

    /// nginx's plain HTTP port, if any.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// `ws://127.0.0.1:port` of nginx's plain HTTP port.
    pub fn http_ws_url(&self) -> Option<String> {
        self.http.map(|a| format!("ws://{a}"))
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
            let _ = truenas_agent::fs::remove_file_if_exists(path);
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
    /// `secure`: TLS, or a loopback peer (unless the `insecure_tcp` fault is set).
    Tcp {
        front: Front,
        secure: bool,
    },
}

impl Peer {
    fn front(self) -> Front {
        match self {
            Peer::Unix => Front::Middleware,
            Peer::Tcp { front, .. } => front,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Peer::Unix => "unix",
            Peer::Tcp { front, .. } => match front {
                Front::Middleware => "tcp",
                Front::Nginx { tls: true } => "nginx",
                Front::Nginx { tls: false } | Front::NginxRedirect { .. } => "nginx-http",
            },
        }
    }
}

/// One HTTP request a listener received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRecord {
    /// `unix`, `tcp` (middlewared's TCP listener), `nginx` (HTTPS), `nginx-http`.
    pub listener: &'static str,
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// The answer's status: 101 for a WebSocket upgrade.
    pub status: u16,
    /// For an upgrade: the connection id its calls are recorded with.
    pub conn: Option<u64>,
    /// For a JSON-RPC upgrade: the API version served (e.g. `v26.0.0`).
    pub api: Option<String>,
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

/// The HTTP edge: reads the request head and routes it (`routes.rs`). Plain answers
/// are written here; a WebSocket upgrade is completed and returned.
async fn accept_http<S>(
    mut stream: S,
    peer: Peer,
    sim: &Simulator,
) -> Option<(WebSocketStream<Prefixed<S>>, Proto, HttpRecord)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let read = tokio::time::timeout(HANDSHAKE_TIMEOUT, http::read_request_head(&mut stream));
    let (head, raw) = read.await.ok()??;
    let (flavor, version) = (sim.flavor(), sim.version());
    let answer = routes::route(
        flavor,
        &version,
        peer.front(),
        &head.host,
        &head.path,
        head.upgrade,
    );
    let mut record = HttpRecord {
        listener: peer.label(),
        method: head.method.clone(),
        path: head.path.clone(),
        status: 101,
        conn: None,
        api: None,
    };
    let (proto, api) = match answer {
        Answer::Legacy => (Proto::Legacy, None),
        Answer::JsonRpc { api } => (Proto::JsonRpc, Some(api)),
        Answer::Versions(list) => {
            record.status = 200;
            sim.record_http(record);
            let body = serde_json::to_vec(&list).unwrap_or_default();
            let headers = [("Content-Type", "application/json")];
            let _ = http::write_response(&mut stream, 200, &headers, &body).await;
            return None;
        }
        Answer::Status { code, location } => {
            record.status = code;
            sim.record_http(record);
            let headers: Vec<(&str, &str)> = location
                .as_deref()
                .map(|l| vec![("Location", l), ("Content-Type", "text/html")])
                .unwrap_or_default();
            let body = format!("<html><head><title>{code}</title></head></html>\n");
            let _ = http::write_response(&mut stream, code, &headers, body.as_bytes()).await;
            return None;
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(4 << 20))
        .max_frame_size(Some(4 << 20));
    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::accept_async_with_config(Prefixed::new(raw, stream), Some(config)),
    );
    let ws = handshake.await.ok()?.ok()?;
    record.api = api;
    Some((ws, proto, record))
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
    let Some((ws, proto, mut record)) = accept_http(stream, peer, &sim).await else {
        return;
    };
    let conn_id = sim.next_conn();
    record.conn = Some(conn_id);
    sim.record_http(record);
    let mut session = match peer {
        Peer::Unix => Session::unix(conn_id),
        Peer::Tcp { secure, .. } => Session::tcp(conn_id, secure),
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

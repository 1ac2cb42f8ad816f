//! One WebSocket connection to the middleware, after its handshake.
//!
//! Owns: the connection task (reads frames, writes requests, sends keepalive pings),
//! request ids, the id → waiting-caller table, the cap on calls in flight, the
//! per-call deadline, the size limit of outgoing requests, and the fan-out of events to
//! [`Subscription`]s (one server-side subscription per event name, shared by refcount).
//! Does not: open sockets, log in, reconnect or retry (`client.rs`), decode frames
//! (`rpc.rs`).
//! Invariants: ids are unique per connection; every waiting caller gets exactly one
//! outcome — the reply, [`CallFailure::Lost`] when the connection ends after the request
//! may have been written, or [`CallFailure::NotSent`] when it certainly was not (so only
//! those may be resent); a reply for an unknown id is logged and dropped; logs carry
//! method names, ids and durations, never params or results.
//! Limitations: one connection is one middleware session; subscriptions end with it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, warn};

use super::client_calls;
use super::rpc::{self, Event, Incoming, RemoteError, ReplyId, RequestId};
use super::{Method, Protocol};

/// Any byte stream a WebSocket can run over (unix socket, TCP, TLS).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A WebSocket over a boxed stream.
pub(crate) type Ws = WebSocketStream<Box<dyn Io>>;

/// Tunables of one connection.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    /// Calls in flight at once; the middleware runs at most 10 per connection and
    /// queues 10 more (`SoftHardSemaphore(10, 20)`), so stay below 10.
    pub max_in_flight: usize,
    /// Largest request we send. The middleware closes the connection on a message over
    /// 64 KiB once authenticated (8 KiB before), `utils/limits.py`.
    pub max_request_bytes: usize,
    /// Send a WebSocket ping after this long; if nothing at all arrives for another
    /// interval, the connection is declared dead.
    pub keepalive_interval: Duration,
    /// Events buffered per subscription before the slowest reader misses some.
    pub event_buffer: usize,
}

impl Default for ConnSettings {
    fn default() -> Self {
        Self {
            max_in_flight: 8,
            max_request_bytes: 64 * 1024,
            keepalive_interval: Duration::from_secs(30),
            event_buffer: 256,
        }
    }
}

/// Why a call on this connection produced no result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallFailure {
    /// The request was certainly not written (the connection was already gone).
    NotSent(String),
    /// The connection ended after the request may have been written.
    Lost(String),
    /// No reply before the deadline (the call may still run on the middleware).
    TimedOut,
    /// The request is larger than the middleware accepts; not sent.
    TooLarge { bytes: usize, limit: usize },
    /// The middleware answered with an error.
    Remote(RemoteError),
}

/// What a subscription yields besides events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The reader fell behind; this many events were dropped (the rest still come).
    #[error("{missed} events of the subscription were missed (reader too slow)")]
    Lagged { missed: u64 },
    /// The subscription is over (connection lost, or the middleware ended it).
    #[error("subscription ended: {reason}")]
    Ended { reason: String },
}

#[derive(Clone)]
enum SubItem {
    Event(Arc<Event>),
    End(String),
}

enum Outcome {
    Reply(Result<Value, RemoteError>),
    Lost(String),
    NotSent(String),
}

struct Waiter {
    method: Method,
    started: Instant,
    tx: oneshot::Sender<Outcome>,
}

struct SubEntry {
    /// Tells this entry apart from a later one for the same event name.
    entry_id: u64,
    tx: broadcast::Sender<SubItem>,
    /// The server's id for the subscription, once acknowledged.
    server_id: Option<String>,
    refs: usize,
}

#[derive(Default)]
struct State {
    /// `Some(reason)` once the connection task ended.
    closed: Option<String>,
    waiting: HashMap<RequestId, Waiter>,
    /// Ids of the last calls whose callers stopped waiting (timeout, cancellation),
    /// newest last, at most [`ABANDONED_KEPT`]: their late answers are expected.
    abandoned: VecDeque<RequestId>,
    subs: HashMap<String, SubEntry>,
}

/// How many abandoned request ids are remembered to recognise their late answers.
const ABANDONED_KEPT: usize = 64;

struct Outgoing {
    id: Option<RequestId>,
    text: String,
}

struct Shared {
    protocol: Protocol,
    settings: ConnSettings,
    out: mpsc::UnboundedSender<Outgoing>,
    state: Mutex<State>,
    permits: Semaphore,
    next_id: AtomicU64,
    /// Serialises subscribe/unsubscribe bookkeeping with the server round trip.
    sub_lock: tokio::sync::Mutex<()>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` inconsistent in a way
        // that matters more than losing the connection; keep going with its data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_id(&self) -> RequestId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A live connection. Dropping it closes the WebSocket; pending calls then fail.
pub(crate) struct Conn {
    shared: Arc<Shared>,
    _close: DropGuard,
}

impl Conn {
    /// Starts the connection task on a WebSocket whose handshake is done.
    pub(crate) fn start(ws: Ws, protocol: Protocol, settings: ConnSettings) -> Self {
        let (out, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            protocol,
            permits: Semaphore::new(settings.max_in_flight.clamp(1, 9)),
            settings,
            out,
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            sub_lock: tokio::sync::Mutex::new(()),
        });
        let cancel = CancellationToken::new();
        tokio::spawn(run(ws, shared.clone(), rx, cancel.clone()));
        Self {
            shared,
            _close: cancel.drop_guard(),
        }
    }

    /// The protocol spoken.
    pub(crate) fn protocol(&self) -> Protocol {
        self.shared.protocol
    }

    /// `Some(reason)` once the connection is gone.
    pub(crate) fn closed_reason(&self) -> Option<String> {
        self.shared.state().closed.clone()
    }

    /// Sends one call and waits for its reply until `timeout`.
    pub(crate) async fn call(
        &self,
        method: Method,
        params: &[Value],
        timeout: Duration,
    ) -> Result<Value, CallFailure> {
        let deadline = Instant::now() + timeout;
        let shared = &self.shared;
        let _permit = match tokio::time::timeout_at(deadline, shared.permits.acquire()).await {
            Err(_) => return Err(CallFailure::TimedOut),
            Ok(Err(_closed)) => return Err(CallFailure::NotSent(self.gone())),
            Ok(Ok(permit)) => permit,
        };
        let id = shared.next_id();
        let text = rpc::encode_call(shared.protocol, id, method.as_str(), params);
        self.exchange(method, id, text, deadline).await
    }

    /// Subscribes to an event (`core.get_jobs`, `cloudsync.query`, ...).
    pub(crate) async fn subscribe(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Subscription, CallFailure> {
        let _serial = self.shared.sub_lock.lock().await;
        let (rx, entry_id, first) = {
            let mut state = self.shared.state();
            if let Some(reason) = &state.closed {
                return Err(CallFailure::NotSent(reason.clone()));
            }
            let buffer = self.shared.settings.event_buffer.max(1);
            let fresh_id = self.shared.next_id();
            let entry = state
                .subs
                .entry(name.to_owned())
                .or_insert_with(|| SubEntry {
                    entry_id: fresh_id,
                    tx: broadcast::channel(buffer).0,
                    server_id: None,
                    refs: 0,
                });
            entry.refs += 1;
            (entry.tx.subscribe(), entry.entry_id, entry.refs == 1)
        };
        // From here on, dropping `sub` (also on error or cancellation) releases the ref.
        let sub = Subscription {
            shared: self.shared.clone(),
            name: name.to_owned(),
            entry_id,
            rx,
            ended: None,
        };
        if first {
            let server_id = self.subscribe_on_server(name, timeout).await?;
            if let Some(entry) = self.shared.state().subs.get_mut(name) {
                if entry.entry_id == entry_id {
                    entry.server_id = Some(server_id);
                }
            }
        }
        Ok(sub)
    }

    async fn subscribe_on_server(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<String, CallFailure> {
        let deadline = Instant::now() + timeout;
        match self.shared.protocol {
            Protocol::JsonRpc => {
                let call = client_calls::subscribe(name);
                let id = self.shared.next_id();
                let text =
                    rpc::encode_call(Protocol::JsonRpc, id, call.method.as_str(), &call.params);
                let reply = self.exchange(call.method, id, text, deadline).await?;
                Ok(reply
                    .as_str()
                    .map_or_else(|| reply.to_string(), str::to_owned))
            }
            Protocol::Legacy => {
                // Answered by `ready` with our id, or a `result` error with it.
                let id = self.shared.next_id();
                let text = rpc::encode_sub(id, name);
                self.exchange(Method::CoreSubscribe, id, text, deadline)
                    .await?;
                Ok(id.to_string())
            }
        }
    }

    /// Registers `id`, queues `text`, and waits for the outcome until `deadline`.
    async fn exchange(
        &self,
        method: Method,
        id: RequestId,
        text: String,
        deadline: Instant,
    ) -> Result<Value, CallFailure> {
        let shared = &self.shared;
        let limit = shared.settings.max_request_bytes;
        if text.len() > limit {
            return Err(CallFailure::TooLarge {
                bytes: text.len(),
                limit,
            });
        }
        let rx = self.register(method, id).map_err(CallFailure::NotSent)?;
        // Removes the entry if this future is dropped or times out.
        let _forget = Forget { shared, id };
        if shared.out.send(Outgoing { id: Some(id), text }).is_err() {
            return Err(CallFailure::NotSent(self.gone()));
        }
        debug!(method = method.as_str(), id, "call sent");
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => {
                debug!(method = method.as_str(), id, "call timed out");
                Err(CallFailure::TimedOut)
            }
            Ok(Err(_)) => Err(CallFailure::Lost(self.gone())),
            Ok(Ok(Outcome::Reply(Ok(value)))) => Ok(value),
            Ok(Ok(Outcome::Reply(Err(error)))) => Err(CallFailure::Remote(error)),
            Ok(Ok(Outcome::Lost(reason))) => Err(CallFailure::Lost(reason)),
            Ok(Ok(Outcome::NotSent(reason))) => Err(CallFailure::NotSent(reason)),
        }
    }

    /// Adds a waiter for `id`, unless the connection is already gone (then: why).
    fn register(
        &self,
        method: Method,
        id: RequestId,
    ) -> Result<oneshot::Receiver<Outcome>, String> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.shared.state();
        if let Some(reason) = &state.closed {
            return Err(reason.clone());
        }
        let started = Instant::now();
        state.waiting.insert(
            id,
            Waiter {
                method,
                started,
                tx,
            },
        );
        Ok(rx)
    }

    fn gone(&self) -> String {
        self.closed_reason()
            .unwrap_or_else(|| "the connection is closing".to_owned())
    }
}

/// Drops a waiting entry when the caller stops waiting.
struct Forget<'a> {
    shared: &'a Shared,
    id: RequestId,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        if state.waiting.remove(&self.id).is_some() {
            // Not answered yet: the caller gave up; its answer may still come.
            if state.abandoned.len() == ABANDONED_KEPT {
                state.abandoned.pop_front();
            }
            state.abandoned.push_back(self.id);
        }
    }
}

/// Events of one event name on one connection. Ends when the connection does.
pub struct Subscription {
    shared: Arc<Shared>,
    name: String,
    entry_id: u64,
    rx: broadcast::Receiver<SubItem>,
    ended: Option<String>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next event; `Lagged` is not final, `Ended` is (and is repeated).
    pub async fn next(&mut self) -> Result<Arc<Event>, SubscriptionError> {
        if let Some(reason) = &self.ended {
            return Err(SubscriptionError::Ended {
                reason: reason.clone(),
            });
        }
        let reason = match self.rx.recv().await {
            Ok(SubItem::Event(event)) => return Ok(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                return Err(SubscriptionError::Lagged { missed });
            }
            Ok(SubItem::End(reason)) => reason,
            Err(broadcast::error::RecvError::Closed) => "the connection closed".to_owned(),
        };
        self.ended = Some(reason.clone());
        Err(SubscriptionError::Ended { reason })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        let Some(entry) = state
            .subs
            .get_mut(&self.name)
            .filter(|e| e.entry_id == self.entry_id)
        else {
            return;
        };
        entry.refs -= 1;
        if entry.refs > 0 {
            return;
        }
        let server_id = state.subs.remove(&self.name).and_then(|e| e.server_id);
        if let (None, Some(server_id)) = (&state.closed, server_id) {
            let text = match self.shared.protocol {
                // A notification: executed without a reply.
                Protocol::JsonRpc => {
                    let call = client_calls::unsubscribe(&server_id);
                    rpc::encode_notification(call.method.as_str(), &call.params)
                }
                Protocol::Legacy => rpc::encode_unsub(&server_id),
            };
            // If the task is gone, so is the server-side subscription.
            let _ = self.shared.out.send(Outgoing { id: None, text });
        }
    }
}

/// The connection task: returns when the connection is over, after failing every
/// waiting caller and ending every subscription.
async fn run(
    mut ws: Ws,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    cancel: CancellationToken,
) {
    let reason = pump(&mut ws, &shared, &mut rx, &cancel).await;
    debug!(%reason, "middleware connection closed");
    // Requests still queued were never written: their callers may resend them.
    rx.close();
    let mut unsent = HashSet::new();
    while let Ok(out) = rx.try_recv() {
        unsent.extend(out.id);
    }
    fail_everyone(&shared, &reason, &unsent);
    // Best effort: the peer may already be gone.
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}

fn fail_everyone(shared: &Shared, reason: &str, unsent: &HashSet<RequestId>) {
    let mut state = shared.state();
    state.closed = Some(reason.to_owned());
    for (id, waiter) in state.waiting.drain() {
        let outcome = if unsent.contains(&id) {
            Outcome::NotSent(reason.to_owned())
        } else {
            Outcome::Lost(reason.to_owned())
        };
        let _ = waiter.tx.send(outcome);
    }
    for (_, entry) in state.subs.drain() {
        let _ = entry.tx.send(SubItem::End(reason.to_owned()));
    }
    shared.permits.close();
}

/// Moves frames until the connection ends; returns why it ended.
async fn pump(
    ws: &mut Ws,
    shared: &Shared,
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    cancel: &CancellationToken,
) -> String {
    let interval = shared.settings.keepalive_interval;
    let mut keepalive = tokio::time::interval_at(Instant::now() + interval, interval);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return "the client closed the connection".to_owned(),
            frame = ws.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => dispatch(shared, text.as_str()),
                    Some(Ok(Message::Close(close))) => return closed_by_peer(close.as_ref()),
                    Some(Ok(Message::Binary(_))) => warn!("ignoring a binary frame from the middleware"),
                    Some(Ok(_)) => {} // ping/pong: liveness only; tungstenite answers pings
                    Some(Err(error)) => return describe(&error),
                    None => return "the middleware closed the connection".to_owned(),
                }
            }
            out = rx.recv() => {
                let Some(out) = out else { return "the client closed the connection".to_owned() };
                if let Err(reason) = send_bounded(ws, Message::text(out.text), interval).await {
                    return reason;
                }
            }
            _ = keepalive.tick() => {
                if ping_sent.is_some_and(|at| last_heard < at) {
                    return format!("the middleware did not answer a keepalive ping within {interval:?}");
                }
                ping_sent = Some(Instant::now());
                if let Err(reason) = send_bounded(ws, Message::Ping(Vec::new().into()), interval).await {
                    return reason;
                }
            }
        }
    }
}

/// Writes one frame. A peer that stops reading would block the write (and with it this
/// task's keepalive) once the socket buffer is full, so the write is bounded too.
async fn send_bounded(ws: &mut Ws, message: Message, limit: Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(describe(&error)),
        Err(_) => Err(format!(
            "the middleware did not take a message within {limit:?} (it stopped reading)"
        )),
    }
}

fn closed_by_peer(close: Option<&tungstenite::protocol::CloseFrame>) -> String {
    match close {
        Some(frame) => format!(
            "the middleware closed the connection (code {}: {})",
            u16::from(frame.code),
            frame.reason
        ),
        None => "the middleware closed the connection".to_owned(),
    }
}

/// A transport error in words, without frame contents.
pub(crate) fn describe(error: &tungstenite::Error) -> String {
    use tungstenite::Error as E;
    use tungstenite::error::CapacityError;
    match error {
        E::Capacity(CapacityError::MessageTooLong { size, max_size }) => format!(
            "a message from the middleware of {size} bytes exceeds the limit of {max_size} bytes"
        ),
        E::ConnectionClosed | E::AlreadyClosed => "the connection is closed".to_owned(),
        E::Io(io) => format!("I/O error: {io}"),
        E::Protocol(p) => format!("WebSocket protocol error: {p}"),
        other => format!("WebSocket error: {other}"),
    }
}

/// Routes one decoded frame.
fn dispatch(shared: &Shared, text: &str) {
    let incoming = match rpc::decode(shared.protocol, text) {
        Ok(incoming) => incoming,
        Err(error) => {
            warn!(%error, "dropping an undecodable message from the middleware");
            return;
        }
    };
    match incoming {
        Incoming::Reply { id, outcome } => resolve(shared, &id, Outcome::Reply(outcome)),
        Incoming::Ready { ids } => {
            for id in ids {
                resolve(shared, &id, Outcome::Reply(Ok(Value::Null)));
            }
        }
        Incoming::Event(event) => {
            let state = shared.state();
            if let Some(entry) = state.subs.get(&event.collection) {
                // No receiver left is fine: the entry is about to be removed.
                let _ = entry.tx.send(SubItem::Event(Arc::new(event)));
            }
        }
        Incoming::SubscriptionEnded { collection, error } => {
            let reason = error
                .and_then(|e| e.reason)
                .unwrap_or_else(|| "the middleware ended it".to_owned());
            // Removing the entry means no unsubscribe is sent for it, and the next
            // `subscribe` for the name starts a new server-side subscription.
            if let Some(entry) = shared.state().subs.remove(&collection) {
                let _ = entry.tx.send(SubItem::End(reason));
            }
        }
        Incoming::Connected | Incoming::HandshakeFailed | Incoming::Pong => {}
        Incoming::Ignored { what } => debug!(%what, "ignoring a middleware message"),
    }
}

fn resolve(shared: &Shared, id: &ReplyId, outcome: Outcome) {
    let waiter = match id {
        ReplyId::Ours(id) => shared.state().waiting.remove(id),
        ReplyId::Foreign(_) => None,
    };
    if let Some(waiter) = waiter {
        let ok = matches!(outcome, Outcome::Reply(Ok(_)));
        let elapsed_ms = u64::try_from(waiter.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        debug!(
            method = waiter.method.as_str(),
            ?id,
            elapsed_ms,
            ok,
            "call answered"
        );
        // The caller may have given up meanwhile; then the answer is dropped.
        let _ = waiter.tx.send(outcome);
    } else if let ReplyId::Ours(id) = id
        && let Some(at) = {
            let mut state = shared.state();
            let at = state.abandoned.iter().position(|a| a == id);
            at.and_then(|at| state.abandoned.remove(at))
        }
    {
        debug!(id = ?at, "dropping the late answer to a call its caller stopped waiting for");
    } else {
        let error = match &outcome {
            Outcome::Reply(Err(e)) => e.code.or(e.errno),
            _ => None,
        };
        warn!(
            ?id,
            ?error,
            "dropping a middleware reply for an unknown or abandoned request id"
        );
    }
}

#[cfg(test)]
mod tests;

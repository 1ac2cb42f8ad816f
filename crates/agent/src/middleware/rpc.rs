//! PURE framing of both middleware wire protocols: JSON-RPC 2.0 (`/api/current`, 25.04+)
//! and the legacy DDP-style protocol (`/websocket`, 24.10).
//!
//! Owns: encoding requests, the legacy `connect`/`sub`/`unsub` messages and JSON-RPC
//! notifications; decoding every server message into [`Incoming`]; mapping a middleware
//! error object to [`CallError`] ([`RemoteError::to_call_error`]).
//! Does not: do I/O, keep ids, or time anything (`conn.rs` does).
//! Invariants: total — any input decodes to a value or a [`FrameError`], never a panic;
//! params are always a positional array; ids we send are integers (legacy: their decimal
//! string), so a reply whose id is not one of ours is recognisable
//! ([`ReplyId::Foreign`]). Tracebacks (`trace`, which can hold frame locals) and
//! `py_exception` are dropped while decoding. `Debug` of decoded values never shows
//! results or event fields.
//! Limitations: batch (array) messages are not supported by the middleware either.

use std::fmt;

use serde_json::{Map, Value, json};

use super::error::{CallError, ValidationItem};
use super::{Method, Protocol, type_name};

/// The id of a request on one connection.
pub type RequestId = u64;

// errno values the middleware uses (Linux errno + `truenas_api_client/exc.py`).
const ENOENT: i64 = 2;
const EACCES: i64 = 13;
const EBUSY: i64 = 16;
const EINVAL: i64 = 22;
const ETOOMANYREFS: i64 = 109;
const ENOMETHOD: i64 = 201;
const ENOTAUTHENTICATED: i64 = 207;

// JSON-RPC error codes (`truenas_api_client/jsonrpc.py`).
const INVALID_JSON: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;
const TOO_MANY_CONCURRENT_CALLS: i64 = -32000;

/// Encodes a call. JSON-RPC ids are numbers; legacy ids are their decimal string.
pub fn encode_call(protocol: Protocol, id: RequestId, method: &str, params: &[Value]) -> String {
    match protocol {
        Protocol::JsonRpc => {
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        }
        Protocol::Legacy => {
            json!({"id": id.to_string(), "msg": "method", "method": method, "params": params})
        }
    }
    .to_string()
}

/// Encodes a JSON-RPC notification: a call without id, executed without a reply
/// (`api/base/server/ws_handler/rpc.py` `process_message`).
pub fn encode_notification(method: &str, params: &[Value]) -> String {
    json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

/// The legacy handshake; it must be the first message on `/websocket`.
pub fn encode_connect() -> String {
    json!({"msg": "connect", "version": "1", "support": ["1"]}).to_string()
}

/// Legacy subscription to an event; answered by `ready` (or a `result` error) with `id`.
pub fn encode_sub(id: RequestId, name: &str) -> String {
    json!({"msg": "sub", "id": id.to_string(), "name": name}).to_string()
}

/// Legacy end of a subscription (no answer).
pub fn encode_unsub(id: &str) -> String {
    json!({"msg": "unsub", "id": id}).to_string()
}

/// The id a reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyId {
    /// One of our integer ids.
    Ours(RequestId),
    /// Something we never send (null, a non-numeric string, ...), shown shortened.
    Foreign(String),
}

/// What kind of change an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Added,
    Changed,
    Removed,
}

/// One event from a subscription (`collection_update` / legacy `added|changed|removed`).
#[derive(Clone, PartialEq)]
pub struct Event {
    /// The event name subscribed to, e.g. `core.get_jobs`.
    pub collection: String,
    pub kind: EventKind,
    /// The item's id (a job id, a task id, ...), when the event has one.
    pub id: Option<Value>,
    /// For added/changed: the item (for jobs, the whole job) or the changed fields.
    pub fields: Option<Value>,
}

impl fmt::Debug for Event {
    // Fields can hold secrets (task `credentials`, encryption passwords): never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("collection", &self.collection)
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("fields", &self.fields.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A middleware error object, from either protocol, without traceback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteError {
    /// JSON-RPC `error.code`; `None` on the legacy protocol.
    pub code: Option<i64>,
    /// JSON-RPC `error.message` ("Method call error", "Invalid params", ...).
    pub message: Option<String>,
    /// errno (`data.error` / legacy `error`).
    pub errno: Option<i64>,
    /// Symbolic errno name (`EINVAL`, `ENOTAUTHENTICATED`, ...).
    pub errname: Option<String>,
    /// Human text.
    pub reason: Option<String>,
    /// Legacy `type` (`VALIDATION` for validation errors).
    pub kind: Option<String>,
    /// Validation triples decoded from `extra` (empty when `extra` is not a list of them).
    pub items: Vec<ValidationItem>,
}

/// A decoded server message.
#[derive(Clone, PartialEq)]
pub enum Incoming {
    /// The answer to a call (or, legacy, an error answer to a `sub`).
    Reply {
        id: ReplyId,
        outcome: Result<Value, RemoteError>,
    },
    /// An event of a subscription.
    Event(Event),
    /// The server ended a subscription (`notify_unsubscribed` / legacy `nosub`).
    SubscriptionEnded {
        collection: String,
        error: Option<RemoteError>,
    },
    /// Legacy: subscriptions acknowledged.
    Ready { ids: Vec<ReplyId> },
    /// Legacy: handshake accepted.
    Connected,
    /// Legacy: handshake refused (`{"msg":"failed"}`).
    HandshakeFailed,
    /// Legacy: answer to a `ping` message.
    Pong,
    /// A well-formed message this client has no use for (its `msg`/`method` name).
    Ignored { what: String },
}

impl fmt::Debug for Incoming {
    // Results and event fields can hold secrets: show only their shape.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incoming::Reply { id, outcome } => f
                .debug_struct("Reply")
                .field("id", id)
                .field(
                    "outcome",
                    &outcome.as_ref().map(|v| format!("[{}]", type_name(v))),
                )
                .finish(),
            Incoming::Event(event) => event.fmt(f),
            Incoming::SubscriptionEnded { collection, error } => f
                .debug_struct("SubscriptionEnded")
                .field("collection", collection)
                .field("error", error)
                .finish(),
            Incoming::Ready { ids } => f.debug_struct("Ready").field("ids", ids).finish(),
            Incoming::Connected => f.write_str("Connected"),
            Incoming::HandshakeFailed => f.write_str("HandshakeFailed"),
            Incoming::Pong => f.write_str("Pong"),
            Incoming::Ignored { what } => f.debug_struct("Ignored").field("what", what).finish(),
        }
    }
}

/// A server message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON at all.
    #[error("message is not valid JSON (at line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    /// JSON, but not an object.
    #[error("message is {0}, expected an object")]
    NotAnObject(&'static str),
    /// A member the protocol requires is absent or has the wrong type.
    #[error("message member `{member}` is missing or not {expected}")]
    Member {
        member: &'static str,
        expected: &'static str,
    },
}

/// Decodes one text frame received on a connection speaking `protocol`.
pub fn decode(protocol: Protocol, text: &str) -> Result<Incoming, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|e| FrameError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let Value::Object(map) = value else {
        return Err(FrameError::NotAnObject(type_name(&value)));
    };
    match protocol {
        Protocol::JsonRpc => decode_jsonrpc(map),
        Protocol::Legacy => decode_legacy(map),
    }
}

fn decode_jsonrpc(mut map: Map<String, Value>) -> Result<Incoming, FrameError> {
    if let Some(method) = map.remove("method") {
        let method = method.as_str().ok_or(FrameError::Member {
            member: "method",
            expected: "a string",
        })?;
        let params = match map.remove("params") {
            Some(Value::Object(params)) => params,
            _ => Map::new(),
        };
        return match method {
            "collection_update" => decode_event(params).map(Incoming::Event),
            "notify_unsubscribed" => Ok(subscription_ended(&params, Protocol::JsonRpc)),
            other => Ok(Incoming::Ignored {
                what: shorten(other),
            }),
        };
    }
    let id = reply_id(map.get("id").ok_or(FrameError::Member {
        member: "id",
        expected: "present in a reply",
    })?);
    let outcome = match (map.remove("error"), map.remove("result")) {
        (Some(error), _) => Err(remote_error(&error, Protocol::JsonRpc)),
        (None, Some(result)) => Ok(result),
        (None, None) => {
            return Err(FrameError::Member {
                member: "result",
                expected: "present in a reply without error",
            });
        }
    };
    Ok(Incoming::Reply { id, outcome })
}

fn decode_legacy(mut map: Map<String, Value>) -> Result<Incoming, FrameError> {
    let msg = map
        .get("msg")
        .and_then(Value::as_str)
        .ok_or(FrameError::Member {
            member: "msg",
            expected: "a string",
        })?
        .to_owned();
    match msg.as_str() {
        "result" => {
            let id = reply_id(map.get("id").unwrap_or(&Value::Null));
            let outcome = match map.remove("error") {
                Some(error) if !error.is_null() => Err(remote_error(&error, Protocol::Legacy)),
                _ => Ok(map.remove("result").unwrap_or(Value::Null)),
            };
            Ok(Incoming::Reply { id, outcome })
        }
        "added" | "changed" | "removed" => {
            map.insert("msg".to_owned(), Value::String(msg));
            decode_event(map).map(Incoming::Event)
        }
        "nosub" => Ok(subscription_ended(&map, Protocol::Legacy)),
        "ready" => {
            let ids = map
                .get("subs")
                .and_then(Value::as_array)
                .map(|subs| subs.iter().map(reply_id).collect())
                .unwrap_or_default();
            Ok(Incoming::Ready { ids })
        }
        "connected" => Ok(Incoming::Connected),
        "failed" => Ok(Incoming::HandshakeFailed),
        "pong" => Ok(Incoming::Pong),
        other => Ok(Incoming::Ignored {
            what: shorten(other),
        }),
    }
}

/// Both protocols carry the same event object: `{msg, collection, id?, fields?}`.
fn decode_event(mut event: Map<String, Value>) -> Result<Event, FrameError> {
    let kind = match event.get("msg").and_then(Value::as_str) {
        Some("added") => EventKind::Added,
        Some("changed") => EventKind::Changed,
        Some("removed") => EventKind::Removed,
        _ => {
            return Err(FrameError::Member {
                member: "msg",
                expected: "added, changed or removed",
            });
        }
    };
    let collection = event
        .get("collection")
        .and_then(Value::as_str)
        .ok_or(FrameError::Member {
            member: "collection",
            expected: "a string",
        })?
        .to_owned();
    Ok(Event {
        collection,
        kind,
        id: event.remove("id"),
        fields: event.remove("fields").filter(|f| !f.is_null()),
    })
}

fn subscription_ended(params: &Map<String, Value>, protocol: Protocol) -> Incoming {
    Incoming::SubscriptionEnded {
        collection: params
            .get("collection")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        error: params
            .get("error")
            .filter(|e| !e.is_null())
            .map(|e| remote_error(e, protocol)),
    }
}

fn reply_id(id: &Value) -> ReplyId {
    let ours = match id {
        Value::Number(n) => n.as_u64(),
        // Legacy ids are our decimal strings; refuse `+1`, ` 1` and the like.
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    };
    ours.map_or_else(|| ReplyId::Foreign(shorten(&id.to_string())), ReplyId::Ours)
}

/// Error object of either protocol. JSON-RPC: `{code, message, data: {error, errname,
/// reason, extra, trace}}`; legacy: `{error, errname, type, reason, extra, trace}`.
fn remote_error(error: &Value, protocol: Protocol) -> RemoteError {
    let empty = Map::new();
    let outer = error.as_object().unwrap_or(&empty);
    let (code, message, inner) = match protocol {
        Protocol::JsonRpc => (
            outer.get("code").and_then(Value::as_i64),
            outer
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned),
            outer
                .get("data")
                .and_then(Value::as_object)
                .unwrap_or(&empty),
        ),
        Protocol::Legacy => (None, None, outer),
    };
    let text = |key: &str| inner.get(key).and_then(Value::as_str).map(str::to_owned);
    RemoteError {
        code,
        message,
        errno: inner.get("error").and_then(Value::as_i64),
        errname: text("errname"),
        reason: text("reason"),
        kind: text("type"),
        items: inner.get("extra").map(triples).unwrap_or_default(),
    }
}

/// `[[attribute path, message, errno], ...]`; the path is null for `InstanceNotFound`.
fn triples(extra: &Value) -> Vec<ValidationItem> {
    let Some(list) = extra.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|item| {
            let item = item.as_array()?;
            let path = match item.first()? {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                _ => return None,
            };
            Some(ValidationItem {
                path,
                message: item.get(1)?.as_str()?.to_owned(),
                errno: item.get(2).and_then(Value::as_i64).unwrap_or(EINVAL),
            })
        })
        .collect()
}

impl RemoteError {
    /// True when this is a validation error of `protocol` (JSON-RPC -32602; legacy
    /// `type: VALIDATION`, whose errno is 11 `EAGAIN` for several errors and the item's
    /// own errno for one — `main.py` `call_method` [24.10]).
    fn is_validation(&self, protocol: Protocol) -> bool {
        match protocol {
            Protocol::JsonRpc => self.code == Some(INVALID_PARAMS),
            Protocol::Legacy => self.kind.as_deref() == Some("VALIDATION"),
        }
    }

    fn reason_text(&self) -> String {
        self.reason
            .clone()
            .or_else(|| self.message.clone())
            .unwrap_or_default()
    }

    /// Maps the error of a call to `method` into the agent's [`CallError`]
    /// (REFERENCE §1.2, §1.4): validation (with triples), not found (ENOENT, or the
    /// `MatchNotFound` of a `get: true` query), not authenticated (207), not authorised
    /// (13), rate limited (-32000, legacy 109 concurrency limit, EBUSY "Rate Limit
    /// Exceeded"), method not found (-32601, 201), everything else `Failed`.
    pub fn to_call_error(&self, method: Method, protocol: Protocol) -> CallError {
        if self.is_validation(protocol) {
            return self.validation_error(method);
        }
        match (self.code, self.errno) {
            (Some(METHOD_NOT_FOUND), _) | (_, Some(ENOMETHOD)) => {
                CallError::MethodNotFound { method }
            }
            (Some(TOO_MANY_CONCURRENT_CALLS), _) | (_, Some(ETOOMANYREFS)) => {
                CallError::RateLimited { method }
            }
            (Some(code @ (INVALID_JSON | INVALID_REQUEST | INTERNAL_ERROR)), _) => {
                CallError::Protocol {
                    method,
                    detail: format!("middleware answered error {code}: {}", self.reason_text()),
                }
            }
            (_, Some(ENOTAUTHENTICATED)) => CallError::NotAuthenticated { method },
            (_, Some(EACCES)) => CallError::NotAuthorized {
                method,
                reason: self.reason_text(),
            },
            (_, Some(EBUSY))
                if self
                    .reason_text()
                    .to_ascii_lowercase()
                    .contains("rate limit") =>
            {
                CallError::RateLimited { method }
            }
            (_, Some(ENOENT)) => CallError::NotFound {
                method,
                reason: self.reason_text(),
            },
            // A `get: true` query with no match raises `MatchNotFound()` (an IndexError),
            // which reaches the client as EINVAL with that repr as the reason.
            (_, _) if self.reason_text().starts_with("MatchNotFound") => CallError::NotFound {
                method,
                reason: "no matching object".to_owned(),
            },
            (_, errno) => CallError::Failed {
                method,
                errno,
                errname: self
                    .errname
                    .clone()
                    .unwrap_or_else(|| "EUNKNOWN".to_owned()),
                reason: self.reason_text(),
            },
        }
    }

    fn validation_error(&self, method: Method) -> CallError {
        let mut items = self.items.clone();
        if items.is_empty() {
            items.push(ValidationItem {
                path: String::new(),
                message: self.reason_text(),
                errno: self.errno.unwrap_or(EINVAL),
            });
        }
        // `InstanceNotFound` (get_instance/update/delete of a missing id) is a
        // ValidationError with errno ENOENT (`service_exception.py`).
        if items.iter().all(|i| i.errno == ENOENT) {
            let reason = items
                .iter()
                .map(|i| i.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            return CallError::NotFound { method, reason };
        }
        CallError::Validation { method, items }
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;

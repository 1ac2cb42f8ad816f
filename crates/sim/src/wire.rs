//! The two wire protocols' frames, as pure functions: parse what a client sends, build
//! what the middleware answers.
//!
//! Owns: JSON-RPC 2.0 request validation (`ws_handler/rpc.py` `validate_message`) and
//! reply/error/notification frames; the legacy DDP-style messages (`connect`, `method`,
//! `ping`, `sub`, `unsub`) and their `result`/error/event frames; the mapping of
//! [`RpcError`] to each protocol's error shape (REFERENCE §1.2, §1.4, §5.2).
//! Does not: hold connection state or call the core (that is `server.rs`).
//! Invariants: error frames carry `trace: null` and never echo request params.
//! Limitations: ejson is passed through as plain JSON (`{"$date": …}` objects are built by
//! the core); `py_exception` is never produced.

use serde_json::{Value, json};

use super::core::{Event, RpcError, errno};
use super::schema::Issue;

/// JSON-RPC error codes (`truenas_api_client/jsonrpc.py`).
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const TOO_MANY_CONCURRENT_CALLS: i64 = -32000;
    pub const CALL_ERROR: i64 = -32001;
}

/// A valid JSON-RPC request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `None` = a notification (no `id` key): executed, never answered.
    pub id: Option<Value>,
    pub method: String,
    pub params: Vec<Value>,
}

/// Parses one JSON-RPC text frame. `Err(Some(frame))` = answer with this error frame;
/// `Err(None)` = drop silently (an invalid notification).
pub fn parse_jsonrpc(text: &str) -> Result<Request, Option<Value>> {
    let message: Value = serde_json::from_str(text).map_err(|e| {
        Some(error_frame(
            &Value::Null,
            code::PARSE_ERROR,
            &e.to_string(),
            None,
        ))
    })?;
    let Value::Object(map) = message else {
        let why = if message.is_array() {
            "Batch messages are not supported at this time"
        } else {
            "Message must be a JSON object"
        };
        return Err(Some(error_frame(
            &Value::Null,
            code::PARSE_ERROR,
            why,
            None,
        )));
    };
    let id = map.get("id").cloned();
    let invalid = |why: &str| {
        id.as_ref()
            .map(|id| error_frame(id, code::INVALID_REQUEST, why, None))
    };
    match map.get("jsonrpc") {
        None => return Err(invalid("Missing 'jsonrpc' member")),
        Some(v) if v != "2.0" => {
            return Err(invalid(
                "'jsonrpc' member must be of type string and must be exactly '2.0'",
            ));
        }
        Some(_) => {}
    }
    if let Some(id) = &id {
        let ok = id.is_null() || id.is_string() || id.is_i64() || id.is_u64();
        if !ok {
            return Err(invalid(
                "'id' member must be of type null, string or number",
            ));
        }
    }
    let method = match map.get("method") {
        None => return Err(invalid("Missing 'method' member")),
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return Err(invalid("'method' member must be of type string")),
    };
    let params = match map.get("params") {
        None => Vec::new(),
        Some(Value::Array(p)) => p.clone(),
        Some(_) => return Err(invalid("'params' member must be of type array")),
    };
    Ok(Request { id, method, params })
}

/// `{"jsonrpc":"2.0","id":…,"result":…}`.
pub fn result_frame(id: &Value, result: Value) -> Value {
    object(vec![
        ("jsonrpc", "2.0".into()),
        ("result", result),
        ("id", id.clone()),
    ])
}

/// An object from ordered pairs (moves the values in).
fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// `{"jsonrpc":"2.0","id":…,"error":{code,message,data?}}`.
pub fn error_frame(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    json!({"jsonrpc": "2.0", "error": error, "id": id})
}

/// The JSON-RPC error frame for a failed call.
pub fn jsonrpc_error(id: &Value, err: &RpcError) -> Value {
    match err {
        RpcError::Invalid(issues) => error_frame(
            id,
            code::INVALID_PARAMS,
            "Invalid params",
            Some(truenas_data(
                errno::EINVAL,
                validation_reason(issues),
                Value::from(triples(issues)),
            )),
        ),
        RpcError::NotFound(message) => error_frame(
            id,
            code::INVALID_PARAMS,
            "Invalid params",
            Some(truenas_data(
                errno::EINVAL,
                not_found_reason(message),
                not_found_extra(message),
            )),
        ),
        RpcError::Call {
            errno,
            message,
            extra,
        } => error_frame(
            id,
            code::CALL_ERROR,
            "Method call error",
            Some(truenas_data(
                *errno,
                call_reason(*errno, message),
                extra.clone().unwrap_or(Value::Null),
            )),
        ),
        RpcError::NotAuthenticated => error_frame(
            id,
            code::CALL_ERROR,
            "Method call error",
            Some(truenas_data(
                errno::ENOTAUTHENTICATED,
                call_reason(errno::ENOTAUTHENTICATED, "Not authenticated"),
                Value::Null,
            )),
        ),
        RpcError::NoMethod(_) => {
            error_frame(id, code::METHOD_NOT_FOUND, "Method does not exist", None)
        }
        RpcError::Other(reason) => error_frame(
            id,
            code::CALL_ERROR,
            "Method call error",
            Some(truenas_data(errno::EINVAL, reason.clone(), Value::Null)),
        ),
    }
}

/// A `collection_update` notification.
pub fn notification(event: &Event) -> Value {
    json!({"jsonrpc": "2.0", "method": "collection_update", "params": event_body(event)})
}

/// The legacy event message (`{"msg": "added"|"changed"|"removed", collection, id, fields?}`).
pub fn legacy_event(event: &Event) -> Value {
    event_body(event)
}

fn event_body(event: &Event) -> Value {
    let mut body = json!({"msg": event.kind.as_str(), "collection": event.collection});
    // Events sent without an id (`service.query` CHANGED: `send_event(…, fields=svc)`)
    // carry no `id` key at all.
    if !event.id.is_null() {
        body["id"] = event.id.clone();
    }
    if let Some(fields) = &event.fields {
        body["fields"] = fields.clone();
    }
    body
}

fn truenas_data(errno: i64, reason: String, extra: Value) -> Value {
    object(vec![
        ("error", errno.into()),
        ("errname", errno::name(errno).into()),
        ("reason", reason.into()),
        ("trace", Value::Null),
        ("extra", extra),
    ])
}

fn triples(issues: &[Issue]) -> Vec<Value> {
    issues
        .iter()
        .map(|i| json!([i.path, i.message, i.errno]))
        .collect()
}

/// `str(ValidationErrors)`: one `[ERRNAME] path: message` line per error.
pub fn validation_reason(issues: &[Issue]) -> String {
    use std::fmt::Write as _;
    issues.iter().fold(String::new(), |mut out, i| {
        let _ = writeln!(out, "[{}] {}: {}", errno::name(i.errno), i.path, i.message);
        out
    })
}

fn not_found_reason(message: &str) -> String {
    format!("[ENOENT] None: {message}")
}

fn not_found_extra(message: &str) -> Value {
    json!([[null, message, errno::ENOENT]])
}

/// `str(CallError)`: `[ERRNAME] message`.
pub fn call_reason(errno: i64, message: &str) -> String {
    format!("[{}] {message}", errno::name(errno))
}

// ---- legacy ----------------------------------------------------------------------

/// A message of the legacy protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Legacy {
    Connect {
        version_ok: bool,
    },
    Method {
        id: Value,
        method: Option<String>,
        params: Result<Vec<Value>, ()>,
    },
    Ping {
        id: Option<Value>,
    },
    Sub {
        id: Value,
        name: String,
    },
    Unsub {
        id: Value,
    },
    /// Not understood (ignored, as the server ignores unknown `msg` values).
    Other,
}

/// Parses a legacy text frame; `None` when it is not a JSON object.
pub fn parse_legacy(text: &str) -> Option<Legacy> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let id = map.get("id").cloned();
    Some(match map.get("msg").and_then(Value::as_str) {
        Some("connect") => Legacy::Connect {
            version_ok: map.get("version").and_then(Value::as_str) == Some("1"),
        },
        Some("method") => Legacy::Method {
            id: id.unwrap_or(Value::Null),
            method: map.get("method").and_then(Value::as_str).map(str::to_owned),
            params: match map.get("params") {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(p)) => Ok(p.clone()),
                Some(_) => Err(()),
            },
        },
        Some("ping") => Legacy::Ping { id },
        Some("sub") => Legacy::Sub {
            id: id.unwrap_or(Value::Null),
            name: map
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        Some("unsub") => Legacy::Unsub {
            id: id.unwrap_or(Value::Null),
        },
        _ => Legacy::Other,
    })
}

/// `{"id":…,"msg":"result","result":…}`.
pub fn legacy_result(id: &Value, result: Value) -> Value {
    object(vec![
        ("id", id.clone()),
        ("msg", "result".into()),
        ("result", result),
    ])
}

/// `{"id":…,"msg":"result","error":{error, errname, type, reason, trace, extra}}`.
pub fn legacy_error(id: &Value, err: &RpcError) -> Value {
    let (errno, kind, reason, extra) = match err {
        RpcError::Invalid(issues) => (
            errno::EAGAIN,
            Value::from("VALIDATION"),
            validation_reason(issues),
            Value::from(triples(issues)),
        ),
        RpcError::NotFound(message) => (
            errno::ENOENT,
            Value::from("VALIDATION"),
            not_found_reason(message),
            not_found_extra(message),
        ),
        RpcError::Call {
            errno,
            message,
            extra,
        } => (
            *errno,
            Value::Null,
            call_reason(*errno, message),
            extra.clone().unwrap_or(Value::Null),
        ),
        // middleware [24.10]: main.py sends this one without the `[ERRNAME]` prefix.
        RpcError::NotAuthenticated => (
            errno::ENOTAUTHENTICATED,
            Value::Null,
            "Not authenticated".to_owned(),
            Value::Null,
        ),
        RpcError::NoMethod(name) => {
            let (errno, message) = method_lookup_error(name);
            (
                errno,
                Value::Null,
                call_reason(errno, &message),
                Value::Null,
            )
        }
        RpcError::Other(reason) => (errno::EINVAL, Value::Null, reason.clone(), Value::Null),
    };
    legacy_error_frame(id, errno, kind, reason, extra)
}

/// A legacy error frame from parts (also used for the server's own protocol errors).
pub fn legacy_error_frame(
    id: &Value,
    errno: i64,
    kind: Value,
    reason: String,
    extra: Value,
) -> Value {
    let error = object(vec![
        ("error", errno.into()),
        ("errname", errno::name(errno).into()),
        ("type", kind),
        ("reason", reason.into()),
        ("trace", Value::Null),
        ("extra", extra),
    ]);
    object(vec![
        ("id", id.clone()),
        ("msg", "result".into()),
        ("error", error),
    ])
}

/// `_method_lookup` errors (`utils/service/call.py`).
fn method_lookup_error(name: &str) -> (i64, String) {
    let Some((service, method)) = name.rsplit_once('.') else {
        return (errno::EBADMSG, "Invalid method name".to_owned());
    };
    if KNOWN_SERVICES.contains(&service) {
        (
            errno::ENOMETHOD,
            format!("Method {method:?} not found in {service:?}").replace('"', "'"),
        )
    } else {
        (
            errno::ENOMETHOD,
            format!("Service {service:?} not found").replace('"', "'"),
        )
    }
}

/// Service namespaces of the methods the simulator knows.
const KNOWN_SERVICES: &[&str] = &[
    "alert",
    "auth",
    "cloudsync",
    "cloudsync.credentials",
    "core",
    "initshutdownscript",
    "pool",
    "pool.dataset",
    "pool.snapshot",
    "pool.snapshottask",
    "service",
    "snmp",
    "system",
    "zfs.resource",
    "zfs.snapshot",
];

#[cfg(test)]
#[allow(clippy::too_many_lines, clippy::needless_pass_by_value)]
mod tests {
    use super::*;
    use crate::core::EventKind;

    #[test]
    fn jsonrpc_envelopes() {
        let ok = parse_jsonrpc(r#"{"jsonrpc":"2.0","id":1,"method":"core.ping"}"#).unwrap();
        assert_eq!(
            ok,
            Request {
                id: Some(json!(1)),
                method: "core.ping".into(),
                params: vec![]
            }
        );
        let note = parse_jsonrpc(r#"{"jsonrpc":"2.0","method":"core.ping","params":[]}"#).unwrap();
        assert_eq!(note.id, None);
        let bad = |t: &str| parse_jsonrpc(t).unwrap_err();
        assert_eq!(bad("{nope").unwrap()["error"]["code"], code::PARSE_ERROR);
        assert_eq!(bad("[1]").unwrap()["error"]["code"], code::PARSE_ERROR);
        assert_eq!(
            bad(r#"{"jsonrpc":"1.0","id":3,"method":"x"}"#).unwrap()["error"]["code"],
            code::INVALID_REQUEST
        );
        assert_eq!(
            bad(r#"{"jsonrpc":"2.0","id":3,"method":"x","params":{}}"#).unwrap()["error"]["code"],
            code::INVALID_REQUEST
        );
        assert_eq!(
            bad(r#"{"jsonrpc":"2.0","id":true,"method":"x"}"#).unwrap()["error"]["code"],
            code::INVALID_REQUEST
        );
        assert_eq!(bad(r#"{"jsonrpc":"2.0","method":""}"#), None);
    }

    #[test]
    fn error_shapes_per_protocol() {
        let issues = vec![Issue::new(
            "cloud_sync_create.bwlimit.0.time",
            "Invalid time order: 08:00, 00:00",
        )];
        let j = jsonrpc_error(&json!(7), &RpcError::Invalid(issues.clone()));
        assert_eq!(j["error"]["code"], -32602);
        assert_eq!(j["error"]["data"]["error"], 22);
        assert_eq!(j["error"]["data"]["errname"], "EINVAL");
        assert_eq!(
            j["error"]["data"]["reason"],
            "[EINVAL] cloud_sync_create.bwlimit.0.time: Invalid time order: 08:00, 00:00\n"
        );
        assert_eq!(
            j["error"]["data"]["extra"],
            json!([[
                "cloud_sync_create.bwlimit.0.time",
                "Invalid time order: 08:00, 00:00",
                22
            ]])
        );
        assert_eq!(j["error"]["data"]["trace"], Value::Null);
        let l = legacy_error(&json!("a"), &RpcError::Invalid(issues));
        assert_eq!(l["msg"], "result");
        assert_eq!(l["error"]["error"], 11);
        assert_eq!(l["error"]["errname"], "EAGAIN");
        assert_eq!(l["error"]["type"], "VALIDATION");

        let nf = jsonrpc_error(
            &json!(1),
            &RpcError::NotFound("CloudSync 9 does not exist".into()),
        );
        assert_eq!(nf["error"]["code"], -32602);
        assert_eq!(
            nf["error"]["data"]["extra"],
            json!([[null, "CloudSync 9 does not exist", 2]])
        );
        let lnf = legacy_error(
            &json!(1),
            &RpcError::NotFound("CloudSync 9 does not exist".into()),
        );
        assert_eq!(lnf["error"]["error"], 2);
        assert_eq!(
            lnf["error"]["reason"],
            "[ENOENT] None: CloudSync 9 does not exist"
        );

        let na = jsonrpc_error(&json!(1), &RpcError::NotAuthenticated);
        assert_eq!(na["error"]["code"], -32001);
        assert_eq!(na["error"]["data"]["error"], 207);
        assert_eq!(na["error"]["data"]["errname"], "ENOTAUTHENTICATED");
        assert_eq!(
            legacy_error(&json!(1), &RpcError::NotAuthenticated)["error"]["reason"],
            "Not authenticated"
        );

        let nm = jsonrpc_error(&json!(1), &RpcError::NoMethod("system.reboot".into()));
        assert_eq!(
            nm["error"],
            json!({"code": -32601, "message": "Method does not exist"})
        );
        let lnm = legacy_error(&json!(1), &RpcError::NoMethod("system.reboot".into()));
        assert_eq!(lnm["error"]["error"], 201);
        assert_eq!(
            lnm["error"]["reason"],
            "[ENOMETHOD] Method 'reboot' not found in 'system'"
        );
        let lns = legacy_error(&json!(1), &RpcError::NoMethod("vm.query".into()));
        assert_eq!(lns["error"]["reason"], "[ENOMETHOD] Service 'vm' not found");

        let call = jsonrpc_error(&json!(1), &RpcError::call("Task is not enabled"));
        assert_eq!(call["error"]["code"], -32001);
        assert_eq!(
            call["error"]["data"]["reason"],
            "[EFAULT] Task is not enabled"
        );
    }

    #[test]
    fn events() {
        let e = Event {
            collection: "core.get_jobs".into(),
            kind: EventKind::Changed,
            id: json!(3),
            fields: Some(json!({"state": "RUNNING"})),
        };
        assert_eq!(
            notification(&e),
            json!({"jsonrpc": "2.0", "method": "collection_update", "params": {"msg": "changed", "collection": "core.get_jobs", "id": 3, "fields": {"state": "RUNNING"}}})
        );
        let r = Event {
            collection: "alert.list".into(),
            kind: EventKind::Removed,
            id: json!("u"),
            fields: None,
        };
        assert_eq!(
            legacy_event(&r),
            json!({"msg": "removed", "collection": "alert.list", "id": "u"})
        );
    }

    #[test]
    fn legacy_messages() {
        assert_eq!(
            parse_legacy(r#"{"msg":"connect","version":"1","support":["1"]}"#),
            Some(Legacy::Connect { version_ok: true })
        );
        assert_eq!(
            parse_legacy(r#"{"msg":"connect","version":"2"}"#),
            Some(Legacy::Connect { version_ok: false })
        );
        assert_eq!(
            parse_legacy(r#"{"msg":"method","id":"x","method":"core.ping"}"#),
            Some(Legacy::Method {
                id: json!("x"),
                method: Some("core.ping".into()),
                params: Ok(vec![])
            })
        );
        assert!(matches!(
            parse_legacy(r#"{"msg":"method","id":"x","method":"a.b","params":{}}"#),
            Some(Legacy::Method {
                params: Err(()),
                ..
            })
        ));
        assert_eq!(
            parse_legacy(r#"{"msg":"sub","id":"s","name":"core.get_jobs"}"#),
            Some(Legacy::Sub {
                id: json!("s"),
                name: "core.get_jobs".into()
            })
        );
        assert_eq!(parse_legacy("[]"), None);
    }
}

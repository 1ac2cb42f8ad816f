#![allow(clippy::too_many_lines, clippy::needless_pass_by_value)]

use proptest::prelude::*;
use serde_json::json;

use super::*;

const M: Method = Method::CloudsyncCreate;

fn item(path: &str, message: &str, errno: i64) -> ValidationItem {
    ValidationItem {
        path: path.to_owned(),
        message: message.to_owned(),
        errno,
    }
}

/// Decodes a reply frame and maps its error.
fn error_of(protocol: Protocol, frame: &Value) -> CallError {
    match decode(protocol, &frame.to_string()).unwrap() {
        Incoming::Reply {
            id: ReplyId::Ours(7),
            outcome: Err(err),
        } => err.to_call_error(M, protocol),
        other => panic!("not an error reply with id 7: {other:?}"),
    }
}

fn rpc_error(code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    json!({"jsonrpc": "2.0", "id": 7, "error": error})
}

fn rpc_data(errno: i64, errname: &str, reason: &str, extra: Value) -> Value {
    json!({"error": errno, "errname": errname, "reason": reason,
           "trace": {"class": "X", "frames": [{"locals": {"password": "CANARY-ENC-PASSWORD-2b8e41"}}],
                     "formatted": "CANARY-ENC-PASSWORD-2b8e41", "repr": "X()"},
           "extra": extra})
}

fn legacy_error(
    errno: i64,
    errname: &str,
    kind: Option<&str>,
    reason: &str,
    extra: Value,
) -> Value {
    json!({"msg": "result", "id": "7", "error": {
        "error": errno, "errname": errname, "type": kind, "reason": reason,
        "trace": {"formatted": "CANARY-ENC-PASSWORD-2b8e41"}, "extra": extra}})
}

#[test]
fn jsonrpc_error_shapes() {
    let cases: Vec<(&str, Value, CallError)> = vec![
        (
            "validation with triples",
            rpc_error(
                INVALID_PARAMS,
                "Invalid params",
                Some(rpc_data(
                    22,
                    "EINVAL",
                    "[EINVAL] cloud_sync_create.bwlimit.0.time: Invalid time order\n",
                    json!([
                        ["cloud_sync_create.bwlimit.0.time", "Invalid time order", 22],
                        ["cloud_sync_create.credentials", "Invalid credentials", 22]
                    ]),
                )),
            ),
            CallError::Validation {
                method: M,
                items: vec![
                    item("cloud_sync_create.bwlimit.0.time", "Invalid time order", 22),
                    item("cloud_sync_create.credentials", "Invalid credentials", 22),
                ],
            },
        ),
        (
            "validation without extra",
            rpc_error(
                INVALID_PARAMS,
                "Invalid params",
                Some(rpc_data(22, "EINVAL", "Too many arguments", Value::Null)),
            ),
            CallError::Validation {
                method: M,
                items: vec![item("", "Too many arguments", 22)],
            },
        ),
        (
            "instance not found is a validation error with ENOENT",
            rpc_error(
                INVALID_PARAMS,
                "Invalid params",
                Some(rpc_data(
                    22,
                    "EINVAL",
                    "[ENOENT] None: Cloud Sync Task 9 does not exist",
                    json!([[null, "Cloud Sync Task 9 does not exist", 2]]),
                )),
            ),
            CallError::NotFound {
                method: M,
                reason: "Cloud Sync Task 9 does not exist".into(),
            },
        ),
        (
            "method does not exist",
            rpc_error(METHOD_NOT_FOUND, "Method does not exist", None),
            CallError::MethodNotFound { method: M },
        ),
        (
            "ENOMETHOD on an older version endpoint",
            rpc_error(
                -32001,
                "Method call error",
                Some(rpc_data(
                    201,
                    "ENOMETHOD",
                    "Method 'x' not found in 'y'",
                    Value::Null,
                )),
            ),
            CallError::MethodNotFound { method: M },
        ),
        (
            "too many concurrent calls",
            rpc_error(
                TOO_MANY_CONCURRENT_CALLS,
                "Maximum number of concurrent calls (20) has exceeded",
                None,
            ),
            CallError::RateLimited { method: M },
        ),
        (
            "not authenticated",
            rpc_error(
                -32001,
                "Method call error",
                Some(rpc_data(
                    207,
                    "ENOTAUTHENTICATED",
                    "Not authenticated",
                    Value::Null,
                )),
            ),
            CallError::NotAuthenticated { method: M },
        ),
        (
            "not authorised",
            rpc_error(
                -32001,
                "Method call error",
                Some(rpc_data(13, "EACCES", "Not authorized", Value::Null)),
            ),
            CallError::NotAuthorized {
                method: M,
                reason: "Not authorized".into(),
            },
        ),
        (
            "session expired",
            rpc_error(
                -32001,
                "Method call error",
                Some(rpc_data(13, "EACCES", "Session is expired", Value::Null)),
            ),
            CallError::NotAuthorized {
                method: M,
                reason: "Session is expired".into(),
            },
        ),
        (
            "rate limiter",
            rpc_error(
                -32001,
                "Method call error",
                Some(rpc_data(16, "EBUSY", "Rate Limit Exceeded", Value::Null)),
            ),
            CallError::RateLimited { method: M },
        ),
        (
            "EBUSY that is not the rate limiter",
            rpc_error(
                -32001,
                "Method call error",
                Some(rpc_data(16, "EBUSY", "dataset is busy", Value::Null)),
            ),
            CallError::Failed {
                method: M,
                errno: Some(16),
                errname: "EBUSY".into(),
                reason: "dataset is busy".into(),
            },
        ),
        (
            "ENOENT call error",
            rpc_error(
                -32001,
                "Method call error",
                Some(rpc_data(2, "ENOENT", "Pool pool9 not found", Value::Null)),
            ),
            CallError::NotFound {
                method: M,
                reason: "Pool pool9 not found".into(),
            },
        ),
        (
            "MatchNotFound from a get query",
            rpc_error(
                -32001,
                "Method call error",
                Some(rpc_data(22, "EINVAL", "MatchNotFound()", Value::Null)),
            ),
            CallError::NotFound {
                method: M,
                reason: "no matching object".into(),
            },
        ),
        (
            "plain call error with provider extra",
            rpc_error(
                -32001,
                "Method call error",
                Some(rpc_data(
                    22,
                    "EINVAL",
                    "This credential is used by cloud sync task x",
                    json!({"excerpt": "..."}),
                )),
            ),
            CallError::Failed {
                method: M,
                errno: Some(22),
                errname: "EINVAL".into(),
                reason: "This credential is used by cloud sync task x".into(),
            },
        ),
        (
            "zfs errno without errname",
            rpc_error(
                -32001,
                "Method call error",
                Some(json!({"error": 2009, "reason": "dataset exists"})),
            ),
            CallError::Failed {
                method: M,
                errno: Some(2009),
                errname: "EUNKNOWN".into(),
                reason: "dataset exists".into(),
            },
        ),
        (
            "invalid request envelope",
            rpc_error(
                INVALID_REQUEST,
                "'params' member must be of type array",
                None,
            ),
            CallError::Protocol {
                method: M,
                detail: "middleware answered error -32600: 'params' member must be of type array"
                    .into(),
            },
        ),
        (
            "reply not serialisable",
            rpc_error(
                INTERNAL_ERROR,
                "Failed to JSON serialize server message",
                Some(rpc_data(14, "EFAULT", "boom", Value::Null)),
            ),
            CallError::Protocol {
                method: M,
                detail: "middleware answered error -32603: boom".into(),
            },
        ),
    ];
    for (name, frame, expected) in cases {
        let got = error_of(Protocol::JsonRpc, &frame);
        assert_eq!(got, expected, "{name}");
        assert!(!format!("{got} {got:?}").contains("CANARY"), "{name}");
    }
}

#[test]
fn legacy_error_shapes() {
    let cases: Vec<(&str, Value, CallError)> = vec![
        (
            "several validation errors: errno 11 EAGAIN",
            legacy_error(
                11,
                "EAGAIN",
                Some("VALIDATION"),
                "[EINVAL] cloud_sync_create.path: not under a pool",
                json!([
                    ["cloud_sync_create.path", "not under a pool", 22],
                    ["cloud_sync_create.bwlimit.1.time", "Invalid time order", 22]
                ]),
            ),
            CallError::Validation {
                method: M,
                items: vec![
                    item("cloud_sync_create.path", "not under a pool", 22),
                    item("cloud_sync_create.bwlimit.1.time", "Invalid time order", 22),
                ],
            },
        ),
        (
            "single validation error keeps its errno",
            legacy_error(
                22,
                "EINVAL",
                Some("VALIDATION"),
                "[EINVAL] snmp_update.v3_password: too short",
                json!([["snmp_update.v3_password", "too short", 22]]),
            ),
            CallError::Validation {
                method: M,
                items: vec![item("snmp_update.v3_password", "too short", 22)],
            },
        ),
        (
            "instance not found",
            legacy_error(
                2,
                "ENOENT",
                Some("VALIDATION"),
                "[ENOENT] None: not found",
                json!([[null, "Periodic Snapshot Task 4 does not exist", 2]]),
            ),
            CallError::NotFound {
                method: M,
                reason: "Periodic Snapshot Task 4 does not exist".into(),
            },
        ),
        (
            "unknown method",
            legacy_error(
                201,
                "ENOMETHOD",
                None,
                "Method 'sync2' not found in 'cloudsync'",
                Value::Null,
            ),
            CallError::MethodNotFound { method: M },
        ),
        (
            "not authenticated",
            legacy_error(
                207,
                "ENOTAUTHENTICATED",
                None,
                "Not authenticated",
                Value::Null,
            ),
            CallError::NotAuthenticated { method: M },
        ),
        (
            "not authorised",
            legacy_error(13, "EACCES", None, "Not authorized", Value::Null),
            CallError::NotAuthorized {
                method: M,
                reason: "Not authorized".into(),
            },
        ),
        (
            "rate limited",
            legacy_error(16, "EBUSY", None, "Rate Limit Exceeded", Value::Null),
            CallError::RateLimited { method: M },
        ),
        (
            "concurrency limit",
            legacy_error(
                109,
                "ETOOMANYREFS",
                None,
                "Maximum number of concurrent calls (20) has exceeded.",
                Value::Null,
            ),
            CallError::RateLimited { method: M },
        ),
        (
            "MatchNotFound",
            legacy_error(22, "EINVAL", None, "MatchNotFound()", Value::Null),
            CallError::NotFound {
                method: M,
                reason: "no matching object".into(),
            },
        ),
        (
            "call error",
            legacy_error(22, "EINVAL", None, "Command ['zfs'] failed", Value::Null),
            CallError::Failed {
                method: M,
                errno: Some(22),
                errname: "EINVAL".into(),
                reason: "Command ['zfs'] failed".into(),
            },
        ),
    ];
    for (name, frame, expected) in cases {
        let got = error_of(Protocol::Legacy, &frame);
        assert_eq!(got, expected, "{name}");
        assert!(!format!("{got} {got:?}").contains("CANARY"), "{name}");
    }
}

#[test]
fn replies_and_ids() {
    let ok = decode(
        Protocol::JsonRpc,
        r#"{"jsonrpc":"2.0","id":3,"result":[1]}"#,
    )
    .unwrap();
    assert_eq!(
        ok,
        Incoming::Reply {
            id: ReplyId::Ours(3),
            outcome: Ok(json!([1]))
        }
    );
    let null_result = decode(
        Protocol::JsonRpc,
        r#"{"jsonrpc":"2.0","id":3,"result":null}"#,
    );
    assert!(matches!(
        null_result,
        Ok(Incoming::Reply {
            outcome: Ok(Value::Null),
            ..
        })
    ));
    let legacy = decode(
        Protocol::Legacy,
        r#"{"msg":"result","id":"12","result":"25.04.2"}"#,
    );
    assert_eq!(
        legacy.unwrap(),
        Incoming::Reply {
            id: ReplyId::Ours(12),
            outcome: Ok(json!("25.04.2"))
        }
    );
    for (id, shown) in [
        (json!("abc"), "\"abc\""),
        (json!(null), "null"),
        (json!(-1), "-1"),
        (json!("+1"), "\"+1\""),
    ] {
        let frame = json!({"jsonrpc": "2.0", "id": id, "result": 1}).to_string();
        let Incoming::Reply { id, .. } = decode(Protocol::JsonRpc, &frame).unwrap() else {
            panic!("not a reply")
        };
        assert_eq!(id, ReplyId::Foreign(shown.to_owned()));
    }
    // The parse error of invalid JSON comes with a null id.
    let parse_error = decode(
        Protocol::JsonRpc,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#,
    )
    .unwrap();
    assert!(matches!(
        parse_error,
        Incoming::Reply {
            id: ReplyId::Foreign(_),
            outcome: Err(_)
        }
    ));
}

#[test]
fn events_of_both_protocols() {
    let job = json!({"id": 5, "state": "SUCCESS"});
    let rpc = json!({"jsonrpc": "2.0", "method": "collection_update",
        "params": {"msg": "changed", "collection": "core.get_jobs", "id": 5, "fields": job}});
    let legacy = json!({"msg": "changed", "collection": "core.get_jobs", "id": 5, "fields": job});
    let expected = Incoming::Event(Event {
        collection: "core.get_jobs".into(),
        kind: EventKind::Changed,
        id: Some(json!(5)),
        fields: Some(job.clone()),
    });
    assert_eq!(
        decode(Protocol::JsonRpc, &rpc.to_string()).unwrap(),
        expected
    );
    assert_eq!(
        decode(Protocol::Legacy, &legacy.to_string()).unwrap(),
        expected
    );

    let removed = json!({"msg": "removed", "collection": "cloudsync.query", "id": 1});
    assert_eq!(
        decode(Protocol::Legacy, &removed.to_string()).unwrap(),
        Incoming::Event(Event {
            collection: "cloudsync.query".into(),
            kind: EventKind::Removed,
            id: Some(json!(1)),
            fields: None,
        })
    );

    let ended = json!({"jsonrpc": "2.0", "method": "notify_unsubscribed",
        "params": {"collection": "alert.list", "error": null}});
    assert_eq!(
        decode(Protocol::JsonRpc, &ended.to_string()).unwrap(),
        Incoming::SubscriptionEnded {
            collection: "alert.list".into(),
            error: None
        }
    );
    let nosub =
        json!({"msg": "nosub", "collection": "x", "error": {"error": 22, "reason": "gone"}});
    let Incoming::SubscriptionEnded {
        error: Some(error), ..
    } = decode(Protocol::Legacy, &nosub.to_string()).unwrap()
    else {
        panic!("not ended")
    };
    assert_eq!(error.reason.as_deref(), Some("gone"));
}

#[test]
fn legacy_control_messages() {
    assert_eq!(
        decode(Protocol::Legacy, r#"{"msg":"connected","session":"u"}"#).unwrap(),
        Incoming::Connected
    );
    assert_eq!(
        decode(Protocol::Legacy, r#"{"msg":"failed","version":"1"}"#).unwrap(),
        Incoming::HandshakeFailed
    );
    assert_eq!(
        decode(Protocol::Legacy, r#"{"msg":"pong","id":"1"}"#).unwrap(),
        Incoming::Pong
    );
    assert_eq!(
        decode(Protocol::Legacy, r#"{"msg":"ready","subs":["4"]}"#).unwrap(),
        Incoming::Ready {
            ids: vec![ReplyId::Ours(4)]
        }
    );
    assert_eq!(
        decode(Protocol::Legacy, r#"{"msg":"surprise"}"#).unwrap(),
        Incoming::Ignored {
            what: "surprise".into()
        }
    );
}

#[test]
fn malformed_frames_are_errors() {
    assert!(matches!(
        decode(Protocol::JsonRpc, "{not json"),
        Err(FrameError::NotJson { .. })
    ));
    assert_eq!(
        decode(Protocol::JsonRpc, "[1,2]"),
        Err(FrameError::NotAnObject("an array"))
    );
    assert!(matches!(
        decode(Protocol::JsonRpc, r#"{"jsonrpc":"2.0","id":1}"#),
        Err(FrameError::Member {
            member: "result",
            ..
        })
    ));
    assert!(matches!(
        decode(Protocol::Legacy, r#"{"id":"1"}"#),
        Err(FrameError::Member { member: "msg", .. })
    ));
    assert!(matches!(
        decode(
            Protocol::JsonRpc,
            r#"{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"x"}}"#
        ),
        Err(FrameError::Member { member: "msg", .. })
    ));
}

#[test]
fn encodes_requests() {
    assert_eq!(
        serde_json::from_str::<Value>(&encode_call(
            Protocol::JsonRpc,
            1,
            "core.get_jobs",
            &[json!([["id", "=", 5]])]
        ))
        .unwrap(),
        json!({"jsonrpc": "2.0", "id": 1, "method": "core.get_jobs", "params": [[["id", "=", 5]]]})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&encode_call(Protocol::Legacy, 2, "system.info", &[]))
            .unwrap(),
        json!({"id": "2", "msg": "method", "method": "system.info", "params": []})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&encode_notification("core.unsubscribe", &[json!("s")]))
            .unwrap(),
        json!({"jsonrpc": "2.0", "method": "core.unsubscribe", "params": ["s"]})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&encode_connect()).unwrap(),
        json!({"msg": "connect", "version": "1", "support": ["1"]})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&encode_sub(9, "core.get_jobs")).unwrap(),
        json!({"msg": "sub", "id": "9", "name": "core.get_jobs"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&encode_unsub("9")).unwrap(),
        json!({"msg": "unsub", "id": "9"})
    );
}

#[test]
fn debug_never_shows_results_or_fields() {
    let reply = decode(
        Protocol::JsonRpc,
        r#"{"jsonrpc":"2.0","id":1,"result":{"key":"CANARY-B2-APPKEY-7f3a9c"}}"#,
    )
    .unwrap();
    let event = decode(
        Protocol::Legacy,
        r#"{"msg":"added","collection":"cloudsync.query","id":1,"fields":{"encryption_password":"CANARY-ENC-PASSWORD-2b8e41"}}"#,
    )
    .unwrap();
    for shown in [format!("{reply:?}"), format!("{event:?}")] {
        assert!(!shown.contains("CANARY"), "{shown}");
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "msg",
            "result",
            "error",
            "id",
            "method",
            "params",
            "collection",
            "fields",
            "data",
            "extra",
            "added",
            "changed",
            "nosub",
            "ready",
            "subs",
            "code",
            "type",
            "VALIDATION",
            "collection_update",
            "notify_unsubscribed",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "msg",
                    "result",
                    "error",
                    "id",
                    "method",
                    "params",
                    "collection",
                    "fields",
                    "data",
                    "extra",
                    "subs",
                    "code",
                    "type",
                    "errno",
                    "reason",
                    "jsonrpc",
                ]),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #[test]
    fn decoding_arbitrary_json_never_panics(value in arb_json()) {
        for protocol in [Protocol::JsonRpc, Protocol::Legacy] {
            if let Ok(Incoming::Reply { outcome: Err(err), .. }) = decode(protocol, &value.to_string()) {
                let _ = err.to_call_error(M, protocol).to_string();
            }
        }
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = decode(Protocol::JsonRpc, &text);
        let _ = decode(Protocol::Legacy, &text);
    }

    #[test]
    fn requests_round_trip(
        id in any::<u64>(),
        method in prop::sample::select(Method::ALL.to_vec()),
        params in prop::collection::vec(arb_json(), 0..4),
    ) {
        for protocol in [Protocol::JsonRpc, Protocol::Legacy] {
            let frame: Value = serde_json::from_str(&encode_call(protocol, id, method.as_str(), &params)).unwrap();
            prop_assert_eq!(&frame["method"], &json!(method.as_str()));
            prop_assert_eq!(&frame["params"], &Value::Array(params.clone()));
            // The id the server echoes back is recognised as ours.
            prop_assert_eq!(reply_id(&frame["id"]), ReplyId::Ours(id));
            match protocol {
                Protocol::JsonRpc => prop_assert_eq!(&frame["jsonrpc"], &json!("2.0")),
                Protocol::Legacy => prop_assert_eq!(&frame["msg"], &json!("method")),
            }
        }
    }
}

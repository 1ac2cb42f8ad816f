//! The B2 key, read from the middleware's cloud credential (the agent never stores it).
//!
//! Owns: extracting `{account, key}` from a `cloudsync.credentials.query` entry in both
//! shapes — 24.10 `{provider: "B2", attributes: {account, key}}` and 25.04+
//! `{provider: {type: "B2", account, key}}` — and recognising the middleware's redaction.
//! Does not: cache, log or write the key anywhere; choose which credential a task uses.
//! Invariants: the application key leaves this module only inside a `SecretString`; no
//! error variant carries any credential field value.
//! Limitations: the middleware returns secrets only to full-admin sessions or sessions
//! with `CLOUD_SYNC_WRITE`; others see `"********"` (`main.py` redaction), reported as
//! [`CredentialError::Redacted`].

use secrecy::SecretString;
use serde_json::Value;

use crate::fault::Fault;
use crate::middleware::{CallError, Middleware, calls};

/// What the middleware shows in place of a secret the session may not see.
const REDACTED: &str = "********";

/// Why the B2 key could not be taken from a credential.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CredentialError {
    /// `cloudsync.credentials.query` failed.
    #[error("reading cloud credential {id} from the middleware failed")]
    Query {
        id: i64,
        #[source]
        source: CallError,
    },
    /// No credential with that id.
    #[error("cloud credential {id} does not exist")]
    NotFound { id: i64 },
    /// The credential is for another provider.
    #[error("cloud credential {id} is for provider `{provider}`, not B2")]
    NotB2 { id: i64, provider: String },
    /// The middleware redacted the key for this session.
    #[error(
        "the agent's middleware session cannot read the key of cloud credential {id} \
         (the middleware shows it as ********; the agent needs a full-admin session or \
         the CLOUD_SYNC_WRITE role)"
    )]
    Redacted { id: i64 },
    /// A required field is missing or empty.
    #[error("cloud credential {id} has no `{field}`")]
    Missing { id: i64, field: &'static str },
}

impl CredentialError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            CredentialError::Query { source, .. } => source.fault(),
            CredentialError::NotFound { .. } => Fault::Nas,
            CredentialError::NotB2 { .. } | CredentialError::Redacted { .. } => Fault::Operator,
            CredentialError::Missing { .. } => Fault::Bug,
        }
    }
}

/// `(key_id, application_key)` from one `cloudsync.credentials.query` entry.
pub fn b2_key(entry: &Value) -> Result<(String, SecretString), CredentialError> {
    let id = entry.get("id").and_then(Value::as_i64).unwrap_or(-1);
    let (fields, prefix) = match entry.get("provider") {
        // 25.04+: the provider object carries the attributes.
        Some(Value::Object(provider)) => {
            let kind = provider.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "B2" {
                return Err(CredentialError::NotB2 {
                    id,
                    provider: kind.to_owned(),
                });
            }
            (entry.get("provider"), "provider")
        }
        // 24.10: provider name + attributes dict (redacted as a whole or per field).
        Some(Value::String(kind)) if kind == "B2" => (entry.get("attributes"), "attributes"),
        Some(Value::String(kind)) => {
            return Err(CredentialError::NotB2 {
                id,
                provider: kind.clone(),
            });
        }
        _ => {
            return Err(CredentialError::Missing {
                id,
                field: "provider",
            });
        }
    };
    match fields {
        Some(Value::String(s)) if s == REDACTED => Err(CredentialError::Redacted { id }),
        Some(Value::Object(map)) => {
            let account = field(id, map.get("account"), prefix, "account")?;
            let key = field(id, map.get("key"), prefix, "key")?;
            Ok((account, SecretString::from(key)))
        }
        _ => Err(CredentialError::Missing {
            id,
            field: if prefix == "provider" {
                "provider"
            } else {
                "attributes"
            },
        }),
    }
}

fn field(
    id: i64,
    value: Option<&Value>,
    prefix: &'static str,
    name: &'static str,
) -> Result<String, CredentialError> {
    let path = match (prefix, name) {
        ("provider", "account") => "provider.account",
        ("provider", _) => "provider.key",
        (_, "account") => "attributes.account",
        _ => "attributes.key",
    };
    match value.and_then(Value::as_str) {
        Some(REDACTED) => Err(CredentialError::Redacted { id }),
        Some(text) if !text.is_empty() => Ok(text.to_owned()),
        _ => Err(CredentialError::Missing { id, field: path }),
    }
}

/// Reads cloud credential `id` through the middleware and extracts the B2 key.
pub async fn read_b2_key(
    mw: &impl Middleware,
    id: i64,
) -> Result<(String, SecretString), CredentialError> {
    // Middleware ids are positive: a negative one names no credential.
    let Ok(wire_id) = u64::try_from(id) else {
        return Err(CredentialError::NotFound { id });
    };
    let result = mw
        .call(calls::credential_by_id(wire_id))
        .await
        .map_err(|source| CredentialError::Query { id, source })?;
    let entry = result
        .as_array()
        .and_then(|entries| entries.first())
        .ok_or(CredentialError::NotFound { id })?;
    b2_key(entry)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::middleware::{Call, Method};
    use serde_json::json;

    const KEY: &str = "CANARY-B2-APPKEY-7f3a9c";

    #[test]
    fn reads_the_24_10_shape() {
        let entry = json!({"id": 3, "name": "truenas-x", "provider": "B2",
                           "attributes": {"account": "0051abc", "key": KEY}});
        let (account, key) = b2_key(&entry).unwrap();
        assert_eq!(account, "0051abc");
        assert_eq!(key.expose_secret(), KEY);
    }

    #[test]
    fn reads_the_25_04_shape() {
        let entry = json!({"id": 4, "name": "truenas-x",
                           "provider": {"type": "B2", "account": "0051abc", "key": KEY}});
        let (account, key) = b2_key(&entry).unwrap();
        assert_eq!(account, "0051abc");
        assert_eq!(key.expose_secret(), KEY);
    }

    #[test]
    fn redacted_keys_are_recognised_in_both_shapes() {
        for entry in [
            json!({"id": 5, "name": "n", "provider": {"type": "B2", "account": "0051abc", "key": "********"}}),
            json!({"id": 5, "name": "n", "provider": "B2", "attributes": {"account": "0051abc", "key": "********"}}),
            json!({"id": 5, "name": "n", "provider": "B2", "attributes": "********"}),
        ] {
            let err = b2_key(&entry).unwrap_err();
            assert_eq!(err, CredentialError::Redacted { id: 5 });
            assert!(err.to_string().contains("cannot read the key"), "{err}");
            assert_eq!(err.fault(), Fault::Operator);
        }
    }

    #[test]
    fn other_providers_and_broken_entries_are_named() {
        let s3 = json!({"id": 6, "name": "n", "provider": {"type": "S3", "access_key_id": "a"}});
        assert_eq!(
            b2_key(&s3).unwrap_err(),
            CredentialError::NotB2 {
                id: 6,
                provider: "S3".into()
            }
        );
        let legacy = json!({"id": 7, "name": "n", "provider": "DROPBOX", "attributes": {}});
        assert!(matches!(
            b2_key(&legacy),
            Err(CredentialError::NotB2 { id: 7, .. })
        ));
        let empty_key =
            json!({"id": 8, "name": "n", "provider": {"type": "B2", "account": "a", "key": ""}});
        assert_eq!(
            b2_key(&empty_key).unwrap_err(),
            CredentialError::Missing {
                id: 8,
                field: "provider.key"
            }
        );
        let no_attrs = json!({"id": 9, "name": "n", "provider": "B2"});
        assert_eq!(
            b2_key(&no_attrs).unwrap_err(),
            CredentialError::Missing {
                id: 9,
                field: "attributes"
            }
        );
    }

    #[test]
    fn errors_never_carry_the_key() {
        let entry = json!({"id": 10, "name": "n", "provider": {"type": "B2", "key": KEY}});
        let err = b2_key(&entry).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(KEY));
    }

    /// Answers every call with one canned result and records the calls.
    struct Canned(Result<Value, CallError>, std::sync::Mutex<Vec<Call>>);

    impl Middleware for Canned {
        fn api(&self) -> crate::middleware::ApiInfo {
            crate::middleware::ApiInfo {
                flavor: crate::middleware::ApiFlavor::V25_04,
                version: "25.04.2".into(),
                protocol: crate::middleware::Protocol::JsonRpc,
                transport: crate::middleware::TransportKind::UnixSocket,
                api_version: Some("v25.04.2".into()),
                newer_than_known: false,
            }
        }
        async fn call(&self, call: Call) -> Result<Value, CallError> {
            self.1.lock().unwrap().push(call);
            self.0.clone()
        }
        async fn wait_job(
            &self,
            _id: crate::middleware::JobId,
            _timeout: std::time::Duration,
        ) -> Result<crate::middleware::Job, CallError> {
            unreachable!("no jobs here")
        }
    }

    #[tokio::test]
    async fn reads_the_credential_through_the_middleware() {
        let entry = json!([{"id": 3, "name": "n", "provider": {"type": "B2", "account": "0051abc", "key": KEY}}]);
        let mw = Canned(Ok(entry), std::sync::Mutex::default());
        let (account, key) = read_b2_key(&mw, 3).await.unwrap();
        assert_eq!((account.as_str(), key.expose_secret()), ("0051abc", KEY));
        let call = mw.1.lock().unwrap()[0].clone();
        assert_eq!(call.method, Method::CredentialsQuery);
        assert_eq!(call, calls::credential_by_id(3));

        let none = Canned(Ok(json!([])), std::sync::Mutex::default());
        assert_eq!(
            read_b2_key(&none, 3).await.unwrap_err(),
            CredentialError::NotFound { id: 3 }
        );

        let down = CallError::Unavailable {
            method: Method::CredentialsQuery,
            detail: "socket gone".into(),
        };
        let failing = Canned(Err(down), std::sync::Mutex::default());
        let err = read_b2_key(&failing, 3).await.unwrap_err();
        assert_eq!(err.fault(), Fault::Transient);
    }
}

//! The calls the client makes by itself, as values: version detection, API-key login and
//! event subscriptions (its job lookup is `calls::job`, the one `apply` uses too).
//!
//! Owns: the params of those calls (checked against every version's schema by
//! `tests/it/allow_list.rs`).
//! Does not: send them (`client.rs`, `conn.rs`, `jobs.rs` do), or build the agent's
//! own method calls (`calls.rs`).
//! Invariants: params are positional arrays; the API key appears only inside the params
//! of a [`Call`], whose `Debug` never shows params.
//! Limitations: legacy subscriptions are `sub`/`unsub` messages, not calls (see `rpc.rs`).

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Call, Method};

/// `system.version_short []` → e.g. `"25.04.2.6"`.
pub fn version_short() -> Call {
    Call::bare(Method::SystemVersionShort)
}

/// `auth.login_ex [{mechanism: API_KEY_PLAIN, username, api_key}]` (25.04+). User info
/// is not requested: the agent has no use for it.
pub fn login_ex_api_key(username: &str, key: &SecretString) -> Call {
    Call::new(
        Method::AuthLoginEx,
        vec![json!({
            "mechanism": "API_KEY_PLAIN",
            "username": username,
            "api_key": key.expose_secret(),
            "login_options": {"user_info": false},
        })],
    )
}

/// `auth.login_with_api_key [key]` (24.10).
pub fn login_with_api_key(key: &SecretString) -> Call {
    Call::new(
        Method::AuthLoginWithApiKey,
        vec![Value::from(key.expose_secret())],
    )
}

/// `core.subscribe [event]` (JSON-RPC) → the subscription id.
pub fn subscribe(event: &str) -> Call {
    Call::new(Method::CoreSubscribe, vec![Value::from(event)])
}

/// `core.unsubscribe [subscription id]` (JSON-RPC; sent as a notification).
pub fn unsubscribe(subscription_id: &str) -> Call {
    Call::new(Method::CoreUnsubscribe, vec![Value::from(subscription_id)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_only_in_params() {
        let key = SecretString::from("1-CANARY-API-KEY-0a7d62".to_owned());
        for call in [login_ex_api_key("agent", &key), login_with_api_key(&key)] {
            assert!(!format!("{call:?}").contains("CANARY"));
            assert!(call.params[0].to_string().contains("CANARY"));
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(
            subscribe("core.get_jobs").params,
            vec![json!("core.get_jobs")]
        );
        assert!(version_short().params.is_empty());
    }
}

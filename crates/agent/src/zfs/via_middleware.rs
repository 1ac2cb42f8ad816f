//! User properties through the TrueNAS middleware: the fallback where the `zfs` command
//! cannot be used (e.g. the agent runs in a Custom App container without `/dev/zfs`).
//!
//! Owns: reading and writing user properties with `pool.query`, `pool.dataset.query`
//! (one dataset, no children, no native properties, user properties only),
//! `pool.dataset.update` (`user_properties_update`) and `system.host_id` — requests built
//! by `middleware::calls` — and decoding their answers into the same
//! [`PropertyReading`]s the command backend returns.
//! Does not: connect to the middleware (it is handed an `impl Middleware`).
//! Invariants: only user properties named by a validated [`UserPropKey`] are ever written,
//! one dataset per call; on TrueNAS 25.10 the source is reported as
//! [`PropSource::Unknown`], because the middleware hard-codes `LOCAL` there
//! (`plugins/pool_/dataset_query_utils.py`, `normalize_user_properties`).
//! Limitations: `pool.query` does not list the boot pool (fine: it is never a data pool);
//! pools the middleware reports as `OFFLINE` (not imported) are left out.

use serde_json::Value;

use super::error::{ZfsError, ZfsOp};
use super::host_id::HostId;
use super::names::{DatasetName, PoolName, PropValue, UserPropKey, excerpt};
use super::parse::{EXCERPT_LEN, PropSource, PropertyReading};
use super::props::{Backend, UserProps};
use crate::middleware::{ApiFlavor, Call, CallError, Middleware, calls};

/// User properties through an `impl Middleware`.
#[derive(Debug)]
pub struct MiddlewareProps<M> {
    mw: M,
}

impl<M: Middleware> MiddlewareProps<M> {
    /// Wraps a middleware connection.
    pub fn new(mw: M) -> Self {
        Self { mw }
    }

    async fn call(&self, op: ZfsOp, resource: &str, call: Call) -> Result<Value, ZfsError> {
        self.mw.call(call).await.map_err(|source| match source {
            CallError::NotFound { .. } => ZfsError::NoSuchDataset {
                op,
                resource: resource.to_owned(),
            },
            source => ZfsError::Middleware {
                op,
                resource: resource.to_owned(),
                source,
            },
        })
    }
}

/// Imported pool names from a `pool.query` answer.
pub fn decode_pools(answer: &Value) -> Result<Vec<PoolName>, String> {
    let entries = answer.as_array().ok_or_else(|| {
        format!(
            "expected a list, got {}",
            crate::middleware::type_name(answer)
        )
    })?;
    let mut pools = Vec::new();
    for entry in entries {
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a pool entry without a `name`")?;
        if entry.get("status").and_then(Value::as_str) == Some("OFFLINE") {
            continue;
        }
        pools.push(PoolName::parse(name).map_err(|e| e.to_string())?);
    }
    Ok(pools)
}

/// One property of one dataset from a `pool.dataset.query` answer; `Ok(None)` when the
/// answer has no such dataset.
pub fn decode_reading(
    flavor: ApiFlavor,
    dataset: &DatasetName,
    key: &UserPropKey,
    answer: &Value,
) -> Result<Option<PropertyReading>, String> {
    let entries = answer.as_array().ok_or_else(|| {
        format!(
            "expected a list, got {}",
            crate::middleware::type_name(answer)
        )
    })?;
    let Some(entry) = entries
        .iter()
        .find(|e| e.get("id").and_then(Value::as_str) == Some(dataset.as_str()))
    else {
        return match entries
            .first()
            .and_then(|e| e.get("id"))
            .and_then(Value::as_str)
        {
            Some(other) => Err(format!(
                "the answer is about `{}`, not `{dataset}`",
                excerpt(other, EXCERPT_LEN)
            )),
            None => Ok(None),
        };
    };
    let props = entry
        .get("user_properties")
        .ok_or("the dataset entry has no `user_properties`")?;
    let Some(prop) = props.get(key.as_str()) else {
        return Ok(Some(unset(dataset, key)));
    };
    let value = ["rawvalue", "value"]
        .iter()
        .find_map(|field| prop.get(field).and_then(Value::as_str))
        .ok_or("a user property without a string `value`")?;
    // 25.10+ hard-codes `source: LOCAL` (`MW/plugins/pool_/dataset_query_utils.py`,
    // still so in 26.0 and master).
    let source = if flavor >= ApiFlavor::V25_10 {
        PropSource::Unknown
    } else {
        decode_source(prop)?
    };
    if source == PropSource::None {
        return Ok(Some(unset(dataset, key)));
    }
    Ok(Some(PropertyReading {
        dataset: dataset.clone(),
        property: key.clone(),
        value: Some(value.to_owned()),
        source,
    }))
}

fn unset(dataset: &DatasetName, key: &UserPropKey) -> PropertyReading {
    PropertyReading {
        dataset: dataset.clone(),
        property: key.clone(),
        value: None,
        source: PropSource::None,
    }
}

/// py-libzfs source names (`LOCAL`, `INHERITED`, …); `source_info` may name the ancestor.
fn decode_source(prop: &Value) -> Result<PropSource, String> {
    let source = prop.get("source").and_then(Value::as_str).unwrap_or("NONE");
    Ok(match source {
        "NONE" => PropSource::None,
        "LOCAL" => PropSource::Local,
        "RECEIVED" => PropSource::Received,
        "DEFAULT" => PropSource::Default,
        "TEMPORARY" => PropSource::Temporary,
        "INHERITED" => PropSource::Inherited {
            from: prop
                .get("source_info")
                .and_then(Value::as_str)
                .map(|s| s.strip_prefix("inherited from ").unwrap_or(s).to_owned()),
        },
        other => return Err(format!("unknown source `{}`", excerpt(other, EXCERPT_LEN))),
    })
}

impl<M: Middleware> UserProps for MiddlewareProps<M> {
    fn backend(&self) -> Backend {
        Backend::Middleware
    }

    async fn list_pools(&self) -> Result<Vec<PoolName>, ZfsError> {
        const RESOURCE: &str = "the imported pools";
        let answer = self
            .call(ZfsOp::ListPools, RESOURCE, calls::pools_query())
            .await?;
        decode_pools(&answer).map_err(|detail| ZfsError::MiddlewareAnswer {
            op: ZfsOp::ListPools,
            resource: RESOURCE.to_owned(),
            detail,
        })
    }

    async fn get(
        &self,
        dataset: &DatasetName,
        key: &UserPropKey,
    ) -> Result<PropertyReading, ZfsError> {
        let resource = format!("{dataset} ({key})");
        let answer = self
            .call(
                ZfsOp::Get,
                &resource,
                calls::dataset_user_props(dataset.as_str()),
            )
            .await?;
        match decode_reading(self.mw.api().flavor, dataset, key, &answer) {
            Ok(Some(reading)) => Ok(reading),
            Ok(None) => Err(ZfsError::NoSuchDataset {
                op: ZfsOp::Get,
                resource,
            }),
            Err(detail) => Err(ZfsError::MiddlewareAnswer {
                op: ZfsOp::Get,
                resource,
                detail,
            }),
        }
    }

    async fn set(
        &self,
        dataset: &DatasetName,
        props: &[(UserPropKey, PropValue)],
    ) -> Result<(), ZfsError> {
        if props.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
        let resource = format!("{dataset} ({})", keys.join(", "));
        let pairs: Vec<(&str, &str)> = props
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let call = calls::user_properties_set(dataset.as_str(), &pairs);
        self.call(ZfsOp::Set, &resource, call).await.map(drop)
    }

    async fn inherit(&self, dataset: &DatasetName, key: &UserPropKey) -> Result<(), ZfsError> {
        let resource = format!("{dataset} ({key})");
        self.call(
            ZfsOp::Inherit,
            &resource,
            calls::user_property_remove(dataset.as_str(), key.as_str()),
        )
        .await
        .map(drop)
    }

    async fn host_id(&self) -> Result<Option<HostId>, ZfsError> {
        const RESOURCE: &str = "system.host_id";
        let answer = self.call(ZfsOp::HostId, RESOURCE, calls::host_id()).await?;
        match &answer {
            Value::Null => Ok(None),
            Value::String(s) => {
                HostId::parse(s)
                    .map(Some)
                    .ok_or_else(|| ZfsError::MiddlewareAnswer {
                        op: ZfsOp::HostId,
                        resource: RESOURCE.to_owned(),
                        detail: format!("not a 64-hex digest: `{}`", excerpt(s, EXCERPT_LEN)),
                    })
            }
            other => Err(ZfsError::MiddlewareAnswer {
                op: ZfsOp::HostId,
                resource: RESOURCE.to_owned(),
                detail: format!(
                    "expected a string, got {}",
                    crate::middleware::type_name(other)
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests;

//! Helpers shared by subcommands: building middleware connect options from the global
//! flags and the config file, opening the state directory.
//! (Middleware connection: issue #2.)
//!
//! TEMPORARY on the `pkg` branch: `connect` below is a stand-in until the middleware
//! client (`mw` branch) lands; merging main replaces it with the real one.

use std::time::Duration;

use serde_json::Value;

use crate::middleware::{
    ApiFlavor, ApiInfo, Call, CallError, Job, JobId, Middleware, Protocol, TransportKind,
};

/// Stand-in client: every call fails with `Unavailable`.
#[derive(Debug)]
pub struct NoClient;

impl Middleware for NoClient {
    fn api(&self) -> ApiInfo {
        ApiInfo {
            flavor: ApiFlavor::V25_10,
            version: "unknown".into(),
            protocol: Protocol::JsonRpc,
            transport: TransportKind::UnixSocket,
        }
    }
    async fn call(&self, call: Call) -> Result<Value, CallError> {
        Err(CallError::Unavailable {
            method: call.method,
            detail: "this build has no middleware client yet".into(),
        })
    }
    async fn wait_job(&self, id: JobId, _timeout: Duration) -> Result<Job, CallError> {
        let _ = id;
        Err(CallError::Unavailable {
            method: crate::middleware::Method::CoreGetJobs,
            detail: "this build has no middleware client yet".into(),
        })
    }
}

/// Connects to the middleware named by the global flags (stand-in, see module doc).
pub async fn connect(_global: &super::GlobalArgs) -> anyhow::Result<NoClient> {
    anyhow::bail!("the middleware client is not in this build yet")
}

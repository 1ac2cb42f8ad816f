//! TEMPORARY: the engine `run` uses until the SOP engine, identity and health modules
//! are on main (then `daemon::sop` replaces it).
//!
//! Owns: refusing every document with a message that says why.
//! Does not: touch the NAS.
//! Invariants: writes nothing.
//! Limitations: it is not the product; see the module above.

use std::collections::BTreeSet;

use secrecy::SecretString;

use super::engine::{Assessed, Engine, EngineError, IdentityPass, Pass};
use crate::central::report::{ConfigIssue, Mode};
use crate::fault::Fault;

/// Refuses every document.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEngine;

impl Engine for NoEngine {
    type Desired = u64;
    fn validate(&self, _: &[u8]) -> Result<u64, Vec<ConfigIssue>> {
        Err(vec![ConfigIssue {
            path: "(document)".to_owned(),
            message: "this build has no SOP engine yet".to_owned(),
        }])
    }
    fn revision(&self, d: &u64) -> u64 {
        *d
    }
    fn mode(&self, _: &u64) -> Mode {
        Mode::ReportOnly
    }
    fn secrets<'d>(&self, _: &'d u64) -> Vec<&'d SecretString> {
        Vec::new()
    }
    async fn identity(&self, _: Option<&u64>, _: bool) -> Result<IdentityPass, EngineError> {
        Ok(IdentityPass::default())
    }
    async fn converge(&self, _: &u64) -> Result<Pass, EngineError> {
        Err(EngineError::new(
            "converge",
            Fault::Bug,
            "no SOP engine in this build",
        ))
    }
    async fn assess(&self, _: Option<&u64>) -> Result<Assessed, EngineError> {
        Ok(Assessed::default())
    }
    fn watched_tasks(&self) -> BTreeSet<u64> {
        BTreeSet::new()
    }
}

//! `truenas-agent apply -f DOC [--json] [--allow-unsigned]`: converge the NAS once.
//!
//! Owns: running one reconcile pass with writes and printing plan, step results and
//! what is left (text or `--json`). Exit codes: see [`super::plan::Exit`].
//! Does not: loop (the daemon does) or decide anything itself.
//! Invariants: an invalid document is refused before any connection (zero calls);
//! `mode: report-only` sends no writing call; nothing printed contains a secret.
//! Limitations: one pass; a failed step is retried only by running `apply` again.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::plan::{Exit, connect_prepared, exit_for, report_error, result_json};
use crate::apply::{ReconcileOptions, reconcile};
use crate::desired::DesiredState;
use crate::middleware::Middleware;
use crate::state_dir::StateDir;

/// Arguments of `apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The desired-state document (plain JSON or a DSSE envelope).
    #[arg(short = 'f', long = "file", value_name = "DOC")]
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Accept a local document without a verified signature (tests, lab boxes).
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// Applies against an already connected middleware and prints the result.
pub async fn run_with(
    mw: &impl Middleware,
    state: &StateDir,
    desired: &DesiredState,
    options: &ReconcileOptions,
    as_json: bool,
) -> Exit {
    let result = match reconcile(mw, state, desired, options).await {
        Ok(result) => result,
        Err(err) => return report_error(&err, as_json),
    };
    let exit = exit_for(&result);
    if as_json {
        let mut v = result_json(exit);
        v["plan"] = result.plan.to_json();
        v["outcome"] = json!(result.outcome.as_ref().map(crate::apply::Outcome::to_json));
        v["after"] = json!(result.after.as_ref().map(crate::plan::Plan::to_json));
        println!("{v}");
        return exit;
    }
    println!("{}", result.plan);
    if let Some(outcome) = result.outcome.as_ref().filter(|o| !o.results.is_empty()) {
        println!("\nApplying:\n{outcome}");
    }
    if let Some(after) = &result.after {
        println!("After applying:\n{after}");
    }
    println!("\n{}", exit.result_line());
    exit
}

/// Runs `apply`.
pub async fn run(args: Args, global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    let ready = connect_prepared(&args.file, args.allow_unsigned, global, args.json, true).await;
    let (options, desired, state, mw) = match ready {
        Ok(ready) => ready,
        Err(exit) => return Ok(exit.into()),
    };
    Ok(run_with(&mw, &state, &desired, &options, args.json)
        .await
        .into())
}

//! `truenas-agent apply -f DOC [--json] [--allow-unsigned]`: converge the NAS once.
//!
//! Owns: running one reconcile pass with writes and printing plan, step results and
//! what is left (text or `--json`). Exit codes: see [`super::plan::Exit`].
//! Does not: loop (the daemon does) or decide anything itself.
//! Invariants: an invalid document is refused before any connection (zero calls);
//! `mode: report-only` sends no writing call; nothing printed contains a secret.
//! Limitations: one pass; a failed step is retried only by running `apply` again.

use std::process::ExitCode;

use serde_json::json;

use super::document::DocumentArgs;
use super::plan::{Exit, Ready, exit_for, report_error, result_json, run_pass};
use crate::apply::reconcile;
use crate::middleware::Middleware;

/// Applies against an already connected middleware and prints the result.
pub(crate) async fn run_with(ready: &Ready<impl Middleware>, as_json: bool) -> Exit {
    let Ready {
        mw,
        state,
        desired,
        options,
    } = ready;
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
pub(crate) async fn run(
    args: DocumentArgs,
    global: &super::GlobalArgs,
) -> anyhow::Result<ExitCode> {
    let pass = async |ready: &Ready| run_with(ready, args.json).await;
    Ok(run_pass(&args, global, true, pass).await)
}

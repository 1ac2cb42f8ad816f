//! `truenas-agent plan -f DOC [--json] [--allow-unsigned]`: what `apply` would change.
//!
//! Owns: reading the document, running a plan-only reconcile pass, printing the plan
//! (text or `--json`), and the outcomes shared with `apply` ([`Exit`]: converged 0,
//! pending 1, not converged or refused 2, unavailable 3 — the one rule of
//! [`crate::exit`]); every output ends with the result and its exit code.
//! Does not: write to the NAS (the pass runs with `write: false`).
//! Invariants: an invalid document is reported in full before any connection is made;
//! nothing printed contains a secret (plans show `(changed)`).
//! Limitations: a document file is accepted either with `--allow-unsigned`, or as a
//! DSSE envelope whose signature verifies under the configured `[central]
//! trusted_keys` (`--config`).

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use super::document::DocumentArgs;
use crate::apply::{ReconcileError, ReconcileOptions, Reconciled, reconcile};
use crate::config::AgentConfig;
use crate::desired::{DesiredState, FieldError, Mode};
use crate::middleware::{Client, Middleware};
use crate::plan::{Blocker, GuidError};
use crate::scrub::Learning;
use crate::state_dir::StateDir;

/// How a `plan` or `apply` run ended; its exit code follows the one rule
/// ([`crate::exit::Exit`], docs/operations.md "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The NAS matches the document (plan: nothing to do; apply: converged). Exit 0.
    Converged,
    /// Changes are pending that a pass would make, nothing blocks them and nothing
    /// failed: `plan` with changes, or `apply` of a `report-only` document. Exit 1.
    Pending,
    /// Not converged and a pass alone cannot fix it: steps failed or were refused
    /// (re-key), or conflicts, missing pools, a missing root pool or waiting actions
    /// block it; the output lists each. Exit 2.
    NotConverged,
    /// The input was refused: invalid or unverified document or configuration,
    /// rollback, or no device GUID. Nothing was written. Exit 2.
    Refused,
    /// The NAS could not be read or written: middleware unreachable, connection lost
    /// mid-pass, state directory unusable. Exit 3.
    Unavailable,
}

impl Exit {
    /// Where the outcome falls in the one rule.
    pub fn rule(self) -> crate::exit::Exit {
        match self {
            Exit::Converged => crate::exit::Exit::Ok,
            Exit::Pending => crate::exit::Exit::Attention,
            Exit::NotConverged | Exit::Refused => crate::exit::Exit::Failing,
            Exit::Unavailable => crate::exit::Exit::Unknown,
        }
    }

    /// The process exit code.
    pub fn code(self) -> u8 {
        self.rule().code()
    }

    /// The `--json` `result` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Exit::Converged => "converged",
            Exit::Pending => "pending",
            Exit::NotConverged => "not_converged",
            Exit::Refused => "refused",
            Exit::Unavailable => "unavailable",
        }
    }

    /// The last line of the text output.
    pub fn result_line(self) -> String {
        let what = match self {
            Exit::Converged => "CONVERGED: the NAS matches the document",
            Exit::Pending => {
                "CHANGES PENDING: nothing blocks them; a pass in enforce mode makes them"
            }
            Exit::NotConverged => "NOT CONVERGED: a human must act on what is listed above",
            Exit::Refused => "REFUSED: nothing was written",
            Exit::Unavailable => "UNAVAILABLE: the NAS or the state directory could not be used",
        };
        format!("Result: {what} (exit {})", self.code())
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// Reads and validates the document; prints every problem and returns the exit code
/// when it is refused. With `--allow-unsigned` a plain document or an envelope is taken
/// as it is; otherwise it must be a DSSE envelope whose signature verifies under the
/// `[central] trusted_keys` of the agent configuration (`--config`).
pub(crate) fn load_document(
    path: &Path,
    allow_unsigned: bool,
    config: &AgentConfig,
    as_json: bool,
) -> Result<DesiredState, Exit> {
    super::document::load(path, allow_unsigned, config)
        .map(|(state, _)| state)
        .map_err(|err| {
            let errors = err.field_errors();
            refuse(&err, errors, as_json)
        })
}

/// Prints why the input was refused (every field problem, or the one cause).
fn refuse(err: &dyn std::error::Error, errors: Vec<FieldError>, as_json: bool) -> Exit {
    let message = crate::fault::error_chain(err);
    let errors = if errors.is_empty() {
        vec![FieldError::new("(document)", &message)]
    } else {
        errors
    };
    let exit = Exit::Refused;
    if as_json {
        println!(
            "{}",
            json!({"converged": false, "refused": "document", "message": message, "errors": errors,
                   "result": exit.as_str(), "exit_code": exit.code()})
        );
    } else {
        eprintln!("document refused: {} problem(s):", errors.len());
        for e in &errors {
            eprintln!("  {e}");
        }
        eprintln!("{}", exit.result_line());
    }
    exit
}

/// Prints a pass that could not run and returns its exit code.
pub(crate) fn report_error(err: &ReconcileError, as_json: bool) -> Exit {
    let exit = match err {
        ReconcileError::Guid(_) => Exit::Refused,
        ReconcileError::Observe(_) | ReconcileError::State(_) => Exit::Unavailable,
    };
    let message = crate::fault::error_chain(err);
    if as_json {
        let kind = match err {
            ReconcileError::Guid(GuidError::Missing) => "no_device_guid",
            ReconcileError::Guid(_) => "device_guid",
            ReconcileError::Observe(_) => "middleware",
            ReconcileError::State(_) => "state_dir",
        };
        println!(
            "{}",
            json!({"converged": false, "refused": kind, "message": message,
                   "result": exit.as_str(), "exit_code": exit.code()})
        );
    } else {
        eprintln!("error: {message}");
        eprintln!("{}", exit.result_line());
    }
    exit
}

/// How a finished pass ended: refused (rollback), unavailable (aborted), converged,
/// pending (only steps a pass would make: `plan`, or `apply` of a `report-only`
/// document), else not converged.
pub(crate) fn exit_for(result: &Reconciled) -> Exit {
    let rollback = result
        .plan
        .blockers
        .iter()
        .any(|b| matches!(b, Blocker::Rollback { .. }));
    let aborted = result.outcome.as_ref().is_some_and(|o| o.aborted.is_some());
    let remaining = result.remaining();
    let only_steps = remaining.blockers.is_empty() && !remaining.has_blocking_conflict();
    let nothing_failed = result
        .outcome
        .as_ref()
        .is_none_or(|o| o.failures().next().is_none());
    let not_written = match &result.outcome {
        // `plan`: nothing is written by design.
        None => true,
        Some(_) => result.plan.mode == Mode::ReportOnly,
    };
    let pending = only_steps && nothing_failed && not_written;
    match (rollback, aborted, result.converged(), pending) {
        (true, _, _, _) => Exit::Refused,
        (false, true, _, _) => Exit::Unavailable,
        (false, false, true, _) => Exit::Converged,
        (false, false, false, true) => Exit::Pending,
        (false, false, false, false) => Exit::NotConverged,
    }
}

/// The `--json` fields every `plan`/`apply` answer carries: `converged`, `result` and
/// `exit_code` (they always agree: `converged` is true exactly when `result` is
/// `converged`).
pub(crate) fn result_json(exit: Exit) -> serde_json::Value {
    json!({
        "converged": exit == Exit::Converged,
        "result": exit.as_str(),
        "exit_code": exit.code(),
    })
}

/// The agent configuration (`--config`, if any) with the command-line flags on top.
pub(crate) fn agent_config(global: &super::GlobalArgs, as_json: bool) -> Result<AgentConfig, Exit> {
    super::common::agent_config(global).map_err(|err| {
        let message = crate::fault::error_chain(&err);
        let exit = Exit::Refused;
        if as_json {
            let mut v = result_json(exit);
            v["refused"] = json!("configuration");
            v["message"] = json!(message);
            println!("{v}");
        } else {
            eprintln!("error: {message}");
            eprintln!("{}", exit.result_line());
        }
        exit
    })
}

/// Pass options from the agent configuration.
pub(crate) fn pass_options(config: &AgentConfig, write: bool) -> ReconcileOptions {
    ReconcileOptions {
        write,
        guid_property: config.guid_property.clone(),
        root_pool: config.root_pool.clone(),
        ..ReconcileOptions::default()
    }
}

/// What a `plan` or `apply` pass runs with: the inputs checked, the middleware connected.
pub(crate) struct Ready<M = Learning<Client>> {
    pub mw: M,
    pub state: StateDir,
    pub desired: DesiredState,
    pub options: ReconcileOptions,
}

/// Plans against an already connected middleware and prints the result.
pub(crate) async fn run_with(ready: &Ready<impl Middleware>, as_json: bool) -> Exit {
    let options = ReconcileOptions {
        write: false,
        ..ready.options.clone()
    };
    match reconcile(&ready.mw, &ready.state, &ready.desired, &options).await {
        Ok(result) => {
            let exit = exit_for(&result);
            if as_json {
                let mut v = result_json(exit);
                v["plan"] = result.plan.to_json();
                println!("{v}");
            } else {
                println!("{}", result.plan);
                println!("\n{}", exit.result_line());
            }
            exit
        }
        Err(err) => report_error(&err, as_json),
    }
}

/// Runs `plan`.
pub(crate) async fn run(
    args: DocumentArgs,
    global: &super::GlobalArgs,
) -> anyhow::Result<ExitCode> {
    let pass = async |ready: &Ready| run_with(ready, args.json).await;
    Ok(run_pass(&args, global, false, pass).await)
}

/// Runs `plan` (`write: false`) or `apply`: [`connect_prepared`], then `pass` with what it
/// prepared; the exit code is that of whichever ended the run.
pub(crate) async fn run_pass(
    doc: &DocumentArgs,
    global: &super::GlobalArgs,
    write: bool,
    pass: impl AsyncFnOnce(&Ready) -> Exit,
) -> ExitCode {
    match connect_prepared(doc, global, write).await {
        Ok(ready) => pass(&ready).await.into(),
        Err(exit) => exit.into(),
    }
}

/// `prepare`, then the middleware connection and the pass options: what `plan` and
/// `apply` need before their pass (`write`: whether the pass may write).
pub(crate) async fn connect_prepared(
    doc: &DocumentArgs,
    global: &super::GlobalArgs,
    write: bool,
) -> Result<Ready, Exit> {
    let as_json = doc.json;
    let (config, desired, state) = prepare(doc, global)?;
    let mw = super::common::connect_learning(&config, None)
        .await
        .map_err(|err| {
            let exit = Exit::Unavailable;
            if as_json {
                let mut v = result_json(exit);
                v["refused"] = json!("middleware");
                v["message"] = json!(crate::fault::error_chain(&err));
                println!("{v}");
            } else {
                eprintln!("error: {}", crate::fault::error_chain(&err));
                eprintln!("{}", exit.result_line());
            }
            exit
        })?;
    Ok(Ready {
        mw,
        state,
        desired,
        options: pass_options(&config, write),
    })
}

/// Configuration, document and state directory — everything checked before the
/// middleware is contacted.
pub(crate) fn prepare(
    doc: &DocumentArgs,
    global: &super::GlobalArgs,
) -> Result<(AgentConfig, DesiredState, StateDir), Exit> {
    let as_json = doc.json;
    let config = agent_config(global, as_json)?;
    let desired = load_document(&doc.file, doc.allow_unsigned, &config, as_json)?;
    let state = StateDir::open(&config.state_dir)
        .map_err(|err| report_error(&ReconcileError::State(err), as_json))?;
    Ok((config, desired, state))
}

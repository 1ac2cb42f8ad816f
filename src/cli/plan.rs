//! `truenas-agent plan -f DOC [--json] [--allow-unsigned]`: what `apply` would change.
//!
//! Owns: reading the document, running a plan-only reconcile pass, printing the plan
//! (text or `--json`), and the exit codes shared with `apply` ([`Exit`]).
//! Does not: write to the NAS (the pass runs with `write: false`).
//! Invariants: an invalid document is reported in full before any connection is made;
//! nothing printed contains a secret (plans show `(changed)`).
//! Limitations: a document file is accepted either with `--allow-unsigned`, or as a
//! DSSE envelope whose signature verifies under the configured `[central]
//! trusted_keys` (`--config`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use crate::apply::{ReconcileError, ReconcileOptions, Reconciled, reconcile};
use crate::config::AgentConfig;
use crate::desired::{DesiredState, FieldError};
use crate::middleware::{Client, Middleware};
use crate::plan::{Blocker, GuidError};
use crate::state_dir::StateDir;

/// Arguments of `plan`.
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

/// Exit codes of `plan` and `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the NAS matches the document (plan: nothing to do; apply: converged).
    Converged = 0,
    /// 1: not converged: changes pending (plan), or steps failed, were refused or are
    /// blocked by conflicts (apply); the output says which.
    NotConverged = 1,
    /// 2: the input was refused: invalid or unverified document, rollback, or no
    /// device GUID. Nothing was written.
    Refused = 2,
    /// 3: the NAS could not be read or written: middleware unreachable, connection
    /// lost mid-pass, state directory unusable.
    Unavailable = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
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
    if as_json {
        println!(
            "{}",
            json!({"converged": false, "refused": "document", "message": message, "errors": errors})
        );
    } else {
        eprintln!("document refused: {} problem(s):", errors.len());
        for e in &errors {
            eprintln!("  {e}");
        }
    }
    Exit::Refused
}

/// Prints a pass that could not run and returns its exit code.
pub(crate) fn report_error(err: &ReconcileError, as_json: bool) -> Exit {
    let exit = match err {
        ReconcileError::Guid(_) => Exit::Refused,
        ReconcileError::Observe(_) | ReconcileError::ReObserve(_) | ReconcileError::State(_) => {
            Exit::Unavailable
        }
    };
    let message = crate::fault::error_chain(err);
    if as_json {
        let kind = match err {
            ReconcileError::Guid(GuidError::Missing) => "no_device_guid",
            ReconcileError::Guid(_) => "device_guid",
            ReconcileError::Observe(_) | ReconcileError::ReObserve(_) => "middleware",
            ReconcileError::State(_) => "state_dir",
        };
        println!(
            "{}",
            json!({"converged": false, "refused": kind, "message": message})
        );
    } else {
        eprintln!("error: {message}");
    }
    exit
}

/// The exit code for a finished pass.
pub(crate) fn exit_for(result: &Reconciled) -> Exit {
    let rollback = result
        .plan
        .blockers
        .iter()
        .any(|b| matches!(b, Blocker::Rollback { .. }));
    let aborted = result.outcome.as_ref().is_some_and(|o| o.aborted.is_some());
    if rollback {
        Exit::Refused
    } else if aborted {
        Exit::Unavailable
    } else if result.converged() {
        Exit::Converged
    } else {
        Exit::NotConverged
    }
}

/// The agent configuration (`--config`, if any) with the command-line flags on top.
pub(crate) fn agent_config(global: &super::GlobalArgs, as_json: bool) -> Result<AgentConfig, Exit> {
    // Same flag semantics as every subcommand (relative paths from the cwd).
    let overrides = super::common::overrides(global);
    AgentConfig::resolve(global.config.as_deref(), overrides).map_err(|err| {
        let message = crate::fault::error_chain(&err);
        if as_json {
            println!(
                "{}",
                json!({"converged": false, "refused": "configuration", "message": message})
            );
        } else {
            eprintln!("error: {message}");
        }
        Exit::Refused
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

/// Plans against an already connected middleware and prints the result.
pub async fn run_with(
    mw: &impl Middleware,
    state: &StateDir,
    desired: &DesiredState,
    options: &ReconcileOptions,
    as_json: bool,
) -> Exit {
    let options = ReconcileOptions {
        write: false,
        ..options.clone()
    };
    match reconcile(mw, state, desired, &options).await {
        Ok(result) => {
            if as_json {
                println!(
                    "{}",
                    json!({"converged": result.converged(), "plan": result.plan.to_json()})
                );
            } else {
                println!("{}", result.plan);
            }
            exit_for(&result)
        }
        Err(err) => report_error(&err, as_json),
    }
}

/// Runs `plan`.
pub async fn run(args: Args, global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    let ready = connect_prepared(&args.file, args.allow_unsigned, global, args.json, false).await;
    let (options, desired, state, mw) = match ready {
        Ok(ready) => ready,
        Err(exit) => return Ok(exit.into()),
    };
    Ok(run_with(&mw, &state, &desired, &options, args.json)
        .await
        .into())
}

/// `prepare`, then the middleware connection and the pass options: what `plan` and
/// `apply` need before their pass (`write`: whether the pass may write).
pub(crate) async fn connect_prepared(
    file: &Path,
    allow_unsigned: bool,
    global: &super::GlobalArgs,
    as_json: bool,
    write: bool,
) -> Result<(ReconcileOptions, DesiredState, StateDir, Client), Exit> {
    let (config, desired, state) = prepare(file, allow_unsigned, global, as_json)?;
    let mw = super::common::connect(global).await.map_err(|err| {
        eprintln!("error: {err:#}");
        Exit::Unavailable
    })?;
    Ok((pass_options(&config, write), desired, state, mw))
}

/// Configuration, document and state directory — everything checked before the
/// middleware is contacted.
pub(crate) fn prepare(
    file: &Path,
    allow_unsigned: bool,
    global: &super::GlobalArgs,
    as_json: bool,
) -> Result<(AgentConfig, DesiredState, StateDir), Exit> {
    let config = agent_config(global, as_json)?;
    let desired = load_document(file, allow_unsigned, &config, as_json)?;
    let state = StateDir::open(&config.state_dir)
        .map_err(|err| report_error(&ReconcileError::State(err), as_json))?;
    Ok((config, desired, state))
}

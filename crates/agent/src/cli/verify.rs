//! `truenas-agent verify -f DOC [--json] [--allow-unsigned] [--skip-b2]`: the SOP §6
//! checklist on this box and in its B2 bucket.
//!
//! Owns: reading the document, running one health pass with B2 ([`crate::health::assess`]),
//! remembering it in the state dir (`health.json`, which `status` shows later), printing
//! the checklist (text or `--json`, schema `truenas-agent.verify/v1`) and the exit code.
//! Does not: change anything on the NAS or in B2.
//! Invariants: exit codes follow the one rule ([`crate::exit::Exit`]): 0 = every item
//! checkable here passes; 1 = nothing fails or is unknown, but an item deviates from the
//! SOP as the document asks; 2 = an item fails, or the document or configuration was
//! refused; 3 = could not determine (an item checkable here is unknown and nothing fails,
//! middleware unreachable, NAS or state directory unreadable); nothing printed contains a
//! secret.
//! Limitations: a document from a file needs `--allow-unsigned` (signed documents come
//! through the daemon); items only central can check are listed as "checked by central".

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::document::DocumentArgs;
use crate::b2::ClientOptions;
use crate::config::AgentConfig;
use crate::desired::DesiredState;
use crate::exit::Exit;
use crate::health::assess::{AssessOptions, Assessment, assess, record};
use crate::health::checklist::Verdict;
use crate::health::{Checklist, ItemScope, ItemStatus, report, rfc3339};
use crate::middleware::Middleware;
use crate::state_dir::StateDir;

/// The `schema` value of `verify --json`.
pub const VERIFY_SCHEMA: &str = "truenas-agent.verify/v1";

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("json", |json| {
    json.help("Print JSON (schema truenas-agent.verify/v1) instead of text")
}))]
pub struct Args {
    #[command(flatten)]
    pub document: DocumentArgs,
    /// Do not check the B2 bucket (its items are then `unknown`).
    #[arg(long)]
    pub skip_b2: bool,
    /// B2 API base URL (a B2 test double); https only, or http on loopback. Default: the
    /// config's `[b2] api_url` (itself `https://api.backblazeb2.com` by default).
    #[arg(long, hide = true)]
    pub b2_api: Option<String>,
}

/// What `verify` prints and exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub exit: u8,
}

/// Exit code for a checklist verdict.
pub fn exit_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Pass => Exit::Ok,
        Verdict::Deviates => Exit::Attention,
        Verdict::Fail => Exit::Failing,
        Verdict::Undetermined => Exit::Unknown,
    }
    .code()
}

/// Why `verify` could not evaluate the checklist at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRun {
    /// The agent configuration was refused (exit 2).
    Configuration,
    /// The document was refused (exit 2).
    Document,
    /// The state directory cannot be used (exit 3).
    StateDir,
    /// The middleware could not be reached (exit 3).
    Middleware,
    /// The NAS could not be read (exit 3).
    Nas,
}

impl NotRun {
    /// The JSON `error.kind`.
    pub fn kind(self) -> &'static str {
        match self {
            NotRun::Configuration => "configuration",
            NotRun::Document => "document",
            NotRun::StateDir => "state_dir",
            NotRun::Middleware => "middleware",
            NotRun::Nas => "nas",
        }
    }

    /// A refused input is failing (a human must fix it); the rest could not be found out.
    pub fn exit(self) -> Exit {
        match self {
            NotRun::Configuration | NotRun::Document => Exit::Failing,
            NotRun::StateDir | NotRun::Middleware | NotRun::Nas => Exit::Unknown,
        }
    }

    /// The JSON `verdict`: `refused` for a refused input, else `undetermined`.
    fn verdict(self) -> &'static str {
        match self.exit() {
            Exit::Failing => "refused",
            Exit::Ok | Exit::Attention | Exit::Unknown => "undetermined",
        }
    }
}

/// Runs the checklist against an already connected middleware and records it.
pub async fn verify_with(
    mw: &impl Middleware,
    state: &StateDir,
    desired: &DesiredState,
    options: &AssessOptions,
    as_json: bool,
) -> Output {
    let assessment = match assess(mw, Some(desired), state, options).await {
        Ok(a) => a,
        Err(e) => return undetermined(NotRun::Nas, &crate::fault::error_chain(&e), as_json),
    };
    let mut notes = Vec::new();
    if let Err(e) = record(state, &assessment) {
        notes.push(format!(
            "warning: could not remember this check in the state dir: {}",
            crate::fault::error_chain(&e)
        ));
    }
    let checklist = &assessment.health.checklist;
    let exit = exit_code(checklist.verdict());
    let stdout = if as_json {
        let mut v = json_output(desired, &assessment, options, exit);
        if !notes.is_empty() {
            v["notes"] = json!(notes);
        }
        v.to_string()
    } else {
        let mut text = render_text(desired, checklist, options, exit);
        for note in notes {
            let _ = writeln!(text, "{note}");
        }
        text
    };
    Output { stdout, exit }
}

/// The output when the checklist could not be evaluated at all: exit 2 when the input
/// was refused, 3 when the NAS or the state directory could not be used.
pub fn undetermined(why: NotRun, message: &str, as_json: bool) -> Output {
    let exit = why.exit().code();
    let kind = why.kind();
    let verdict = why.verdict();
    let stdout = if as_json {
        json!({
            "schema": VERIFY_SCHEMA,
            "verdict": verdict,
            "exit_code": exit,
            "error": {"kind": kind, "message": message},
        })
        .to_string()
    } else {
        format!(
            "verify could not run ({kind}): {message}\nResult: {} (exit {exit})\n",
            verdict.to_uppercase()
        )
    };
    Output { stdout, exit }
}

fn scope_name(scope: ItemScope) -> &'static str {
    match scope {
        ItemScope::Nas => "nas",
        ItemScope::B2 => "b2",
        ItemScope::Central => "central",
    }
}

/// An item's status in `verify`'s own output (`deviates` is `fail` on the wire).
fn item_status(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::Deviates => "deviates",
        other => other.wire(),
    }
}

/// `verify --json`.
fn json_output(desired: &DesiredState, a: &Assessment, options: &AssessOptions, exit: u8) -> Value {
    let checklist = &a.health.checklist;
    let counts = checklist.counts();
    let items: Vec<Value> = checklist
        .items
        .iter()
        .map(|i| {
            let mut item = json!({
                "id": i.id,
                "title": i.title,
                "status": item_status(i.status),
                "checked_by": scope_name(i.scope),
                "pool": i.pool,
                "detail": i.detail,
                "next_step": i.next_step,
            });
            if !i.deviations.is_empty() {
                item["deviations"] = json!(i.deviations);
            }
            item
        })
        .collect();
    json!({
        "schema": VERIFY_SCHEMA,
        "checked_at": rfc3339(&options.now),
        "revision": desired.revision,
        "bucket": desired.bucket,
        "verdict": checklist.verdict().as_str(),
        "exit_code": exit,
        "b2_checked": options.b2.is_some(),
        "counts": counts,
        "items": items,
        "health": report::health_section(&a.health),
        "checklist": report::checklist_items(checklist),
    })
}

/// The text checklist: one line per item; detail and next step under items that do not pass.
pub fn render_text(
    desired: &DesiredState,
    checklist: &Checklist,
    options: &AssessOptions,
    exit: u8,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "SOP §6 verification checklist — revision {}, bucket {}, checked {}{}\n",
        desired.revision,
        desired.bucket,
        rfc3339(&options.now),
        if options.b2.is_some() {
            ""
        } else {
            " (B2 not checked: --skip-b2)"
        }
    );
    for item in &checklist.items {
        let tag = match item.status {
            ItemStatus::Pass => "PASS",
            ItemStatus::Fail => "FAIL",
            ItemStatus::Deviates => "DEV.",
            ItemStatus::Unknown => "????",
            ItemStatus::NotChecked => "----",
        };
        let suffix = if item.status == ItemStatus::NotChecked {
            "  (checked by central)"
        } else {
            ""
        };
        let _ = writeln!(out, " {tag}  {:<34} {}{suffix}", item.id, item.title);
        if matches!(
            item.status,
            ItemStatus::Fail | ItemStatus::Deviates | ItemStatus::Unknown
        ) {
            let _ = writeln!(out, "       {}", item.detail);
            if let Some(step) = &item.next_step {
                let _ = writeln!(out, "       Next: {step}");
            }
        }
    }
    let c = checklist.counts();
    let _ = writeln!(
        out,
        "\nResult: {} — {} pass, {} fail, {} deviate, {} unknown, {} checked by central (exit {exit})",
        checklist.verdict().as_str().to_uppercase(),
        c.pass,
        c.fail,
        c.deviates,
        c.unknown,
        c.not_checked
    );
    out
}

/// Runs `verify`.
pub async fn run(args: Args, global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    let output = run_args(&args, global).await;
    let mut text = output.stdout;
    if args.document.json {
        text.push('\n');
    }
    // A closed pipe surfaces as an error `cli::finish` maps to exit 0.
    let text = crate::scrub::scrub_output(&text);
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, text.as_bytes())?;
    std::io::Write::flush(&mut out)?;
    Ok(ExitCode::from(output.exit))
}

async fn run_args(args: &Args, global: &super::GlobalArgs) -> Output {
    let DocumentArgs {
        file,
        json,
        allow_unsigned,
    } = &args.document;
    let json = *json;
    let config = match super::common::agent_config(global) {
        Ok(c) => c,
        Err(e) => {
            let error = crate::fault::error_chain(&e);
            return undetermined(NotRun::Configuration, &error, json);
        }
    };
    let desired = match load_document(file, *allow_unsigned, &config) {
        Ok(d) => d,
        Err(e) => return undetermined(NotRun::Document, &e, json),
    };
    let state = match StateDir::open(&config.state_dir) {
        Ok(s) => s,
        Err(e) => {
            return undetermined(NotRun::StateDir, &crate::fault::error_chain(&e), json);
        }
    };
    let mw = match super::common::connect_learning(&config, None).await {
        Ok(mw) => mw,
        Err(e) => {
            let error = crate::fault::error_chain(&e);
            return undetermined(NotRun::Middleware, &error, json);
        }
    };
    let mut options = AssessOptions::live();
    options.b2 = (!args.skip_b2).then(|| ClientOptions {
        api_base: args
            .b2_api
            .clone()
            .unwrap_or_else(|| config.b2.api_url.clone()),
        ..ClientOptions::default()
    });
    options.guid_property.clone_from(&config.guid_property);
    options.root_pool.clone_from(&config.root_pool);
    verify_with(&mw, &state, &desired, &options, json).await
}

/// Reads the document with the shared `-f` rule (see `cli::document`); every problem is
/// listed.
fn load_document(
    path: &Path,
    allow_unsigned: bool,
    config: &AgentConfig,
) -> Result<DesiredState, String> {
    super::document::load(path, allow_unsigned, config)
        .map(|(state, _)| state)
        .map_err(|e| e.summary())
}

//! `truenas-agent identity [--json]`, `identity ensure [--pool P] [--guid G] [--rebind]`
//! and `identity get DATASET`: the device GUID on the root pool.
//!
//! Owns: the flags, building `IdentityInputs` and the backend from them, the one-screen
//! text and `--json` output, the exit status, recording `ensure`'s result.
//! Does not: apply any rule (`identity`) or run `zfs` itself (`zfs`).
//! Invariants: bad flags are refused before anything runs, naming the flag and the rule;
//! only `ensure` writes (to ZFS and to `identity.json`).
//! Limitations: the document's `device.root_pool`/`device.guid` reach identity through the
//! daemon, not this command (`--pool`, `--guid` stand in for them).
//! Exit status (the one rule, [`crate::exit::Exit`]): 0 the GUID is usable and nothing
//! needs attention, 1 problems that block nothing, 2 the GUID is not usable or a problem
//! blocks it (printed), or a flag was refused; 3 an operation failed (`zfs` missing,
//! permission denied, timeout, …) or `ensure` could not record its result.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use super::GlobalArgs;
use crate::config::AgentConfig;
use crate::exit::Exit;
use crate::identity::{
    self, BindingState, Change, IdentityInputs, IdentityReport, RootPoolHint, rules,
};
use crate::middleware::Client;
use crate::state_dir::StateDir;
use crate::zfs::{
    BackendChoice, CommandConfig, DatasetName, PoolName, Program, Store, UserPropKey, UserProps,
    ZfsCommand, choose_backend_with,
};

/// Arguments of `identity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[command(flatten)]
    pub common: Common,
}

/// Options of `identity` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The root pool (wins over the config file's `root_pool`).
    #[arg(long, global = true, value_name = "POOL")]
    pub pool: Option<String>,
    /// User property that carries the device GUID (wins over the config file's
    /// `guid_property`; default com.dtctoday:device-guid). Its namespace also names the
    /// host-binding property `<namespace>:device-host`.
    #[arg(long, global = true, value_name = "NAME")]
    pub property: Option<String>,
    /// The `zfs` program: an absolute path, or a name looked up in /usr/sbin:/sbin:/usr/bin:/bin.
    #[arg(long, global = true, value_name = "PATH", default_value = "zfs")]
    pub zfs_bin: String,
    /// The `zpool` program (same rules as --zfs-bin).
    #[arg(long, global = true, value_name = "PATH", default_value = "zpool")]
    pub zpool_bin: String,
    /// Deadline of each zfs/zpool run, in seconds.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30)]
    pub zfs_timeout: u64,
    /// The host id file (for tests; ZFS itself uses /etc/hostid).
    #[arg(long, global = true, hide = true, default_value = "/etc/hostid")]
    pub hostid_file: PathBuf,
}

/// What to do; without one, show the identity (read-only).
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Apply the identity rules: generate, keep or correct the GUID and bind it to this
    /// host (what the daemon does at start). Records the result for `status`.
    Ensure(EnsureArgs),
    /// Show the GUID property of any dataset and where its value comes from.
    Get(GetArgs),
}

/// Arguments of `identity ensure`.
#[derive(Debug, clap::Args)]
pub struct EnsureArgs {
    /// Central's device GUID (NinjaOne wins): written when the pool's differs.
    #[arg(long, value_name = "GUID")]
    pub guid: Option<String>,
    /// Confirm that this host now owns a pool that was bound to another host (after a
    /// move or a clone was reported).
    #[arg(long)]
    pub rebind: bool,
}

/// Arguments of `identity get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The dataset, e.g. `pool0/share`.
    pub dataset: String,
}

/// Runs `identity`.
pub(crate) async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let common = &args.common;
    let config = super::common::agent_config(global)?;
    let mut inputs = inputs(common, &config)?;
    let (store, choice) = store(common, &config).await?;
    match args.action {
        None => {
            let report = identity::observe(&inputs, &store, &choice).await;
            let exit = report.exit();
            print_report(&report, exit, common.json)?;
            Ok(exit.into())
        }
        Some(Action::Ensure(ensure)) => {
            inputs.central_guid = ensure.guid.as_deref().map(parse_guid).transpose()?;
            inputs.rebind = ensure.rebind;
            let report = identity::ensure(&inputs, &store, &choice).await;
            let exit = report.exit().worst(record(&report, &config.state_dir));
            print_report(&report, exit, common.json)?;
            Ok(exit.into())
        }
        Some(Action::Get(get)) => {
            let dataset = DatasetName::parse(&get.dataset).context("DATASET")?;
            let reading = store.get(&dataset, &inputs.property).await?;
            if common.json {
                println!("{}", serde_json::to_string_pretty(&reading)?);
            } else {
                let value = reading.value.as_deref().unwrap_or("-");
                println!(
                    "{dataset}\t{}\t{value}\t({})",
                    reading.property, reading.source
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn inputs(common: &Common, config: &AgentConfig) -> anyhow::Result<IdentityInputs> {
    let (property, flag) = match &common.property {
        Some(p) => (p.as_str(), "--property"),
        None => (config.guid_property.as_str(), "guid_property"),
    };
    let property = UserPropKey::parse(property).context(flag)?;
    let mut inputs = IdentityInputs::new(property).context(flag)?;
    let (pool, flag) = match (&common.pool, &config.root_pool) {
        (Some(p), _) => (Some(p.as_str()), "--pool"),
        (None, p) => (p.as_deref(), "root_pool"),
    };
    let local = pool.map(PoolName::parse).transpose().context(flag)?;
    inputs.root_pool = RootPoolHint {
        document: None,
        local,
    };
    Ok(inputs)
}

fn parse_guid(text: &str) -> anyhow::Result<uuid::Uuid> {
    rules::parse_dashed(text).with_context(|| {
        format!(
            "--guid `{}` must be a UUID in the dashed form, e.g. 9babab19-acc0-4587-aa05-ccd8103a1148",
            crate::zfs::excerpt(text, 64)
        )
    })
}

/// The `zfs` command, or — only when it cannot be used here (a Custom App container) —
/// the middleware, connected as the config and the global flags say.
async fn store(
    common: &Common,
    config: &AgentConfig,
) -> anyhow::Result<(Store<Client>, BackendChoice)> {
    let command = ZfsCommand::new(CommandConfig {
        zfs: Program::parse(&common.zfs_bin).context("--zfs-bin")?,
        zpool: Program::parse(&common.zpool_bin).context("--zpool-bin")?,
        hostid_file: common.hostid_file.clone(),
        timeout: Duration::from_secs(common.zfs_timeout.max(1)),
    });
    let connect = || async {
        super::common::connect(config, None)
            .await
            .map_err(|e| crate::fault::error_chain(&e))
    };
    Ok(choose_backend_with(command, connect).await)
}

/// Records the result for `status`; an unusable state directory makes the answer
/// unknown (`status` cannot show what `ensure` did).
fn record(report: &IdentityReport, dir: &Path) -> Exit {
    let result = StateDir::open(dir)
        .map_err(identity::IdentityError::Record)
        .and_then(|state| identity::record(&state, report));
    match result {
        Ok(()) => Exit::Ok,
        Err(err) => {
            eprintln!("warning: {:#}", anyhow::Error::new(err));
            Exit::Unknown
        }
    }
}

fn print_report(report: &IdentityReport, exit: Exit, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", render(report));
        println!("{:<14}{} (exit {})", "Result", exit.label(), exit.code());
    }
    Ok(())
}

/// The human form: one screen, problems last.
pub(crate) fn render(report: &IdentityReport) -> String {
    let mut out = String::new();
    let mut line = |label: &str, text: &str| {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{label:<14}{text}");
    };
    let guid = match (&report.guid, report.guid_source, report.usable) {
        (Some(g), Some(s), true) => format!("{g} (source: {})", s.as_str()),
        (Some(g), Some(s), false) => {
            format!("{g} (source: {}) — NOT USABLE, see problems", s.as_str())
        }
        _ => "none".to_owned(),
    };
    line("Device GUID", &guid);
    line("Property", &report.property);
    let root = match (&report.root_pool, report.root_pool_source) {
        (Some(p), Some(s)) => format!("{p} ({s})"),
        _ => "not determined".to_owned(),
    };
    line("Root pool", &root);
    line("Host binding", &binding_text(report));
    line("Backend", &report.backend.to_string());
    let pools: Vec<String> = report
        .pools
        .iter()
        .map(|p| match &p.value {
            Some(v) => format!("{}: {v} ({})", p.pool, p.source),
            None => format!("{}: -", p.pool),
        })
        .collect();
    if !pools.is_empty() {
        line("Data pools", &pools.join("; "));
    }
    for change in &report.changes {
        line("Changed", &change_text(change));
    }
    if let Some(c) = &report.correction {
        line(
            "Correction",
            &format!("{} -> {} (central wins)", c.old, c.new),
        );
    }
    if let Some(e) = &report.error {
        line("ERROR", &e.message);
    }
    for p in &report.problems {
        let tag = if p.blocking { "PROBLEM" } else { "warning" };
        line(tag, &p.message);
    }
    out
}

fn binding_text(report: &IdentityReport) -> String {
    let b = &report.host_binding;
    let short = |h: &Option<String>| {
        h.as_deref()
            .map_or_else(|| "-".to_owned(), |h| h.chars().take(12).collect())
    };
    match b.state {
        BindingState::Bound => format!(
            "bound to this host {} ({})",
            short(&b.this_host),
            b.property
        ),
        BindingState::Unbound => format!("not bound yet (this host {})", short(&b.this_host)),
        BindingState::OtherHost => format!(
            "bound to ANOTHER host {} (this host {})",
            short(&b.bound_host),
            short(&b.this_host)
        ),
        BindingState::HostUnknown => "this host has no host id: not checked".to_owned(),
        BindingState::NotChecked => "not checked".to_owned(),
    }
}

fn change_text(change: &Change) -> String {
    match change {
        Change::WroteGuid { pool, guid, source } => {
            format!("wrote GUID {guid} on {pool} (source: {})", source.as_str())
        }
        Change::CorrectedGuid { pool, old, new } => {
            format!("rewrote the GUID on {pool}: {old} -> {new}")
        }
        Change::BoundHost { pool, host } => format!(
            "bound {pool} to this host {}",
            host.chars().take(12).collect::<String>()
        ),
        Change::Rebound {
            pool,
            old_host,
            new_host,
            confirmed_by,
        } => format!(
            "rebound {pool} from host {} to this host {} (confirmed by {})",
            old_host.chars().take(12).collect::<String>(),
            new_host.chars().take(12).collect::<String>(),
            match confirmed_by {
                identity::Confirmation::Central => "central",
                identity::Confirmation::Technician => "--rebind",
            }
        ),
    }
}

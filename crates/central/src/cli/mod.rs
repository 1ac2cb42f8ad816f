//! `truenas-central …`: the reference central server and its tools (the command line of
//! the `truenas-central` binary; `main.rs` is its thin edge).
//!
//! Owns: the clap definitions, the tokio runtime, logging set-up, and what each
//! subcommand prints. One function per subcommand; provisioning lives in `provision`.
//! Does not: hold business logic — subcommands call into the library modules.
//! Invariants: the only module (with `main.rs`) that prints; every line printed with the
//! `println!`/`eprintln!` macros goes through the process-wide scrubber
//! ([`truenas_agent::scrub::scrub_output`]), which shadows the std macros in this module
//! tree (below), and so does every log line on stderr (the agent's `cli::logging`).
//! Limitations: `escrow --show-secrets` prints secrets on purpose, through its own writer.

#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `println!` that scrubs every known secret from the line before writing it.
macro_rules! println {
    () => { ::std::print!("\n") };
    ($($arg:tt)*) => {
        ::std::print!("{}\n", ::truenas_agent::scrub::scrub_output(&::std::format!($($arg)*)))
    };
}

/// `eprintln!` that scrubs every known secret first.
macro_rules! eprintln {
    () => { ::std::eprint!("\n") };
    ($($arg:tt)*) => {
        ::std::eprint!("{}\n", ::truenas_agent::scrub::scrub_output(&::std::format!($($arg)*)))
    };
}

pub mod operator;
pub mod provision;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::ExposeSecret as _;
use tokio_util::sync::CancellationToken;

use clap::Parser;
use truenas_agent::cli::logging;

use crate::store::{Store, token_hash};
use crate::{ServerOptions, devices, keys, serve};
use truenas_agent::config::read_secret_file;
use truenas_agent::fs;

/// The command line of `truenas-central`.
#[derive(Debug, Parser)]
#[command(name = "truenas-central", version = truenas_agent::VERSION, long_about = None,
          about = "The reference central server for truenas-agent and its tools")]
pub struct Cli {
    /// Log filter: a level (trace, debug, info, warn, error, off) or TARGET=LEVEL, e.g.
    /// `info` or `warn,truenas_central=debug`. A valid RUST_LOG wins.
    #[arg(long, global = true, default_value = "info", value_parser = logging::parse_filter)]
    pub log: String,
    #[command(subcommand)]
    pub command: CentralCommand,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CentralCommand {
    /// Generate the Ed25519 signing key pair: DIR/signing.key (mode 0600) and
    /// DIR/signing.pub; prints the public key for agents' `central.trusted_keys`.
    Keygen {
        /// Directory to write the key files into.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing key (agents trusting the old key will refuse documents).
        #[arg(long)]
        force: bool,
        /// Also create OUT/secrets.key (the at-rest key; never replaced) and bind this
        /// data directory to it, sealing any plain documents in it.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Serve signed documents and collect reports (plain HTTP: put a TLS proxy in front).
    Serve {
        /// Data directory (devices, documents, reports).
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port). Anything but
        /// a loopback address is warned about: the server speaks plain HTTP.
        #[arg(long)]
        listen: SocketAddr,
        /// Private signing key file written by `truenas-central keygen`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Register a device. Only the SHA-256 of its token is kept in DIR.
    Register {
        #[arg(long)]
        dir: PathBuf,
        /// Device name (letters, digits, `-_.`).
        #[arg(long)]
        name: String,
        /// Generate a new token and write it to this file (mode 0600) for the NAS.
        #[arg(
            long,
            conflicts_with = "token_file",
            required_unless_present = "token_file"
        )]
        token_out: Option<PathBuf>,
        /// Register the token already in this file (owned by you, mode 0600).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Publish a desired-state document. It is checked with the agent's own validation
    /// first (a document the agent would refuse is not published), and its `revision`
    /// must be higher than the last one.
    Publish {
        #[arg(long)]
        dir: PathBuf,
        /// Device name given at `register`.
        #[arg(long)]
        device: String,
        /// The document (JSON, schema truenas-agent.config/v1).
        #[arg(long)]
        document: PathBuf,
        /// Publish even if the revision is not higher: agents refuse a rollback and the same
        /// revision with other content, so this only tests those refusals. Does not skip the
        /// validation.
        #[arg(long)]
        force: bool,
    },
    /// Each device's GUID, last report, config state, health and failing checklist items.
    Devices {
        #[arg(long)]
        dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Refuse a device's token with 403 until `enable`.
    Disable {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        device: String,
    },
    /// Accept a disabled device's token again.
    Enable {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        device: String,
    },
    /// Provision a device: B2 bucket and scoped key (SOP phase 4), every secret, its
    /// document (docs/provisioning.md).
    Provision(Box<provision::ProvisionArgs>),
    /// Print the device's IT Glue records (SOP 4.5, 1.1); secrets only with --show-secrets.
    Escrow(provision::EscrowArgs),
    /// Replace the device's scoped B2 key without downtime; the old key is deleted once
    /// the device reports the new one applied.
    RotateKey(provision::RotateKeyArgs),
    /// Dashboard operators: `operator add --dir DIR --name NAME --token-out FILE`, `token`,
    /// `list`, `disable`, `enable` (docs/central.md, "The dashboard").
    Operator(operator::OperatorArgs),
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    logging::init(&cli.log)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()?;
    runtime.block_on(dispatch(cli.command))
}

/// Runs one subcommand.
pub async fn dispatch(command: CentralCommand) -> anyhow::Result<ExitCode> {
    match command {
        CentralCommand::Keygen { out, force, dir } => {
            let code = keygen(&out, force)?;
            match dir {
                Some(dir) => provision::bind(&out, &dir),
                None => Ok(code),
            }
        }
        CentralCommand::Serve { dir, listen, key } => run_server(dir, listen, &key).await,
        CentralCommand::Register {
            dir,
            name,
            token_out,
            token_file,
        } => register(&dir, &name, token_out, token_file),
        CentralCommand::Publish {
            dir,
            device,
            document,
            force,
        } => publish(&dir, &device, &document, force),
        CentralCommand::Devices { dir, json } => list_devices(&dir, json),
        CentralCommand::Disable { dir, device } => set_disabled(&dir, &device, true),
        CentralCommand::Enable { dir, device } => set_disabled(&dir, &device, false),
        CentralCommand::Provision(args) => provision::provision(*args).await,
        CentralCommand::Escrow(args) => provision::escrow(&args),
        CentralCommand::RotateKey(args) => provision::rotate(args).await,
        CentralCommand::Operator(args) => operator::run(args).await,
    }
}

fn keygen(out: &std::path::Path, force: bool) -> anyhow::Result<ExitCode> {
    let (_, public) = keys::write_keypair(out, force)?;
    println!("{}", public.to_config_string());
    eprintln!(
        "wrote {} (private, mode 0600) and {}; put the line above into each agent's \
         central.trusted_keys",
        out.join(keys::PRIVATE_FILE).display(),
        out.join(keys::PUBLIC_FILE).display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn run_server(
    dir: PathBuf,
    listen: SocketAddr,
    key: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let key = keys::read_signing_key(key)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    if let Some(warning) = plain_http_warning(addr) {
        tracing::warn!(listen = %addr, "central serves plain HTTP beyond loopback");
        eprintln!("{warning}");
    }
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    println!("central server listening on http://{addr}");
    std::io::stdout().flush()?;
    let options = ServerOptions {
        dir,
        key,
        change_check: Duration::from_secs(1),
    };
    serve(listener, options, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The warning for a listen address other hosts can reach: the server speaks plain HTTP,
/// so tokens, documents (B2 keys, encryption passwords) and reports would cross the
/// network in clear. `None` for a loopback address (the documented set-up behind a TLS
/// proxy on the same host).
pub fn plain_http_warning(addr: SocketAddr) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "WARNING: central serve speaks plain HTTP (no TLS) and listens on {addr}, which other \
         hosts can reach: device tokens, the documents (B2 application keys, encryption \
         passwords) and the reports would cross the network unencrypted. Agents accept \
         http:// only to a loopback IP, so they need https:// anyway. Listen on 127.0.0.1 \
         (e.g. --listen 127.0.0.1:8080) and put a TLS proxy (Caddy, nginx) in front on the \
         same host; see docs/central.md, \"Behind a TLS proxy\"."
    ))
}

fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    Ok(())
}

fn register(
    dir: &std::path::Path,
    name: &str,
    token_out: Option<PathBuf>,
    token_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let store = Store::open(dir)?;
    match (token_out, token_file) {
        (_, Some(file)) => {
            let token = read_secret_file("--token-file", &file)?;
            store.register(name, &token_hash(token.expose_secret()))?;
            println!(
                "registered device {name} with the token in {}",
                file.display()
            );
        }
        (Some(out), None) => {
            if fs::stamp(&out)?.is_some() {
                anyhow::bail!(
                    "{} exists; refusing to overwrite a token file",
                    out.display()
                );
            }
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let token = secrecy::SecretString::from(URL_SAFE_NO_PAD.encode(bytes));
            store.register(name, &token_hash(token.expose_secret()))?;
            let line = format!("{}\n", token.expose_secret());
            fs::write_atomic(&out, line.as_bytes(), 0o600)?;
            println!(
                "registered device {name}; its token is in {} (mode 0600): install it on the NAS \
                 as central.token_file, owned by the agent's user, and delete this copy",
                out.display()
            );
        }
        (None, None) => anyhow::bail!("give --token-out or --token-file"),
    }
    Ok(ExitCode::SUCCESS)
}

fn publish(
    dir: &std::path::Path,
    device: &str,
    document: &std::path::Path,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let store = Store::open(dir)?;
    let bytes = fs::read(document)?;
    let revision = store.publish_validated(device, &bytes, force)?;
    println!("published revision {revision} for device {device}");
    Ok(ExitCode::SUCCESS)
}

fn list_devices(dir: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open(dir)?;
    let summaries = devices::summarize(&store)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &summaries)?;
        writeln!(stdout)?;
    } else {
        write!(
            stdout,
            "{}",
            devices::render(&summaries, chrono::Utc::now())
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn set_disabled(dir: &std::path::Path, device: &str, disabled: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open(dir)?;
    store.set_disabled(device, disabled)?;
    println!(
        "device {device} {}",
        if disabled {
            "disabled (403)"
        } else {
            "enabled"
        }
    );
    Ok(ExitCode::SUCCESS)
}

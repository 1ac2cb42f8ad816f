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

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::ExposeSecret as _;
use tokio_util::sync::CancellationToken;

use clap::Parser;
use truenas_agent::cli::logging;

use crate::config::CentralConfig;
use crate::db::{Database, Db, token_hash};
use crate::{Retention, ServerOptions, datastore, devices, keys, serve};
use truenas_agent::config::read_secret_file;
use truenas_agent::fs;

/// The environment variable `--database` is also read from.
pub const DATABASE_ENV: &str = "TRUENAS_CENTRAL_DATABASE";

/// Where central's data lives (every subcommand that reads or writes it).
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Data directory: the SQLite database `central.db` (unless --database is given), the
    /// at-rest key binding `at-rest.json`, and an old file layout to import on first start.
    #[arg(long)]
    pub dir: PathBuf,
    /// PostgreSQL instead of SQLite: `postgres://USER:PASSWORD@HOST/DB`. Prefer the
    /// environment variable or --database-file: other users can see a command line (ps).
    #[arg(long, env = DATABASE_ENV, hide_env_values = true, value_name = "URL",
          value_parser = secret_arg)]
    pub database: Option<SecretArg>,
    /// A file (yours, mode 0600 or 0400) holding the PostgreSQL URL on one line.
    #[arg(long, value_name = "FILE")]
    pub database_file: Option<PathBuf>,
}

/// A command-line value that is secret (the database URL may hold a password): never
/// shown by `Debug`.
#[derive(Clone)]
pub struct SecretArg(secrecy::SecretString);

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[allow(
    clippy::unnecessary_wraps,
    reason = "clap's value parser signature; every text is accepted here and checked later without echoing it"
)]
fn secret_arg(text: &str) -> Result<SecretArg, std::convert::Infallible> {
    Ok(SecretArg(secrecy::SecretString::from(text.to_owned())))
}

impl DataArgs {
    /// The database these flags name (SQLite in DIR by default). The URL is registered
    /// with the output scrubber first: nothing printed afterwards shows it or its password.
    pub fn database(&self) -> anyhow::Result<Database> {
        let url = match (&self.database, &self.database_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "give the PostgreSQL URL once: --database (or {DATABASE_ENV}) or --database-file"
            ),
            (Some(SecretArg(url)), None) => Some(url.clone()),
            (None, Some(file)) => Some(read_secret_file("--database-file", file)?),
            (None, None) => None,
        };
        if let Some(url) = &url {
            remember_url(url);
        }
        Ok(Database::from_flag(&self.dir, url)?)
    }

    /// Opens the data (see `datastore::open`).
    pub async fn open(&self) -> anyhow::Result<Db> {
        let database = self.database()?;
        Ok(datastore::open(&self.dir, &database).await?)
    }
}

/// Registers a database URL and its password with the process-wide scrubber.
fn remember_url(url: &secrecy::SecretString) {
    let text = url.expose_secret();
    let password = text
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| secrecy::SecretString::from(password.to_owned()));
    truenas_agent::scrub::remember_all(std::iter::once(url).chain(password.as_ref()));
}

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
        /// data directory (and its database) to it, importing an old file layout in it.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// With --dir: the PostgreSQL database (as for the other subcommands).
        #[arg(long, env = DATABASE_ENV, hide_env_values = true, value_name = "URL",
              value_parser = secret_arg, requires = "dir")]
        database: Option<SecretArg>,
        /// With --dir: a file holding the PostgreSQL URL.
        #[arg(long, value_name = "FILE", requires = "dir")]
        database_file: Option<PathBuf>,
    },
    /// Serve signed documents and collect reports (plain HTTP: put a TLS proxy in front).
    Serve {
        #[command(flatten)]
        data: DataArgs,
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port). Anything but
        /// a loopback address is warned about: the server speaks plain HTTP.
        #[arg(long)]
        listen: SocketAddr,
        /// Private signing key file written by `truenas-central keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Keep reports this many days (each device's latest is always kept); deletion runs
        /// while serving, hourly.
        #[arg(long, default_value_t = crate::db::DEFAULT_RETENTION_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=36_500))]
        retention_days: u32,
        /// The central config file (TOML): fleet policy, dashboard, webhooks
        /// (docs/central.md, "The central config file"). Without it: the defaults, no
        /// webhooks.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Register a device. Only the SHA-256 of its token is kept.
    Register {
        #[command(flatten)]
        data: DataArgs,
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
        #[command(flatten)]
        data: DataArgs,
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
        #[command(flatten)]
        data: DataArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Refuse a device's token with 403 until `enable`.
    Disable {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        device: String,
    },
    /// Accept a disabled device's token again.
    Enable {
        #[command(flatten)]
        data: DataArgs,
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
        CentralCommand::Keygen {
            out,
            force,
            dir,
            database,
            database_file,
        } => {
            let code = keygen(&out, force)?;
            match dir {
                Some(dir) => {
                    let data = DataArgs {
                        dir,
                        database,
                        database_file,
                    };
                    provision::bind(&out, &data).await
                }
                None => Ok(code),
            }
        }
        CentralCommand::Serve {
            data,
            listen,
            key,
            retention_days,
            config,
        } => run_server(&data, listen, &key, retention_days, config.as_deref()).await,
        CentralCommand::Register {
            data,
            name,
            token_out,
            token_file,
        } => register(&data, &name, token_out, token_file).await,
        CentralCommand::Publish {
            data,
            device,
            document,
            force,
        } => publish(&data, &device, &document, force).await,
        CentralCommand::Devices { data, json } => list_devices(&data, json).await,
        CentralCommand::Disable { data, device } => set_disabled(&data, &device, true).await,
        CentralCommand::Enable { data, device } => set_disabled(&data, &device, false).await,
        CentralCommand::Provision(args) => provision::provision(*args).await,
        CentralCommand::Escrow(args) => provision::escrow(&args).await,
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
    data: &DataArgs,
    listen: SocketAddr,
    key: &std::path::Path,
    retention_days: u32,
    config: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    // The config first: a bad file is refused before anything is opened.
    let config = match config {
        Some(path) => CentralConfig::load(path)?,
        None => CentralConfig::default(),
    };
    let key = keys::read_signing_key(key)?;
    let database = data.database()?;
    let db = datastore::open(&data.dir, &database).await?;
    tracing::info!(database = %database.backend(), schema = db.schema_version().await?, "central database open");
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
        retention: Retention {
            days: retention_days,
            ..Retention::default()
        },
        config: std::sync::Arc::new(config),
        ..ServerOptions::new(key)
    };
    serve(listener, db.clone(), options, shutdown).await?;
    db.close().await;
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

async fn register(
    data: &DataArgs,
    name: &str,
    token_out: Option<PathBuf>,
    token_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    // Everything about the token file is checked before the database is opened.
    let token = match (&token_out, &token_file) {
        (_, Some(file)) => Some(read_secret_file("--token-file", file)?),
        (Some(out), None) => {
            if fs::stamp(out)?.is_some() {
                anyhow::bail!(
                    "{} exists; refusing to overwrite a token file",
                    out.display()
                );
            }
            None
        }
        (None, None) => anyhow::bail!("give --token-out or --token-file"),
    };
    let db = data.open().await?;
    match (token_out, token_file, token) {
        (_, Some(file), Some(token)) => {
            db.register(name, &token_hash(token.expose_secret()))
                .await?;
            println!(
                "registered device {name} with the token in {}",
                file.display()
            );
        }
        (Some(out), None, _) => {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let token = secrecy::SecretString::from(URL_SAFE_NO_PAD.encode(bytes));
            db.register(name, &token_hash(token.expose_secret()))
                .await?;
            let line = format!("{}\n", token.expose_secret());
            fs::write_atomic(&out, line.as_bytes(), 0o600)?;
            println!(
                "registered device {name}; its token is in {} (mode 0600): install it on the NAS \
                 as central.token_file, owned by the agent's user, and delete this copy",
                out.display()
            );
        }
        _ => anyhow::bail!("give --token-out or --token-file"),
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn publish(
    data: &DataArgs,
    device: &str,
    document: &std::path::Path,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let bytes = fs::read(document)?;
    let db = data.open().await?;
    let revision = db.publish_validated(device, &bytes, force).await?;
    db.close().await;
    println!("published revision {revision} for device {device}");
    Ok(ExitCode::SUCCESS)
}

async fn list_devices(data: &DataArgs, json: bool) -> anyhow::Result<ExitCode> {
    let db = data.open().await?;
    let summaries = devices::summarize(&db).await?;
    db.close().await;
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

async fn set_disabled(data: &DataArgs, device: &str, disabled: bool) -> anyhow::Result<ExitCode> {
    let db = data.open().await?;
    db.set_disabled(device, disabled).await?;
    db.close().await;
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

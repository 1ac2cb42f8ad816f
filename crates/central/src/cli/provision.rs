//! `truenas-central provision | escrow | rotate-key` (issue 15): the provisioning
//! commands of the central tool. The command lines are a contract (docs/provisioning.md).
//!
//! Owns: the flags and the rendering (text or `--json`) of
//! `crate::provision::Report` and `crate::escrow::Escrow`, and the exit
//! codes (`Outcome::exit_code`).
//! Does not: decide anything (`crate::provision` does).
//! Invariants: no secret is printed except by `escrow --show-secrets`; nothing here logs.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::b2admin::{AdminOptions, DEFAULT_API};
use crate::escrow;
use crate::provision::inputs::{Request, Rotate};
use crate::provision::rotate::{RotateRequest, rotate_key};
use crate::provision::{self, Report};

use super::DataArgs;

/// `truenas-central provision`.
#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Device name (registered if new).
    #[arg(long)]
    pub device: String,
    /// NinjaOne organization UUID (UUIDv4).
    #[arg(long)]
    pub org_uuid: String,
    /// NinjaOne location UUID (UUIDv4); the bucket is truenas-<it, lower-case, no dashes>.
    #[arg(long)]
    pub location_uuid: String,
    /// Location name (the IT Glue record's label).
    #[arg(long)]
    pub location_name: Option<String>,
    /// The pool that carries the device GUID.
    #[arg(long)]
    pub root_pool: Option<String>,
    /// Pools to back up, comma-separated (default: every imported pool but boot-pool).
    #[arg(long)]
    pub pools: Option<String>,
    /// Client upload speed in Mbit/s (bandwidth limit: 20 % in business hours, 80 % off).
    #[arg(long)]
    pub uplink_mbps: Option<String>,
    /// Business hours HH:MM-HH:MM (default 08:00-18:00; needs --uplink-mbps).
    #[arg(long)]
    pub business_hours: Option<String>,
    /// File with one line `<applicationKeyId>:<applicationKey>` (mode 0600/0400, yours).
    #[arg(long)]
    pub b2_admin_key_file: PathBuf,
    /// B2 API base (loopback http:// only for tests).
    #[arg(long, default_value = DEFAULT_API)]
    pub b2_api: String,
    /// Allow the irreversible step: default retention COMPLIANCE 14 days on the bucket.
    #[arg(long)]
    pub confirm_compliance_lock: bool,
    /// Print the plan; change nothing in B2 or DIR.
    #[arg(long)]
    pub dry_run: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Make new secrets of this kind (repeat or comma-separate): snmp, encryption.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub rotate: Vec<Rotate>,
    /// Where a new device's token is written (default: DEVICE.token beside DIR).
    #[arg(long)]
    pub token_out: Option<PathBuf>,
}

/// `truenas-central escrow`.
#[derive(Debug, clap::Args)]
pub struct EscrowArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Device name.
    #[arg(long)]
    pub device: String,
    /// Show the secrets (B2 application key, encryption password and salt, SNMP secrets).
    #[arg(long)]
    pub show_secrets: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `truenas-central rotate-key`.
#[derive(Debug, clap::Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Device name.
    #[arg(long)]
    pub device: String,
    /// File with one line `<applicationKeyId>:<applicationKey>` (mode 0600/0400, yours).
    #[arg(long)]
    pub b2_admin_key_file: PathBuf,
    /// B2 API base (loopback http:// only for tests).
    #[arg(long, default_value = DEFAULT_API)]
    pub b2_api: String,
    /// Seconds to wait for the device's report before giving up (exit 6; run again to
    /// finish).
    #[arg(long, default_value_t = 900)]
    pub wait_secs: u64,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

fn print_report(report: &Report, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", provision::render(report))?;
    }
    Ok(ExitCode::from(report.exit_code))
}

/// Runs `truenas-central provision`.
pub async fn provision(args: ProvisionArgs) -> anyhow::Result<ExitCode> {
    let database = args.data.database()?;
    let req = Request {
        dir: args.data.dir,
        database,
        device: args.device,
        org_uuid: args.org_uuid,
        location_uuid: args.location_uuid,
        location_name: args.location_name,
        root_pool: args.root_pool,
        pools: args.pools,
        uplink_mbps: args.uplink_mbps,
        business_hours: args.business_hours,
        admin_key_file: args.b2_admin_key_file,
        b2_api: args.b2_api.clone(),
        confirm_compliance_lock: args.confirm_compliance_lock,
        dry_run: args.dry_run,
        rotate: args.rotate,
        token_out: args.token_out,
    };
    let options = AdminOptions {
        api_base: args.b2_api,
        ..AdminOptions::default()
    };
    let report = provision::provision(&req, options).await;
    print_report(&report, args.json)
}

/// Runs `truenas-central rotate-key`.
pub async fn rotate(args: RotateKeyArgs) -> anyhow::Result<ExitCode> {
    let database = args.data.database()?;
    let req = RotateRequest {
        dir: args.data.dir,
        database,
        device: args.device,
        admin_key_file: args.b2_admin_key_file,
        b2_api: args.b2_api.clone(),
        wait: Duration::from_secs(args.wait_secs),
        poll: Duration::from_secs(1),
    };
    let options = AdminOptions {
        api_base: args.b2_api,
        ..AdminOptions::default()
    };
    let report = rotate_key(&req, options).await;
    print_report(&report, args.json)
}

/// Runs `truenas-central escrow`.
pub async fn escrow(args: &EscrowArgs) -> anyhow::Result<ExitCode> {
    let db = args.data.open().await?;
    let record = escrow::escrow(&db, &args.device, args.show_secrets).await?;
    db.close().await;
    let Some(record) = record else {
        anyhow::bail!(
            "central holds no provisioning secrets for device {}: run `truenas-central provision` first",
            args.device
        );
    };
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &record)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", escrow::render(&record))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `truenas-central keygen --out OUT --dir DIR`: binds DIR to OUT/secrets.key (created if
/// missing, never replaced), then opens its database with it (refused when the database
/// holds values sealed with another key; an old file layout in DIR is imported, its plain
/// documents sealed in place).
pub async fn bind(out: &std::path::Path, data: &DataArgs) -> anyhow::Result<ExitCode> {
    let database = data.database()?;
    let dir = &data.dir;
    let key_file = out.join(AT_REST_KEY_FILE);
    // A database that already names another key is refused before anything is bound.
    if let Some(recorded) = crate::datastore::recorded_key_id(&database).await? {
        let given = crate::crypto::AtRestKey::read(&key_file)
            .map_or_else(|_| "(a new key)".to_owned(), |k| k.id().to_owned());
        if given != recorded {
            return Err(crate::db::DbError::AtRestKeyMismatch {
                database: recorded,
                given,
            }
            .into());
        }
    }
    let files_sealed = crate::store::Store::new(dir).holds_sealed_files()?;
    let id = crate::at_rest::bind(dir, &key_file, files_sealed)?;
    let db = crate::datastore::open(dir, &database).await?;
    db.close().await;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "data directory {} and its {} database are sealed with at-rest key {id} ({}, mode \
         0600; keep a copy apart from the database's backups: without it the secrets in it \
         are lost)",
        dir.display(),
        database.backend(),
        key_file.display(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The at-rest key's file name in `keygen`'s output directory.
pub const AT_REST_KEY_FILE: &str = "secrets.key";

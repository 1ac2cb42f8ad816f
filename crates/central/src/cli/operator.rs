//! `truenas-central operator …`: dashboard operators and their tokens.
//!
//! Owns: `operator add` (a new operator and its first token, written to `--token-out`,
//! mode 0600), `operator token` (another token for an operator), `operator list`,
//! `operator disable` / `operator enable`.
//! Does not: touch devices, documents or anything sealed (the database is opened with a
//! sealer that refuses, so nothing here can read or write a secret at rest).
//! Invariants: a token is written only to a file that did not exist (never printed); the
//! database keeps its SHA-256 only; a token file is removed again if the database
//! refuses the token, so no file holds a token that does not work.
//! Limitations: none.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};

use super::DataArgs;
use crate::db::{Db, SealError, Sealer};
use crate::store::token_hash;
use truenas_agent::fs;

/// `truenas-central operator …`.
#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    #[command(subcommand)]
    pub command: OperatorCommand,
}

/// The operator subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OperatorCommand {
    /// Create an operator with a new token (written to --token-out, mode 0600).
    Add {
        #[command(flatten)]
        db: DataArgs,
        /// Operator name (letters, digits, `-_.@`).
        #[arg(long)]
        name: String,
        /// File to write the new token to (must not exist).
        #[arg(long)]
        token_out: PathBuf,
    },
    /// Give an existing operator another token (e.g. one for Prometheus).
    Token {
        #[command(flatten)]
        db: DataArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        token_out: PathBuf,
    },
    /// List the operators.
    List {
        #[command(flatten)]
        db: DataArgs,
    },
    /// Stop an operator's tokens and sessions from working.
    Disable {
        #[command(flatten)]
        db: DataArgs,
        #[arg(long)]
        name: String,
    },
    /// Let a disabled operator in again.
    Enable {
        #[command(flatten)]
        db: DataArgs,
        #[arg(long)]
        name: String,
    },
}

/// Operator commands never seal or open anything.
struct NoSealing;

impl Sealer for NoSealing {
    fn key_id(&self) -> String {
        "none".to_owned()
    }

    fn seal(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, SealError> {
        Err("operator commands do not seal secrets".into())
    }

    fn open(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, SealError> {
        Err("operator commands do not open secrets".into())
    }
}

async fn open(args: DataArgs) -> anyhow::Result<Db> {
    // As every subcommand: --database, its environment variable or --database-file (the
    // URL registered with the output scrubber).
    let database = args.database()?;
    Ok(Db::open(&database, Arc::new(NoSealing)).await?)
}

/// Runs one operator subcommand.
pub async fn run(args: OperatorArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        OperatorCommand::Add {
            db,
            name,
            token_out,
        } => {
            let db = open(db).await?;
            let db = &db;
            let who = name.as_str();
            with_new_token(&token_out, |hash| async move {
                db.add_operator(who, &hash).await.map(|_| ())
            })
            .await?;
            println!(
                "added operator {name}; the token is in {} (mode 0600): log in with it at the \
                 dashboard, or send it as `Authorization: Bearer …`; then delete this copy",
                token_out.display()
            );
        }
        OperatorCommand::Token {
            db,
            name,
            token_out,
        } => {
            let db = open(db).await?;
            let db = &db;
            let who = name.as_str();
            with_new_token(&token_out, |hash| async move {
                db.add_operator_token(who, &hash).await
            })
            .await?;
            println!(
                "added a token for operator {name} in {} (mode 0600)",
                token_out.display()
            );
        }
        OperatorCommand::List { db } => {
            let db = open(db).await?;
            let operators = db.operators().await?;
            if operators.is_empty() {
                println!("no operators: add one with `truenas-central operator add`");
            }
            for o in operators {
                println!(
                    "{}{}  (since {})",
                    o.name,
                    if o.disabled { " [disabled]" } else { "" },
                    truenas_agent::central::report::format_time(&o.created_at)
                );
            }
        }
        OperatorCommand::Disable { db, name } => {
            open(db).await?.set_operator_disabled(&name, true).await?;
            println!("operator {name} disabled: its tokens and sessions no longer work");
        }
        OperatorCommand::Enable { db, name } => {
            open(db).await?.set_operator_disabled(&name, false).await?;
            println!("operator {name} enabled");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Draws a token, writes it to `out` (which must not exist), and stores its hash with
/// `store`; removes the file again if `store` fails.
async fn with_new_token<F, Fut>(out: &Path, store: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::db::DbError>>,
{
    if fs::stamp(out)?.is_some() {
        anyhow::bail!(
            "{} exists; refusing to overwrite a token file",
            out.display()
        );
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = SecretString::from(URL_SAFE_NO_PAD.encode(bytes));
    truenas_agent::scrub::remember_all([&token]);
    fs::write_atomic(
        out,
        format!("{}\n", token.expose_secret()).as_bytes(),
        0o600,
    )?;
    if let Err(e) = store(token_hash(token.expose_secret())).await {
        fs::remove_file_if_exists(out)
            .with_context(|| format!("also could not remove {}", out.display()))?;
        return Err(e.into());
    }
    Ok(())
}

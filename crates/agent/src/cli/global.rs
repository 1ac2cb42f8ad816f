//! What every subcommand is given: the global flags, and the one way to write to stdout.
//!
//! Owns: [`GlobalArgs`] (the options every subcommand understands) and [`write_stdout`]
//! (stdout scrubbed of every known secret, a closed pipe surfaced as an error).
//! Does not: resolve the configuration from the flags (`common.rs`) or run anything.
//! Invariants: nothing reaches stdout through [`write_stdout`] unscrubbed.

use std::path::PathBuf;

use super::logging;

/// Writes `text` to stdout, scrubbed, and flushes: a closed pipe (`status | head`)
/// surfaces as an error [`finish`](super::finish) maps to exit 0.
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    let text = crate::scrub::scrub_output(text);
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, text.as_bytes())?;
    std::io::Write::flush(&mut out)
}

/// Options every subcommand understands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Agent configuration file (TOML). Values given on the command line win over it.
    #[arg(long, global = true, env = "TRUENAS_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Middleware URL: unix:///var/run/middleware/middlewared.sock (default),
    /// ws://127.0.0.1:6000 (up to 25.10; 26.0+ only on vendor builds), or wss://host.
    #[arg(long, global = true, env = "TRUENAS_AGENT_MIDDLEWARE")]
    pub middleware: Option<String>,
    /// File holding a middleware API key (only for ws:// loopback or wss://).
    #[arg(long, global = true)]
    pub api_key_file: Option<PathBuf>,
    /// Owner of the API key (required with an API key on TrueNAS 25.04+).
    #[arg(long, global = true)]
    pub api_user: Option<String>,
    /// Extra CA certificate (PEM) trusted for wss://.
    #[arg(long, global = true)]
    pub tls_ca_file: Option<PathBuf>,
    /// Pinned SHA-256 fingerprint of the middleware's TLS certificate (hex).
    #[arg(long, global = true)]
    pub tls_pin: Option<String>,
    /// State directory (owned ids, fingerprints, spool, last results); an absolute path.
    #[arg(long, global = true, env = "TRUENAS_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log filter: a level (trace, debug, info, warn, error, off) or TARGET=LEVEL, e.g.
    /// `info` or `warn,truenas_agent=debug`. A valid RUST_LOG wins.
    #[arg(long, global = true, default_value = "info", env = "TRUENAS_AGENT_LOG",
          value_parser = logging::parse_filter)]
    pub log: String,
}

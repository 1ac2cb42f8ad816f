//! `truenas-sim`: run a simulated TrueNAS middleware until SIGTERM/SIGINT.
//!
//! Owns: the flags, building the scenario (preset or file, flavour override, faults from
//! flags), printing the bound addresses (and the HTTPS certificate's SHA-256) as one JSON
//! line on stdout once listening, and saving the box on exit when asked. Its flags are
//! its own: none of the agent's (`--middleware`, `--state-dir`, …) apply; `--version` is
//! the TrueNAS version to pretend to be, not this binary's.
//! Does not: implement anything of the simulator (the rest of this crate).
//! Invariants: the ready line is the first and only line on stdout; nothing secret is
//! printed (the saved scenario has secrets redacted; the HTTPS key never leaves memory).
//! Limitations: faults beyond the flags below go in the scenario file's `faults`; the
//! HTTPS certificate is a fresh self-signed one per run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use truenas_agent::cli::logging;
use truenas_agent::middleware::ApiFlavor;

use crate::{JobTiming, Scenario, ServeOptions, Simulator, TlsIdentity};

/// The command line of `truenas-sim`.
#[derive(Debug, Parser)]
#[command(
    name = "truenas-sim",
    about = "Run a simulated TrueNAS middleware (tests, demo, benchmarks)",
    long_about = None,
    // `--version` is the TrueNAS version to simulate (below), not this binary's.
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub args: Args,
    /// Log filter: a level (trace, debug, info, warn, error, off) or TARGET=LEVEL, e.g.
    /// `info` or `warn,truenas_sim=debug`. A valid RUST_LOG wins.
    #[arg(long, default_value = "info", value_parser = logging::parse_filter)]
    pub log: String,
}

/// What to simulate and where to listen.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TrueNAS version to pretend to be: 24.10, 25.04, 25.10, 26.0 or 27.0 (default: the scenario's).
    #[arg(long = "version", value_name = "VERSION")]
    pub flavor: Option<String>,
    /// Unix socket to listen on (WebSocket over the socket; peers are root).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Loopback address for middlewared's TCP listener (127.0.0.1:6000 on a box), e.g.
    /// 127.0.0.1:0; peers must log in with an API key. 26.0+ only with --vendored.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Loopback address for an nginx-like HTTPS listener (a fresh self-signed
    /// certificate; its SHA-256 fingerprint is printed, for pinning).
    #[arg(long, value_name = "ADDR")]
    pub https: Option<SocketAddr>,
    /// Loopback address for nginx's plain HTTP port.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// The HTTP port redirects to HTTPS (307), as with "Web Interface HTTP → HTTPS Redirect".
    #[arg(long, requires = "http")]
    pub https_redirect: bool,
    /// A vendor build: on 26.0+ only these open middlewared's TCP listener (--listen).
    #[arg(long)]
    pub vendored: bool,
    /// Scenario file (JSON) describing the box; default: the two_pools preset.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Save the box to this file on exit (secrets redacted).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// How long each job takes (e.g. 2s, 500ms); 0 leaves jobs WAITING.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub job_duration: Duration,
    /// TCP connections count as insecure: API keys used over them are revoked (25.04+).
    #[arg(long)]
    pub insecure_tcp: bool,
    /// Make the next cloud sync run fail with this text (repeatable, in order).
    #[arg(long, value_name = "TEXT")]
    pub fail_sync: Vec<String>,
}

/// Parses `2s`, `500ms`, `1m` or a number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map_or((t, "s"), |i| t.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 2s or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("`{text}`: unit must be ms, s or m")),
    }
}

fn parse_flavor(text: &str) -> anyhow::Result<ApiFlavor> {
    ApiFlavor::ALL
        .into_iter()
        .find(|f| f.as_str() == text)
        .ok_or_else(|| {
            anyhow::anyhow!("--version must be 24.10, 25.04, 25.10, 26.0 or 27.0, not `{text}`")
        })
}

fn scenario(args: &Args) -> anyhow::Result<Scenario> {
    let flavor = args.flavor.as_deref().map(parse_flavor).transpose()?;
    let mut s = match (&args.scenario, flavor) {
        (Some(path), _) => {
            Scenario::load(path).with_context(|| format!("loading {}", path.display()))?
        }
        (None, Some(f)) => Scenario::two_pools(f),
        (None, None) => {
            anyhow::bail!("give --version (24.10, 25.04, 25.10, 26.0, 27.0) or --scenario FILE")
        }
    };
    if let Some(f) = flavor {
        s.flavor = f;
    }
    s.system.vendored |= args.vendored;
    s.faults.insecure_tcp |= args.insecure_tcp;
    s.faults
        .sync_failures
        .extend(args.fail_sync.iter().cloned());
    Ok(s)
}

/// Parses the command line and runs the simulator until SIGTERM/SIGINT.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    logging::init(&cli.log)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(cli.args))
}

/// Runs the simulator with parsed arguments.
pub async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let timing = if args.job_duration.is_zero() {
        JobTiming::Manual
    } else {
        JobTiming::Auto {
            duration: args.job_duration,
        }
    };
    let sim = Simulator::new(scenario(&args)?).with_job_timing(timing);
    let https = match args.https {
        Some(addr) => Some((
            addr,
            TlsIdentity::self_signed(&["localhost", &addr.ip().to_string()])
                .context("making the HTTPS certificate")?,
        )),
        None => None,
    };
    let opts = ServeOptions {
        socket: args.socket.clone(),
        listen: args.listen,
        https,
        http: args.http,
        https_redirect: args.https_redirect,
    };
    let server = sim.serve(opts).await.context("starting the simulator")?;
    let ready = serde_json::json!({
        "flavor": sim.flavor().as_str(),
        "version": sim.version(),
        "api_versions": sim.api_versions(),
        "socket": server.socket_path(),
        "unix_url": server.unix_url(),
        "tcp": server.tcp_addr().map(|a| a.to_string()),
        "ws_url": server.ws_url(),
        "wss_url": server.wss_url(),
        "tls_sha256": server.tls_fingerprint().map(|f| f.to_string()),
        "http_url": server.http_ws_url(),
        "pid": std::process::id(),
    });
    truenas_agent::cli::write_stdout(&format!("{ready}\n")).context("writing the ready line")?;
    wait_for_signal().await?;
    server.shutdown().await;
    if let Some(path) = &args.save {
        sim.save(path)
            .with_context(|| format!("saving the box to {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("2h").is_err());
    }
}

//! `truenas-agent sim`: run a simulated TrueNAS middleware until SIGTERM/SIGINT.
//!
//! Owns: the flags, building the scenario (preset or file, flavour override, faults from
//! flags), printing the bound addresses as one JSON line on stdout once listening, and
//! saving the box on exit when asked.
//! Does not: implement anything of the simulator (`crate::sim`).
//! Invariants: the ready line is the first and only line on stdout; nothing secret is
//! printed (the saved scenario has secrets redacted).
//! Limitations: faults beyond the flags below go in the scenario file's `faults`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::middleware::ApiFlavor;
use crate::sim::{JobTiming, Scenario, ServeOptions, Simulator};

/// Arguments of `sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TrueNAS version to pretend to be: 24.10, 25.04 or 25.10 (default: the scenario's).
    #[arg(long = "version", value_name = "VERSION")]
    pub flavor: Option<String>,
    /// Unix socket to listen on (WebSocket over the socket; peers are root).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Loopback TCP address to listen on, e.g. 127.0.0.1:0 (peers must log in with an API key).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
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
    match text {
        "24.10" => Ok(ApiFlavor::V24_10),
        "25.04" => Ok(ApiFlavor::V25_04),
        "25.10" => Ok(ApiFlavor::V25_10),
        other => anyhow::bail!("--version must be 24.10, 25.04 or 25.10, not `{other}`"),
    }
}

fn scenario(args: &Args) -> anyhow::Result<Scenario> {
    let flavor = args.flavor.as_deref().map(parse_flavor).transpose()?;
    let mut s = match (&args.scenario, flavor) {
        (Some(path), _) => {
            Scenario::load(path).with_context(|| format!("loading {}", path.display()))?
        }
        (None, Some(f)) => Scenario::two_pools(f),
        (None, None) => anyhow::bail!("give --version (24.10, 25.04, 25.10) or --scenario FILE"),
    };
    if let Some(f) = flavor {
        s.flavor = f;
    }
    s.faults.insecure_tcp |= args.insecure_tcp;
    s.faults
        .sync_failures
        .extend(args.fail_sync.iter().cloned());
    Ok(s)
}

/// Runs the simulator.
pub async fn run(args: Args, _global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    let timing = if args.job_duration.is_zero() {
        JobTiming::Manual
    } else {
        JobTiming::Auto {
            duration: args.job_duration,
        }
    };
    let sim = Simulator::new(scenario(&args)?).with_job_timing(timing);
    let opts = ServeOptions {
        socket: args.socket.clone(),
        listen: args.listen,
    };
    let server = sim.serve(opts).await.context("starting the simulator")?;
    let ready = serde_json::json!({
        "flavor": sim.flavor().as_str(),
        "version": sim.version(),
        "socket": server.socket_path(),
        "unix_url": server.unix_url(),
        "tcp": server.tcp_addr().map(|a| a.to_string()),
        "ws_url": server.ws_url(),
        "pid": std::process::id(),
    });
    println!("{ready}");
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

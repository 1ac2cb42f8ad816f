//! `benchtool`: the Rust helpers of the benchmarks (`benches/run.sh`); not part of the agent.
//!
//! Owns: two subcommands the Python driver (`benches/bench.py`) runs as child processes:
//! - `sim`: a middleware simulator (`truenas_sim`) on a unix socket (and optionally
//!   loopback TCP) whose **call record** can be read and reset over stdin, so the driver
//!   counts exactly which calls a client made (`calls`, `reset`, `state` — the box with
//!   secrets redacted, `admin METHOD [PARAMS…]` — a technician's edit through the
//!   middleware, with its events and outside the call record, `quit`);
//! - `b2`: the integration tests' fake Backblaze B2 (`truenas_sim::fake_b2`, the compliant
//!   SOP bucket) on loopback, for `verify --b2-api`, until stdin closes;
//! - `load`: a bounded HTTP load generator for the reference central server
//!   (`GET /v1/config` with a matching ETag → 304, or `POST /v1/reports` with a fresh
//!   `report_id` per request), printing one JSON line of throughput and latency.
//!
//! Does not: measure time or memory of other processes (the driver does, from /proc and
//! `wait4`), or print any call's params (they may hold the benchmark's fake secrets).
//! Invariants: the load generator stops after `--requests` requests or `--max-secs`
//! seconds, whichever comes first, and only ever talks to the loopback URL it is given.
//! Limitations: a binary of the dev crate, built with the release profile:
//! `cargo build --release -p truenas-dev --bin benchtool` (the driver does it).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use truenas_sim::fake_b2;
use truenas_sim::{CallOutcome, JobTiming, Scenario, ServeOptions, Simulator};

#[derive(Debug, Parser)]
#[command(name = "benchtool", about = "Helpers of benches/run.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a simulated middleware; stdin commands: `calls`, `reset`, `state`, `quit`.
    Sim {
        /// Scenario file (JSON, the simulator's format).
        #[arg(long)]
        scenario: PathBuf,
        /// Unix socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// Loopback TCP address too (API-key logins), e.g. 127.0.0.1:0.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Job duration in milliseconds (0 = jobs stay WAITING).
        #[arg(long, default_value_t = 200)]
        job_ms: u64,
    },
    /// Serve the tests' fake B2 (compliant SOP bucket) on loopback until stdin closes;
    /// prints `{"base": URL}`.
    B2 {
        /// The application key the fake accepts (the document's `b2.application_key`).
        #[arg(long)]
        app_key: String,
        /// Pools whose folders hold an encrypted object (comma-separated).
        #[arg(long, value_delimiter = ',')]
        pools: Vec<String>,
    },
    /// Bounded load on the reference central server; prints one JSON line.
    Load {
        /// Base URL, e.g. http://127.0.0.1:8080/ (loopback only).
        #[arg(long)]
        url: String,
        /// File with one device token per line (requests rotate over them).
        #[arg(long)]
        tokens: PathBuf,
        /// `etag` (GET /v1/config, If-None-Match → 304) or `report` (POST /v1/reports).
        #[arg(long)]
        mode: String,
        /// A report (JSON) to send; `report_id` and `created_at` are replaced per request.
        #[arg(long)]
        report_template: Option<PathBuf>,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Stop after this many requests.
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 20)]
        max_secs: u64,
        /// Requests sent before measuring (not counted): opens the connections.
        #[arg(long, default_value_t = 200)]
        warmup: u64,
    },
}

fn main() -> ExitCode {
    // `cargo bench` appends `--bench`; accept and drop it so both ways of running work.
    let args = std::env::args().filter(|a| a != "--bench");
    let cli = Cli::parse_from(args);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("benchtool: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sim {
                scenario,
                socket,
                listen,
                job_ms,
            } => sim(scenario, socket, listen, job_ms).await,
            Command::B2 { app_key, pools } => fake_b2_serve(&app_key, &pools).await,
            Command::Load {
                url,
                tokens,
                mode,
                report_template,
                concurrency,
                requests,
                max_secs,
                warmup,
            } => {
                let opts = LoadOptions {
                    url,
                    tokens,
                    mode,
                    report_template,
                    concurrency,
                    requests,
                    max: Duration::from_secs(max_secs),
                    warmup,
                };
                load(opts).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchtool: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// sim
// ---------------------------------------------------------------------------------------

async fn sim(
    scenario: PathBuf,
    socket: PathBuf,
    listen: Option<SocketAddr>,
    job_ms: u64,
) -> anyhow::Result<()> {
    let box_ =
        Scenario::load(&scenario).with_context(|| format!("loading {}", scenario.display()))?;
    let timing = if job_ms == 0 {
        JobTiming::Manual
    } else {
        JobTiming::Auto {
            duration: Duration::from_millis(job_ms),
        }
    };
    let simulator = Simulator::new(box_).with_job_timing(timing);
    let server = simulator
        .serve(ServeOptions {
            socket: Some(socket),
            listen,
            ..Default::default()
        })
        .await
        .context("starting the simulator")?;
    let ready = json!({
        "flavor": simulator.flavor().as_str(),
        "version": simulator.version(),
        "socket": server.socket_path(),
        "unix_url": server.unix_url(),
        "tcp": server.tcp_addr().map(|a| a.to_string()),
        "pid": std::process::id(),
    });
    println_flush(&ready.to_string())?;

    // stdin is read on a blocking thread; each line is one command.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        match line.trim() {
            "calls" => println_flush(&summarize(&simulator).to_string())?,
            "reset" => {
                simulator.clear_calls();
                println_flush("{\"reset\":true}")?;
            }
            // The box with every secret redacted (the simulator's own `redacted`).
            "state" => {
                let state = serde_json::to_string(&simulator.state().redacted())?;
                println_flush(&state)?;
            }
            "quit" => break,
            "" => {}
            // A technician's edit through the middleware (validated, sends its events,
            // not in the call record): `admin METHOD PARAMS-AS-A-JSON-ARRAY`.
            other if other.starts_with("admin ") => {
                println_flush(&admin(&simulator, &other["admin ".len()..]).to_string())?;
            }
            other => println_flush(
                &json!({ "error": format!("unknown command `{other}`") }).to_string(),
            )?,
        }
    }
    server.shutdown().await;
    Ok(())
}

/// Runs one `admin` command; the answer (or the error) as one JSON object.
fn admin(simulator: &Simulator, rest: &str) -> Value {
    let (method, params) = rest.trim().split_once(' ').unwrap_or((rest.trim(), "[]"));
    let params: Vec<Value> = match serde_json::from_str(params) {
        Ok(p) => p,
        Err(e) => return json!({ "error": format!("params must be a JSON array: {e}") }),
    };
    match simulator.admin_call(method, &params) {
        Ok(value) => json!({ "ok": value }),
        Err(e) => json!({ "error": format!("{e:?}") }),
    }
}

async fn fake_b2_serve(app_key: &str, pools: &[String]) -> anyhow::Result<()> {
    let pools: Vec<&str> = pools.iter().map(String::as_str).collect();
    let fake = fake_b2::FakeB2::start(fake_b2::Config::compliant(app_key, &pools)).await;
    println_flush(&json!({ "base": fake.base, "key_id": fake_b2::KEY_ID }).to_string())?;
    // Serve until stdin closes (the driver holds it open).
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    })
    .await?;
    Ok(())
}

/// The call record since the last `reset`, without params: counts and the method sequence.
fn summarize(simulator: &Simulator) -> Value {
    let calls = simulator.calls();
    let mut by_method: BTreeMap<String, u64> = BTreeMap::new();
    let mut sequence = Vec::with_capacity(calls.len());
    let mut writes = 0_u64;
    let mut errors = 0_u64;
    let mut conns = std::collections::BTreeSet::new();
    for call in &calls {
        *by_method.entry(call.method.clone()).or_default() += 1;
        let write = call.is_write();
        if write {
            writes += 1;
        }
        let outcome = match &call.outcome {
            CallOutcome::Ok => "ok".to_owned(),
            CallOutcome::Err(e) => {
                errors += 1;
                format!("err:{e}")
            }
            CallOutcome::Dropped { executed } => {
                errors += 1;
                format!("dropped:{executed}")
            }
            CallOutcome::Injected => {
                errors += 1;
                "injected".to_owned()
            }
        };
        conns.insert(call.conn);
        sequence.push(json!([
            call.conn,
            call.method,
            if write { "W" } else { "R" },
            outcome
        ]));
    }
    let total = calls.len() as u64;
    json!({
        "total": total,
        "writes": writes,
        "reads": total - writes,
        "errors": errors,
        "connections": conns.len(),
        "by_method": by_method,
        "sequence": sequence,
    })
}

fn println_flush(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// load
// ---------------------------------------------------------------------------------------

struct LoadOptions {
    url: String,
    tokens: PathBuf,
    mode: String,
    report_template: Option<PathBuf>,
    concurrency: usize,
    requests: u64,
    max: Duration,
    warmup: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Etag,
    Report,
}

struct Shared {
    client: reqwest::Client,
    base: String,
    mode: Mode,
    /// (token, ETag of its current document) per device.
    devices: Vec<(String, String)>,
    template: Option<Value>,
    next: AtomicU64,
}

async fn load(opts: LoadOptions) -> anyhow::Result<()> {
    let mode = match opts.mode.as_str() {
        "etag" => Mode::Etag,
        "report" => Mode::Report,
        other => bail!("--mode must be etag or report, not `{other}`"),
    };
    let base = if opts.url.ends_with('/') {
        opts.url.clone()
    } else {
        format!("{}/", opts.url)
    };
    let parsed = reqwest::Url::parse(&base).context("--url")?;
    let loopback = parsed
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    if !loopback || parsed.scheme() != "http" {
        bail!("--url must be http:// to a loopback IP (this is a local benchmark)");
    }
    let text = truenas_agent::fs::read_to_string(&opts.tokens)?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        bail!("{} holds no token", opts.tokens.display());
    }
    let template = match (&opts.report_template, mode) {
        (Some(path), _) => {
            let text = truenas_agent::fs::read_to_string(path)?;
            Some(serde_json::from_str::<Value>(&text).context("--report-template")?)
        }
        (None, Mode::Report) => bail!("--mode report needs --report-template"),
        (None, Mode::Etag) => None,
    };
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;

    let devices = learn_devices(&client, &base, mode, tokens).await?;
    let shared = Arc::new(Shared {
        client,
        base,
        mode,
        devices,
        template,
        next: AtomicU64::new(0),
    });

    // Warm-up: open the connections and let the server fill its caches.
    run_phase(
        &shared,
        opts.concurrency,
        opts.warmup,
        Duration::from_secs(10),
    )
    .await?;

    let started = Instant::now();
    let results = run_phase(&shared, opts.concurrency, opts.requests, opts.max).await?;
    let elapsed = started.elapsed().as_secs_f64();

    let (count, ok, expected) = print_results(&opts, &shared, &results, elapsed);
    if ok != count {
        bail!(
            "{} of {count} requests did not answer {expected}",
            count - ok
        );
    }
    Ok(())
}

/// Each device's token with the ETag of its current document (one 200 each, not counted).
async fn learn_devices(
    client: &reqwest::Client,
    base: &str,
    mode: Mode,
    tokens: Vec<String>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut devices = Vec::with_capacity(tokens.len());
    for token in tokens {
        let etag = if mode == Mode::Etag {
            let resp = client
                .get(format!("{base}v1/config"))
                .bearer_auth(&token)
                .send()
                .await?;
            if resp.status() != reqwest::StatusCode::OK {
                bail!(
                    "GET /v1/config answered {} (publish a document first)",
                    resp.status()
                );
            }
            let etag = resp
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .context("no ETag on the 200")?;
            resp.bytes().await?;
            etag
        } else {
            String::new()
        };
        devices.push((token, etag));
    }
    Ok(devices)
}

/// Prints the JSON line; returns (requests, requests with the expected status, expected).
fn print_results(
    opts: &LoadOptions,
    shared: &Shared,
    results: &[(u16, u64)],
    elapsed: f64,
) -> (u64, u64, u16) {
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies: Vec<u64> = Vec::with_capacity(results.len());
    for (status, micros) in results {
        *statuses.entry(status.to_string()).or_default() += 1;
        latencies.push(*micros);
    }
    latencies.sort_unstable();
    let expected = match shared.mode {
        Mode::Etag => 304,
        Mode::Report => 202,
    };
    let ok = results.iter().filter(|(s, _)| *s == expected).count() as u64;
    let count = results.len() as u64;
    #[allow(clippy::cast_precision_loss)]
    let rps = count as f64 / elapsed;
    println!(
        "{}",
        json!({
            "mode": opts.mode,
            "devices": shared.devices.len(),
            "concurrency": opts.concurrency,
            "requests": count,
            // Sent but not counted: one GET per device (ETags) and the warm-up.
            "uncounted_requests": opts.warmup + if shared.mode == Mode::Etag {
                shared.devices.len() as u64
            } else {
                0
            },
            "expected_status": expected,
            "ok": ok,
            "statuses": statuses,
            "elapsed_s": elapsed,
            "rps": rps,
            "p50_ms": percentile_ms(&latencies, 50),
            "p90_ms": percentile_ms(&latencies, 90),
            "p99_ms": percentile_ms(&latencies, 99),
            "max_ms": latencies.last().map_or(0.0, |m| micros_to_ms(*m)),
        })
    );
    (count, ok, expected)
}

#[allow(clippy::cast_precision_loss)]
fn micros_to_ms(m: u64) -> f64 {
    m as f64 / 1000.0
}

fn percentile_ms(sorted: &[u64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = (sorted.len() * p / 100).min(sorted.len() - 1);
    micros_to_ms(sorted[idx])
}

/// Runs `concurrency` workers until `total` requests were sent or `max` elapsed; returns
/// (status, latency in µs) per request (status 0 = transport error).
async fn run_phase(
    shared: &Arc<Shared>,
    concurrency: usize,
    total: u64,
    max: Duration,
) -> anyhow::Result<Vec<(u16, u64)>> {
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + max;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let shared = Arc::clone(shared);
        let issued = Arc::clone(&issued);
        set.spawn(async move {
            let mut out = Vec::new();
            while issued.fetch_add(1, Ordering::Relaxed) < total && Instant::now() < deadline {
                let t0 = Instant::now();
                let status = one_request(&shared).await;
                let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                out.push((status, micros));
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(res) = set.join_next().await {
        all.extend(res.context("a load worker panicked")?);
    }
    Ok(all)
}

async fn one_request(shared: &Shared) -> u16 {
    let n = shared.next.fetch_add(1, Ordering::Relaxed);
    let idx = usize::try_from(n).unwrap_or(0) % shared.devices.len();
    let (token, etag) = &shared.devices[idx];
    let request = match shared.mode {
        Mode::Etag => shared
            .client
            .get(format!("{}v1/config", shared.base))
            .bearer_auth(token)
            .header(reqwest::header::IF_NONE_MATCH, etag),
        Mode::Report => {
            let mut body = shared.template.clone().unwrap_or(Value::Null);
            if let Some(obj) = body.as_object_mut() {
                obj.insert(
                    "report_id".to_owned(),
                    Value::String(uuid::Uuid::new_v4().to_string()),
                );
                obj.insert(
                    "created_at".to_owned(),
                    Value::String(chrono::Utc::now().to_rfc3339()),
                );
            }
            shared
                .client
                .post(format!("{}v1/reports", shared.base))
                .bearer_auth(token)
                .json(&body)
        }
    };
    match request.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read the body so the connection can be reused.
            let _ = resp.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

//! truenas-sim: a TrueNAS middleware simulator (24.10 / 25.04 / 25.10 / 26.0 / 27.0) for
//! the tests, the demo and the benchmarks — test infrastructure, never part of the agent
//! that ships (it depends on `truenas-agent`'s public API, never the other way round).
//!
//! Owns: a simulated box ([`Scenario`]: pools, datasets and user properties, cloud
//! credentials, cloud sync tasks and their runs, periodic snapshot tasks and snapshots,
//! SNMP and services, init scripts, alerts, API keys) and a middleware serving it — over
//! a unix socket, loopback TCP and an nginx-like HTTPS/HTTP front with both wire
//! protocols ([`Simulator::serve`]), or
//! in-process as an [`truenas_agent::middleware::Middleware`] ([`InProcess`]). It rejects what the
//! real middleware rejects, with the real error shapes and attribute paths, per version.
//! Does not: touch ZFS, run rclone or snmpd, or schedule tasks by cron; it never writes a
//! file except a scenario saved on request (secrets redacted).
//! Invariants: one sans-IO core (`core.rs`) decides every outcome; the socket server and
//! the in-process handle are thin shells around it, so both behave the same; every call
//! received is recorded in memory (never logged or written: params may hold secrets).
//! Limitations: see `docs/simulator.md` ("What it does not do").
//!
//! ```text
//! scenario.rs   the box as data (load/save JSON, presets)
//! schema.rs     params type language + checker (pydantic / legacy messages)
//! validate.rs   params schemas per method and version
//! rules.rs      cross-field and state rules (REFERENCE §5.3)
//! query.rs      query filters and options
//! methods/      one handler per method
//! core.rs       dispatch, jobs, events, alerts (sans-IO)
//! faults.rs     fault injection plan
//! wire.rs       JSON-RPC and legacy frames (pure)
//! simulator.rs  the shared box, event bus, call record, job driver; the test handle
//! inprocess.rs  `impl Middleware` without sockets
//! http.rs       request heads, plain answers, the HTTPS listener's certificate
//! routes.rs     HTTP routes per version and front (middlewared, nginx), API versions
//! server.rs     unix socket, TCP, HTTPS and HTTP listeners, sessions
//! cli.rs        the `truenas-sim` binary's command line (main.rs is its thin edge)
//! fake_b2.rs    a fake Backblaze B2 native API for the tests' fault cases (not the simulator)
//! ```

pub mod cli;
pub mod core;
pub mod fake_b2;
pub mod faults;
pub mod http;
pub mod inprocess;
pub(crate) mod methods;
pub mod query;
pub mod routes;
pub mod rules;
pub mod scenario;
pub mod schema;
pub mod server;
pub mod simulator;
pub mod validate;
pub mod wire;

pub use faults::{Delay, DropAt, DropWhen, Failure, FaultPlan};
pub use http::TlsIdentity;
pub use inprocess::InProcess;
pub use scenario::Scenario;
pub use server::{HttpRecord, ServeOptions, Server, ServerError};
pub use simulator::{CallOutcome, CallRecord, JobTiming, Simulator};

//! truenas-agent: provisions and watches a TrueNAS appliance's offsite backup
//! (Backblaze B2 Cloud Sync, periodic snapshots, SNMPv3, the device GUID) from a signed
//! desired-state document, following the MSP's provisioning SOP.
//!
//! This crate is exactly what goes onto the NAS (`packaging/build-release.sh` builds its
//! binary). The simulator (`truenas-sim`), the reference central server
//! (`truenas-central`) and the demo (`truenas-dev`) are other crates of the workspace that
//! depend on this one, never the other way round (docs/architecture.md, "Layout").
//!
//! # Layout (modules in data-flow order)
//!
//! ```text
//! fs            the only file I/O: atomic writes, errors that name the path
//! fault         who has to act when something fails (Operator / Nas / Central / Transient / Bug)
//! exit          the one exit-code rule of every command (0 ok, 1 attention, 2 failing, 3 unknown)
//! state_dir     the agent's state directory: JSON files per concern, secret fingerprints
//! config        the agent's own TOML config → AgentConfig
//! central       fetch + verify the signed document (DSSE/Ed25519), reports through a durable spool
//! desired       document wire format → validation → DesiredState (SOP defaults, derived names)
//! middleware    the TrueNAS middleware: Middleware seam, client (unix/ws/wss, JSON-RPC + legacy)
//! zfs           ZFS user properties through the `zfs` command (middleware as fallback)
//! identity      the device GUID on the root pool, reconciled with central
//! observe       middleware reads → Observed (plain data)
//! plan          PURE: plan(&DesiredState, &Observed, &Ownership, &Inputs) -> Plan
//! apply         executes a Plan: the only writer to the middleware
//! b2            read-only B2 bucket / rclone-crypt verification with the scoped key
//! health        PURE: task health and the SOP checklist from observations (+ its read shell)
//! scrub         the one secret scrubber: known secrets (document, NAS, token) → [REDACTED]
//! status        the on-box diagnosis: StatusReport from every subsystem, with next steps
//! daemon        the loop: fetch → validate → observe → plan → apply → re-observe → report
//! install       install / uninstall / check the TrueNAS way (init script, unit, pool files)
//! cli           command-line front end (clap); the only place that prints
//! ```
//!
//! Data moves one way: `plan` and health's evaluation never import `middleware`, `central`
//! or tokio (health's read shell — `health::{observe, assess, memory}` — does the I/O);
//! `apply` (and `install`) are the only modules that send writing calls — apart from the
//! `zfs` middleware fallback, which writes only the device-identity user properties.

// What no other crate uses is private, so that the compiler reports dead code (issue 14).
#![warn(unreachable_pub)]

pub mod apply;
pub mod b2;
pub mod central;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod desired;
pub(crate) mod exit;
pub mod fault;
pub mod fs;
pub mod health;
pub mod identity;
pub mod install;
pub mod middleware;
pub mod observe;
pub mod plan;
pub mod scrub;
pub mod state_dir;
pub mod status;
pub mod zfs;

/// Agent version and the git revision it was built from, e.g. `0.1.0 (abc1234)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TRUENAS_AGENT_GIT_REV"),
    ")"
);

/// `User-Agent` sent to central: `truenas-agent/<version>`.
pub const USER_AGENT: &str = concat!("truenas-agent/", env!("CARGO_PKG_VERSION"));

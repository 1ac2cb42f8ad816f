//! truenas-dev: what a developer runs around the three products — the demo (the
//! README's first command) and the benchmark helper (`src/bin/benchtool.rs`). It also
//! hosts the integration tests, whose files stay at the repository root (`tests/it`).
//!
//! Owns: the demo ([`demo`]) and the `truenas-dev` command line ([`cli`]).
//! Does not: ship anywhere — nothing here goes onto a NAS or into central's deployment.
//! Invariants: uses only the public APIs of `truenas-agent`, `truenas-sim` and
//! `truenas-central`.
//! Limitations: one subcommand today (`demo`).

pub mod cli;
pub mod demo;

//! The one integration-test binary. Each theme is a module; real sockets against the
//! simulator and a local central server, scripted fakes that fail on unexpected calls.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_lines,
    clippy::missing_panics_doc
)]

/// One test per supported TrueNAS version for `async fn $name(flavor: ApiFlavor)` of the
/// calling module: a module `$name` holding the tests `v24_10` … `v27_0` (`nextest run
/// first_boot` runs them all, `first_boot::v26_0` one). Adding an `ApiFlavor` fails to
/// compile here until it is added. `local`: inside a `LocalSet` (the daemon spawns local
/// tasks); `paused`: on tokio's paused clock.
macro_rules! per_flavour {
    ($name:ident) => {
        per_flavour!(@module $name, [tokio::test], plain);
    };
    (local $name:ident) => {
        per_flavour!(@module $name, [tokio::test], local);
    };
    (local paused $name:ident) => {
        per_flavour!(@module $name, [tokio::test(start_paused = true)], local);
    };
    (@module $name:ident, [$($attr:tt)*], $how:ident) => {
        mod $name {
            use truenas_agent::middleware::ApiFlavor;

            const _: () = assert!(
                ApiFlavor::ALL.len() == 5,
                "add the new flavour to per_flavour! in tests/it/main.rs"
            );
            per_flavour!(@test $name, [$($attr)*], $how, v24_10, V24_10);
            per_flavour!(@test $name, [$($attr)*], $how, v25_04, V25_04);
            per_flavour!(@test $name, [$($attr)*], $how, v25_10, V25_10);
            per_flavour!(@test $name, [$($attr)*], $how, v26_0, V26_0);
            per_flavour!(@test $name, [$($attr)*], $how, v27_0, V27_0);
        }
    };
    (@test $name:ident, [$($attr:tt)*], plain, $test:ident, $flavor:ident) => {
        #[$($attr)*]
        async fn $test() {
            Box::pin(super::$name(ApiFlavor::$flavor)).await;
        }
    };
    (@test $name:ident, [$($attr:tt)*], local, $test:ident, $flavor:ident) => {
        #[$($attr)*]
        async fn $test() {
            tokio::task::LocalSet::new()
                .run_until(Box::pin(super::$name(ApiFlavor::$flavor)))
                .await;
        }
    };
}

/// Runs each listed test body `async fn $name()` of the calling module twice, on SQLite
/// and on a real PostgreSQL server: a module `$name` holding the tests `sqlite` and
/// `postgres` (`nextest run central_fetch::` runs both, `…::postgres` one), each with the
/// attribute given first, e.g. `#[tokio::test(start_paused = true)]`.
macro_rules! on_both_engines {
    (#[$attr:meta] $($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::central_fixture::{Engine, with_engine};

            #[$attr]
            async fn sqlite() {
                with_engine(Engine::Sqlite, Box::pin(super::$name())).await;
            }

            #[$attr]
            async fn postgres() {
                with_engine(Engine::Postgres, Box::pin(super::$name())).await;
            }
        }
    )*};
}

mod allow_list;
mod appliance_deps;
mod b2_verify;
mod b2_verify_model;
mod b2model;
mod b2model_shim;
mod browser;
mod central_alerts;
mod central_cli;
mod central_db;
mod central_fetch;
mod central_fixture;
mod central_reports;
mod central_service;
mod cli_calls;
mod cli_edges;
mod dashboard;
mod dashboard_browser;
mod dashboard_fixture;
mod dashboard_serve;
mod e2e_b2_checks;
mod e2e_converge;
mod e2e_demo;
mod e2e_events;
mod e2e_fixture;
mod e2e_lifecycle;
mod e2e_outage;
mod e2e_refusal;
mod e2e_state_damage;
mod exit_codes;
mod fuzz_corpus;
mod health_scenarios;
mod identity;
mod import_cycles;
mod install;
mod middleware_client;
mod middleware_sim;
mod pg_server;
mod provision;
mod sim_protocol;
mod sim_schema;
mod sop;
mod status_truth;
mod support;

/// The tests' fake B2 lives in the simulator's crate (`benchtool b2` serves it too).
use truenas_sim::fake_b2;

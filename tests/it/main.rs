//! The one integration-test binary. Each theme is a module; real sockets against the
//! simulator and a local central server, scripted fakes that fail on unexpected calls.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_lines,
    clippy::missing_panics_doc
)]

mod allow_list;
mod appliance_deps;
mod b2_verify;
mod b2_verify_model;
mod b2model;
mod b2model_shim;
mod central_cli;
mod central_fetch;
mod central_fixture;
mod central_reports;
mod cli_edges;
mod e2e_b2_checks;
mod e2e_converge;
mod e2e_demo;
mod e2e_fixture;
mod e2e_lifecycle;
mod e2e_outage;
mod e2e_refusal;
mod e2e_state_damage;
mod fake_b2;
mod fuzz_corpus;
mod health_scenarios;
mod identity;
mod install;
mod middleware_client;
mod middleware_sim;
mod sim_protocol;
mod sim_schema;
mod sop;
mod support;

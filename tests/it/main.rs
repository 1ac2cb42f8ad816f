//! The one integration-test binary. Each theme is a module; real sockets against the
//! simulator and a local central server, scripted fakes that fail on unexpected calls.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::missing_panics_doc
)]

mod allow_list;
mod b2_verify;
mod central_cli;
mod central_fetch;
mod central_fixture;
mod central_reports;
mod fake_b2;
mod fuzz_corpus;
mod identity;
mod middleware_client;
mod middleware_sim;
mod sim_protocol;
mod sim_schema;
mod sop;
mod support;

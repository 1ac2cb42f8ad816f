//! The one integration-test binary. Each theme is a module; real sockets against the
//! simulator and a local central server, scripted fakes that fail on unexpected calls.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::missing_panics_doc
)]

mod b2_verify;
mod fake_b2;
mod health_scenarios;
mod sim_protocol;
mod support;

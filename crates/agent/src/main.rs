//! `truenas-agent` binary: the thin edge. Parses the command line and runs the command
//! ([`truenas_agent::cli::run`]); [`truenas_agent::cli::finish`] maps the outcome to a
//! process exit code (an error is printed scrubbed; a broken pipe exits 0).

use std::process::ExitCode;

fn main() -> ExitCode {
    truenas_agent::cli::finish(truenas_agent::cli::run())
}

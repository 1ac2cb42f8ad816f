//! `truenas-agent` binary: the thin edge. Parses the command line, hands over to
//! [`truenas_agent::cli::run`], and maps the outcome to a process exit code.
//! A broken pipe (`truenas-agent status | head`) is not an error.

use std::process::ExitCode;

fn main() -> ExitCode {
    match truenas_agent::cli::run() {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            #[expect(clippy::print_stderr, reason = "the CLI edge reports the final error")]
            {
                // Every secret the command met is scrubbed from the error, too.
                let text = truenas_agent::scrub::scrub_output(&format!("error: {err:#}"));
                eprintln!("{text}");
            }
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

//! Logging set-up: journald when running under systemd, stderr otherwise.
//!
//! Owns: the `--log` rule ([`parse_filter`]: what clap accepts), the choice of sink, and
//! whether stderr gets ANSI colour ([`use_colour`]).
//! Does not: decide what is logged (each module does, through `tracing`).
//! Invariants: colour escapes only reach a terminal — never a pipe, a file or the journal
//! — and never when `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
//! Limitations: `--log` takes levels and `TARGET=LEVEL` directives only; `RUST_LOG` (which
//! wins when it is valid) takes tracing's full syntax, and an invalid `RUST_LOG` is
//! ignored with a warning.
//! Every log line written to stderr goes through the process-wide scrubber
//! ([`crate::scrub::scrub_output`]) first; journald records are built by
//! `tracing-journald` (see `crate::scrub`'s limitations).

use std::ffi::OsStr;
use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// The rule for `--log` (and `TRUENAS_AGENT_LOG`): a comma-separated list of directives,
/// each a level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or `TARGET=LEVEL` where
/// TARGET is a Rust module path such as `truenas_agent::central`. A bare word that is not
/// a level is refused: tracing would read it as a target and silently log everything
/// from it at every level, not what anyone who typed `--log notalevel` meant.
pub fn parse_filter(text: &str) -> Result<String, String> {
    let rule = "expected a level (trace, debug, info, warn, error, off) or TARGET=LEVEL \
                (e.g. truenas_agent=debug), comma-separated";
    if text.trim().is_empty() {
        return Err(format!("empty log filter: {rule}"));
    }
    for directive in text.split(',').map(str::trim) {
        let level = match directive.split_once('=') {
            None => directive,
            Some((target, level)) => {
                if !is_target(target) {
                    return Err(format!(
                        "`{directive}`: `{target}` is not a module path: {rule}"
                    ));
                }
                level
            }
        };
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            let context = if level == directive {
                String::new()
            } else {
                format!("`{directive}`: ")
            };
            return Err(format!("{context}`{level}` is not a log level: {rule}"));
        }
    }
    Ok(text.to_owned())
}

/// `a_b::c`: identifiers separated by `::`.
fn is_target(text: &str) -> bool {
    !text.is_empty()
        && text.split("::").all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Whether log lines on stderr get ANSI colour: only on a terminal, and not when
/// `NO_COLOR` is set to anything but the empty string.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Installs the global subscriber. `filter` is an `EnvFilter` directive already checked
/// by [`parse_filter`] (RUST_LOG wins when it is valid).
pub fn init(filter: &str) -> anyhow::Result<()> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let from_env = rust_log.as_deref().and_then(|f| EnvFilter::try_new(f).ok());
    let ignored_env = rust_log.is_some() && from_env.is_none();
    let filter = from_env.map_or_else(|| EnvFilter::try_new(filter), Ok)?;
    // systemd sets JOURNAL_STREAM for services whose stderr goes to the journal.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter)
                .with(journald.with_syslog_identifier("truenas-agent".to_owned()))
                .try_init()?;
            warn_ignored(ignored_env);
            return Ok(());
        }
    }
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| ScrubbedLine(Vec::new()))
        .with_ansi(colour)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    warn_ignored(ignored_env);
    Ok(())
}

fn warn_ignored(ignored: bool) {
    if ignored {
        tracing::warn!("RUST_LOG is not a valid log filter and was ignored; using --log");
    }
}

/// One formatted log event, written to stderr scrubbed when the formatter is done with it.
struct ScrubbedLine(Vec<u8>);

impl std::io::Write for ScrubbedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let text = crate::scrub::scrub_output(&String::from_utf8_lossy(&self.0));
        self.0.clear();
        std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            // Nowhere to report a failed log write.
            let _ = std::io::Write::flush(self);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters_are_levels_or_target_levels() {
        for good in [
            "info",
            "WARN",
            "off",
            "truenas_agent=debug",
            "warn,truenas_agent::central=trace",
            "info, hyper=warn",
        ] {
            assert_eq!(parse_filter(good).as_deref(), Ok(good), "{good}");
        }
        for (bad, says) in [
            ("notalevel", "`notalevel` is not a log level"),
            ("", "empty log filter"),
            ("info,verbose", "`verbose` is not a log level"),
            ("truenas_agent=loud", "`loud` is not a log level"),
            ("truenas agent=info", "is not a module path"),
            ("=info", "is not a module path"),
        ] {
            let err = parse_filter(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(
                err.contains("trace, debug, info, warn, error, off"),
                "{err}"
            );
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(
            use_colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(
            !use_colour(false, None),
            "a pipe or file never gets escapes"
        );
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }
}

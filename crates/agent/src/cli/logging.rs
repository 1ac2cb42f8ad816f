//! Logging set-up: journald when running under systemd, stderr otherwise.
//!
//! Owns: the `--log` rule ([`parse_filter`]: what clap accepts), turning it into a
//! [`Targets`] filter, the choice of sink, and whether stderr gets ANSI colour
//! ([`use_colour`]).
//! Does not: decide what is logged (each module does, through `tracing`).
//! Invariants: colour escapes only reach a terminal — never a pipe, a file or the journal
//! — and never when `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
//! Limitations: `--log` and `RUST_LOG` (which wins when it is valid) take levels and
//! `TARGET=LEVEL` directives only; an invalid `RUST_LOG` — including tracing's span and
//! field filters (`target[span{field}]=level`), which the filter does not implement — is
//! ignored with a warning; an empty `RUST_LOG` counts as unset. The filter is a [`Targets`] rather than an `EnvFilter` to keep
//! the regex engines out of the appliance binary (docs/benchmarks.md, "Binary size").
//! Every log line written to stderr goes through the process-wide scrubber
//! ([`crate::scrub::scrub_output`]) first; journald records are built by
//! `tracing-journald` (see `crate::scrub`'s limitations).

use std::ffi::OsStr;
use std::io::IsTerminal as _;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// The rule for `--log` (and `TRUENAS_AGENT_LOG`): a comma-separated list of directives,
/// each a level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or `TARGET=LEVEL` where
/// TARGET is a Rust module path such as `truenas_agent::central`. A bare word that is not
/// a level is refused: tracing would read it as a target and silently log everything
/// from it at every level, not what anyone who typed `--log notalevel` meant.
pub fn parse_filter(text: &str) -> Result<String, String> {
    directives(text).map(|_| text.to_owned())
}

/// One `--log` directive: a target (`None` for the default level) and its level.
type Directive<'a> = (Option<&'a str>, LevelFilter);

/// The directives of a filter that [`parse_filter`] accepts, whitespace around each
/// directive trimmed.
fn directives(text: &str) -> Result<Vec<Directive<'_>>, String> {
    let rule = "expected a level (trace, debug, info, warn, error, off) or TARGET=LEVEL \
                (e.g. truenas_agent=debug), comma-separated";
    if text.trim().is_empty() {
        return Err(format!("empty log filter: {rule}"));
    }
    let mut parsed = Vec::new();
    for directive in text.split(',').map(str::trim) {
        let (target, level) = match directive.split_once('=') {
            None => (None, directive),
            Some((target, level)) => {
                if !is_target(target) {
                    return Err(format!(
                        "`{directive}`: `{target}` is not a module path: {rule}"
                    ));
                }
                (Some(target), level)
            }
        };
        let Some(filter) = level_filter(level) else {
            let context = if level == directive {
                String::new()
            } else {
                format!("`{directive}`: ")
            };
            return Err(format!("{context}`{level}` is not a log level: {rule}"));
        };
        parsed.push((target, filter));
    }
    Ok(parsed)
}

/// A level name (any case) as a filter; `None` for anything else, digits included.
fn level_filter(text: &str) -> Option<LevelFilter> {
    const FILTERS: [LevelFilter; 6] = [
        LevelFilter::TRACE,
        LevelFilter::DEBUG,
        LevelFilter::INFO,
        LevelFilter::WARN,
        LevelFilter::ERROR,
        LevelFilter::OFF,
    ];
    LEVELS
        .iter()
        .zip(FILTERS)
        .find_map(|(name, filter)| name.eq_ignore_ascii_case(text).then_some(filter))
}

/// The filter for a text [`parse_filter`] accepts: the last bare level is the default
/// (none: only the named targets log), `TARGET=LEVEL` applies to the target and the
/// modules below it, the most specific target winning — `EnvFilter`'s meaning for the
/// same text.
fn targets(text: &str) -> Result<Targets, String> {
    Ok(directives(text)?.into_iter().fold(
        Targets::new(),
        |targets, (target, level)| match target {
            None => targets.with_default(level),
            Some(target) => targets.with_target(target, level),
        },
    ))
}

/// The filter to install: `RUST_LOG` when it is set and valid, else `--log`; and whether
/// a `RUST_LOG` was set but ignored as invalid. An empty `RUST_LOG` counts as unset.
fn choose_filter(rust_log: Option<&str>, flag: &str) -> Result<(Targets, bool), String> {
    let from_env = rust_log.filter(|t| !t.trim().is_empty()).map(targets);
    match from_env {
        Some(Ok(filter)) => Ok((filter, false)),
        Some(Err(_)) => Ok((targets(flag)?, true)),
        None => Ok((targets(flag)?, false)),
    }
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

/// Installs the global subscriber. `filter` is a directive list already checked by
/// [`parse_filter`] (RUST_LOG wins when it is valid).
pub fn init(filter: &str) -> anyhow::Result<()> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, ignored_env) =
        choose_filter(rust_log.as_deref(), filter).map_err(|e| anyhow::anyhow!("--log: {e}"))?;
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
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(|| ScrubbedLine(Vec::new()))
                .with_ansi(colour),
        )
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

    fn enabled(filter: &Targets, target: &str, level: tracing::Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn a_filter_means_what_env_filter_meant_for_the_same_text() {
        use tracing::Level;
        // Spaces after commas are accepted by `parse_filter`, so the filter must trim
        // them: `Targets::from_str` would keep " hyper" and never match `hyper`.
        let filter = targets("warn, truenas_agent::central=trace ,hyper=ERROR").unwrap();
        assert!(enabled(
            &filter,
            "truenas_agent::central::fetch",
            Level::TRACE
        ));
        assert!(enabled(&filter, "truenas_agent::central", Level::DEBUG));
        assert!(!enabled(&filter, "truenas_agent::daemon", Level::INFO));
        assert!(enabled(&filter, "truenas_agent::daemon", Level::WARN));
        assert!(!enabled(&filter, "hyper::client", Level::WARN));
        assert!(enabled(&filter, "hyper::client", Level::ERROR));
        // The most specific target wins, whatever the order.
        let filter = targets("truenas_agent::central=off,truenas_agent=debug").unwrap();
        assert!(!enabled(&filter, "truenas_agent::central", Level::ERROR));
        assert!(enabled(&filter, "truenas_agent::sop", Level::DEBUG));
        assert!(
            !enabled(&filter, "rustls", Level::ERROR),
            "no default: only the targets"
        );
        // A bare level is the default; `off` silences everything.
        let filter = targets("INFO").unwrap();
        assert!(enabled(&filter, "anything", Level::INFO));
        assert!(!enabled(&filter, "anything", Level::DEBUG));
        assert!(!enabled(&targets("off").unwrap(), "x", Level::ERROR));
        // Digits are levels to tracing, not to `--log`.
        assert!(targets("3").is_err());
    }

    #[test]
    fn a_valid_rust_log_wins_and_an_invalid_one_is_ignored() {
        use tracing::Level;
        let (filter, ignored) = choose_filter(Some("debug"), "warn").unwrap();
        assert!(!ignored);
        assert!(enabled(&filter, "truenas_agent", Level::DEBUG));
        for bad in ["verbose", "truenas_agent[span{id}]=debug", "info,"] {
            let (filter, ignored) = choose_filter(Some(bad), "warn").unwrap();
            assert!(ignored, "{bad:?}");
            assert!(!enabled(&filter, "truenas_agent", Level::INFO), "{bad:?}");
            assert!(enabled(&filter, "truenas_agent", Level::WARN), "{bad:?}");
        }
        for unset in [None, Some(""), Some("  ")] {
            let (filter, ignored) = choose_filter(unset, "info").unwrap();
            assert!(!ignored, "{unset:?}");
            assert!(enabled(&filter, "truenas_agent", Level::INFO), "{unset:?}");
            assert!(
                !enabled(&filter, "truenas_agent", Level::DEBUG),
                "{unset:?}"
            );
        }
        assert!(choose_filter(None, "loud").is_err());
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

//! Logging set-up: journald when running under systemd, stderr otherwise.
//!
//! Every log line written to stderr goes through the process-wide scrubber
//! ([`crate::scrub::scrub_output`]) first; journald records are built by
//! `tracing-journald` (see `crate::scrub`'s limitations).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber. `filter` is an `EnvFilter` directive (RUST_LOG wins).
pub fn init(filter: &str) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .map_or_else(|| EnvFilter::try_new(filter), Ok)?;
    // systemd sets JOURNAL_STREAM for services whose stderr goes to the journal.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter)
                .with(journald.with_syslog_identifier("truenas-agent".to_owned()))
                .try_init()?;
            return Ok(());
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| ScrubbedLine(Vec::new()))
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
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

//! PURE: why a Cloud Sync run failed, from the job's `error` text and its log excerpt,
//! and the redaction every text from the NAS goes through before it is kept.
//!
//! Owns: the [`ErrorClass`] taxonomy, the line rules that recognise rclone/B2/middleware
//! failure texts, and [`Redactor`] (known secrets + values that look like keys/tokens).
//! Does not: decide severity or next steps (the caller maps a class to them).
//! Invariants: a class is only `RetentionLocked` (expected, not a failure) when *every*
//! error line is a refused delete/hide of a locked object or one of rclone's summaries of
//! such deletes — one other error (an upload, a sign-in) makes the run a real failure;
//! every string that leaves this module went through [`Redactor::scrub`].
//! Limitations: texts are matched, not parsed; the wording B2 uses when Object Lock
//! refuses a delete is not documented publicly, so a refused delete is recognised by
//! rclone's delete/hide context plus lock/`access_denied` wording (see `line_kind`).
//!
//! Sources of the texts (read, not copied): the middleware's `plugins/cloud_sync.py`
//! (`rclone()` raises the last five rclone output lines, plus "rclone failed with exit
//! code N" unless the code is 1; `cloudsync.sync` raises "Dataset is locked"); rclone
//! `fs/operations/operations.go` ("Couldn't delete: …", "failed to delete N files"),
//! `backend/b2/b2.go` ("failed to hide %q", "failed to delete %q", "failed to authorize
//! account", "failed to authenticate"), `backend/b2/api/types.go` (B2 errors render as
//! `"<message> (<status> <code>)"`), `cmd/cmd.go` ("Attempt n/m failed with k errors and:",
//! "Failed to sync: …"), `fs/fs.go` ("not deleting files as there were IO errors"); the
//! Go standard library's network errors; B2's error codes (`b2/REFERENCE.md` §1.6).

use serde::{Deserialize, Serialize};

/// Why a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Only deletes of objects under B2 Object Lock retention (or already hidden) were
    /// refused. The SOP (§7) calls this normal: the files stay until the lock expires.
    RetentionLocked,
    /// B2 refused the key: wrong key ID/application key, deleted key, missing capability,
    /// or a key rclone's B2 API version cannot use.
    Auth,
    /// DNS, timeouts, refused/reset connections, TLS, or B2 answering 5xx.
    Network,
    /// The task's dataset is locked (an encrypted dataset without its key loaded).
    DatasetLocked,
    /// Anything else; the excerpt says what.
    Other,
}

impl ErrorClass {
    /// The stable wire string (`error_class` in the report).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RetentionLocked => "retention_locked",
            ErrorClass::Auth => "auth",
            ErrorClass::Network => "network",
            ErrorClass::DatasetLocked => "dataset_locked",
            ErrorClass::Other => "other",
        }
    }

    /// True when the SOP says this is not a failure.
    pub fn is_expected(self) -> bool {
        match self {
            ErrorClass::RetentionLocked => true,
            ErrorClass::Auth
            | ErrorClass::Network
            | ErrorClass::DatasetLocked
            | ErrorClass::Other => false,
        }
    }
}

/// A classified failure. Every text in it is redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classified {
    pub class: ErrorClass,
    /// The line that decided the class (or the job's error), one line.
    pub summary: String,
    /// The tail of the error text and log, at most [`EXCERPT_LINES`] lines.
    pub excerpt: String,
}

/// Lines kept in an excerpt.
pub(crate) const EXCERPT_LINES: usize = 12;
/// Characters kept per excerpt line.
const LINE_CHARS: usize = 300;

/// What one line of output says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// Progress, INFO/NOTICE/DEBUG, blank: not an error.
    Noise,
    /// rclone's summary of failed deletes, or the exit-code line.
    Summary,
    /// A delete/hide refused because the object is locked (or already hidden).
    LockedDelete,
    DatasetLocked,
    Auth,
    Network,
    /// An error line that is none of the above.
    Other,
}

/// Classifies a failed run from the job's `error` and `logs_excerpt`, redacting both.
/// `task_locked` is the task's `locked` flag from `cloudsync.query`.
pub(crate) fn classify(
    error: Option<&str>,
    logs_excerpt: Option<&str>,
    task_locked: bool,
    redactor: &Redactor,
) -> Classified {
    let lines: Vec<&str> = error
        .unwrap_or_default()
        .lines()
        .chain(logs_excerpt.unwrap_or_default().lines())
        .collect();
    let kinds: Vec<(LineKind, &str)> = lines.iter().map(|l| (line_kind(l), *l)).collect();
    let first = |kind: LineKind| kinds.iter().find(|(k, _)| *k == kind).map(|(_, l)| *l);
    let any_other = first(LineKind::Other);
    let (class, decisive) = if task_locked || first(LineKind::DatasetLocked).is_some() {
        (ErrorClass::DatasetLocked, first(LineKind::DatasetLocked))
    } else if let Some(line) = first(LineKind::Auth) {
        (ErrorClass::Auth, Some(line))
    } else if let Some(line) = first(LineKind::Network) {
        (ErrorClass::Network, Some(line))
    } else if let (Some(line), None) = (first(LineKind::LockedDelete), any_other) {
        (ErrorClass::RetentionLocked, Some(line))
    } else {
        (ErrorClass::Other, any_other)
    };
    let fallback = error
        .and_then(|e| e.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("the run failed without an error text");
    let summary = match (class, decisive) {
        (ErrorClass::DatasetLocked, None) => "the task's dataset is locked".to_owned(),
        (_, Some(line)) => clip(&redactor.scrub(strip_log_prefix(line))),
        (_, None) => clip(&redactor.scrub(strip_log_prefix(fallback))),
    };
    Classified {
        class,
        summary,
        excerpt: excerpt(&lines, redactor),
    }
}

/// The last [`EXCERPT_LINES`] lines that are not progress/INFO noise, redacted and clipped.
fn excerpt(lines: &[&str], redactor: &Redactor) -> String {
    let kept: Vec<String> = lines
        .iter()
        .filter(|l| line_kind(l) != LineKind::Noise)
        .rev()
        .take(EXCERPT_LINES)
        .map(|l| clip(&redactor.scrub(l)))
        .collect();
    kept.into_iter().rev().collect::<Vec<_>>().join("\n")
}

fn clip(line: &str) -> String {
    let line = line.trim();
    if line.chars().count() <= LINE_CHARS {
        return line.to_owned();
    }
    let mut out: String = line.chars().take(LINE_CHARS).collect();
    out.push('…');
    out
}

/// Drops rclone's `2026/11/23 00:00:05 ERROR : ` / `<3>ERROR : ` prefix.
fn strip_log_prefix(line: &str) -> &str {
    for marker in ["ERROR : ", "CRITICAL: ", "NOTICE: "] {
        if let Some((_, rest)) = line.split_once(marker) {
            return rest;
        }
    }
    line
}

/// Classifies one line of rclone/middleware output.
pub(crate) fn line_kind(line: &str) -> LineKind {
    let l = line.trim().to_ascii_lowercase();
    kind_of(&l)
}

fn kind_of(l: &str) -> LineKind {
    if is_noise(l) {
        return LineKind::Noise;
    }
    if is_dataset_locked(l) {
        return LineKind::DatasetLocked;
    }
    if is_locked_delete(l) {
        return LineKind::LockedDelete;
    }
    // cmd.go: "Attempt 1/3 failed with 2 errors and: <last error>", "Failed to sync: <err>",
    // "Failed to sync with 2 errors: last error was: <err>" — judge the wrapped error.
    for marker in [" errors and: ", "last error was: ", "failed to sync: "] {
        if let Some((_, inner)) = l.split_once(marker) {
            return match kind_of(inner) {
                LineKind::Noise | LineKind::Summary => LineKind::Summary,
                other => other,
            };
        }
    }
    // A sign-in that failed on the network is a network problem (b2.go wraps the
    // transport error in "failed to authorize account: failed to authenticate: …").
    if is_network(l) {
        return LineKind::Network;
    }
    if is_auth(l) {
        return LineKind::Auth;
    }
    if is_summary(l) {
        return LineKind::Summary;
    }
    LineKind::Other
}

fn is_noise(l: &str) -> bool {
    const QUIET: &[&str] = &[" info  :", " info :", "<6>info", " debug :", "<7>debug"];
    const STATS: &[&str] = &[
        "transferred:",
        "errors:",
        "checks:",
        "elapsed time:",
        "transferring:",
        "deleted:",
        "renamed:",
        "server side copies:",
        "* ",
    ];
    // rclone prints "Failed to sync: …" at NOTICE level (fs.Logf); other NOTICE lines are
    // informational.
    let notice = (l.contains(" notice:") || l.contains("<5>notice")) && !l.contains("failed");
    l.is_empty()
        || notice
        || QUIET.iter().any(|n| l.contains(n))
        || STATS.iter().any(|s| l.starts_with(s))
}

fn is_dataset_locked(l: &str) -> bool {
    l.contains("edatasetislocked")
        || l.contains("dataset is locked")
        || (l.contains("dataset ") && l.contains(" is locked"))
}

/// rclone's delete paths on B2: operations.go "Couldn't delete", b2.go "failed to hide"
/// / "failed to delete %q", plus the raw B2 calls.
fn is_delete_context(l: &str) -> bool {
    l.contains("couldn't delete")
        || l.contains("failed to hide")
        || l.contains("b2_hide_file")
        || l.contains("b2_delete_file_version")
        || l.contains("failed to delete \"")
}

fn is_locked_delete(l: &str) -> bool {
    const LOCK_WORDS: &[&str] = &[
        "access_denied",
        "access denied",
        "object lock",
        "file lock",
        "locked",
        "retention",
        "legal hold",
        "compliance",
        "already_hidden",
        "already hidden",
    ];
    if !is_delete_context(l) {
        return false;
    }
    // Judge the error, not the object's name: drop the path before the delete marker and
    // every quoted path ("failed to hide \"…/unlocked.txt\"" must not count as "locked").
    let tail = [
        "couldn't delete",
        "failed to hide",
        "failed to delete",
        "b2_",
    ]
    .iter()
    .filter_map(|m| l.find(m))
    .min()
    .map_or(l, |at| &l[at..]);
    let unquoted: String = tail.split('"').step_by(2).collect();
    LOCK_WORDS.iter().any(|w| unquoted.contains(w))
}

fn is_auth(l: &str) -> bool {
    const AUTH: &[&str] = &[
        "failed to authorize account",
        "failed to authenticate",
        "unauthorized",
        "bad_auth_token",
        "expired_auth_token",
        "access_denied",
        "invalid credentials",
        // A key B2 only accepts on API v4, used by an rclone that signs in with v1.
        "not currently supported on api version number",
    ];
    AUTH.iter().any(|w| l.contains(w))
}

fn is_network(l: &str) -> bool {
    const NET: &[&str] = &[
        "no such host",
        "temporary failure in name resolution",
        "server misbehaving",
        "i/o timeout",
        "connection refused",
        "connection reset by peer",
        "network is unreachable",
        "no route to host",
        "tls handshake timeout",
        "context deadline exceeded",
        "client.timeout exceeded",
        "unexpected eof",
        "broken pipe",
        "x509:",
        "(500 ",
        "(502 ",
        "(503 ",
        "(504 ",
        "service_unavailable",
    ];
    NET.iter().any(|w| l.contains(w))
}

fn is_summary(l: &str) -> bool {
    (l.contains("failed to delete ") && l.ends_with(" files"))
        || l.contains("not deleting files as there were io errors")
        || l.contains("not deleting directories as there were io errors")
        || l.starts_with("rclone failed with exit code")
        || (l.contains("attempt ") && l.contains(" failed with ") && l.ends_with(" errors"))
}

/// Removes secrets from text taken from the NAS before it is shown, reported or stored:
/// the one scrubber of the agent ([`crate::scrub::Scrubber`]).
pub(crate) use crate::scrub::Scrubber as Redactor;

#[cfg(test)]
mod tests;

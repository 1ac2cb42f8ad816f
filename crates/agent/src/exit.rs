//! The one exit-code rule every command follows (docs/operations.md, "Exit codes").
//!
//! Owns: [`Exit`] — the four answers a command gives (ok, attention, failing, unknown),
//! their process exit codes, and how several answers combine ([`Exit::worst`]).
//! Does not: decide what a command found; each command maps its own result onto an
//! [`Exit`] (`plan`/`apply`: converged / pending / not converged / refused / unavailable;
//! `verify`: the checklist verdict; `status`: the worst problem level; …).
//! Invariants: 0 = ok, 1 = attention, 2 = failing (a refused input included: a human
//! must act), 3 = unknown (could not find out or could not act); combining ranks
//! failing > unknown > attention > ok — a known failure is never hidden by something
//! that could not be read — the same order as health's [`Level`].
//! Limitations: clap's own usage errors exit 2 before a command runs (a refused input,
//! so the rule holds); `main` maps an unexpected error that a command did not map to 2.

use std::process::ExitCode;

use crate::health::Level;

/// What a command's answer amounts to, and its process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: as it should be (converged, healthy, every item passes, nothing to do).
    Ok,
    /// 1: needs attention, nothing known broken: changes pending that `apply` would make,
    /// warnings, an SOP deviation the document asks for.
    Attention,
    /// 2: a human must act: something fails, is blocked or was refused (an invalid
    /// document, configuration or flag — then nothing was done).
    Failing,
    /// 3: the answer could not be determined, or the command could not act: the NAS
    /// (middleware, ZFS), B2 or the state directory could not be read or written.
    Unknown,
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Attention => 1,
            Exit::Failing => 2,
            Exit::Unknown => 3,
        }
    }

    /// The exit for the worst level a command found (`status`, health problems).
    pub const fn from_level(level: Level) -> Exit {
        match level {
            Level::Ok => Exit::Ok,
            Level::Warning => Exit::Attention,
            Level::Unknown => Exit::Unknown,
            Level::Failing => Exit::Failing,
        }
    }

    /// Severity rank: failing > unknown > attention > ok.
    const fn rank(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Attention => 1,
            Exit::Unknown => 2,
            Exit::Failing => 3,
        }
    }

    /// The worse of two answers (failing beats unknown beats attention beats ok).
    #[must_use]
    pub const fn worst(self, other: Exit) -> Exit {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// Upper-case name for text output (`OK`, `ATTENTION`, `FAILING`, `UNKNOWN`).
    pub const fn label(self) -> &'static str {
        match self {
            Exit::Ok => "OK",
            Exit::Attention => "ATTENTION",
            Exit::Failing => "FAILING",
            Exit::Unknown => "UNKNOWN",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_precedence() {
        assert_eq!(
            [Exit::Ok, Exit::Attention, Exit::Failing, Exit::Unknown].map(Exit::code),
            [0, 1, 2, 3]
        );
        assert_eq!(Exit::Unknown.worst(Exit::Failing), Exit::Failing);
        assert_eq!(Exit::Failing.worst(Exit::Unknown), Exit::Failing);
        assert_eq!(Exit::Attention.worst(Exit::Unknown), Exit::Unknown);
        assert_eq!(Exit::Ok.worst(Exit::Attention), Exit::Attention);
        for level in [Level::Ok, Level::Warning, Level::Unknown, Level::Failing] {
            // The worst level and the worst exit agree.
            assert_eq!(
                Exit::from_level(Level::worst([level, Level::Unknown])),
                Exit::from_level(level).worst(Exit::Unknown)
            );
        }
    }
}

//! The long-running loop: fetch → validate → observe → plan → apply → re-observe → report.
//!
//! (Being built: issue #4.)

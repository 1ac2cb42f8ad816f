//! The desired-state document from central: wire format → validation → `DesiredState`.
//!
//! Owns: strict parsing (unknown keys refused), whole-document validation with field paths,
//! the SOP defaults, and the derived values (bucket, folders, descriptions, bandwidth table).
//! Does not: talk to the middleware or check signatures (that is `central`).
//! (Being built: issue #3.)

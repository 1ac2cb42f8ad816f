//! The device GUID on the root pool (SOP phase 2), reconciled with central.
//!
//! Owns: root-pool choice, generate/keep/correct rules, host binding (clone/move detection).
//! Does not: exec `zfs` itself (uses `zfs`, or the middleware as fallback).
//! (Being built: issue #7.)

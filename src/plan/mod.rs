//! PURE: decides what must change so the NAS matches the desired state.
//!
//! Owns: `plan(&DesiredState, &Observed, &Ownership) -> Plan`.
//! Does not: do I/O, read the clock, or know about JSON-RPC.
//! (Being built: issue #3.)

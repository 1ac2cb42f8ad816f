//! Reads what the NAS has (pools, credentials, tasks, SNMP) into plain data: `Observed`.
//!
//! Owns: the few middleware reads a reconcile pass needs and their normalisation.
//! Does not: write anything.
//! (Being built: issue #3.)

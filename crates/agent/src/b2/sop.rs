//! The B2 application key the SOP creates for each location.
//!
//! Owns: [`SOP_CAPABILITIES`], the capability list of SOP 4.3 in the SOP's order — the one
//! definition the agent's key check, central's `provision` and the tests' fake B2 use.
//! Does not: judge a key (`verify.rs`) or create one (central's `provision`).
//! Invariants: the names are B2's capability names exactly as `b2_create_key` takes them.

/// The capability list SOP 4.3 creates the scoped key with, in the SOP's order.
pub const SOP_CAPABILITIES: &[&str] = &[
    "listBuckets",
    "readBuckets",
    "writeBuckets",
    "deleteBuckets",
    "listFiles",
    "readFiles",
    "writeFiles",
    "deleteFiles",
    "readBucketEncryption",
    "writeBucketEncryption",
    "readBucketRetentions",
    "writeBucketRetentions",
    "readFileLegalHolds",
    "writeFileLegalHolds",
    "readFileRetentions",
    "writeFileRetentions",
    "bypassGovernance",
];

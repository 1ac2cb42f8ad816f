//! The SOP's values (§5.2, §6.1) that a document may override: what `validate` fills in
//! when a key is absent, and what the SOP checklist compares the box with
//! (central-protocol.md §3 table, documented field by field in docs/configuration.md).
//!
//! Owns: the default of every overridable setting.
//! Does not: apply them (`validate.rs`) or judge a box by them (`health`).
//! Invariants: each default passes the rule `validate` applies to the same key.

use super::derive::LifetimeUnit;

pub const CLOUD_SCHEDULE: &str = "0 0 * * *";
pub const EXCLUDE: [&str; 2] = ["/Archive/**", "/archive/**"];
pub const CHUNK_SIZE_MIB: u32 = 96;
pub const FAST_LIST: bool = true;
pub const FILENAME_ENCRYPTION: bool = false;
pub const TAKE_SNAPSHOT: bool = false;
pub const BUSINESS_START: &str = "08:00";
pub const BUSINESS_END: &str = "18:00";
pub const BUSINESS_PERCENT: u8 = 20;
pub const OFF_HOURS_PERCENT: u8 = 80;
pub const SNAPSHOT_SCHEDULE: &str = "0 * * * *";
pub const SNAPSHOT_BEGIN: &str = "00:00";
pub const SNAPSHOT_END: &str = "23:59";
pub const LIFETIME_VALUE: u32 = 2;
pub const LIFETIME_UNIT: LifetimeUnit = LifetimeUnit::Week;
pub const RECURSIVE: bool = true;
pub const NAMING_SCHEMA: &str = "auto-%Y-%m-%d_%H-%M";

//! The SOP's values (§5.2, §6.1) that a document may override: what `validate` fills in
//! when a key is absent, and what the SOP checklist compares the box with
//! (central-protocol.md §3 table, documented field by field in docs/configuration.md).
//!
//! Owns: the default of every overridable setting.
//! Does not: apply them (`validate.rs`) or judge a box by them (`health`).
//! Invariants: each default passes the rule `validate` applies to the same key.

use super::derive::LifetimeUnit;

pub(crate) const CLOUD_SCHEDULE: &str = "0 0 * * *";
pub(crate) const EXCLUDE: [&str; 2] = ["/Archive/**", "/archive/**"];
pub(crate) const CHUNK_SIZE_MIB: u32 = 96;
pub(crate) const FAST_LIST: bool = true;
pub(crate) const FILENAME_ENCRYPTION: bool = false;
pub(crate) const TAKE_SNAPSHOT: bool = false;
pub(crate) const BUSINESS_START: &str = "08:00";
pub(crate) const BUSINESS_END: &str = "18:00";
pub(crate) const BUSINESS_PERCENT: u8 = 20;
pub(crate) const OFF_HOURS_PERCENT: u8 = 80;
pub(crate) const SNAPSHOT_SCHEDULE: &str = "0 * * * *";
pub(crate) const SNAPSHOT_BEGIN: &str = "00:00";
pub(crate) const SNAPSHOT_END: &str = "23:59";
pub(crate) const LIFETIME_VALUE: u32 = 2;
pub(crate) const LIFETIME_UNIT: LifetimeUnit = LifetimeUnit::Week;
pub(crate) const RECURSIVE: bool = true;
pub(crate) const NAMING_SCHEMA: &str = "auto-%Y-%m-%d_%H-%M";

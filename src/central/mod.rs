//! The central channel: fetch and verify the signed document, send reports through a durable spool.

pub mod dsse;
pub mod spool;

//! The agent's own configuration file (TOML): central URL, token file, trusted signing
//! keys, poll interval, middleware URL, state dir, ZFS property name.
//!
//! Owns: parsing and validating the local config into `AgentConfig`.
//! Does not: fetch anything or read the token's value into a log.
//! (Being built: issue #4.)

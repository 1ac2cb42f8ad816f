//! ZFS user properties read and written directly through the `zfs` command.
//!
//! Owns: argument validation, exec without a shell, parsing `zfs get -H -p` output, timeouts.
//! Does not: decide which pool carries the device GUID (that is `identity`).
//! (Being built: issue #7.)

//! Read-only Backblaze B2 verification with the scoped key (bucket settings, rclone crypt).
//!
//! (Being built: issue #5.)

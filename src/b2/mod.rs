//! Read-only Backblaze B2 verification with the scoped key (bucket settings, rclone crypt).

pub mod api;

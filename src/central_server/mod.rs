//! The reference central server: serves signed documents, stores reports.
//!
//! (Being built: issue #4.)

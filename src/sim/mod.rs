//! A TrueNAS middleware simulator (24.10 / 25.04 / 25.10) for tests and the demo.
//!
//! (Being built: issue #2.)

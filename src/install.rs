//! Installs the agent the TrueNAS way (files on a pool + an init script in the middleware).
//!
//! (Being built: issue #8.)

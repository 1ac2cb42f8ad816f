//! Executes a `Plan` through the middleware, the only module that writes to it.
//!
//! (Being built: issue #3.)

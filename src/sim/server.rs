//! placeholder
pub struct ServeOptions;
pub struct Server;
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct ServerError;

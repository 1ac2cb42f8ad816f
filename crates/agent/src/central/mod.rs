//! The central channel (contract: `shared/design/central-protocol.md`): pull the signed
//! desired-state document, push reports through a durable spool.
//!
//! Owns: everything between the agent and central ops' HTTPS endpoint —
//! `dsse` (envelope, PAE, Ed25519), `client` (HTTPS, status mapping, body cap),
//! `schedule` (jitter, back-off, long-poll detection; pure), `fetch` (the config
//! session: verify, revision rule, next poll), `report` (the report wire types),
//! `spool` (durable bounded queue), `outbox` (spool delivery) and `state`
//! (`central.json`).
//! Does not: validate the document's content (`desired`), change the NAS, or run the
//! loop: the daemon calls [`ConfigChannel::poll`] and [`Outbox::deliver`] and sleeps for
//! the delays they return.
//! Invariants: the device token lives only in the token file and in one sensitive HTTP
//! header value; the document payload only in a `SecretSlice`; neither reaches a log,
//! error, state file, spool or report. No payload is handed out unverified.
//! Limitations: one central endpoint per agent; HTTP/1.1.
//!
//! The daemon's use, in short:
//! ```no_run
//! # async fn demo(cfg: truenas_agent::config::AgentConfig) -> anyhow::Result<()> {
//! use truenas_agent::central::{self, Fetched};
//! let state = truenas_agent::state_dir::StateDir::open(&cfg.state_dir)?;
//! let mut session = central::open(cfg.central()?, state)?; // refuses an unsafe token file
//! let poll = session.config.poll().await;
//! if let Ok(Fetched::New(doc)) = &poll.result {
//!     // desired::parse(doc.payload()) → plan → apply, then:
//!     session.config.mark_applied(doc)?;
//! }
//! let report = central::report::Report::new(chrono::Utc::now());
//! session.outbox.enqueue(&report, &[])?;
//! let delivery = session.outbox.deliver().await;
//! # let _ = (poll.next_in, delivery.retry_in); Ok(()) }
//! ```

pub mod client;
pub mod dsse;
pub mod fetch;
pub(crate) mod outbox;
pub mod report;
pub(crate) mod schedule;
pub mod spool;
pub mod state;

pub use client::{CentralClient, ClientError};
pub use fetch::{ConfigChannel, FetchError, Fetched, Poll, VerifiedDocument};
pub use outbox::{Delivery, Outbox, ReportError};
pub use state::{CentralState, CentralStore};

use crate::config::{CentralConfig, ConfigError};
use crate::fault::Fault;
use crate::state_dir::{StateDir, StateError};

/// Setting up the central channel failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot use the device token")]
    Token(#[source] ConfigError),
    #[error("cannot set up the connection to central")]
    Client(#[source] ClientError),
    #[error("cannot open central.json")]
    State(#[source] StateError),
    #[error("cannot open the report spool")]
    Spool(#[source] ReportError),
}

impl SetupError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            SetupError::Token(e) => e.fault(),
            SetupError::Client(e) => e.fault(),
            SetupError::State(e) => e.fault(),
            SetupError::Spool(e) => e.fault(),
        }
    }
}

/// Everything the daemon needs to talk to central.
#[derive(Debug)]
pub struct Session {
    /// Pulls the desired state.
    pub config: ConfigChannel,
    /// Sends reports.
    pub outbox: Outbox,
    /// `central.json` (shared by both).
    pub store: CentralStore,
}

/// Reads the token (refusing a file that is not private to the agent's user), builds the
/// HTTPS client, loads `central.json` and opens the spool.
pub fn open(config: &CentralConfig, state: StateDir) -> Result<Session, SetupError> {
    let token = config.read_token().map_err(SetupError::Token)?;
    let client = CentralClient::new(config, &token).map_err(SetupError::Client)?;
    let store = CentralStore::open(state).map_err(SetupError::State)?;
    let outbox = Outbox::open(client.clone(), store.clone(), config.spool_max_bytes)
        .map_err(SetupError::Spool)?
        .with_backoff(
            schedule::Backoff::transient(),
            schedule::Backoff::token_rejected(config.poll_interval),
        );
    let config = ConfigChannel::new(client, config, store.clone());
    Ok(Session {
        config,
        outbox,
        store,
    })
}

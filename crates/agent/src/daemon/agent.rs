//! Starting the whole agent from its configuration: what `truenas-agent run`, the demo and
//! the end-to-end tests share.
//!
//! Owns: the start-up order — [`prepare`] (state directory, the central session, which
//! refuses an unsafe token file, and the identity inputs from the config) before any
//! connection, then [`Prepared::run`] with a connected middleware client and a ZFS
//! user-property backend: the production engine ([`SopEngine`]) and the loop.
//! Does not: connect to the middleware or pick the ZFS backend (the caller does: the CLI
//! uses the `zfs` command with the middleware as fallback; the demo and tests use the
//! simulator through the middleware, never the host's ZFS), or install signal handlers.
//! Invariants: a bad config, state directory or token file fails [`prepare`] with an
//! error naming the file and the rule, before anything is connected or written.
//! Limitations: one central endpoint, one NAS per process.

use tokio_util::sync::CancellationToken;

use super::jobs::NasEvents;
use super::notify::Notifier;
use super::sop::{SopEngine, SopSettings};
use super::{DaemonError, DaemonOptions, Services};
use crate::central::{self, Session, SetupError};
use crate::config::{AgentConfig, CentralConfig, ConfigError};
use crate::fault::Fault;
use crate::identity::{IdentityError, IdentityInputs, RootPoolHint};
use crate::middleware::Middleware;
use crate::state_dir::{StateDir, StateError};
use crate::zfs::{BackendChoice, NameError, PoolName, UserPropKey, UserProps};

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the agent configuration cannot be used")]
    Config(#[source] ConfigError),
    #[error("guid_property `{value}` is not a ZFS user property name")]
    GuidProperty {
        value: String,
        #[source]
        source: NameError,
    },
    #[error("root_pool `{value}` is not a pool name")]
    RootPool {
        value: String,
        #[source]
        source: NameError,
    },
    #[error("cannot derive the identity properties")]
    Identity(#[source] IdentityError),
    #[error("cannot open the state directory")]
    State(#[source] StateError),
    #[error("cannot start the central channel")]
    Central(#[source] SetupError),
    #[error("the daemon stopped")]
    Daemon(#[source] DaemonError),
}

impl AgentError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            AgentError::Config(e) => e.fault(),
            AgentError::GuidProperty { .. } | AgentError::RootPool { .. } => Fault::Operator,
            AgentError::Identity(e) => e.fault(),
            AgentError::State(e) => e.fault(),
            AgentError::Central(e) => e.fault(),
            AgentError::Daemon(e) => e.fault(),
        }
    }
}

/// Checked and opened, not yet connected.
#[derive(Debug)]
pub struct Prepared {
    pub state: StateDir,
    pub central: CentralConfig,
    pub identity: IdentityInputs,
    pub guid_property: String,
    session: Session,
}

/// Opens the state directory and the central session (reading the token file only if it
/// is private to the agent's user) and derives the identity inputs from `config`.
pub fn prepare(config: &AgentConfig) -> Result<Prepared, AgentError> {
    let central = config.central().map_err(AgentError::Config)?.clone();
    let property =
        UserPropKey::parse(&config.guid_property).map_err(|source| AgentError::GuidProperty {
            value: config.guid_property.clone(),
            source,
        })?;
    let mut identity = IdentityInputs::new(property).map_err(AgentError::Identity)?;
    let local = config
        .root_pool
        .as_deref()
        .map(|p| {
            PoolName::parse(p).map_err(|source| AgentError::RootPool {
                value: p.to_owned(),
                source,
            })
        })
        .transpose()?;
    identity.root_pool = RootPoolHint {
        document: None,
        local,
    };
    let state = StateDir::open(&config.state_dir).map_err(AgentError::State)?;
    let session = central::open(&central, state.clone()).map_err(AgentError::Central)?;
    Ok(Prepared {
        state,
        central,
        identity,
        guid_property: config.guid_property.clone(),
        session,
    })
}

/// What [`Prepared::run`] needs besides the prepared parts.
pub struct Runtime<'a, M, J, P, N> {
    pub middleware: &'a M,
    /// The middleware's events (the client: one subscription per event name).
    pub events: &'a J,
    pub props: &'a P,
    pub backend: BackendChoice,
    pub notifier: &'a N,
    pub settings: SopSettings,
    pub options: DaemonOptions,
}

impl Prepared {
    /// Runs the daemon with the production engine until `shutdown` is cancelled.
    pub async fn run<M, J, P, N>(
        self,
        rt: Runtime<'_, M, J, P, N>,
        shutdown: &CancellationToken,
    ) -> Result<(), AgentError>
    where
        M: Middleware,
        J: NasEvents,
        P: UserProps,
        N: Notifier,
    {
        let engine = SopEngine::new(
            rt.middleware,
            rt.props,
            rt.backend,
            self.state.clone(),
            self.identity,
            rt.settings,
        );
        let services = Services {
            engine: &engine,
            middleware: rt.middleware,
            events: rt.events,
            notifier: rt.notifier,
            state: &self.state,
        };
        super::run(services, self.session, rt.options, shutdown)
            .await
            .map_err(AgentError::Daemon)
    }
}

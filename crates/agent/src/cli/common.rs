//! What every subcommand shares: the agent configuration as every subcommand sees it
//! (`--config FILE`, then the command-line flags on top) and the one way to connect to
//! the middleware.
//!
//! Owns: turning [`GlobalArgs`] into [`Overrides`] (paths as given: like the file's, they
//! must be absolute, and a relative one is refused naming the flag), resolving the
//! [`AgentConfig`] (`AgentConfig::resolve`: the file, or the built-in defaults, then the
//! flags), the daemon's default config path, and the one-attempt middleware connect
//! every command uses: [`connect`] (which also reads the NAS's secrets for the
//! scrubber), [`connect_learning`] (which learns them from the command's own reads) or
//! [`connect_only`] (for a command that learns them itself).
//! Does not: validate anything itself (`config` does, with errors that name the key and
//! the rule), read secret files itself (`MiddlewareConfig::connect_options` checks the
//! API key file's owner and mode), or print.
//! Invariants: a command-line flag always wins over the file; the API key goes straight
//! into a `SecretString`; no error text contains it (errors name the file and the rule).
//! Limitations: the config file is read once per command; `run` re-reads it only on a
//! restart.

use std::path::PathBuf;
use std::time::Duration;

use super::global::GlobalArgs;
use crate::config::{AgentConfig, ConfigError, Overrides};
use crate::middleware::{Client, ConnectError};

/// Where `truenas-agent run` looks for its configuration when neither `--config` nor
/// `TRUENAS_AGENT_CONFIG` is given. On TrueNAS `/etc` does not survive an update, which is
/// why `truenas-agent install` keeps the config on the pool
/// (`/mnt/<pool>/.truenas-agent/agent.toml`) and passes `--config` in the unit's
/// `ExecStart`; this default serves other Linux hosts and development.
pub const DEFAULT_DAEMON_CONFIG: &str = "/etc/truenas-agent/agent.toml";

/// The command-line values that win over the config file. Paths are passed as given:
/// the same rules as in the file apply (absolute paths only, docs/configuration.md), so a
/// relative `--state-dir` is refused with the flag named instead of silently depending on
/// the directory the command happens to run in.
pub fn overrides(global: &GlobalArgs) -> Overrides {
    Overrides {
        state_dir: global.state_dir.clone(),
        middleware_url: global.middleware.clone(),
        api_key_file: global.api_key_file.clone(),
        api_user: global.api_user.clone(),
        tls_ca_file: global.tls_ca_file.clone(),
        tls_pin: global.tls_pin.clone(),
    }
}

/// The agent configuration: `--config FILE` (or the defaults without one), then the flags.
pub fn agent_config(global: &GlobalArgs) -> Result<AgentConfig, ConfigError> {
    AgentConfig::resolve(global.config.as_deref(), overrides(global))
}

/// The daemon's configuration: like [`agent_config`], but the file is required — given
/// with `--config`, or [`DEFAULT_DAEMON_CONFIG`].
pub fn daemon_config(global: &GlobalArgs) -> anyhow::Result<AgentConfig> {
    let path = global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DAEMON_CONFIG));
    if global.config.is_none() && !path.exists() {
        anyhow::bail!(
            "no agent configuration: pass --config FILE (the unit `truenas-agent install` sets \
             up passes /mnt/<pool>/.truenas-agent/agent.toml) or create {DEFAULT_DAEMON_CONFIG}; \
             see docs/configuration.md"
        );
    }
    Ok(AgentConfig::resolve(Some(&path), overrides(global))?)
}

/// Why [`connect`] found no middleware.
#[derive(Debug, thiserror::Error)]
pub enum ConnectFailed {
    /// The configuration's `[middleware]` settings (or their flags) were refused: the
    /// operator's to fix.
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// The middleware could not be reached, or refused the connection or the login.
    #[error("cannot connect to the TrueNAS middleware")]
    Connect(#[source] ConnectError),
}

/// Connects as the configuration says — with `timeout` for connecting and for each call
/// when given, else the configured ones — in one attempt (the client reconnects by itself
/// afterwards), then learns the secrets the NAS holds ([`crate::scrub::learn`], three
/// reads): nothing the command prints or logs afterwards can show them, even in a
/// middleware error text that echoes one. For commands that do not read the NAS fully
/// before printing (`run`, `identity`, `install`).
pub async fn connect(
    config: &AgentConfig,
    timeout: Option<Duration>,
) -> Result<Client, ConnectFailed> {
    let (client, call_timeout) = connect_only(config, timeout).await?;
    crate::scrub::remember(&crate::scrub::learn(&client, call_timeout).await);
    Ok(client)
}

/// Like [`connect`], but learns the NAS's secrets from what the command reads anyway
/// ([`crate::scrub::Learning`]): no read of its own when the command observes the NAS
/// before it prints anything derived from it (`plan`, `apply`, `verify`), and the missing
/// ones before any middleware error or job text reaches the command.
pub async fn connect_learning(
    config: &AgentConfig,
    timeout: Option<Duration>,
) -> Result<crate::scrub::Learning<Client>, ConnectFailed> {
    let (client, call_timeout) = connect_only(config, timeout).await?;
    Ok(crate::scrub::Learning::new(client, call_timeout))
}

/// Connects without learning anything: for a command that learns the NAS's secrets
/// itself before it prints (`status`, [`crate::scrub::learn`] first thing).
pub async fn connect_only(
    config: &AgentConfig,
    timeout: Option<Duration>,
) -> Result<(Client, Duration), ConnectFailed> {
    let mut options = config.middleware.connect_options()?;
    if let Some(timeout) = timeout {
        options.connect_timeout = timeout;
        options.call_timeout = timeout;
    }
    let call_timeout = options.call_timeout;
    let client = Client::connect(options)
        .await
        .map_err(ConnectFailed::Connect)?;
    Ok((client, call_timeout))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use secrecy::ExposeSecret;

    use std::path::Path;

    use super::*;
    use crate::middleware::ConnectOptions;

    const KEY: &str = "1-CANARY-API-KEY-0a7d62";

    /// What [`connect`] connects with.
    fn connect_options(global: &GlobalArgs) -> anyhow::Result<ConnectOptions> {
        Ok(agent_config(global)?.middleware.connect_options()?)
    }

    fn state_dir(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
        Ok(agent_config(global)?.state_dir)
    }

    fn global() -> GlobalArgs {
        GlobalArgs {
            config: None,
            middleware: None,
            api_key_file: None,
            api_user: None,
            tls_ca_file: None,
            tls_pin: None,
            state_dir: None,
            log: "info".into(),
        }
    }

    fn file(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        crate::fs::write_atomic(&path, contents.as_bytes(), 0o600).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn defaults_to_the_unix_socket_without_a_key() {
        let options = connect_options(&global()).unwrap();
        assert_eq!(options.url, crate::middleware::DEFAULT_URL);
        assert!(options.api_key.is_none());
        assert_eq!(
            state_dir(&global()).unwrap(),
            PathBuf::from(crate::state_dir::DEFAULT_STATE_DIR)
        );
    }

    #[test]
    fn reads_the_key_and_user_from_flags() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = global();
        g.middleware = Some("wss://127.0.0.1".into());
        g.api_key_file = Some(file(dir.path(), "api.key", &format!("{KEY}\n"), 0o600));
        g.api_user = Some("agent".into());
        g.tls_pin = Some("ab".repeat(32));
        let options = connect_options(&g).unwrap();
        let key = options.api_key.as_ref().unwrap();
        assert_eq!(key.key.expose_secret(), KEY);
        assert_eq!(key.username.as_deref(), Some("agent"));
        assert_eq!(options.url, "wss://127.0.0.1");
        assert!(!format!("{options:?}").contains("CANARY"));
    }

    #[test]
    fn the_config_file_is_used_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let key = file(dir.path(), "api.key", KEY, 0o600);
        let config = file(
            dir.path(),
            "agent.toml",
            &format!(
                "state_dir = \"{state}\"\n[middleware]\nurl = \"wss://192.0.2.7\"\n\
                 api_key_file = \"{key}\"\napi_user = \"from-file\"\n",
                state = dir.path().join("state").display(),
                key = key.display(),
            ),
            0o600,
        );
        let mut g = global();
        g.config = Some(config);
        let options = connect_options(&g).unwrap();
        assert_eq!(options.url, "wss://192.0.2.7");
        assert_eq!(
            options.api_key.as_ref().unwrap().username.as_deref(),
            Some("from-file")
        );
        assert_eq!(state_dir(&g).unwrap(), dir.path().join("state"));

        g.middleware = Some("wss://127.0.0.1:8443".into());
        g.api_user = Some("from-flag".into());
        g.state_dir = Some(dir.path().join("other"));
        let options = connect_options(&g).unwrap();
        assert_eq!(options.url, "wss://127.0.0.1:8443");
        assert_eq!(
            options.api_key.as_ref().unwrap().username.as_deref(),
            Some("from-flag")
        );
        assert_eq!(state_dir(&g).unwrap(), dir.path().join("other"));
    }

    #[test]
    fn relative_paths_on_the_command_line_are_refused_naming_the_flag() {
        let mut g = global();
        g.state_dir = Some(PathBuf::from("relative/state"));
        let err = format!("{:#}", state_dir(&g).unwrap_err());
        assert!(
            err.contains("--state-dir: must be an absolute path (got `relative/state`)"),
            "{err}"
        );
        let mut g = global();
        g.middleware = Some("wss://127.0.0.1".into());
        g.tls_ca_file = Some(PathBuf::from("ca.pem"));
        let err = format!("{:#}", connect_options(&g).unwrap_err());
        assert!(
            err.contains("--tls-ca-file: must be an absolute path"),
            "{err}"
        );
    }

    /// A bad `--middleware` or `--tls-pin` is an error naming the flag, not a fall-back to
    /// the default socket.
    #[test]
    fn a_bad_middleware_flag_is_an_error_naming_it() {
        let mut g = global();
        g.middleware = Some("bogus".into());
        let err = format!("{:#}", connect_options(&g).unwrap_err());
        assert!(err.contains("--middleware: must be a URL"), "{err}");
        assert!(!err.contains("agent configuration"), "{err}");
        let mut g = global();
        g.middleware = Some("wss://127.0.0.1".into());
        g.tls_pin = Some("not-a-pin".into());
        let err = format!("{:#}", connect_options(&g).unwrap_err());
        assert!(err.contains("--tls-pin: must be the SHA-256"), "{err}");
    }

    #[test]
    fn refuses_a_key_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let mut g = global();
            g.middleware = Some("wss://127.0.0.1".into());
            g.api_key_file = Some(file(dir.path(), "api.key", KEY, mode));
            let err = format!("{:#}", connect_options(&g).unwrap_err());
            assert!(err.contains("not readable by group or others"), "{err}");
            assert!(err.contains(&format!("{mode:04o}")), "{err}");
            assert!(err.contains("chmod 600"), "{err}");
            assert!(!err.contains("CANARY"), "{err}");
        }
    }

    #[test]
    fn refuses_empty_or_malformed_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = global();
        g.middleware = Some("wss://127.0.0.1".into());
        g.api_key_file = Some(file(dir.path(), "api.key", " \n", 0o600));
        let err = connect_options(&g).unwrap_err();
        assert!(format!("{err:#}").contains("is empty"), "{err:#}");
        g.api_key_file = Some(file(
            dir.path(),
            "api.key",
            &format!("{KEY}\n{KEY}\n"),
            0o600,
        ));
        let err = connect_options(&g).unwrap_err();
        assert!(format!("{err:#}").contains("single line"), "{err:#}");
        assert!(!format!("{err:#}").contains("CANARY"));
        g.api_key_file = Some(dir.path().join("nope"));
        let missing = connect_options(&g).unwrap_err();
        assert!(format!("{missing:#}").contains("nope"), "{missing:#}");
    }

    #[test]
    fn api_user_without_key_is_refused() {
        let mut g = global();
        g.api_user = Some("agent".into());
        let err = format!("{:#}", connect_options(&g).unwrap_err());
        assert!(err.contains("needs middleware.api_key_file"), "{err}");
    }

    #[test]
    fn a_bad_config_file_is_refused_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = global();
        g.config = Some(file(
            dir.path(),
            "agent.toml",
            "state_dir = \"relative\"\n",
            0o600,
        ));
        let err = crate::fault::error_chain(&agent_config(&g).unwrap_err());
        assert!(err.contains("state_dir"), "{err}");
        g.config = Some(dir.path().join("missing.toml"));
        let err = crate::fault::error_chain(&agent_config(&g).unwrap_err());
        assert!(err.contains("missing.toml"), "{err}");
    }

    #[test]
    fn the_daemon_needs_a_config_file() {
        let mut g = global();
        if Path::new(DEFAULT_DAEMON_CONFIG).exists() {
            return; // a machine with a real install: nothing to prove here
        }
        let err = format!("{:#}", daemon_config(&g).unwrap_err());
        assert!(err.contains("--config"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        g.config = Some(file(dir.path(), "agent.toml", "", 0o600));
        assert!(daemon_config(&g).is_ok());
    }
}

//! Helpers shared by subcommands: building middleware connect options from the global
//! flags (and, later, the agent's config file) and connecting.
//!
//! Owns: reading the API key file (refusing one that group or others can read) and
//! turning [`GlobalArgs`] into [`ConnectOptions`].
//! Does not: validate the URL or TLS options (the client does, with errors that name
//! the rule), or print anything.
//! Invariants: the API key goes straight into a `SecretString`; no error text contains
//! it (errors name the file and the rule only).
//! Limitations: the config file is not read yet; command-line flags are the only source.

use std::path::Path;

use anyhow::{Context, bail};
use secrecy::SecretString;

use super::GlobalArgs;
use crate::middleware::{ApiKey, Client, ConnectOptions};

/// Connect options from the global flags; defaults for everything not given.
pub fn connect_options(global: &GlobalArgs) -> anyhow::Result<ConnectOptions> {
    let mut options = ConnectOptions::default();
    if let Some(url) = &global.middleware {
        options.url.clone_from(url);
    }
    options.api_key = match (&global.api_key_file, &global.api_user) {
        (Some(path), user) => Some(ApiKey {
            username: user.clone(),
            key: read_api_key(path)?,
        }),
        (None, Some(_)) => bail!("--api-user only makes sense with --api-key-file"),
        (None, None) => None,
    };
    options.tls_ca_file.clone_from(&global.tls_ca_file);
    options.tls_pin_sha256.clone_from(&global.tls_pin);
    Ok(options)
}

/// Connects to the middleware as the global flags say (one attempt; the client
/// reconnects by itself afterwards).
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Client> {
    let options = connect_options(global)?;
    Client::connect(options)
        .await
        .context("cannot connect to the TrueNAS middleware")
}

/// Reads an API key (`<id>-<secret>`, one line) from a file only its owner can read.
pub fn read_api_key(path: &Path) -> anyhow::Result<SecretString> {
    let (_owner, mode) = crate::fs::owner_and_mode(path)?;
    if mode & 0o077 != 0 {
        bail!(
            "API key file {} has mode {mode:04o}: group or others may read it, and the key gives access to the NAS; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    let text = SecretString::from(crate::fs::read_to_string(path)?);
    let key = secrecy::ExposeSecret::expose_secret(&text).trim();
    if key.is_empty() {
        bail!("API key file {} is empty", path.display());
    }
    if key.contains(char::is_whitespace) {
        bail!(
            "API key file {} must hold exactly one key on one line (`<id>-<secret>`)",
            path.display()
        );
    }
    Ok(SecretString::from(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use secrecy::ExposeSecret;

    use super::*;

    const KEY: &str = "1-CANARY-API-KEY-0a7d62";

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

    fn key_file(dir: &Path, contents: &str, mode: u32) -> PathBuf {
        let path = dir.join("api.key");
        crate::fs::write_atomic(&path, contents.as_bytes(), 0o600).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn defaults_to_the_unix_socket_without_a_key() {
        let options = connect_options(&global()).unwrap();
        assert_eq!(options.url, crate::middleware::DEFAULT_URL);
        assert!(options.api_key.is_none());
    }

    #[test]
    fn reads_the_key_and_user() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = global();
        g.middleware = Some("wss://127.0.0.1".into());
        g.api_key_file = Some(key_file(dir.path(), &format!("{KEY}\n"), 0o600));
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
    fn refuses_a_key_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let path = key_file(dir.path(), KEY, mode);
            let err = format!("{:#}", read_api_key(&path).unwrap_err());
            assert!(err.contains("group or others may read it"), "{err}");
            assert!(err.contains(&format!("{mode:04o}")), "{err}");
            assert!(!err.contains("CANARY"), "{err}");
        }
        assert!(read_api_key(&key_file(dir.path(), KEY, 0o400)).is_ok());
    }

    #[test]
    fn refuses_empty_or_malformed_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_api_key(&key_file(dir.path(), " \n", 0o600)).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        let err =
            read_api_key(&key_file(dir.path(), &format!("{KEY}\n{KEY}\n"), 0o600)).unwrap_err();
        assert!(err.to_string().contains("exactly one key"), "{err}");
        assert!(!format!("{err:#}").contains("CANARY"));
        let missing = read_api_key(&dir.path().join("nope")).unwrap_err();
        assert!(format!("{missing:#}").contains("nope"), "{missing:#}");
    }

    #[test]
    fn api_user_without_key_is_refused() {
        let mut g = global();
        g.api_user = Some("agent".into());
        assert!(
            connect_options(&g)
                .unwrap_err()
                .to_string()
                .contains("--api-key-file")
        );
    }
}

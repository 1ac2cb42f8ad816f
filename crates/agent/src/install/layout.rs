//! Where an installation lives: the dataset name and the files inside its mountpoint.
//!
//! Owns: [`DatasetName`] validation, the default dataset name, and the [`Layout`] of the
//! install directory (binary, config, token, state dir, unit copies), plus the
//! host-side [`SystemPaths`] (systemd runtime unit dir, `systemctl`, `sh`).
//! Does not: touch the file system or the middleware; every function here is pure.
//! Invariants: a [`DatasetName`] only holds `[A-Za-z0-9_.:-]` components separated by
//!   `/`, so every path derived from it can be written into a unit file or a `sh -c`
//!   command inside single quotes without further escaping.
//! Limitations: dataset names with spaces (legal in ZFS) are refused on purpose.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the child dataset created on the root pool when `--dataset` is not given.
pub(crate) const DEFAULT_CHILD: &str = ".truenas-agent";

/// Longest accepted name. ZFS allows 255, but the init-script `comment` that names the
/// dataset is limited to 255 characters by the middleware, and it carries ~65 more.
const MAX_NAME_LEN: usize = 190;

/// A validated `POOL/DATASET[/...]` name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

/// Why a dataset name was refused (the rule it breaks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dataset `{name}`: {rule}")]
pub struct InvalidDatasetName {
    pub name: String,
    pub rule: &'static str,
}

impl DatasetName {
    /// Validates `name`: a pool and at least one child, `[A-Za-z0-9_.:-]` per component,
    /// no empty component, the pool starting with a letter, at most 255 characters.
    pub fn parse(name: &str) -> Result<Self, InvalidDatasetName> {
        let refuse = |rule| {
            Err(InvalidDatasetName {
                name: name.to_owned(),
                rule,
            })
        };
        if name.len() > MAX_NAME_LEN {
            return refuse(
                "must be at most 190 characters (the init-script comment naming it is capped at 255)",
            );
        }
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() < 2 {
            return refuse(
                "must be POOL/DATASET (the agent is never installed into a pool's root)",
            );
        }
        if parts.iter().any(|p| p.is_empty()) {
            return refuse("must not have empty components (no leading, trailing or double `/`)");
        }
        if !parts[0].starts_with(|c: char| c.is_ascii_alphabetic()) {
            return refuse("the pool name must start with a letter");
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
        if !parts.iter().all(|p| p.chars().all(allowed)) {
            return refuse(
                "may only contain letters, digits and `_ . : -` (plus `/` between components)",
            );
        }
        if parts.iter().any(|p| *p == "." || *p == "..") {
            return refuse("components `.` and `..` are not allowed");
        }
        Ok(Self(name.to_owned()))
    }

    /// The default install dataset on `pool`: `<pool>/.truenas-agent`.
    pub fn default_on(pool: &str) -> Result<Self, InvalidDatasetName> {
        Self::parse(&format!("{pool}/{DEFAULT_CHILD}"))
    }

    /// The pool part.
    pub fn pool(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// The parent dataset (`pool0/a` for `pool0/a/b`).
    pub fn parent(&self) -> &str {
        self.0
            .rsplit_once('/')
            .map_or(&self.0, |(parent, _)| parent)
    }

    /// The full name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DatasetName {
    type Error = InvalidDatasetName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DatasetName> for String {
    fn from(value: DatasetName) -> Self {
        value.0
    }
}

/// How the agent binary reaches the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The binary itself lives on the pool (`bin/truenas-agent`) with a copy of the unit.
    Binary,
    /// A systemd-sysext image lives on the pool (`truenas-agent.raw`); at boot it is
    /// copied to `/run/extensions` and merged, which puts the binary in
    /// `/usr/bin/truenas-agent` and the unit in `/usr/lib/systemd/system`.
    Sysext,
}

/// The files of one installation, below the dataset's mountpoint.
///
/// ```text
/// <mountpoint>/                 0700  the install dataset
///   bin/truenas-agent           0755  the agent binary (route Binary)
///   truenas-agent.raw           0644  the sysext image (route Sysext)
///   agent.toml                  0600  agent config (state_dir, central.token_file point here)
///   token                       0600  device token for central
///   state/                      0700  state dir (the only path the service may write)
///   systemd/truenas-agent.service    0644  copied to /run/systemd/system at boot (Binary)
///   systemd/install.conf             0644  the drop-in (ExecStart, ReadWritePaths)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub dataset: DatasetName,
    /// Where the dataset is mounted (`/mnt/<dataset>` on TrueNAS).
    pub root: PathBuf,
    pub route: Route,
}

impl Layout {
    /// The layout of `dataset` mounted at `root`, binary route.
    pub fn new(dataset: DatasetName, root: impl Into<PathBuf>) -> Self {
        Self::with_route(dataset, root, Route::Binary)
    }

    /// The layout of `dataset` mounted at `root` for `route`.
    pub fn with_route(dataset: DatasetName, root: impl Into<PathBuf>, route: Route) -> Self {
        Self {
            dataset,
            root: root.into(),
            route,
        }
    }

    /// The sysext image kept on the pool.
    pub fn image(&self) -> PathBuf {
        self.root.join(IMAGE_NAME)
    }

    /// What the route installs onto the pool: the binary or the image.
    pub fn payload(&self) -> PathBuf {
        match self.route {
            Route::Binary => self.binary(),
            Route::Sysext => self.image(),
        }
    }

    /// The binary the unit runs: on the pool, or in the merged `/usr`.
    pub fn exec_path(&self, sys: &SystemPaths) -> PathBuf {
        match self.route {
            Route::Binary => self.binary(),
            Route::Sysext => sys.sysext_usr.join("bin/truenas-agent"),
        }
    }

    /// `bin/` directory.
    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// The installed agent binary.
    pub fn binary(&self) -> PathBuf {
        self.bin_dir().join("truenas-agent")
    }

    /// The agent config file.
    pub fn config(&self) -> PathBuf {
        self.root.join("agent.toml")
    }

    /// The device token file.
    pub fn token(&self) -> PathBuf {
        self.root.join("token")
    }

    /// The agent's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Directory holding the unit copies on the pool.
    pub fn systemd_dir(&self) -> PathBuf {
        self.root.join("systemd")
    }

    /// The unit file kept on the pool.
    pub fn unit_copy(&self) -> PathBuf {
        self.systemd_dir().join(UNIT_NAME)
    }

    /// The drop-in kept on the pool.
    pub fn dropin_copy(&self) -> PathBuf {
        self.systemd_dir().join(DROPIN_NAME)
    }
}

/// File name of the sysext image (on the pool and in `/run/extensions`).
pub(crate) const IMAGE_NAME: &str = "truenas-agent.raw";
/// The unit's name.
pub(crate) const UNIT_NAME: &str = "truenas-agent.service";
/// The drop-in's file name (in `truenas-agent.service.d/`).
pub(crate) const DROPIN_NAME: &str = "install.conf";

/// Host paths outside the install dataset. Configurable so tests can run without root
/// and without systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPaths {
    /// systemd's runtime unit directory (tmpfs, empty at every boot).
    pub run_dir: PathBuf,
    /// The `systemctl` binary (exec'd without a shell).
    pub systemctl: PathBuf,
    /// The shell the middleware runs init commands with (`sh -c`).
    pub sh: PathBuf,
    /// Where systemd-sysext looks for images at runtime (tmpfs).
    pub extensions_dir: PathBuf,
    /// The `systemd-sysext` binary.
    pub sysext: PathBuf,
    /// The `/usr` that merged extensions appear in.
    pub sysext_usr: PathBuf,
}

impl Default for SystemPaths {
    fn default() -> Self {
        Self {
            run_dir: PathBuf::from("/run/systemd/system"),
            // /bin works with and without merged /usr (TrueNAS is merged; either is fine).
            systemctl: PathBuf::from("/bin/systemctl"),
            sh: PathBuf::from("/bin/sh"),
            extensions_dir: PathBuf::from("/run/extensions"),
            sysext: PathBuf::from("/usr/bin/systemd-sysext"),
            sysext_usr: PathBuf::from("/usr"),
        }
    }
}

impl SystemPaths {
    /// The runtime copy of the unit.
    pub fn runtime_unit(&self) -> PathBuf {
        self.run_dir.join(UNIT_NAME)
    }

    /// The runtime drop-in directory.
    pub fn runtime_dropin_dir(&self) -> PathBuf {
        self.run_dir.join(format!("{UNIT_NAME}.d"))
    }

    /// The runtime copy of the sysext image.
    pub fn runtime_image(&self) -> PathBuf {
        self.extensions_dir.join(IMAGE_NAME)
    }

    /// Where the unit appears once the image is merged.
    pub fn image_unit(&self) -> PathBuf {
        self.sysext_usr.join("lib/systemd/system").join(UNIT_NAME)
    }

    /// The runtime copy of the drop-in.
    pub fn runtime_dropin(&self) -> PathBuf {
        self.runtime_dropin_dir().join(DROPIN_NAME)
    }
}

/// True when `path` only has characters that are safe inside single quotes in `sh` and
/// unquoted in a unit file (what [`DatasetName`] guarantees for pool paths).
pub(crate) fn is_plain_path(path: &Path) -> bool {
    path.to_str().is_some_and(|s| {
        s.starts_with('/')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | ':' | '-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_names() {
        for name in ["pool0/.truenas-agent", "tank/a/b_c-d.e:f", "p/x"] {
            let ds = DatasetName::parse(name).unwrap();
            assert_eq!(ds.as_str(), name);
        }
        let ds = DatasetName::parse("tank/a/b").unwrap();
        assert_eq!(ds.pool(), "tank");
        assert_eq!(ds.parent(), "tank/a");
    }

    #[test]
    fn refuses_with_the_rule() {
        let cases = [
            ("pool0", "must be POOL/DATASET"),
            ("pool0/", "empty components"),
            ("/pool0/x", "empty components"),
            ("pool0//x", "empty components"),
            ("0pool/x", "start with a letter"),
            ("pool0/my data", "may only contain"),
            ("pool0/x'y", "may only contain"),
            ("pool0/../x", "`.` and `..`"),
        ];
        for (name, rule) in cases {
            let err = DatasetName::parse(name).unwrap_err();
            assert!(err.to_string().contains(rule), "{name}: {err}");
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
        let long = format!("p/{}", "a".repeat(300));
        assert!(DatasetName::parse(&long).is_err());
    }

    #[test]
    fn default_dataset_is_hidden_child_of_pool() {
        let ds = DatasetName::default_on("pool0").unwrap();
        assert_eq!(ds.as_str(), "pool0/.truenas-agent");
    }

    #[test]
    fn layout_paths() {
        let layout = Layout::new(
            DatasetName::parse("pool0/.truenas-agent").unwrap(),
            "/mnt/pool0/.truenas-agent",
        );
        assert_eq!(
            layout.binary(),
            Path::new("/mnt/pool0/.truenas-agent/bin/truenas-agent")
        );
        assert_eq!(
            layout.dropin_copy(),
            Path::new("/mnt/pool0/.truenas-agent/systemd/install.conf")
        );
        let sys = SystemPaths::default();
        assert_eq!(
            sys.runtime_dropin(),
            Path::new("/run/systemd/system/truenas-agent.service.d/install.conf")
        );
        assert!(is_plain_path(&layout.binary()));
        assert!(!is_plain_path(Path::new("/mnt/a b")));
        assert!(!is_plain_path(Path::new("relative")));
    }
}

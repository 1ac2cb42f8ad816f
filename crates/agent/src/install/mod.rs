//! Installs, checks and removes the agent the TrueNAS way.
//!
//! TrueNAS replaces `/usr` and rebuilds `/etc` on every update; the config database and
//! the pools survive. So the agent lives on a pool dataset (binary, config, token, state,
//! and a copy of its unit + drop-in), and a middleware init-script entry (POSTINIT,
//! `COMMAND`) copies the unit into `/run/systemd/system` and starts it on every boot.
//! The sysext route ([`Route::Sysext`]) keeps a systemd-sysext image on the pool instead
//! of the binary; the boot command copies it to `/run/extensions` and merges it.
//!
//! Owns: the install dataset (created through the middleware when missing), the files in
//! it ([`Layout`]), our init-script entry (recognised by [`units::MARKER`] in its
//! comment), the runtime unit files in `/run/systemd/system`, starting/stopping the unit,
//! and the [`CheckReport`] of `install --check`.
//! Does not: touch init-script entries without our marker, datasets other than the
//!   install dataset, or anything under `/etc` and `/usr`; run the agent's own logic.
//! Invariants: every input (dataset name, config, token, binary) is read and validated
//!   before the first write; files are written atomically with their final mode (0600 for
//!   config and token, which are never logged or echoed); re-running `install` with the
//!   same inputs changes nothing and does not restart the service; the boot command the
//!   middleware runs is the very command `install` runs to start the service now.
//! Limitations: one installation per box; refuses datasets locked at boot
//!   (passphrase-encrypted or locked now); `--purge` removes our files but leaves the
//!   (then empty) dataset for the admin to delete; systemd is driven through `systemctl`.

pub(crate) mod check;
mod error;
pub(crate) mod layout;
pub(crate) mod nas;
pub(crate) mod systemd;
pub(crate) mod units;

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

pub use check::{CheckItem, CheckReport, CheckStatus};
pub use error::InstallError;
pub use layout::{DatasetName, InvalidDatasetName, Layout, Route, SystemPaths};
pub use nas::InitChange;
pub use systemd::{CommandError, Systemd, UnitStatus};

use check::{CopyFact, Facts, FileFact};
use units::InitScriptSpec;

use crate::fault::error_chain;
use crate::fs::{self, FsError};
use crate::middleware::{Method, Middleware};

/// Key (in `[central]`) the installer points at the installed token (docs/configuration.md).
pub const CONFIG_TOKEN_KEY: &str = "token_file";
/// Top-level config key of the state directory.
pub const CONFIG_STATE_KEY: &str = "state_dir";

/// The host side: where systemd's runtime dir and tools are, who must own our files.
/// The default is the real host: `/run/systemd/system`, `/bin/systemctl`, uid 0.
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub sys: SystemPaths,
    /// The uid our files must belong to: 0 on a NAS; tests use their own uid.
    pub owner_uid: u32,
}

impl Host {
    fn systemd(&self) -> Systemd {
        Systemd::new(&self.sys.systemctl, &self.sys.sh).with_sysext(&self.sys.sysext)
    }
}

/// What `install` was asked to do.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    /// `None`: `<root pool>/.truenas-agent`.
    pub dataset: Option<DatasetName>,
    /// The binary to install (the running one, normally). Ignored with `sysext_image`.
    pub binary: PathBuf,
    /// Install this systemd-sysext image instead of the binary (route Sysext).
    pub sysext_image: Option<PathBuf>,
    /// Agent config to install (TOML); required on the first install.
    pub agent_config: Option<PathBuf>,
    /// Device token file to install; required on the first install.
    pub token_file: Option<PathBuf>,
    /// The user property that carries the device GUID in the configuration in force
    /// (`guid_property`): it marks the root pool when `dataset` is not given. The
    /// `guid_property` of `agent_config`, when that file is given, wins.
    pub guid_property: String,
}

/// What `install` did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallOutcome {
    pub layout: Layout,
    pub created_dataset: bool,
    /// Files written because they were missing or different (`binary`, `config`, ...).
    pub written: Vec<String>,
    pub init_script: InitChange,
    /// True when the service was restarted (something changed or it was not running).
    pub restarted: bool,
    pub check: CheckReport,
}

/// What `uninstall` did.
#[derive(Debug, Clone, Serialize)]
pub struct UninstallOutcome {
    /// Our init-script entries that were deleted.
    pub removed_init_scripts: Vec<i64>,
    /// Whether the unit was loaded and got stopped.
    pub stopped: bool,
    /// Install directory whose files were removed (`--purge`).
    pub purged: Option<PathBuf>,
    /// Install directory left in place (no `--purge`).
    pub kept: Option<PathBuf>,
}

/// Inputs read and validated before anything is written.
struct Prepared {
    route: Route,
    /// The binary or the image.
    payload: Vec<u8>,
    config: Option<(PathBuf, String)>,
    /// The installed config's `guid_property`, when a config is installed.
    guid_property: Option<String>,
    token: Option<SecretString>,
}

fn prepare(req: &InstallRequest) -> Result<Prepared, InstallError> {
    let (route, payload) = match &req.sysext_image {
        Some(image) => (Route::Sysext, fs::read(image)?),
        None => (Route::Binary, fs::read(&req.binary)?),
    };
    let mut guid_property = None;
    let config = match &req.agent_config {
        Some(path) => {
            let text = fs::read_to_string(path)?;
            // Validate now, before anything is written; the real paths come later.
            #[allow(
                clippy::expect_used,
                reason = "invariant: `pool/.truenas-agent` is a valid dataset name (a literal)"
            )]
            let probe = Layout::new(
                DatasetName::parse("pool/.truenas-agent")
                    .expect("invariant: a literal valid dataset name"),
                "/mnt/pool/.truenas-agent",
            );
            guid_property = Some(render(path, &text, &probe)?.1.guid_property);
            Some((path.clone(), text))
        }
        None => None,
    };
    let token = match &req.token_file {
        Some(path) => {
            let text = SecretString::from(fs::read_to_string(path)?);
            if text.expose_secret().trim().is_empty() {
                return Err(InstallError::EmptyToken { path: path.clone() });
            }
            Some(text)
        }
        None => None,
    };
    Ok(Prepared {
        route,
        payload,
        config,
        guid_property,
        token,
    })
}

fn parse_config(path: &Path, text: &str) -> Result<toml::Table, InstallError> {
    toml::from_str(text).map_err(|source| InstallError::BadConfig {
        path: path.to_owned(),
        source,
    })
}

/// The config as installed: the operator's file with `state_dir` and, when it has a
/// `[central]` section, `central.token_file` pointing into the install dataset —
/// validated exactly as the agent will load it (`config::AgentConfig::parse`).
pub fn render_config(source: &Path, text: &str, layout: &Layout) -> Result<String, InstallError> {
    render(source, text, layout).map(|(rendered, _)| rendered)
}

/// [`render_config`] and the configuration the agent will load from it.
fn render(
    source: &Path,
    text: &str,
    layout: &Layout,
) -> Result<(String, crate::config::AgentConfig), InstallError> {
    let mut table = parse_config(source, text)?;
    let path_value = |p: PathBuf| toml::Value::String(p.display().to_string());
    table.insert(CONFIG_STATE_KEY.to_owned(), path_value(layout.state_dir()));
    if let Some(central) = table.get_mut("central").and_then(toml::Value::as_table_mut) {
        central.insert(CONFIG_TOKEN_KEY.to_owned(), path_value(layout.token()));
    }
    let rendered = toml::to_string(&table).map_err(InstallError::EncodeConfig)?;
    let config = crate::config::AgentConfig::parse(&rendered, &source.display().to_string())
        .map_err(|source_err| InstallError::InvalidConfig {
            path: source.to_owned(),
            source: source_err,
        })?;
    Ok((rendered, config))
}

/// Whether a config needs a device token (it talks to central).
pub fn config_needs_token(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).map_or(true, |t| t.contains_key("central"))
}

const MISSING_CONFIG: InstallError = InstallError::MissingInput {
    flag: "--agent-config FILE",
    why: "no agent config is installed yet",
};
const MISSING_TOKEN: InstallError = InstallError::MissingInput {
    flag: "--token-file FILE",
    why: "no device token is installed yet",
};

/// Installs (or re-installs / upgrades) the agent. See the module doc for what it owns.
pub async fn install(
    mw: &impl Middleware,
    host: &Host,
    req: &InstallRequest,
) -> Result<InstallOutcome, InstallError> {
    let prepared = prepare(req)?;
    let dataset = if let Some(d) = &req.dataset {
        d.clone()
    } else {
        let property = prepared
            .guid_property
            .as_ref()
            .unwrap_or(&req.guid_property);
        default_dataset(mw, property).await?
    };
    // A missing dataset means a first install: refuse before creating anything.
    if nas::dataset(mw, dataset.as_str()).await?.is_none() {
        prepared.require_first_install_inputs()?;
    }
    let (layout, created_dataset) = ensure_dataset(mw, &dataset, prepared.route).await?;
    let systemd = host.systemd();
    let version = systemd.version().await?;
    let written = write_all(&layout, &host.sys, &prepared, version)?;
    tracing::info!(dataset = %layout.dataset, written = ?written, "installed files");

    let spec = InitScriptSpec::for_layout(&layout, &host.sys);
    let init_script = nas::ensure_init_entry(mw, &spec).await?;
    tracing::info!(?init_script, "init script registered");
    let restarted = activate(&systemd, &spec.command, !written.is_empty()).await?;
    let check = check_layout(mw, host, &dataset).await?;
    Ok(InstallOutcome {
        layout,
        created_dataset,
        written,
        init_script,
        restarted,
        check,
    })
}

impl Prepared {
    fn require_first_install_inputs(&self) -> Result<(), InstallError> {
        match (&self.config, &self.token) {
            (None, _) => Err(MISSING_CONFIG),
            (Some((_, text)), None) if config_needs_token(text) => Err(MISSING_TOKEN),
            (Some(_), _) => Ok(()),
        }
    }
}

/// Writes every file (config from the new or the installed one, token only when given);
/// returns the names of the files that changed.
fn write_all(
    layout: &Layout,
    sys: &SystemPaths,
    prepared: &Prepared,
    systemd_version: Option<u32>,
) -> Result<Vec<String>, InstallError> {
    let (source, text) = match &prepared.config {
        Some((path, text)) => (path.clone(), text.clone()),
        None => match fs::read_optional(&layout.config())? {
            Some(bytes) => (
                layout.config(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ),
            None => return Err(MISSING_CONFIG),
        },
    };
    if config_needs_token(&text)
        && prepared.token.is_none()
        && fs::stat_optional(&layout.token())?.is_none()
    {
        return Err(MISSING_TOKEN);
    }
    let config = render_config(&source, &text, layout)?;
    let mut written = write_files(layout, sys, &prepared.payload, &config, systemd_version)?;
    if let Some(token) = &prepared.token {
        if write_if_changed(&layout.token(), token.expose_secret().as_bytes(), 0o600)? {
            written.push("token".to_owned());
        }
    }
    Ok(written)
}

/// Starts the service exactly as the boot will (the registered command), then restarts
/// it when something changed or it was not running; returns whether it was restarted.
async fn activate(
    systemd: &Systemd,
    boot_command: &str,
    changed: bool,
) -> Result<bool, InstallError> {
    systemd.run_boot_command(boot_command).await?;
    let was_active = systemd.show().await.is_ok_and(|s| s.is_active());
    let restart = changed || !was_active;
    systemd
        .unit(if restart { "restart" } else { "start" })
        .await?;
    Ok(restart)
}

/// `<root pool>/.truenas-agent`: the only pool, or the one carrying the device GUID in
/// the user property `guid_property`.
pub async fn default_dataset(
    mw: &impl Middleware,
    guid_property: &str,
) -> Result<DatasetName, InstallError> {
    let pools = nas::pools(mw).await?;
    let pool = match pools.as_slice() {
        [] => return Err(InstallError::NoPools),
        [only] => only.clone(),
        _ => match nas::pools_with_guid(mw, &pools, guid_property)
            .await?
            .as_slice()
        {
            [root] => root.clone(),
            _ => return Err(InstallError::AmbiguousPool { pools }),
        },
    };
    Ok(DatasetName::default_on(&pool)?)
}

/// Makes sure the dataset exists, is mounted and usable at boot; creates it if missing.
async fn ensure_dataset(
    mw: &impl Middleware,
    dataset: &DatasetName,
    route: Route,
) -> Result<(Layout, bool), InstallError> {
    let (info, created) = match nas::dataset(mw, dataset.as_str()).await? {
        Some(info) => (info, false),
        None => (create_dataset(mw, dataset).await?, true),
    };
    usable_layout(dataset, info, route).map(|layout| (layout, created))
}

/// Creates the dataset after checking that it would not inherit a boot-time lock.
async fn create_dataset(
    mw: &impl Middleware,
    dataset: &DatasetName,
) -> Result<nas::DatasetInfo, InstallError> {
    let parent =
        nas::dataset(mw, dataset.parent())
            .await?
            .ok_or_else(|| InstallError::Unusable {
                dataset: dataset.to_string(),
                reason: format!("its parent {} does not exist", dataset.parent()),
            })?;
    if let Some(reason) = nas::boot_lock(&parent) {
        return Err(InstallError::LockedAtBoot {
            dataset: dataset.to_string(),
            reason: format!(
                "it would inherit the encryption of {}: {reason}",
                parent.name
            ),
        });
    }
    nas::create_dataset(mw, dataset).await?;
    tracing::info!(%dataset, "created the install dataset");
    nas::dataset(mw, dataset.as_str())
        .await?
        .ok_or_else(|| InstallError::UnexpectedReply {
            method: Method::DatasetQuery,
            detail: format!("{dataset} was created but is not listed"),
        })
}

/// The layout on `info`, or why the dataset cannot hold the agent.
fn usable_layout(
    dataset: &DatasetName,
    info: nas::DatasetInfo,
    route: Route,
) -> Result<Layout, InstallError> {
    let unusable = |reason: String| InstallError::Unusable {
        dataset: dataset.to_string(),
        reason,
    };
    if let Some(reason) = nas::boot_lock(&info) {
        return Err(InstallError::LockedAtBoot {
            dataset: dataset.to_string(),
            reason,
        });
    }
    if info.exec.as_deref() == Some("OFF") {
        return Err(unusable(
            "exec=off: the agent binary could not run from it".into(),
        ));
    }
    if info.readonly.as_deref() == Some("ON") {
        return Err(unusable("it is read-only".into()));
    }
    let Some(mountpoint) = info.mountpoint else {
        return Err(unusable("it is not mounted".into()));
    };
    if !layout::is_plain_path(&mountpoint) {
        return Err(unusable(format!(
            "its mountpoint {} has characters the boot command cannot quote",
            mountpoint.display()
        )));
    }
    if fs::stat_optional(&mountpoint)?.is_none_or(|s| s.is_file) {
        return Err(unusable(format!(
            "its mountpoint {} is not a directory on this host",
            mountpoint.display()
        )));
    }
    Ok(Layout::with_route(dataset.clone(), mountpoint, route))
}

/// Writes everything but the token; returns the names of the files that changed.
fn write_files(
    layout: &Layout,
    sys: &SystemPaths,
    payload: &[u8],
    config: &str,
    systemd_version: Option<u32>,
) -> Result<Vec<String>, InstallError> {
    fs::set_mode(&layout.root, 0o700)?;
    fs::create_dir_all(&layout.state_dir(), 0o700)?;
    fs::create_dir_all(&layout.systemd_dir(), 0o755)?;
    let dropin = units::dropin(layout, sys, systemd_version);
    let mut files: Vec<(&str, PathBuf, &[u8], u32)> = vec![
        ("config", layout.config(), config.as_bytes(), 0o600),
        ("drop-in", layout.dropin_copy(), dropin.as_bytes(), 0o644),
    ];
    match layout.route {
        Route::Binary => {
            fs::create_dir_all(&layout.bin_dir(), 0o755)?;
            files.push(("binary", layout.binary(), payload, 0o755));
            let unit = units::UNIT_TEMPLATE.as_bytes();
            files.push(("unit", layout.unit_copy(), unit, 0o644));
        }
        // The unit comes with the image.
        Route::Sysext => files.push(("image", layout.image(), payload, 0o644)),
    }
    let mut written = Vec::new();
    for (name, path, bytes, mode) in files {
        if write_if_changed(&path, bytes, mode)? {
            written.push(name.to_owned());
        }
    }
    Ok(written)
}

/// Writes `bytes` atomically unless the file already has exactly that content and mode.
fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, FsError> {
    let same_mode = fs::stat_optional(path)?.is_some_and(|s| s.mode == mode);
    if same_mode && fs::read_optional(path)?.as_deref() == Some(bytes) {
        return Ok(false);
    }
    fs::write_atomic(path, bytes, mode)?;
    Ok(true)
}

/// `install --check`: every piece, with what to do about failures. Without `dataset`,
/// the installed one ([`installed_dataset`]; `guid_property` as there).
pub async fn check(
    mw: &impl Middleware,
    host: &Host,
    dataset: Option<DatasetName>,
    guid_property: &str,
) -> Result<CheckReport, InstallError> {
    let dataset = match dataset {
        Some(d) => d,
        None => installed_dataset(mw, guid_property).await?,
    };
    check_layout(mw, host, &dataset).await
}

/// `check` when the agent is installed as a service (our init-script entry exists);
/// `None` when it is not (a development box, or the agent run by hand), so `status`
/// does not flag a layout nobody asked for.
pub async fn check_if_installed(
    mw: &impl Middleware,
    host: &Host,
    guid_property: &str,
) -> Result<Option<CheckReport>, InstallError> {
    if nas::our_init_entries(mw).await?.is_empty() {
        return Ok(None);
    }
    check(mw, host, None, guid_property).await.map(Some)
}

/// The dataset of the current installation: from our init-script entry, else the default
/// ([`default_dataset`]: the root pool carries the device GUID in `guid_property`).
pub async fn installed_dataset(
    mw: &impl Middleware,
    guid_property: &str,
) -> Result<DatasetName, InstallError> {
    let entries = nas::our_init_entries(mw).await?;
    match entries
        .iter()
        .find_map(|e| units::dataset_from_comment(e.comment()))
    {
        Some(d) => Ok(d),
        None => default_dataset(mw, guid_property).await,
    }
}

async fn check_layout(
    mw: &impl Middleware,
    host: &Host,
    dataset: &DatasetName,
) -> Result<CheckReport, InstallError> {
    let info = nas::dataset(mw, dataset.as_str()).await?;
    let init_entries = nas::our_init_entries(mw).await?;
    let layout = info.as_ref().and_then(|i| i.mountpoint.clone()).map(|m| {
        let route = route_of(&init_entries, &m);
        Layout::with_route(dataset.clone(), m, route)
    });
    let route = layout.as_ref().map_or(Route::Binary, |l| l.route);
    let sys = &host.sys;
    let file = |pick: fn(&Layout) -> PathBuf| {
        layout
            .as_ref()
            .map_or(FileFact::Missing, |l| file_fact(&pick(l)))
    };
    let copy = |pick: fn(&Layout) -> PathBuf, runtime: PathBuf| {
        let fact = layout
            .as_ref()
            .map_or(CopyFact::Missing, |l| copy_fact(&pick(l), &runtime));
        (runtime, fact)
    };
    let (first_copy, expected_fragment) = match route {
        Route::Binary => (
            copy(Layout::unit_copy, sys.runtime_unit()),
            sys.runtime_unit(),
        ),
        Route::Sysext => (copy(Layout::image, sys.runtime_image()), sys.image_unit()),
    };
    let facts = Facts {
        dataset: dataset.to_string(),
        route,
        mountpoint_present: layout
            .as_ref()
            .is_some_and(|l| matches!(fs::stat_optional(&l.root), Ok(Some(s)) if !s.is_file)),
        dataset_info: info,
        binary: file(Layout::payload),
        binary_runs: binary_runs(&host.systemd(), layout.as_ref(), sys).await,
        config: file(Layout::config),
        token: file(Layout::token),
        token_required: layout.as_ref().is_none_or(|l| {
            fs::read_optional(&l.config())
                .ok()
                .flatten()
                .is_none_or(|b| config_needs_token(&String::from_utf8_lossy(&b)))
        }),
        paths: layout
            .as_ref()
            .map(|l| [l.payload(), l.config(), l.token()]),
        init_entries,
        expected_init: layout.as_ref().map(|l| InitScriptSpec::for_layout(l, sys)),
        runtime_copies: vec![first_copy, copy(Layout::dropin_copy, sys.runtime_dropin())],
        expected_fragment: fs::canonical(&expected_fragment).unwrap_or(expected_fragment),
        unit: host
            .systemd()
            .show()
            .await
            .map(canonical_fragment)
            .map_err(|e| e.to_string()),
        owner_uid: host.owner_uid,
        sys: sys.clone(),
    };
    Ok(check::evaluate(&facts))
}

/// systemd reports the first search-path entry a unit was found under: on Debian
/// bookworm `/lib/systemd/system/...` for a unit merged into `/usr/lib/systemd/system`
/// (`/lib` is a symlink to `usr/lib`). Compare real paths.
fn canonical_fragment(mut status: UnitStatus) -> UnitStatus {
    if let Some(real) = fs::canonical(Path::new(&status.fragment_path)) {
        status.fragment_path = real.display().to_string();
    }
    status
}

/// The route of an installation: from our init-script entry, else from the files.
fn route_of(entries: &[nas::InitEntry], root: &Path) -> Route {
    if let Some(entry) = entries.first() {
        return units::route_from_comment(entry.comment());
    }
    let has = |p: PathBuf| matches!(fs::stat_optional(&p), Ok(Some(_)));
    if has(root.join(layout::IMAGE_NAME)) && !has(root.join("bin/truenas-agent")) {
        Route::Sysext
    } else {
        Route::Binary
    }
}

async fn binary_runs(
    systemd: &Systemd,
    layout: Option<&Layout>,
    sys: &SystemPaths,
) -> Option<Result<String, String>> {
    let layout = layout?;
    fs::stat_optional(&layout.payload()).ok().flatten()?;
    let binary = layout.exec_path(sys);
    Some(
        systemd
            .binary_version(&binary)
            .await
            .map_err(|e| e.to_string()),
    )
}

fn file_fact(path: &Path) -> FileFact {
    match fs::stat_optional(path) {
        Ok(None) => FileFact::Missing,
        Ok(Some(s)) => FileFact::Present {
            uid: s.uid,
            mode: s.mode,
            is_file: s.is_file,
        },
        Err(e) => FileFact::Unreadable(error_chain(&e)),
    }
}

fn copy_fact(pool_copy: &Path, runtime: &Path) -> CopyFact {
    match (fs::read_optional(runtime), fs::read_optional(pool_copy)) {
        (Ok(None) | Err(_), _) => CopyFact::Missing,
        (Ok(Some(a)), Ok(Some(b))) if a == b => CopyFact::Same,
        _ => CopyFact::Differs,
    }
}

/// Removes our init-script entries and the runtime unit, stops the service; with
/// `purge`, also removes our files from the install dataset.
pub async fn uninstall(
    mw: &impl Middleware,
    host: &Host,
    dataset: Option<DatasetName>,
    purge: bool,
) -> Result<UninstallOutcome, InstallError> {
    let dataset = match dataset {
        Some(d) => Some(d),
        None => nas::our_init_entries(mw)
            .await?
            .iter()
            .find_map(|e| units::dataset_from_comment(e.comment())),
    };
    // First the boot hook, so an interrupted uninstall never comes back after a reboot.
    let removed_init_scripts = nas::delete_init_entries(mw).await?;
    let stopped = remove_unit(&host.systemd(), &host.sys).await?;
    let layout = match &dataset {
        Some(d) => nas::dataset(mw, d.as_str())
            .await?
            .and_then(|i| i.mountpoint)
            .map(|m| Layout::new(d.clone(), m)),
        None => None,
    };
    let (purged, kept) = match (layout, purge) {
        (Some(layout), true) => {
            purge_files(&layout)?;
            (Some(layout.root), None)
        }
        (Some(layout), false) => (None, Some(layout.root)),
        (None, _) => (None, None),
    };
    Ok(UninstallOutcome {
        removed_init_scripts,
        stopped,
        purged,
        kept,
    })
}

/// Stops the unit if systemd knows it, removes the runtime copies, reloads; returns
/// whether it was loaded.
async fn remove_unit(systemd: &Systemd, sys: &SystemPaths) -> Result<bool, InstallError> {
    let status = systemd.show().await?;
    let loaded = status.load_state == "loaded" || status.is_active();
    if loaded {
        systemd.unit("stop").await?;
    }
    fs::remove_file_if_exists(&sys.runtime_unit())?;
    fs::remove_dir_all_if_exists(&sys.runtime_dropin_dir())?;
    if fs::stat_optional(&sys.runtime_image())?.is_some() {
        fs::remove_file_if_exists(&sys.runtime_image())?;
        systemd.sysext_refresh().await?;
    }
    systemd.daemon_reload().await?;
    // Forget a failed state; harmless when there is none (systemctl then says so).
    if let Err(e) = systemd.unit("reset-failed").await {
        tracing::debug!(error = %e, "reset-failed");
    }
    Ok(loaded)
}

fn purge_files(layout: &Layout) -> Result<(), FsError> {
    fs::remove_dir_all_if_exists(&layout.bin_dir())?;
    fs::remove_file_if_exists(&layout.image())?;
    fs::remove_dir_all_if_exists(&layout.systemd_dir())?;
    fs::remove_dir_all_if_exists(&layout.state_dir())?;
    fs::remove_file_if_exists(&layout.config())?;
    fs::remove_file_if_exists(&layout.token())
}

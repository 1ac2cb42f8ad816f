//! The allow-list of middleware methods the agent may call.
//!
//! Owns: the [`Method`] enum — the only way to name a middleware method in a [`Call`].
//! Does not: build params (see `calls.rs`) or know which versions have which method
//! beyond [`Method::available_on`].
//! Invariants: adding a call to the agent means adding a variant here; the allow-list test
//! (`tests/it/allow_list.rs`) checks every variant against `shared/truenas-api/<ver>/index.json`.
//!
//! [`Call`]: super::Call

use super::flavor::ApiFlavor;

macro_rules! methods {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal ),* $(,)?) => {
        /// A middleware method the agent is allowed to call.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Method {
            $( $(#[$doc])* $variant, )*
        }

        impl Method {
            /// Every method, in declaration order.
            pub const ALL: &'static [Method] = &[ $( Method::$variant, )* ];

            /// The wire name, e.g. `cloudsync.query`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Method::$variant => $name, )*
                }
            }

            /// Looks a wire name up in the allow-list.
            pub fn from_name(name: &str) -> Option<Method> {
                match name {
                    $( $name => Some(Method::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

methods! {
    /// 25.04+: `auth.login_ex` with `API_KEY_PLAIN`.
    AuthLoginEx => "auth.login_ex",
    /// 24.10: API key login (private from API v27.0.0 on).
    AuthLoginWithApiKey => "auth.login_with_api_key",
    AuthMe => "auth.me",
    CorePing => "core.ping",
    CoreGetJobs => "core.get_jobs",
    CoreJobWait => "core.job_wait",
    CoreJobAbort => "core.job_abort",
    /// 25.04+ (JSON-RPC); the legacy protocol uses the `sub` message instead.
    CoreSubscribe => "core.subscribe",
    CoreUnsubscribe => "core.unsubscribe",
    CoreSetOptions => "core.set_options",
    CloudsyncQuery => "cloudsync.query",
    CloudsyncCreate => "cloudsync.create",
    CloudsyncUpdate => "cloudsync.update",
    CloudsyncDelete => "cloudsync.delete",
    /// A job: returns the job id (or an already queued run's id).
    CloudsyncSync => "cloudsync.sync",
    CloudsyncAbort => "cloudsync.abort",
    CloudsyncListBuckets => "cloudsync.list_buckets",
    CloudsyncListDirectory => "cloudsync.list_directory",
    CloudsyncProviders => "cloudsync.providers",
    CredentialsQuery => "cloudsync.credentials.query",
    CredentialsCreate => "cloudsync.credentials.create",
    CredentialsUpdate => "cloudsync.credentials.update",
    CredentialsDelete => "cloudsync.credentials.delete",
    CredentialsVerify => "cloudsync.credentials.verify",
    SnapshotTaskQuery => "pool.snapshottask.query",
    SnapshotTaskCreate => "pool.snapshottask.create",
    SnapshotTaskUpdate => "pool.snapshottask.update",
    SnapshotTaskDelete => "pool.snapshottask.delete",
    SnapshotTaskRun => "pool.snapshottask.run",
    SnmpConfig => "snmp.config",
    SnmpUpdate => "snmp.update",
    ServiceQuery => "service.query",
    ServiceUpdate => "service.update",
    /// 24.10 / 25.04 way to start a service (not a job); private from 26.0 on.
    ServiceStart => "service.start",
    /// 25.10+ way to start a service (a job).
    ServiceControl => "service.control",
    PoolQuery => "pool.query",
    DatasetQuery => "pool.dataset.query",
    DatasetUpdate => "pool.dataset.update",
    /// Used by `install` only; not covered by `shared/truenas-api` schemas.
    DatasetCreate => "pool.dataset.create",
    DatasetSnapshotCount => "pool.dataset.snapshot_count",
    /// 24.10 / 25.04 snapshot listing (private in 25.10, gone in 26.0).
    ZfsSnapshotQuery => "zfs.snapshot.query",
    /// 25.10+ snapshot listing.
    PoolSnapshotQuery => "pool.snapshot.query",
    /// 25.10+ raw user properties.
    ZfsResourceQuery => "zfs.resource.query",
    SystemInfo => "system.info",
    SystemHostId => "system.host_id",
    SystemVersion => "system.version",
    SystemVersionShort => "system.version_short",
    InitScriptQuery => "initshutdownscript.query",
    InitScriptCreate => "initshutdownscript.create",
    InitScriptUpdate => "initshutdownscript.update",
    InitScriptDelete => "initshutdownscript.delete",
    AlertList => "alert.list",
}

impl Method {
    /// Whether the method is public in the API of this flavour (REFERENCE §6,
    /// NEWER.md). Calling a method on a flavour where this is false is a bug in the
    /// per-version adapter.
    pub fn available_on(self, flavor: ApiFlavor) -> bool {
        match self {
            Method::AuthLoginEx
            | Method::CoreSubscribe
            | Method::CoreUnsubscribe
            | Method::CoreSetOptions => flavor != ApiFlavor::V24_10,
            // `removed_in='v27'` (`MW/plugins/auth.py`, master).
            Method::AuthLoginWithApiKey => flavor < ApiFlavor::V27_0,
            // Private since 25.10; the `zfs.snapshot` service is gone in 26.0.
            Method::ZfsSnapshotQuery => flavor <= ApiFlavor::V25_04,
            // `@private` without a model in 26.0 (`MW/plugins/service.py`).
            Method::ServiceStart => flavor <= ApiFlavor::V25_10,
            Method::PoolSnapshotQuery | Method::ZfsResourceQuery | Method::ServiceControl => {
                flavor >= ApiFlavor::V25_10
            }
            _ => true,
        }
    }

    /// Whether calling the method changes state on the NAS (used by tests and
    /// `report-only` mode to assert "zero writes").
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Method::CloudsyncCreate
                | Method::CloudsyncUpdate
                | Method::CloudsyncDelete
                | Method::CloudsyncSync
                | Method::CloudsyncAbort
                | Method::CredentialsCreate
                | Method::CredentialsUpdate
                | Method::CredentialsDelete
                | Method::SnapshotTaskCreate
                | Method::SnapshotTaskUpdate
                | Method::SnapshotTaskDelete
                | Method::SnapshotTaskRun
                | Method::SnmpUpdate
                | Method::ServiceUpdate
                | Method::ServiceStart
                | Method::ServiceControl
                | Method::DatasetUpdate
                | Method::DatasetCreate
                | Method::InitScriptCreate
                | Method::InitScriptUpdate
                | Method::InitScriptDelete
                | Method::CoreJobAbort
        )
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.as_str()), Some(*m));
        }
        assert_eq!(Method::from_name("system.reboot"), None);
    }
}

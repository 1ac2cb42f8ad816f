//! What `identity` reports: [`IdentityReport`] and its parts. Serialisable for `--json`,
//! the state file (`identity.json`) and the report to central.
//!
//! Owns: the report types, each [`ProblemKind`]'s message, whether it blocks using the
//! GUID, and its [`Fault`] (one exhaustive match each).
//! Does not: decide anything (`rules`) or do I/O.
//! Invariants: `guid_source` serialises as exactly `zfs`, `generated` or `central`
//! (central-protocol.md §4); values read from a pool appear only as short sanitised
//! excerpts when they are not a valid GUID.
//! Limitations: none known.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fault::Fault;
use crate::zfs::{BackendChoice, PropSource};

/// Where the GUID in effect came from (central-protocol.md §4 `device.guid_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuidSource {
    /// Found on the root pool and kept.
    Zfs,
    /// Generated on this box in this run and written to the root pool.
    Generated,
    /// Supplied by central (the document's `device.guid`); written when it differed.
    Central,
}

impl GuidSource {
    /// The protocol string.
    pub fn as_str(self) -> &'static str {
        match self {
            GuidSource::Zfs => "zfs",
            GuidSource::Generated => "generated",
            GuidSource::Central => "central",
        }
    }
}

/// Why this pool is the root pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootPoolSource {
    /// The document's `device.root_pool`.
    Document,
    /// The local configuration (`root_pool`, or `--pool`).
    Config,
    /// The one data pool that already carries the GUID property.
    Carrier,
    /// The only data pool.
    OnlyDataPool,
}

impl std::fmt::Display for RootPoolSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RootPoolSource::Document => "set by central's document",
            RootPoolSource::Config => "set in the local configuration",
            RootPoolSource::Carrier => "the one pool carrying the GUID",
            RootPoolSource::OnlyDataPool => "the only data pool",
        })
    }
}

/// Read-only look or the daemon's start-up action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `identity`: reads only; pending actions show up as problems.
    Observe,
    /// `identity ensure`: applies the rules.
    Ensure,
}

/// What the GUID property on one data pool's root dataset looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuidState {
    Absent,
    Valid,
    /// Set, but not a dashed UUID.
    Corrupt,
}

/// The GUID property as found on one data pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolGuid {
    pub pool: String,
    pub state: GuidState,
    /// The value (a sanitised excerpt when corrupt); `None` when absent.
    pub value: Option<String>,
    pub source: PropSource,
}

/// State of the binding between the GUID and this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingState {
    /// The root pool is bound to this host.
    Bound,
    /// No binding recorded yet.
    Unbound,
    /// Bound to another host: the pool moved or the box was cloned.
    OtherHost,
    /// This host has no host id: clone/move detection is off.
    HostUnknown,
    /// Not looked at (no root pool, or an error came first).
    NotChecked,
}

/// The host binding of the root pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBinding {
    /// The user property holding it (`<namespace>:device-host`).
    pub property: String,
    /// This host's id (`system.host_id`: SHA-256 of `/etc/hostid`).
    pub this_host: Option<String>,
    /// The host recorded on the pool (a sanitised excerpt if malformed).
    pub bound_host: Option<String>,
    pub state: BindingState,
}

/// Who confirmed that a pool may be rebound to this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    /// The document carried `device.guid`.
    Central,
    /// A technician ran `identity ensure --rebind`.
    Technician,
}

/// A change `ensure` made (or, in [`Mode::Observe`], none: pending ones are problems).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// The root pool had no GUID; one was written.
    WroteGuid {
        pool: String,
        guid: String,
        source: GuidSource,
    },
    /// Central's GUID differed from the pool's; central wins.
    CorrectedGuid {
        pool: String,
        old: String,
        new: String,
    },
    /// The GUID was bound to this host for the first time.
    BoundHost { pool: String, host: String },
    /// A pool bound to another host was rebound to this one after confirmation.
    Rebound {
        pool: String,
        old_host: String,
        new_host: String,
        confirmed_by: Confirmation,
    },
}

/// A GUID correction (central wins): the value before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    /// The pool's previous value (a sanitised excerpt when it was not a UUID).
    pub old: String,
    pub new: String,
}

/// Something a human (or a later `ensure`) has to deal with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProblemKind {
    /// No root pool configured and several data pools, none carrying the GUID.
    SeveralPoolsSetRootPool { pools: Vec<String> },
    /// No root pool configured and several data pools carry the GUID.
    SeveralPoolsCarryGuid {
        property: String,
        pools: Vec<String>,
    },
    /// No data pool is imported.
    NoDataPool,
    /// The configured root pool is the boot pool.
    RootPoolIsBootPool { pool: String },
    /// The configured root pool is not imported.
    RootPoolNotImported { pool: String, imported: Vec<String> },
    /// The root pool has no GUID but other pools do: writing one would put it on two.
    GuidOnOtherPool {
        root_pool: String,
        carriers: Vec<String>,
        property: String,
    },
    /// The root pool has the GUID, and other pools carry the property too.
    GuidAlsoOnOtherPools {
        root_pool: String,
        others: Vec<String>,
        property: String,
    },
    /// The root pool's value is not a UUID.
    CorruptGuid {
        pool: String,
        property: String,
        value: String,
    },
    /// The root pool's GUID is a UUID but not in lower case.
    GuidNotCanonical { pool: String, value: String },
    /// The root pool is bound to another host.
    PoolMovedOrCloned {
        pool: String,
        bound_host: String,
        this_host: String,
    },
    /// This host has no host id.
    HostUnknown,
    /// (observe) No GUID yet; `ensure` writes one.
    GuidAbsent { pool: String },
    /// (observe) Central's GUID differs from the pool's; `ensure` rewrites it.
    CentralGuidDiffers {
        pool: String,
        zfs: String,
        central: String,
    },
    /// (observe) Not bound to this host yet; `ensure` records it.
    NotBound { pool: String },
    /// What was read back after a write is not what was written.
    ReadBackMismatch {
        pool: String,
        property: String,
        wrote: String,
        read: Option<String>,
    },
}

impl ProblemKind {
    /// True when the GUID must not be used while this problem stands.
    pub fn blocking(&self) -> bool {
        match self {
            ProblemKind::SeveralPoolsSetRootPool { .. }
            | ProblemKind::SeveralPoolsCarryGuid { .. }
            | ProblemKind::NoDataPool
            | ProblemKind::RootPoolIsBootPool { .. }
            | ProblemKind::RootPoolNotImported { .. }
            | ProblemKind::GuidOnOtherPool { .. }
            | ProblemKind::CorruptGuid { .. }
            | ProblemKind::PoolMovedOrCloned { .. }
            | ProblemKind::GuidAbsent { .. }
            | ProblemKind::CentralGuidDiffers { .. }
            | ProblemKind::ReadBackMismatch { .. } => true,
            ProblemKind::GuidAlsoOnOtherPools { .. }
            | ProblemKind::GuidNotCanonical { .. }
            | ProblemKind::HostUnknown
            | ProblemKind::NotBound { .. } => false,
        }
    }

    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ProblemKind::SeveralPoolsSetRootPool { .. }
            | ProblemKind::SeveralPoolsCarryGuid { .. }
            | ProblemKind::RootPoolIsBootPool { .. }
            | ProblemKind::GuidOnOtherPool { .. }
            | ProblemKind::GuidAlsoOnOtherPools { .. }
            | ProblemKind::CorruptGuid { .. }
            | ProblemKind::GuidNotCanonical { .. }
            | ProblemKind::PoolMovedOrCloned { .. } => Fault::Operator,
            ProblemKind::NoDataPool
            | ProblemKind::RootPoolNotImported { .. }
            | ProblemKind::HostUnknown
            | ProblemKind::ReadBackMismatch { .. } => Fault::Nas,
            // Pending actions: the next `ensure` resolves them without a human.
            ProblemKind::GuidAbsent { .. }
            | ProblemKind::CentralGuidDiffers { .. }
            | ProblemKind::NotBound { .. } => Fault::Transient,
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProblemKind::SeveralPoolsSetRootPool { pools } => write!(
                f,
                "several pools, set root_pool: {} are data pools and none carries the device GUID yet; refusing to guess which one is the root pool",
                pools.join(", ")
            ),
            ProblemKind::SeveralPoolsCarryGuid { property, pools } => write!(
                f,
                "several pools carry {property} ({}), set root_pool: refusing to guess which one is the device's",
                pools.join(", ")
            ),
            ProblemKind::NoDataPool => f.write_str(
                "no data pool is imported: there is nowhere to keep the device GUID",
            ),
            ProblemKind::RootPoolIsBootPool { pool } => write!(
                f,
                "root_pool `{pool}` is the boot pool; the device GUID never goes there"
            ),
            ProblemKind::RootPoolNotImported { pool, imported } => write!(
                f,
                "root_pool `{pool}` is not imported (imported data pools: {})",
                none_if_empty(imported)
            ),
            ProblemKind::GuidOnOtherPool {
                root_pool,
                carriers,
                property,
            } => write!(
                f,
                "root pool {root_pool} has no device GUID but {} carries {property}; writing one on {root_pool} would put the GUID on two pools. Set root_pool to the pool that carries it, or move it by hand (`zfs set` on {root_pool}, `zfs inherit {property}` on the other)",
                carriers.join(", ")
            ),
            ProblemKind::GuidAlsoOnOtherPools {
                root_pool,
                others,
                property,
            } => write!(
                f,
                "{property} is also set on {}; the GUID belongs on the root pool {root_pool} only (SOP phase 2): remove the copy with `zfs inherit {property} <pool>`",
                others.join(", ")
            ),
            ProblemKind::CorruptGuid {
                pool,
                property,
                value,
            } => write!(
                f,
                "{pool} carries {property} = `{value}`, which is not a UUID; left untouched until central supplies the device GUID"
            ),
            ProblemKind::GuidNotCanonical { pool, value } => write!(
                f,
                "the device GUID on {pool} (`{value}`) is not lower case; kept as it is (the backup folder uses it verbatim)"
            ),
            ProblemKind::PoolMovedOrCloned {
                pool,
                bound_host,
                this_host,
            } => write!(
                f,
                "pool moved or box cloned: the device GUID on {pool} is bound to host {}, this is host {}; not using it until confirmed (`truenas-agent identity ensure --rebind`, or a document carrying device.guid)",
                short(bound_host),
                short(this_host)
            ),
            ProblemKind::HostUnknown => f.write_str(
                "this host has no host id (/etc/hostid missing or empty): clone/move detection is off",
            ),
            ProblemKind::GuidAbsent { pool } => write!(
                f,
                "no device GUID on {pool} yet (`truenas-agent identity ensure` writes one)"
            ),
            ProblemKind::CentralGuidDiffers { pool, zfs, central } => write!(
                f,
                "central's device GUID {central} differs from {pool}'s {zfs}; `identity ensure` rewrites it (central wins)"
            ),
            ProblemKind::NotBound { pool } => write!(
                f,
                "the device GUID on {pool} is not bound to this host yet (`identity ensure` records it)"
            ),
            ProblemKind::ReadBackMismatch {
                pool,
                property,
                wrote,
                read,
            } => write!(
                f,
                "wrote {property} = {wrote} on {pool} but read back {}; another writer?",
                read.as_deref().unwrap_or("nothing")
            ),
        }
    }
}

fn none_if_empty(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// First 12 characters of a host hash, for humans.
fn short(host: &str) -> &str {
    host.get(..12).unwrap_or(host)
}

/// A problem with its classification and message, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(flatten)]
    pub kind: ProblemKind,
    pub blocking: bool,
    pub fault: Fault,
    pub message: String,
}

impl From<ProblemKind> for Problem {
    fn from(kind: ProblemKind) -> Self {
        Self {
            blocking: kind.blocking(),
            fault: kind.fault(),
            message: kind.to_string(),
            kind,
        }
    }
}

/// An operation that failed, as reported (the error chain as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedError {
    pub fault: Fault,
    pub message: String,
}

/// The outcome of [`observe`](super::observe) or [`ensure`](super::ensure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityReport {
    pub mode: Mode,
    pub checked_at: DateTime<Utc>,
    /// The GUID user property (`com.dtctoday:device-guid`).
    pub property: String,
    /// Which backend read/wrote the properties, and why the fallback was used.
    pub backend: BackendChoice,
    /// The device GUID in effect (observe: as found; ensure: after the changes).
    pub guid: Option<String>,
    pub guid_source: Option<GuidSource>,
    /// True when the GUID may be used (no blocking problem, no error).
    pub usable: bool,
    pub root_pool: Option<String>,
    pub root_pool_source: Option<RootPoolSource>,
    /// The GUID property on every data pool that was read.
    pub pools: Vec<PoolGuid>,
    pub host_binding: HostBinding,
    /// Changes made by this run (`ensure` only).
    pub changes: Vec<Change>,
    /// Set when central's GUID replaced the pool's in this run.
    pub correction: Option<Correction>,
    pub problems: Vec<Problem>,
    /// Set when an operation failed; the report is then partial.
    pub error: Option<ReportedError>,
}

impl IdentityReport {
    /// The GUID, only when it may be used to name backup folders.
    pub fn usable_guid(&self) -> Option<uuid::Uuid> {
        self.usable
            .then(|| {
                self.guid
                    .as_deref()
                    .and_then(|g| uuid::Uuid::try_parse(g).ok())
            })
            .flatten()
    }

    /// The CLI's answer by the one rule ([`crate::exit::Exit`]): ok when the GUID is
    /// usable and nothing needs attention; attention for problems that block nothing;
    /// failing when the GUID is not usable or a problem blocks it; unknown when an
    /// operation failed (`zfs` missing, permission denied, timeout) — unless what was
    /// seen already fails.
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        let problems = if !self.usable || self.problems.iter().any(|p| p.blocking) {
            Exit::Failing
        } else if self.problems.is_empty() {
            Exit::Ok
        } else {
            Exit::Attention
        };
        match &self.error {
            // A partial report: what could not be done is unknown; a failure seen
            // before the error still shows.
            Some(_) if self.problems.iter().any(|p| p.blocking) => Exit::Failing,
            Some(_) => Exit::Unknown,
            None => problems,
        }
    }

    /// The process exit code of [`IdentityReport::exit`].
    pub fn exit_code(&self) -> u8 {
        self.exit().code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_sources_are_the_protocol_strings() {
        for (source, text) in [
            (GuidSource::Zfs, "zfs"),
            (GuidSource::Generated, "generated"),
            (GuidSource::Central, "central"),
        ] {
            assert_eq!(serde_json::to_value(source).unwrap(), text);
            assert_eq!(source.as_str(), text);
        }
    }

    #[test]
    fn problems_serialise_flat_and_round_trip() {
        let p = Problem::from(ProblemKind::PoolMovedOrCloned {
            pool: "pool0".into(),
            bound_host: "a".repeat(64),
            this_host: "b".repeat(64),
        });
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["kind"], "pool_moved_or_cloned");
        assert_eq!(json["pool"], "pool0");
        assert_eq!(json["blocking"], true);
        assert_eq!(json["fault"], "operator");
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .starts_with("pool moved or box cloned: the device GUID on pool0 is bound to host aaaaaaaaaaaa, this is host bbbbbbbbbbbb")
        );
        let back: Problem = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn the_several_pools_message_says_what_to_do() {
        let p = Problem::from(ProblemKind::SeveralPoolsSetRootPool {
            pools: vec!["pool0".into(), "pool1".into()],
        });
        assert!(
            p.message.starts_with("several pools, set root_pool"),
            "{}",
            p.message
        );
        assert!(p.blocking);
        assert_eq!(p.fault, Fault::Operator);
    }
}

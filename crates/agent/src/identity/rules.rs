//! PURE: the identity rules of SOP phase 2 and issue #7, as functions of what was read.
//!
//! Owns: [`choose_root`] (document / local config / the one carrier / the only data pool /
//! refuse) and [`decide`] (generate / keep / correct / refuse, host binding, clone/move).
//! Does not: do I/O, read the clock or generate randomness (the fresh UUID is passed in).
//! Invariants: never plans a write on any pool but the chosen root pool; never plans the
//! GUID onto a pool while another pool carries it; never overwrites a non-UUID value
//! unless central supplied the GUID; never rebinds a pool bound to another host without a
//! confirmation (central's GUID or `--rebind`); a refused decision plans no write at all.
//! Limitations: "valid" means a dashed UUID (8-4-4-4-12 hex) of any version and case; the
//! folder name uses the stored text verbatim.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::report::{
    BindingState, Change, Confirmation, Correction, GuidSource, GuidState, Mode, Problem,
    ProblemKind, RootPoolSource,
};
use crate::zfs::{HostId, PoolName, PropValue, PropertyReading, UserPropKey, excerpt};

/// Length of value excerpts in problems.
const VALUE_EXCERPT: usize = 80;

/// The GUID property on one pool's root dataset, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GuidValue {
    Absent,
    Valid { uuid: Uuid, stored: String },
    Corrupt(String),
}

impl GuidValue {
    /// Classifies a reading of a pool's root dataset. A value that is not set on the
    /// dataset itself (inherited, default) counts as absent: a pool root inherits nothing.
    pub(crate) fn from_reading(reading: &PropertyReading) -> Self {
        match (&reading.value, reading.source.is_set_here()) {
            (Some(value), true) => parse_dashed(value).map_or_else(
                || GuidValue::Corrupt(value.clone()),
                |uuid| GuidValue::Valid {
                    uuid,
                    stored: value.clone(),
                },
            ),
            _ => GuidValue::Absent,
        }
    }

    /// For the report.
    pub(crate) fn state(&self) -> GuidState {
        match self {
            GuidValue::Absent => GuidState::Absent,
            GuidValue::Valid { .. } => GuidState::Valid,
            GuidValue::Corrupt(_) => GuidState::Corrupt,
        }
    }

    /// For the report: the value, or an excerpt when corrupt.
    pub(crate) fn shown(&self) -> Option<String> {
        match self {
            GuidValue::Absent => None,
            GuidValue::Valid { stored, .. } => Some(stored.clone()),
            GuidValue::Corrupt(v) => Some(excerpt(v, VALUE_EXCERPT)),
        }
    }
}

/// A dashed UUID (36 characters), any version, any case.
pub(crate) fn parse_dashed(text: &str) -> Option<Uuid> {
    // uuid accepts 32 (simple), 36 (hyphenated), 38 (braced) and 45 (urn) characters;
    // the SOP's folder names use the dashed form only.
    (text.len() == 36)
        .then(|| Uuid::try_parse(text).ok())
        .flatten()
}

/// The host binding property on the root pool, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    Absent,
    Present(String),
}

impl Binding {
    pub(crate) fn from_reading(reading: &PropertyReading) -> Self {
        match (&reading.value, reading.source.is_set_here()) {
            (Some(value), true) => Binding::Present(value.clone()),
            _ => Binding::Absent,
        }
    }
}

/// What is known before deciding.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    /// Every imported pool (boot pool included when the backend lists it).
    pub pools: Vec<PoolName>,
    /// The GUID property on each data pool's root dataset.
    pub guids: BTreeMap<PoolName, GuidValue>,
    /// This host's id; `None` when it has none.
    pub host: Option<HostId>,
}

impl Facts {
    /// Data pools carrying the GUID property (valid or not).
    fn carriers(&self) -> Vec<&PoolName> {
        self.guids
            .iter()
            .filter(|(_, v)| **v != GuidValue::Absent)
            .map(|(p, _)| p)
            .collect()
    }

    fn data_pools(&self) -> Vec<&PoolName> {
        self.pools.iter().filter(|p| !p.is_boot_pool()).collect()
    }
}

/// Root-pool hints, strongest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootPoolHint {
    /// The document's `device.root_pool`.
    pub document: Option<PoolName>,
    /// The local configuration's `root_pool` (or `--pool`).
    pub local: Option<PoolName>,
}

/// Picks the root pool: the document's, else the local config's, else the one data pool
/// carrying the property, else the only data pool; otherwise refuses. Never the boot pool.
pub(crate) fn choose_root(
    hint: &RootPoolHint,
    facts: &Facts,
    property: &UserPropKey,
) -> Result<(PoolName, RootPoolSource), ProblemKind> {
    let named = hint
        .document
        .as_ref()
        .map(|p| (p, RootPoolSource::Document))
        .or_else(|| hint.local.as_ref().map(|p| (p, RootPoolSource::Config)));
    let names = |pools: &[&PoolName]| pools.iter().map(ToString::to_string).collect();
    if let Some((pool, source)) = named {
        return match (pool.is_boot_pool(), facts.pools.contains(pool)) {
            (true, _) => Err(ProblemKind::RootPoolIsBootPool {
                pool: pool.to_string(),
            }),
            (false, true) => Ok((pool.clone(), source)),
            (false, false) => Err(ProblemKind::RootPoolNotImported {
                pool: pool.to_string(),
                imported: names(&facts.data_pools()),
            }),
        };
    }
    let carriers = facts.carriers();
    let data = facts.data_pools();
    match (carriers.as_slice(), data.as_slice()) {
        ([one], _) => Ok(((*one).clone(), RootPoolSource::Carrier)),
        ([_, _, ..], _) => Err(ProblemKind::SeveralPoolsCarryGuid {
            property: property.to_string(),
            pools: names(&carriers),
        }),
        ([], [only]) => Ok(((*only).clone(), RootPoolSource::OnlyDataPool)),
        ([], []) => Err(ProblemKind::NoDataPool),
        ([], _) => Err(ProblemKind::SeveralPoolsSetRootPool {
            pools: names(&data),
        }),
    }
}

/// What the rules ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleInputs<'a> {
    pub mode: Mode,
    pub property: &'a UserPropKey,
    pub host_property: &'a UserPropKey,
    /// Central's GUID (the document's `device.guid`), authoritative when present.
    pub central_guid: Option<Uuid>,
    /// A technician confirmed a rebind to this host (`--rebind`).
    pub rebind: bool,
    /// A freshly generated v4 UUID, used only when one must be generated.
    pub fresh: Uuid,
}

/// The decision for the chosen root pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The GUID in effect once `writes` are applied (observe: as found).
    pub guid: Option<String>,
    pub guid_source: Option<GuidSource>,
    /// Properties to set on the root pool's root dataset, in one `zfs set`.
    pub writes: Vec<(UserPropKey, PropValue)>,
    /// What the writes mean, for the report.
    pub changes: Vec<Change>,
    pub correction: Option<Correction>,
    pub problems: Vec<Problem>,
    pub binding: BindingState,
}

/// What to do about the GUID itself.
enum GuidStep {
    Keep {
        stored: String,
        source: GuidSource,
    },
    Write {
        value: String,
        source: GuidSource,
        old: Option<String>,
    },
    Refuse(ProblemKind),
}

fn guid_step(inputs: &RuleInputs<'_>, root: &PoolName, facts: &Facts) -> GuidStep {
    let value = facts.guids.get(root).unwrap_or(&GuidValue::Absent);
    let others: Vec<String> = facts
        .carriers()
        .into_iter()
        .filter(|p| *p != root)
        .map(ToString::to_string)
        .collect();
    let central = inputs.central_guid.map(|u| u.hyphenated().to_string());
    match (value, central) {
        (GuidValue::Absent, _) if !others.is_empty() => {
            GuidStep::Refuse(ProblemKind::GuidOnOtherPool {
                root_pool: root.to_string(),
                carriers: others,
                property: inputs.property.to_string(),
            })
        }
        (GuidValue::Absent, None) => GuidStep::Write {
            value: inputs.fresh.hyphenated().to_string(),
            source: GuidSource::Generated,
            old: None,
        },
        (GuidValue::Absent, Some(c)) => GuidStep::Write {
            value: c,
            source: GuidSource::Central,
            old: None,
        },
        (GuidValue::Valid { stored, .. }, None) => GuidStep::Keep {
            stored: stored.clone(),
            source: GuidSource::Zfs,
        },
        (GuidValue::Valid { stored, .. }, Some(c)) if *stored == c => GuidStep::Keep {
            stored: stored.clone(),
            source: GuidSource::Central,
        },
        (GuidValue::Valid { stored, .. }, Some(c)) => GuidStep::Write {
            value: c,
            source: GuidSource::Central,
            old: Some(stored.clone()),
        },
        (GuidValue::Corrupt(v), None) => GuidStep::Refuse(ProblemKind::CorruptGuid {
            pool: root.to_string(),
            property: inputs.property.to_string(),
            value: excerpt(v, VALUE_EXCERPT),
        }),
        (GuidValue::Corrupt(v), Some(c)) => GuidStep::Write {
            value: c,
            source: GuidSource::Central,
            old: Some(excerpt(v, VALUE_EXCERPT)),
        },
    }
}

/// What to do about the host binding.
enum BindingStep {
    Ok,
    Unknown,
    Bind(HostId),
    Rebind {
        old: String,
        new: HostId,
        by: Confirmation,
    },
    Moved {
        bound: String,
        this: HostId,
    },
}

fn binding_step(inputs: &RuleInputs<'_>, facts: &Facts, binding: &Binding) -> BindingStep {
    let confirmation = match (inputs.central_guid, inputs.rebind) {
        (Some(_), _) => Some(Confirmation::Central),
        (None, true) => Some(Confirmation::Technician),
        (None, false) => None,
    };
    match (&facts.host, binding, confirmation) {
        (None, _, _) => BindingStep::Unknown,
        (Some(host), Binding::Absent, _) => BindingStep::Bind(host.clone()),
        (Some(host), Binding::Present(bound), _) if bound == host.as_str() => BindingStep::Ok,
        (Some(host), Binding::Present(bound), Some(by)) => BindingStep::Rebind {
            old: excerpt(bound, VALUE_EXCERPT),
            new: host.clone(),
            by,
        },
        (Some(host), Binding::Present(bound), None) => BindingStep::Moved {
            bound: excerpt(bound, VALUE_EXCERPT),
            this: host.clone(),
        },
    }
}

/// Applies the rules to the chosen root pool.
pub(crate) fn decide(
    inputs: &RuleInputs<'_>,
    root: &PoolName,
    facts: &Facts,
    binding: &Binding,
) -> Decision {
    let current = facts.guids.get(root).unwrap_or(&GuidValue::Absent);
    let mut d = Decision {
        guid: None,
        guid_source: None,
        writes: Vec::new(),
        changes: Vec::new(),
        correction: None,
        problems: also_on_other_pools(inputs, root, facts, current),
        binding: BindingState::NotChecked,
    };
    let guid = guid_step(inputs, root, facts);
    let host = binding_step(inputs, facts, binding);
    if matches!(guid, GuidStep::Refuse(_)) || matches!(host, BindingStep::Moved { .. }) {
        refuse(&mut d, root, current, guid, host);
        return d;
    }
    plan_host(inputs, &mut d, root, host);
    plan_guid(inputs, &mut d, root.as_str(), guid);
    if inputs.mode == Mode::Observe {
        into_observation(&mut d, current);
    } else if !d.writes.is_empty() && d.binding != BindingState::HostUnknown {
        d.binding = BindingState::Bound;
    }
    d
}

/// A warning when the root pool carries the property and other pools do too.
fn also_on_other_pools(
    inputs: &RuleInputs<'_>,
    root: &PoolName,
    facts: &Facts,
    current: &GuidValue,
) -> Vec<Problem> {
    let others: Vec<String> = facts
        .carriers()
        .into_iter()
        .filter(|p| *p != root)
        .map(ToString::to_string)
        .collect();
    if *current == GuidValue::Absent || others.is_empty() {
        return Vec::new();
    }
    vec![
        ProblemKind::GuidAlsoOnOtherPools {
            root_pool: root.to_string(),
            others,
            property: inputs.property.to_string(),
        }
        .into(),
    ]
}

/// Nothing is written: report every reason, and the GUID found (if valid) as unusable.
fn refuse(
    d: &mut Decision,
    root: &PoolName,
    current: &GuidValue,
    guid: GuidStep,
    host: BindingStep,
) {
    if let GuidStep::Refuse(problem) = guid {
        d.problems.push(problem.into());
    }
    d.binding = match host {
        BindingStep::Moved { bound, this } => {
            d.problems.push(
                ProblemKind::PoolMovedOrCloned {
                    pool: root.to_string(),
                    bound_host: bound,
                    this_host: this.to_string(),
                }
                .into(),
            );
            BindingState::OtherHost
        }
        BindingStep::Ok => BindingState::Bound,
        BindingStep::Unknown => {
            d.problems.push(ProblemKind::HostUnknown.into());
            BindingState::HostUnknown
        }
        BindingStep::Bind(_) => BindingState::Unbound,
        BindingStep::Rebind { .. } => BindingState::OtherHost,
    };
    d.guid = match current {
        GuidValue::Valid { stored, .. } => Some(stored.clone()),
        GuidValue::Absent | GuidValue::Corrupt(_) => None,
    };
    d.guid_source = d.guid.as_ref().map(|_| GuidSource::Zfs);
}

/// Plans the binding write (if any) for a decision that goes ahead.
fn plan_host(inputs: &RuleInputs<'_>, d: &mut Decision, root: &PoolName, host: BindingStep) {
    let pool = root.to_string();
    d.binding = match host {
        BindingStep::Ok => BindingState::Bound,
        BindingStep::Unknown => {
            d.problems.push(ProblemKind::HostUnknown.into());
            BindingState::HostUnknown
        }
        BindingStep::Bind(host) => {
            plan_binding(inputs, d, &host);
            d.changes.push(Change::BoundHost {
                pool,
                host: host.to_string(),
            });
            BindingState::Unbound
        }
        BindingStep::Rebind { old, new, by } => {
            plan_binding(inputs, d, &new);
            d.changes.push(Change::Rebound {
                pool,
                old_host: old,
                new_host: new.to_string(),
                confirmed_by: by,
            });
            BindingState::OtherHost
        }
        // invariant: decide() sends Moved to refuse(), never here.
        BindingStep::Moved { .. } => BindingState::OtherHost,
    };
}

fn plan_binding(inputs: &RuleInputs<'_>, d: &mut Decision, host: &HostId) {
    #[allow(
        clippy::expect_used,
        reason = "invariant: a HostId is 64 hex digits, which PropValue accepts"
    )]
    let value = PropValue::parse(host.as_str()).expect("invariant: a host id is a valid value");
    d.writes.push((inputs.host_property.clone(), value));
}

fn plan_guid(inputs: &RuleInputs<'_>, d: &mut Decision, pool: &str, step: GuidStep) {
    match step {
        GuidStep::Keep { stored, source } => {
            if parse_dashed(&stored).is_some_and(|u| u.hyphenated().to_string() != stored) {
                d.problems.push(
                    ProblemKind::GuidNotCanonical {
                        pool: pool.to_owned(),
                        value: stored.clone(),
                    }
                    .into(),
                );
            }
            d.guid = Some(stored);
            d.guid_source = Some(source);
        }
        GuidStep::Write { value, source, old } => {
            #[allow(
                clippy::expect_used,
                reason = "invariant: a hyphenated UUID is a valid property value"
            )]
            let prop = PropValue::parse(&value).expect("invariant: a UUID is a valid value");
            // The GUID goes first so `zfs set` lists it first; ZFS applies both at once.
            d.writes.insert(0, (inputs.property.clone(), prop));
            match old {
                None => d.changes.insert(
                    0,
                    Change::WroteGuid {
                        pool: pool.to_owned(),
                        guid: value.clone(),
                        source,
                    },
                ),
                Some(old) => {
                    d.changes.insert(
                        0,
                        Change::CorrectedGuid {
                            pool: pool.to_owned(),
                            old: old.clone(),
                            new: value.clone(),
                        },
                    );
                    d.correction = Some(Correction {
                        old,
                        new: value.clone(),
                    });
                }
            }
            d.guid = Some(value);
            d.guid_source = Some(source);
        }
        // decide() hands refusals to refuse(); kept total rather than panicking.
        GuidStep::Refuse(problem) => d.problems.push(problem.into()),
    }
}

/// Observe mode: nothing is written; each planned change becomes a pending problem and
/// the GUID reported is the one on the pool now.
fn into_observation(d: &mut Decision, current: &GuidValue) {
    let pending: Vec<ProblemKind> = d.changes.drain(..).map(pending_problem).collect();
    // A GUID about to be written is not the one in effect: what is there now is.
    let rewritten = pending.iter().any(|p| {
        matches!(
            p,
            ProblemKind::GuidAbsent { .. } | ProblemKind::CentralGuidDiffers { .. }
        )
    });
    d.problems.extend(pending.into_iter().map(Problem::from));
    d.writes.clear();
    d.correction = None;
    d.guid = match current {
        GuidValue::Valid { stored, .. } => Some(stored.clone()),
        GuidValue::Absent | GuidValue::Corrupt(_) => None,
    };
    d.guid_source = match (&d.guid, rewritten) {
        (None, _) => None,
        (Some(_), true) => Some(GuidSource::Zfs),
        (Some(_), false) => d.guid_source.or(Some(GuidSource::Zfs)),
    };
}

fn pending_problem(change: Change) -> ProblemKind {
    match change {
        Change::WroteGuid { pool, .. } => ProblemKind::GuidAbsent { pool },
        Change::CorrectedGuid { pool, old, new } => ProblemKind::CentralGuidDiffers {
            pool,
            zfs: old,
            central: new,
        },
        Change::BoundHost { pool, .. } => ProblemKind::NotBound { pool },
        Change::Rebound {
            pool,
            old_host,
            new_host,
            ..
        } => ProblemKind::PoolMovedOrCloned {
            pool,
            bound_host: old_host,
            this_host: new_host,
        },
    }
}

#[cfg(test)]
mod tests;

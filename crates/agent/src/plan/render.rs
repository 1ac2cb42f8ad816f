//! Shows a plan to a person (text) and to a machine (`--json`).
//!
//! Owns: the one-line summary of each step, conflict and blocker, and the JSON view.
//! Does not: decide anything.
//! Invariants: nothing rendered here can contain a secret: specs' secrets are never
//! read, field changes already say `(changed)`.
//! Limitations: the text form is for humans and may change; scripts use `--json`.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::guid::GuidSource;
use super::model::{AdoptReason, Blocker, Conflict, Plan, Step, TaskRef};
use super::ownership::ObjectKind;
use super::spec::{FieldChange, show_bwlimit, show_snapshot_schedule};

fn object(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Credential => "credential",
        ObjectKind::CloudSync => "cloud_sync",
        ObjectKind::SnapshotTask => "snapshot_task",
    }
}

/// A step as `--json` shows it.
#[derive(Debug, Serialize)]
pub struct StepView<'a> {
    pub action: &'static str,
    pub object: &'static str,
    pub id: Option<u64>,
    pub pool: Option<&'a str>,
    pub summary: String,
    pub changes: &'a [FieldChange],
}

impl Step {
    /// `(action, object, id, pool)` for the JSON view.
    fn parts(&self) -> (&'static str, &'static str, Option<u64>, Option<&str>) {
        match self {
            Step::CreateCredential(_) => ("create", "credential", None, None),
            Step::UpdateCredential { id, .. } => ("update", "credential", Some(*id), None),
            Step::Adopt { kind, id, pool, .. } => {
                ("adopt", object(*kind), Some(*id), pool.as_deref())
            }
            Step::CreateCloudSync(s) => ("create", "cloud_sync", None, Some(&s.pool)),
            Step::UpdateCloudSync { id, spec, .. } => {
                ("update", "cloud_sync", Some(*id), Some(&spec.pool))
            }
            Step::CreateSnapshotTask(s) => ("create", "snapshot_task", None, Some(&s.pool)),
            Step::UpdateSnapshotTask { id, spec, .. } => {
                ("update", "snapshot_task", Some(*id), Some(&spec.pool))
            }
            Step::Disable { kind, id, pool } => ("disable", object(*kind), Some(*id), Some(pool)),
            Step::Delete { kind, id, pool } => ("delete", object(*kind), Some(*id), Some(pool)),
            Step::UpdateSnmp { .. } => ("update", "snmp", None, None),
            Step::ReapplySnmp { .. } => ("reapply", "snmp", None, None),
            Step::EnableService { .. } => ("enable_at_boot", "service", None, None),
            Step::StartService { .. } => ("start", "service", None, None),
            Step::RunCloudSync { pool, task, .. } => {
                let id = match task {
                    TaskRef::Existing(id) => Some(*id),
                    TaskRef::Planned => None,
                };
                ("run", "cloud_sync", id, Some(pool))
            }
        }
    }

    /// The field changes of an update (empty for other steps).
    pub fn changes(&self) -> &[FieldChange] {
        match self {
            Step::UpdateCredential { changes, .. }
            | Step::UpdateCloudSync { changes, .. }
            | Step::UpdateSnapshotTask { changes, .. }
            | Step::UpdateSnmp { changes, .. } => changes,
            _ => &[],
        }
    }

    /// One line describing the step.
    pub fn summary(&self) -> String {
        match self {
            Step::CreateCredential(s) => {
                format!("create B2 credential \"{}\" (key ID {})", s.name, s.key_id)
            }
            Step::UpdateCredential { id, spec, .. } => {
                format!("update credential #{id} \"{}\"", spec.name)
            }
            Step::Adopt {
                kind,
                id,
                pool,
                reason,
            } => {
                let why = match reason {
                    AdoptReason::Document => "listed in the document's adopt",
                    AdoptReason::InterruptedCreate => "created by an interrupted apply",
                };
                let pool = pool
                    .as_ref()
                    .map(|p| format!(" for {p}"))
                    .unwrap_or_default();
                format!("adopt {} #{id}{pool} ({why})", kind.label())
            }
            Step::CreateCloudSync(s) => format!(
                "create cloud sync task \"{}\": {} → {}:{}, schedule {}, bandwidth {}",
                s.description,
                s.path,
                s.bucket,
                s.folder,
                s.schedule,
                show_bwlimit(&s.bwlimit)
            ),
            Step::UpdateCloudSync { id, spec, .. } => format!(
                "update cloud sync task #{id} \"{}\" ({})",
                spec.description, spec.pool
            ),
            Step::CreateSnapshotTask(s) => format!(
                "create snapshot task for {}: {}{}, keep {} {}, naming {}",
                s.dataset,
                if s.recursive { "recursive, " } else { "" },
                show_snapshot_schedule(&s.schedule, Some(s.begin), Some(s.end)),
                s.lifetime_value,
                s.lifetime_unit.as_str(),
                s.naming_schema
            ),
            Step::UpdateSnapshotTask { id, spec, .. } => {
                format!("update snapshot task #{id} ({})", spec.dataset)
            }
            Step::Disable { kind, id, pool } => format!(
                "disable {} #{id}: pool {pool} is no longer managed",
                kind.label()
            ),
            Step::Delete { kind, id, pool } => format!(
                "delete {} #{id}: pool {pool} is no longer managed (removed_pools: delete)",
                kind.label()
            ),
            Step::UpdateSnmp { .. } => "update SNMP: v3 only (SHA/AES), community empty".to_owned(),
            Step::ReapplySnmp { .. } => "re-apply SNMP and re-create its v3 user (the last SNMP \
                apply failed): v3 only (SHA/AES), community empty"
                .to_owned(),
            Step::EnableService { service } => format!("start service {service} at boot"),
            Step::StartService { service } => format!("start service {service} now"),
            Step::RunCloudSync {
                action_id, pool, ..
            } => {
                format!("run the cloud sync task of {pool} now (action {action_id})")
            }
        }
    }

    /// The `--json` view.
    pub fn view(&self) -> StepView<'_> {
        let (action, object, id, pool) = self.parts();
        StepView {
            action,
            object,
            id,
            pool,
            summary: self.summary(),
            changes: self.changes(),
        }
    }

    fn marker(&self) -> char {
        match self {
            Step::CreateCredential(_)
            | Step::CreateCloudSync(_)
            | Step::CreateSnapshotTask(_)
            | Step::EnableService { .. } => '+',
            Step::UpdateCredential { .. }
            | Step::UpdateCloudSync { .. }
            | Step::UpdateSnapshotTask { .. }
            | Step::UpdateSnmp { .. }
            | Step::ReapplySnmp { .. } => '~',
            Step::Adopt { .. } => '=',
            Step::Disable { .. } | Step::Delete { .. } => '-',
            Step::StartService { .. } | Step::RunCloudSync { .. } => '>',
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pool = self
            .pool
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        write!(
            f,
            "{} #{} \"{}\"{pool} is not the agent's: {}",
            self.kind.label(),
            self.id,
            self.name,
            self.reason
        )
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Rollback {
                revision,
                last_applied,
            } => write!(
                f,
                "revision {revision} is older than the last applied revision {last_applied}: refused as a rollback"
            ),
            Blocker::PoolNotImported { pool, suggestion } => {
                write!(
                    f,
                    "pool {pool} is in the document but not imported on this NAS"
                )?;
                if let Some(near) = suggestion {
                    write!(f, " (pool names are case-sensitive: did you mean {near}?)")?;
                }
                write!(
                    f,
                    "; nothing is done for it, and tasks of pools no longer listed are left \
                     alone until every listed pool is imported"
                )
            }
            Blocker::RootPoolNotImported { pool } => write!(
                f,
                "root pool {pool} (where the device GUID lives, SOP 2.2) is not imported on this NAS: import it, or name the pool that carries the GUID in device.root_pool / the agent config's root_pool"
            ),
            Blocker::RekeyRefused { pool, id } => write!(
                f,
                "cloud sync task #{id} ({pool}) has already uploaded data: changing its encryption password/salt would make that data unreadable; refused (set encryption.allow_rekey to force it)"
            ),
            Blocker::RekeyUnverifiable { pool, id } => write!(
                f,
                "cloud sync task #{id} ({pool}) has already uploaded data and the middleware hides its encryption secrets, so the agent cannot tell whether they match; left unchanged (set encryption.allow_rekey to overwrite them)"
            ),
            Blocker::AdoptedMissing { object, id } => {
                write!(f, "adopt: there is no {} #{id}", object.label())
            }
            Blocker::AdoptedNotManaged { object, id } => write!(
                f,
                "adopt: {} #{id} is not for the root of a managed pool",
                object.label()
            ),
            Blocker::AdoptIgnored {
                object,
                id,
                owned_id,
            } => write!(
                f,
                "adopt: {} #{id} ignored, the agent already manages #{owned_id} for that purpose",
                object.label()
            ),
            Blocker::WaitingForCredential { pool } => write!(
                f,
                "cloud sync for {pool} waits until the B2 credential can be managed"
            ),
            Blocker::ActionWaiting {
                action_id,
                pool,
                reason,
            } => {
                write!(
                    f,
                    "action {action_id} (run cloud sync for {pool}) waits: {reason}"
                )
            }
        }
    }
}

impl Blocker {
    /// A short machine name (`rekey_refused`, …) for the JSON view.
    pub fn code(&self) -> &'static str {
        match self {
            Blocker::Rollback { .. } => "rollback",
            Blocker::PoolNotImported { .. } => "pool_not_imported",
            Blocker::RootPoolNotImported { .. } => "root_pool_not_imported",
            Blocker::RekeyRefused { .. } => "rekey_refused",
            Blocker::RekeyUnverifiable { .. } => "rekey_unverifiable",
            Blocker::AdoptedMissing { .. } => "adopted_missing",
            Blocker::AdoptedNotManaged { .. } => "adopted_not_managed",
            Blocker::AdoptIgnored { .. } => "adopt_ignored",
            Blocker::WaitingForCredential { .. } => "waiting_for_credential",
            Blocker::ActionWaiting { .. } => "action_waiting",
        }
    }
}

fn guid_source(source: &GuidSource) -> String {
    match source {
        GuidSource::Document => "the document".to_owned(),
        GuidSource::RootPool(pool) => format!("the ZFS property on {pool}"),
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Plan for revision {} ({}): bucket {}, device {} (from {})",
            self.revision,
            self.mode.as_str(),
            self.bucket,
            self.device_guid,
            guid_source(&self.guid_source)
        )?;
        writeln!(
            f,
            "Pools: {}",
            if self.pools.is_empty() {
                "(none)".to_owned()
            } else {
                self.pools.join(", ")
            }
        )?;
        if !self.steps.is_empty() {
            writeln!(f)?;
        }
        for step in &self.steps {
            writeln!(f, "  {} {}", step.marker(), step.summary())?;
            for c in step.changes() {
                writeln!(f, "        {}: {} → {}", c.field, c.from, c.to)?;
            }
        }
        if !self.conflicts.is_empty() {
            writeln!(f, "\nConflicts (never edited by the agent):")?;
            for c in &self.conflicts {
                let tag = if c.blocking { "blocks" } else { "note" };
                writeln!(f, "  ! [{tag}] {c}")?;
            }
        }
        if !self.blockers.is_empty() {
            writeln!(f, "\nNeeds a human:")?;
            for b in &self.blockers {
                writeln!(f, "  ! {b}")?;
            }
        }
        writeln!(f)?;
        if self.is_converged() {
            write!(f, "No changes: the NAS matches the document.")
        } else if self.steps.is_empty() {
            write!(
                f,
                "No changes to make, but the NAS does not match the document (see above)."
            )
        } else {
            write!(f, "{} change(s) to make.", self.steps.len())
        }
    }
}

impl Plan {
    /// The `--json` form of the plan.
    pub fn to_json(&self) -> Value {
        let steps: Vec<StepView<'_>> = self.steps.iter().map(Step::view).collect();
        let blockers: Vec<Value> = self
            .blockers
            .iter()
            .map(|b| serde_json::json!({"kind": b.code(), "message": b.to_string()}))
            .collect();
        serde_json::json!({
            "revision": self.revision,
            "mode": self.mode,
            "bucket": self.bucket,
            "device_guid": self.device_guid.to_string(),
            "guid_source": self.guid_source,
            "pools": self.pools,
            "converged": self.is_converged(),
            "steps": steps,
            "conflicts": self.conflicts,
            "blockers": blockers,
        })
    }
}

//! Fault injection: what tests (through the handle) and the CLI (through a scenario)
//! can make the simulator do wrong on purpose.
//!
//! Owns: [`FaultPlan`] (serialisable, part of a scenario) and the decision for one
//! incoming call, [`FaultPlan::on_call`], which consumes one-shot faults.
//! Does not: perform the drop, sleep or failure itself — the shell (`server.rs`,
//! `inprocess.rs`) does what the returned [`CallFault`] says; sync failures are consumed
//! by `core.rs` when a `cloudsync.sync` job is created, snmpd start failures by
//! `methods/services.rs` when snmpd is started.
//! Invariants: a fault with `times: Some(n)` fires at most `n` times; `None` means every
//! time; decisions depend only on the plan and the method name (deterministic).
//! Limitations: drops, delays and failures match by exact method name (or every method);
//! there is no probabilistic fault.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// rclone's output when a sync deletes a file under B2 object lock (compliance mode):
/// a typical text for [`FaultPlan::sync_failures`].
pub const RCLONE_RETENTION_LOCKED: &str = "ERROR : 2024/docs/report.pdf: Couldn't delete: \
    file is protected by object lock: access_denied (403 access_denied)\nERROR : B2 bucket truenas-loc path \
    9babab19-acc0-4587-aa05-ccd8103a1148/pool0: not deleting files as there were IO errors\n\
    Failed to sync: not deleting files as there were IO errors";

/// rclone's output when the B2 application key is wrong or revoked.
pub const RCLONE_AUTH_FAILED: &str = "Failed to create file system for \"remote:truenas-loc\": \
    failed to authorize account: failed to authenticate: Unauthorized: unauthorized (401 bad_auth_token)";

/// Every fault currently armed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultPlan {
    /// Close the connection when it has answered this many more calls: the next call
    /// is received (and recorded) but neither executed nor answered. One-shot.
    pub drop_after_calls: Option<u64>,
    /// Close the connection at a named method, before or after executing it.
    pub drop_at: Vec<DropAt>,
    /// Delay replies.
    pub delays: Vec<Delay>,
    /// Fail calls with a given error without executing them.
    pub failures: Vec<Failure>,
    /// Calls to these methods are received and then wait, unexecuted, until the test
    /// releases them (`Simulator::release_holds`): a deterministic "call in flight".
    pub holds: Vec<String>,
    /// Texts the next `cloudsync.sync` jobs fail with, in order (one per job), e.g.
    /// rclone's retention-locked delete error or an authorisation error.
    pub sync_failures: VecDeque<String>,
    /// Texts the next `pool.snapshottask.run` calls fail with (task state `ERROR` and a
    /// `SnapshotFailed` alert), in order.
    pub snapshot_failures: VecDeque<String>,
    /// The next this many starts of snmpd fail (snmpd stays stopped). A start inside
    /// `snmp.update`'s re-creation of the v3 user makes that call fail *after* the new
    /// config is stored (REFERENCE §8 row 5); `service.start` / `service.control` answer
    /// `false` or fail, as their `silent` option says.
    pub snmpd_start_failures: u32,
    /// TCP connections count as an insecure transport (as `ws://<LAN IP>` would): on
    /// 25.04+ a correct API key used over them is revoked and the login answers EXPIRED.
    pub insecure_tcp: bool,
    /// Login attempts (`auth.*` before login, over TCP) allowed before the rate limiter
    /// answers `EBUSY` "Rate Limit Exceeded" (the box allows 20 per minute and IP;
    /// `None` = no limit, as unix sockets are never limited).
    pub login_rate_limit: Option<u32>,
    /// Credential attributes (e.g. `key`) the box does not keep when it stores a
    /// `cloudsync.credentials.create/update`: the stored row differs from what was sent,
    /// while the call's answer — built from the data sent, not read back — still shows
    /// them. Only `cloudsync.credentials.query` (and every run) sees the stored row.
    pub credential_store_drops: Vec<String>,
}

/// Drop the connection at a method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropAt {
    pub method: String,
    pub when: DropWhen,
    /// How many times (default once).
    #[serde(default = "once")]
    pub times: Option<u32>,
}

/// Whether a dropped call was executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropWhen {
    /// Not executed: nothing changed on the box.
    Before,
    /// Executed (the change is applied), then the connection closes without a reply.
    After,
}

/// Delay the reply to a method (or to every method).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    /// `None` = every method.
    #[serde(default)]
    pub method: Option<String>,
    pub millis: u64,
    /// `None` = every time.
    #[serde(default)]
    pub times: Option<u32>,
}

/// Fail a method with an error (without executing it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub method: String,
    /// errno of the error (default 14 `EFAULT`, a plain `CallError`).
    #[serde(default = "efault")]
    pub errno: i64,
    pub reason: String,
    /// With a path, the error is a validation error on that attribute instead.
    #[serde(default)]
    pub path: Option<String>,
    /// `None` = every time.
    #[serde(default)]
    pub times: Option<u32>,
}

/// What to do with one incoming call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFault {
    /// Close the connection instead of answering (`Some(when)`).
    pub drop: Option<DropWhen>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Answer with this error instead of executing.
    pub fail: Option<Failure>,
    /// Wait for `Simulator::release_holds` before executing.
    pub hold: bool,
}

impl FaultPlan {
    /// Decides the faults for one call to `method` and consumes one-shot faults.
    pub fn on_call(&mut self, method: &str) -> CallFault {
        let mut fault = CallFault::default();
        match self.drop_after_calls {
            Some(0) => {
                self.drop_after_calls = None;
                fault.drop = Some(DropWhen::Before);
                return fault;
            }
            Some(n) => self.drop_after_calls = Some(n - 1),
            None => {}
        }
        if let Some(i) = self.drop_at.iter().position(|d| d.method == method) {
            fault.drop = Some(self.drop_at[i].when);
            if consume(&mut self.drop_at[i].times) {
                self.drop_at.remove(i);
            }
        }
        if let Some(i) = self
            .delays
            .iter()
            .position(|d| d.method.as_deref().is_none_or(|m| m == method))
        {
            fault.delay = Duration::from_millis(self.delays[i].millis);
            if consume(&mut self.delays[i].times) {
                self.delays.remove(i);
            }
        }
        fault.hold = self.holds.iter().any(|m| m == method);
        if let Some(i) = self.failures.iter().position(|f| f.method == method) {
            fault.fail = Some(self.failures[i].clone());
            if consume(&mut self.failures[i].times) {
                self.failures.remove(i);
            }
        }
        fault
    }
}

/// Counts one use; true when the fault is used up.
fn consume(times: &mut Option<u32>) -> bool {
    match times {
        None => false,
        Some(n) => {
            *n = n.saturating_sub(1);
            *n == 0
        }
    }
}

#[expect(
    clippy::unnecessary_wraps,
    reason = "serde default for an Option field"
)]
fn once() -> Option<u32> {
    Some(1)
}
fn efault() -> i64 {
    14
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_after_calls_is_one_shot() {
        let mut plan = FaultPlan {
            drop_after_calls: Some(2),
            ..FaultPlan::default()
        };
        assert_eq!(plan.on_call("a").drop, None);
        assert_eq!(plan.on_call("a").drop, None);
        assert_eq!(plan.on_call("a").drop, Some(DropWhen::Before));
        assert_eq!(plan.on_call("a").drop, None);
    }

    #[test]
    fn named_faults_count_down() {
        let mut plan = FaultPlan {
            drop_at: vec![DropAt {
                method: "cloudsync.create".into(),
                when: DropWhen::After,
                times: Some(1),
            }],
            delays: vec![Delay {
                method: None,
                millis: 5,
                times: Some(2),
            }],
            failures: vec![Failure {
                method: "snmp.update".into(),
                errno: 14,
                reason: "boom".into(),
                path: None,
                times: None,
            }],
            ..FaultPlan::default()
        };
        assert_eq!(plan.on_call("core.ping").delay, Duration::from_millis(5));
        let f = plan.on_call("cloudsync.create");
        assert_eq!(f.drop, Some(DropWhen::After));
        assert_eq!(f.delay, Duration::from_millis(5));
        assert_eq!(plan.on_call("cloudsync.create"), CallFault::default());
        assert!(plan.on_call("snmp.update").fail.is_some());
        assert!(plan.on_call("snmp.update").fail.is_some());
    }
}

//! The daemon's view of the NAS, kept current from middleware events between full reads
//! — kube's reflector store: a list (the full read, "resync"), then a watch.
//!
//! Owns: [`NasView`] — the observation the planner needs ([`Observed`]), the health
//! reads the evaluation needs besides it (Cloud Sync runs, zettarepl states, snapshot
//! listings, alerts) and the hostname; [`NasView::apply`], which applies one event
//! (ADDED / CHANGED / REMOVED) to it and says what it touched ([`Touched`]); the targeted
//! re-read of what an event named without its fields ([`NasView::refresh`]); the slow poll
//! of what sends no event at all ([`NasView::poll`]); and [`EVENTS`], the event names the
//! daemon subscribes to. Which collection sends what on which version is in
//! docs/middleware.md ("Events per version").
//! Does not: decide when to read, plan or report (the loop and the engine do), or judge
//! anything (`plan`, `health`).
//! Invariants: [`NasView::apply`] is pure: an event whose fields cannot be decoded marks
//! its item stale instead of guessing, and a stale item is read again before the view is
//! planned on or evaluated ([`NasView::is_stale`]); snapshot listings are read at most
//! once per [`LISTING_MAX_AGE`] unless their pool or prefix changes; memory is bounded by
//! the NAS's own object counts (alerts are keyed by their id).
//! Limitations: a change made behind the middleware's back (`zfs set` in a shell, a
//! database restore, an upgrade) sends no event: only the next full read sees it. The
//! SNMP configuration and a service's start-at-boot flag send none either: they are
//! polled ([`NasView::poll`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::engine::Touched;
use crate::health::assess::HealthReads;
use crate::health::observe as health_reads;
use crate::health::{Alert, SnapshotListing, SnapshotTaskState, TaskRuns};
use crate::middleware::{Call, Event, EventKind, Method, Middleware, calls, jobs};
use crate::observe::{self, ObserveError, Observed, SecretView, Snmp};

/// The events the daemon follows: jobs, and every collection whose changes the document
/// governs or health reports.
pub(crate) const EVENTS: &[&str] = &[
    "core.get_jobs",
    "cloudsync.query",
    "cloudsync.credentials.query",
    "pool.snapshottask.query",
    "service.query",
    "pool.query",
    "pool.dataset.query",
    "alert.list",
];

/// How old a pool's snapshot listing may be when health is evaluated: read at most
/// this often (the names' times, not the listing's age, drive the hourly verdict).
pub(crate) const LISTING_MAX_AGE: Duration = Duration::from_secs(3600);

/// One pool's snapshot listing and when it was read.
#[derive(Debug, Clone)]
struct Listing {
    at: Instant,
    listing: SnapshotListing,
}

/// What must be read again before the view is used.
#[derive(Debug, Clone, Default)]
struct Stale {
    /// Pools came or went or changed: `pool.query` and their root datasets.
    pools: bool,
    credentials: BTreeSet<u64>,
    cloud_sync: BTreeSet<u64>,
    snapshot_tasks: BTreeSet<u64>,
    /// `snmp.config` and the SNMP service row.
    snmp: bool,
}

impl Stale {
    fn any(&self) -> bool {
        self.pools
            || self.snmp
            || !self.credentials.is_empty()
            || !self.cloud_sync.is_empty()
            || !self.snapshot_tasks.is_empty()
    }
}

/// The NAS as the daemon knows it.
#[derive(Debug, Clone)]
pub(crate) struct NasView {
    pub observed: Observed,
    runs: BTreeMap<u64, TaskRuns>,
    snapshot_states: BTreeMap<u64, SnapshotTaskState>,
    listings: BTreeMap<String, Listing>,
    /// Relevant alerts by id; `None` when `alert.list` could not be read.
    alerts: Option<BTreeMap<String, Alert>>,
    /// Health reads that failed in the last full read.
    read_errors: Vec<String>,
    hostname: Option<String>,
    stale: Stale,
}

impl NasView {
    /// The full read ("resync"): the planner's seven reads, every task's runs, the
    /// zettarepl states, the alerts and the hostname. Snapshot listings are read when
    /// health asks for them ([`NasView::ensure_listings`]), for the pools it evaluates.
    pub(crate) async fn read(
        mw: &impl Middleware,
        timeout: Duration,
    ) -> Result<Self, ObserveError> {
        let observed = observe::observe(mw).await?;
        let mut read_errors = Vec::new();
        let runs = health_reads::read_runs(mw, timeout, &mut read_errors).await;
        let snapshot_states = match health_reads::read_snapshot_states(mw, timeout).await {
            Ok(states) => states,
            Err(e) => {
                read_errors.push(e);
                BTreeMap::new()
            }
        };
        let alerts = match bounded(mw, calls::alert_list(), timeout).await {
            Ok(value) => Some(alerts_by_id(&value)),
            Err(e) => {
                read_errors.push(format!("alerts: {e}"));
                None
            }
        };
        let hostname = bounded(mw, calls::system_info(), timeout)
            .await
            .ok()
            .and_then(|info| {
                info.get("hostname")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        Ok(Self {
            observed,
            runs,
            snapshot_states,
            listings: BTreeMap::new(),
            alerts,
            read_errors,
            hostname,
            stale: Stale::default(),
        })
    }

    /// The hostname `system.info` gave at the last full read.
    pub(crate) fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// True when an event named something the view does not hold the current state of.
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.any()
    }

    /// Applies one event. Pure; see the module doc for what each collection carries.
    pub(crate) fn apply(&mut self, event: &Event) -> Touched {
        let fields = event.fields.as_ref();
        let id = event.id.as_ref();
        match event.collection.as_str() {
            "core.get_jobs" => self.apply_job(event),
            "cloudsync.query" => self.apply_cloud_sync(event.kind, id, fields),
            "cloudsync.credentials.query" => self.apply_credential(event.kind, id, fields),
            "pool.snapshottask.query" => self.apply_snapshot_task(event.kind, id, fields),
            "service.query" => self.apply_service(fields),
            "pool.query" => {
                // Imported, exported, or its state changed: read the pools again (the
                // event's fields carry no user properties).
                self.stale.pools = true;
                Touched::ALL
            }
            "pool.dataset.query" => self.apply_dataset(event.kind, id, fields),
            "alert.list" => self.apply_alert(event.kind, id, fields),
            _ => Touched::NONE,
        }
    }

    fn apply_job(&mut self, event: &Event) -> Touched {
        let Some(job) = jobs::job_from_event(event) else {
            return Touched::NONE;
        };
        if job.method.as_deref() != Some("cloudsync.sync") {
            return Touched::NONE;
        }
        health_reads::note_job(&mut self.runs, &job);
        // The task's `job` field now shows this job (`MW/utils/service/task_state.py`).
        if let Some(task) = job
            .args
            .first_id
            .and_then(|t| self.observed.cloud_sync.iter_mut().find(|x| x.id == t))
        {
            if job.args.dry_run {
                task.dry_run_shown = true;
                task.last_run = None;
            } else {
                task.dry_run_shown = false;
                task.last_run = Some(job.state);
            }
        }
        Touched::HEALTH
    }

    fn apply_cloud_sync(
        &mut self,
        kind: EventKind,
        id: Option<&Value>,
        fields: Option<&Value>,
    ) -> Touched {
        let id = id.and_then(Value::as_u64);
        if kind == EventKind::Removed {
            if let Some(id) = id {
                self.observed.cloud_sync.retain(|t| t.id != id);
                self.runs.remove(&id);
                self.stale.cloud_sync.remove(&id);
            }
            return Touched::ALL;
        }
        match fields.map(observe::decode_cloud_sync) {
            Some(Ok(task)) => {
                let task_id = task.id;
                self.stale.cloud_sync.remove(&task_id);
                upsert(&mut self.observed.cloud_sync, task, |t| t.id);
                if let Some(entry) = fields {
                    self.take_runs(task_id, entry);
                }
            }
            // 24.10/25.04 send the id only; undecodable fields are not guessed at.
            _ => self.mark(id, |s| &mut s.cloud_sync),
        }
        Touched::ALL
    }

    fn apply_credential(
        &mut self,
        kind: EventKind,
        id: Option<&Value>,
        fields: Option<&Value>,
    ) -> Touched {
        let id = id.and_then(Value::as_u64);
        if kind == EventKind::Removed {
            if let Some(id) = id {
                self.observed.credentials.retain(|c| c.id != id);
                self.stale.credentials.remove(&id);
            }
            return Touched::ALL;
        }
        match fields.map(observe::decode_credential) {
            Some(Ok(credential)) => {
                self.stale.credentials.remove(&credential.id);
                upsert(&mut self.observed.credentials, credential, |c| c.id);
            }
            _ => self.mark(id, |s| &mut s.credentials),
        }
        Touched::ALL
    }

    fn apply_snapshot_task(
        &mut self,
        kind: EventKind,
        id: Option<&Value>,
        fields: Option<&Value>,
    ) -> Touched {
        let id = id.and_then(Value::as_u64);
        if kind == EventKind::Removed {
            if let Some(id) = id {
                self.observed.snapshot_tasks.retain(|t| t.id != id);
                self.snapshot_states.remove(&id);
                self.stale.snapshot_tasks.remove(&id);
            }
            return Touched::ALL;
        }
        let whole = fields.is_some_and(|f| f.get("dataset").is_some());
        if let (false, Some(state), Some(id)) = (whole, fields.and_then(|f| f.get("state")), id) {
            // zettarepl's state change: `fields` is `{"state": {…}}` alone.
            self.snapshot_states
                .extend(health_reads::decode_snapshot_states(
                    &json!([{"id": id, "state": state}]),
                ));
            return Touched::HEALTH;
        }
        match fields.map(observe::decode_snapshot_task) {
            Some(Ok(task)) => {
                let task_id = task.id;
                self.stale.snapshot_tasks.remove(&task_id);
                if let Some(entry) = fields {
                    self.snapshot_states
                        .extend(health_reads::decode_snapshot_states(&json!([entry])));
                }
                upsert(&mut self.observed.snapshot_tasks, task, |t| t.id);
            }
            _ => self.mark(id, |s| &mut s.snapshot_tasks),
        }
        Touched::ALL
    }

    fn apply_service(&mut self, fields: Option<&Value>) -> Touched {
        match fields {
            Some(row)
                if row.get("service").and_then(Value::as_str) == Some(calls::SNMP_SERVICE) =>
            {
                self.observed.snmp_service = observe::decode_service(row);
                // A restart is also what `snmp.update` does to a running snmpd, and
                // `snmp.config` sends no event of its own: read it again.
                self.stale.snmp = true;
                Touched::ALL
            }
            Some(_) => Touched::NONE,
            None => {
                self.stale.snmp = true;
                Touched::ALL
            }
        }
    }

    fn apply_dataset(
        &mut self,
        kind: EventKind,
        id: Option<&Value>,
        fields: Option<&Value>,
    ) -> Touched {
        let name = id.and_then(Value::as_str);
        let is_root = |n: &str| self.observed.pools.iter().any(|p| p.name == n);
        if kind == EventKind::Removed {
            if name.is_some_and(is_root) {
                self.stale.pools = true;
                return Touched::ALL;
            }
            return Touched::NONE;
        }
        match fields.and_then(observe::dataset_user_properties) {
            Some((dataset, props)) => {
                let Some(pool) = self.observed.pools.iter_mut().find(|p| p.name == dataset) else {
                    return Touched::NONE;
                };
                pool.user_properties = props;
                Touched::ALL
            }
            None if name.is_some_and(is_root) => {
                self.stale.pools = true;
                Touched::ALL
            }
            None => Touched::NONE,
        }
    }

    fn apply_alert(
        &mut self,
        kind: EventKind,
        id: Option<&Value>,
        fields: Option<&Value>,
    ) -> Touched {
        let (Some(alerts), Some(id)) = (self.alerts.as_mut(), id.and_then(Value::as_str)) else {
            return Touched::NONE;
        };
        let alert = match kind {
            EventKind::Removed => None,
            EventKind::Added | EventKind::Changed => fields.and_then(health_reads::decode_alert),
        };
        match alert {
            Some(alert) => alerts.insert(id.to_owned(), alert),
            // Gone, dismissed, or of a class health does not look at.
            None => alerts.remove(id),
        };
        Touched::HEALTH
    }

    fn mark(&mut self, id: Option<u64>, set: impl FnOnce(&mut Stale) -> &mut BTreeSet<u64>) {
        match id {
            Some(id) => {
                set(&mut self.stale).insert(id);
            }
            // An event without an id cannot be placed: read the pools and every task
            // again is the safe answer; the pools flag stands for "read it all".
            None => self.stale.pools = true,
        }
    }

    /// The task's runs from its `job` field (an entry as `cloudsync.query` shows it).
    fn take_runs(&mut self, id: u64, entry: &Value) {
        if entry.get("job").is_none() {
            return;
        }
        let last = health_reads::decode_last_runs(&json!([entry]));
        if let Some(shown) = last.get(&id) {
            let runs = self.runs.entry(id).or_default();
            runs.dry_run_shown = shown.dry_run_shown;
            if shown.last.is_some() {
                runs.last.clone_from(&shown.last);
            }
        }
    }

    /// Reads what events named without their state (see [`NasView::is_stale`]). An item
    /// read successfully is no longer stale; on an error the rest stays stale.
    pub(crate) async fn refresh(&mut self, mw: &impl Middleware) -> Result<(), ObserveError> {
        if self.stale.pools {
            let pools = read(mw, calls::pools_query(), "pools").await?;
            let mut decoded = decode_list(Method::PoolQuery, &pools, observe::decode_pool)?;
            if !decoded.is_empty() {
                let names: Vec<String> = decoded.iter().map(|p| p.name.clone()).collect();
                let datasets =
                    read(mw, calls::root_datasets_query(&names), "root datasets").await?;
                for item in datasets.as_array().into_iter().flatten() {
                    if let Some((id, props)) = observe::dataset_user_properties(item) {
                        if let Some(pool) = decoded.iter_mut().find(|p| p.name == id) {
                            pool.user_properties = props;
                        }
                    }
                }
            }
            self.observed.pools = decoded;
            self.stale.pools = false;
        }
        for id in self.stale.credentials.clone() {
            let found = read(mw, calls::credential_by_id(id), "a cloud credential").await?;
            match first(&found).map(observe::decode_credential) {
                Some(Ok(c)) => upsert(&mut self.observed.credentials, c, |c| c.id),
                Some(Err(detail)) => return Err(decode_error(Method::CredentialsQuery, detail)),
                None => self.observed.credentials.retain(|c| c.id != id),
            }
            self.stale.credentials.remove(&id);
        }
        for id in self.stale.cloud_sync.clone() {
            let found = read(mw, calls::cloudsync_by_id(id), "a cloud sync task").await?;
            match first(&found).map(|e| (observe::decode_cloud_sync(e), e)) {
                Some((Ok(t), entry)) => {
                    upsert(&mut self.observed.cloud_sync, t, |t| t.id);
                    let entry = entry.clone();
                    self.take_runs(id, &entry);
                }
                Some((Err(detail), _)) => return Err(decode_error(Method::CloudsyncQuery, detail)),
                None => {
                    self.observed.cloud_sync.retain(|t| t.id != id);
                    self.runs.remove(&id);
                }
            }
            self.stale.cloud_sync.remove(&id);
        }
        for id in self.stale.snapshot_tasks.clone() {
            let found = read(mw, calls::snapshot_task_by_id(id), "a snapshot task").await?;
            match first(&found).map(|e| (observe::decode_snapshot_task(e), e)) {
                Some((Ok(t), entry)) => {
                    self.snapshot_states
                        .extend(health_reads::decode_snapshot_states(&json!([entry])));
                    upsert(&mut self.observed.snapshot_tasks, t, |t| t.id);
                }
                Some((Err(detail), _)) => {
                    return Err(decode_error(Method::SnapshotTaskQuery, detail));
                }
                None => {
                    self.observed.snapshot_tasks.retain(|t| t.id != id);
                    self.snapshot_states.remove(&id);
                }
            }
            self.stale.snapshot_tasks.remove(&id);
        }
        if self.stale.snmp {
            self.read_snmp(mw).await?;
            self.stale.snmp = false;
        }
        Ok(())
    }

    async fn read_snmp(&mut self, mw: &impl Middleware) -> Result<(), ObserveError> {
        let snmp = read(mw, calls::snmp_config(), "SNMP configuration").await?;
        let service = read(
            mw,
            calls::service_query(calls::SNMP_SERVICE),
            "SNMP service",
        )
        .await?;
        self.observed.snmp = observe::decode_snmp(&snmp);
        self.observed.snmp_service = observe::decode_service(&service);
        Ok(())
    }

    /// Reads what sends no event: the SNMP configuration (`snmp` is a `ConfigService`)
    /// and the SNMP service row (`service.update` sends none). Says whether the
    /// document's view of them changed.
    pub(crate) async fn poll(&mut self, mw: &impl Middleware) -> Result<Touched, ObserveError> {
        let (snmp, service) = (
            self.observed.snmp.clone(),
            self.observed.snmp_service.clone(),
        );
        // Until the read succeeds, the next use reads them again.
        self.stale.snmp = true;
        self.read_snmp(mw).await?;
        self.stale.snmp = false;
        let same = same_snmp(&snmp, &self.observed.snmp) && service == self.observed.snmp_service;
        Ok(if same { Touched::NONE } else { Touched::ALL })
    }

    /// Reads the snapshot listing of each `(pool, prefix)` that is missing, has another
    /// prefix, or is at least `max_age` old; drops the listings of other pools.
    pub(crate) async fn ensure_listings(
        &mut self,
        mw: &impl Middleware,
        wanted: &[(String, String)],
        max_age: Duration,
        timeout: Duration,
    ) {
        self.listings
            .retain(|pool, _| wanted.iter().any(|(p, _)| p == pool));
        let flavor = self.observed.api.flavor;
        for (pool, prefix) in wanted {
            let due = self
                .listings
                .get(pool)
                .is_none_or(|l| l.listing.prefix != *prefix || l.at.elapsed() >= max_age);
            if due {
                let listing = health_reads::list_snapshots(mw, flavor, pool, prefix, timeout).await;
                self.listings.insert(
                    pool.clone(),
                    Listing {
                        at: Instant::now(),
                        listing,
                    },
                );
            }
        }
    }

    /// The health reads as the evaluation takes them.
    pub(crate) fn health_reads(&self) -> HealthReads {
        HealthReads {
            runs: self.runs.clone(),
            snapshot_states: self.snapshot_states.clone(),
            snapshots: self
                .listings
                .iter()
                .map(|(pool, l)| (pool.clone(), l.listing.clone()))
                .collect(),
            alerts: self.alerts.as_ref().map(|a| a.values().cloned().collect()),
            read_errors: self.read_errors.clone(),
        }
    }
}

/// Replaces the entry with `id` in `list` (or adds it).
fn upsert<T>(list: &mut Vec<T>, item: T, id: impl Fn(&T) -> u64) {
    let key = id(&item);
    match list.iter_mut().find(|x| id(x) == key) {
        Some(slot) => *slot = item,
        None => list.push(item),
    }
}

fn first(list: &Value) -> Option<&Value> {
    list.as_array().and_then(|items| items.first())
}

fn decode_error(method: Method, detail: String) -> ObserveError {
    ObserveError::Decode { method, detail }
}

fn decode_list<T>(
    method: Method,
    value: &Value,
    decode: fn(&Value) -> Result<T, String>,
) -> Result<Vec<T>, ObserveError> {
    let items = value.as_array().ok_or_else(|| {
        decode_error(
            method,
            format!(
                "expected a list, got {}",
                crate::middleware::type_name(value)
            ),
        )
    })?;
    items
        .iter()
        .map(decode)
        .collect::<Result<_, _>>()
        .map_err(|detail| decode_error(method, detail))
}

async fn read(mw: &impl Middleware, call: Call, what: &'static str) -> Result<Value, ObserveError> {
    mw.call(call)
        .await
        .map_err(|source| ObserveError::Read { what, source })
}

/// A read bounded by `timeout` (the health reads: one slow read must not hold the rest).
async fn bounded(
    mw: &impl Middleware,
    call: Call,
    timeout: Duration,
) -> Result<Value, crate::middleware::CallError> {
    let method = call.method;
    tokio::time::timeout(timeout, mw.call(call))
        .await
        .unwrap_or(Err(crate::middleware::CallError::Timeout {
            method,
            after: timeout,
        }))
}

/// Relevant alerts of an `alert.list` answer, by id (`uuid`).
fn alerts_by_id(value: &Value) -> BTreeMap<String, Alert> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let id = a.get("uuid").and_then(Value::as_str)?;
            Some((id.to_owned(), health_reads::decode_alert(a)?))
        })
        .collect()
}

/// True when two SNMP configurations are the same (secrets compared by value, never shown).
fn same_snmp(a: &Snmp, b: &Snmp) -> bool {
    fn same(a: &SecretView, b: &SecretView) -> bool {
        match (a, b) {
            (SecretView::Empty, SecretView::Empty)
            | (SecretView::Redacted, SecretView::Redacted) => true,
            (SecretView::Value(x), SecretView::Value(y)) => x.expose_secret() == y.expose_secret(),
            _ => false,
        }
    }
    a.v3 == b.v3
        && a.community == b.community
        && a.v3_username == b.v3_username
        && a.v3_authtype == b.v3_authtype
        && a.v3_privproto == b.v3_privproto
        && same(&a.v3_password, &b.v3_password)
        && same(&a.v3_privpassphrase, &b.v3_privpassphrase)
}

#[cfg(test)]
mod tests {
    //! [`NasView::apply`] per collection and per shape of event (the shapes each
    //! version sends are in docs/simulator.md, "Events"); end to end in
    //! `tests/it/e2e_events.rs`.

    use super::*;
    use crate::middleware::{ApiFlavor, ApiInfo, Protocol, TransportKind};

    fn view() -> NasView {
        NasView {
            observed: Observed {
                api: ApiInfo {
                    flavor: ApiFlavor::V25_04,
                    version: "25.04.2.6".into(),
                    protocol: Protocol::JsonRpc,
                    transport: TransportKind::UnixSocket,
                    api_version: None,
                    newer_than_known: false,
                },
                pools: Vec::new(),
                credentials: Vec::new(),
                cloud_sync: Vec::new(),
                snapshot_tasks: vec![
                    observe::decode_snapshot_task(&json!({"id": 1, "dataset": "pool0"})).unwrap(),
                ],
                snmp: observe::decode_snmp(&json!({})),
                snmp_service: observe::decode_service(&json!([])),
            },
            runs: BTreeMap::new(),
            snapshot_states: BTreeMap::new(),
            listings: BTreeMap::new(),
            alerts: Some(BTreeMap::new()),
            read_errors: Vec::new(),
            hostname: None,
            stale: Stale::default(),
        }
    }

    fn event(collection: &str, kind: EventKind, id: Value, fields: Option<Value>) -> Event {
        Event {
            collection: collection.into(),
            kind,
            id: (!id.is_null()).then_some(id),
            fields,
        }
    }

    const SNAP: &str = "pool.snapshottask.query";

    #[test]
    fn an_entry_is_taken_as_is_and_an_id_alone_is_read_again() {
        let mut v = view();
        // 25.10+: the stored entry.
        let entry = json!({"id": 1, "dataset": "pool0", "enabled": false});
        let t = v.apply(&event(SNAP, EventKind::Changed, json!(1), Some(entry)));
        assert_eq!(t, Touched::ALL);
        assert!(!v.observed.snapshot_tasks[0].enabled);
        assert!(!v.is_stale());
        // 24.10 / 25.04: the id only — not guessed at, read before the next use.
        let t = v.apply(&event(SNAP, EventKind::Changed, json!(1), None));
        assert_eq!(t, Touched::ALL);
        assert!(v.is_stale());
        assert!(v.stale.snapshot_tasks.contains(&1));
        // A later entry for it settles it.
        let entry = json!({"id": 1, "dataset": "pool0"});
        v.apply(&event(SNAP, EventKind::Changed, json!(1), Some(entry)));
        assert!(!v.is_stale());
    }

    #[test]
    fn removed_drops_the_row_and_added_brings_one() {
        let mut v = view();
        v.apply(&event(SNAP, EventKind::Changed, json!(1), None));
        let t = v.apply(&event(SNAP, EventKind::Removed, json!(1), None));
        assert_eq!(t, Touched::ALL);
        assert!(v.observed.snapshot_tasks.is_empty());
        assert!(!v.is_stale(), "a removed row is not read again");
        let entry = json!({"id": 7, "dataset": "pool1"});
        v.apply(&event(SNAP, EventKind::Added, json!(7), Some(entry)));
        assert_eq!(v.observed.snapshot_tasks[0].dataset, "pool1");
    }

    #[test]
    fn a_zettarepl_state_change_touches_health_only() {
        let mut v = view();
        let before = v.observed.snapshot_tasks.clone();
        let state = json!({"state": {"state": "ERROR", "error": "no space"}});
        let t = v.apply(&event(SNAP, EventKind::Changed, json!(1), Some(state)));
        assert_eq!(t, Touched::HEALTH);
        assert_eq!(v.observed.snapshot_tasks, before);
        assert!(!v.is_stale());
        assert!(v.snapshot_states.contains_key(&1));
    }

    #[test]
    fn services_other_than_snmp_and_unknown_collections_touch_nothing() {
        let mut v = view();
        let ssh = json!({"service": "ssh", "enable": true, "state": "RUNNING"});
        let t = v.apply(&event(
            "service.query",
            EventKind::Changed,
            Value::Null,
            Some(ssh),
        ));
        assert_eq!(t, Touched::NONE);
        let t = v.apply(&event("vm.query", EventKind::Changed, json!(3), None));
        assert_eq!(t, Touched::NONE);
        assert!(!v.is_stale());
        let snmp = json!({"service": "snmp", "enable": true, "state": "RUNNING"});
        let t = v.apply(&event(
            "service.query",
            EventKind::Changed,
            Value::Null,
            Some(snmp),
        ));
        assert_eq!(t, Touched::ALL);
        assert_eq!(v.observed.snmp_service.state, "RUNNING");
        assert!(
            v.is_stale(),
            "snmp.config sends no event: read it with the row"
        );
    }

    #[test]
    fn a_pool_event_reads_the_pools_again() {
        let mut v = view();
        let t = v.apply(&event("pool.query", EventKind::Changed, json!(1), None));
        assert_eq!(t, Touched::ALL);
        assert!(v.stale.pools);
    }
}

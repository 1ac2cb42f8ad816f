//! `status` assembly and rendering: insta snapshots of the text and `--json` for a
//! healthy and a failing box (deterministic: injected `now`, hand-built observations),
//! plus the unreachable-middleware and no-document cases.

use serde_json::json;

use super::*;
use crate::b2::{self, CheckId};
use crate::health::memory::StoredChecklist;
use crate::health::tests::{BoxState, at, auth_failure_text, healthy_box, job, ms, now};
use crate::middleware::{ApiFlavor, Protocol, TransportKind};

fn api() -> ApiInfo {
    ApiInfo {
        flavor: ApiFlavor::V25_04,
        version: "25.04.2.6".into(),
        protocol: Protocol::JsonRpc,
        transport: TransportKind::UnixSocket,
        api_version: Some("v25.04.2".into()),
        newer_than_known: false,
    }
}

fn doc_info(b: &BoxState) -> DocumentInfo {
    DocumentInfo {
        revision: b.desired.revision,
        mode: b.desired.mode.as_str().to_owned(),
        device_guid: b.desired.device.guid.map(|g| g.to_string()),
        root_pool: b.desired.device.root_pool.clone(),
    }
}

/// A daemon that talks to central: document revision 7 applied, fetched and reported two
/// minutes ago, nothing waiting in the spool.
fn talking_to_central() -> CentralInputs {
    use crate::central::state::{
        AppliedDocument, FetchOutcome, FetchRecord, ReportOutcome, ReportRecord,
    };
    let recent = now() - chrono::Duration::minutes(2);
    CentralInputs {
        configured: Some(Some("https://central.example.net/".into())),
        poll_interval: Some(std::time::Duration::from_secs(300)),
        report_interval: None,
        state: Some(crate::central::CentralState {
            applied: Some(AppliedDocument {
                revision: 7,
                etag: Some("\"r7\"".into()),
                verified_by: "ed25519:central-2026".into(),
                at: at(22, 9, 0),
                digest: None,
            }),
            last_fetch: Some(FetchRecord {
                at: recent,
                outcome: FetchOutcome::Unchanged,
                revision: Some(7),
            }),
            last_report: Some(ReportRecord {
                at: recent,
                outcome: ReportOutcome::Delivered,
                status: Some(202),
                pending: 0,
            }),
            ..crate::central::CentralState::default()
        }),
        state_error: None,
        spool_depth: Some(0),
    }
}

fn report_for(b: &BoxState, memory: &HealthMemory) -> StatusReport {
    let health = b.eval();
    assemble(&StatusInputs {
        now: now(),
        version: "0.1.0 (test)".into(),
        state_dir: "/mnt/pool0/.truenas-agent/state".into(),
        document: Some(doc_info(b)),
        document_error: None,
        middleware: MiddlewareProbe::Reachable {
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            api: api(),
        },
        observed: Some(&b.observed),
        health: Some(&health),
        health_error: None,
        memory: Some(memory),
        memory_error: None,
        central: talking_to_central(),
        guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        configured_root: None,
        identity: None,
        identity_error: None,
        install: None,
        install_error: None,
        daemon: DaemonInputs::default(),
    })
}

fn with_b2(b: &BoxState) -> HealthMemory {
    HealthMemory {
        last_b2: b.obs.b2.clone(),
        ..HealthMemory::default()
    }
}

/// The failing box of the brief: auth failure (pool0), overdue snapshots (pool1),
/// SNMP v2c community, a bucket without Object Lock and a plaintext object (pool1).
fn failing_box() -> BoxState {
    let mut b = healthy_box();
    b.set_last(
        "pool0",
        job(
            json!({"id": 41, "state": "FAILED", "error": auth_failure_text(),
                   "time_started": ms(at(23, 0, 0)), "time_finished": ms(at(23, 0, 1))}),
        ),
    );
    let id = b.task_id("pool0");
    b.obs.runs.get_mut(&id).unwrap().last_success = None;
    b.obs.snapshots.get_mut("pool1").unwrap().root_names = Ok(vec!["auto-2026-11-23_05-00".into()]);
    b.observed.snmp.v3 = false;
    b.observed.snmp.community = "public".into();
    let report = b.obs.b2.as_mut().unwrap();
    for f in &mut report.findings {
        match (f.id, f.pool.as_deref()) {
            (CheckId::BucketObjectLock, None) => {
                f.status = b2::Status::Fail;
                f.detail = "Object Lock is not enabled on the bucket. Enable it with compliance mode, 14 days (SOP 4.2).".into();
            }
            (CheckId::BucketDefaultRetention, None) => {
                f.status = b2::Status::Fail;
                f.detail = "No default retention (Object Lock is off).".into();
            }
            (CheckId::PoolEncryptionOn, Some("pool1")) => {
                f.status = b2::Status::Fail;
                f.detail = "Plaintext object found: 9babab19-acc0-4587-aa05-ccd8103a1148/pool1/notes.txt does not start with the rclone crypt header. Turn Remote Encryption on (SOP 7.3).".into();
            }
            _ => {}
        }
    }
    b
}

#[test]
fn healthy_box_text_and_json() {
    let b = healthy_box();
    let r = report_for(&b, &with_b2(&b));
    assert_eq!(r.overall, Overall::Healthy);
    assert_eq!(r.exit_code, 0);
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
    assert_eq!(r.checklist.source, "live");
    assert_eq!(r.device.guid_matches, Some(true));
    insta::assert_snapshot!("status_healthy_text", render_text(&r));
    insta::assert_json_snapshot!("status_healthy_json", r);
}

#[test]
fn failing_box_text_and_json() {
    let b = failing_box();
    let r = report_for(&b, &with_b2(&b));
    assert_eq!(r.overall, Overall::Failing);
    assert_eq!(r.exit_code, 2);
    let areas: Vec<Area> = r.problems.iter().map(|p| p.area).collect();
    for area in [Area::Backup, Area::Snapshots, Area::Snmp, Area::Checklist] {
        assert!(areas.contains(&area), "{area:?} missing: {areas:?}");
    }
    assert!(
        r.problems.iter().all(|p| !p.next_step.is_empty()),
        "every problem has a next step"
    );
    assert_eq!(r.backups[0].error_class.as_deref(), Some("auth"));
    assert!(r.snapshots[1].overdue);
    let text = render_text(&r);
    insta::assert_snapshot!("status_failing_text", text);
    insta::assert_json_snapshot!("status_failing_json", r);
}

#[test]
fn middleware_down_is_unknown_and_still_shows_the_state_dir() {
    let b = failing_box();
    let health = b.eval();
    let memory = HealthMemory {
        last_checklist: Some(StoredChecklist {
            checked_at: at(23, 9, 0),
            revision: 7,
            items: health.checklist.items.clone(),
        }),
        last_b2: b.obs.b2.clone(),
        ..HealthMemory::default()
    };
    let r = assemble(&StatusInputs {
        now: now(),
        version: "0.1.0 (test)".into(),
        state_dir: "/var/lib/truenas-agent".into(),
        document: None,
        document_error: None,
        middleware: MiddlewareProbe::Unreachable {
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            error: "connection refused".into(),
        },
        observed: None,
        health: None,
        health_error: None,
        memory: Some(&memory),
        memory_error: None,
        central: CentralInputs::default(),
        guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        configured_root: None,
        identity: None,
        identity_error: None,
        install: None,
        install_error: None,
        daemon: DaemonInputs::default(),
    });
    assert!(!r.middleware.reachable);
    assert_eq!(r.exit_code, 2);
    assert_eq!(r.problems[0].area, Area::Checklist);
    assert!(
        r.problems
            .iter()
            .any(|p| p.area == Area::Middleware && p.level == Level::Unknown)
    );
    assert_eq!(r.checklist.source, "last_verify");
    assert!(r.checklist.fail > 0);
    assert!(r.backups.is_empty());
    // Compare with the wrapping undone.
    let text = render_text(&r)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains("NOT REACHABLE"), "{text}");
    assert!(text.contains("as of the last verify"), "{text}");
    assert!(text.contains("systemctl status middlewared"), "{text}");
}

#[test]
fn no_document_and_no_verify_yet_is_degraded() {
    let b = healthy_box();
    let h = crate::health::evaluate_nas(&b.observed, &b.obs, now());
    let r = assemble(&StatusInputs {
        now: now(),
        version: "0.1.0 (test)".into(),
        state_dir: "/var/lib/truenas-agent".into(),
        document: None,
        document_error: None,
        middleware: MiddlewareProbe::Reachable {
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            api: api(),
        },
        observed: Some(&b.observed),
        health: Some(&h),
        health_error: None,
        memory: None,
        memory_error: None,
        central: CentralInputs::default(),
        guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        configured_root: None,
        identity: None,
        identity_error: None,
        install: None,
        install_error: None,
        daemon: DaemonInputs::default(),
    });
    assert_eq!(r.overall, Overall::Degraded, "{:#?}", r.problems);
    assert_eq!(r.exit_code, 1);
    assert_eq!(r.checklist.source, "none");
    assert_eq!(r.agent.config_source, "none");
    assert_eq!(
        r.device.guid_zfs.as_deref(),
        Some("9babab19-acc0-4587-aa05-ccd8103a1148")
    );
    assert_eq!(r.device.guid_matches, None);
    assert!(r.unwired.is_empty());
    assert!(
        r.install.is_none(),
        "not installed as a service: no install section"
    );
    assert!(
        r.central.is_none(),
        "no config and no central.json: no section"
    );
}

#[test]
fn guid_mismatch_is_a_failing_identity_problem() {
    let mut b = healthy_box();
    b.observed.pools[0].user_properties.insert(
        crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        "11111111-2222-4333-8444-555555555555".into(),
    );
    let r = report_for(&b, &with_b2(&b));
    assert_eq!(r.device.guid_matches, Some(false));
    let p = r
        .problems
        .iter()
        .find(|p| p.area == Area::Identity)
        .unwrap();
    assert!(p.next_step.contains("NinjaOne wins"));
    // `apply` never writes the GUID (issue 13.17): the step names what does.
    assert!(
        p.next_step.contains("identity ensure --guid"),
        "{}",
        p.next_step
    );
    assert!(
        !p.next_step.contains("run `truenas-agent apply`"),
        "{}",
        p.next_step
    );
}

#[test]
fn no_secret_in_status_output() {
    let mut b = failing_box();
    b.observed.snmp.community = "CANARY-SNMP-AUTH-61aa07".into();
    let r = report_for(&b, &with_b2(&b));
    let all = format!("{}{}", render_text(&r), serde_json::to_string(&r).unwrap());
    for canary in [
        "CANARY-B2-APPKEY-7f3a9c",
        "CANARY-ENC-PASSWORD-2b8e41",
        "CANARY-ENC-SALT-9d0c55",
        "CANARY-SNMP-AUTH-61aa07",
        "CANARY-SNMP-PRIV-c4e2f8",
    ] {
        assert!(!all.contains(canary), "{canary} leaked");
    }
}

#[test]
fn identity_record_problems_come_with_next_steps() {
    use crate::identity::{
        BindingState, HostBinding, IdentityReport, Mode, Problem as IdProblem, ProblemKind,
    };
    let b = healthy_box();
    let health = b.eval();
    let kind = ProblemKind::PoolMovedOrCloned {
        pool: "pool0".into(),
        bound_host: "aaaaaaaaaaaaaaaa".into(),
        this_host: "bbbbbbbbbbbbbbbb".into(),
    };
    let report = IdentityReport {
        mode: Mode::Observe,
        checked_at: at(23, 10, 0),
        property: crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        backend: crate::zfs::BackendChoice::command(),
        guid: Some("9babab19-acc0-4587-aa05-ccd8103a1148".into()),
        guid_source: None,
        usable: false,
        root_pool: Some("pool0".into()),
        root_pool_source: None,
        pools: Vec::new(),
        host_binding: HostBinding {
            property: "com.dtctoday:device-host".into(),
            this_host: Some("bbbbbbbbbbbbbbbb".into()),
            bound_host: Some("aaaaaaaaaaaaaaaa".into()),
            state: BindingState::OtherHost,
        },
        changes: Vec::new(),
        correction: None,
        problems: vec![IdProblem::from(kind)],
        error: None,
    };
    let memory = with_b2(&b);
    let r = assemble(&StatusInputs {
        now: now(),
        version: "0.1.0 (test)".into(),
        state_dir: "/var/lib/truenas-agent".into(),
        document: Some(doc_info(&b)),
        document_error: None,
        middleware: MiddlewareProbe::Reachable {
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            api: api(),
        },
        observed: Some(&b.observed),
        health: Some(&health),
        health_error: None,
        memory: Some(&memory),
        memory_error: None,
        central: talking_to_central(),
        guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        configured_root: None,
        identity: Some(report),
        identity_error: None,
        install: None,
        install_error: None,
        daemon: DaemonInputs::default(),
    });
    assert_eq!(r.exit_code, 2);
    let p = r
        .problems
        .iter()
        .find(|p| p.area == Area::Identity)
        .unwrap();
    assert_eq!(p.level, Level::Failing);
    assert!(p.next_step.contains("--rebind"), "{}", p.next_step);
    assert_eq!(
        r.device.identity.as_ref().unwrap().host_binding.state,
        BindingState::OtherHost
    );
}

#[test]
fn a_broken_installation_is_a_warning_with_its_fix() {
    use crate::install::{CheckItem, CheckReport, CheckStatus};
    let b = healthy_box();
    let health = b.eval();
    let memory = with_b2(&b);
    let install = CheckReport {
        dataset: "pool0/.truenas-agent".into(),
        root: Some("/mnt/pool0/.truenas-agent".into()),
        boot_command: None,
        items: vec![
            CheckItem {
                id: "binary".into(),
                status: CheckStatus::Pass,
                detail: "present".into(),
                fix: None,
            },
            CheckItem {
                id: "init_script".into(),
                status: CheckStatus::Fail,
                detail: "the init script entry is disabled".into(),
                fix: Some("Run `truenas-agent install` again.".into()),
            },
        ],
    };
    let r = assemble(&StatusInputs {
        now: now(),
        version: "0.1.0 (test)".into(),
        state_dir: "/mnt/pool0/.truenas-agent/state".into(),
        document: Some(doc_info(&b)),
        document_error: None,
        middleware: MiddlewareProbe::Reachable {
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            api: api(),
        },
        observed: Some(&b.observed),
        health: Some(&health),
        health_error: None,
        memory: Some(&memory),
        memory_error: None,
        central: talking_to_central(),
        guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        configured_root: None,
        identity: None,
        identity_error: None,
        install: Some(install),
        install_error: None,
        daemon: DaemonInputs::default(),
    });
    assert_eq!(r.exit_code, 1, "{:#?}", r.problems);
    let problem = r
        .problems
        .iter()
        .find(|p| p.subject.as_deref() == Some("init_script"))
        .expect("the failing piece is a problem");
    assert_eq!(problem.level, Level::Warning);
    assert!(problem.message.contains("disabled"));
    assert_eq!(problem.next_step, "Run `truenas-agent install` again.");
    assert_eq!(r.install.as_ref().map(|i| i.items.len()), Some(2));
}

#[test]
fn the_release_and_the_api_in_use_are_shown_and_a_newer_box_is_flagged() {
    let b = healthy_box();
    let r = report_for(&b, &with_b2(&b));
    assert_eq!(r.middleware.api_version.as_deref(), Some("v25.04.2"));
    let text = render_text(&r);
    assert!(text.contains("TrueNAS 25.04.2.6, API v25.04.2"), "{text}");

    // A 28.0 box driven through the newest API it serves that the agent knows.
    let newer = ApiInfo {
        flavor: ApiFlavor::V27_0,
        version: "28.0.0".into(),
        api_version: Some("v27.0.0".into()),
        newer_than_known: true,
        ..api()
    };
    let mut problems = Vec::new();
    let section = middleware_section(
        &MiddlewareProbe::Reachable {
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            api: newer,
        },
        &mut problems,
    );
    assert_eq!(section.newer_than_supported, Some(true));
    assert_eq!(section.api_version.as_deref(), Some("v27.0.0"));
    let [problem] = problems.as_slice() else {
        panic!("{problems:?}")
    };
    assert_eq!(problem.level, Level::Warning);
    assert!(
        problem.message.contains("28.0.0") && problem.message.contains("v27.0.0"),
        "{}",
        problem.message
    );
}

/// Issue 13.17: "1 fail" always comes with a FAILING problem (a task that never ran is
/// only a warning for the backup section, but the SOP item "first sync completed" fails).
#[test]
fn a_failing_checklist_item_makes_status_failing() {
    let mut b = healthy_box();
    let id = b.task_id("pool0");
    b.obs.runs.insert(id, crate::health::TaskRuns::default());
    let r = report_for(&b, &with_b2(&b));
    assert_eq!(r.checklist.fail, 1, "{:#?}", r.checklist.attention);
    assert!(
        r.problems.iter().any(|p| p.level == Level::Failing
            && p.subject.as_deref() == Some("cloud_sync.first_sync/pool0")),
        "{:#?}",
        r.problems
    );
    assert_eq!(r.overall, Overall::Failing);
    assert_eq!(r.exit_code, 2);
    // The same from the last verify, when the middleware is down.
    let health = b.eval();
    let memory = HealthMemory {
        last_checklist: Some(StoredChecklist {
            checked_at: at(23, 9, 0),
            revision: 7,
            items: health.checklist.items.clone(),
        }),
        ..HealthMemory::default()
    };
    let r = assemble(&StatusInputs {
        now: now(),
        version: "0.1.0 (test)".into(),
        state_dir: "/var/lib/truenas-agent".into(),
        document: None,
        document_error: None,
        middleware: MiddlewareProbe::Unreachable {
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            error: "connection refused".into(),
        },
        observed: None,
        health: None,
        health_error: None,
        memory: Some(&memory),
        memory_error: None,
        central: CentralInputs::default(),
        guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        configured_root: None,
        identity: None,
        identity_error: None,
        install: None,
        install_error: None,
        daemon: DaemonInputs::default(),
    });
    assert_eq!(r.checklist.fail, 1);
    assert_eq!(r.overall, Overall::Failing, "{:#?}", r.problems);
}

/// Issue 13.3: one exit-code rule — `unknown` (nothing known failing, the state could
/// not be determined) exits 3, not 2 like `failing`.
#[test]
fn unknown_exits_3_failing_2_degraded_1() {
    let r = assemble(&StatusInputs {
        now: now(),
        version: "0.1.0 (test)".into(),
        state_dir: "/var/lib/truenas-agent".into(),
        document: None,
        document_error: None,
        middleware: MiddlewareProbe::Unreachable {
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            error: "connection refused".into(),
        },
        observed: None,
        health: None,
        health_error: None,
        memory: None,
        memory_error: None,
        central: CentralInputs::default(),
        guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        configured_root: None,
        identity: None,
        identity_error: None,
        install: None,
        install_error: None,
        daemon: DaemonInputs::default(),
    });
    assert_eq!(r.overall, Overall::Unknown, "{:#?}", r.problems);
    assert_eq!(r.exit_code, 3);
    assert!(render_text(&r).contains("UNKNOWN (exit 3)"));
    assert_eq!(Overall::Failing.exit_code(), 2);
    assert_eq!(Overall::Degraded.exit_code(), 1);
    assert_eq!(Overall::Healthy.exit_code(), 0);
}

/// Issue 13.1: a document override of the SOP shows as a deviation (counted, a
/// warning), never as a pass.
#[test]
fn deviations_are_counted_and_are_warnings() {
    let b = healthy_box();
    let mut health = b.eval();
    let item = health
        .checklist
        .items
        .iter_mut()
        .find(|i| i.id == "cloud_sync.chunk_size/pool0")
        .unwrap();
    item.status = ItemStatus::Deviates;
    item.detail = "DEVIATES from the SOP as the document asks: cloud_sync.chunk_size_mib = 5 MiB (the SOP says 96 MiB)".into();
    item.next_step = Some("remove the override".into());
    let memory = with_b2(&b);
    let r = assemble(&StatusInputs {
        now: now(),
        version: "0.1.0 (test)".into(),
        state_dir: "/var/lib/truenas-agent".into(),
        document: Some(doc_info(&b)),
        document_error: None,
        middleware: MiddlewareProbe::Reachable {
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            api: api(),
        },
        observed: Some(&b.observed),
        health: Some(&health),
        health_error: None,
        memory: Some(&memory),
        memory_error: None,
        central: talking_to_central(),
        guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        configured_root: None,
        identity: None,
        identity_error: None,
        install: None,
        install_error: None,
        daemon: DaemonInputs::default(),
    });
    assert_eq!(r.checklist.deviates, 1);
    assert_eq!(r.checklist.attention[0].status, "deviates");
    assert_eq!(r.overall, Overall::Degraded, "{:#?}", r.problems);
    assert_eq!(r.exit_code, 1);
    assert!(render_text(&r).contains("1 deviate"));
}

/// `cli::status` scrubs the report through JSON and back: it must round-trip.
#[test]
fn the_report_round_trips_through_json() {
    for b in [healthy_box(), failing_box()] {
        let r = report_for(&b, &with_b2(&b));
        let back: StatusReport = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}

/// 13.17: without `-f`, the screen shows the revision the daemon enforces and where it
/// came from — not "Document none given"; with `-f`, both.
#[test]
fn the_document_the_daemon_enforces_is_shown() {
    use crate::central::report::{ConfigSource, ConfigState, Mode};
    use crate::daemon::memory::{CentralLink, DaemonRecord};
    let b = healthy_box();
    let health = b.eval();
    let memory = with_b2(&b);
    let record = DaemonRecord {
        version: "0.1.0".into(),
        pid: std::process::id(),
        started_at: Some(at(23, 8, 0)),
        updated_at: at(23, 10, 29),
        status: "revision 7 converged".into(),
        config_source: ConfigSource::Central,
        revision: Some(7),
        mode: Some(Mode::Enforce),
        config_state: ConfigState::Applied,
        last_plan: Vec::new(),
        last_pass: None,
        last_error: None,
        last_report: None,
        central: CentralLink::Ok,
        middleware_reachable: true,
        pass_errors: Vec::new(),
        refusal: None,
        stopped: None,
    };
    let inputs = |document: Option<DocumentInfo>| StatusInputs {
        now: now(),
        version: "0.1.0 (test)".into(),
        state_dir: "/mnt/pool0/.truenas-agent/state".into(),
        document,
        document_error: None,
        middleware: MiddlewareProbe::Reachable {
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            api: api(),
        },
        observed: Some(&b.observed),
        health: Some(&health),
        health_error: None,
        memory: Some(&memory),
        memory_error: None,
        central: talking_to_central(),
        guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.into(),
        configured_root: None,
        identity: None,
        identity_error: None,
        install: None,
        install_error: None,
        daemon: DaemonInputs {
            record: Some(record.clone()),
            record_error: None,
            service: ServiceState::Pid {
                pid: record.pid,
                alive: true,
            },
            token_problem: None,
            expected: true,
        },
    };
    let r = assemble(&inputs(None));
    assert_eq!(r.agent.config_source, "central");
    assert_eq!(r.agent.revision, Some(7));
    assert_eq!(r.agent.mode.as_deref(), Some("enforce"));
    let enforced = r.agent.enforced.as_ref().unwrap();
    assert_eq!(
        enforced.verified_by.as_deref(),
        Some("ed25519:central-2026")
    );
    assert_eq!(
        enforced.accepted_at.as_deref(),
        Some("2026-11-22T09:00:00Z")
    );
    let text = render_text(&r);
    assert!(!text.contains("none given"), "{text}");
    assert!(
        text.contains(
            "Document    revision 7 (enforce) from central, verified by ed25519:central-2026, \
             accepted 2026-11-22T09:00:00Z, enforced by the daemon"
        ),
        "{text}"
    );
    assert!(text.contains("Daemon      running (pid "), "{text}");
    assert!(text.contains("\"revision 7 converged\""), "{text}");
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
    // With -f: the file's document is evaluated, and the daemon's named too.
    let r = assemble(&inputs(Some(doc_info(&b))));
    assert_eq!(r.agent.config_source, "file");
    let text = render_text(&r);
    assert!(
        text.contains("read from a file; the daemon has revision 7 (enforce) from central"),
        "{text}"
    );
}

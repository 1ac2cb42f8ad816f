//! The identity shell against the scripted fake `zfs` (real exec) and the fake middleware.

use std::time::Duration;

use super::*;
use crate::middleware::ApiFlavor;
use crate::zfs::fake::{FakeMiddleware, FakeZfs};
use crate::zfs::{Backend, PoolName, choose_backend};

const KEY: &str = "com.dtctoday:device-guid";
const HOST_KEY: &str = "com.dtctoday:device-host";
const A: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";
const C: &str = "0f0c6a4e-2b4b-4c7e-9d3e-6b1f2a3c4d5e";
/// system.host_id of the fake's default /etc/hostid (the VM's).
const H1: &str = "8331920580b61d5d662e036c0d22d25554340cb03dac52a08aff8076d3e675bc";

fn inputs() -> IdentityInputs {
    IdentityInputs::new(UserPropKey::parse(KEY).unwrap()).unwrap()
}
fn with_pool(pool: &str) -> IdentityInputs {
    IdentityInputs {
        root_pool: RootPoolHint {
            document: None,
            local: Some(PoolName::parse(pool).unwrap()),
        },
        ..inputs()
    }
}
fn cli() -> BackendChoice {
    BackendChoice::command()
}
fn kinds(report: &IdentityReport) -> Vec<String> {
    report
        .problems
        .iter()
        .map(|p| {
            serde_json::to_value(p).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn fresh_pool_gets_a_v4_guid_written_read_back_and_bound() {
    let fake = FakeZfs::new(&["boot-pool", "pool0"]);
    let zfs = fake.backend();
    let report = ensure(&inputs(), &zfs, &cli()).await;
    assert_eq!(report.error, None);
    let guid = report.guid.clone().unwrap();
    let uuid = Uuid::try_parse(&guid).unwrap();
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(guid, guid.to_ascii_lowercase());
    assert_eq!(report.guid_source, Some(GuidSource::Generated));
    assert!(report.usable);
    assert_eq!(report.usable_guid(), Some(uuid));
    assert_eq!(report.root_pool.as_deref(), Some("pool0"));
    assert_eq!(report.root_pool_source, Some(RootPoolSource::OnlyDataPool));
    assert_eq!(report.host_binding.state, BindingState::Bound);
    assert_eq!(report.host_binding.bound_host.as_deref(), Some(H1));
    assert_eq!(report.exit_code(), 0);
    assert_eq!(
        report.pools[0].value.as_deref(),
        Some(guid.as_str()),
        "as read back"
    );
    assert_eq!(report.pools[0].state, GuidState::Valid);
    assert_eq!(fake.prop("pool0", KEY).as_deref(), Some(guid.as_str()));
    assert_eq!(fake.prop("pool0", HOST_KEY).as_deref(), Some(H1));
    assert_eq!(
        fake.writes(),
        [format!(
            "zfs [set] [{KEY}={guid}] [{HOST_KEY}={H1}] [pool0]"
        )],
        "one zfs set for both properties, never on boot-pool"
    );
    assert!(!fake.argv().iter().any(|l| l.contains("boot-pool]")));
}

#[tokio::test]
async fn a_rerun_keeps_the_guid_and_writes_nothing() {
    let fake = FakeZfs::new(&["pool0"]);
    let zfs = fake.backend();
    let first = ensure(&inputs(), &zfs, &cli()).await;
    let second = ensure(&inputs(), &zfs, &cli()).await;
    assert_eq!(second.guid, first.guid);
    assert_eq!(second.guid_source, Some(GuidSource::Zfs));
    assert!(second.changes.is_empty());
    assert_eq!(fake.writes().len(), 1);
    assert_eq!(second.exit_code(), 0);
}

#[tokio::test]
async fn centrals_guid_overrides_and_the_old_value_is_reported() {
    let fake = FakeZfs::new(&["pool0"]);
    fake.set_prop("pool0", KEY, A);
    fake.set_prop("pool0", HOST_KEY, H1);
    let central = IdentityInputs {
        central_guid: Some(Uuid::try_parse(C).unwrap()),
        ..inputs()
    };
    let report = ensure(&central, &fake.backend(), &cli()).await;
    assert_eq!(report.guid.as_deref(), Some(C));
    assert_eq!(report.guid_source, Some(GuidSource::Central));
    assert_eq!(
        report.correction,
        Some(Correction {
            old: A.into(),
            new: C.into()
        })
    );
    assert_eq!(fake.prop("pool0", KEY).as_deref(), Some(C));
    assert_eq!(fake.writes(), [format!("zfs [set] [{KEY}={C}] [pool0]")]);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["guid_source"], "central");
    assert_eq!(json["correction"]["old"], A);
}

#[tokio::test]
async fn several_pools_without_a_root_pool_are_refused_and_nothing_is_written() {
    let fake = FakeZfs::new(&["pool0", "pool1"]);
    let report = ensure(&inputs(), &fake.backend(), &cli()).await;
    assert_eq!(kinds(&report), ["several_pools_set_root_pool"]);
    assert!(!report.usable);
    assert_eq!(report.exit_code(), 2, "not usable: failing");
    assert!(fake.writes().is_empty());
    let report = ensure(&with_pool("pool1"), &fake.backend(), &cli()).await;
    assert!(report.usable);
    assert_eq!(report.root_pool_source, Some(RootPoolSource::Config));
    assert!(fake.prop("pool1", KEY).is_some());
    assert!(fake.prop("pool0", KEY).is_none());
    // Now pool1 carries it: with no hint, it is found; asking for pool0 is refused.
    let report = ensure(&inputs(), &fake.backend(), &cli()).await;
    assert_eq!(report.root_pool.as_deref(), Some("pool1"));
    assert_eq!(report.root_pool_source, Some(RootPoolSource::Carrier));
    let report = ensure(&with_pool("pool0"), &fake.backend(), &cli()).await;
    assert_eq!(kinds(&report), ["guid_on_other_pool"]);
    assert!(fake.prop("pool0", KEY).is_none(), "never on two pools");
    assert_eq!(fake.writes().len(), 1);
}

#[tokio::test]
async fn the_boot_pool_is_neither_read_nor_chosen() {
    let fake = FakeZfs::new(&["boot-pool", "freenas-boot", "pool0"]);
    let report = observe(&with_pool("boot-pool"), &fake.backend(), &cli()).await;
    assert_eq!(kinds(&report), ["root_pool_is_boot_pool"]);
    assert_eq!(report.pools.len(), 1, "only pool0 was read");
    assert!(!fake.argv().iter().any(|l| l.contains("[boot-pool]")));
}

#[tokio::test]
async fn children_and_received_values_are_handled() {
    let fake = FakeZfs::new(&["pool0", "pool1"]);
    fake.set_datasets(&["pool0/child", "pool1/replica"]);
    fake.set_prop("pool0", KEY, A);
    fake.set_prop("pool0", HOST_KEY, H1);
    // A dataset replicated from another box keeps that box's GUID locally: it does not
    // make pool1 a carrier.
    fake.set_prop("pool1/replica", KEY, C);
    let zfs = fake.backend();
    let report = ensure(&inputs(), &zfs, &cli()).await;
    assert_eq!(report.root_pool.as_deref(), Some("pool0"));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let child = zfs
        .get(
            &DatasetName::parse("pool0/child").unwrap(),
            &UserPropKey::parse(KEY).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(child.value.as_deref(), Some(A));
    assert_eq!(
        child.source,
        crate::zfs::PropSource::Inherited {
            from: Some("pool0".into())
        }
    );
    // A pool root whose value was received (zfs send -p) still carries it.
    fake.set_prop_source("pool0", KEY, "received");
    let report = ensure(&inputs(), &zfs, &cli()).await;
    assert_eq!(report.guid.as_deref(), Some(A));
    assert_eq!(report.guid_source, Some(GuidSource::Zfs));
}

#[tokio::test]
async fn a_pool_from_another_host_is_reported_until_confirmed() {
    let fake = FakeZfs::new(&["pool0"]);
    let zfs = fake.backend();
    let first = ensure(&inputs(), &zfs, &cli()).await;
    let guid = first.guid.unwrap();
    // Imported on another host (or the box was cloned and got a new hostid).
    fake.write_hostid(&[0x78, 0x56, 0x34, 0x12]);
    let seen = observe(&inputs(), &zfs, &cli()).await;
    assert_eq!(kinds(&seen), ["pool_moved_or_cloned"]);
    assert!(
        seen.problems[0]
            .message
            .starts_with("pool moved or box cloned")
    );
    assert_eq!(seen.host_binding.state, BindingState::OtherHost);
    assert_eq!(seen.host_binding.bound_host.as_deref(), Some(H1));
    assert_eq!(seen.usable_guid(), None);
    assert_eq!(seen.exit_code(), 2, "not usable: failing");
    let refused = ensure(&inputs(), &zfs, &cli()).await;
    assert_eq!(kinds(&refused), ["pool_moved_or_cloned"]);
    assert_eq!(fake.writes().len(), 1, "no automatic rebind");

    let rebind = IdentityInputs {
        rebind: true,
        ..inputs()
    };
    let report = ensure(&rebind, &zfs, &cli()).await;
    assert!(report.usable, "{:?}", report.problems);
    assert_eq!(report.guid.as_deref(), Some(guid.as_str()));
    assert!(matches!(
        report.changes[..],
        [Change::Rebound {
            confirmed_by: Confirmation::Technician,
            ..
        }]
    ));
    let new_host = report.host_binding.this_host.clone().unwrap();
    assert_ne!(new_host, H1);
    assert_eq!(fake.prop("pool0", HOST_KEY), Some(new_host));
    assert_eq!(fake.prop("pool0", KEY).as_deref(), Some(guid.as_str()));
}

#[tokio::test]
async fn failures_are_reported_with_their_fault_and_nothing_half_applied() {
    let fake = FakeZfs::new(&["pool0"]);
    fake.fail_op("zfs", "set", "eperm");
    let report = ensure(&inputs(), &fake.backend(), &cli()).await;
    let error = report.error.clone().unwrap();
    assert_eq!(error.fault, Fault::Nas);
    assert!(
        error.message.starts_with(&format!(
            "cannot write {KEY}, {HOST_KEY} on pool0: `zfs set` on pool0"
        )),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .ends_with("permission denied (cannot set property for 'pool0': permission denied)")
    );
    assert!(report.changes.is_empty());
    assert!(!report.usable);
    assert_eq!(report.exit_code(), 3, "an operation failed: unknown");
    assert_eq!(fake.prop("pool0", KEY), None);

    fake.clear_failures();
    fake.fail_op("zpool", "list", "notusable");
    let report = observe(&inputs(), &fake.backend(), &cli()).await;
    assert!(
        report.error.unwrap().message.starts_with(
            "cannot list the imported pools: `zpool list`: ZFS cannot be used from here"
        )
    );

    fake.clear_failures();
    fake.fail_op("zfs", "get", "sleep");
    let report = observe(
        &inputs(),
        &fake.backend_with_timeout(Duration::from_millis(300)),
        &cli(),
    )
    .await;
    assert_eq!(report.error.unwrap().fault, Fault::Transient);
}

#[tokio::test]
async fn a_write_that_does_not_stick_is_caught_by_the_read_back() {
    let fake = FakeZfs::new(&["pool0"]);
    fake.fail_op("zfs", "set", "flipset");
    let report = ensure(&inputs(), &fake.backend(), &cli()).await;
    assert_eq!(kinds(&report), ["read_back_mismatch", "read_back_mismatch"]);
    assert!(!report.usable);
    fake.clear_failures();
    let fake = FakeZfs::new(&["pool0"]);
    fake.fail_op("zfs", "set", "ignoreset");
    let report = ensure(&inputs(), &fake.backend(), &cli()).await;
    assert!(kinds(&report).contains(&"read_back_mismatch".to_owned()));
    assert_eq!(report.usable_guid(), None);
}

#[tokio::test]
async fn the_middleware_fallback_runs_the_same_rules() {
    let fake = FakeZfs::new(&["pool0"]);
    fake.fail("notusable");
    for flavor in ApiFlavor::ALL {
        let mw = FakeMiddleware::new(flavor, &["pool0"]);
        let (store, choice) = choose_backend(fake.backend(), Some(&mw)).await;
        let report = ensure(&inputs(), &store, &choice).await;
        assert!(report.usable, "{flavor}: {report:?}");
        assert_eq!(report.backend.backend, Backend::Middleware);
        assert!(report.backend.fallback_reason.is_some());
        assert_eq!(report.host_binding.bound_host.as_deref(), Some(H1));
        let guid = report.guid.clone().unwrap();
        assert_eq!(mw.prop("pool0", KEY), Some(guid.clone()));
        // Rerun keeps it (on 25.10 the source is Unknown: still counts as set here).
        let again = ensure(&inputs(), &store, &choice).await;
        assert_eq!(again.guid, Some(guid));
        assert_eq!(again.guid_source, Some(GuidSource::Zfs));
        assert!(again.changes.is_empty());
        assert_eq!(
            mw.calls()
                .iter()
                .filter(|c| c.method == crate::middleware::Method::DatasetUpdate)
                .count(),
            1,
            "{flavor}: one write"
        );
    }
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn a_middleware_without_host_id_still_keeps_the_guid() {
    let fake = FakeZfs::new(&["pool0"]);
    fake.fail("notusable");
    let mw = FakeMiddleware::new(ApiFlavor::V25_04, &["pool0"]);
    mw.set_host_id(None);
    let (store, choice) = choose_backend(fake.backend(), Some(&mw)).await;
    let report = ensure(&inputs(), &store, &choice).await;
    assert_eq!(kinds(&report), ["host_unknown"]);
    assert!(report.usable);
    assert_eq!(mw.prop("pool0", HOST_KEY), None);
}

#[test]
fn the_host_property_follows_the_namespace() {
    let i = IdentityInputs::new(UserPropKey::parse("com.example:guid").unwrap()).unwrap();
    assert_eq!(i.host_property.as_str(), "com.example:device-host");
    let err =
        IdentityInputs::new(UserPropKey::parse("com.example:device-host").unwrap()).unwrap_err();
    assert_eq!(err.fault(), Fault::Operator);
    assert!(err.to_string().contains("reserved for the host binding"));
    let long = format!("{}:g", "n".repeat(250));
    let err = IdentityInputs::new(UserPropKey::parse(&long).unwrap()).unwrap_err();
    assert_eq!(err.fault(), Fault::Operator);
    assert!(matches!(err, IdentityError::HostProperty { .. }), "{err:?}");
}

#[tokio::test]
async fn the_last_result_is_recorded_privately_and_read_back() {
    let fake = FakeZfs::new(&["pool0"]);
    let report = ensure(&inputs(), &fake.backend(), &cli()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path().join("state")).unwrap();
    assert_eq!(last(&state).unwrap(), None);
    record(&state, &report).unwrap();
    assert_eq!(last(&state).unwrap(), Some(report));
    let (_, mode) = crate::fs::owner_and_mode(&state.file(STATE_FILE)).unwrap();
    assert_eq!(mode, 0o600);
}

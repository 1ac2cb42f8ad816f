use serde_json::json;

use super::*;
use crate::fault::Fault;
use crate::middleware::{ApiFlavor, Method, calls};
use crate::zfs::fake::{FakeMiddleware, FakeZfs};
use crate::zfs::{BackendChoice, Store, choose_backend};

const GUID_KEY: &str = "com.dtctoday:device-guid";
const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";

fn ds(s: &str) -> DatasetName {
    DatasetName::parse(s).unwrap()
}
fn key() -> UserPropKey {
    UserPropKey::parse(GUID_KEY).unwrap()
}

/// The backend sends the requests `middleware::calls` builds (their shapes are tested
/// there): one dataset per call, only the keys given.
#[tokio::test]
async fn requests_are_the_documented_ones() {
    let mw = FakeMiddleware::new(ApiFlavor::V25_04, &["pool0"]);
    let props = MiddlewareProps::new(&mw);
    props.list_pools().await.unwrap();
    props.get(&ds("pool0"), &key()).await.unwrap();
    let value = PropValue::parse(GUID).unwrap();
    props.set(&ds("pool0"), &[(key(), value)]).await.unwrap();
    props.inherit(&ds("pool0"), &key()).await.unwrap();
    props.host_id().await.unwrap();
    assert_eq!(
        mw.calls(),
        [
            calls::pools_query(),
            calls::dataset_user_props("pool0"),
            calls::user_properties_set("pool0", &[(GUID_KEY, GUID)]),
            calls::user_property_remove("pool0", GUID_KEY),
            calls::host_id(),
        ]
    );
}

#[test]
fn readings_decode_per_flavour() {
    let answer = json!([{"id": "pool0/a", "user_properties": {
        GUID_KEY: {"value": GUID, "rawvalue": GUID, "parsed": GUID, "source": "INHERITED", "source_info": "pool0"}
    }}]);
    let r = decode_reading(ApiFlavor::V25_04, &ds("pool0/a"), &key(), &answer)
        .unwrap()
        .unwrap();
    assert_eq!(r.value.as_deref(), Some(GUID));
    assert_eq!(
        r.source,
        PropSource::Inherited {
            from: Some("pool0".into())
        }
    );
    // 25.10 hard-codes LOCAL: we say we do not know.
    let r = decode_reading(ApiFlavor::V25_10, &ds("pool0/a"), &key(), &answer)
        .unwrap()
        .unwrap();
    assert_eq!(r.source, PropSource::Unknown);

    let absent = json!([{"id": "pool0", "user_properties": {}}]);
    let r = decode_reading(ApiFlavor::V24_10, &ds("pool0"), &key(), &absent)
        .unwrap()
        .unwrap();
    assert_eq!((r.value, r.source), (None, PropSource::None));

    assert_eq!(
        decode_reading(ApiFlavor::V24_10, &ds("pool0"), &key(), &json!([])).unwrap(),
        None
    );
    for (bad, expected) in [
        (json!({}), "expected a list"),
        (
            json!([{"id": "pool1", "user_properties": {}}]),
            "the answer is about `pool1`, not `pool0`",
        ),
        (json!([{"id": "pool0"}]), "no `user_properties`"),
        (
            json!([{"id": "pool0", "user_properties": {GUID_KEY: {"value": 5}}}]),
            "string `value`",
        ),
        (
            json!([{"id": "pool0", "user_properties": {GUID_KEY: {"value": "x", "source": "WEIRD"}}}]),
            "unknown source `WEIRD`",
        ),
    ] {
        let err = decode_reading(ApiFlavor::V25_04, &ds("pool0"), &key(), &bad).unwrap_err();
        assert!(err.contains(expected), "{bad}: {err}");
    }
}

#[test]
fn pools_decode_without_offline_ones() {
    let pools = decode_pools(&json!([
        {"name": "pool0", "status": "ONLINE"},
        {"name": "gone", "status": "OFFLINE"},
        {"name": "pool1", "status": "DEGRADED"}
    ]))
    .unwrap();
    let names: Vec<_> = pools.iter().map(PoolName::as_str).collect();
    assert_eq!(names, ["pool0", "pool1"]);
    assert!(decode_pools(&json!([{"status": "ONLINE"}])).is_err());
    assert!(decode_pools(&json!([{"name": "0bad"}])).is_err());
}

#[tokio::test]
async fn reads_and_writes_through_the_middleware() {
    let mw = FakeMiddleware::new(ApiFlavor::V25_04, &["pool0", "pool1"]);
    mw.set_datasets(&["pool0/child"]);
    let props = MiddlewareProps::new(&mw);
    assert_eq!(props.backend(), Backend::Middleware);
    let pools = props.list_pools().await.unwrap();
    assert_eq!(pools.len(), 2);
    assert_eq!(props.get(&ds("pool0"), &key()).await.unwrap().value, None);

    props
        .set(&ds("pool0"), &[(key(), PropValue::parse(GUID).unwrap())])
        .await
        .unwrap();
    assert_eq!(mw.prop("pool0", GUID_KEY).as_deref(), Some(GUID));
    let child = props.get(&ds("pool0/child"), &key()).await.unwrap();
    assert_eq!(child.value.as_deref(), Some(GUID));
    assert_eq!(
        child.source,
        PropSource::Inherited {
            from: Some("pool0".into())
        }
    );
    mw.set_prop("pool0/child", GUID_KEY, "own");
    let child = props.get(&ds("pool0/child"), &key()).await.unwrap();
    assert_eq!(
        (child.value.as_deref(), child.source),
        (Some("own"), PropSource::Local)
    );
    props.inherit(&ds("pool0"), &key()).await.unwrap();
    assert_eq!(mw.prop("pool0", GUID_KEY), None);

    let err = props.get(&ds("pool9"), &key()).await.unwrap_err();
    assert!(matches!(err, ZfsError::NoSuchDataset { .. }), "{err:?}");

    assert_eq!(
        props.host_id().await.unwrap().unwrap().short(),
        "8331920580b6"
    );
    mw.set_host_id(None);
    assert_eq!(props.host_id().await.unwrap(), None);
    mw.set_host_id(Some("not-hex"));
    assert!(matches!(
        props.host_id().await.unwrap_err(),
        ZfsError::MiddlewareAnswer { .. }
    ));

    let methods: Vec<_> = mw.calls().iter().map(|c| c.method).collect();
    assert!(methods.iter().all(|m| matches!(
        m,
        Method::PoolQuery | Method::DatasetQuery | Method::DatasetUpdate | Method::SystemHostId
    )));
}

#[tokio::test]
async fn middleware_errors_keep_their_fault() {
    let mw = FakeMiddleware::new(ApiFlavor::V25_10, &["pool0"]);
    let props = MiddlewareProps::new(&mw);
    mw.fail_next(CallError::Timeout {
        method: Method::DatasetQuery,
        after: std::time::Duration::from_secs(60),
    });
    let err = props.get(&ds("pool0"), &key()).await.unwrap_err();
    assert_eq!(err.fault(), Fault::Transient);
    assert_eq!(
        err.to_string(),
        "`zfs get` on pool0 (com.dtctoday:device-guid) through the middleware failed"
    );
    mw.fail_next(CallError::Validation {
        method: Method::DatasetUpdate,
        items: vec![],
    });
    let err = props
        .set(&ds("pool0"), &[(key(), PropValue::parse(GUID).unwrap())])
        .await
        .unwrap_err();
    assert_eq!(err.fault(), Fault::Nas);
    mw.fail_next(CallError::NotFound {
        method: Method::DatasetUpdate,
        reason: "gone".into(),
    });
    let err = props.inherit(&ds("pool0"), &key()).await.unwrap_err();
    assert!(matches!(err, ZfsError::NoSuchDataset { .. }), "{err:?}");
}

#[tokio::test]
async fn falls_back_to_the_middleware_only_when_zfs_is_unusable() {
    let fake = FakeZfs::new(&["pool0"]);
    let mw = FakeMiddleware::new(ApiFlavor::V25_10, &["pool0"]);

    let (store, choice) = choose_backend(fake.backend(), Some(&mw)).await;
    assert!(matches!(store, Store::Command(_)));
    assert_eq!(choice, BackendChoice::command());

    fake.fail("notusable");
    let (store, choice) = choose_backend(fake.backend(), Some(&mw)).await;
    assert!(matches!(store, Store::Middleware(_)));
    assert_eq!(choice.backend, Backend::Middleware);
    assert!(
        choice
            .fallback_reason
            .as_deref()
            .unwrap()
            .contains("/dev/zfs and /proc/self/mounts are required"),
        "{choice:?}"
    );
    assert!(
        choice
            .to_string()
            .starts_with("middleware (zfs command unavailable: ")
    );
    store
        .set(&ds("pool0"), &[(key(), PropValue::parse(GUID).unwrap())])
        .await
        .unwrap();
    assert_eq!(mw.prop("pool0", GUID_KEY).as_deref(), Some(GUID));
    assert!(fake.writes().is_empty());

    // zfs missing entirely: same.
    let missing = crate::zfs::ZfsCommand::new(crate::zfs::CommandConfig {
        zfs: crate::zfs::Program::Name("no-such-zfs".into()),
        zpool: crate::zfs::Program::Name("no-such-zpool".into()),
        ..crate::zfs::CommandConfig::default()
    });
    let (_, choice) = choose_backend(missing, Some(&mw)).await;
    assert_eq!(choice.backend, Backend::Middleware);

    // A transient zfs failure is not a reason to switch.
    fake.fail("crash");
    let (_, choice) = choose_backend(fake.backend(), Some(&mw)).await;
    assert_eq!(choice.backend, Backend::ZfsCommand);

    // No middleware: stay on the command; its error surfaces on use, the choice says why.
    fake.fail("notusable");
    let (store, choice) = choose_backend::<&FakeMiddleware>(fake.backend(), None).await;
    assert_eq!(choice.backend, Backend::ZfsCommand);
    assert_eq!(
        choice.fallback_error.as_deref(),
        Some("no middleware connection")
    );
    assert!(
        choice
            .to_string()
            .starts_with("zfs command (unavailable: `zpool list`: ZFS cannot be used from here"),
        "{choice}"
    );
    assert!(store.list_pools().await.is_err());
}

#[tokio::test]
async fn the_middleware_is_connected_only_when_zfs_is_unusable() {
    let fake = FakeZfs::new(&["pool0"]);
    let mw = FakeMiddleware::new(ApiFlavor::V25_04, &["pool0"]);
    let connected = std::cell::Cell::new(0);
    let connect = || async {
        connected.set(connected.get() + 1);
        Ok::<_, String>(&mw)
    };
    let (_, choice) = crate::zfs::choose_backend_with(fake.backend(), connect).await;
    assert_eq!(choice.backend, Backend::ZfsCommand);
    assert_eq!(connected.get(), 0, "no connection while zfs works");
    fake.fail("notusable");
    let (_, choice) = crate::zfs::choose_backend_with(fake.backend(), connect).await;
    assert_eq!(choice.backend, Backend::Middleware);
    assert_eq!(connected.get(), 1);
    let (_, choice) = crate::zfs::choose_backend_with(fake.backend(), || async {
        Err::<&FakeMiddleware, _>("cannot connect to the TrueNAS middleware: refused".to_owned())
    })
    .await;
    assert_eq!(choice.backend, Backend::ZfsCommand);
    assert!(
        choice.to_string().ends_with(
            "middleware fallback failed: cannot connect to the TrueNAS middleware: refused)"
        ),
        "{choice}"
    );
}

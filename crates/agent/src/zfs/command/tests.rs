use std::time::Duration;

use super::*;
use crate::fault::Fault;
use crate::zfs::fake::FakeZfs;
use crate::zfs::parse::PropSource;

const GUID_KEY: &str = "com.dtctoday:device-guid";
const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";

fn ds(s: &str) -> DatasetName {
    DatasetName::parse(s).unwrap()
}
fn key() -> UserPropKey {
    UserPropKey::parse(GUID_KEY).unwrap()
}
fn val(s: &str) -> PropValue {
    PropValue::parse(s).unwrap()
}

#[tokio::test]
async fn lists_pools_and_reads_unset_local_and_inherited() {
    let fake = FakeZfs::new(&["boot-pool", "pool0", "pool1"]);
    fake.set_datasets(&["pool0/child", "pool0/child/grand"]);
    let zfs = fake.backend();
    let pools = zfs.list_pools().await.unwrap();
    let names: Vec<_> = pools.iter().map(PoolName::as_str).collect();
    assert_eq!(names, ["boot-pool", "pool0", "pool1"]);

    let unset = zfs.get(&ds("pool0"), &key()).await.unwrap();
    assert_eq!((unset.value, unset.source), (None, PropSource::None));

    fake.set_prop("pool0", GUID_KEY, GUID);
    let local = zfs.get(&ds("pool0"), &key()).await.unwrap();
    assert_eq!(local.value.as_deref(), Some(GUID));
    assert_eq!(local.source, PropSource::Local);

    let inherited = zfs.get(&ds("pool0/child/grand"), &key()).await.unwrap();
    assert_eq!(inherited.value.as_deref(), Some(GUID));
    assert_eq!(
        inherited.source,
        PropSource::Inherited {
            from: Some("pool0".into())
        }
    );

    fake.set_prop_source("pool0", GUID_KEY, "received");
    let received = zfs.get(&ds("pool0"), &key()).await.unwrap();
    assert_eq!(received.source, PropSource::Received);

    assert_eq!(
        fake.argv()[..2],
        [
            "zpool [list] [-H] [-o] [name]",
            "zfs [get] [-H] [-p] [-o] [name,property,source,value] [com.dtctoday:device-guid] [pool0]",
        ]
    );
}

#[tokio::test]
async fn a_value_with_tabs_is_read_whole() {
    let fake = FakeZfs::new(&["pool0"]);
    fake.set_prop("pool0", GUID_KEY, "a\tb\tc");
    let reading = fake.backend().get(&ds("pool0"), &key()).await.unwrap();
    assert_eq!(reading.value.as_deref(), Some("a\tb\tc"));
}

#[tokio::test]
async fn sets_several_properties_in_one_run_and_inherits() {
    let fake = FakeZfs::new(&["pool0"]);
    let zfs = fake.backend();
    let host = UserPropKey::parse("com.dtctoday:device-host").unwrap();
    zfs.set(
        &ds("pool0"),
        &[(key(), val(GUID)), (host.clone(), val("abc"))],
    )
    .await
    .unwrap();
    assert_eq!(fake.prop("pool0", GUID_KEY).as_deref(), Some(GUID));
    assert_eq!(
        fake.prop("pool0", "com.dtctoday:device-host").as_deref(),
        Some("abc")
    );
    assert_eq!(
        fake.writes(),
        [format!(
            "zfs [set] [{GUID_KEY}={GUID}] [com.dtctoday:device-host=abc] [pool0]"
        )]
    );
    zfs.inherit(&ds("pool0"), &host).await.unwrap();
    assert_eq!(fake.prop("pool0", "com.dtctoday:device-host"), None);
    zfs.set(&ds("pool0"), &[]).await.unwrap();
    assert_eq!(fake.writes().len(), 2, "an empty set runs nothing");
}

#[tokio::test]
async fn zfs_missing() {
    let fake = FakeZfs::new(&["pool0"]);
    let zfs = ZfsCommand::new(CommandConfig {
        zfs: Program::Path(fake.path().join("nope/zfs")),
        zpool: Program::Name("zpool-that-does-not-exist".into()),
        hostid_file: fake.hostid_file(),
        timeout: Duration::from_secs(5),
    });
    let err = zfs.get(&ds("pool0"), &key()).await.unwrap_err();
    assert!(matches!(err, ZfsError::NotInstalled { .. }), "{err:?}");
    assert!(err.to_string().contains("nope/zfs"), "{err}");
    let err = zfs.list_pools().await.unwrap_err();
    assert!(
        err.to_string().contains(
            "`zpool-that-does-not-exist` not found (looked in /usr/sbin:/sbin:/usr/bin:/bin)"
        ),
        "{err}"
    );
    assert!(err.command_unusable());
    assert_eq!(err.fault(), Fault::Nas);
}

#[tokio::test]
async fn a_non_executable_file_is_not_a_program() {
    let fake = FakeZfs::new(&["pool0"]);
    let plain = fake.path().join("plain");
    crate::fs::write_atomic(&plain, b"#!/bin/sh\n", 0o644).unwrap();
    let zfs = ZfsCommand::new(CommandConfig {
        zfs: Program::Path(plain),
        ..CommandConfig::default()
    });
    let err = zfs.get(&ds("pool0"), &key()).await.unwrap_err();
    assert!(matches!(err, ZfsError::NotInstalled { .. }), "{err:?}");
}

#[test]
fn program_specs() {
    assert_eq!(Program::parse("zfs").unwrap(), Program::Name("zfs".into()));
    assert_eq!(
        Program::parse("/usr/sbin/zfs").unwrap(),
        Program::Path("/usr/sbin/zfs".into())
    );
    for bad in ["", "bin/zfs", "./zfs", "zf\ns"] {
        let err = Program::parse(bad).unwrap_err();
        assert!(err.to_string().starts_with("program `"), "{err}");
    }
}

#[tokio::test]
async fn the_callers_environment_and_path_are_not_passed_on() {
    // The fake records nothing about env, so check through a one-off script.
    let fake = FakeZfs::new(&["pool0"]);
    let script = fake.path().join("envdump");
    crate::fs::write_atomic(
        &script,
        b"#!/bin/sh\nenv | sort > \"$(dirname \"$0\")/env.txt\"\n",
        0o755,
    )
    .unwrap();
    let zfs = ZfsCommand::new(CommandConfig {
        zpool: Program::Path(script),
        ..CommandConfig::default()
    });
    zfs.list_pools().await.unwrap();
    let env = crate::fs::read_to_string(&fake.path().join("env.txt")).unwrap();
    let names: Vec<_> = env
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .filter(|n| !matches!(*n, "PWD" | "SHLVL" | "_"))
        .collect();
    assert_eq!(names, ["LC_ALL", "PATH"], "{env}");
    assert!(env.contains("PATH=/usr/sbin:/sbin:/usr/bin:/bin\n"));
    assert!(env.contains("LC_ALL=C\n"));
}

#[tokio::test]
async fn permission_denied_as_zfs_prints_it() {
    let fake = FakeZfs::new(&["pool0"]);
    fake.fail_op("zfs", "set", "eperm");
    let zfs = fake.backend();
    let err = zfs
        .set(&ds("pool0"), &[(key(), val(GUID))])
        .await
        .unwrap_err();
    assert!(matches!(err, ZfsError::PermissionDenied { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "`zfs set` on pool0 (com.dtctoday:device-guid): permission denied (cannot set property for 'pool0': permission denied)"
    );
    fake.fail_op("zfs", "inherit", "eperm");
    let err = zfs.inherit(&ds("pool0"), &key()).await.unwrap_err();
    assert!(matches!(err, ZfsError::PermissionDenied { .. }), "{err:?}");
    assert_eq!(fake.prop("pool0", GUID_KEY), None);

    fake.clear_failures();
    fake.fail("eperm-root");
    let err = zfs.list_pools().await.unwrap_err();
    assert!(matches!(err, ZfsError::PermissionDenied { .. }), "{err:?}");
    assert!(err.command_unusable());
}

#[tokio::test]
async fn no_such_dataset() {
    let fake = FakeZfs::new(&["pool0"]);
    let zfs = fake.backend();
    let err = zfs.get(&ds("pool9"), &key()).await.unwrap_err();
    assert!(matches!(err, ZfsError::NoSuchDataset { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "`zfs get`: no such dataset pool9 (com.dtctoday:device-guid)"
    );
    let err = zfs
        .set(&ds("pool0/nope"), &[(key(), val(GUID))])
        .await
        .unwrap_err();
    assert!(matches!(err, ZfsError::NoSuchDataset { .. }), "{err:?}");
    assert!(!err.command_unusable());
}

#[tokio::test]
async fn zfs_not_usable_here() {
    let fake = FakeZfs::new(&["pool0"]);
    fake.fail("notusable");
    let err = fake.backend().list_pools().await.unwrap_err();
    assert!(matches!(err, ZfsError::NotUsable { .. }), "{err:?}");
    assert!(err.command_unusable());
    assert!(
        err.to_string()
            .contains("/dev/zfs and /proc/self/mounts are required."),
        "{err}"
    );
}

#[tokio::test]
async fn weird_output_is_refused() {
    let fake = FakeZfs::new(&["pool0"]);
    let zfs = fake.backend();
    for (mode, expected) in [
        (
            "garbage",
            "expected 4 tab-separated fields, got `hello world`",
        ),
        ("empty", "empty answer"),
        ("wrongname", "the answer is about `other`, not `pool0`"),
    ] {
        fake.fail(mode);
        let err = zfs.get(&ds("pool0"), &key()).await.unwrap_err();
        assert!(
            matches!(err, ZfsError::UnexpectedOutput { .. }),
            "{mode}: {err:?}"
        );
        assert!(err.to_string().contains(expected), "{mode}: {err}");
        assert_eq!(err.fault(), Fault::Bug);
    }
    fake.fail("columns");
    let err = zfs.list_pools().await.unwrap_err();
    assert!(matches!(err, ZfsError::UnexpectedOutput { .. }), "{err:?}");
    assert!(err.to_string().contains("not a pool name line"), "{err}");
}

#[tokio::test]
async fn other_failures_carry_the_status_and_a_short_excerpt() {
    let fake = FakeZfs::new(&["pool0"]);
    let zfs = fake.backend();
    fake.fail("crash");
    let err = zfs.get(&ds("pool0"), &key()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "`zfs get` on pool0 (com.dtctoday:device-guid) failed (exit code 3): internal error: Bad file descriptor"
    );
    fake.fail("toolong");
    let err = zfs
        .set(&ds("pool0"), &[(key(), val(GUID))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("(exit code 255)"), "{err}");
    fake.fail("signal");
    let err = zfs.get(&ds("pool0"), &key()).await.unwrap_err();
    assert!(err.to_string().contains("killed by signal 9"), "{err}");
    fake.fail("noise");
    let err = zfs.get(&ds("pool0"), &key()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.len() < 400, "{}", text.len());
    assert!(!text.contains('\n'), "{text}");
}

#[tokio::test]
async fn a_hanging_zfs_is_killed_at_the_deadline() {
    let fake = FakeZfs::new(&["pool0"]);
    fake.fail("sleep");
    let zfs = fake.backend_with_timeout(Duration::from_millis(300));
    let err = zfs.get(&ds("pool0"), &key()).await.unwrap_err();
    assert!(matches!(err, ZfsError::Timeout { .. }), "{err:?}");
    assert_eq!(err.fault(), Fault::Transient);
    assert!(
        err.to_string().ends_with("timed out after 300ms (killed)"),
        "{err}"
    );
    // The whole process group went: the script and its own child (`sleep 30`).
    let pgid: i32 = crate::fs::read_to_string(&fake.path().join("sleeper.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let group = nix::unistd::Pid::from_raw(pgid);
    let mut alive = true;
    for _ in 0..100 {
        alive = nix::sys::signal::killpg(group, None).is_ok();
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive, "process group {pgid} survived the timeout");
}

#[tokio::test]
async fn host_id_comes_from_the_hostid_file() {
    let fake = FakeZfs::new(&["pool0"]);
    let zfs = fake.backend();
    assert_eq!(
        zfs.host_id().await.unwrap().unwrap().as_str(),
        "8331920580b61d5d662e036c0d22d25554340cb03dac52a08aff8076d3e675bc"
    );
    fake.write_hostid(b"");
    assert_eq!(zfs.host_id().await.unwrap(), None);
    std::fs::remove_file(fake.hostid_file()).unwrap();
    assert_eq!(zfs.host_id().await.unwrap(), None);
}

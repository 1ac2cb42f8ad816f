//! Central as a service on its database: wake-ups across processes and instances, report
//! retention while serving, the first-start import of the old data directory, one
//! at-rest key per database, the signing key in the ETag, and the database URL never
//! shown.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use serde_json::Value;
use truenas_agent::central::report::Report;
use truenas_central::db::{StoredReport, token_hash};
use truenas_central::{Retention, ServerOptions};

use crate::central_fixture::{
    Central, DATABASE_URL_FILE, DEVICE, DataDir, Engine, OldLayout, TOKEN, database_args, document,
    engine, held, secrets_record, signing_key, with_engine,
};

fn central_bin() -> std::path::PathBuf {
    crate::support::bin(crate::support::CENTRAL)
}

/// `truenas-central ARGS` (on the database of the `--dir` fixture), its exit code and
/// stdout + stderr.
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(central_bin())
        .args(database_args(args))
        .env_remove("TRUENAS_AGENT_CONFIG")
        .env_remove(truenas_central::cli::DATABASE_ENV)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(400))
        .build()
        .unwrap()
}

/// `GET /v1/config` with the test token: status, ETag, and the revision of the signed
/// document (when one came).
async fn get_config(
    http: &reqwest::Client,
    base: &str,
    etag: Option<&str>,
    wait: Option<u64>,
) -> (u16, Option<String>, Option<u64>) {
    let url = match wait {
        Some(wait) => format!("{base}v1/config?wait={wait}"),
        None => format!("{base}v1/config"),
    };
    let mut request = http.get(url).bearer_auth(TOKEN);
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.bytes().await.unwrap();
    let revision = (status == 200).then(|| {
        let envelope: Value = serde_json::from_slice(&body).unwrap();
        let payload = base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap();
        let doc: Value = serde_json::from_slice(&payload).unwrap();
        doc["revision"].as_u64().unwrap()
    });
    (status, etag, revision)
}

fn write_doc(dir: &Path, revision: u64) -> std::path::PathBuf {
    let path = dir.join(format!("doc-{revision}.json"));
    std::fs::write(&path, serde_json::to_vec(&document(revision)).unwrap()).unwrap();
    path
}

/// A long-poll held by the server wakes when `truenas-central publish` — another process
/// — publishes: on SQLite the server notices the table change, on PostgreSQL the NOTIFY.
/// (Before the database, the file store's held polls watched the file's metadata.)
async fn a_publish_by_another_process_wakes_a_held_long_poll() {
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    central.publish(DEVICE, &document(1)).await;
    let http = http();
    let (status, etag, revision) = get_config(&http, &central.url(), None, None).await;
    assert_eq!((status, revision), (200, Some(1)));
    let etag = etag.unwrap();
    let held_poll = tokio::spawn({
        let http = http.clone();
        let url = central.url();
        async move { get_config(&http, &url, Some(&etag), Some(300)).await }
    });
    // Until the server holds it (a watcher is alive), bounded.
    for _ in 0..3000 {
        if central.db().document_watchers() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(central.db().document_watchers(), 1, "the request is held");
    let work = tempfile::tempdir().unwrap();
    let doc = write_doc(work.path(), 2);
    let (code, out, err) = cli(&[
        "publish",
        "--dir",
        s(central.dir.path()),
        "--device",
        DEVICE,
        "--document",
        s(&doc),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (status, _, revision) = tokio::time::timeout(Duration::from_secs(120), held_poll)
        .await
        .expect("the held request is answered long before its 300 s wait ends")
        .unwrap();
    assert_eq!((status, revision), (200, Some(2)));
    central.stop().await;
}

/// Two `truenas-central serve` processes on one PostgreSQL: a long-poll held by instance A
/// gets a document published through instance B's configuration (another process) within
/// the long-poll, and B serves and stores what A does.
#[tokio::test]
async fn two_serve_processes_on_one_postgres_wake_each_others_long_polls() {
    with_engine(Engine::Postgres, async {
        let a = DataDir::new().await;
        let b = a.another_instance();
        std::fs::copy(
            a.path().join(DATABASE_URL_FILE),
            b.path().join(DATABASE_URL_FILE),
        )
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let keys = work.path().join("keys");
        let (code, public, err) = cli(&["keygen", "--out", s(&keys)]);
        assert_eq!(code, 0, "{err}");
        let token = work.path().join("token");
        truenas_agent::fs::write_atomic(&token, format!("{TOKEN}\n").as_bytes(), 0o600).unwrap();
        let (code, out, err) = cli(&[
            "register",
            "--dir",
            s(a.path()),
            "--name",
            DEVICE,
            "--token-file",
            s(&token),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let doc1 = write_doc(work.path(), 1);
        let (code, out, err) = cli(&[
            "publish",
            "--dir",
            s(a.path()),
            "--device",
            DEVICE,
            "--document",
            s(&doc1),
        ]);
        assert_eq!(code, 0, "{out}{err}");

        let serve = |dir: &DataDir| {
            let mut child = Command::new(central_bin())
                .args(database_args(&[
                    "serve",
                    "--dir",
                    s(dir.path()),
                    "--listen",
                    "127.0.0.1:0",
                    "--key",
                    s(&keys.join("signing.key")),
                    "--log",
                    "info,truenas_central=debug",
                ]))
                .env_remove(truenas_central::cli::DATABASE_ENV)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut first = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut first)
                .unwrap();
            let url = first
                .trim()
                .strip_prefix("central server listening on ")
                .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
                .to_owned();
            // Its log, line by line, on a thread of its own.
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            let stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            (KillOnDrop(child), format!("{url}/"), rx)
        };
        let (_a_proc, a_url, a_log) = serve(&a);
        let (_b_proc, b_url, _b_log) = serve(&b);

        let http = http();
        let (status, etag, revision) = get_config(&http, &a_url, None, None).await;
        assert_eq!((status, revision), (200, Some(1)));
        let etag = etag.unwrap();
        let held_poll = tokio::spawn({
            let http = http.clone();
            let url = a_url.clone();
            let etag = etag.clone();
            async move { get_config(&http, &url, Some(&etag), Some(300)).await }
        });
        // Until A says it holds the request (bounded by the log reader's timeout).
        let holds = tokio::task::spawn_blocking(move || {
            while let Ok(line) = a_log.recv_timeout(Duration::from_secs(120)) {
                if line.contains("holding the request until the document changes") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap();
        assert!(holds, "instance A holds the request");
        let doc2 = write_doc(work.path(), 2);
        let (code, out, err) = cli(&[
            "publish",
            "--dir",
            s(b.path()),
            "--device",
            DEVICE,
            "--document",
            s(&doc2),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let (status, new_etag, revision) =
            tokio::time::timeout(Duration::from_secs(120), held_poll)
                .await
                .expect("A answers the held request long before its 300 s wait ends")
                .unwrap();
        assert_eq!((status, revision), (200, Some(2)));
        // B serves the same document under the same ETag (same key, same document).
        let (status, b_etag, revision) = get_config(&http, &b_url, None, None).await;
        assert_eq!((status, revision), (200, Some(2)));
        assert_eq!(b_etag, new_etag);
        // A report delivered to B is seen through A's configuration.
        let mut report = Report::new(Utc::now());
        report.device.guid = Some("9babab19-acc0-4587-aa05-ccd8103a1148".into());
        let response = http
            .post(format!("{b_url}v1/reports"))
            .bearer_auth(TOKEN)
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        let (code, out, err) = cli(&["devices", "--dir", s(a.path()), "--json"]);
        assert_eq!(code, 0, "{err}");
        let devices: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(devices[0]["guid"], "9babab19-acc0-4587-aa05-ccd8103a1148");
        assert_eq!(devices[0]["published_revision"], 2);
        assert!(public.starts_with("ed25519:"));
    })
    .await;
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn aged_report(days: i64) -> Report {
    Report::new(Utc::now() - chrono::Duration::days(days))
}

/// Report retention runs while serving: reports older than the retention are deleted by
/// the server's periodic task (a short period here), each device's latest is kept, and
/// the server goes on answering.
async fn report_retention_runs_while_serving() {
    let data = DataDir::new().await;
    let db = data.open().await;
    held(db.register("nas-01", &token_hash(TOKEN)))
        .await
        .unwrap();
    held(db.register("nas-02", &token_hash("other-token")))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let options = ServerOptions {
        retention: Retention {
            days: 90,
            every: Duration::from_millis(50),
        },
        hold_clock: true,
        ..ServerOptions::new(signing_key(1))
    };
    let server = tokio::spawn(truenas_central::serve(
        listener,
        db.clone(),
        options,
        shutdown.clone(),
    ));
    // Stored while the server runs: old ones (as if kept from long ago) and new ones.
    let store = |device: &'static str, report: Report| {
        let db = db.clone();
        async move {
            let at = report.created_at;
            held(db.accept_report(device, &report, at)).await.unwrap();
            report.report_id
        }
    };
    let old_1 = store("nas-01", aged_report(200)).await;
    let old_2 = store("nas-01", aged_report(120)).await;
    let fresh = store("nas-01", aged_report(10)).await;
    let only_old = store("nas-02", aged_report(300)).await;
    let older = store("nas-02", aged_report(400)).await;
    let mut left = Vec::new();
    for _ in 0..6000 {
        left = [
            held(db.report_ids("nas-01")).await.unwrap(),
            held(db.report_ids("nas-02")).await.unwrap(),
        ]
        .concat();
        if left.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        left,
        [fresh, only_old],
        "kept: the recent report, and each device's latest however old"
    );
    assert!(!left.contains(&old_1) && !left.contains(&old_2) && !left.contains(&older));
    let state = held(db.device_state("nas-01")).await.unwrap().unwrap();
    assert_eq!(state.report_count, 3, "counters are not rewritten");
    // Still serving.
    let (status, _, _) = get_config(&http(), &format!("http://{addr}/"), None, None).await;
    assert_eq!(status, 204, "no document yet, but an answer");
    shutdown.cancel();
    server.await.unwrap().unwrap();
    held(db.close()).await;
}

/// The first command on a data directory of the old file layout imports it (devices,
/// token hashes, documents, provisioning secrets, reports, disabled flags) and leaves the
/// files as they are; later starts do not import again (a device enabled since stays
/// enabled).
async fn the_first_start_imports_the_old_data_directory_once() {
    let work = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir_in(work.path()).unwrap();
    let old = OldLayout::new(dir.path(), &work.path().join("keys/secrets.key"));
    old.register("nas-01", TOKEN);
    old.register("nas-02", "another-token");
    old.publish("nas-01", &document(3));
    old.secrets("nas-01", &secrets_record("nas-01"));
    old.disable("nas-02");
    for days in [2, 1] {
        let mut report = aged_report(days);
        report.device.guid = Some(format!("9babab19-acc0-4587-aa05-ccd8103a114{days}"));
        report.agent.dropped_reports = u64::try_from(days).unwrap();
        old.append_report(
            "nas-01",
            &StoredReport {
                received_at: report.created_at,
                report,
                dropped: None,
            },
        );
    }
    let files = |d: &Path| {
        let mut all = Vec::new();
        for device in ["nas-01", "nas-02"] {
            for file in std::fs::read_dir(d.join("devices").join(device)).unwrap() {
                let path = file.unwrap().path();
                all.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
        all.sort();
        all
    };
    let before = files(dir.path());
    let data = DataDir::adopt_as_is(engine(), dir).await;
    let path = data.path().to_owned();

    let (code, out, err) = cli(&["devices", "--dir", s(&path), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("imported the file data directory into the database"),
        "{err}"
    );
    let devices: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(devices[0]["name"], "nas-01");
    assert_eq!(devices[0]["published_revision"], 3);
    assert_eq!(devices[0]["reports_received"], 2);
    assert_eq!(devices[0]["dropped_reports_total"], 3);
    assert_eq!(devices[0]["guid"], "9babab19-acc0-4587-aa05-ccd8103a1141");
    assert_eq!(devices[1]["name"], "nas-02");
    assert_eq!(devices[1]["disabled"], true);
    assert_eq!(files(&path), before, "the old files are left as they are");

    // The provisioning secrets came along (escrow opens them from the database).
    let (code, out, err) = cli(&[
        "escrow",
        "--dir",
        s(&path),
        "--device",
        "nas-01",
        "--show-secrets",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let escrow: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        escrow["backup"]["b2_application_key"],
        "CANARY-B2-APPKEY-7f3a9c"
    );
    // Once: enabling nas-02 in the database sticks across later starts.
    let (code, _, err) = cli(&["enable", "--dir", s(&path), "--device", "nas-02"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&["devices", "--dir", s(&path), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("imported the file data directory"), "{err}");
    let devices: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        devices[1]["disabled"], false,
        "not disabled again by a re-import"
    );
    // The server takes the imported token and document.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let central = Central::start_on(listener, data, signing_key(1)).await;
    let (status, _, revision) = get_config(&http(), &central.url(), None, None).await;
    assert_eq!((status, revision), (200, Some(3)));
    central.assert_no_canary_in_data();
    central.stop().await;
}

/// One database, one at-rest key: a second instance bound to another key, or not bound
/// at all, is refused before it seals anything or creates a key.
#[tokio::test]
async fn a_second_instance_with_another_at_rest_key_is_refused() {
    with_engine(Engine::Postgres, async {
        let a = DataDir::new().await;
        let db = a.open().await;
        held(db.register("nas-01", &token_hash(TOKEN)))
            .await
            .unwrap();
        held(db.publish("nas-01", &serde_json::to_vec(&document(1)).unwrap(), false))
            .await
            .unwrap();
        held(db.close()).await;
        // Bound to another key.
        let other = tempfile::tempdir().unwrap();
        truenas_central::at_rest::bind(other.path(), &other.path().join("k2"), false).unwrap();
        let err = held(truenas_central::datastore::open(other.path(), &a.database))
            .await
            .unwrap_err();
        let text = truenas_agent::fault::error_chain(&err);
        assert!(
            text.contains("holds values sealed with at-rest key"),
            "{text}"
        );
        // Not bound: refused, and no key file is made.
        let unbound = tempfile::tempdir().unwrap();
        let err = held(truenas_central::datastore::open(
            &unbound.path().join("data"),
            &a.database,
        ))
        .await
        .unwrap_err();
        let text = truenas_agent::fault::error_chain(&err);
        assert!(text.contains("is not bound to an at-rest key"), "{text}");
        assert!(!truenas_central::at_rest::default_key_file(&unbound.path().join("data")).exists());
        // The first instance still opens everything.
        let db = a.open().await;
        let doc = held(db.document("nas-01")).await.unwrap().unwrap();
        assert_eq!(doc.revision, 1);
        held(db.close()).await;
    })
    .await;
}

/// The ETag names the signing key: after a switch to another key the same document
/// has another ETag, so agents fetch it signed with the new key instead of a 304.
async fn the_etag_changes_with_the_signing_key() {
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    central.publish(DEVICE, &document(1)).await;
    let http = http();
    let (_, first, _) = get_config(&http, &central.url(), None, None).await;
    let first = first.unwrap();
    assert!(first.starts_with("\"r1-"), "{first}");
    let (status, _, _) = get_config(&http, &central.url(), Some(&first), None).await;
    assert_eq!(status, 304);
    let (dir, addr, _) = central.stop().await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let central = Central::start_on(listener, dir, signing_key(2)).await;
    let (status, second, revision) = get_config(&http, &central.url(), Some(&first), None).await;
    assert_eq!(
        (status, revision),
        (200, Some(1)),
        "not a 304 under the new key"
    );
    let second = second.unwrap();
    assert_ne!(second, first);
    assert!(second.starts_with("\"r1-"), "{second}");
    central.stop().await;
}

/// The PostgreSQL URL (which may hold a password) never shows: not in errors, not in
/// `--help`, not in logs at any level, whether given on the command line, in the
/// environment or in a file.
#[test]
fn the_database_url_never_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let url = "postgres://central:CANARY-API-KEY-0a7d62@127.0.0.1:1/central";
    let url_file = tmp.path().join("db-url");
    truenas_agent::fs::write_atomic(&url_file, format!("{url}\n").as_bytes(), 0o600).unwrap();
    let run = |args: &[&str], env: Option<&str>| {
        let mut command = Command::new(central_bin());
        command
            .args(args)
            .env_remove("TRUENAS_AGENT_CONFIG")
            .env_remove(truenas_central::cli::DATABASE_ENV);
        if let Some(env) = env {
            command.env(truenas_central::cli::DATABASE_ENV, env);
        }
        let out = command.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    for (args, env) in [
        (vec!["devices", "--dir", s(&dir), "--database", url], None),
        (
            vec!["--log", "trace", "devices", "--dir", s(&dir)],
            Some(url),
        ),
        (
            vec!["devices", "--dir", s(&dir), "--database-file", s(&url_file)],
            None,
        ),
        (
            vec!["devices", "--dir", s(&dir), "--database-file", s(&url_file)],
            Some(url),
        ),
        (
            vec![
                "devices",
                "--dir",
                s(&dir),
                "--database",
                "mysql://u:CANARY-API-KEY-0a7d62@h/d",
            ],
            None,
        ),
    ] {
        let (code, shown) = run(&args, env);
        assert_ne!(code, 0, "{args:?}: {shown}");
        crate::support::assert_no_canary(&format!("{args:?}"), &shown);
        assert!(
            shown.contains("PostgreSQL") || shown.contains("--database"),
            "{args:?}: the error says what is wrong: {shown}"
        );
    }
    let (code, shown) = run(&["serve", "--help"], Some(url));
    assert_eq!(code, 0);
    assert!(shown.contains("TRUENAS_CENTRAL_DATABASE"), "{shown}");
    crate::support::assert_no_canary("serve --help", &shown);
    // No SQLite file was made by any of them: they never got that far.
    assert!(!dir.join("central.db").exists());
    let (code, shown) = run(
        &[
            "serve",
            "--dir",
            s(&dir),
            "--listen",
            "127.0.0.1:0",
            "--key",
            "/x",
            "--retention-days",
            "0",
        ],
        None,
    );
    assert_eq!(code, 2, "{shown}");
    assert!(shown.contains("--retention-days"), "{shown}");
}

on_both_engines!(
    #[tokio::test]
    a_publish_by_another_process_wakes_a_held_long_poll,
    report_retention_runs_while_serving,
    the_first_start_imports_the_old_data_directory_once,
    the_etag_changes_with_the_signing_key,
);

//! `truenas-central …` as an operator runs it, and TLS to central.

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use truenas_agent::central::client::ClientError;
use truenas_agent::central::dsse::TrustedKey;
use truenas_agent::central::report::{CheckStatus, ChecklistItem, Report};
use truenas_agent::central::{FetchError, Fetched};

use crate::central_fixture::{Agent, DataDir, database_args, document, signing_key};

fn central_bin() -> std::path::PathBuf {
    crate::support::bin(crate::support::CENTRAL)
}

/// `truenas-central ARGS`, on the database of the data directory `--dir` names (see
/// `database_args`).
fn central_cmd(args: &[&str]) -> Output {
    Command::new(central_bin())
        .args(database_args(args))
        .env_remove("TRUENAS_AGENT_CONFIG")
        .env_remove(truenas_central::cli::DATABASE_ENV)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_writes_a_private_key_and_prints_the_public_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = central_cmd(&["keygen", "--out", s(tmp.path())]);
    assert!(out.status.success(), "{}", text(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    let public = TrustedKey::parse(line.trim()).unwrap();
    let key = truenas_central::keys::read_signing_key(&tmp.path().join("signing.key")).unwrap();
    assert_eq!(TrustedKey::from_signing_key(&key), public);
    let mode = std::fs::metadata(tmp.path().join("signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = central_cmd(&["keygen", "--out", s(tmp.path())]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("refusing to overwrite"),
        "{}",
        text(&again)
    );
}

async fn register_publish_and_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = DataDir::new().await;
    let data = data_dir.path().to_owned();
    let token = tmp.path().join("nas-01.token");
    let out = central_cmd(&[
        "register",
        "--dir",
        s(&data),
        "--name",
        "nas-01",
        "--token-out",
        s(&token),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let secret = std::fs::read_to_string(&token).unwrap();
    assert!(secret.trim().len() >= 40);
    assert!(
        !text(&out).contains(secret.trim()),
        "the token is never printed"
    );
    assert_eq!(
        std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Only the hash is stored.
    let dump = data_dir.logical_dump().await;
    assert_eq!(
        dump["device_tokens"],
        [format!(
            "{}|nas-01",
            truenas_central::db::token_hash(secret.trim())
        )]
    );
    let raw = String::from_utf8_lossy(&data_dir.raw_dump()).into_owned();
    assert!(!raw.contains(secret.trim()), "the token is not stored");

    let doc = tmp.path().join("doc.json");
    std::fs::write(&doc, serde_json::to_vec(&document(3)).unwrap()).unwrap();
    let out = central_cmd(&[
        "publish",
        "--dir",
        s(&data),
        "--device",
        "nas-01",
        "--document",
        s(&doc),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("published revision 3 for device nas-01"));
    std::fs::write(&doc, serde_json::to_vec(&document(2)).unwrap()).unwrap();
    let out = central_cmd(&[
        "publish",
        "--dir",
        s(&data),
        "--device",
        "nas-01",
        "--document",
        s(&doc),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("revision 2 is not higher than the published revision 3"),
        "{}",
        text(&out)
    );
    crate::support::assert_no_canary("publish output", &text(&out));

    let out = central_cmd(&["devices", "--dir", s(&data), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let devices: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(devices[0]["name"], "nas-01");
    assert_eq!(devices[0]["published_revision"], 3);
    assert_eq!(devices[0]["last_report_at"], serde_json::Value::Null);
    let out = central_cmd(&["devices", "--dir", s(&data)]);
    assert!(text(&out).contains("last report: never"), "{}", text(&out));
    crate::support::assert_no_canary("devices output", &text(&out));

    let out = central_cmd(&["disable", "--dir", s(&data), "--device", "nas-01"]);
    assert!(out.status.success());
    let out = central_cmd(&["devices", "--dir", s(&data)]);
    assert!(text(&out).contains("nas-01 [disabled]"), "{}", text(&out));
}

/// Issue 13.6 / 13.5: `truenas-central publish` runs the agent's own validation and refuses what
/// the agent would refuse, with the agent's messages, and publishes nothing.
async fn publish_refuses_what_the_agent_would_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = DataDir::new().await;
    let data = data_dir.path().to_owned();
    let out = central_cmd(&[
        "register",
        "--dir",
        s(&data),
        "--name",
        "nas-01",
        "--token-out",
        s(&tmp.path().join("t")),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let publish = |doc: &serde_json::Value, force: bool| {
        let path = tmp.path().join("doc.json");
        std::fs::write(&path, serde_json::to_vec(doc).unwrap()).unwrap();
        let mut args = vec![
            "publish",
            "--dir",
            s(&data),
            "--device",
            "nas-01",
            "--document",
            s(&path),
        ];
        if force {
            args.push("--force");
        }
        central_cmd(&args)
    };
    let mut snmp = document(1);
    snmp["snmp"]["auth_password"] = serde_json::json!("CANARY-SNMP\"AUTH-61aa07");
    let mut huge = document(9_223_372_036_854_775_807);
    huge["snmp"]["privacy_passphrase"] = serde_json::json!("CANARY-SNMP-PRIV c4e2f8");
    // Refused by every agent version: an unknown key (a typo) and a bad location UUID.
    let mut typo = document(1);
    typo["cloud_sync"] = serde_json::json!({"chunk_size_mb": 96});
    typo["device"]["location_uuid"] = serde_json::json!("not-a-uuid");
    for (doc, paths) in [
        (
            &typo,
            &["cloud_sync.chunk_size_mb", "device.location_uuid"][..],
        ),
        (&snmp, &["snmp.auth_password"][..]),
        (&huge, &["revision", "snmp.privacy_passphrase"][..]),
    ] {
        let out = publish(doc, true);
        assert!(!out.status.success(), "{}", text(&out));
        let shown = text(&out);
        assert!(
            shown.contains("the agent would refuse this document"),
            "{shown}"
        );
        // The same field errors as the agent's own validation gives.
        let agent = truenas_agent::desired::parse(&serde_json::to_vec(doc).unwrap()).unwrap_err();
        let errors = agent.field_errors();
        assert_eq!(
            errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            paths
        );
        for e in errors {
            assert!(shown.contains(&e.to_string()), "{e} missing from: {shown}");
        }
        crate::support::assert_no_canary("publish output", &shown);
        assert!(
            data_dir.logical_dump().await["documents"].is_empty(),
            "nothing was published"
        );
    }
    let out = publish(&document(1), false);
    assert!(out.status.success(), "{}", text(&out));
}

/// Kills the server it holds on drop (a process this test started).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve_end_to_end_with_the_cli_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = DataDir::new().await;
    let data = data_dir.path().to_owned();
    let keys = tmp.path().join("keys");
    let out = central_cmd(&["keygen", "--out", s(&keys)]);
    let public = String::from_utf8(out.stdout).unwrap();
    let agent = Agent::new("http://127.0.0.1:9/", &[], 0, false);
    let out = central_cmd(&[
        "register",
        "--dir",
        s(&data),
        "--name",
        "nas-01",
        "--token-file",
        s(&agent.token_file()),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let doc = tmp.path().join("doc.json");
    std::fs::write(&doc, serde_json::to_vec(&document(1)).unwrap()).unwrap();
    assert!(
        central_cmd(&[
            "publish",
            "--dir",
            s(&data),
            "--device",
            "nas-01",
            "--document",
            s(&doc)
        ])
        .status
        .success()
    );

    let mut child = Child(
        Command::new(central_bin())
            .args(database_args(&[
                "serve",
                "--dir",
                s(&data),
                "--listen",
                "127.0.0.1:0",
                "--key",
                s(&keys.join("signing.key")),
            ]))
            .env_remove(truenas_central::cli::DATABASE_ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("central server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();

    // The agent trusts the key `keygen` printed.
    let trusted = TrustedKey::parse(public.trim()).unwrap();
    let mut config = agent.config.clone();
    let central = config.central.as_mut().unwrap();
    central.url = format!("{url}/").parse().unwrap();
    central.trust.keys = vec![trusted];
    let mut session =
        truenas_agent::central::open(config.central.as_ref().unwrap(), agent.state_dir()).unwrap();
    let poll = session.config.poll().await;
    let Ok(Fetched::New(doc)) = poll.result else {
        panic!("{:?}", poll.result)
    };
    assert_eq!(doc.revision, 1);
    session.config.mark_applied(&doc).unwrap();

    let mut report = Report::new(chrono::Utc::now());
    report.device.guid = Some("9babab19-acc0-4587-aa05-ccd8103a1148".into());
    report.config.revision = Some(1);
    report.config.state = truenas_agent::central::report::ConfigState::Applied;
    report.checklist.push(ChecklistItem {
        id: "snmp.v3_only".into(),
        title: "SNMPv3 only".into(),
        status: CheckStatus::Fail,
        detail: "community string set".into(),
    });
    session.outbox.enqueue(&report, &[]).unwrap();
    assert_eq!(session.outbox.deliver().await.delivered, 1);

    let out = central_cmd(&["devices", "--dir", s(&data)]);
    let shown = text(&out);
    assert!(
        shown.contains("guid: 9babab19-acc0-4587-aa05-ccd8103a1148"),
        "{shown}"
    );
    assert!(
        shown.contains("config: revision 1 applied (published 1)"),
        "{shown}"
    );
    assert!(shown.contains("failing checklist: snmp.v3_only"), "{shown}");

    // SIGTERM: a clean exit.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    crate::central_fixture::assert_no_canary_outside_documents(&data);
    crate::support::assert_no_canary(
        "central's data",
        &String::from_utf8_lossy(&data_dir.raw_dump()),
    );
}

#[test]
fn serve_refuses_a_key_file_others_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let out = central_cmd(&["keygen", "--out", s(tmp.path())]);
    assert!(out.status.success());
    let key = tmp.path().join("signing.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = central_cmd(&[
        "serve",
        "--dir",
        s(tmp.path()),
        "--listen",
        "127.0.0.1:0",
        "--key",
        s(&key),
    ]);
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(shown.contains("mode 0640"), "{shown}");
    assert!(
        shown.contains(&format!("chmod 600 {}", key.display())),
        "{shown}"
    );
}

/// A one-shot HTTPS server answering every request with 204, using `leaf`.
async fn tls_server(
    cert: rustls_pki_types::CertificateDer<'static>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_verifies_against_the_extra_ca_and_refuses_unknown_issuers() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let addr = tls_server(
        leaf.der().clone(),
        rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .await;
    let url = format!("https://{addr}/");

    // Unknown issuer: a transport (TLS) error, nothing fetched.
    let agent = Agent::new(&url, &[&signing_key(1)], 0, false);
    let err = agent.session().config.poll().await.result.unwrap_err();
    assert!(
        matches!(err, FetchError::Request(ClientError::Transport { .. })),
        "{err:?}"
    );

    // With the CA in central.ca_file: verified, and the server's 204 comes through.
    let ca_file = agent.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let mut config = agent.config.central.clone().unwrap();
    config.ca_file = Some(ca_file.clone());
    let mut session = truenas_agent::central::open(&config, agent.state_dir()).unwrap();
    let poll = session.config.poll().await;
    assert!(
        matches!(poll.result, Ok(Fetched::NoDocument)),
        "{:?}",
        poll.result
    );

    // A CA file without a certificate is an operator error naming the file.
    std::fs::write(&ca_file, "not a certificate").unwrap();
    let err = truenas_agent::central::open(&config, agent.state_dir()).unwrap_err();
    let shown = truenas_agent::fault::error_chain(&err);
    assert!(shown.contains("central.ca_file"), "{shown}");
    assert_eq!(err.fault(), truenas_agent::fault::Fault::Operator);
}

/// `POST /v1/reports` over a plain socket; the HTTP status.
async fn post_report(addr: std::net::SocketAddr, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/reports HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        crate::central_fixture::TOKEN,
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// `truenas-central devices` showed only the newest report's `agent.dropped_reports`, so losses
/// announced by any earlier report were hidden. It now shows the total over every stored
/// report (counted once per report id, and across a server restart) in text and JSON.
async fn devices_show_every_report_lost_before_delivery() {
    use crate::central_fixture::{Central, DEVICE, TOKEN};
    let report = |dropped: u64| {
        let mut r = Report::new(chrono::Utc::now());
        r.agent.dropped_reports = dropped;
        r
    };
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    let first = serde_json::to_vec(&report(3)).unwrap();
    assert_eq!(post_report(central.addr, &first).await, 202);
    assert_eq!(post_report(central.addr, &first).await, 200, "a duplicate");
    assert_eq!(
        post_report(central.addr, &serde_json::to_vec(&report(0)).unwrap()).await,
        202
    );
    // A restart: the tally is rebuilt from the stored reports.
    let (dir, addr, key) = central.stop().await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let central = Central::start_on(listener, dir, key).await;
    for dropped in [2, 0] {
        let body = serde_json::to_vec(&report(dropped)).unwrap();
        assert_eq!(post_report(central.addr, &body).await, 202);
    }
    let data = central.dir.path().to_owned();

    let out = central_cmd(&["devices", "--dir", s(&data), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let devices: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        devices[0]["dropped_reports"], 0,
        "the newest report announced none"
    );
    assert_eq!(devices[0]["dropped_reports_total"], 5, "{devices:#}");
    assert!(devices[0]["last_drop_at"].is_string(), "{devices:#}");
    let out = central_cmd(&["devices", "--dir", s(&data)]);
    let shown = text(&out);
    assert!(
        shown.contains("reports lost before delivery: 5 (spool full or damaged on the NAS)"),
        "{shown}"
    );
    central.stop().await;
}

on_both_engines!(
    #[tokio::test]
    register_publish_and_devices,
    publish_refuses_what_the_agent_would_refuse,
    serve_end_to_end_with_the_cli_tools,
    devices_show_every_report_lost_before_delivery,
);

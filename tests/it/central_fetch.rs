//! `GET /v1/config` end to end over loopback sockets: the agent's fetch session against
//! the reference server (and a scripted server for answers it never gives).

use std::time::Duration;

use truenas_agent::central::client::ClientError;
use truenas_agent::central::dsse::{DsseError, Verification};
use truenas_agent::central::state::FetchOutcome;
use truenas_agent::central::{FetchError, Fetched, SetupError};
use truenas_agent::fault::Fault;

use crate::central_fixture::{
    Agent, Central, DEVICE, LogCapture, Scripted, ScriptedBody, ScriptedServer, TOKEN, document,
    signing_key,
};

const S: fn(u64) -> Duration = Duration::from_secs;

fn between(d: Duration, lo: Duration, hi: Duration) -> bool {
    lo <= d && d <= hi
}

async fn document_then_304_with_etag() {
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    central.publish(DEVICE, &document(3)).await;
    let agent = Agent::new(&central.url(), &[&central.key], 0, false);
    let mut session = agent.session();

    let poll = session.config.poll().await;
    let Ok(Fetched::New(doc)) = poll.result else {
        panic!("{:?}", poll.result)
    };
    assert_eq!(doc.revision, 3);
    assert!(doc.etag.as_deref().is_some_and(|e| e.starts_with('"')));
    assert!(matches!(doc.verification, Verification::Signed { .. }));
    let payload: serde_json::Value = serde_json::from_slice(doc.payload()).unwrap();
    assert_eq!(payload, document(3));
    // No long-poll configured: plain polling, 300 s ± 10 %.
    assert!(between(poll.next_in, S(270), S(330)), "{:?}", poll.next_in);
    session.config.mark_applied(&doc).unwrap();

    let poll = session.config.poll().await;
    assert!(
        matches!(poll.result, Ok(Fetched::Unchanged)),
        "{:?}",
        poll.result
    );
    let state = session.store.snapshot();
    assert_eq!(state.applied.unwrap().revision, 3);
    assert_eq!(state.last_fetch.unwrap().outcome, FetchOutcome::Unchanged);
    assert_eq!(state.counters.fetches, 2);
    assert_eq!(
        state.counters.documents_received, 1,
        "a 304 is not a document"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_carry_token_user_agent_etag_and_wait() {
    let key = signing_key(1);
    let server = ScriptedServer::start(vec![
        Scripted::config_document(&document(1), &key, "\"e1\""),
        Scripted::status(304),
    ])
    .await;
    let agent = Agent::new(&server.url(), &[&key], 40, false);
    let mut session = agent.session();
    assert!(matches!(
        session.config.poll().await.result,
        Ok(Fetched::New(_))
    ));
    let _ = session.config.poll().await;
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(request.uri.path(), "/v1/config");
        assert_eq!(request.uri.query(), Some("wait=40"));
        assert_eq!(
            request.headers["authorization"].to_str().unwrap(),
            format!("Bearer {TOKEN}")
        );
        assert_eq!(
            request.headers["user-agent"].to_str().unwrap(),
            truenas_agent::USER_AGENT
        );
    }
    assert!(seen[0].headers.get("if-none-match").is_none());
    assert_eq!(seen[1].headers["if-none-match"], "\"e1\"");
}

async fn long_poll_is_held_and_wakes_on_publish() {
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    central.publish(DEVICE, &document(1)).await;
    let agent = Agent::new(&central.url(), &[&central.key], 50, false);
    let mut session = agent.session();
    let Ok(Fetched::New(doc)) = session.config.poll().await.result else {
        panic!()
    };
    session.config.mark_applied(&doc).unwrap();

    // Nothing changes: the server holds the request for the whole wait, then 304, and the
    // agent asks again at once.
    let started = tokio::time::Instant::now();
    let poll = session.config.poll().await;
    assert!(matches!(poll.result, Ok(Fetched::Unchanged)));
    assert!(started.elapsed() >= S(50), "{:?}", started.elapsed());
    assert_eq!(poll.next_in, S(0));

    // A publish while the request is held answers it within the server's change check.
    let started = tokio::time::Instant::now();
    let (poll, ()) = tokio::join!(session.config.poll(), async {
        tokio::time::sleep(S(10)).await;
        central.publish(DEVICE, &document(2)).await;
    });
    let Ok(Fetched::New(doc)) = poll.result else {
        panic!("{:?}", poll.result)
    };
    assert_eq!(doc.revision, 2);
    let elapsed = started.elapsed();
    assert!(between(elapsed, S(10), S(12)), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn falls_back_to_plain_polling_when_the_server_answers_at_once() {
    let key = signing_key(1);
    let server = ScriptedServer::start(vec![
        Scripted::config_document(&document(1), &key, "\"e1\""),
        Scripted::status(304),
        Scripted::status(304),
    ])
    .await;
    let agent = Agent::new(&server.url(), &[&key], 50, false);
    let mut session = agent.session();
    let poll = session.config.poll().await;
    assert!(matches!(poll.result, Ok(Fetched::New(_))));
    assert_eq!(
        poll.next_in,
        S(0),
        "a 200 is followed by a long-poll at once"
    );
    let poll = session.config.poll().await;
    assert!(matches!(poll.result, Ok(Fetched::Unchanged)));
    assert!(between(poll.next_in, S(270), S(330)), "{:?}", poll.next_in);
}

async fn no_document_yet_is_204_or_404() {
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    let agent = Agent::new(&central.url(), &[&central.key], 0, false);
    let mut session = agent.session();
    let poll = session.config.poll().await;
    assert!(
        matches!(poll.result, Ok(Fetched::NoDocument)),
        "{:?}",
        poll.result
    );
    assert!(between(poll.next_in, S(270), S(330)));

    let server = ScriptedServer::start(vec![Scripted::status(404)]).await;
    let agent = Agent::new(&server.url(), &[&central.key], 0, false);
    let mut session = agent.session();
    assert!(matches!(
        session.config.poll().await.result,
        Ok(Fetched::NoDocument)
    ));
    assert_eq!(
        session.store.snapshot().last_fetch.unwrap().outcome,
        FetchOutcome::NoDocument
    );
}

async fn rejected_token_backs_off_and_is_recorded() {
    let central = Central::start(signing_key(1)).await;
    // Not registered: 401.
    let agent = Agent::new(&central.url(), &[&central.key], 0, false);
    let mut session = agent.session();
    let first = session.config.poll().await;
    let err = first.result.unwrap_err();
    assert!(err.is_token_rejected(), "{err:?}");
    assert_eq!(err.fault(), Fault::Central);
    assert!(
        between(first.next_in, S(150), S(300)),
        "{:?}",
        first.next_in
    );
    let second = session.config.poll().await;
    assert!(
        between(second.next_in, S(300), S(600)),
        "{:?}",
        second.next_in
    );
    let state = session.store.snapshot();
    assert_eq!(state.counters.token_rejections, 2);
    assert_eq!(
        state.last_fetch.unwrap().outcome,
        FetchOutcome::TokenRejected
    );
    assert!(
        state
            .last_error
            .unwrap()
            .message
            .contains("rejected the device token (HTTP 401)")
    );
    assert!(state.applied.is_none(), "nothing applied");

    // Registered but disabled: 403, same handling.
    central.register(DEVICE, TOKEN).await;
    central.set_disabled(DEVICE, true).await;
    tokio::time::sleep(S(2)).await; // let the server's token cache expire
    let poll = session.config.poll().await;
    assert!(matches!(
        poll.result,
        Err(FetchError::Request(ClientError::TokenRejected {
            status: 403,
            ..
        }))
    ));
    central.set_disabled(DEVICE, false).await;
    central.publish(DEVICE, &document(1)).await;
    let poll = session.config.poll().await;
    assert!(
        matches!(poll.result, Ok(Fetched::New(_))),
        "{:?}",
        poll.result
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limited_429_honours_retry_after() {
    let server = ScriptedServer::start(vec![
        Scripted::status(429).header("retry-after", "120"),
        Scripted::status(429),
    ])
    .await;
    let agent = Agent::new(&server.url(), &[&signing_key(1)], 0, false);
    let mut session = agent.session();
    let poll = session.config.poll().await;
    let err = poll.result.unwrap_err();
    assert_eq!(err.fault(), Fault::Transient);
    assert!(poll.next_in >= S(120), "{:?}", poll.next_in);
    // Without Retry-After: exponential back-off (second attempt: 5–10 s).
    let poll = session.config.poll().await;
    assert!(between(poll.next_in, S(5), S(10)), "{:?}", poll.next_in);
}

#[tokio::test(start_paused = true)]
async fn server_errors_back_off_exponentially_then_recover() {
    let key = signing_key(1);
    let server = ScriptedServer::start(vec![
        Scripted::status(503),
        Scripted::status(500),
        Scripted::status(502),
        Scripted::config_document(&document(1), &key, "\"e\""),
        Scripted::status(503).header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ])
    .await;
    let agent = Agent::new(&server.url(), &[&key], 0, false);
    let mut session = agent.session();
    let mut delays = Vec::new();
    for _ in 0..3 {
        let poll = session.config.poll().await;
        assert!(matches!(
            poll.result,
            Err(FetchError::Request(ClientError::ServerError { .. }))
        ));
        delays.push(poll.next_in);
    }
    assert!(
        between(delays[0], Duration::from_millis(2500), S(5)),
        "{delays:?}"
    );
    assert!(between(delays[1], S(5), S(10)), "{delays:?}");
    assert!(between(delays[2], S(10), S(20)), "{delays:?}");
    assert!(matches!(
        session.config.poll().await.result,
        Ok(Fetched::New(_))
    ));
    // Back-off was reset by the success; a Retry-After date in the past is no floor.
    let poll = session.config.poll().await;
    assert!(
        between(poll.next_in, Duration::from_millis(2500), S(5)),
        "{:?}",
        poll.next_in
    );
    assert_eq!(session.store.snapshot().counters.fetch_errors, 4);
}

#[tokio::test(start_paused = true)]
async fn bodies_over_1_mib_are_refused() {
    const MIB: usize = 1024 * 1024;
    let server = ScriptedServer::start(vec![
        Scripted::status(200).body(vec![b' '; MIB + 1]),
        Scripted {
            status: 200,
            headers: vec![],
            body: ScriptedBody::Chunked {
                chunk: 64 * 1024,
                total: 3 * MIB,
            },
        },
    ])
    .await;
    let agent = Agent::new(&server.url(), &[&signing_key(1)], 0, false);
    let mut session = agent.session();
    for _ in 0..2 {
        let poll = session.config.poll().await;
        let err = poll.result.unwrap_err();
        assert!(
            matches!(err, FetchError::Request(ClientError::BodyTooLarge { .. })),
            "{err:?}"
        );
        assert_eq!(err.fault(), Fault::Central);
    }
}

async fn bad_signature_unknown_key_and_lower_revision_are_refused() {
    // The server signs with key 2; the agent trusts only key 1.
    let central = Central::start(signing_key(2)).await;
    central.register(DEVICE, TOKEN).await;
    central.publish(DEVICE, &document(5)).await;
    let agent = Agent::new(&central.url(), &[&signing_key(1)], 50, false);
    let mut session = agent.session();
    let poll = session.config.poll().await;
    let err = poll.result.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Envelope(DsseError::SignatureInvalid { .. })
        ),
        "{err:?}"
    );
    assert!(err.is_refusal());
    let state = session.store.snapshot();
    assert!(state.applied.is_none());
    assert_eq!(
        state.last_fetch.as_ref().unwrap().outcome,
        FetchOutcome::Refused
    );
    assert_eq!(
        (
            state.counters.documents_received,
            state.counters.documents_refused
        ),
        (1, 1)
    );
    let refusal = state.last_refusal.unwrap();
    assert_eq!(refusal.fault, Fault::Central);
    assert!(
        refusal
            .reason
            .contains("no signature on the document verifies"),
        "{}",
        refusal.reason
    );
    // The refused ETag is remembered: the next request long-polls on it (held, then 304).
    assert_eq!(poll.next_in, S(0));
    assert!(matches!(
        session.config.poll().await.result,
        Ok(Fetched::Unchanged)
    ));

    // Trusting both keys: accepted. Then a lower revision is a refused rollback.
    let agent = Agent::new(
        &central.url(),
        &[&signing_key(1), &signing_key(2)],
        0,
        false,
    );
    let mut session = agent.session();
    let Ok(Fetched::New(doc)) = session.config.poll().await.result else {
        panic!()
    };
    session.config.mark_applied(&doc).unwrap();
    central.publish(DEVICE, &document(4)).await;
    let err = session.config.poll().await.result.unwrap_err();
    assert!(matches!(
        err,
        FetchError::Rollback {
            revision: 4,
            last_applied: 5
        }
    ));
    let state = session.store.snapshot();
    assert_eq!(
        state.applied.unwrap().revision,
        5,
        "nothing written for the rollback"
    );
    assert_eq!(state.last_refusal.unwrap().revision, Some(4));
    // Same revision again: a no-op apart from drift.
    central.publish(DEVICE, &document(5)).await;
    assert!(matches!(
        session.config.poll().await.result,
        Ok(Fetched::Same(_))
    ));
    // The applied revision survives a restart: the rollback is still refused.
    central.publish(DEVICE, &document(4)).await;
    let mut restarted = agent.session();
    assert!(matches!(
        restarted.config.poll().await.result,
        Err(FetchError::Rollback { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn wrong_payload_type_is_refused() {
    let key = signing_key(1);
    let server = ScriptedServer::start(vec![Scripted::document(
        "application/vnd.in-toto+json",
        &document(1),
        &key,
        "\"e\"",
    )])
    .await;
    let agent = Agent::new(&server.url(), &[&key], 0, false);
    let mut session = agent.session();
    let err = session.config.poll().await.result.unwrap_err();
    assert!(matches!(
        err,
        FetchError::Envelope(DsseError::WrongPayloadType { .. })
    ));
    assert!(err.to_string().starts_with("refused the document"));
}

async fn no_trusted_key_needs_allow_unsigned() {
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    central.publish(DEVICE, &document(1)).await;
    let agent = Agent::new(&central.url(), &[], 0, false);
    let err = agent.session().config.poll().await.result.unwrap_err();
    assert!(matches!(
        err,
        FetchError::Envelope(DsseError::NoTrustedKeys)
    ));
    assert_eq!(err.fault(), Fault::Operator);

    let agent = Agent::new(&central.url(), &[], 0, true);
    let mut session = agent.session();
    let Ok(Fetched::New(doc)) = session.config.poll().await.result else {
        panic!()
    };
    assert_eq!(doc.verification, Verification::Unsigned);
    session.config.mark_applied(&doc).unwrap();
    assert_eq!(
        session.store.snapshot().applied.unwrap().verified_by,
        "unsigned"
    );
}

#[tokio::test]
async fn token_file_readable_by_others_refuses_to_start() {
    use std::os::unix::fs::PermissionsExt;
    let agent = Agent::new("http://127.0.0.1:9/", &[&signing_key(1)], 0, false);
    let token = agent.token_file();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = truenas_agent::central::open(agent.central(), agent.state_dir()).unwrap_err();
    assert!(matches!(err, SetupError::Token(_)));
    assert_eq!(err.fault(), Fault::Operator);
    let text = truenas_agent::fault::error_chain(&err);
    let uid = nix::unistd::geteuid().as_raw();
    assert!(
        text.contains(&format!("central.token_file {}", token.display())),
        "{text}"
    );
    assert!(text.contains("mode 0644"), "{text}");
    assert!(text.contains(&format!("owner uid {uid}")), "{text}");
    assert!(text.contains("not readable by group or others"), "{text}");
    assert!(
        text.contains(&format!("chmod 600 {}", token.display())),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
    // Nothing was created in the state dir by the refused start.
    assert!(!agent.config.state_dir.join("central.json").exists());
}

/// The whole fetch path with canary secrets in the document and the token: nothing
/// secret in logs (every level), state files, or central's stores (except the document).
async fn canaries_never_leave_the_document() {
    let logs = LogCapture::start();
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    central.publish(DEVICE, &document(1)).await;
    let agent = Agent::new(&central.url(), &[&central.key], 5, false);
    let mut session = agent.session();
    let poll = session.config.poll().await;
    let Ok(Fetched::New(doc)) = &poll.result else {
        panic!()
    };
    session.config.mark_applied(doc).unwrap();
    let shown = format!("{poll:?} {session:?}");
    crate::support::assert_no_canary("Debug output", &shown);
    let _ = session.config.poll().await; // a held long-poll, then 304
    // A refusal path too.
    // (written directly: `publish` itself refuses revision 0)
    let bad = serde_json::to_vec(&document(0)).unwrap();
    central.write_document_unchecked(DEVICE, &bad).await;
    let refused = session.config.poll().await;
    let shown = format!("{refused:?}");
    let err = refused.result.unwrap_err();
    assert!(matches!(err, FetchError::BadRevision { .. }), "{err:?}");
    let shown = format!("{shown} {}", truenas_agent::fault::error_chain(&err));
    crate::support::assert_no_canary("refusal", &shown);

    crate::support::assert_no_canary("logs", &logs.text());
    assert!(
        logs.text().contains("served the document"),
        "the capture works"
    );
    crate::support::assert_no_canary_in_dir(&agent.config.state_dir);
    central.assert_no_canary_in_data();
}

on_both_engines!(
    #[tokio::test(start_paused = true)]
    document_then_304_with_etag,
    long_poll_is_held_and_wakes_on_publish,
    no_document_yet_is_204_or_404,
    rejected_token_backs_off_and_is_recorded,
    bad_signature_unknown_key_and_lower_revision_are_refused,
    no_trusted_key_needs_allow_unsigned,
    canaries_never_leave_the_document,
);

//! `Conn` over an in-memory duplex stream with a hand-driven peer. In-memory streams
//! wake tasks directly, so the paused clock only advances when everything waits on
//! timers: deadlines and keepalive are exact here.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::*;

type Peer = WebSocketStream<tokio::io::DuplexStream>;

async fn pair(settings: ConnSettings) -> (Conn, Peer) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let ws =
        WebSocketStream::from_raw_socket(Box::new(client) as Box<dyn Io>, Role::Client, None).await;
    let peer = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
    (Conn::start(ws, Protocol::JsonRpc, settings), peer)
}

/// The next request the peer receives: `(id, method)`.
async fn request(peer: &mut Peer) -> (u64, String) {
    loop {
        if let Message::Text(text) = peer.next().await.unwrap().unwrap() {
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            let method = v["method"].as_str().unwrap().to_owned();
            return (v["id"].as_u64().unwrap(), method);
        }
    }
}

async fn reply(peer: &mut Peer, id: u64, result: Value) {
    let frame = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
    peer.send(Message::text(frame)).await.unwrap();
}

const T: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn replies_are_matched_by_id_in_any_order() {
    let (conn, mut peer) = pair(ConnSettings::default()).await;
    let first = conn.call(Method::PoolQuery, &[], T);
    let second = conn.call(Method::SystemInfo, &[], T);
    let server = async {
        let (a, ma) = request(&mut peer).await;
        let (b, mb) = request(&mut peer).await;
        assert_ne!(a, b, "ids are unique");
        // A reply nobody asked for is dropped; then the answers in reverse order.
        reply(&mut peer, 999_999, json!("stray")).await;
        reply(&mut peer, b, json!(mb)).await;
        reply(&mut peer, a, json!(ma)).await;
        peer
    };
    let (r1, r2, _peer) = tokio::join!(first, second, server);
    assert_eq!(r1.unwrap(), json!("pool.query"));
    assert_eq!(r2.unwrap(), json!("system.info"));
    assert!(conn.closed_reason().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_call_without_answer_times_out_at_its_deadline() {
    // The peer is not read while the call waits: keep the keepalive out of the way.
    let settings = ConnSettings {
        keepalive_interval: Duration::from_secs(3600),
        ..ConnSettings::default()
    };
    let (conn, mut peer) = pair(settings).await;
    let start = Instant::now();
    let (result, _) = tokio::join!(conn.call(Method::PoolQuery, &[], T), request(&mut peer));
    assert_eq!(result, Err(CallFailure::TimedOut));
    assert_eq!(start.elapsed(), T);
    // A late answer is dropped; the connection stays usable.
    reply(&mut peer, 1, json!(1)).await;
    let (result, ()) = tokio::join!(conn.call(Method::CorePing, &[], T), async {
        let (id, _) = request(&mut peer).await;
        reply(&mut peer, id, json!("pong")).await;
    });
    assert_eq!(result.unwrap(), json!("pong"));
}

#[tokio::test(start_paused = true)]
async fn in_flight_calls_are_lost_and_later_calls_are_not_sent() {
    let (conn, mut peer) = pair(ConnSettings::default()).await;
    let params = [json!(1)];
    let (result, ()) = tokio::join!(conn.call(Method::CloudsyncSync, &params, T), async {
        request(&mut peer).await;
        drop(peer);
    });
    assert!(matches!(result, Err(CallFailure::Lost(_))), "{result:?}");
    let later = conn.call(Method::CorePing, &[], T).await;
    assert!(matches!(later, Err(CallFailure::NotSent(_))), "{later:?}");
    assert!(conn.closed_reason().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_declared_dead_after_two_keepalive_intervals() {
    let interval = Duration::from_secs(30);
    let settings = ConnSettings {
        keepalive_interval: interval,
        ..ConnSettings::default()
    };
    // The peer is kept but never read: no pong ever comes back.
    let (conn, _peer) = pair(settings).await;
    let start = Instant::now();
    let result = conn
        .call(Method::PoolQuery, &[], Duration::from_secs(3600))
        .await;
    let Err(CallFailure::Lost(reason)) = result else {
        panic!("{result:?}")
    };
    assert!(reason.contains("keepalive"), "{reason}");
    assert_eq!(start.elapsed(), 2 * interval);
}

#[tokio::test(start_paused = true)]
async fn an_answering_peer_stays_alive() {
    let settings = ConnSettings {
        keepalive_interval: Duration::from_secs(30),
        ..ConnSettings::default()
    };
    let (conn, mut peer) = pair(settings).await;
    // Reading makes the peer answer pings; ten minutes pass without a call.
    let reader = tokio::spawn(async move { while peer.next().await.is_some() {} });
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(conn.closed_reason().is_none());
    reader.abort();
}

#[tokio::test(start_paused = true)]
async fn the_in_flight_cap_holds_calls_back() {
    let settings = ConnSettings {
        max_in_flight: 2,
        ..ConnSettings::default()
    };
    let (conn, mut peer) = pair(settings).await;
    let calls =
        futures_util::future::join_all((0..3).map(|_| conn.call(Method::PoolQuery, &[], T)));
    let server = async {
        let (a, _) = request(&mut peer).await;
        let (b, _) = request(&mut peer).await;
        // The third is not sent while two are in flight.
        let third = tokio::time::timeout(Duration::from_secs(5), request(&mut peer)).await;
        assert!(third.is_err(), "a third call was in flight");
        reply(&mut peer, a, json!(0)).await;
        let (c, _) = request(&mut peer).await;
        reply(&mut peer, b, json!(0)).await;
        reply(&mut peer, c, json!(0)).await;
    };
    let (results, ()) = tokio::join!(calls, server);
    assert!(results.into_iter().all(|r| r.is_ok()));
}

#[tokio::test(start_paused = true)]
async fn oversized_requests_are_refused() {
    let settings = ConnSettings {
        max_request_bytes: 1024,
        ..ConnSettings::default()
    };
    let (conn, _peer) = pair(settings).await;
    let result = conn
        .call(Method::CloudsyncCreate, &[json!("x".repeat(2048))], T)
        .await;
    assert!(
        matches!(result, Err(CallFailure::TooLarge { limit: 1024, .. })),
        "{result:?}"
    );
}

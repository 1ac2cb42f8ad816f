//! Opening a WebSocket to the middleware: unix socket, loopback TCP or TLS, then the
//! HTTP upgrade on a route, then (legacy) the `connect` handshake; and the one plain HTTP
//! request the client makes, `GET /api/versions`.
//!
//! Owns: [`Dial`] (what to connect to, decided once from the URL and TLS options), the
//! peer-address check of plain TCP, the TLS handshake and pin-mismatch reporting,
//! [`probe_versions`] (which versioned APIs the box serves, or that it serves none there:
//! 24.10 answers 404 directly and 302 through its nginx), and the upgrade on a route.
//! Does not: log in, pick the route (`client.rs`), or time out (the caller wraps the
//! whole set-up in its connect timeout).
//! Invariants: a plain TCP connection is only made to loopback addresses and the peer
//! address is checked again once connected; `localhost` and IP literals are never
//! looked up in DNS; errors carry the URL (which holds no secret), never frame contents
//! or response bodies; an HTTP answer is read up to [`MAX_HTTP_RESPONSE`] bytes.
//! Limitations: DNS names (wss:// only) are resolved with the system resolver; the HTTP
//! request is HTTP/1.0 (no chunked answers, the server closes after answering).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};

use super::Protocol;
use super::conn::{Io, Ws};
use super::connect_error::ConnectError;
use super::rpc::{self, Incoming};
use super::tls::{TlsSetup, Trust};
use super::url::{Endpoint, Host, MiddlewareUrl, is_loopback};

/// JSON-RPC 2.0, the box's newest API version (25.04+). Used only when the box serves
/// no API version this agent knows.
pub(crate) const ROUTE_CURRENT: &str = "/api/current";
/// The legacy DDP-style protocol (24.10; still served by 25.x, 26.0 and 27.0).
pub(crate) const ROUTE_LEGACY: &str = "/websocket";
/// `GET` (plain HTTP): a JSON array of the API versions served (25.04+, `MW/main.py`
/// `api_versions_handler`).
pub(crate) const ROUTE_VERSIONS: &str = "/api/versions";
/// The largest HTTP answer read for `GET /api/versions`.
pub(crate) const MAX_HTTP_RESPONSE: usize = 64 * 1024;
/// The WebSocket read buffer. tungstenite zero-fills the buffer's whole capacity before
/// every socket read (`FrameCodec::read_in`), so its default of 128 KiB is 128 KiB of
/// the daemon's resident memory for the connection's life; a frame longer than the
/// buffer reserves its own length once (so big answers cost one allocation, not many
/// reads into a small buffer). Most middleware frames (pings, events, query answers of
/// a few rows) are under 4 KiB.
pub(crate) const WS_READ_BUFFER_BYTES: usize = 16 * 1024;

/// The route of a versioned API endpoint, `/api/v26.0.0` for `v26.0.0`.
pub(crate) fn api_route(version: &str) -> String {
    format!("/api/{version}")
}

/// How to reach the middleware, decided once per client.
#[derive(Debug, Clone)]
pub(crate) enum Dial {
    Unix(PathBuf),
    Plain {
        host: Host,
        port: u16,
    },
    Tls {
        host: Host,
        port: u16,
        setup: TlsSetup,
    },
}

/// What `GET /api/versions` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VersionsProbe {
    /// 200 with a JSON array of version names (25.04+).
    Listed(Vec<String>),
    /// Any other answer that is not an authentication or authorisation failure: no
    /// versioned API here. 24.10's middleware answers 404; its nginx has no `location
    /// /api` and answers 302 (the `/ui/` rewrite) — REFERENCE §8 #2.
    NotServed { status: u16 },
}

/// Connects and upgrades to a WebSocket on `route`. Any answer but `101 Switching
/// Protocols` is [`ConnectError::HttpStatus`].
pub(crate) async fn open(
    url: &MiddlewareUrl,
    dial: &Dial,
    route: &str,
    max_message_bytes: usize,
) -> Result<Ws, ConnectError> {
    let stream = connect(url, dial).await?;
    upgrade(url, route, stream, max_message_bytes).await
}

/// `GET /api/versions` over the same transport: which versioned APIs the box serves.
/// 401/403 are errors (the request was refused, not the route); any other non-200 answer
/// is [`VersionsProbe::NotServed`]; a 200 whose body is not a JSON array of strings is
/// [`ConnectError::BadVersions`].
pub(crate) async fn probe_versions(
    url: &MiddlewareUrl,
    dial: &Dial,
) -> Result<VersionsProbe, ConnectError> {
    let mut stream = connect(url, dial).await?;
    let request = format!(
        "GET {ROUTE_VERSIONS} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: truenas-agent/{}\r\n\r\n",
        url.endpoint().host_header(),
        crate::VERSION,
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(transport(url, "send a request to"))?;
    let raw = read_http_response(&mut stream)
        .await
        .map_err(transport(url, "read the answer of"))?;
    let bad = |detail: String| ConnectError::BadVersions {
        url: url.to_string(),
        detail,
    };
    let (status, body) = parse_http_response(&raw).map_err(bad)?;
    match status {
        200 => serde_json::from_slice::<Vec<String>>(body)
            .map(VersionsProbe::Listed)
            .map_err(|e| {
                bad(format!(
                    "the body is not a JSON array of version names ({e})"
                ))
            }),
        401 | 403 => Err(ConnectError::HttpStatus {
            url: url.to_string(),
            route: ROUTE_VERSIONS.to_owned(),
            status,
        }),
        status => Ok(VersionsProbe::NotServed { status }),
    }
}

/// Reads an HTTP answer: until the server closes, the `Content-Length` is complete, or
/// [`MAX_HTTP_RESPONSE`] bytes (then an error).
async fn read_http_response(stream: &mut Box<dyn Io>) -> io::Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS peer that closes without `close_notify` after answering.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&chunk[..n]);
        if raw.len() > MAX_HTTP_RESPONSE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the HTTP answer is over {MAX_HTTP_RESPONSE} bytes"),
            ));
        }
        if let Some(total) = complete_length(&raw) {
            if raw.len() >= total {
                raw.truncate(total);
                return Ok(raw);
            }
        }
    }
}

/// Head + body length of a complete head with a `Content-Length`, else `None`.
fn complete_length(raw: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response.parse(raw).ok()? else {
        return None;
    };
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))?;
    let length: usize = std::str::from_utf8(length.value)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    head.checked_add(length)
}

/// Status and body of a complete HTTP/1.x answer. Chunked bodies are refused (an
/// HTTP/1.0 request must not get one).
pub(crate) fn parse_http_response(raw: &[u8]) -> Result<(u16, &[u8]), String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(raw) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => {
            return Err("the connection closed before a complete HTTP answer".to_owned());
        }
        Err(e) => return Err(format!("not an HTTP answer ({e})")),
    };
    let chunked = response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && !h.value.eq_ignore_ascii_case(b"identity")
    });
    if chunked {
        return Err("the HTTP answer uses a transfer encoding (HTTP/1.0 was asked)".to_owned());
    }
    let status = response.code.ok_or("the HTTP answer has no status")?;
    Ok((status, &raw[head..]))
}

/// Opens the byte stream (unix socket, loopback TCP, or TCP + TLS).
async fn connect(url: &MiddlewareUrl, dial: &Dial) -> Result<Box<dyn Io>, ConnectError> {
    Ok(match dial {
        Dial::Unix(path) => Box::new(
            UnixStream::connect(path)
                .await
                .map_err(transport(url, "connect to"))?,
        ),
        Dial::Plain { host, port } => Box::new(connect_tcp(url, host, *port, true).await?),
        Dial::Tls { host, port, setup } => {
            let tcp = connect_tcp(url, host, *port, false).await?;
            Box::new(handshake_tls(url, host, setup, tcp).await?)
        }
    })
}

fn transport(url: &MiddlewareUrl, step: &'static str) -> impl FnOnce(io::Error) -> ConnectError {
    let url = url.to_string();
    move |source| ConnectError::Transport { url, step, source }
}

/// Resolves (without DNS for literals and `localhost`) and connects; a plain
/// connection must reach a loopback address.
async fn connect_tcp(
    url: &MiddlewareUrl,
    host: &Host,
    port: u16,
    plain: bool,
) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<SocketAddr> = match (host.literal_addrs(port), host) {
        (Some(addrs), _) => addrs,
        (None, name) => tokio::net::lookup_host((name.to_string(), port))
            .await
            .map_err(transport(url, "resolve the host of"))?
            .collect(),
    };
    let insecure = |peer| ConnectError::InsecureTransport {
        url: url.to_string(),
        peer: Some(peer),
    };
    if plain {
        if let Some(bad) = addrs.iter().find(|a| !is_loopback(a.ip())) {
            return Err(insecure(bad.ip()));
        }
    }
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    let mut refused = false;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let peer = stream.peer_addr().map_err(transport(url, "connect to"))?;
                if plain && !is_loopback(peer.ip()) {
                    return Err(insecure(peer.ip()));
                }
                // Small request/reply messages: do not wait to coalesce them.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => {
                refused |= error.kind() == io::ErrorKind::ConnectionRefused;
                last = error;
            }
        }
    }
    if plain && refused {
        // TrueNAS 26.0.0-BETA.3 and later open 127.0.0.1:6000 only on vendor builds.
        return Err(ConnectError::LoopbackRefused {
            url: url.to_string(),
            source: last,
        });
    }
    Err(transport(url, "connect to")(last))
}

async fn handshake_tls(
    url: &MiddlewareUrl,
    host: &Host,
    setup: &TlsSetup,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
    let name = match host {
        Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        Host::Localhost => ServerName::try_from("localhost").map_err(|_| bad_name(url))?,
        Host::Name(name) => ServerName::try_from(name.clone()).map_err(|_| bad_name(url))?,
    };
    let connector = tokio_rustls::TlsConnector::from(setup.config.clone());
    connector.connect(name, tcp).await.map_err(|source| {
        if let Some((expected, presented)) = setup.pin_mismatch() {
            return ConnectError::PinMismatch {
                url: url.to_string(),
                expected,
                presented,
            };
        }
        let rejected = source
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
        if rejected {
            ConnectError::TlsRejected {
                url: url.to_string(),
                source,
            }
        } else {
            transport(url, "complete the TLS handshake with")(source)
        }
    })
}

fn bad_name(url: &MiddlewareUrl) -> ConnectError {
    ConnectError::Url(super::url::UrlError::Invalid {
        url: url.to_string(),
        rule: "the host is not a valid TLS server name",
    })
}

/// The WebSocket settings of every middleware connection.
fn ws_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

async fn upgrade(
    url: &MiddlewareUrl,
    route: &str,
    stream: Box<dyn Io>,
    max_message_bytes: usize,
) -> Result<Ws, ConnectError> {
    let uri = url.endpoint().request_uri(route);
    let config = ws_config(max_message_bytes);
    match tokio_tungstenite::client_async_with_config(uri, stream, Some(config)).await {
        Ok((ws, _response)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(ConnectError::HttpStatus {
            url: url.to_string(),
            route: route.to_owned(),
            status: response.status().as_u16(),
        }),
        Err(source) => Err(ConnectError::WebSocket {
            url: url.to_string(),
            route: route.to_owned(),
            source: Box::new(source),
        }),
    }
}

/// The legacy protocol's first exchange: `connect` → `connected` (or `failed`).
pub(crate) async fn legacy_handshake(url: &MiddlewareUrl, ws: &mut Ws) -> Result<(), ConnectError> {
    let failed = |detail: String| ConnectError::LegacyHandshake {
        url: url.to_string(),
        detail,
    };
    ws.send(Message::text(rpc::encode_connect()))
        .await
        .map_err(|e| failed(super::conn::describe(&e)))?;
    loop {
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => {
                return Err(failed("the middleware closed the connection".to_owned()));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(failed(super::conn::describe(&e))),
        };
        return match rpc::decode(Protocol::Legacy, text.as_str()) {
            Ok(Incoming::Connected) => Ok(()),
            Ok(Incoming::HandshakeFailed) => Err(failed(
                "the middleware refused protocol version 1".to_owned(),
            )),
            Ok(other) => Err(failed(format!("unexpected first message {other:?}"))),
            Err(e) => Err(failed(e.to_string())),
        };
    }
}

impl Dial {
    /// Chooses how to dial `url`. The TLS options are only accepted with wss://; a
    /// plain ws:// URL whose host is a non-loopback IP literal is refused here, before
    /// any connection attempt.
    pub(crate) fn new(
        url: &MiddlewareUrl,
        tls_ca_file: Option<&Path>,
        tls_pin: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let tls_options = tls_ca_file.is_some() || tls_pin.is_some();
        match url.endpoint() {
            Endpoint::Unix { .. } | Endpoint::Tcp { tls: false, .. } if tls_options => {
                Err(ConnectError::TlsOptionsWithoutTls {
                    url: url.to_string(),
                })
            }
            Endpoint::Unix { path } => Ok(Dial::Unix(path.clone())),
            Endpoint::Tcp {
                host,
                port,
                tls: false,
            } => {
                let literal = host.literal_addrs(*port).unwrap_or_default();
                if let Some(bad) = literal.iter().find(|a| !is_loopback(a.ip())) {
                    return Err(ConnectError::InsecureTransport {
                        url: url.to_string(),
                        peer: Some(bad.ip()),
                    });
                }
                Ok(Dial::Plain {
                    host: host.clone(),
                    port: *port,
                })
            }
            Endpoint::Tcp {
                host,
                port,
                tls: true,
            } => {
                let trust = Trust::from_options(tls_ca_file, tls_pin)?;
                Ok(Dial::Tls {
                    host: host.clone(),
                    port: *port,
                    setup: TlsSetup::new(&trust)?,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n[\"v25.04.2\"]x";
        assert_eq!(complete_length(ok), Some(ok.len() - 1));
        let (status, body) = parse_http_response(&ok[..ok.len() - 1]).unwrap();
        assert_eq!((status, body), (200, &b"[\"v25.04.2\"]"[..]));
        let redirect = b"HTTP/1.1 302 Moved Temporarily\r\nLocation: https://nas/ui/\r\n\r\n<html>";
        assert_eq!(parse_http_response(redirect).unwrap().0, 302);
        assert_eq!(complete_length(redirect), None);
        for (raw, needle) in [
            (&b"HTTP/1.1 200 OK\r\nContent-"[..], "closed before"),
            (&b"SSH-2.0-OpenSSH\r\n\r\n"[..], "not an HTTP answer"),
            (
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"[..],
                "transfer encoding",
            ),
        ] {
            let err = parse_http_response(raw).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        assert_eq!(api_route("v26.0.0"), "/api/v26.0.0");
    }

    /// A frame several times the read buffer arrives whole, and the frames after it too:
    /// the small buffer only changes memory, never what is read.
    #[tokio::test]
    async fn frames_longer_than_the_read_buffer_arrive_whole() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("mw.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let big = "x".repeat(5 * WS_READ_BUFFER_BYTES + 17);
        let sent = big.clone();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            for text in [sent.as_str(), "small", sent.as_str()] {
                ws.send(Message::text(text)).await.unwrap();
            }
            ws.close(None).await.unwrap();
        });
        let url = MiddlewareUrl::parse(&format!("unix://{}", socket.display())).unwrap();
        let dial = Dial::Unix(socket.clone());
        let mut ws = open(&url, &dial, ROUTE_LEGACY, 1 << 20).await.unwrap();
        let mut got = Vec::new();
        while let Some(Ok(Message::Text(text))) = ws.next().await {
            got.push(text.to_string());
        }
        assert_eq!(got, vec![big.clone(), "small".to_owned(), big]);
        server.await.unwrap();
    }

    proptest::proptest! {
        #[test]
        fn http_parsing_is_total(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_http_response(&raw);
            let _ = complete_length(&raw);
        }
    }
}

//! Opening a WebSocket to the middleware: unix socket, loopback TCP or TLS, then the
//! HTTP upgrade on a route, then (legacy) the `connect` handshake.
//!
//! Owns: [`Dial`] (what to connect to, decided once from the URL and TLS options), the
//! peer-address check of plain TCP, the TLS handshake and pin-mismatch reporting, and
//! telling "route not found" (404 → try the legacy route) from real failures.
//! Does not: log in, pick the protocol (`client.rs`), or time out (the caller wraps the
//! whole set-up in its connect timeout).
//! Invariants: a plain TCP connection is only made to loopback addresses and the peer
//! address is checked again once connected; `localhost` and IP literals are never
//! looked up in DNS; errors carry the URL (which holds no secret), never frame contents.
//! Limitations: DNS names (wss:// only) are resolved with the system resolver.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};

use super::Protocol;
use super::client::ConnectError;
use super::conn::{Io, Ws};
use super::rpc::{self, Incoming};
use super::tls::{TlsSetup, Trust};
use super::url::{Endpoint, Host, MiddlewareUrl, is_loopback};

/// JSON-RPC 2.0, newest API version (25.04+).
pub const ROUTE_CURRENT: &str = "/api/current";
/// The legacy DDP-style protocol (24.10; still served by 25.x).
pub const ROUTE_LEGACY: &str = "/websocket";

/// How to reach the middleware, decided once per client.
#[derive(Debug, Clone)]
pub enum Dial {
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

/// Result of an upgrade attempt.
#[expect(
    clippy::large_enum_variant,
    reason = "built once per connection attempt and unpacked at once"
)]
pub enum Upgrade {
    Done(Ws),
    /// HTTP 404: this route does not exist on this box.
    NotFound,
}

/// Connects and upgrades to a WebSocket on `route`.
pub async fn open(
    url: &MiddlewareUrl,
    dial: &Dial,
    route: &str,
    max_message_bytes: usize,
) -> Result<Upgrade, ConnectError> {
    let stream: Box<dyn Io> = match dial {
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
    };
    upgrade(url, route, stream, max_message_bytes).await
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
            Err(error) => last = error,
        }
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

async fn upgrade(
    url: &MiddlewareUrl,
    route: &str,
    stream: Box<dyn Io>,
    max_message_bytes: usize,
) -> Result<Upgrade, ConnectError> {
    let uri = url.endpoint().request_uri(route);
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes));
    match tokio_tungstenite::client_async_with_config(uri, stream, Some(config)).await {
        Ok((ws, _response)) => Ok(Upgrade::Done(ws)),
        Err(tungstenite::Error::Http(response)) if response.status() == 404 => {
            Ok(Upgrade::NotFound)
        }
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
pub async fn legacy_handshake(url: &MiddlewareUrl, ws: &mut Ws) -> Result<(), ConnectError> {
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
    pub fn new(
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

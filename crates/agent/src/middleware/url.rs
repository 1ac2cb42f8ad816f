//! Middleware URLs: which transport to use and whether it is safe for an API key.
//!
//! Owns: parsing `unix:///path`, `ws://host[:port]` and `wss://host[:port]` into an
//! [`Endpoint`], the WebSocket request URI for a given route, and the transport-safety
//! rule ([`is_loopback`], [`Endpoint::plain_peer_allowed`]).
//! Does not: open sockets or resolve names (the client does; `localhost` and IP literals
//! never need DNS, see [`Host::literal_addrs`]).
//! Invariants: a parsed URL never carries credentials, a query or a fragment, so its
//! `Display` is safe to log; plain `ws://` is only ever accepted for a loopback peer —
//! TrueNAS 25.04+ revokes an API key used over a transport that is not a unix socket,
//! TLS or loopback (REFERENCE §1.7), and without a key a TCP session cannot log in.
//! Limitations: the path of the URL is chosen by the client (`/api/versions`, then
//! `/api/vX.Y.Z` or `/websocket`), so a URL with a path other than `/` is refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::TransportKind;

/// Why a middleware URL was refused. The text never echoes credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The URL breaks one of the syntax rules.
    #[error("middleware URL `{url}` is invalid: {rule}")]
    Invalid { url: String, rule: &'static str },
    /// The URL has a `user:password@` part; it is not echoed because it may be a secret.
    #[error(
        "middleware URL must not contain credentials (`user:password@`); give an API key with --api-key-file"
    )]
    Credentials,
}

/// A host of a TCP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal (`127.0.0.1`, `[::1]`).
    Ip(IpAddr),
    /// `localhost`: always 127.0.0.1, never looked up.
    Localhost,
    /// A DNS name, resolved at connect time (wss:// only makes sense with one).
    Name(String),
}

impl Host {
    /// Addresses known without DNS (IP literals and `localhost`), `None` for names.
    pub fn literal_addrs(&self, port: u16) -> Option<Vec<SocketAddr>> {
        match self {
            Host::Ip(ip) => Some(vec![SocketAddr::new(*ip, port)]),
            Host::Localhost => Some(vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)]),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Localhost => f.write_str("localhost"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// Where the middleware listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// WebSocket over a unix socket (`unix:///var/run/middleware/middlewared.sock`).
    Unix { path: PathBuf },
    /// WebSocket over TCP, optionally in TLS.
    Tcp { host: Host, port: u16, tls: bool },
}

impl Endpoint {
    /// The kind of transport, as reported in [`super::ApiInfo`].
    pub fn kind(&self) -> TransportKind {
        match self {
            Endpoint::Unix { .. } => TransportKind::UnixSocket,
            Endpoint::Tcp { tls: false, .. } => TransportKind::Loopback,
            Endpoint::Tcp { tls: true, .. } => TransportKind::Tls,
        }
    }

    /// The URI of the WebSocket request for `route` (`/api/current`, `/websocket`).
    /// Over a unix socket it only supplies `Host: localhost` and the path, like the
    /// official client does (`truenas_api_client/transport.py`).
    pub fn request_uri(&self, route: &str) -> String {
        match self {
            Endpoint::Unix { .. } => format!("ws://localhost{route}"),
            Endpoint::Tcp { host, port, tls } => {
                let scheme = if *tls { "wss" } else { "ws" };
                format!("{scheme}://{host}:{port}{route}")
            }
        }
    }

    /// The `Host` header of a plain HTTP request (`GET /api/versions`): `localhost` over a
    /// unix socket, `host:port` over TCP.
    pub fn host_header(&self) -> String {
        match self {
            Endpoint::Unix { .. } => "localhost".to_owned(),
            Endpoint::Tcp { host, port, .. } => format!("{host}:{port}"),
        }
    }

    /// Whether a plain (non-TLS) TCP connection to `peer` is acceptable: only loopback.
    /// TLS and unix sockets are always acceptable.
    pub fn plain_peer_allowed(&self, peer: IpAddr) -> bool {
        match self {
            Endpoint::Unix { .. } | Endpoint::Tcp { tls: true, .. } => true,
            Endpoint::Tcp { tls: false, .. } => is_loopback(peer),
        }
    }
}

/// A parsed middleware URL. `Display` shows it normalised; it never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiddlewareUrl {
    endpoint: Endpoint,
}

impl MiddlewareUrl {
    /// Parses `unix:///abs/path`, `ws://host[:port][/]` or `wss://host[:port][/]`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let endpoint = match url.split_once("://") {
            None => Err(Refusal::Rule(
                "expected unix:///path, ws://host[:port] or wss://host[:port]",
            )),
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "unix" => parse_unix(rest),
                "ws" => parse_tcp(rest, false),
                "wss" => parse_tcp(rest, true),
                _ => Err(Refusal::Rule(
                    "unknown scheme (use unix://, ws:// for loopback or wss://)",
                )),
            },
        };
        endpoint
            .map(|endpoint| MiddlewareUrl { endpoint })
            .map_err(|refusal| match refusal {
                Refusal::Rule(rule) => UrlError::Invalid {
                    url: url.to_owned(),
                    rule,
                },
                Refusal::Credentials => UrlError::Credentials,
            })
    }

    /// Where to connect.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl fmt::Display for MiddlewareUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Endpoint::Unix { path } => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp { host, port, tls } => {
                let scheme = if *tls { "wss" } else { "ws" };
                write!(f, "{scheme}://{host}:{port}")
            }
        }
    }
}

/// Why parsing stopped, before the URL is attached (or withheld, for credentials).
enum Refusal {
    Rule(&'static str),
    Credentials,
}

fn parse_unix(rest: &str) -> Result<Endpoint, Refusal> {
    // `unix:///abs/path`: empty authority, absolute path.
    if !rest.starts_with('/') || rest.len() < 2 {
        return Err(Refusal::Rule(
            "a unix URL needs an absolute socket path: unix:///var/run/middleware/middlewared.sock",
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(Refusal::Rule("a unix URL cannot have a query or fragment"));
    }
    Ok(Endpoint::Unix {
        path: PathBuf::from(rest),
    })
}

fn parse_tcp(rest: &str, tls: bool) -> Result<Endpoint, Refusal> {
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.contains('@') {
        return Err(Refusal::Credentials);
    }
    if rest.contains(['?', '#']) {
        return Err(Refusal::Rule("the URL cannot have a query or fragment"));
    }
    if !(path.is_empty() || path == "/") {
        return Err(Refusal::Rule(
            "give only scheme, host and port: the agent picks the API endpoint (/api/vX.Y.Z or /websocket) itself",
        ));
    }
    let (host, port) = split_host_port(authority).map_err(Refusal::Rule)?;
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(Refusal::Rule("the port must be a number from 1 to 65535"))?,
        None if tls => 443,
        None => 80,
    };
    Ok(Endpoint::Tcp {
        host: parse_host(host).map_err(Refusal::Rule)?,
        port,
        tls,
    })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address needs a closing `]`")?;
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or("expected `:port` after the IPv6 address"),
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn parse_host(host: &str) -> Result<Host, &'static str> {
    if host.is_empty() {
        return Err("the host is missing");
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(Host::Localhost);
    }
    let valid = host.split('.').all(|label| {
        !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if valid {
        Ok(Host::Name(host.to_ascii_lowercase()))
    } else {
        Err("the host must be an IP address or a DNS name")
    }
}

/// True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (`::ffff:127.0.0.1`): the
/// addresses the middleware counts as a secure origin (`utils/origin.py`).
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(url: &str) -> (Host, u16, bool) {
        match MiddlewareUrl::parse(url).unwrap().endpoint {
            Endpoint::Tcp { host, port, tls } => (host, port, tls),
            Endpoint::Unix { .. } => panic!("not tcp"),
        }
    }

    #[test]
    fn parses_each_transport() {
        let unix = MiddlewareUrl::parse(super::super::DEFAULT_URL).unwrap();
        assert_eq!(unix.endpoint().kind(), TransportKind::UnixSocket);
        assert_eq!(
            unix.to_string(),
            "unix:///var/run/middleware/middlewared.sock"
        );
        assert_eq!(
            unix.endpoint().request_uri("/api/current"),
            "ws://localhost/api/current"
        );
        assert_eq!(unix.endpoint().host_header(), "localhost");

        assert_eq!(
            tcp("ws://127.0.0.1:6000"),
            (Host::Ip("127.0.0.1".parse().unwrap()), 6000, false)
        );
        assert_eq!(tcp("ws://LOCALHOST:6000/"), (Host::Localhost, 6000, false));
        assert_eq!(
            tcp("wss://nas.example.com"),
            (Host::Name("nas.example.com".into()), 443, true)
        );
        assert_eq!(
            tcp("wss://[::1]:8443"),
            (Host::Ip("::1".parse().unwrap()), 8443, true)
        );
        assert_eq!(
            tcp("ws://[::1]"),
            (Host::Ip("::1".parse().unwrap()), 80, false)
        );
        let url = MiddlewareUrl::parse("wss://[::1]:8443").unwrap();
        assert_eq!(url.to_string(), "wss://[::1]:8443");
        assert_eq!(url.endpoint().host_header(), "[::1]:8443");
        assert_eq!(
            url.endpoint().request_uri("/websocket"),
            "wss://[::1]:8443/websocket"
        );
    }

    #[test]
    fn refuses_bad_urls_naming_the_rule() {
        for (url, needle) in [
            ("http://127.0.0.1", "unknown scheme"),
            ("127.0.0.1:6000", "expected unix"),
            ("unix://relative.sock", "absolute socket path"),
            ("ws://127.0.0.1:6000/api/current", "picks the API endpoint"),
            ("ws://127.0.0.1:0", "port"),
            ("ws://127.0.0.1:99999", "port"),
            ("ws://:6000", "host is missing"),
            ("wss://bad_host!", "IP address or a DNS name"),
            ("ws://127.0.0.1/?x=1", "query"),
            ("wss://[::1", "closing"),
        ] {
            let err = MiddlewareUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(err.contains(url), "{url}: {err}");
        }
    }

    #[test]
    fn credentials_are_refused_and_never_echoed() {
        let err = MiddlewareUrl::parse("wss://root:CANARY-API-KEY-0a7d62@nas:443").unwrap_err();
        assert_eq!(err, UrlError::Credentials);
        assert!(!err.to_string().contains("CANARY"));
    }

    #[test]
    fn loopback_rule() {
        for ip in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "192.0.2.10",
            "10.0.0.1",
            "::ffff:192.0.2.10",
            "0.0.0.0",
            "fe80::1",
        ] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
        let plain = MiddlewareUrl::parse("ws://localhost:6000").unwrap();
        assert!(
            plain
                .endpoint()
                .plain_peer_allowed("127.0.0.1".parse().unwrap())
        );
        assert!(
            !plain
                .endpoint()
                .plain_peer_allowed("192.0.2.10".parse().unwrap())
        );
        let tls = MiddlewareUrl::parse("wss://192.0.2.10").unwrap();
        assert!(
            tls.endpoint()
                .plain_peer_allowed("192.0.2.10".parse().unwrap())
        );
    }

    #[test]
    fn localhost_needs_no_dns() {
        assert_eq!(
            Host::Localhost.literal_addrs(6000).unwrap(),
            vec!["127.0.0.1:6000".parse().unwrap()]
        );
        assert!(Host::Name("nas.lan".into()).literal_addrs(443).is_none());
    }
}

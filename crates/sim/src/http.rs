//! The HTTP/1.x edge of the simulator's listeners: read one request head, answer plain
//! requests (`GET /api/versions`, 302/307/400/404), or hand the connection to the
//! WebSocket handshake with the bytes already read.
//!
//! Owns: [`read_request_head`] (bounded in size and time), [`Prefixed`] (a stream that
//! replays the bytes read before the handshake), [`write_response`], and the TLS
//! identity of the HTTPS listener ([`TlsIdentity`], a self-signed certificate made with
//! rcgen, like a fresh TrueNAS's `truenas_default`).
//! Does not: route (`routes.rs`) or speak WebSocket (`server.rs`).
//! Invariants: a request head is at most [`MAX_HEAD`] bytes; every plain answer carries
//! `Content-Length` and `Connection: close`, and the stream is shut down after it (TLS
//! sends `close_notify`).
//! Limitations: one request per connection (no keep-alive), no request bodies.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use truenas_agent::middleware::tls::CertFingerprint;

/// The largest request head read (nginx's default `large_client_header_buffers` is 8 KiB).
pub const MAX_HEAD: usize = 8192;

/// What the simulator needs from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target as sent (path and query).
    pub path: String,
    /// The `Host` header (empty when absent).
    pub host: String,
    /// `Upgrade: websocket` was asked for.
    pub upgrade: bool,
}

/// Reads bytes until a complete request head. Returns it and every byte read (the head
/// and anything after it), or `None` if the peer closed, sent garbage or too much.
pub async fn read_request_head<S>(stream: &mut S) -> Option<(RequestHead, Vec<u8>)>
where
    S: AsyncRead + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let head = RequestHead {
                    method: req.method.unwrap_or_default().to_owned(),
                    path: req.path.unwrap_or_default().to_owned(),
                    host: header("host").unwrap_or_default(),
                    upgrade: header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")),
                };
                return Some((head, buf));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => return None,
        }
    }
}

/// Writes a plain HTTP answer and shuts the stream down.
pub async fn write_response<S>(
    stream: &mut S,
    code: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    use std::fmt::Write as _;
    let mut head = format!("HTTP/1.1 {code} {}\r\n", reason(code));
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(
        head,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    stream.shutdown().await
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        302 => "Moved Temporarily",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Status",
    }
}

/// A stream that first yields `prefix` (bytes already read from `inner`), then `inner`.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// Replays `prefix` before reading `inner`.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let start = self.at;
            buf.put_slice(&self.prefix[start..start + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Why a TLS identity could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsIdentityError {
    #[error("cannot generate a self-signed certificate")]
    Generate(#[source] rcgen::Error),
    #[error("rustls refused the certificate and key")]
    Rustls(#[source] rustls::Error),
}

/// The certificate and key of the HTTPS listener, as a ready rustls configuration.
#[derive(Clone)]
pub struct TlsIdentity {
    pub(crate) config: Arc<rustls::ServerConfig>,
    cert: CertificateDer<'static>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("sha256", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A fresh self-signed certificate for `names` (DNS names or IP addresses), like the
    /// `truenas_default` certificate of a new box.
    pub fn self_signed(names: &[&str]) -> Result<Self, TlsIdentityError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified =
            rcgen::generate_simple_self_signed(names).map_err(TlsIdentityError::Generate)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        Self::new(certified.cert.der().clone(), key)
    }

    /// An identity from a certificate and its key.
    pub fn new(
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsIdentityError> {
        truenas_agent::middleware::tls::install_crypto_provider();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsIdentityError::Rustls)?
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .map_err(TlsIdentityError::Rustls)?;
        Ok(Self {
            config: Arc::new(config),
            cert,
        })
    }

    /// The certificate's SHA-256 (what `--tls-pin` takes).
    pub fn fingerprint(&self) -> CertFingerprint {
        CertFingerprint::of(self.cert.as_ref())
    }

    /// The certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heads_are_read_and_replayed() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client
            .write_all(b"GET /api/current HTTP/1.1\r\nHost: nas:443\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\nEXTRA")
            .await
            .unwrap();
        let (head, raw) = read_request_head(&mut server).await.unwrap();
        assert_eq!(head.path, "/api/current");
        assert_eq!(head.host, "nas:443");
        assert!(head.upgrade);
        let mut replay = Prefixed::new(raw, server);
        let mut first = vec![0_u8; 4];
        replay.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"GET ");
    }

    #[tokio::test]
    async fn garbage_and_huge_heads_are_dropped() {
        let (mut client, mut server) = tokio::io::duplex(MAX_HEAD * 4);
        client
            .write_all(b"\x16\x03\x01 not http\r\n\r\n")
            .await
            .unwrap();
        assert!(read_request_head(&mut server).await.is_none());
        let (mut client, mut server) = tokio::io::duplex(MAX_HEAD * 4);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD * 2));
        client.write_all(&big).await.unwrap();
        assert!(read_request_head(&mut server).await.is_none());
    }

    #[test]
    fn self_signed_identity() {
        let id = TlsIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
        assert_eq!(id.fingerprint(), CertFingerprint::of(id.certificate()));
        assert!(format!("{id:?}").contains("sha256"));
    }
}

//! A real headless Chromium for browser tests, driven through WebDriver (Debian's
//! `chromium` and `chromium-driver` packages; `.ci/run` installs them).
//!
//! - [`Browser::start`] runs `chromedriver` on a free loopback port, waits (bounded) until it
//!   is ready, and opens a session of headless Chromium with the flags this machine needs
//!   (`--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
//!   --disable-background-networking --disable-component-update --disable-sync`, a fresh
//!   `--user-data-dir`): without the networking flags Chromium keeps dialling Google's
//!   hosts, which the closed network refuses.
//! - [`Browser::goto`], [`Browser::fill`], [`Browser::click`], [`Browser::text`],
//!   [`Browser::wait_text`], [`Browser::screenshot_png`]: the few WebDriver commands the
//!   dashboard tests need, each with a timeout. A thin client over `reqwest` (already a
//!   dependency) instead of a WebDriver crate: six endpoints of the W3C protocol.
//! - [`Browser::close`] ends the session (Chromium exits) and the driver; dropping without
//!   it still ends both (a blocking `DELETE` of the session, then the driver is killed).
//!   `chromedriver` runs under `setpriv --pdeathsig KILL`, so a test process that dies
//!   takes it along.
//!
//! Binaries: `$CHROMEDRIVER` / `$CHROMIUM`, else `/usr/bin/chromedriver` / `/usr/bin/chromium`.

#![allow(dead_code, reason = "helpers for the dashboard tests too")]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// How long chromedriver may take to answer `/status` with `ready: true`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of one WebDriver command (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// WebDriver's key for an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The flags Chromium runs with.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

fn binary(var: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: install Debian's `{package}` package (`apt-get install -y chromium \
         chromium-driver`; .ci/run does) or set {var}",
        path.display()
    );
    path
}

/// A WebDriver session on headless Chromium.
pub struct Browser {
    driver: Option<Child>,
    port: u16,
    session: String,
    http: reqwest::Client,
    profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Call it from the test's own
    /// thread (the driver dies with the thread that started it).
    pub async fn start() -> Self {
        let driver_bin = binary("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver");
        let chromium = binary("CHROMIUM", "/usr/bin/chromium", "chromium");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        // The port is free now; another process could take it before chromedriver binds:
        // then chromedriver exits and we try another.
        for _ in 0..5 {
            let port = free_port();
            let mut driver = Command::new("setpriv")
                .arg("--pdeathsig=KILL")
                .arg(&driver_bin)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if !wait_ready(&http, port, &mut driver).await {
                let _ = driver.kill();
                let _ = driver.wait();
                continue;
            }
            let mut browser = Self {
                driver: Some(driver),
                port,
                session: String::new(),
                http,
                profile,
            };
            browser.session = browser.new_session(&chromium).await;
            return browser;
        }
        panic!("chromedriver did not start on a free port (5 tries)");
    }

    async fn new_session(&self, chromium: &Path) -> String {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", self.profile.path().display()));
        let body = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let reply = self.raw("POST", "/session", Some(body)).await;
        reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from chromedriver: {reply}"))
            .to_owned()
    }

    /// One WebDriver command; panics on a WebDriver error, naming it.
    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "WebDriver {method} {path} failed ({status}): {}",
            value["value"]
        );
        value["value"].clone()
    }

    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Opens `url` (returns once the page loaded).
    pub async fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({"url": url})))
            .await;
    }

    /// The current page's title.
    pub async fn title(&self) -> String {
        self.command("GET", "/title", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The current URL.
    pub async fn current_url(&self) -> String {
        self.command("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching the CSS selector, if any.
    pub async fn try_find(&self, css: &str) -> Option<String> {
        let url = format!(
            "http://127.0.0.1:{}/session/{}/element",
            self.port, self.session
        );
        let response = self
            .http
            .post(&url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let value: Value = response.json().await.ok()?;
        value["value"][ELEMENT_KEY].as_str().map(str::to_owned)
    }

    /// The element matching the CSS selector; panics if there is none.
    pub async fn find(&self, css: &str) -> String {
        self.try_find(css)
            .await
            .unwrap_or_else(|| panic!("no element matches `{css}`"))
    }

    /// Replaces the text of an input.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.command("POST", &format!("/element/{id}/clear"), None)
            .await;
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Clicks an element.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.command("POST", &format!("/element/{id}/click"), None)
            .await;
    }

    /// The rendered text of an element.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.command("GET", &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The rendered text of the element matching `css`, or `None` when there is none or
    /// it went stale before it was read (the page changed in between).
    pub async fn try_text(&self, css: &str) -> Option<String> {
        let id = self.try_find(css).await?;
        let url = format!(
            "http://127.0.0.1:{}/session/{}/element/{id}/text",
            self.port, self.session
        );
        let response = self.http.get(&url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let value: Value = response.json().await.ok()?;
        value["value"].as_str().map(str::to_owned)
    }

    /// Waits (bounded) until an element matching `css` exists and its text contains
    /// `needle`; returns the text. Panics with what was there at the deadline.
    pub async fn wait_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            // The page may be replaced between finding the element and reading it (a
            // form's POST answered by a redirect): a stale element is read again.
            if let Some(text) = self.try_text(css).await {
                if text.contains(needle) {
                    return text;
                }
                assert!(
                    Instant::now() < deadline,
                    "`{css}` says {text:?}, not {needle:?}"
                );
            } else {
                assert!(Instant::now() < deadline, "no element matches `{css}`");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot_png(&self) -> Vec<u8> {
        let b64 = self.command("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .unwrap()
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub async fn save_screenshot(&self, path: &Path) {
        std::fs::File::create(path)
            .unwrap()
            .write_all(&self.screenshot_png().await)
            .unwrap();
    }

    /// Ends the session (Chromium exits) and the driver.
    pub async fn close(mut self) {
        self.raw("DELETE", &format!("/session/{}", self.session), None)
            .await;
        self.session.clear();
        self.stop_driver();
    }

    fn stop_driver(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            let _ = driver.kill();
            let _ = driver.wait();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Blocking, std-only: there may be no runtime left to run an async request.
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    stream,
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    self.session
                );
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        self.stop_driver();
    }
}

async fn wait_ready(http: &reqwest::Client, port: u16, driver: &mut Child) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    let url = format!("http://127.0.0.1:{port}/status");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = driver.try_wait() {
            return false;
        }
        if let Ok(response) = http.get(&url).timeout(Duration::from_secs(5)).send().await {
            if let Ok(value) = response.json::<Value>().await {
                if value["value"]["ready"] == true {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Width and height of a PNG (from its IHDR chunk), or `None` when it is not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(SIGNATURE) || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let word = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    Some((word(16)?, word(20)?))
}

// ---- the proof: a form on a tiny axum page, filled and submitted in real Chromium ----

mod page {
    use axum::Router;
    use axum::response::Html;
    use axum::routing::{get, post};

    pub const FORM: &str = r#"<!doctype html>
<html><head><title>Browser harness</title></head>
<body style="font-family: sans-serif; background: #f4f6f8">
<h1>Who is there?</h1>
<form method="post" action="/greet">
  <label>Name <input id="name" name="name" value="nobody"></label>
  <button id="go" type="submit">Greet</button>
</form>
</body></html>"#;

    /// `application/x-www-form-urlencoded` value of `key` (`+` and `%XX` decoded).
    pub fn form_value(body: &str, key: &str) -> Option<String> {
        body.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            if k != key {
                return None;
            }
            let v = v.replace('+', " ");
            let mut out = Vec::new();
            let bytes = v.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
                    if let Ok(b) = u8::from_str_radix(v.get(i + 1..i + 3)?, 16) {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                }
                out.push(bytes[i]);
                i += 1;
            }
            String::from_utf8(out).ok()
        })
    }

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }

    pub fn router() -> Router {
        Router::new()
            .route("/", get(|| async { Html(FORM) }))
            .route(
                "/greet",
                post(|body: String| async move {
                    let name = form_value(&body, "name").unwrap_or_default();
                    Html(format!(
                        "<!doctype html><html><head><title>Greeted</title></head><body>\
                         <p id=\"greeting\">Hello, {}!</p></body></html>",
                        escape(&name)
                    ))
                }),
            )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_fills_a_form_clicks_reads_and_screenshots() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, page::router()).await });
    let browser = Browser::start().await;
    browser.goto(&format!("http://{addr}/")).await;
    assert_eq!(browser.title().await, "Browser harness");
    browser.fill("#name", "Ada <Lovelace> & co").await;
    browser.click("#go").await;
    let greeting = browser
        .wait_text("#greeting", "Hello", Duration::from_secs(30))
        .await;
    // The typed text went through a real form POST and came back escaped and rendered.
    assert_eq!(greeting, "Hello, Ada <Lovelace> & co!");
    assert!(browser.current_url().await.ends_with("/greet"));
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("greeted.png");
    browser.save_screenshot(&shot).await;
    let (width, height) = png_size(&std::fs::read(&shot).unwrap()).expect("a PNG");
    assert!(width >= 600 && height >= 400, "{width}x{height}");
    browser.close().await;
    server.abort();
}

#[test]
fn form_values_decode() {
    assert_eq!(
        page::form_value("a=1&name=Ada+%3CL%3E+%26", "name").as_deref(),
        Some("Ada <L> &")
    );
    assert_eq!(page::form_value("a=1", "name"), None);
    assert_eq!(png_size(b"not a png"), None);
}

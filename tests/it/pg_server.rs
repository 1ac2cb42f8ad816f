//! A real PostgreSQL server for tests (Debian's `postgresql` package; `.ci/run` installs it).
//!
//! - [`PgServer::start`] runs `initdb` into a fresh temp dir and starts `postgres` on a unix
//!   socket in that dir (no TCP), waits (bounded) until it accepts connections, and stops
//!   it when dropped (fast shutdown, then SIGKILL). The binaries come from
//!   `$PG_BINDIR`, `pg_config --bindir`, or the newest `/usr/lib/postgresql/*/bin`.
//! - As root (CI) the server runs as the `postgres` user (PostgreSQL refuses root): the temp
//!   dir is chowned to it and every command goes through `setpriv`. `--pdeathsig KILL`
//!   ends the server if the test process dies without dropping it (nextest timeout).
//!   Call `start` from the test's own thread (the `#[tokio::test]` body), not from a
//!   spawned task: the death signal follows the thread that started the server.
//! - [`PgServer::fresh_database`] creates a new empty database and returns its URL, so
//!   one server can hold several independent test databases.
//! - Test clusters run with `fsync=off`: they are thrown away, and the tests do not
//!   measure durability.

#![allow(
    dead_code,
    reason = "helpers shared by the database and dashboard tests"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection as _;

/// How long the server may take to accept connections (a loaded 2-core CI box).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// The port number only names the socket file (`.s.PGSQL.<port>`); there is no TCP.
const PORT: u16 = 5432;

/// A running throw-away PostgreSQL server.
pub struct PgServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bindir: PathBuf,
    /// Run commands as this user (`Some("postgres")` when we are root).
    run_as: Option<String>,
    next_db: AtomicU32,
}

/// The directory of PostgreSQL's server binaries, or a panic that says how to get them.
pub fn bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && dir.join("postgres").exists() && dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin). \
             Install them with `apt-get install -y postgresql` (.ci/run does), or set PG_BINDIR"
        )
    }, |(_, dir)| dir)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl PgServer {
    /// `initdb` + `postgres` in a new temp dir; returns once the server accepts connections.
    pub fn start() -> Self {
        let bindir = bindir();
        let dir = tempfile::Builder::new()
            .prefix("pgtest")
            .tempdir_in("/tmp")
            .unwrap();
        let run_as = is_root().then(|| "postgres".to_owned());
        if let Some(user) = &run_as {
            let user = nix::unistd::User::from_name(user)
                .unwrap()
                .unwrap_or_else(|| {
                    panic!("running as root needs the `postgres` user (apt-get install postgresql)")
                });
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
        }
        let mut server = Self {
            child: None,
            dir,
            bindir,
            run_as,
            next_db: AtomicU32::new(0),
        };
        let initdb = server
            .command("initdb", false)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .arg("--no-instructions")
            .arg("-D")
            .arg(server.data_dir())
            .output()
            .unwrap();
        assert!(
            initdb.status.success(),
            "initdb failed: {}\n{}",
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        let log = std::fs::File::create(server.log_path()).unwrap();
        if let Some(user) = &server.run_as {
            let user = nix::unistd::User::from_name(user).unwrap().unwrap();
            nix::unistd::chown(&server.log_path(), Some(user.uid), Some(user.gid)).unwrap();
        }
        let child = server
            .command("postgres", true)
            .arg("-D")
            .arg(server.data_dir())
            .arg("-k")
            .arg(server.socket_dir())
            .args(["-p", &PORT.to_string()])
            .args(["-c", "listen_addresses="])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            .args(["-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        server.child = Some(child);
        server.wait_ready();
        server
    }

    /// A command from the server's bindir, run as the server's user when we are root.
    fn command(&self, program: &str, die_with_parent: bool) -> Command {
        let program = self.bindir.join(program);
        let mut command = match &self.run_as {
            None if !die_with_parent => Command::new(program),
            None => {
                let mut c = Command::new("setpriv");
                c.arg("--pdeathsig=KILL").arg(program);
                c
            }
            Some(user) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={user}"))
                    .arg(format!("--regid={user}"))
                    .arg("--init-groups");
                if die_with_parent {
                    c.arg("--pdeathsig=KILL");
                }
                c.arg(program);
                c
            }
        };
        // initdb and postgres look at their working directory; root's may be closed to them.
        command.current_dir(self.dir.path());
        command
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost/{name}?host={}&port={PORT}",
            self.socket_dir().display()
        )
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = self.url("postgres");
        // A runtime of its own on a thread of its own: the caller may be inside a runtime.
        let connects = move || {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url))
                        .await
                        .is_ok_and(|c| c.is_ok())
                })
            })
            .join()
            .unwrap()
        };
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postgres exited at start ({status}):\n{}", self.log());
            }
            if connects.clone()() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within {READY_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates a new empty database; returns its URL.
    pub async fn fresh_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{n}");
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        let create = format!("CREATE DATABASE {name}");
        sqlx::query(&create).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        self.url(&name)
    }

    /// The server's process id (to check that it stops).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Runs a client program of the bindir (e.g. `pg_dump`) against database `name`;
    /// returns its stdout.
    pub fn client(&self, program: &str, name: &str, args: &[&str]) -> Vec<u8> {
        let out = Command::new(self.bindir.join(program))
            .args(["-h"])
            .arg(self.socket_dir())
            .args(["-p", &PORT.to_string(), "-U", "postgres"])
            .args(args)
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        // Fast shutdown: disconnect clients, checkpoint, exit.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[tokio::test]
async fn starts_serves_fresh_databases_and_stops_on_drop() {
    let server = PgServer::start();
    let a = server.fresh_database().await;
    let b = server.fresh_database().await;
    assert_ne!(a, b);
    let mut conn = sqlx::PgConnection::connect(&a).await.unwrap();
    sqlx::query("CREATE TABLE t (x BIGINT)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    // The other database does not see it: each test database starts empty.
    let mut conn = sqlx::PgConnection::connect(&b).await.unwrap();
    let err = sqlx::query("SELECT x FROM t")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    conn.close().await.unwrap();
    let user: (String,) = {
        let mut conn = sqlx::PgConnection::connect(&a).await.unwrap();
        sqlx::query_as("SELECT current_user::text")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(user.0, "postgres");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.pid()).unwrap());
    let dir = server.socket_dir().to_owned();
    drop(server);
    assert!(
        nix::sys::signal::kill(pid, None).is_err(),
        "the server process is gone after drop"
    );
    assert!(!dir.exists(), "its temp dir is removed");
}

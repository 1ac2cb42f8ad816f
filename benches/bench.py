#!/usr/bin/env python3
"""Driver of benches/run.sh: runs every benchmark of issue #6 and prints the tables.

Not a test and not part of CI: it measures wall time, memory and CPU on a shared,
noisy machine. Every figure is a median of several runs, every comparison a ratio of
runs interleaved in the same session, and the 1-minute load average is recorded next
to each figure.

How things are measured:
- wall time: from just before fork/exec to the child's exit (``os.wait4``), the same
  for the agent and for Python (so interpreter start-up and imports count for Python
  exactly as process start-up counts for the agent);
- peak memory: the child's ``ru_maxrss`` as GNU time (``/usr/bin/time -f %M``) reports
  it. Not ``wait4`` here: Linux folds the pre-exec memory of the forked parent (this
  ~18 MiB Python driver) into the child's ``maxrss``; /usr/bin/time is a ~1 MiB C
  program, so its floor (``time true``: ~1 MiB) is far below anything measured;
- CPU time: user + system of the child from ``wait4`` (µs resolution);
- middleware calls: the simulator's call record (``benchtool sim``), exact;
- idle CPU and wake-ups: ``/proc/PID/task/*/schedstat`` (on-CPU ns and the number of
  times each thread was scheduled in), ``/proc/PID/stat`` (utime/stime ticks) and
  ``voluntary_ctxt_switches``, before and after the idle window;
- RSS: ``VmRSS``/``VmHWM`` from ``/proc/PID/status``, sampled through the idle window.
- idle writes: inotify on the agent's state directory (files renamed into place, i.e.
  ``fs::write_atomic``, and files closed after writing) and ``/proc/PID/io``; the
  simulator's call record is polled every second to time-stamp calls and split the
  window into passes.

Only loopback addresses are used. No secret is involved: the documents carry fake
values made up here.
"""

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The identifiers of the tests' fake B2 (crates/sim/src/fake_b2.rs), so `verify` can check the
# bucket against `benchtool b2`.
KEY_ID = "0051a2b3c4d5e6f0000000007"
LOCATION = "a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9"
GUID = "9babab19-acc0-4587-aa05-ccd8103a1148"
BUCKET = "truenas-" + LOCATION.replace("-", "")
APP_KEY = "bench-fake-b2-application-key"
POOL_COUNTS = [1, 2, 4, 8, 16]
GNU_TIME = "/usr/bin/time"


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg", encoding="ascii") as f:
        return float(f.read().split()[0])


def median(xs):
    return statistics.median(xs) if xs else None


def run_measured(argv, out_dir, tag, env=None, stdin_path=None):
    """Runs argv to completion; returns wall time, peak RSS and exit code.

    stdout/stderr go to files (so nothing blocks on a pipe and ``wait4`` can reap the
    child with its resource usage)."""
    out_path = Path(out_dir) / f"{tag}.out"
    err_path = Path(out_dir) / f"{tag}.err"
    rss_path = Path(out_dir) / f"{tag}.maxrss"
    argv = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *argv]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        load = loadavg()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=stdin, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if stdin_path:
            stdin.close()
    return {
        "wall_s": wall,
        "maxrss_kib": int(rss_path.read_text().strip().splitlines()[-1]),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rc": proc.returncode,
        "load": load,
        "stdout": out_path.read_text(errors="replace"),
        "stderr_path": str(err_path),
    }


def run_measured_all(argvs, out_dir, tag):
    """Runs several commands at once (as run_measured each); returns their results in order."""
    if len(argvs) == 1:
        return [run_measured(argvs[0], out_dir, tag)]
    started = []
    load = loadavg()
    for k, argv in enumerate(argvs):
        out_path = Path(out_dir) / f"{tag}-{k}.out"
        err_path = Path(out_dir) / f"{tag}-{k}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        started.append((proc, out_path, err_path, time.perf_counter()))
    results = []
    for proc, out_path, err_path, t0 in started:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        results.append({
            "wall_s": time.perf_counter() - t0,
            "maxrss_kib": usage.ru_maxrss,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "rc": proc.returncode,
            "load": load,
            "stdout": out_path.read_text(errors="replace"),
            "stderr_path": str(err_path),
        })
    return results


def read_proc(pid):
    """CPU, wake-up and memory counters of a process (all threads)."""
    status = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    oncpu_ns = 0
    slices = 0
    vol = 0
    invol = 0
    threads = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                run_ns, _wait_ns, n = (int(x) for x in f.read().split())
            with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol += int(line.split()[1])
        except FileNotFoundError:
            continue  # a thread that just ended
        oncpu_ns += run_ns
        slices += n
        threads += 1
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    utime, stime = int(fields[11]) / ticks, int(fields[12]) / ticks
    io = {}
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as f:
            for line in f:
                k, _, v = line.partition(":")
                io[k] = int(v)
    except (FileNotFoundError, PermissionError):
        pass
    return {
        "t": time.monotonic(),
        "rss_kib": int(status["VmRSS"].split()[0]),
        # Anonymous (heap, stacks) vs file-backed (the binary's own pages, clean and
        # reclaimable) parts of VmRSS.
        "rss_anon_kib": int(status["RssAnon"].split()[0]),
        "rss_file_kib": int(status["RssFile"].split()[0]),
        "hwm_kib": int(status["VmHWM"].split()[0]),
        "vmsize_kib": int(status["VmSize"].split()[0]),
        "threads": threads,
        "oncpu_ns": oncpu_ns,
        "timeslices": slices,
        "vol_ctxt": vol,
        "invol_ctxt": invol,
        "utime_s": utime,
        "stime_s": stime,
        # write(2)-family calls and bytes (all files and sockets), and bytes that reached
        # the block layer (0 when the kernel lacks task I/O accounting).
        "syscw": io.get("syscw", 0),
        "wchar": io.get("wchar", 0),
        "write_bytes": io.get("write_bytes", 0),
    }


class StateDirWatch:
    """inotify on a directory tree (ctypes, no dependency): counts files closed after
    writing and files renamed into place (how `fs::write_atomic` replaces a file: temp
    file, fsync, rename, directory fsync — two fsyncs each), per file name."""

    IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_ISDIR = 0x8, 0x80, 0x100, 0x40000000

    def __init__(self, root):
        import ctypes
        import ctypes.util
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.root = Path(root)
        self.dirs = {}
        self.renamed = {}
        self.closed_written = {}
        for d, _subdirs, _files in os.walk(root):
            self.add(Path(d))

    def add(self, d):
        mask = self.IN_CLOSE_WRITE | self.IN_MOVED_TO | self.IN_CREATE
        wd = self.libc.inotify_add_watch(self.fd, str(d).encode(), mask)
        if wd >= 0:
            self.dirs[wd] = d

    def drain(self):
        import struct
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            i = 0
            while i < len(buf):
                wd, mask, _cookie, n = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode(errors="replace")
                i += 16 + n
                d = self.dirs.get(wd, self.root)
                rel = str((d / name).relative_to(self.root))
                if mask & self.IN_CREATE and mask & self.IN_ISDIR:
                    self.add(d / name)
                elif mask & self.IN_MOVED_TO:
                    self.renamed[rel] = self.renamed.get(rel, 0) + 1
                elif mask & self.IN_CLOSE_WRITE:
                    self.closed_written[rel] = self.closed_written.get(rel, 0) + 1

    def close(self):
        os.close(self.fd)


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_at_start": loadavg(),
    }


# ---------------------------------------------------------------------------------------
# fixtures: scenarios and documents
# ---------------------------------------------------------------------------------------


def pool_names(n):
    return [f"pool{i}" for i in range(n)]


def scenario(n, flavor):
    """A fresh box with n data pools (plus the boot pool), SNMP v2c and stopped, and a
    B2 key that can see the bucket."""
    pools = [
        {"id": i + 1, "name": name, "guid": str(1_000_000_000_000 + i)}
        for i, name in enumerate(pool_names(n))
    ]
    pools.append({"id": n + 1, "name": "boot-pool", "guid": "9007199254740993", "boot": True})
    return {
        "flavor": flavor,
        "system": {"hostname": "truenas-bench"},
        "pools": pools,
        "b2_accounts": [{"account": KEY_ID, "valid": True, "buckets": [BUCKET]}],
    }


def document(n, revision=1):
    """The SOP document for n pools (fake secrets made up for the benchmark)."""
    return {
        "schema": "truenas-agent.config/v1",
        "revision": revision,
        "mode": "enforce",
        "device": {
            "guid": GUID,
            "org_uuid": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "location_uuid": LOCATION,
            "location_name": "Bench Office",
            "root_pool": "pool0",
        },
        "pools": pool_names(n),
        "b2": {"key_id": KEY_ID, "application_key": APP_KEY},
        "encryption": {"password": "bench-fake-encryption-password", "salt": "bench-fake-salt"},
        "cloud_sync": {
            "bandwidth": {
                "uplink_mbps": 100,
                "business_hours": {"start": "08:00", "end": "18:00"},
                "business_percent": 20,
                "off_hours_percent": 80,
            }
        },
        "snapshots": {},
        "snmp": {
            "username": "nmsbench",
            "auth_password": "bench-fake-snmp-auth",
            "privacy_passphrase": "bench-fake-snmp-priv",
        },
        "actions": [{"id": "bench-first-run", "type": "run_cloud_sync", "pool": "pool0"}],
    }


def write_json(path, value, mode=0o600):
    path = Path(path)
    path.write_text(json.dumps(value, indent=1))
    path.chmod(mode)
    return path


# ---------------------------------------------------------------------------------------
# the simulator with a call record (benchtool sim)
# ---------------------------------------------------------------------------------------


class Sim:
    def __init__(self, benchtool, work, n, flavor="25.04", job_ms=0, name="sim"):
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
        scen = write_json(self.dir / "scenario.json", scenario(n, flavor))
        self.socket = self.dir / "mw.sock"
        self.proc = subprocess.Popen(
            [benchtool, "sim", "--scenario", str(scen), "--socket", str(self.socket),
             "--job-ms", str(job_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.dir / "sim.err", "wb"), text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"benchtool sim did not start: see {self.dir}/sim.err")
        self.ready = json.loads(line)
        self.pid = self.ready["pid"]

    @property
    def url(self):
        return f"unix://{self.socket}"

    def cmd(self, c):
        self.proc.stdin.write(c + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def calls(self):
        return self.cmd("calls")

    def take_calls(self):
        c = self.cmd("calls")
        self.cmd("reset")
        return c

    def state(self):
        return self.cmd("state")

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def call_summary(c):
    return {
        "total": c["total"],
        "reads": c["reads"],
        "writes": c["writes"],
        "errors": c["errors"],
        "by_method": c["by_method"],
        "sequence": [s[1] for s in c["sequence"]],
    }


# ---------------------------------------------------------------------------------------
# the runs
# ---------------------------------------------------------------------------------------


class PgCluster:
    """A throwaway PostgreSQL server for central's benchmark (Debian's `postgresql`
    package): `initdb` into DIR, listening on a unix socket in DIR only, with the
    server's default durability (fsync on, synchronous_commit on: a report is
    acknowledged once its commit is on disk, as on SQLite). Run as the `postgres` user
    when the harness runs as root."""

    PORT = 5432

    def __init__(self, root):
        self.root = Path(root)
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.sock.mkdir(parents=True)
        log(f"PostgreSQL in {self.root}")
        bindir = os.environ.get("PG_BINDIR")
        if not bindir:
            r = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
            bindir = r.stdout.strip() if r.returncode == 0 else ""
        if not bindir or not (Path(bindir) / "postgres").exists():
            versions = sorted((int(v.name), v) for v in Path("/usr/lib/postgresql").glob("*") if v.name.isdigit())
            if not versions:
                raise SystemExit("PostgreSQL server binaries not found: apt-get install postgresql, or set PG_BINDIR")
            bindir = str(versions[-1][1] / "bin")
        self.bindir = Path(bindir)
        self.prefix = []
        if os.geteuid() == 0:
            self.prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        r = subprocess.run([*self.prefix, str(self.bindir / "initdb"), "-A", "trust", "-U", "postgres",
                            "-E", "UTF8", "--locale=C", "--no-instructions", "-D", str(self.data)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"initdb failed:\n{r.stdout}\n{r.stderr}")
        log_path = self.root / "postgres.log"
        self.proc = subprocess.Popen(
            [*self.prefix, str(self.bindir / "postgres"), "-D", str(self.data), "-k", str(self.sock),
             "-p", str(self.PORT), "-c", "listen_addresses=", "-c", "max_connections=100"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log_path, "wb"))
        deadline = time.monotonic() + 60
        while True:
            r = subprocess.run([str(self.bindir / "pg_isready"), "-h", str(self.sock), "-p", str(self.PORT)],
                               capture_output=True)
            if r.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"PostgreSQL did not start: {log_path}")
            time.sleep(0.2)
        log(f"PostgreSQL {self.version()} on {self.sock} (fsync on, synchronous_commit on)")

    def cpu_ns(self):
        """On-CPU time of the server and its live backends (connections central pools keep
        open for the whole run), in ns."""
        pids = [self.proc.pid]
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                with open(f"/proc/{self.proc.pid}/task/{tid}/children", encoding="ascii") as f:
                    pids += [int(x) for x in f.read().split()]
            except FileNotFoundError:
                continue
        total = 0
        for pid in pids:
            try:
                total += read_proc(pid)["oncpu_ns"]
            except FileNotFoundError:
                continue  # a backend that just ended
        return total

    def psql(self, sql, db="postgres"):
        return subprocess.run([str(self.bindir / "psql"), "-h", str(self.sock), "-p", str(self.PORT),
                               "-U", "postgres", "-d", db, "-XAtc", sql],
                              check=True, capture_output=True, text=True).stdout.strip()

    def version(self):
        return self.psql("SHOW server_version")

    def create_database(self, name):
        self.psql(f"CREATE DATABASE {name}")

    def url(self, name):
        return f"postgres://postgres@localhost/{name}?host={self.sock}&port={self.PORT}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class Bench:
    def __init__(self, args):
        self.a = args
        self.work = Path(tempfile.mkdtemp(prefix="truenas-agent-bench-"))
        self.results = {"machine": machine(), "commands": {}}
        log(f"work dir {self.work}")
        # Central's database: SQLite in its data directory (central's default), a
        # PostgreSQL server started here (`postgres`: one database per central data set),
        # or a PostgreSQL URL given (never logged: it may hold a password).
        self.pg = None
        self.database_url = None
        db = args.database
        if db == "sqlite":
            self.database_label = "SQLite"
        elif db == "postgres":
            # Its own directory: the work dir is root's 0700 and the server runs as `postgres`.
            self.pg = PgCluster(Path(tempfile.mkdtemp(prefix="truenas-agent-bench-pg-")))
            self.database_label = "PostgreSQL (started by the harness)"
        elif db.startswith(("postgres://", "postgresql://")):
            self.database_url = db
            self.database_label = "PostgreSQL (--database URL)"
        elif db == "files":
            self.database_label = "files (a truenas-central without a database)"
        else:
            raise SystemExit("--database: sqlite, postgres, files, or a postgres:// URL")

    def close(self):
        if self.pg is not None:
            self.pg.stop()

    # -- one client pass --------------------------------------------------------------

    def agent_apply(self, sim, doc_path, state_dir, tag):
        argv = [self.a.agent, "--middleware", sim.url, "--state-dir", str(state_dir),
                "apply", "-f", str(doc_path), "--allow-unsigned"]
        self.results["commands"]["agent_apply"] = " ".join(
            ["truenas-agent", "--middleware", "unix://SOCK", "--state-dir", "DIR",
             "apply", "-f", "DOC", "--allow-unsigned"])
        r = run_measured(argv, self.work, tag)
        r["calls"] = call_summary(sim.take_calls())
        return r

    def python_apply(self, sim, doc_path, tag):
        argv = [self.a.python, self.a.py_client, str(doc_path), str(sim.socket)]
        self.results["commands"]["python_apply"] = "python benches/py/sop_client.py DOC SOCK"
        r = run_measured(argv, self.work, tag)
        r["calls"] = call_summary(sim.take_calls())
        try:
            r["inner"] = json.loads(r["stdout"].strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            r["inner"] = None
        return r

    def check_rc(self, r, what, ok=(0,)):
        if r["rc"] not in ok:
            err = Path(r["stderr_path"]).read_text(errors="replace")[-2000:]
            raise SystemExit(f"{what} exited {r['rc']}:\n{r['stdout'][-2000:]}\n{err}")

    # -- (3) middleware calls per pool count -------------------------------------------

    def bench_calls(self):
        out = {}
        for n in self.a.pools:
            doc = write_json(self.work / f"doc-{n}.json", document(n))
            fresh, steady = [], []
            for i in range(self.a.runs):
                sim = Sim(self.a.benchtool, self.work, n)
                state = Path(tempfile.mkdtemp(prefix="state-", dir=self.work))
                try:
                    f = self.agent_apply(sim, doc, state, f"calls-{n}-{i}-fresh")
                    self.check_rc(f, f"fresh apply on {n} pools")
                    s = self.agent_apply(sim, doc, state, f"calls-{n}-{i}-steady")
                    self.check_rc(s, f"steady apply on {n} pools")
                finally:
                    sim.close()
                fresh.append(f)
                steady.append(s)
            out[n] = {
                "fresh": summarize_runs(fresh),
                "steady": summarize_runs(steady),
            }
            log(f"calls n={n}: fresh {out[n]['fresh']['calls']['total']} calls "
                f"({fmt_ms(out[n]['fresh']['wall_s'])}), steady "
                f"{out[n]['steady']['calls']['total']} calls ({fmt_ms(out[n]['steady']['wall_s'])})")
        self.results["calls"] = out

    # -- (5) against Python -------------------------------------------------------------

    def bench_python(self):
        n = 2
        doc = write_json(self.work / f"doc-{n}.json", document(n))
        rows = {"rust_fresh": [], "rust_steady": [], "py_fresh": [], "py_steady": []}
        states = {}
        # Warm-up (page cache, .pyc): one pass each, not counted.
        for who in ("rust", "py"):
            sim = Sim(self.a.benchtool, self.work, n)
            try:
                if who == "rust":
                    st = Path(tempfile.mkdtemp(prefix="state-", dir=self.work))
                    self.agent_apply(sim, doc, st, "warm-rust")
                else:
                    self.python_apply(sim, doc, "warm-py")
            finally:
                sim.close()
        for i in range(self.a.runs):
            order = ("rust", "py") if i % 2 == 0 else ("py", "rust")
            for who in order:
                sim = Sim(self.a.benchtool, self.work, n)
                try:
                    if who == "rust":
                        st = Path(tempfile.mkdtemp(prefix="state-", dir=self.work))
                        f = self.agent_apply(sim, doc, st, f"py-cmp-{i}-rust-fresh")
                        self.check_rc(f, "agent fresh apply")
                        if i == 0:
                            states["rust"] = sim.state()
                        s = self.agent_apply(sim, doc, st, f"py-cmp-{i}-rust-steady")
                        self.check_rc(s, "agent steady apply")
                    else:
                        f = self.python_apply(sim, doc, f"py-cmp-{i}-py-fresh")
                        self.check_rc(f, "python fresh apply")
                        if i == 0:
                            states["py"] = sim.state()
                        s = self.python_apply(sim, doc, f"py-cmp-{i}-py-steady")
                        self.check_rc(s, "python steady check")
                finally:
                    sim.close()
                rows[f"{who}_fresh"].append(f)
                rows[f"{who}_steady"].append(s)
        out = {k: summarize_runs(v) for k, v in rows.items()}
        for k in ("py_fresh", "py_steady"):
            inner = [r["inner"] for r in rows[k] if r.get("inner")]
            out[k]["import_s"] = median([x["import_s"] for x in inner])
            out[k]["work_s"] = median([x["work_s"] for x in inner])
        # The agent subscribes to job events before it starts a job; the script does not.
        def strip(seq):
            return [m for m in seq if m != "core.subscribe"]
        for phase in ("fresh", "steady"):
            r_seq = out[f"rust_{phase}"]["calls"]["sequence"]
            p_seq = out[f"py_{phase}"]["calls"]["sequence"]
            out[f"same_calls_{phase}"] = strip(r_seq) == strip(p_seq)
            out[f"calls_{phase}"] = {"agent": len(r_seq), "python": len(p_seq)}
        out["state_differences"] = diff_states(states.get("rust"), states.get("py"))
        # Paired ratios (run i of Python over run i of the agent), then their median.
        for phase in ("fresh", "steady"):
            r, p = rows[f"rust_{phase}"], rows[f"py_{phase}"]
            out[f"ratio_wall_{phase}"] = median([b["wall_s"] / a["wall_s"] for a, b in zip(r, p)])
            out[f"ratio_rss_{phase}"] = median(
                [b["maxrss_kib"] / a["maxrss_kib"] for a, b in zip(r, p)])
            out[f"ratio_cpu_{phase}"] = median([b["cpu_s"] / a["cpu_s"] for a, b in zip(r, p)])
            # Python's own time after its imports (connect + calls + compare) over the
            # agent's whole process: the ratio with Python's start-up cost taken out.
            out[f"ratio_work_{phase}"] = median(
                [b["inner"]["work_s"] / a["wall_s"] for a, b in zip(r, p) if b.get("inner")])
        out["baselines"] = self.baselines()
        if self.a.callgrind and shutil.which("valgrind"):
            out["instructions"] = self.python_instructions(doc)
        self.results["python"] = out
        log(f"python: fresh {fmt_ms(out['py_fresh']['wall_s'])} vs agent "
            f"{fmt_ms(out['rust_fresh']['wall_s'])} (x{out['ratio_wall_fresh']:.1f}), "
            f"RSS x{out['ratio_rss_fresh']:.1f}")

    def python_instructions(self, doc):
        """Instructions executed (callgrind) by one fresh apply and one steady-state check
        of each client: a CPU-work ratio that does not depend on the machine's load."""
        out = {}
        for who in ("rust", "py"):
            sim = Sim(self.a.benchtool, self.work, 2)
            st = Path(tempfile.mkdtemp(prefix="state-", dir=self.work))
            try:
                for phase in ("fresh", "steady"):
                    if who == "rust":
                        argv = [self.a.agent, "--middleware", sim.url, "--state-dir", str(st),
                                "apply", "-f", str(doc), "--allow-unsigned"]
                    else:
                        argv = [self.a.python, self.a.py_client, str(doc), str(sim.socket)]
                    out[f"{who}_{phase}"] = callgrind(argv, self.work, f"py-cmp-{who}-{phase}")
                    sim.take_calls()
            finally:
                sim.close()
        for phase in ("fresh", "steady"):
            a, b = out.get(f"rust_{phase}"), out.get(f"py_{phase}")
            out[f"ratio_{phase}"] = b / a if a and b else None
        log(f"instructions: {out}")
        return out

    def baselines(self):
        """Process start-up alone: the agent's --version, Python doing nothing, Python
        importing the client."""
        cases = {
            "agent_version": [self.a.agent, "--version"],
            "python_pass": [self.a.python, "-c", "pass"],
            "python_import_pytruenas": [self.a.python, "-c", "import pytruenas"],
        }
        out = {}
        for name, argv in cases.items():
            runs = [run_measured(argv, self.work, f"base-{name}-{i}") for i in range(self.a.runs)]
            out[name] = {"wall_s": median([r["wall_s"] for r in runs]),
                         "maxrss_kib": median([r["maxrss_kib"] for r in runs])}
        return out

    # -- (4) status and verify ----------------------------------------------------------

    def bench_status(self):
        n = 2
        doc = write_json(self.work / f"doc-{n}.json", document(n))
        sim = Sim(self.a.benchtool, self.work, n)
        state = Path(tempfile.mkdtemp(prefix="state-", dir=self.work))
        out = {}
        b2 = subprocess.Popen([self.a.benchtool, "b2", "--app-key", APP_KEY, "--pools", "pool0,pool1"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        b2_base = json.loads(b2.stdout.readline())["base"]
        try:
            self.check_rc(self.agent_apply(sim, doc, state, "status-setup"), "apply before status")
            base = [self.a.agent, "--middleware", sim.url, "--state-dir", str(state)]
            cases = {
                "status": base + ["status"],
                "status_json": base + ["status", "--json"],
                "status_with_doc": base + ["status", "-f", str(doc), "--allow-unsigned"],
                "verify_skip_b2": base + ["verify", "-f", str(doc), "--allow-unsigned", "--skip-b2"],
                "verify_fake_b2": base + ["verify", "-f", str(doc), "--allow-unsigned", "--b2-api", b2_base],
            }
            self.results["commands"]["status"] = "truenas-agent --middleware unix://SOCK --state-dir DIR status [--json | -f DOC --allow-unsigned]"
            self.results["commands"]["verify"] = ("truenas-agent --middleware unix://SOCK --state-dir DIR "
                                                  "verify -f DOC --allow-unsigned [--skip-b2 | --b2-api URL]")
            for name, argv in cases.items():
                first = run_measured(argv, self.work, f"{name}-probe")
                err = Path(first["stderr_path"]).read_text(errors="replace")
                # A subcommand that is not in this build (a placeholder, or a flag clap
                # does not know) prints only an error; status/verify always print a report.
                if not first["stdout"].strip():
                    lines = err.strip().splitlines()
                    out[name] = {"unavailable": lines[-1] if lines else f"exit {first['rc']}, no output"}
                    continue
                sim.take_calls()
                runs = [run_measured(argv, self.work, f"{name}-{i}") for i in range(self.a.status_runs)]
                c = sim.take_calls()
                out[name] = summarize_runs(runs)
                out[name]["rc_first"] = first["rc"]
                out[name]["calls_per_run"] = c["total"] / len(runs)
                out[name]["writes"] = c["writes"]
                if self.a.callgrind and shutil.which("valgrind"):
                    out[name]["instructions"] = callgrind(argv, self.work, name)
        finally:
            sim.close()
            b2.stdin.close()
            b2.wait(timeout=10)
        self.results["status"] = out
        for k, v in out.items():
            if "wall_s" in v:
                log(f"{k}: median {fmt_ms(v['wall_s'])}, p90 {fmt_ms(v['wall_p90_s'])}, rc {v['rc_first']}")
            else:
                log(f"{k}: {v}")

    # -- (1) idle footprint of the daemon -----------------------------------------------

    def central_env(self):
        """The environment of every truenas-central command: the PostgreSQL URL (if any) goes
        through TRUENAS_CENTRAL_DATABASE, never on a command line."""
        env = dict(os.environ)
        if self.database_url:
            env["TRUENAS_CENTRAL_DATABASE"] = self.database_url
        return env

    def start_central(self, data_name, devices, doc_for, instances=1):
        """keygen + register + publish + serve (`instances` servers on the same data) with
        the release truenas-central binary, on the database of --database."""
        cdir = Path(tempfile.mkdtemp(prefix=f"{data_name}-", dir=self.work))
        tool = self.a.central
        env = self.central_env()
        if self.pg is not None:
            self.pg.create_database(cdir.name.replace("-", "_"))
            self.database_url = self.pg.url(cdir.name.replace("-", "_"))
            env = self.central_env()
        keys = cdir / "keys"
        pub = subprocess.run([tool, "keygen", "--out", str(keys)],
                             check=True, capture_output=True, text=True).stdout.strip()
        data = cdir / "data"
        tokens = []
        for i in range(devices):
            name = f"nas-{i:03d}"
            tok = cdir / f"{name}.token"
            subprocess.run([tool, "register", "--dir", str(data), "--name", name,
                            "--token-out", str(tok)], check=True, capture_output=True, env=env)
            d = write_json(cdir / f"{name}.json", doc_for(i))
            subprocess.run([tool, "publish", "--dir", str(data), "--device", name,
                            "--document", str(d)], check=True, capture_output=True, env=env)
            tokens.append(tok)
        procs, urls = [], []
        for k in range(instances):
            proc = subprocess.Popen(
                [tool, "--log", "warn", "serve", "--dir", str(data), "--listen",
                 "127.0.0.1:0", "--key", str(keys / "signing.key")],
                stdout=subprocess.PIPE, stderr=open(cdir / f"serve-{k}.err", "wb"), text=True, env=env)
            line = proc.stdout.readline()
            if "http://" not in line:
                raise SystemExit(f"central serve did not start: {cdir}/serve-{k}.err")
            procs.append(proc)
            urls.append(line.strip().split()[-1] + "/")
        return {"dir": cdir, "data": data, "proc": procs[0], "procs": procs, "url": urls[0],
                "urls": urls, "pub": pub, "tokens": tokens, "env": env}

    def central_device(self, central, name):
        """`truenas-central devices --json`'s entry for `name` (None before it exists)."""
        r = subprocess.run([self.a.central, "devices", "--dir", str(central["data"]), "--json"],
                           capture_output=True, text=True, env=central["env"])
        if r.returncode != 0:
            return None
        devices = json.loads(r.stdout)
        if isinstance(devices, dict):
            devices = devices.get("devices", [])
        return next((d for d in devices if d.get("name") == name), None)

    def central_reports(self, central, name):
        """How many reports central holds for `name` (0 before the first)."""
        d = self.central_device(central, name)
        return (d or {}).get("reports_received", 0) or 0

    def central_latest_report(self, central, name):
        """The newest stored report of `name` (SQLite only: read from DIR/central.db)."""
        db = central["data"] / "central.db"
        if self.database_url or not db.exists():
            return None
        import sqlite3
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = con.execute(
                "SELECT r.body FROM reports r JOIN devices d ON d.id = r.device_id "
                "WHERE d.name = ? ORDER BY r.created_at DESC LIMIT 1", (name,)).fetchone()
        finally:
            con.close()
        return None if row is None else json.loads(row[0])

    def bench_idle(self):
        n = 2
        sim = Sim(self.a.benchtool, self.work, n, job_ms=200, name="idle-sim")
        central = self.start_central("idle-central", 1, lambda _i: document(n))
        home = Path(tempfile.mkdtemp(prefix="agent-", dir=self.work))
        state = home / "state"
        cfg = home / "agent.toml"
        central_url, ca_line = central["url"], ""
        if self.a.central_tls:
            proxy = TlsProxy(self.work / "idle-tls", central["url"])
            central_url, ca_line = proxy.url, f'ca_file = "{proxy.ca}"\n'
        cfg.write_text(
            f'state_dir = "{state}"\nroot_pool = "pool0"\n\n'
            f'[central]\nurl = "{central_url}"\ntoken_file = "{central["tokens"][0]}"\n{ca_line}'
            f'trusted_keys = ["{central["pub"]}"]\n\n'
            f'[middleware]\nurl = "{sim.url}"\n\n'
            # A simulated box: the daemon must not call Backblaze.
            f'[b2]\ncheck_interval_secs = 0\n')
        self.results["commands"]["idle"] = "truenas-agent --config agent.toml run"
        out = {"idle_secs": self.a.idle_secs, "central_tls": bool(self.a.central_tls)}
        agent = subprocess.Popen([self.a.agent, "--config", str(cfg), "run"],
                                 stdout=open(home / "run.out", "wb"),
                                 stderr=open(home / "run.err", "wb"))
        try:
            if "not available in this build" in wait_for_text(home / "run.err", 3):
                out["unavailable"] = "run is not available in this build yet"
                self.results["idle"] = out
                return
            converged_at, calls = self.wait_converged(sim, central, agent, home)
            out["startup_calls"] = calls
            out["converge_s"] = converged_at
            sim.take_calls()
            watch = StateDirWatch(state)
            before = read_proc(agent.pid)
            reports_before = self.central_reports(central, "nas-000")
            samples = [before]
            t_start = time.monotonic()
            deadline = t_start + self.a.idle_secs
            next_sample = t_start + 10
            loads = [loadavg()]
            # Every second: the simulator's record (to time-stamp each call to ~1 s and so
            # split the window into passes) and the state directory's inotify events;
            # every 10 s: /proc. The polling costs the driver and the simulator, not the
            # agent.
            stamped = []
            while time.monotonic() < deadline:
                time.sleep(min(1, max(0.05, deadline - time.monotonic())))
                if agent.poll() is not None:
                    raise SystemExit(f"the agent exited during the idle window: {home}/run.err")
                seq = sim.calls()["sequence"]
                now = time.monotonic() - t_start
                stamped.extend((round(now, 1), m[1], m[2]) for m in seq[len(stamped):])
                watch.drain()
                if time.monotonic() >= next_sample or time.monotonic() >= deadline:
                    samples.append(read_proc(agent.pid))
                    loads.append(loadavg())
                    next_sample += 10
            after = samples[-1]
            watch.drain()
            watch.close()
            dt_s = after["t"] - before["t"]
            idle_calls = sim.take_calls()
            # Passes: bursts of non-ping calls separated by more than 3 s of silence.
            passes = []
            for t, method, kind in stamped:
                if method == "core.ping":
                    continue
                if passes and t - passes[-1]["t_end"] <= 3:
                    p = passes[-1]
                else:
                    p = {"t_start": t, "reads": 0, "writes": 0, "by_method": {}}
                    passes.append(p)
                p["t_end"] = t
                p["reads" if kind == "R" else "writes"] += 1
                p["by_method"][method] = p["by_method"].get(method, 0) + 1
            out.update({
                "window_s": dt_s,
                "rss_kib_start": before["rss_kib"],
                "rss_kib_end": after["rss_kib"],
                "rss_kib_max_sampled": max(s["rss_kib"] for s in samples),
                "hwm_kib": after["hwm_kib"],
                "rss_anon_kib_end": after["rss_anon_kib"],
                "rss_file_kib_end": after["rss_file_kib"],
                "rss_anon_series_kib": [s["rss_anon_kib"] for s in samples],
                "vmsize_kib": after["vmsize_kib"],
                "threads": after["threads"],
                "cpu_s": (after["oncpu_ns"] - before["oncpu_ns"]) / 1e9,
                "cpu_ticks_s": (after["utime_s"] + after["stime_s"]) - (before["utime_s"] + before["stime_s"]),
                "timeslices": after["timeslices"] - before["timeslices"],
                "vol_ctxt": after["vol_ctxt"] - before["vol_ctxt"],
                "invol_ctxt": after["invol_ctxt"] - before["invol_ctxt"],
                "middleware_calls": {"total": idle_calls["total"], "writes": idle_calls["writes"],
                                     "by_method": idle_calls["by_method"],
                                     "stamped": stamped, "passes": passes},
                "state_dir_renames": watch.renamed,
                "state_dir_close_write": watch.closed_written,
                "state_dir_atomic_replacements": sum(watch.renamed.values()),
                "syscw": after["syscw"] - before["syscw"],
                "wchar": after["wchar"] - before["wchar"],
                "write_bytes": after["write_bytes"] - before["write_bytes"],
                "reports_sent": self.central_reports(central, "nas-000") - reports_before,
                "load_median": median(loads),
                "rss_series_kib": [s["rss_kib"] for s in samples],
            })
            latest = self.central_latest_report(central, "nas-000")
            if latest is not None:
                write_json(self.work / "report-template.json", latest)
            out["repairs"] = self.measure_repairs(sim)
            log(f"idle: RSS {out['rss_kib_end']} KiB (HWM {out['hwm_kib']}), CPU {out['cpu_s']:.3f} s "
                f"over {dt_s:.0f} s, {out['timeslices']} wake-ups, {idle_calls['total']} middleware calls, "
                f"passes (reads) {[p['reads'] for p in passes]}, state-dir renames {watch.renamed}")
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                agent.kill()
            central["proc"].send_signal(signal.SIGTERM)
            central["proc"].wait(timeout=30)
            sim.close()
        self.results["idle"] = out

    def measure_repairs(self, sim):
        """A technician's edits through the middleware (benchtool's `admin`: validated,
        with the middleware's events, outside the call record), one at a time on the
        converged box: the wall time until the box is back as the SOP says (the state
        polled every 50 ms), and the agent's calls in between."""
        def task(st, i):
            return sorted(st["cloud_sync_tasks"], key=lambda t: t["id"])[i]
        st = sim.state()
        t0, t1 = task(st, 0), task(st, 1)
        snap = sorted(st["snapshot_tasks"], key=lambda t: t["id"])[0]
        edits = [
            ("disable a Cloud Sync task",
             f'admin cloudsync.update [{t0["id"]}, {{"enabled": false}}]',
             lambda s: task(s, 0)["enabled"]),
            ("remove an exclude",
             f'admin cloudsync.update [{t1["id"]}, {json.dumps({"exclude": t1["exclude"][:-1]})}]',
             lambda s: task(s, 1)["exclude"] == t1["exclude"]),
            ("delete a snapshot task",
             f'admin pool.snapshottask.delete [{snap["id"]}]',
             lambda s: any(t["dataset"] == snap["dataset"] for t in s["snapshot_tasks"])),
        ]
        out = []
        for what, command, repaired in edits:
            time.sleep(15)  # past the debounce and back-off of the previous repair
            sim.take_calls()
            answer = sim.cmd(command)
            if "error" in answer:
                raise SystemExit(f"{what}: {answer['error']}")
            start = time.monotonic()
            while not repaired(sim.state()):
                if time.monotonic() - start > 120:
                    out.append({"edit": what, "repaired": False})
                    break
                time.sleep(0.05)
            else:
                took = time.monotonic() - start
                time.sleep(3)  # the report and the echo of the agent's own write
                calls = sim.take_calls()
                out.append({"edit": what, "repaired": True, "seconds": round(took, 2),
                            "calls": call_summary(calls)})
                log(f"repair: {what}: {took:.2f} s, {calls['total']} calls "
                    f"({calls['writes']} writes) {calls['by_method']}")
        return out

    def wait_converged(self, sim, central, agent, home, timeout=180, quiet=20):
        """Until central holds a report and the middleware saw writes and then no call
        for `quiet` seconds (longer than the daemon's 10 s job debounce, after which it
        reports the finished first run). Returns (seconds since start, the start-up call
        summary)."""
        t0 = time.monotonic()
        last_total, last_change = -1, time.monotonic()
        while time.monotonic() - t0 < timeout:
            if agent.poll() is not None:
                raise SystemExit(f"the agent exited (rc {agent.returncode}): see {home}/run.err")
            c = sim.calls()
            if c["total"] != last_total:
                last_total, last_change = c["total"], time.monotonic()
            if (c["writes"] > 0 and time.monotonic() - last_change >= quiet
                    and self.central_reports(central, "nas-000") > 0):
                return last_change - t0, call_summary(c)
            time.sleep(0.5)
        raise SystemExit(f"the agent did not converge within {timeout} s: see {home}/run.err")

    # -- (6) central server -------------------------------------------------------------

    def bench_central(self):
        devices = self.a.central_devices
        instances = self.a.central_instances
        if instances > 1 and not self.database_url and self.pg is None:
            raise SystemExit("--central-instances > 1 needs --database postgres (or a postgres:// URL): "
                             "one SQLite file serves one instance")
        central = self.start_central("load-central", devices, lambda _i: document(2), instances)
        tokens_file = central["dir"] / "tokens.txt"
        tokens_file.write_text("".join(Path(t).read_text().strip() + "\n" for t in central["tokens"]))
        tokens_file.chmod(0o600)
        template = Path(self.a.report_template) if self.a.report_template else self.work / "report-template.json"
        if template.exists():
            report = json.loads(template.read_text())
            if "schema" not in report and "report" in report:
                report = report["report"]  # the old file store's latest.json: {"received_at", "report", …}
            template_source = (f"--report-template {template}" if self.a.report_template
                               else "the idle daemon's last report")
        else:
            report = synthetic_report()
            template_source = "synthetic (the daemon's report was not available)"
        tpl = write_json(central["dir"] / "report.json", report)
        self.results["commands"]["central_etag"] = (
            "benchtool load --url URL --tokens FILE --mode etag --concurrency C --requests N --max-secs S")
        self.results["commands"]["central_report"] = (
            "benchtool load --url URL --tokens FILE --mode report --report-template FILE --concurrency C "
            "--requests N --max-secs S")
        out = {"devices": devices, "report_bytes": len(json.dumps(report)), "report_template": template_source,
               "database": self.database_label, "instances": instances}
        # The connections are split over the instances (one load generator per instance,
        # all running at once); the figures are the sum of their rates.
        per_instance = max(1, self.a.concurrency // instances)
        try:
            for mode in ("etag", "report"):
                runs = []
                for i in range(self.a.central_runs):
                    argvs = []
                    for k, url in enumerate(central["urls"]):
                        argv = [self.a.benchtool, "load", "--url", url, "--tokens", str(tokens_file),
                                "--mode", mode, "--concurrency", str(per_instance),
                                "--requests", str(self.a.central_requests // instances),
                                "--max-secs", str(self.a.central_secs)]
                        if mode == "report":
                            argv += ["--report-template", str(tpl)]
                        argvs.append(argv)
                    pg_before = self.pg.cpu_ns() if self.pg is not None else None
                    before = [read_proc(p.pid) for p in central["procs"]]
                    rs = run_measured_all(argvs, self.work, f"load-{mode}-{i}")
                    after = [read_proc(p.pid) for p in central["procs"]]
                    pg_after = self.pg.cpu_ns() if self.pg is not None else None
                    parts = []
                    for r in rs:
                        self.check_rc(r, f"load {mode}")
                        parts.append(json.loads(r["stdout"].strip().splitlines()[-1]))
                    served = sum(x["requests"] + x["uncounted_requests"] for x in parts)
                    cpu_ns = sum(a["oncpu_ns"] - b["oncpu_ns"] for a, b in zip(after, before))
                    res = {
                        "rps": sum(x["rps"] for x in parts),
                        "p50_ms": max(x["p50_ms"] for x in parts),
                        "p99_ms": max(x["p99_ms"] for x in parts),
                        "requests": sum(x["requests"] for x in parts),
                        "uncounted_requests": sum(x["uncounted_requests"] for x in parts),
                        # Server CPU per request, counting the uncounted (warm-up) requests too.
                        "server_cpu_us_per_req": cpu_ns / 1000 / served,
                        "server_rss_kib": max(a["rss_kib"] for a in after),
                        # PostgreSQL's own CPU per request (server + backends), when the harness runs it.
                        "postgres_cpu_us_per_req": None if pg_before is None
                        else (pg_after - pg_before) / 1000 / served,
                        "load": rs[0]["load"],
                        "per_instance": parts,
                    }
                    runs.append(res)
                out[mode] = {
                    "rps": median([x["rps"] for x in runs]),
                    "rps_min": min(x["rps"] for x in runs),
                    "rps_max": max(x["rps"] for x in runs),
                    "p50_ms": median([x["p50_ms"] for x in runs]),
                    "p99_ms": median([x["p99_ms"] for x in runs]),
                    "server_cpu_us_per_req": median([x["server_cpu_us_per_req"] for x in runs]),
                    "postgres_cpu_us_per_req": None if self.pg is None
                    else median([x["postgres_cpu_us_per_req"] for x in runs]),
                    "server_rss_kib": max(x["server_rss_kib"] for x in runs),
                    "requests": median([x["requests"] for x in runs]),
                    "load": median([x["load"] for x in runs]),
                    "runs": runs,
                }
                log(f"central {mode} ({self.database_label}, {instances} instance(s)): "
                    f"{out[mode]['rps']:.0f} req/s ({out[mode]['rps_min']:.0f}–{out[mode]['rps_max']:.0f}), "
                    f"p99 {out[mode]['p99_ms']:.1f} ms, server CPU {out[mode]['server_cpu_us_per_req']:.0f} µs/req"
                    + ("" if self.pg is None else f" + PostgreSQL {out[mode]['postgres_cpu_us_per_req']:.0f} µs/req"))
        finally:
            for proc in central["procs"]:
                proc.send_signal(signal.SIGTERM)
            for proc in central["procs"]:
                proc.wait(timeout=30)
        self.results["central"] = out


# ---------------------------------------------------------------------------------------


def fmt_ms(s):
    return "n/a" if s is None else f"{s * 1000:.1f} ms"


def summarize_runs(runs):
    walls = sorted(r["wall_s"] for r in runs)
    out = {
        "runs": len(runs),
        "wall_s": median(walls),
        "wall_min_s": walls[0],
        "wall_p90_s": walls[min(len(walls) - 1, int(len(walls) * 0.9))],
        "maxrss_kib": median([r["maxrss_kib"] for r in runs]),
        "cpu_s": median([r["cpu_s"] for r in runs]),
        "load": median([r["load"] for r in runs]),
        "rc": sorted({r["rc"] for r in runs}),
    }
    if "calls" in runs[0]:
        seqs = {json.dumps(r["calls"]["sequence"]) for r in runs}
        out["calls"] = runs[0]["calls"]
        out["calls_identical_across_runs"] = len(seqs) == 1
    return out


def diff_states(a, b):
    """Where two simulator boxes differ (redacted secrets compare equal)."""
    if a is None or b is None:
        return ["(not compared)"]
    return _diff(a, b, "")


def _diff(a, b, path):
    diffs = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                diffs.append(f"{path}.{k}: only in {'agent' if k in a else 'python'}")
            else:
                diffs += _diff(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diffs += _diff(x, y, f"{path}[{i}]")
    elif a != b:
        diffs.append(f"{path}: agent {json.dumps(a)[:80]} / python {json.dumps(b)[:80]}")
    return diffs


def callgrind(argv, work, name):
    """Instructions executed (valgrind callgrind), independent of machine load."""
    out = Path(work) / f"callgrind-{name}.out"
    r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                       capture_output=True, text=True)
    for line in r.stderr.splitlines():
        if "Collected" in line:
            return int(line.split(":")[-1].strip().replace(",", ""))
    return None


def wait_for_text(path, secs):
    time.sleep(secs)
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def synthetic_report():
    return {
        "schema": "truenas-agent.report/v1",
        "report_id": "00000000-0000-4000-8000-000000000000",
        "created_at": "2026-01-01T00:00:00Z",
        "agent": {"version": "0.1.0", "mode": "enforce", "config_source": "central"},
    }



class TlsProxy:
    """A TLS-terminating TCP proxy on 127.0.0.1 in front of a plain-HTTP central (as a box
    reaches central through Caddy or nginx), with a CA and server certificate made here by
    openssl (EC P-256, IP SAN 127.0.0.1). Runs in a daemon thread of this driver, so its
    CPU is the driver's, not the agent's."""

    def __init__(self, work, backend_url):
        import ssl
        import threading
        import urllib.parse
        work.mkdir(parents=True, exist_ok=True)
        self.ca, key, cert = work / "ca.pem", work / "server.key", work / "server.pem"
        ca_key, csr, ext = work / "ca.key", work / "server.csr", work / "ext.cnf"
        ossl = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(ca_key), "-out", str(self.ca), "-days", "2", "-subj", "/CN=bench CA")
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
        ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                       "extendedKeyUsage=serverAuth\n")
        ossl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
        backend = urllib.parse.urlsplit(backend_url)
        self.backend = (backend.hostname, backend.port)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        import asyncio
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(client_r, client_w):
            try:
                up_r, up_w = await asyncio.open_connection(*self.backend)
            except OSError:
                client_w.close()
                return
            await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))

        async def start():
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        def run():
            self.loop.run_until_complete(start())
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)
        self.url = f"https://127.0.0.1:{self.port}/"

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", required=True, help="the static release binary (no simulator)")
    p.add_argument("--central", required=True, help="the truenas-central binary (crates/central)")
    p.add_argument("--benchtool", required=True)
    p.add_argument("--python", required=True, help="the venv's python with pytruenas")
    p.add_argument("--py-client", default=str(Path(__file__).parent / "py" / "sop_client.py"))
    p.add_argument("--only", default="size,calls,python,status,idle,central",
                   help="comma-separated sections")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--status-runs", type=int, default=21)
    p.add_argument("--pools", default=",".join(map(str, POOL_COUNTS)))
    p.add_argument("--idle-secs", type=int, default=600)
    p.add_argument("--central-devices", type=int, default=50)
    p.add_argument("--central-runs", type=int, default=3)
    p.add_argument("--central-requests", type=int, default=20000)
    p.add_argument("--central-secs", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--database", default="sqlite",
                   help="central's database: sqlite (its default, DIR/central.db), postgres (a "
                        "PostgreSQL server the harness starts), a postgres:// URL, or files (a "
                        "truenas-central from before the database, given with --central)")
    p.add_argument("--central-instances", type=int, default=1,
                   help="central servers on the same PostgreSQL database, each loaded by its own "
                        "benchtool with concurrency/N connections (the figures are summed)")
    p.add_argument("--report-template", help="the report to post (JSON) instead of the idle daemon's")
    p.add_argument("--callgrind", action="store_true", help="also count instructions of status/verify")
    p.add_argument("--central-tls", action="store_true",
                   help="idle: the daemon reaches central over https:// (a TLS proxy with a "
                        "CA made here, as a box reaches central behind Caddy/nginx) instead of "
                        "http:// on loopback")
    p.add_argument("--out", default="target/bench/results.json")
    a = p.parse_args()
    a.pools = [int(x) for x in a.pools.split(",")]
    sections = a.only.split(",")
    b = Bench(a)
    try:
        run_sections(a, b, sections)
    finally:
        b.close()
    print(render(b.results))
    log(f"results: {a.out}; scratch: {b.work}")


def run_sections(a, b, sections):
    b.results["settings"] = {k: v for k, v in vars(a).items()}
    if str(a.database).startswith(("postgres://", "postgresql://")):
        b.results["settings"]["database"] = "[a PostgreSQL URL, not recorded]"
    if "size" in sections:
        b.results["size"] = {"bytes": os.path.getsize(a.agent),
                             "file": subprocess.run(["file", "-b", a.agent], capture_output=True,
                                                    text=True).stdout.strip()}
        log(f"size: {b.results['size']['bytes']} bytes")
    order = [("calls", b.bench_calls), ("python", b.bench_python), ("status", b.bench_status),
             ("idle", b.bench_idle), ("central", b.bench_central)]
    for name, fn in order:
        if name in sections:
            log(f"== {name}")
            fn()
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(b.results, indent=1))
    b.results["machine"]["load_at_end"] = loadavg()
    Path(a.out).write_text(json.dumps(b.results, indent=1))


def render(res):
    """The summary table (markdown)."""
    m = res["machine"]
    lines = [f"Machine: {m['nproc']} × {m['cpu']}, {m['mem_gib']} GiB, Linux {m['kernel']}; "
             f"{m['date']}; load {m['load_at_start']:.1f} at start, {m.get('load_at_end', 0):.1f} at end", ""]
    lines += ["| # | measurement | value | target | load |", "|---|---|---|---|---|"]
    if "idle" in res and "rss_kib_end" in res["idle"]:
        i = res["idle"]
        lines.append(f"| 1 | idle RSS after convergence (end of window / max sampled) | "
                     f"{i['rss_kib_end'] / 1024:.2f} / {i['rss_kib_max_sampled'] / 1024:.2f} MiB "
                     f"(anon {i.get('rss_anon_kib_end', 0) / 1024:.2f}, file {i.get('rss_file_kib_end', 0) / 1024:.2f}) "
                     f"| ≤ 5 MiB | {i['load_median']:.1f} |")
        lines.append(f"| 1 | idle CPU over {i['window_s']:.0f} s | {i['cpu_s']:.3f} s "
                     f"({i['cpu_s'] / i['window_s'] * 100:.4f} %) | ~0 | {i['load_median']:.1f} |")
        lines.append(f"| 1 | idle wake-ups (times scheduled in) over {i['window_s']:.0f} s | "
                     f"{i['timeslices']} ({i['timeslices'] / i['window_s']:.2f}/s) | ~0 | {i['load_median']:.1f} |")
        lines.append(f"| 1 | middleware calls / reports during the idle window | "
                     f"{i['middleware_calls']['total']} ({i['middleware_calls']['writes']} writes) / "
                     f"{i['reports_sent']} | 0 writes | |")
        if "passes" in i["middleware_calls"]:
            lines.append(f"| 1 | reads of each pass in the idle window | "
                         f"{[p['reads'] for p in i['middleware_calls']['passes']]} | ≤ 8 | |")
            lines.append(f"| 1 | state-dir atomic replacements in the idle window | "
                         f"{i['state_dir_atomic_replacements']} {i['state_dir_renames']} | | |")
    elif "idle" in res:
        lines.append(f"| 1 | idle footprint | {res['idle'].get('unavailable')} | | |")
    if "size" in res:
        lines.append(f"| 2 | static release binary | {res['size']['bytes']:,} bytes "
                     f"({res['size']['bytes'] / 1048576:.2f} MiB) | ≤ 6 MiB | |")
    if "calls" in res:
        for n, v in sorted(res["calls"].items(), key=lambda kv: int(kv[0])):
            f, s = v["fresh"], v["steady"]
            lines.append(f"| 3 | {n} pool(s): fresh apply / steady state | "
                         f"{f['calls']['total']} calls ({f['calls']['writes']} W), {fmt_ms(f['wall_s'])} / "
                         f"{s['calls']['total']} calls ({s['calls']['writes']} W, {s['calls']['reads']} R), "
                         f"{fmt_ms(s['wall_s'])} | ≤ 20 / 0 W ≤ 8 R (2 pools) | {f['load']:.1f} |")
    if "status" in res:
        for k, v in res["status"].items():
            if "wall_s" in v:
                lines.append(f"| 4 | `{k}` median (p90) | {fmt_ms(v['wall_s'])} ({fmt_ms(v['wall_p90_s'])}), "
                             f"{v['calls_per_run']:.0f} calls, exit {v['rc_first']}"
                             + (f", {v['instructions'] / 1e6:.1f} M instructions" if v.get("instructions") else "")
                             + f" | ≤ 50 ms (status) | {v['load']:.1f} |")
            else:
                lines.append(f"| 4 | `{k}` | {v.get('unavailable')} | | |")
    if "python" in res:
        py = res["python"]
        for phase in ("fresh", "steady"):
            r, p = py[f"rust_{phase}"], py[f"py_{phase}"]
            lines.append(f"| 5 | {phase}: agent vs Python wall | {fmt_ms(r['wall_s'])} vs {fmt_ms(p['wall_s'])} "
                         f"→ **{py[f'ratio_wall_{phase}']:.1f}×** | ≥ 10× | {p['load']:.1f} |")
            lines.append(f"| 5 | {phase}: agent vs Python CPU (user+sys) | {r['cpu_s'] * 1000:.1f} vs "
                         f"{p['cpu_s'] * 1000:.1f} ms → **{py[f'ratio_cpu_{phase}']:.1f}×** | | |")
            lines.append(f"| 5 | {phase}: agent process vs Python after its imports | {fmt_ms(r['wall_s'])} vs "
                         f"{fmt_ms(p['work_s'])} → **{py[f'ratio_work_{phase}']:.1f}×** | | |")
            lines.append(f"| 5 | {phase}: agent vs Python peak RSS | {r['maxrss_kib'] / 1024:.1f} vs "
                         f"{p['maxrss_kib'] / 1024:.1f} MiB → **{py[f'ratio_rss_{phase}']:.1f}×** | ≥ 5× | |")
        ins = py.get("instructions") or {}
        for phase in ("fresh", "steady"):
            if ins.get(f"ratio_{phase}"):
                lines.append(f"| 5 | {phase}: agent vs Python instructions (callgrind) | "
                             f"{ins[f'rust_{phase}'] / 1e6:.1f} M vs {ins[f'py_{phase}'] / 1e6:.1f} M → "
                             f"**{ins[f'ratio_{phase}']:.1f}×** | | load-independent |")
        lines.append(f"| 5 | same calls apart from `core.subscribe` (fresh / steady); calls agent/Python; "
                     f"box state differences | {py['same_calls_fresh']} / {py['same_calls_steady']}; "
                     f"{py['calls_fresh']['agent']}/{py['calls_fresh']['python']} and "
                     f"{py['calls_steady']['agent']}/{py['calls_steady']['python']}; "
                     f"{len(py['state_differences'])} | True / True; 0 | |")
    if "central" in res:
        c = res["central"]
        for mode in ("etag", "report"):
            if mode in c:
                v = c[mode]
                lines.append(f"| 6 | central {mode} ({c['devices']} devices, {c.get('database', 'files')}, "
                             f"{c.get('instances', 1)} instance(s)) | {v['rps']:.0f} req/s, "
                             f"p50 {v['p50_ms']:.1f} ms, p99 {v['p99_ms']:.1f} ms, server "
                             f"{v['server_cpu_us_per_req']:.0f} µs CPU/req | | {v['load']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

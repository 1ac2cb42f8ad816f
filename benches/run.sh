#!/usr/bin/env bash
# Runs every benchmark of issue #6 and prints the table (figures: docs/benchmarks.md).
# NOT part of CI (.ci/run never calls it): it takes ~20 min and measures time on a shared
# machine. Needs python3 with venv, file(1), and network access to PyPI once (the venv).
#
#   benches/run.sh                          # everything (idle window 10 min)
#   benches/run.sh --only calls,python      # some sections: size,calls,python,status,idle,central
#   benches/run.sh --idle-secs 60 --runs 3  # quicker, noisier
#   benches/run.sh --only idle --central-tls # the daemon reaches central over https (TLS proxy)
#   NO_BUILD=1 benches/run.sh ...           # reuse the binaries already built
#   NO_BUILD=1 benches/run.sh --only central --database postgres   # central on a PostgreSQL the
#                                           # harness starts (sqlite: the default; see bench.py --help)
#   NO_BUILD=1 CENTRAL=/other/truenas-central benches/run.sh --only central --database files
#                                           # another build of central (AGENT, BENCHTOOL likewise)
#
# What it builds (release profile: opt-level z, fat LTO; 5-15 min on 2 busy cores):
#   - the appliance binary: packaging/build-release.sh (static, `-p truenas-agent`: the
#     agent crate alone); when that script is missing, the same cargo command;
#   - the reference central server: cargo build --release -p truenas-central;
#   - benchtool (crates/dev/src/bin/benchtool.rs: simulator with a call record, central
#     load generator): cargo build --release -p truenas-dev --bin benchtool.
# Then a venv with benches/py/requirements.txt (pytruenas, pinned) in target/bench/venv,
# and benches/bench.py with the arguments given here. Results: target/bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BENCH_DIR=$ROOT/target/bench
mkdir -p "$BENCH_DIR"
TARGET=x86_64-unknown-linux-gnu
AGENT=${AGENT:-$ROOT/target/$TARGET/release/truenas-agent}
CENTRAL=${CENTRAL:-$ROOT/target/release/truenas-central}
BENCHTOOL=${BENCHTOOL:-$ROOT/target/release/benchtool}
# The sections asked for (--only A,B or --only=A,B); the agent binary and the Python venv
# are needed only by some of them.
ONLY=size,calls,python,status,idle,central
prev=
for arg in "$@"; do
  case "$prev" in --only) ONLY=$arg ;; esac
  case "$arg" in --only=*) ONLY=${arg#--only=} ;; esac
  prev=$arg
done
needs() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

say() { printf '[run.sh %s] %s\n' "$(date +%T)" "$*" >&2; }

if [ -z "${NO_BUILD:-}" ]; then
  say "building the static appliance binary"
  if [ -x packaging/build-release.sh ]; then
    OUT_DIR=$BENCH_DIR/dist packaging/build-release.sh >&2
  else
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
      cargo build --release --locked --target "$TARGET" -p truenas-agent --bin truenas-agent
  fi
  say "building the reference central server and benchtool"
  cargo build --release --locked -p truenas-central --bin truenas-central \
    -p truenas-dev --bin benchtool
fi
# With NO_BUILD, no cargo call at all: build.rs stamps the git revision (and "-dirty"), so
# any edit since the last build would recompile the crates (minutes on this machine).
NEEDED=("$CENTRAL" "$BENCHTOOL")
if needs size || needs calls || needs python || needs status || needs idle; then NEEDED+=("$AGENT"); fi
for f in "${NEEDED[@]}"; do
  [ -x "$f" ] || { say "missing $f (run without NO_BUILD)"; exit 1; }
done

VENV=$BENCH_DIR/venv
if needs python && { [ ! -x "$VENV/bin/python" ] || ! cmp -s benches/py/requirements.txt "$VENV/requirements.txt"; }; then
  say "creating the Python venv ($VENV)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r benches/py/requirements.txt
  cp benches/py/requirements.txt "$VENV/requirements.txt"
fi

exec python3 benches/bench.py --agent "$AGENT" --central "$CENTRAL" --benchtool "$BENCHTOOL" \
  --python "$VENV/bin/python" --out "$BENCH_DIR/results.json" "$@"

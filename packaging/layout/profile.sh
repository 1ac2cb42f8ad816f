#!/usr/bin/env bash
# Regenerates packaging/layout/truenas-agent.order: the functions `truenas-agent run` executes,
# which packaging/build-release.sh links first and together (docs/benchmarks.md, "Idle RSS:
# the code layout"). Not part of CI; run it when the build's layout check says the profile
# no longer matches (after dependency or toolchain updates), or after large daemon changes.
#
#   packaging/layout/profile.sh                 # ~10 min on 2 cores (release build + profile)
#   IDLE_SECS=330 packaging/layout/profile.sh   # the idle window profiled (default 330 s:
#                                               # one scheduled report and long-polls)
#
# What is profiled: benches/bench.py's idle scenario (benchtool's simulated 2-pool box on a
# unix socket, a local truenas-central behind a TLS proxy — https:// as on a real box — the
# daemon converging, reporting, long-polling, pinging, then repairing three technician
# edits), with the release binary's copy that
# keeps its symbols (target/x86_64-unknown-linux-gnu/release/truenas-agent.syms) under
# valgrind's callgrind (`--demangle=no`, so the names are the linker's). Needs valgrind,
# python3, openssl, and debug builds of benchtool and truenas-central (built here).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
IDLE_SECS=${IDLE_SECS:-330}
TARGET=x86_64-unknown-linux-gnu
command -v valgrind >/dev/null || { echo "profile.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

OUT_DIR=${OUT_DIR:-target/layout-dist} packaging/build-release.sh
cargo build --locked -p truenas-dev --bin benchtool -p truenas-central --bin truenas-central
SYMS=$ROOT/target/$TARGET/release/truenas-agent.syms

work=$(mktemp -d /tmp/truenas-layout.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/agent" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$work/callgrind.out --dump-instr=no \
  --demangle=no "$SYMS" "\$@"
EOF
chmod +x "$work/agent"
python3 benches/bench.py --agent "$work/agent" --central target/debug/truenas-central \
  --benchtool target/debug/benchtool --python python3 --only idle --pools 2 \
  --idle-secs "$IDLE_SECS" --central-tls --out "$work/results.json"
python3 packaging/layout/order.py profile "$work/callgrind.out" "$SYMS" \
  >"$work/order"
{
  echo "# The functions \`truenas-agent run\` executed in packaging/layout/profile.sh's scenario,"
  echo "# in the order it first ran them: linked first and together (packaging/build-release.sh)."
  echo "# Generated $(date -u +%Y-%m-%d) from $(git rev-parse --short=12 HEAD); do not edit."
  cat "$work/order"
} >packaging/layout/truenas-agent.order
echo "wrote packaging/layout/truenas-agent.order ($(grep -vc '^#' packaging/layout/truenas-agent.order) functions);"
echo "rebuild with packaging/build-release.sh to link with it"

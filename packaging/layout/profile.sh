#!/usr/bin/env bash
# Regenerates packaging/layout/truenas-agent.order: the functions `truenas-agent run` executes,
# which packaging/build-release.sh links first and together (docs/benchmarks.md, "Idle RSS:
# the code layout"). Not part of CI; run it when the build's layout check says the profile
# no longer matches (after dependency or toolchain updates), or after large daemon changes.
#
#   packaging/layout/profile.sh                 # ~20 min on 2 cores (as root: perf)
#   IDLE_SECS=330 packaging/layout/profile.sh   # the idle window profiled (default 330 s:
#                                               # one scheduled report and long-polls)
#   packaging/layout/profile.sh --native-only   # only the native passes (below), on top of
#                                               # the order file as it is
#
# What is profiled: benches/bench.py's idle scenario (benchtool's simulated 2-pool box on a
# unix socket, a local truenas-central behind a TLS proxy — https:// as on a real box — the
# daemon converging, reporting, long-polling, pinging, then repairing three technician
# edits), with the release binary's copy that
# keeps its symbols (target/x86_64-unknown-linux-gnu/release/truenas-agent.syms) under
# valgrind's callgrind (`--demangle=no`, so the names are the linker's). Needs valgrind,
# perf (page-fault events: root, or perf_event_paranoid <= 1), python3,
# openssl, and debug builds of benchtool and truenas-central (built here).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
IDLE_SECS=${IDLE_SECS:-330}
TARGET=x86_64-unknown-linux-gnu
for tool in valgrind perf openssl; do
  command -v $tool >/dev/null || { echo "profile.sh: $tool is needed (valgrind: apt-get install valgrind; perf: linux-perf)" >&2; exit 1; }
done

OUT_DIR=${OUT_DIR:-target/layout-dist} packaging/build-release.sh
cargo build --locked -p truenas-dev --bin benchtool -p truenas-central --bin truenas-central
SYMS=$ROOT/target/$TARGET/release/truenas-agent.syms

work=$(mktemp -d /tmp/truenas-layout.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ "${1:-}" != "--native-only" ]; then
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
    echo "# The functions \`truenas-agent run\` executed in packaging/layout/profile.sh's scenario:"
    echo "# callgrind's, in the order it first ran them, then those native runs faulted in."
    echo "# Linked first and together (packaging/build-release.sh)."
    echo "# Generated $(date -u +%Y-%m-%d) from $(git rev-parse --short=12 HEAD); do not edit."
    cat "$work/order"
  } >packaging/layout/truenas-agent.order
fi

# Native passes: callgrind's virtual CPU is not this one (no SHA extensions, ADX or
# AVX-512), so code chosen by CPU features, and start-up code before valgrind's first
# instruction, never ran in the profile. Each pass links with the order so far, runs the
# same scenario natively under `perf record -e page-faults` and appends the functions
# whose first touch faulted outside the packed code; it stops when a pass adds none.
# To see every page the daemon touches, not one per 64 KiB fault-around block, each pass
# starts with none of the binary in the page cache and with read-ahead off for its disk
# (the kernel then maps only pages already read: each first touch of a page faults);
# the disk's read-ahead setting is restored when the script ends.
dev=$(findmnt -no SOURCE --target "$SYMS" | sed 's#^/dev/##; s#\[.*##')
ra=/sys/class/block/$dev/queue/read_ahead_kb
[ -e "$ra" ] || ra=/sys/class/block/$dev/../queue/read_ahead_kb
[ -w "$ra" ] || { echo "profile.sh: cannot set $ra (run as root)" >&2; exit 1; }
ra_was=$(cat "$ra")
trap 'echo "$ra_was" >"$ra"; rm -rf "$work"' EXIT
cat >"$work/agent-native" <<EOF
#!/bin/sh
exec perf record -q -e page-faults -c 1 -d -o $work/faults.data -- "$SYMS" "\$@"
EOF
chmod +x "$work/agent-native"
for pass in 1 2 3 4 5 6 7 8; do
  OUT_DIR=${OUT_DIR:-target/layout-dist} packaging/build-release.sh >"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }
  echo 0 >"$ra"
  python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$SYMS"
  python3 benches/bench.py --agent "$work/agent-native" --central target/debug/truenas-central \
    --benchtool target/debug/benchtool --python python3 --only idle --pools 2 \
    --idle-secs 60 --central-tls --out "$work/native.json" >"$work/native.log" 2>&1 \
    || { cat "$work/native.log"; exit 1; }
  echo "$ra_was" >"$ra"
  perf script -i "$work/faults.data" -F addr,ip >"$work/faults.txt" 2>/dev/null
  before=$(grep -vc '^#' packaging/layout/truenas-agent.order)
  python3 packaging/layout/order.py native packaging/layout/truenas-agent.order \
    "$work/faults.txt" "$SYMS"
  after=$(grep -vc '^#' packaging/layout/truenas-agent.order)
  echo "native pass $pass: $((after - before)) functions added"
  [ "$after" -gt "$before" ] || break
done
OUT_DIR=${OUT_DIR:-target/layout-dist} packaging/build-release.sh | grep -E '^(layout|size):'
echo "wrote packaging/layout/truenas-agent.order ($(grep -vc '^#' packaging/layout/truenas-agent.order) functions)"

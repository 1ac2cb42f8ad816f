#!/usr/bin/env bash
# VM test of the TrueNAS-way install (issue #8), batched into ONE boot of the shared
# QEMU guest (real systemd + OpenZFS): install → unit runs under systemd and logs to the
# journal → status → systemd-analyze security → hardened sandbox can still zfs get/set →
# reboot-equivalent (clear /run, run the registered init command) → --check passes, then
# fails naming each removed piece → uninstall leaves no unit and no init entry.
# The simulator (truenas-sim) stands in for the middleware socket. Run as root
# (tests/vm/run-all.sh, which .ci/run calls, builds both binaries first).
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED_DIR=${SHARED_DIR:-$(cd .. && pwd)/shared}
VM=$SHARED_DIR/vm
BIN_DIR=$PWD/target/debug
[ -x "$BIN_DIR/truenas-agent" ] || cargo build -p truenas-agent --bin truenas-agent
[ -x "$BIN_DIR/truenas-sim" ] || cargo build -p truenas-sim --bin truenas-sim

# Host tools this test uses beyond the VM harness: mksquashfs (sysext image) and
# PyYAML (Custom App syntax check). Installed from Debian when missing, as run.sh does
# for QEMU; without them those two parts are skipped with a note, never failed.
want_pkg() { # want_pkg PACKAGE TEST-COMMAND...
  local pkg=$1; shift
  "$@" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq "$pkg" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$pkg" >/dev/null 2>&1; } || true
  fi
  "$@" >/dev/null 2>&1
}
want_pkg squashfs-tools command -v mksquashfs || true

# Host-side checks that need no VM: the Custom App YAML parses (Docker does not run here).
if want_pkg python3-yaml python3 -c "import yaml"; then
  for f in packaging/custom-app/*.yaml; do
    python3 -c "import sys, yaml; yaml.safe_load(open(sys.argv[1]))" "$f" \
      || { echo "invalid YAML: $f"; exit 1; }
  done
  echo "custom app YAML: syntax ok"
else
  echo "note: PyYAML missing (apt-get install python3-yaml): Custom App YAML not checked"
fi

# The sysext image (route 2), built from the debug binary: the merge is what is tested.
sysext=$(mktemp -d /tmp/truenas-agent-sysext.XXXXXX)
trap 'rm -rf "$sysext"' EXIT
if command -v mksquashfs >/dev/null; then
  packaging/sysext/build.sh --binary "$BIN_DIR/truenas-agent" --out "$sysext" >/dev/null
else
  echo "note: mksquashfs missing (apt-get install squashfs-tools): the sysext part is skipped"
fi

art=${ARTIFACTS_DIR:-$(mktemp -d /tmp/truenas-agent-vm-install.XXXXXX)}
start=$(date +%s)
rc=0
"$VM/run.sh" --share "$BIN_DIR:/opt/agent:ro" --share "$PWD/tests/vm:/opt/tests:ro" \
  --share "$sysext:/opt/sysext:ro" -e SYSEXT_DIR=/opt/sysext \
  -e AGENT_DIR=/opt/agent -e TEST_DIR=/opt/tests --pools "pool0 pool1" --timeout 900 \
  --artifacts "$art" --script tests/vm/install.guest.sh || rc=$?
echo "install VM test: rc=$rc, wall time $(( $(date +%s) - start ))s, artifacts in $art"
[ -f "$art/out/analyze-score.txt" ] && echo "systemd-analyze: $(cat "$art/out/analyze-score.txt")"
# Keep the artifacts of a failure (or when asked for them); drop those of a pass.
if [ "$rc" = 0 ] && [ -z "${ARTIFACTS_DIR:-}" ]; then rm -rf "$art"; fi
exit $rc

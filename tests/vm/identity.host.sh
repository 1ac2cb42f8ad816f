#!/usr/bin/env bash
# Device identity against real OpenZFS: boots the ../shared/vm guest ONCE (pools pool0 and
# pool1, fresh) and runs tests/vm/identity.guest.sh there with the agent binary shared
# read-only. Builds nothing: tests/vm/run-all.sh builds target/debug/truenas-agent first.
# By hand (as root):  cargo build -p truenas-agent --bin truenas-agent && SHARED_DIR=/path/to/shared tests/vm/identity.host.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED_DIR=${SHARED_DIR:-$(cd .. && pwd)/shared}
bin=$PWD/target/debug/truenas-agent
if [ ! -x "$bin" ]; then
  echo "FAIL: $bin is missing (run: cargo build -p truenas-agent --bin truenas-agent)"
  exit 1
fi
if [ ! -x "$SHARED_DIR/vm/run.sh" ]; then
  echo "FAIL: $SHARED_DIR/vm/run.sh not found (set SHARED_DIR)"
  exit 1
fi
# Share a copy, not target/debug itself: a concurrent cargo build must not swap the binary
# under the guest.
share=$(mktemp -d /tmp/agent-identity-vm.XXXXXX)
trap 'rm -rf "$share"' EXIT
cp "$bin" "$share/truenas-agent"
start=$(date +%s)
rc=0
"$SHARED_DIR/vm/run.sh" --share "$share:/opt/agent:ro" --timeout 900 \
  --script "$PWD/tests/vm/identity.guest.sh" || rc=$?
echo "identity VM test: exit $rc after $(( $(date +%s) - start ))s wall time"
exit "$rc"

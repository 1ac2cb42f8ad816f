#!/usr/bin/env bash
# Runs every VM test (tests/vm/*.host.sh, each booting the guest once with its *.guest.sh), on the
# ../shared/vm guest (real OpenZFS + systemd). Builds the agent (the agent crate alone, as
# released) and the simulator that stands in for the middleware first.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED_DIR=${SHARED_DIR:-$(cd .. && pwd)/shared}
shopt -s nullglob
scripts=(tests/vm/*.host.sh)
if [ ${#scripts[@]} -eq 0 ]; then
  echo "no VM tests yet"
  exit 0
fi
cargo build -p truenas-agent --bin truenas-agent
cargo build -p truenas-sim --bin truenas-sim
fail=0
for s in "${scripts[@]}"; do
  echo "--- $s"
  if ! SHARED_DIR="$SHARED_DIR" bash "$s"; then
    echo "FAILED: $s"
    fail=1
  fi
done
exit $fail

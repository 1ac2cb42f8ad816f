#!/usr/bin/env bash
# Guest side of tests/vm/identity.host.sh: runs as root in the zfs-vm guest (real OpenZFS,
# fresh pools pool0 and pool1), with the agent at /opt/agent/truenas-agent. One line per
# check: PASS/FAIL; exits non-zero when any check failed.
set -uo pipefail

AGENT=/opt/agent/truenas-agent
P=com.dtctoday:device-guid
H=com.dtctoday:device-host
STATE=/var/tmp/agent-state
V4='^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
failures=0
out=""
rc=0

pass() { echo "PASS: $*"; }
fail() {
  echo "FAIL: $*"
  echo "      last output: $(head -c 2000 <<<"$out")"
  failures=$((failures + 1))
}
# check "what" 'condition': PASS when the condition (a shell expression, evaluated at
# that point) succeeds as a whole.
check() {
  if eval "$2"; then pass "$1"; else fail "$1"; fi
}
# ident ARGS...: runs the agent, keeps stdout in $out and the exit code in $rc.
ident() {
  rc=0
  out=$("$AGENT" --log warn --state-dir "$STATE" identity "$@" 2>/tmp/agent.stderr) || rc=$?
}
json() { jq -r "$1" <<<"$out"; }
zget() { zfs get -H -p -o value "$1" "$2"; }
zsource() { zfs get -H -o source "$1" "$2"; }
is_v4() { [[ $1 =~ $V4 ]]; }
# Number of `zfs set` of the GUID property recorded in the pool's history.
guid_sets() { zpool history "$1" | grep -c "zfs set $P=" || true; }
host_hash() {
  python3 -c "import hashlib; print(hashlib.sha256(open('/etc/hostid','rb').read().strip()).hexdigest())"
}

echo "guest: $(zfs version | head -1), hostid $(hostid), pools: $(zpool list -H -o name | tr '\n' ' ')"
this_host=$(host_hash)

echo "--- 1. two fresh pools, no root_pool"
ident --json
check "identity exits 2 on two fresh pools (no usable GUID: failing)" \
  '[ "$rc" -eq 2 ]'
check "it reports 'several pools, set root_pool'" \
  'grep -q "several pools, set root_pool" <<<"$(json ".problems[0].message")"'
ident ensure --json
check "ensure without a root pool refuses (exit 2)" \
  '[ "$rc" -eq 2 ]'
check "and writes nothing on either pool" \
  '[ "$(zget $P pool0)" = "-" ] && [ "$(zget $P pool1)" = "-" ]'

echo "--- 2. ensure on a fresh pool"
ident ensure --pool pool0 --json
guid=$(json .guid)
check "ensure --pool pool0 exits 0" \
  '[ "$rc" -eq 0 ]'
check "guid_source is generated" \
  '[ "$(json .guid_source)" = generated ]'
check "zfs get shows the same GUID ($guid)" \
  '[ "$(zget $P pool0)" = "$guid" ]'
check "it is a lower-case v4 UUID" \
  'is_v4 "$(zget $P pool0)"'
check "set locally on pool0" \
  '[ "$(zsource $P pool0)" = local ]'
check "host binding = sha256(/etc/hostid) like system.host_id" \
  '[ "$(zget $H pool0)" = "$this_host" ]'
check "pool1 untouched" \
  '[ "$(zget $P pool1)" = "-" ]'
check "exactly one zfs set in pool0's history" \
  '[ "$(guid_sets pool0)" -eq 1 ]'

echo "--- 3. rerun"
ident ensure --json
check "rerun without --pool (the one carrier) exits 0" \
  '[ "$rc" -eq 0 ]'
check "rerun keeps the GUID, source zfs" \
  '[ "$(json .guid)" = "$guid" ] && [ "$(json .guid_source)" = zfs ]'
check "rerun writes nothing (pool history unchanged)" \
  '[ "$(guid_sets pool0)" -eq 1 ]'
check "identity.json recorded with mode 600" \
  '[ "$(stat -c %a $STATE/identity.json)" = 600 ]'

echo "--- 4. central's GUID wins"
central=$(cat /proc/sys/kernel/random/uuid)
ident ensure --guid "$central" --json
check "ensure --guid exits 0" \
  '[ "$rc" -eq 0 ]'
check "central's GUID is now on pool0" \
  '[ "$(zget $P pool0)" = "$central" ]'
check "the correction reports old -> new" \
  '[ "$(json .correction.old)" = "$guid" ] && [ "$(json .correction.new)" = "$central" ]'
check "guid_source is central" \
  '[ "$(json .guid_source)" = central ]'

echo "--- 5. child datasets"
zfs create pool0/child && zfs create pool0/child/grand
ident get pool0/child/grand --json
check "the agent reads a grandchild's value as inherited from pool0" \
  '[ "$(json .source.kind)" = inherited ] && [ "$(json .source.from)" = pool0 ] && [ "$(json .value)" = "$central" ]'
check "zfs agrees: inherited from pool0" \
  '[ "$(zsource $P pool0/child/grand)" = "inherited from pool0" ]'
zfs create pool1/replica && zfs set "$P=$(cat /proc/sys/kernel/random/uuid)" pool1/replica
ident --json
check "a local copy on pool1/replica does not make pool1 a carrier" \
  '[ "$rc" -eq 0 ] && [ "$(json .root_pool)" = pool0 ] && [ "$(json ".problems | length")" = 0 ]'

echo "--- 6. export / import"
zpool export pool0 && zpool import -d "$ZFSVM_VDEV_DIR" pool0
check "the GUID survives zpool export/import" \
  '[ "$(zget $P pool0)" = "$central" ]'
ident --json
check "identity after the re-import: same GUID, usable, no problem" \
  '[ "$rc" -eq 0 ] && [ "$(json .guid)" = "$central" ] && [ "$(json .usable)" = true ]'

echo "--- 7. never on a second pool"
ident ensure --pool pool1 --json
check "ensure --pool pool1 refuses (exit 2): the GUID is on pool0" \
  '[ "$rc" -eq 2 ] && [ "$(json ".problems[0].kind")" = guid_on_other_pool ]'
check "pool1 still has no GUID" \
  '[ "$(zget $P pool1)" = "-" ]'

echo "--- 8. the boot pool"
truncate -s 256M /var/tmp/boot-pool.img && zpool create boot-pool /var/tmp/boot-pool.img
ident ensure --pool boot-pool --json
check "--pool boot-pool is refused (exit 2)" \
  '[ "$rc" -eq 2 ] && [ "$(json ".problems[0].kind")" = root_pool_is_boot_pool ]'
zpool export pool1
ident ensure --property com.example:device-guid --json
check "boot-pool + pool0: a new property goes to pool0, the only data pool" \
  '[ "$rc" -eq 0 ] && [ "$(json .root_pool)" = pool0 ] && [ "$(json .root_pool_source)" = only_data_pool ]'
check "boot-pool never got a GUID" \
  '[ "$(zget com.example:device-guid boot-pool)" = "-" ] && [ "$(zget $P boot-pool)" = "-" ]'
zpool import -d "$ZFSVM_VDEV_DIR" pool1

echo "--- 9. unprivileged user"
rc=0
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$AGENT" --log warn --state-dir /tmp/nobody-state identity --json 2>&1) || rc=$?
check "an unprivileged user can read the identity" \
  '[ "$rc" -eq 0 ] && [ "$(json .guid)" = "$central" ]'
rc=0
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$AGENT" --log warn --state-dir /tmp/nobody-state identity ensure --guid "$(cat /proc/sys/kernel/random/uuid)" 2>&1) || rc=$?
check "but ensure fails with exit 3 (could not act): permission denied" \
  '[ "$rc" -eq 3 ] && grep -q "permission denied (cannot set property for .pool0.: permission denied)" <<<"$out"'
check "and nothing changed" \
  '[ "$(zget $P pool0)" = "$central" ]'

echo "--- 10. the pool shows up on another host"
zpool export pool0
old_hostid=$(hostid)
zgenhostid -f 0x0badcafe
check "hostid changed ($old_hostid -> $(hostid))" \
  '[ "$(hostid)" = 0badcafe ]'
zpool import -d "$ZFSVM_VDEV_DIR" pool0
new_host=$(host_hash)
ident --json
check "identity on the other host exits 2 (not usable: failing)" \
  '[ "$rc" -eq 2 ]'
check "it reports 'pool moved or box cloned'" \
  'grep -q "pool moved or box cloned" <<<"$(json ".problems[].message")"'
check "the GUID is not usable there" \
  '[ "$(json .usable)" = false ] && [ "$(json .host_binding.state)" = other_host ]'
ident ensure --json
check "ensure without confirmation refuses and keeps the old binding" \
  '[ "$rc" -eq 2 ] && [ "$(zget $H pool0)" = "$this_host" ]'
ident ensure --rebind --json
check "ensure --rebind binds the pool to this host" \
  '[ "$rc" -eq 0 ] && [ "$(zget $H pool0)" = "$new_host" ] && [ "$(json ".changes[0].change")" = rebound ]'
check "the GUID is unchanged by the rebind" \
  '[ "$(zget $P pool0)" = "$central" ]'
ident --json
check "identity is clean again" \
  '[ "$rc" -eq 0 ]'

echo "--- 11. one pool only"
carriers=$(for p in $(zpool list -H -o name); do [ "$(zsource $P "$p")" = local ] && echo "$p"; done | tr '\n' ' ')
check "exactly one pool carries $P (found: $carriers)" \
  '[ "$carriers" = "pool0 " ]'

if [ "$failures" -eq 0 ]; then
  echo "identity VM checks: all passed"
else
  echo "identity VM checks: $failures FAILED"
fi
exit $(( failures > 0 ))

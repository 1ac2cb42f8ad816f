#!/usr/bin/env bash
# Guest side of tests/vm/install.host.sh: runs inside the QEMU guest (real systemd 252,
# real OpenZFS, pools pool0+pool1) with the debug build shared at $AGENT_DIR and this
# folder at $TEST_DIR. The simulator (truenas-sim, from the same build) stands in for the
# middleware socket.
set -euo pipefail
A=$AGENT_DIR/truenas-agent
MW="python3 $TEST_DIR/mw_call.py"
SOCK=/var/run/middleware/middlewared.sock
UNIT=truenas-agent.service
RUN=/run/systemd/system
ROOT=/mnt/pool0/.truenas-agent
OUT=${ZFSVM_OUT:-/tmp}
t0=$(date +%s)
step() { printf '\n### %s (+%ss)\n' "$*" "$(( $(date +%s) - t0 ))"; }
fail() { echo "FAIL: $*"; journalctl -u $UNIT -b --no-pager -o cat | tail -30 || true; exit 1; }
wait_active() {
  for _ in $(seq 1 120); do
    [ "$(systemctl is-active $UNIT || true)" = active ] && return 0
    sleep 1
  done
  systemctl status $UNIT --no-pager || true
  fail "$UNIT did not become active"
}
# Runs `install --check`, expects exit 1 and exactly the piece $1 failing.
expect_only_failure() {
  local piece=$1 rc=0
  $A install --check --json > /tmp/check.json || rc=$?
  [ "$rc" = 1 ] || fail "check after breaking $piece exited $rc, expected 1"
  local failing
  failing=$(jq -r '[.items[] | select(.status=="fail") | .id] | join(",")' /tmp/check.json)
  [ "$failing" = "$piece" ] || fail "breaking $piece made [$failing] fail"
  jq -r --arg p "$piece" '.items[] | select(.id==$p) | "  check says: \(.detail) -- fix: \(.fix)"' /tmp/check.json
}
repair() {
  $A install >/tmp/repair.txt || { cat /tmp/repair.txt; fail "re-install after $1"; }
  $A install --check >/dev/null || { $A install --check || true; fail "check after repairing $1"; }
  echo "  repaired by re-running install"
}

step "TrueNAS-like layout: pools under /mnt, simulator on the middleware socket"
zfs set mountpoint=/mnt/pool0 pool0
zfs set mountpoint=/mnt/pool1 pool1
# The simulator keeps datasets in memory; the real dataset is what the NAS would have
# after pool.dataset.create (the simulator answers the API, ZFS holds the files).
zfs create pool0/.truenas-agent
mkdir -p /run/middleware
systemd-run --unit=tn-sim --collect -p Restart=no \
  $AGENT_DIR/truenas-sim --version 25.10 --socket $SOCK
for _ in $(seq 1 60); do [ -S $SOCK ] && break; sleep 0.5; done
[ -S $SOCK ] || { journalctl -u tn-sim --no-pager | tail -20; fail "simulator socket missing"; }
$MW system.version_short
# The device GUID on pool0 makes it the root pool, where install puts its dataset.
$MW pool.dataset.update '"pool0"' '{"user_properties_update":[{"key":"com.dtctoday:device-guid","value":"9babab19-acc0-4587-aa05-ccd8103a1148"}]}' >/dev/null
# The admin's own init script must survive everything below.
$MW initshutdownscript.create '{"type":"COMMAND","command":"echo admin","when":"PREINIT","enabled":true,"timeout":10,"comment":"admin script"}' >/dev/null

step "install"
umask 022
printf '[central]\nurl = "https://central.invalid"\ntoken_file = "/root/wrong"\nallow_unsigned = true\n' > /root/agent.toml
printf 'CANARY-DEVICE-TOKEN-5e19b3\n' > /root/token
chmod 0600 /root/token
$A install --agent-config /root/agent.toml --token-file /root/token | tee /tmp/install.txt
systemctl is-active $UNIT
stat -c '%n %a %U' $ROOT $ROOT/bin/truenas-agent $ROOT/agent.toml $ROOT/token $ROOT/state
[ "$(stat -c %a $ROOT/token)" = 600 ] && [ "$(stat -c %a $ROOT/agent.toml)" = 600 ] || fail "modes"
grep -q "CANARY" /tmp/install.txt && fail "token echoed by install"
$MW initshutdownscript.query | jq -c '.[] | {id, when, enabled, comment}'

step "the unit runs under systemd and logs to the journal"
for _ in $(seq 1 30); do
  journalctl -u $UNIT -b --no-pager -o cat | grep -q "truenas-agent started" && break; sleep 1
done
journalctl -u $UNIT -b --no-pager -o cat | grep "truenas-agent started" || fail "no start line in journal"
journalctl -u $UNIT -b --no-pager -o verbose | grep -q "SYSLOG_IDENTIFIER=truenas-agent" || fail "journal identifier"
systemctl show $UNIT -p Type -p NotifyAccess -p WatchdogUSec -p FragmentPath -p DropInPaths
journalctl -b --no-pager -o cat | grep -i CANARY && fail "token in journal"

step "status"
rc=0; $A status > /tmp/status.txt 2>&1 || rc=$?
cat /tmp/status.txt
echo "status exit code: $rc" | tee "$OUT/status-rc.txt"

step "systemd-analyze security"
systemd-analyze security $UNIT --no-pager > "$OUT/analyze.txt" || true
grep -E '✗' "$OUT/analyze.txt" || true
tail -1 "$OUT/analyze.txt" | tee "$OUT/analyze-score.txt"

step "the hardened sandbox still allows the agent's job: identity ensure (zfs get/set), state dir, socket"
# The installed unit + drop-in, with ExecStart replaced by the agent's own identity
# command (real `zfs get`/`zfs set` of the device GUID) and two sandbox probes.
GUID=9babab19-acc0-4587-aa05-ccd8103a1148
mkdir -p $RUN/tn-probe.service.d
cp $RUN/$UNIT $RUN/tn-probe.service
cp $RUN/$UNIT.d/install.conf $RUN/tn-probe.service.d/
cat > $RUN/tn-probe.service.d/zz-probe.conf <<PROBE
[Service]
Type=oneshot
WatchdogSec=0
ExecStart=
ExecStart=/bin/sh -c 'set -e; $ROOT/bin/truenas-agent --config $ROOT/agent.toml --state-dir $ROOT/state identity ensure --pool pool0 --guid $GUID; test -S $SOCK; if echo x > $ROOT/nope 2>/dev/null; then exit 9; fi; echo SANDBOX-OK'
PROBE
systemctl daemon-reload
systemctl start tn-probe.service || { journalctl -u tn-probe --no-pager -o cat | tail -20; fail "probe"; }
journalctl -u tn-probe.service --no-pager -o cat | tail -5
journalctl -u tn-probe.service --no-pager -o cat | grep -q SANDBOX-OK || fail "probe did not finish"
[ "$(zfs get -H -o value com.dtctoday:device-guid pool0)" = $GUID ] || fail "identity ensure could not zfs set in the sandbox"
zfs get -H -o name,property,value,source all pool0 | grep com.dtctoday
rm -rf $RUN/tn-probe.service $RUN/tn-probe.service.d; systemctl daemon-reload

step "idempotent re-install leaves the running service alone"
pid=$(systemctl show -p MainPID --value $UNIT)
$A install --json > /tmp/again.json
jq -e '.written == [] and .restarted == false and .init_script.action == "unchanged"' /tmp/again.json >/dev/null || { cat /tmp/again.json; fail "re-install not idempotent"; }
[ "$(systemctl show -p MainPID --value $UNIT)" = "$pid" ] || fail "re-install restarted the service"

step "reboot-equivalent: stop, clear /run/systemd/system, run the registered command"
cmd=$($A install --check --json | jq -r .boot_command)
echo "registered command: $cmd"
systemctl stop $UNIT
rm -rf $RUN/$UNIT $RUN/$UNIT.d
systemctl daemon-reload
[ "$(systemctl show -p LoadState --value $UNIT)" = not-found ] || fail "unit still known after clearing /run"
$MW initshutdownscript.query '[["enabled","=",true],["when","=","POSTINIT"]]' | jq -r '.[].command' > /tmp/postinit.txt
# What the middleware does: `sh -c <command>` for each enabled POSTINIT entry.
while IFS= read -r c; do sh -c "$c"; done < /tmp/postinit.txt
wait_active
echo "back: $(systemctl show -p ActiveEnterTimestamp --value $UNIT)"
$A install --check

step "install --check fails with a clear message after each piece is removed in turn"
mv $ROOT/bin/truenas-agent /root/agent.bin
expect_only_failure binary
mv /root/agent.bin $ROOT/bin/truenas-agent
$A install --check >/dev/null || fail "binary restored"
mv $ROOT/agent.toml /root/agent.installed.toml
expect_only_failure config
mv /root/agent.installed.toml $ROOT/agent.toml
chmod 0644 $ROOT/token
expect_only_failure token
chmod 0600 $ROOT/token
id=$($MW initshutdownscript.query | jq -r '.[] | select(.comment | contains("[truenas-agent:boot]")) | .id')
$MW initshutdownscript.update "$id" '{"enabled": false}' >/dev/null
expect_only_failure init_script
repair init_script
$MW initshutdownscript.delete "$id" >/dev/null
expect_only_failure init_script
repair init_script
rm $RUN/$UNIT.d/install.conf
expect_only_failure unit_files
repair unit_files
systemctl stop $UNIT
expect_only_failure service_active
repair service_active
kill -9 "$(systemctl show -p MainPID --value $UNIT)"
sleep 1
rc=0; $A install --check --json > /tmp/check.json || rc=$?
echo "  after SIGKILL: $(jq -r '.items[] | select(.id=="service_active") | .detail' /tmp/check.json) (systemd restarts it)"
wait_active
$A install --check >/dev/null || fail "restart after SIGKILL"

step "uninstall leaves no unit and no init entry (state kept), then --purge"
$A uninstall
[ "$(systemctl show -p LoadState --value $UNIT)" = not-found ] || fail "unit still loaded"
[ ! -e $RUN/$UNIT ] && [ ! -e $RUN/$UNIT.d ] || fail "runtime unit left"
$MW initshutdownscript.query > /tmp/scripts.json
jq -e 'map(select(.comment | contains("[truenas-agent:boot]"))) | length == 0' /tmp/scripts.json >/dev/null || fail "init entry left"
jq -e 'map(select(.comment == "admin script")) | length == 1' /tmp/scripts.json >/dev/null || fail "admin script touched"
[ -f $ROOT/agent.toml ] && [ -f $ROOT/token ] && [ -d $ROOT/state ] || fail "config/state not kept"
$A install >/dev/null && $A install --check >/dev/null || fail "re-install after uninstall"
$A uninstall --purge
[ ! -e $ROOT/bin ] && [ ! -e $ROOT/token ] && [ ! -e $ROOT/agent.toml ] && [ ! -e $ROOT/state ] || fail "purge left files"

step "sysext route: install --sysext, reboot-equivalent, check, uninstall"
if [ -f "${SYSEXT_DIR:-/nonexistent}/truenas-agent.raw" ]; then
  $A install --sysext "$SYSEXT_DIR/truenas-agent.raw" --agent-config /root/agent.toml --token-file /root/token
  systemd-sysext list | grep truenas-agent || fail "sysext not merged"
  [ "$(readlink -f "$(systemctl show -p FragmentPath --value $UNIT)")" = /usr/lib/systemd/system/$UNIT ] || fail "unit not from the image"
  [ -f $ROOT/truenas-agent.raw ] && [ ! -e $ROOT/bin ] || fail "sysext files on the pool"
  inv=$(systemctl show -p InvocationID --value $UNIT)
  for _ in $(seq 1 30); do
    journalctl _SYSTEMD_INVOCATION_ID="$inv" --no-pager -o cat | grep -q "truenas-agent started" && break; sleep 1
  done
  journalctl _SYSTEMD_INVOCATION_ID="$inv" --no-pager -o cat | grep "truenas-agent started" || fail "sysext agent did not log"
  # reboot-equivalent: /run (units and extensions) is empty, /usr is the plain one.
  systemctl stop $UNIT
  rm -rf $RUN/$UNIT.d /run/extensions/truenas-agent.raw
  systemd-sysext refresh
  systemctl daemon-reload
  [ ! -e /usr/bin/truenas-agent ] || fail "still merged after clearing /run/extensions"
  $MW initshutdownscript.query '[["enabled","=",true],["when","=","POSTINIT"]]' | jq -r '.[].command' > /tmp/postinit.txt
  while IFS= read -r c; do sh -c "$c"; done < /tmp/postinit.txt
  wait_active
  $A install --check
  $A uninstall --purge
  [ ! -e /usr/bin/truenas-agent ] && [ ! -e /run/extensions/truenas-agent.raw ] || fail "sysext left merged"
  [ "$(systemctl show -p LoadState --value $UNIT)" = not-found ] || fail "unit still loaded"
else
  echo "skipped: no sysext image shared (mksquashfs missing on the host?)"
fi

step "secrets"
grep -rl CANARY /run/systemd /tmp/install.txt /tmp/again.json /tmp/check.json 2>/dev/null && fail "token leaked"
journalctl -b --no-pager -o cat | grep -q CANARY && fail "token in journal"
echo "wall time in guest: $(( $(date +%s) - t0 ))s" | tee "$OUT/guest-time.txt"
echo "install VM test: PASS"

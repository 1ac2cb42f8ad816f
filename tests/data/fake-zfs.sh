#!/bin/sh
# A scripted stand-in for OpenZFS's `zfs` and `zpool`, for tests. Install it twice in one
# directory, as `zfs` and as `zpool`; all its state lives next to it, because the agent
# runs these programs with an empty environment:
#   pools                 imported pools, one per line (`zpool list -H -o name`)
#   datasets              further existing datasets, one per line
#   props/<ds>/<key>      a property value set on <ds> ('/' in <ds> written as '%');
#   props/<ds>/<key>.src  optional SOURCE column instead of `local` (e.g. `received`)
#   fail                  a failure mode for every run, or fail.<prog>.<subcommand>
#                         (e.g. fail.zfs.set) for one kind of run; see the case below
#   argv.log              every run, one line: prog [arg] [arg] ...
# Messages and exit codes are those OpenZFS 2.3.2 printed in the VM (docs/identity.md).
D=$(cd "$(dirname "$0")" && pwd)
me=$(basename "$0")
{ printf '%s' "$me"; for a in "$@"; do printf ' [%s]' "$a"; done; printf '\n'; } >> "$D/argv.log"
op="$1"
fail=""
[ -f "$D/fail" ] && fail=$(cat "$D/fail")
[ -f "$D/fail.$me.$op" ] && fail=$(cat "$D/fail.$me.$op")
for last; do :; done

enc() { printf '%s' "$1" | tr '/' '%'; }
exists() {
  grep -qxF -- "$1" "$D/pools" 2>/dev/null || grep -qxF -- "$1" "$D/datasets" 2>/dev/null
}
no_dataset() { echo "cannot open '$1': dataset does not exist" >&2; exit 1; }

case "$fail" in
  sleep) echo $$ > "$D/sleeper.pid"; sleep 30; echo late; exit 0 ;;
  notusable)
    echo "/dev/zfs and /proc/self/mounts are required." >&2
    echo "Try running 'udevadm trigger' and 'mount -t proc proc /proc' as root." >&2
    exit 1 ;;
  eperm-root) echo "Permission denied the ZFS utilities must be run as root." >&2; exit 1 ;;
  eperm)
    case "$op" in
      set) echo "cannot set property for '$last': permission denied" >&2; exit 255 ;;
      inherit) echo "cannot inherit $2 for '$last': permission denied" >&2; exit 1 ;;
    esac ;;
  garbage) echo "hello world"; exit 0 ;;
  columns) printf 'pool0\tONLINE\n'; exit 0 ;;
  empty) exit 0 ;;
  wrongname) printf 'other\t%s\tlocal\tx\n' "$6"; exit 0 ;;
  crash) echo "internal error: Bad file descriptor" >&2; exit 3 ;;
  toolong) echo "cannot set property for '$last': property value too long" >&2; exit 255 ;;
  signal) kill -9 $$ ;;
  noise) i=0; while [ $i -lt 3000 ]; do echo "noise line $i of a very chatty failure"; i=$((i+1)); done >&2; exit 1 ;;
esac

case "$me $op" in
  "zpool list")
    [ "$*" = "list -H -o name" ] || { echo "fake zpool: unexpected arguments: $*" >&2; exit 2; }
    [ -f "$D/pools" ] && cat "$D/pools"
    exit 0 ;;
  "zfs get")
    [ "$2 $3 $4 $5" = "-H -p -o name,property,source,value" ] && [ $# -eq 7 ] ||
      { echo "fake zfs: unexpected arguments: $*" >&2; exit 2; }
    key="$6"; ds="$7"
    exists "$ds" || no_dataset "$ds"
    f="$D/props/$(enc "$ds")/$key"
    if [ -f "$f" ]; then
      src=local; [ -f "$f.src" ] && src=$(cat "$f.src")
      printf '%s\t%s\t%s\t' "$ds" "$key" "$src"; cat "$f"; printf '\n'; exit 0
    fi
    p="$ds"
    while [ "${p%/*}" != "$p" ]; do
      p="${p%/*}"
      f="$D/props/$(enc "$p")/$key"
      if [ -f "$f" ]; then
        printf '%s\t%s\tinherited from %s\t' "$ds" "$key" "$p"; cat "$f"; printf '\n'; exit 0
      fi
    done
    printf '%s\t%s\t-\t-\n' "$ds" "$key"; exit 0 ;;
  "zfs set")
    [ $# -ge 3 ] || { echo "fake zfs: unexpected arguments: $*" >&2; exit 2; }
    exists "$last" || no_dataset "$last"
    [ "$fail" = ignoreset ] && exit 0
    mkdir -p "$D/props/$(enc "$last")"
    i=0
    for a; do
      i=$((i+1))
      [ $i -eq 1 ] && continue
      [ $i -eq $# ] && break
      k="${a%%=*}"; v="${a#*=}"
      [ "$fail" = flipset ] && v="flipped-$v"
      printf '%s' "$v" > "$D/props/$(enc "$last")/$k"
    done
    exit 0 ;;
  "zfs inherit")
    [ $# -eq 3 ] || { echo "fake zfs: unexpected arguments: $*" >&2; exit 2; }
    exists "$3" || no_dataset "$3"
    rm -f "$D/props/$(enc "$3")/$2" "$D/props/$(enc "$3")/$2.src"
    exit 0 ;;
esac
echo "fake $me: unsupported: $*" >&2
exit 2

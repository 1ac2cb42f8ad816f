#!/usr/bin/env bash
# Builds a systemd-sysext image of truenas-agent: the static binary and the hardened unit,
# overlaid on TrueNAS's read-only /usr by `systemd-sysext` (the mechanism TrueNAS itself
# uses for its NVIDIA and dpkg extensions: an image in /run/extensions + refresh).
#
#   packaging/sysext/build.sh [--binary PATH] [--out DIR] [--format squashfs|dir]
#
# Image tree:
#   usr/bin/truenas-agent
#   usr/lib/systemd/system/truenas-agent.service
#   usr/lib/extension-release.d/extension-release.truenas-agent   (ID=_any)
#
# --format squashfs (default) needs mksquashfs: `apt-get install squashfs-tools`.
# --format dir makes a plain directory image (systemd-sysext accepts directories too);
# handy where squashfs-tools are missing, but a single .raw file is easier to keep on a
# pool and to checksum/sign, so releases use squashfs.
# The image is per release, not per box: the box-specific part (config, token, state dir
# on a pool) comes from the installer's drop-in, see docs/install.md "sysext route".
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=""
out=dist
format=squashfs
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --format) format=$2; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--out DIR] [--format squashfs|dir]" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  binary=target/x86_64-unknown-linux-gnu/release/truenas-agent
  [ -x "$binary" ] || { echo "no release binary at $binary: run packaging/build-release.sh first" >&2; exit 1; }
fi

version=$("$binary" --version | awk '{print $2}')
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
install -D -m 0755 "$binary" "$tree/usr/bin/truenas-agent"
install -D -m 0644 systemd/truenas-agent.service "$tree/usr/lib/systemd/system/truenas-agent.service"
# ID=_any: merge on any OS (TrueNAS's os-release says ID=debian but its releases are not
# Debian's; pinning VERSION_ID would refuse the image after every TrueNAS update).
install -d "$tree/usr/lib/extension-release.d"
cat > "$tree/usr/lib/extension-release.d/extension-release.truenas-agent" <<REL
ID=_any
SYSEXT_SCOPE=system
IMAGE_ID=truenas-agent
IMAGE_VERSION=$version
REL

mkdir -p "$out"
case "$format" in
  squashfs)
    command -v mksquashfs >/dev/null || { echo "mksquashfs missing: apt-get install squashfs-tools (or --format dir)" >&2; exit 1; }
    img="$out/truenas-agent.raw"
    rm -f "$img"
    mksquashfs "$tree" "$img" -all-root -noappend -comp zstd -quiet -no-progress
    ( cd "$out" && sha256sum truenas-agent.raw > truenas-agent.raw.sha256 )
    ;;
  dir)
    img="$out/truenas-agent"
    rm -rf "$img"
    cp -a "$tree" "$img"
    chown -R 0:0 "$img" 2>/dev/null || true
    ;;
  *) echo "unknown format $format" >&2; exit 2 ;;
esac
echo "sysext image: $img (truenas-agent $version)"

#!/usr/bin/env bash
# Builds the appliance release of truenas-agent: one static binary (glibc crt-static,
# rustls + ring, no OpenSSL), the size-optimised release profile of the workspace's
# Cargo.toml (opt-level z, fat LTO, 1 CGU, panic=abort; linked with symbols and stripped
# here), of the agent crate alone (`-p truenas-agent`: crates/agent, which has no features
# and never depends on the simulator or the central server), its code laid out by the
# profile in packaging/layout/. Checks that the result is static and the layout applied,
# prints its size, writes SHA256SUMS, and signs it when a key is given.
#
# Run by hand, in a release job, and by .ci/run (3-6 min on 2 cores):
#   packaging/build-release.sh                    # → dist/
#   SIGNING_KEY=/secure/release-ed25519.pem packaging/build-release.sh
#   packaging/build-release.sh --keygen DIR       # one-time: Ed25519 key pair (OpenSSL)
#
# Signing: Ed25519 over SHA256SUMS with OpenSSL 3 (`pkeyutl -rawin`); verify on any box
# (TrueNAS has openssl) with the public key published next to the releases:
#   openssl pkeyutl -verify -pubin -inkey release-ed25519.pub -rawin \
#       -in SHA256SUMS -sigfile SHA256SUMS.sig && sha256sum -c SHA256SUMS
# The private key never enters the repository or CI logs; keep it offline/in a vault.
#
# The reference central server is another crate of the workspace (it runs off the NAS):
#   cargo build --release -p truenas-central --bin truenas-central
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-release: $*" >&2; exit 1; }

if [ "${1:-}" = "--keygen" ]; then
  dir=${2:?usage: build-release.sh --keygen DIR}
  mkdir -p "$dir"
  umask 077
  openssl genpkey -algorithm ed25519 -out "$dir/release-ed25519.pem"
  openssl pkey -in "$dir/release-ed25519.pem" -pubout -out "$dir/release-ed25519.pub"
  echo "private key: $dir/release-ed25519.pem (keep it secret)"
  echo "public key:  $dir/release-ed25519.pub (publish it with the releases)"
  exit 0
fi

TARGET=x86_64-unknown-linux-gnu
OUT=${OUT_DIR:-dist}
# RUSTFLAGS reach only the target crates because --target is explicit (not build scripts
# or proc-macros, which must stay dynamic to run on the build host).
# Size (docs/benchmarks.md, "Binary size"), with rustc's own linker (rust-lld):
# - `-z pack-relative-relocs`: the static-pie's relative relocations as a compact RELR
#   table instead of 24-byte RELA entries (glibc >= 2.36 applies them at start-up; the
#   glibc is linked in, so the NAS's own glibc does not matter);
# - `--icf=safe` with LLVM's address-significance table (`-addrsig`): identical
#   functions and constants folded, except those whose address is significant (Rust
#   `static`s, and all C code, which has no such table);
# - `--no-eh-frame-hdr`: no index for the unwinder. With panic = "abort" nothing
#   unwinds; it only served RUST_BACKTRACE backtraces, which in this stripped PIE were
#   bare randomised addresses. A panic still prints its message and file:line.
# - `-T packaging/no-unwind-tables.ld`: no `.eh_frame` (601,776 bytes on 3c3299d, 10.7 %
#   of the file) and no `.gcc_except_table` (6,770) either. Without `.eh_frame_hdr` the unwinder in the
#   binary could not find them anyway (libgcc looks FDEs up through PT_GNU_EH_FRAME; a
#   static-pie's crtbeginS.o registers none), so they were dead weight: nothing unwinds
#   (panic = "abort"), RUST_BACKTRACE already printed no frames. What is lost: gdb's and
#   perf's table-based stack walking through the stripped binary (they fall back to frame
#   heuristics). The script only discards sections (INSERT keeps lld's default layout),
#   so the binary stays a static PIE with RELRO, BIND_NOW and a non-executable stack.
# Resident memory (docs/benchmarks.md, "Idle RSS: the code layout"):
# - `--symbol-ordering-file packaging/layout/truenas-agent.order`: the functions the
#   daemon runs (a callgrind profile, packaging/layout/profile.sh) first and together in
#   .text, so the kernel's 64 KiB fault-around blocks hold the daemon's code and little
#   else. Names the file lists that this build lacks are skipped (no warnings); the
#   check below fails the build when too few are left.
ORDER=$PWD/packaging/layout/truenas-agent.order
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C llvm-args=-addrsig \
  -C link-arg=-Wl,-z,pack-relative-relocs -C link-arg=-Wl,--icf=safe \
  -C link-arg=-Wl,--no-eh-frame-hdr -C link-arg=-Wl,-T,$PWD/packaging/no-unwind-tables.ld \
  -C link-arg=-Wl,--symbol-ordering-file=$ORDER -C link-arg=-Wl,--no-warn-symbol-ordering"
# With an explicit --target the output goes to target/<triple>/release, apart from the
# dev builds in target/debug.
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
# Linked with its symbols and stripped below: the copy with symbols (BIN.syms, never
# shipped) is what packaging/layout/profile.sh profiles and what the layout check reads;
# stripping removes only the symbol table, the code stays the same bytes at the same
# addresses.
export CARGO_PROFILE_RELEASE_STRIP=false

start=$(date +%s)
cargo build --release --locked --target "$TARGET" -p truenas-agent --bin truenas-agent
elapsed=$(( $(date +%s) - start ))
BIN="$CARGO_TARGET_DIR/$TARGET/release/truenas-agent"
if readelf -SW "$BIN" | grep -q ' \.symtab '; then
  # Freshly linked (on a rerun without changes cargo leaves the stripped binary alone).
  cp "$BIN" "$BIN.syms"
  strip --strip-all "$BIN"
fi
[ -f "$BIN.syms" ] || die "$BIN.syms is missing: remove $BIN and build again"

# --- code layout -----------------------------------------------------------------------
python3 packaging/layout/order.py check "$ORDER" "$BIN.syms" \
  || die "the code layout profile does not match this build (see above)"

# --- static? -------------------------------------------------------------------------
file_out=$(file -b "$BIN")
echo "file: $file_out"
case "$file_out" in
  *static-pie\ linked*|*statically\ linked*) ;;
  *) die "not a static binary: $file_out" ;;
esac
ldd_out=$(ldd "$BIN" 2>&1 || true)
echo "ldd:  $ldd_out"
case "$ldd_out" in
  *"statically linked"*|*"not a dynamic executable"*) ;;
  *) die "ldd reports dynamic dependencies: $ldd_out" ;;
esac

# The unwind tables must be gone (the link script above took effect), and the linker's
# hardening kept: RELRO and a non-executable stack (ASLR: `file` says static-pie above).
sections=$(readelf -SW "$BIN")
case "$sections" in
  *" .eh_frame "*|*" .eh_frame_hdr "*|*" .gcc_except_table "*) die "unwind tables in $BIN (packaging/no-unwind-tables.ld not applied?)" ;;
esac
headers=$(readelf -lW "$BIN")
grep -q GNU_RELRO <<<"$headers" || die "no GNU_RELRO segment in $BIN"
grep -Eq 'GNU_STACK +(0x[0-9a-f]+ +){5}RW ' <<<"$headers" || die "stack not RW (non-executable) in $BIN"

version_line=$("$BIN" --version)
echo "version: $version_line"
version=$(echo "$version_line" | awk '{print $2}')
size=$(stat -c %s "$BIN")
echo "size: $size bytes ($(awk -v s="$size" 'BEGIN{printf "%.2f MB", s/1000000}')), built in ${elapsed}s"
# Issue 17's budget (docs/benchmarks.md, "Binary size"): reported, not enforced here.
budget=5242880
if [ "$size" -le "$budget" ]; then
  echo "budget: 5 MiB ($budget bytes) met by $(( budget - size )) bytes"
else
  echo "budget: 5 MiB ($budget bytes) MISSED by $(( size - budget )) bytes"
fi

# --- artefacts -------------------------------------------------------------------------
mkdir -p "$OUT"
name="truenas-agent-$version-x86_64-linux"
cp "$BIN" "$OUT/$name"
chmod 0755 "$OUT/$name"
( cd "$OUT" && sha256sum "$name" > SHA256SUMS )
echo "sha256: $(cut -d' ' -f1 "$OUT/SHA256SUMS")"

if [ -n "${SIGNING_KEY:-}" ]; then
  [ -r "$SIGNING_KEY" ] || die "SIGNING_KEY $SIGNING_KEY is not readable"
  openssl pkeyutl -sign -inkey "$SIGNING_KEY" -rawin -in "$OUT/SHA256SUMS" -out "$OUT/SHA256SUMS.sig"
  pub="$OUT/release-ed25519.pub"
  openssl pkey -in "$SIGNING_KEY" -pubout -out "$pub"
  openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$OUT/SHA256SUMS" \
    -sigfile "$OUT/SHA256SUMS.sig" >/dev/null || die "signature does not verify"
  echo "signed: $OUT/SHA256SUMS.sig (verifies with $pub)"
else
  echo "unsigned: set SIGNING_KEY=<ed25519 private key PEM> to sign SHA256SUMS"
fi
echo "artefacts in $OUT/: $name SHA256SUMS${SIGNING_KEY:+ SHA256SUMS.sig release-ed25519.pub}"

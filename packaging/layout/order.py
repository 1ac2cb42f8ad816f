#!/usr/bin/env python3
"""The code layout of the appliance binary: which functions the daemon runs.

    order.py profile CALLGRIND_OUT BINARY_WITH_SYMBOLS > packaging/layout/truenas-agent.order
    order.py native ORDER_FILE PERF_FAULTS BINARY_WITH_SYMBOLS   # appends
    order.py check ORDER_FILE BINARY_WITH_SYMBOLS [--min-present PERCENT]

`profile` reads a callgrind profile of `truenas-agent run` made with `--demangle=no`
(packaging/layout/profile.sh makes one: start, convergence, reports, long-polls, pings and
repairs of a simulated box) and prints the mangled names of every function the daemon
executed that the binary defines, in the order callgrind first met them. The release link
(packaging/build-release.sh) hands that list to lld as `--symbol-ordering-file`, which
puts those functions first and next to each other in `.text`.

Why (docs/benchmarks.md, "Idle RSS: the code layout"): the kernel maps file-backed code in
blocks around each page fault (fault-around, 64 KiB by default), so a function of 200 bytes
alone in a 64 KiB block keeps the whole block resident. Without a layout the few thousand
functions the daemon runs are spread over the whole of `.text` and nearly every block is
resident; with them packed together, the resident code is about what the daemon runs.

`check` prints how many of the ordered functions the binary still defines and where they
ended up (the span of `.text` they occupy); it fails when they are not packed together
(the span is over 1.25 times their size: the link did not apply the order) and when fewer
than --min-present percent (default 70) are present: symbol names carry hashes that change with dependency versions,
the compiler and the release profile, so a profile that no longer matches the code is a
build failure rather than a silent loss of the layout (regenerate it with profile.sh).
"""

import bisect
import re
import subprocess
import sys


def text_symbols(binary):
    """{mangled name: (address, size)} of the functions BINARY defines."""
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[2] not in ("t", "T", "W", "w"):
            continue
        syms.setdefault(parts[3], (int(parts[0], 16), int(parts[1], 16)))
    return syms


# Name parts that mark a CPU-specific implementation in glibc (`__memmove_avx_unaligned_erms`,
# `__strlen_evex`) and ring (`..._sha256_block_data_order_shaext`, `..._nohw`).
VARIANT_TOKENS = {
    "sse2", "ssse3", "sse4", "sse41", "sse42", "avx", "avx2", "avx512", "evex", "evex512",
    "erms", "rtm", "unaligned", "aligned", "movbe", "shaext", "nohw", "hw", "adx", "bmi2",
    "no", "vzeroupper", "x86", "64", "v2", "v3", "v4", "clmul", "aesni",
}


def variant_stem(name):
    """`__memmove` for `__memmove_avx_unaligned_erms`; None for a name with no variant part
    (and for Rust's mangled names, which never have one)."""
    if name.startswith(("_ZN", "_R")):
        return None
    tokens = name.split("_")
    for i, token in enumerate(tokens):
        if i > 0 and token in VARIANT_TOKENS and any(tokens[:i]):
            return "_".join(tokens[:i])
    return None


def variant_families(defined):
    """{stem: [every defined name with that stem]}, for stems with two or more variants."""
    families = {}
    for name in defined:
        stem = variant_stem(name)
        if stem:
            families.setdefault(stem, []).append(name)
    for stem, names in families.items():
        if stem in defined:
            names.append(stem)  # the generic implementation (`..._scalarmult_base`)
    return {stem: sorted(names) for stem, names in families.items() if len(names) > 1}


def profile(cg_out, binary):
    names, executed = {}, []
    seen = set()
    pattern = re.compile(r"^(c?fn)=\((\d+)\)(?: (.*))?$")
    with open(cg_out, errors="replace") as f:
        for line in f:
            m = pattern.match(line.rstrip("\n"))
            if not m:
                continue
            kind, ident, name = m.groups()
            if name:
                names[ident] = name
            if kind == "fn" and ident not in seen:
                seen.add(ident)
                executed.append(ident)
    defined = text_symbols(binary)
    out, emitted = [], set()

    def emit(name):
        if name in defined and name not in emitted:
            emitted.add(name)
            out.append(name)

    # The C code picks an implementation for the CPU it runs on (glibc's string functions
    # through IFUNC resolvers applied at start-up, ring's assembly through its own feature
    # checks), and valgrind's virtual CPU is not the NAS's: every variant of a function
    # the profile ran is laid out with it, and every IFUNC resolver (all run at start-up).
    families = variant_families(defined)
    for ident in executed:
        name = names.get(ident)
        if not name:
            continue
        emit(name)
        for sibling in families.get(variant_stem(name), ()):
            emit(sibling)
    for name in defined:
        if name.endswith("_ifunc"):
            emit(name)
    if len(out) < 100:
        raise SystemExit(f"order.py: only {len(out)} executed functions found in {binary}: "
                         "was the profile made with --demangle=no, of this binary?")
    size = sum(defined[n][1] for n in out)
    print(f"order.py: {len(out)} functions, {size} bytes of code", file=sys.stderr)
    sys.stdout.write("".join(n + "\n" for n in out))


def read_order(order_file):
    """The names ORDER_FILE lists (lld skips the `#` comment lines too)."""
    with open(order_file) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def native(order_file, faults, binary):
    """Appends to ORDER_FILE the functions of BINARY (with symbols) that the native run's
    page faults (FAULTS: `perf script -F addr,ip` of `perf record -e page-faults -c 1 -d`)
    touched and the order lacks: code callgrind's virtual CPU never ran (implementations
    chosen by CPU features — SHA extensions, ADX, AVX-512 — and start-up code before
    valgrind's first instruction). The load address is found from `_start`, which the
    kernel enters first: the first instruction-fetch fault recorded at _start's offset
    within a page."""
    defined = text_symbols(binary)
    table = sorted((addr, size, name) for name, (addr, size) in defined.items())
    starts = [addr for addr, _, _ in table]
    entry = defined["_start"][0]
    samples, fetches = [], []
    for line in open(faults):
        parts = line.split()
        if len(parts) >= 2:
            addr, ip = int(parts[0], 16), int(parts[1], 16)
            samples.append(addr)
            if addr == ip:
                fetches.append(addr)
    # The first instruction fetch (the faulting address is the instruction's) at _start's
    # offset within its page: the entry point.
    base = next((a - entry for a in fetches if (a - entry) % 4096 == 0), None)
    if base is None:
        raise SystemExit("order.py native: no fault at _start in the profile: is it of this binary?")
    wanted = read_order(order_file)
    have = set(wanted)
    families = variant_families(defined)
    added = []
    for addr in samples:
        offset = addr - base
        i = bisect.bisect_right(starts, offset) - 1
        if i < 0:
            continue
        start, size, name = table[i]
        if start <= offset < start + max(size, 1):
            for each in [name, *families.get(variant_stem(name), ())]:
                if each not in have:
                    have.add(each)
                    added.append(each)
    with open(order_file, "a") as f:
        f.write("".join(n + "\n" for n in added))
    print(f"order.py native: {len(added)} functions added: {' '.join(added)[:300]}", file=sys.stderr)
    return len(added)


def check(order_file, binary, min_present):
    wanted = read_order(order_file)
    defined = text_symbols(binary)
    present = [n for n in wanted if n in defined]
    pct = 100.0 * len(present) / max(1, len(wanted))
    size = sum(defined[n][1] for n in present)
    if present:
        lo = min(defined[n][0] for n in present)
        hi = max(defined[n][0] + defined[n][1] for n in present)
        span = f"{hi - lo} bytes of .text at 0x{lo:x}"
    else:
        span = "nothing"
    print(f"layout: {len(present)} of {len(wanted)} profiled functions present ({pct:.1f} %), "
          f"{size} bytes of code packed into {span}")
    if present and (hi - lo) > 1.25 * size:
        raise SystemExit(f"layout: the profiled functions are spread over {hi - lo} bytes of .text "
                         f"for {size} bytes of code: the link did not apply {order_file} "
                         "(is --symbol-ordering-file in packaging/build-release.sh's RUSTFLAGS?)")
    if pct < min_present:
        raise SystemExit(f"layout: under {min_present} % of {order_file} is in the binary: the "
                         "profile no longer matches the code; regenerate it with "
                         "packaging/layout/profile.sh (docs/benchmarks.md)")


def main(argv):
    if len(argv) >= 3 and argv[0] == "profile":
        profile(argv[1], argv[2])
    elif len(argv) >= 4 and argv[0] == "native":
        native(argv[1], argv[2], argv[3])
    elif len(argv) >= 3 and argv[0] == "check":
        min_present = 70.0
        if "--min-present" in argv:
            min_present = float(argv[argv.index("--min-present") + 1])
        check(argv[1], argv[2], min_present)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

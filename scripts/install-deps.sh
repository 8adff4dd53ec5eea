#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmark need on a Debian-like machine, saying what and
# why. Idempotent: anything already present is left alone. Uses sudo only when not root.
#
#   scripts/install-deps.sh            everything (tests, demo, benchmark)
#   scripts/install-deps.sh --qemu     only what booting the kernel needs
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[deps] %s\n' "$*" >&2; }
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# package:command-or-file:reason
qemu_pkgs=(
    "qemu-system-x86:/usr/bin/qemu-system-x86_64:QEMU boots the kernel and the kernel test images"
)
all_pkgs=(
    "${qemu_pkgs[@]}"
    "xenstore-utils:/usr/bin/xenstore-write:the real xenstore-* CLI and libxenstore, used as peers by the tests"
    "libxen-dev:/usr/include/xenstore.h:xenstore.h, to build the libxenstore peer of the benchmark"
    "gcc:/usr/bin/gcc:builds the fake Xen libraries the real xenstored runs on"
    "g++:/usr/bin/g++:builds libFuzzer for the bounded fuzz run"
    "binutils:/usr/bin/nm:nm checks the fake Xen libraries against what the daemon imports"
    "grub-pc-bin:/usr/lib/grub/i386-pc/multiboot2.mod:GRUB modules, for the optional bootable ISO"
    "grub-common:/usr/bin/grub-mkrescue:grub-mkrescue, for the optional bootable ISO"
    "xorriso:/usr/bin/xorriso:writes the optional bootable ISO"
    "mtools:/usr/bin/mformat:writes the optional bootable ISO"
)

pkgs=("${all_pkgs[@]}")
[ "${1:-}" = "--qemu" ] && pkgs=("${qemu_pkgs[@]}")

missing=()
for entry in "${pkgs[@]}"; do
    IFS=: read -r pkg probe why <<<"$entry"
    if [ ! -e "$probe" ]; then
        say "missing $pkg: $why"
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        say "apt-get not found: install ${missing[*]} by hand"
        exit 1
    fi
    say "installing with apt-get: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The real xenstored is fetched later with `apt-get download xen-utils-4.17` (testbed/fetch-xenstored.sh),
# which needs the package lists even when every package above is already installed.
# (Output captured first: under pipefail, `grep -q` closing the pipe early would fail the test.)
policy=$(apt-cache policy xen-utils-4.17 2>/dev/null || true)
if [ "${1:-}" != "--qemu" ] && command -v apt-cache >/dev/null && ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
    say "apt does not know xen-utils-4.17 yet (the real xenstored comes from it): apt-get update"
    as_root apt-get update -qq
fi

# The Rust toolchain and the bare-metal target come from rust-toolchain.toml: rustup installs them on
# first use. Doing it here makes that visible instead of a silent pause in the first cargo call.
if command -v rustup >/dev/null; then
    if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
        say "installing the pinned Rust toolchain and its x86_64-unknown-none target (rust-toolchain.toml)"
    fi
    rustup toolchain install >&2
else
    say "rustup not found: install Rust from https://rustup.rs (the toolchain is pinned in rust-toolchain.toml)"
    exit 1
fi

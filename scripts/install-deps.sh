#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmark need on a Debian-like machine, saying what and
# why. Idempotent: anything already present is left alone. Uses sudo only when not root.
#
#   scripts/install-deps.sh            everything (tests, demo, benchmark)
#   scripts/install-deps.sh --run      what ./run-qemu.sh needs (QEMU, the real xenstore-* tools)
#   scripts/install-deps.sh --qemu     only what booting the kernel needs (./run-qemu.sh --xen)
#   scripts/install-deps.sh --real-xen what the real-Xen bed needs (./run-qemu.sh --real-xen)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[deps] %s\n' "$*" >&2; }
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        say "not root and sudo not found: run this as root, or run by hand: $*"
        exit 1
    fi
}

# package:command-or-file:reason ($QEMU names another QEMU, as the boot tool honours it)
qemu_pkgs=(
    "qemu-system-x86:${QEMU:-/usr/bin/qemu-system-x86_64}:QEMU boots the kernel and the kernel test images"
    # Also the linker of every Rust host build: the boot tool cannot be built without it.
    "gcc:/usr/bin/gcc:links the host tools and builds the fake Xen libraries the real xenstored runs on"
)
run_pkgs=(
    "${qemu_pkgs[@]}"
    "xenstore-utils:/usr/bin/xenstore-write:the real xenstore-* CLI and libxenstore, used as peers by the tests"
)
all_pkgs=(
    "${run_pkgs[@]}"
    "libxen-dev:/usr/include/xenstore.h:xenstore.h, to build the libxenstore peer of the benchmark"
    "g++:/usr/bin/g++:builds libFuzzer for the bounded fuzz run"
    "binutils:/usr/bin/nm:nm checks the fake Xen libraries against what the daemon imports"
    "grub-pc-bin:/usr/lib/grub/i386-pc/multiboot2.mod:GRUB modules, for the optional bootable ISO"
    "grub-common:/usr/bin/grub-mkrescue:grub-mkrescue, for the optional bootable ISO"
    "xorriso:/usr/bin/xorriso:writes the optional bootable ISO"
    "mtools:/usr/bin/mformat:writes the optional bootable ISO"
    "cpio:/usr/bin/cpio:packs the dom0 initramfs of the real-Xen bed (realxen/)"
    "python3:python3:runs the module-cycle check (scripts/module-cycles.py)"
)

# The real-Xen bed (realxen/): dom0 gets xl's libraries from the host's libxen-dev and
# xenstore-utils; the initramfs is a cpio archive.
realxen_pkgs=(
    "${run_pkgs[@]}"
    "libxen-dev:/usr/include/xenstore.h:the libraries xl links, copied into the real-Xen bed's dom0"
    "cpio:/usr/bin/cpio:packs the dom0 initramfs of the real-Xen bed (realxen/)"
)

mode=${1:-all}
case "$mode" in
    all) pkgs=("${all_pkgs[@]}") ;;
    --run) pkgs=("${run_pkgs[@]}") ;;
    --qemu) pkgs=("${qemu_pkgs[@]}") ;;
    --real-xen) pkgs=("${realxen_pkgs[@]}") ;;
    *) say "unknown option $mode (want --run, --qemu or --real-xen, or nothing for everything)"; exit 2 ;;
esac

missing=()
for entry in "${pkgs[@]}"; do
    IFS=: read -r pkg probe why <<<"$entry"
    if [ ! -e "$probe" ] && ! command -v "$probe" >/dev/null; then
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
if [ "$mode" != "--qemu" ] && command -v apt-cache >/dev/null && ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
    say "apt does not know xen-utils-4.17 yet (the real xenstored comes from it): apt-get update"
    as_root apt-get update -qq
fi

# The Rust toolchain and the bare-metal target come from rust-toolchain.toml: rustup installs them on
# first use. Doing it here makes that visible instead of a silent pause in the first cargo call; its
# output is shown only when it had work to do or failed.
if command -v rustup >/dev/null; then
    targets=$(rustup target list --installed 2>/dev/null || true)
    if ! grep -qx x86_64-unknown-none <<<"$targets"; then
        say "installing the pinned Rust toolchain and its x86_64-unknown-none target (rust-toolchain.toml)"
        rustup toolchain install >&2
    elif ! out=$(rustup toolchain install 2>&1); then
        printf '%s\n' "$out" >&2
        exit 1
    fi
else
    say "rustup not found: install Rust from https://rustup.rs (the toolchain is pinned in rust-toolchain.toml)"
    exit 1
fi

#!/usr/bin/env bash
# Builds the kernel (through bootimage) and boots it in QEMU with the serial
# console on this terminal; returns to the shell when the kernel exits
# (or on Ctrl-A x). Installs QEMU first if it is missing.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'USAGE'
usage: ./run-qemu.sh [options] [-- extra QEMU arguments]

Boots target/boot/kernel.elf (built first) under QEMU: KVM when /dev/kvm is
usable and this host is not itself a VM (nested KVM measured slower than TCG
for this kernel), TCG otherwise. Serial console on this terminal; Ctrl-A x
quits QEMU.

options:
  --release          optimised kernel build
  --accel kvm|tcg    force the accelerator
  --iso              boot the GRUB ISO (multiboot2) instead of the PVH note
  --append CMDLINE   kernel command line, e.g. --append loglevel=debug
  --memory SIZE      guest RAM (default 128M)
  --fixture NAME     start a host fixture before QEMU (its values can be used
                     in extra QEMU arguments as {NAME.key})
  -h, --help         this help

Exit status: 0 when the kernel exits with success, 1 on kernel failure.
USAGE
}

for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --) break ;;
    esac
done

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v "${QEMU:-qemu-system-x86_64}" >/dev/null 2>&1; then
    echo "run-qemu.sh: qemu-system-x86_64 not found; installing qemu-system-x86 (apt-get)" >&2
    as_root apt-get update -qq
    as_root apt-get install -y -qq qemu-system-x86
fi

# Services the guest talks to are started here, before QEMU, as bootimage
# fixtures (e.g. issue 4: the xenstore daemon and its ivshmem server):
#   FIXTURE_ARGS=(--fixture xenstored) plus the QEMU arguments using them.
FIXTURE_ARGS=()

exec cargo run -q -p bootimage -- run "${FIXTURE_ARGS[@]}" "$@"

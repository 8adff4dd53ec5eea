#!/usr/bin/env bash
# Boots the kernel in QEMU as a guest with a XenStore: the real Xen xenstored
# runs on this host (fake Xen libraries, see testbed/), domain 1 is set up as
# a toolstack would, with three devices (vif/0, vif/1, vbd/768) whose
# backends the host plays, and its xenstore ring is handed to QEMU as an
# ivshmem-doorbell PCI device. The guest starts XenBus and its services
# (control/shutdown, data/, vm-data/) and drops you into its serial shell.
# Installs what is missing first, saying why.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'USAGE'
usage: ./run-qemu.sh [--demo | --xen | --real-xen [--demo]] [options] [-- extra QEMU arguments]

(default)   start the real xenstored, introduce domain 1 with its devices,
            boot the kernel with its ring, and give you the guest's shell on
            this terminal: type 'help'; 'poweroff' (or Ctrl-A x) ends it.
            From another terminal, the host can act as the toolstack:
              XENSTORED_PATH=<socket printed at start> \
                xenstore-write /local/domain/1/control/shutdown poweroff
--demo      scripted session: boot, then the host writes control/shutdown =
            poweroff with the real xenstore-write once the guest watches it;
            exit status 0 when the guest acknowledges and powers off cleanly.
--xen       boot under QEMU's Xen emulation
            (-accel kvm,xen-version=0x40011,kernel-irqchip=split), which needs
            QEMU >= 8.0 and a host KVM with Xen support: the host is probed and
            the command says which check fails if it cannot. On real Xen, use
            target/boot/kernel-pvh.cfg (xl create; a PVH guest) or
            kernel-hvm.cfg (a full HVM guest booting the GRUB ISO; both are
            tested on the real-Xen bed, see README.md).
--real-xen  the real Xen 4.17 hypervisor with a Linux dom0 (the bed in
            realxen/, all in QEMU under TCG; the Debian packages are fetched
            into .cache/realxen/ the first time, about 75 MB): boots Xen and
            dom0, creates the kernel as a PVH guest with xl, and attaches this
            terminal to its shell on the PV console, line by line (what
            `xl console` shows). 'poweroff' in the shell ends the run with
            status 0. Xen and dom0 take about 30 s to come up on an idle
            2-core machine (1-2 minutes when the cores are busy), the guest's
            shell a few seconds more. Options: realxen's (--kernel FILE, ...).
--real-xen --send FILE
            also copy the host's FILE into the guest once its shell is up
            (dom0 runs xen-fcopy, the file copy service's sender; repeatable):
            `cat /NAME` and `sum /NAME` in the guest's shell show it.
--real-xen --demo
            the scripted version: once the guest's shell is up, dom0 runs
            `xl shutdown -w`; status 0 when the guest acknowledged and
            powered off (about a minute in all on an idle 2-core machine).

options:
  --release          optimised kernel build
  --accel kvm|tcg    force the accelerator (default: KVM unless this host is a
                     VM, where nested KVM measured slower than TCG)
  --append CMDLINE   kernel command line, e.g. --append loglevel=debug
  --memory SIZE      guest RAM (default 128M)
  -h, --help         this help

Exit status: 0 when the kernel exits with success (under --real-xen: when
the guest powered off), 1 on failure, 3 when --xen is not possible on this
host; --real-xen: 2 when the bed or the guest failed.
USAGE
}

mode=run
demo=no
args=()
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --demo) demo=yes ;;
        --xen) mode=xen ;;
        --real-xen) mode=real-xen ;;
        *) args+=("$arg") ;;
    esac
done
if [ "$demo" = yes ]; then
    case "$mode" in
        run) mode=demo ;;
        real-xen) mode=real-xen-demo ;;
        xen) echo "run-qemu.sh: --demo does not go with --xen" >&2; exit 2 ;;
    esac
fi

# What is missing (QEMU, gcc, the real xenstore-* tools, the pinned Rust
# toolchain), installed and named by the shared installer; it uses sudo only
# when not root. The xenstored binary itself (Debian's xen-utils-4.17) is
# fetched into .cache/ on first use by the testbed crate, which says so.
case "$mode" in
    xen) scripts/install-deps.sh --qemu ;;
    real-xen*) scripts/install-deps.sh --real-xen ;;
    *) scripts/install-deps.sh --run ;;
esac

case "$mode" in
    run) exec cargo run -q -p bootimage -- run --fixture xenbus "${args[@]}" ;;
    demo) exec cargo run -q -p bootimage -- demo "${args[@]}" ;;
    xen) exec cargo run -q -p bootimage -- run --xen "${args[@]}" ;;
    real-xen) exec cargo run -q -p realxen -- shell "${args[@]}" ;;
    real-xen-demo) exec cargo run -q -p realxen -- demo "${args[@]}" ;;
esac

//! QEMU command lines: the machine every kernel image boots on, and the
//! accelerator choice (KVM when /dev/kvm can be opened, TCG otherwise).

use std::fmt;
use std::path::Path;
use std::process::Command;

/// QEMU's exit status when the kernel wrote `ExitCode::Success` (0x10) to
/// isa-debug-exit: `(0x10 << 1) | 1`.
pub const STATUS_SUCCESS: i32 = 33;
/// QEMU's exit status for `ExitCode::Failure` (0x11).
pub const STATUS_FAILURE: i32 = 35;
/// QEMU's exit status when the machine resets (a reboot or a triple
/// fault): `-no-reboot` makes it exit instead of rebooting.
pub const STATUS_RESET: i32 = 0;
/// The `-accel` value that turns QEMU's Xen emulation on (Xen 4.17), as
/// `run --xen` boots with it and `xen_probe` checks the host for it.
pub const XEN_ACCEL: &str = "kvm,xen-version=0x40011,kernel-irqchip=split";

/// The QEMU binary (override with `$QEMU`).
pub fn binary() -> String {
    std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into())
}

/// CPU virtualisation backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation (always available).
    Tcg,
    /// KVM with QEMU's Xen HVM emulation (QEMU >= 8.0 and a KVM with Xen
    /// support; see `xen_probe`). Never chosen automatically.
    KvmXen,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
            Accel::KvmXen => "kvm-xen",
        })
    }
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!("unknown accelerator {other:?} (kvm or tcg)")),
        }
    }
}

/// The accelerator to use and why: `requested` if given, else
/// `$KTEST_ACCEL`, else KVM if /dev/kvm opens read-write and this host is
/// not itself a virtual machine, else TCG.
///
/// Nested KVM is avoided by default because it was measured to be far
/// slower than TCG for this kernel: every 1 kHz timer interrupt and APIC
/// access is a VM exit, and nested exits cost milliseconds (a 50 ms sleep
/// saw 15 ticks; a log line took 0.3 s; the test suite went from 8 s under
/// TCG to timeouts). `--accel kvm` still forces it.
pub fn choose_accel(requested: Option<Accel>) -> Result<(Accel, &'static str), String> {
    if let Some(a) = requested {
        return Ok((a, "requested"));
    }
    if let Ok(value) = std::env::var("KTEST_ACCEL") {
        return Ok((value.parse()?, "from $KTEST_ACCEL"));
    }
    let kvm_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let nested = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
    });
    Ok(match (kvm_usable, nested) {
        (true, false) => (Accel::Kvm, "/dev/kvm is usable"),
        (true, true) => (
            Accel::Tcg,
            "/dev/kvm is nested KVM here (slower than TCG); --accel kvm forces it",
        ),
        (false, _) => (Accel::Tcg, "/dev/kvm is not usable"),
    })
}

/// How the kernel is handed to QEMU.
pub enum Boot<'a> {
    /// `-kernel` (the PVH note).
    Kernel(&'a Path),
    /// `-cdrom` (the GRUB ISO, multiboot2).
    Iso(&'a Path),
}

/// A QEMU command for the project's machine: i440fx, no default devices,
/// COM1 on stdio, isa-debug-exit, no reboot (a triple fault ends QEMU).
/// `interactive` multiplexes the monitor on stdio (Ctrl-A x quits).
pub fn command(
    boot: Boot<'_>,
    accel: Accel,
    memory: &str,
    cmdline: &str,
    interactive: bool,
) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args([
        "-machine",
        "pc",
        "-m",
        memory,
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
    ]);
    cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    if interactive {
        cmd.args(["-serial", "mon:stdio"]);
    } else {
        cmd.args(["-serial", "stdio", "-monitor", "none"]);
    }
    match accel {
        // The default CPU model, not `-cpu host`: host MSRs QEMU cannot set
        // under nested virtualisation abort it, and tests see the same CPU
        // under both accelerators.
        Accel::Kvm => cmd.args(["-accel", "kvm"]),
        Accel::Tcg => cmd.args(["-accel", "tcg"]),
        Accel::KvmXen => cmd.args(["-accel", XEN_ACCEL]),
    };
    match boot {
        Boot::Kernel(path) => {
            cmd.arg("-kernel").arg(path);
            if !cmdline.is_empty() {
                cmd.args(["-append", cmdline]);
            }
        }
        Boot::Iso(path) => {
            cmd.arg("-cdrom").arg(path).args(["-boot", "d"]);
        }
    }
    cmd
}

//! `--xen`: can this host boot the kernel under QEMU's Xen emulation
//! (`-accel kvm,xen-version=0x40011,kernel-irqchip=split`)? Probed, not
//! guessed: QEMU's version (Xen emulation came in 8.0), whether /dev/kvm
//! opens, and whether the host kernel's KVM has the Xen HVM capabilities
//! QEMU requires (`KVM_CHECK_EXTENSION(KVM_CAP_XEN_HVM)` must report the
//! hypercall MSR, hypercall interception and shared_info, as QEMU's
//! `kvm_xen_init` demands).

use std::os::fd::AsRawFd;
use std::process::Command;

use crate::qemu;

/// The KVM ioctl type (`KVMIO`).
const KVMIO: u8 = 0xae;
/// `KVM_CAP_XEN_HVM`.
const KVM_CAP_XEN_HVM: i32 = 38;

// `KVM_CHECK_EXTENSION` is `_IO(KVMIO, 0x03)` but takes the capability as
// its integer argument and answers in the return value.
nix::ioctl_write_int_bad!(
    /// `KVM_CHECK_EXTENSION`: the capability's value, 0 if absent.
    kvm_check_extension,
    nix::request_code_none!(KVMIO, 0x03)
);
/// `KVM_XEN_HVM_CONFIG_HYPERCALL_MSR | _INTERCEPT_HCALL | _SHARED_INFO`.
const REQUIRED_XEN_FLAGS: i32 = 1 | 2 | 4;

/// What the probe found.
#[derive(Debug)]
pub struct XenProbe {
    /// Each check: (what, passed, detail).
    pub checks: Vec<(&'static str, bool, String)>,
}

impl XenProbe {
    /// Whether every check passed.
    pub fn supported(&self) -> bool {
        self.checks.iter().all(|(_, ok, _)| *ok)
    }

    /// One line per check.
    pub fn render(&self) -> String {
        self.checks
            .iter()
            .map(|(what, ok, detail)| {
                format!("  [{}] {what}: {detail}", if *ok { "ok" } else { "no" })
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `(major, minor)` from `qemu-system-x86_64 --version`.
fn parse_qemu_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn check_qemu() -> (bool, String) {
    match Command::new(qemu::binary()).arg("--version").output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            match parse_qemu_version(&text) {
                Some((major, minor)) if major >= 8 => {
                    (true, format!("QEMU {major}.{minor} has Xen emulation"))
                }
                Some((major, minor)) => (
                    false,
                    format!(
                        "QEMU {major}.{minor} is too old: Xen emulation needs QEMU >= 8.0 \
                         (Debian bookworm-backports has 10.0)"
                    ),
                ),
                None => (false, format!("cannot read QEMU's version from {text:?}")),
            }
        }
        Err(e) => (false, format!("cannot run {}: {e}", qemu::binary())),
    }
}

fn check_kvm() -> [(&'static str, bool, String); 2] {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(f) => f,
        Err(e) => {
            return [
                ("/dev/kvm", false, format!("cannot open /dev/kvm: {e}")),
                (
                    "KVM Xen HVM support",
                    false,
                    "not checked (no /dev/kvm)".into(),
                ),
            ];
        }
    };
    // SAFETY: KVM_CHECK_EXTENSION on the /dev/kvm fd we own takes an
    // integer argument and touches no memory of ours.
    let flags = unsafe { kvm_check_extension(file.as_raw_fd(), KVM_CAP_XEN_HVM) };
    let xen = match flags {
        Err(e) => (false, format!("KVM_CHECK_EXTENSION failed: {e}")),
        Ok(flags) if flags & REQUIRED_XEN_FLAGS == REQUIRED_XEN_FLAGS => {
            (true, format!("KVM_CAP_XEN_HVM = {flags:#x}"))
        }
        Ok(flags) => (
            false,
            format!(
                "KVM_CAP_XEN_HVM = {flags:#x}: the host kernel's KVM lacks Xen HVM support \
                 (CONFIG_KVM_XEN; QEMU needs flags {REQUIRED_XEN_FLAGS:#x})"
            ),
        ),
    };
    [
        ("/dev/kvm", true, "opens read-write".into()),
        ("KVM Xen HVM support", xen.0, xen.1),
    ]
}

/// Runs every check.
pub fn probe() -> XenProbe {
    let (qemu_ok, qemu_detail) = check_qemu();
    let mut checks = vec![("QEMU version", qemu_ok, qemu_detail)];
    checks.extend(check_kvm());
    XenProbe { checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_versions_parse() {
        let debian = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright";
        assert_eq!(parse_qemu_version(debian), Some((7, 2)));
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.0.3"),
            Some((10, 0))
        );
        assert_eq!(parse_qemu_version("something else"), None);
    }

    #[test]
    fn the_probe_names_every_check() {
        let p = probe();
        let names: Vec<_> = p.checks.iter().map(|c| c.0).collect();
        assert_eq!(names, ["QEMU version", "/dev/kvm", "KVM Xen HVM support"]);
        assert_eq!(p.supported(), p.checks.iter().all(|c| c.1));
    }
}

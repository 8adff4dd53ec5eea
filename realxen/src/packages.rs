//! The Debian packages the bed runs, pinned in `realxen/packages.lock`.
//!
//! The dom0 kernel's package name changes on the mirror
//! (`linux-image-6.1.0-NN-amd64`), and security updates replace versions,
//! so the bed resolves names and versions once, records them, and reuses
//! them until `fetch --refresh` resolves them again.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::tool;

/// What the bed needs, by role. The kernel's name is resolved through the
/// `linux-image-amd64` metapackage.
pub const HYPERVISOR: &str = "xen-hypervisor-4.17-amd64";
pub const DOM0_KERNEL_META: &str = "linux-image-amd64";
pub const BUSYBOX: &str = "busybox-static";
pub const XEN_UTILS: &str = "xen-utils-4.17";
pub const XEN_UTILS_COMMON: &str = "xen-utils-common";
/// What a full HVM guest needs in dom0 besides hvmloader (xen-utils): the
/// device model `xen-qemu-system-i386`, SeaBIOS, and QEMU's option ROMs
/// and keymaps.
pub const QEMU_XEN: &str = "qemu-system-xen";
pub const SEABIOS: &str = "seabios";
pub const QEMU_DATA: &str = "qemu-system-data";

const FIXED: [&str; 7] = [
    HYPERVISOR,
    BUSYBOX,
    XEN_UTILS,
    XEN_UTILS_COMMON,
    QEMU_XEN,
    SEABIOS,
    QEMU_DATA,
];

/// One pinned package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub name: String,
    pub version: String,
}

/// The pinned set, in lock-file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub pins: Vec<Pin>,
}

const HEADER: &str = "\
# The exact Debian packages the real-Xen bed runs (realxen/). Written by
# `cargo run -p realxen -- fetch --refresh`, which re-resolves them; every
# other run uses these versions as they are. One `name version` a line.
";

impl Lock {
    /// The lock file's path in the source tree.
    pub fn path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packages.lock")
    }

    pub fn parse(text: &str) -> Result<Lock> {
        let mut pins = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(name), Some(version), None) => pins.push(Pin {
                    name: name.to_string(),
                    version: version.to_string(),
                }),
                _ => {
                    return Err(Error::Lock {
                        reason: format!("line {}: want `name version`, got {line:?}", n + 1),
                    });
                }
            }
        }
        let lock = Lock { pins };
        lock.dom0_kernel()?;
        for name in FIXED {
            lock.pin(name)?;
        }
        Ok(lock)
    }

    pub fn render(&self) -> String {
        let mut text = String::from(HEADER);
        for pin in &self.pins {
            text.push_str(&format!("{} {}\n", pin.name, pin.version));
        }
        text
    }

    /// Reads the committed lock file.
    pub fn load() -> Result<Lock> {
        let path = Self::path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io_path("reading the packages lock", &path, e))?;
        Self::parse(&text)
    }

    pub fn save(&self) -> Result<()> {
        let path = Self::path();
        std::fs::write(&path, self.render())
            .map_err(|e| Error::io_path("writing the packages lock", &path, e))
    }

    pub fn pin(&self, name: &str) -> Result<&Pin> {
        self.pins
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::Lock {
                reason: format!("{name} is not pinned (run `fetch --refresh`)"),
            })
    }

    /// The dom0 kernel's pin (`linux-image-<release>`).
    pub fn dom0_kernel(&self) -> Result<&Pin> {
        self.pins
            .iter()
            .find(|p| p.name.starts_with("linux-image-") && p.name != DOM0_KERNEL_META)
            .ok_or_else(|| Error::Lock {
                reason: "no linux-image-<release> package pinned".to_string(),
            })
    }

    /// The dom0 kernel release (`6.1.0-57-amd64`): its modules directory.
    pub fn dom0_release(&self) -> Result<&str> {
        let pin = self.dom0_kernel()?;
        Ok(pin.name.trim_start_matches("linux-image-"))
    }

    /// Resolves today's names and candidate versions with apt-cache.
    pub fn resolve() -> Result<Lock> {
        let depends = tool::output(
            Command::new("apt-cache").args(["depends", DOM0_KERNEL_META]),
            "apt-cache depends (try `apt-get update`)",
        )?;
        let kernel = depends
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|name| name.starts_with("linux-image-"))
            .ok_or_else(|| Error::Lock {
                reason: format!("{DOM0_KERNEL_META} depends on no linux-image-* package"),
            })?
            .to_string();
        let mut pins = Vec::new();
        for name in [
            HYPERVISOR,
            &kernel,
            BUSYBOX,
            XEN_UTILS,
            XEN_UTILS_COMMON,
            QEMU_XEN,
            SEABIOS,
            QEMU_DATA,
        ] {
            pins.push(Pin {
                name: name.to_string(),
                version: candidate(name)?,
            });
        }
        Ok(Lock { pins })
    }
}

/// apt's candidate version of `name`.
fn candidate(name: &str) -> Result<String> {
    let policy = tool::output(
        Command::new("apt-cache").args(["policy", name]),
        "apt-cache policy",
    )?;
    policy
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Candidate: "))
        .find(|v| *v != "(none)")
        .map(str::to_string)
        .ok_or_else(|| Error::Lock {
            reason: format!("apt knows no candidate for {name} (run `apt-get update`)"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# c\nxen-hypervisor-4.17-amd64 4.17.7\nlinux-image-6.1.0-57-amd64 6.1.192-3\n\
        busybox-static 1:1.35.0-4\nxen-utils-4.17 4.17.7\nxen-utils-common 4.17.7\n\
        qemu-system-xen 1:7.2+dfsg-7\nseabios 1.16.2-1\nqemu-system-data 1:7.2+dfsg-7\n";

    #[test]
    fn lock_round_trips_and_names_the_dom0_release() {
        let lock = Lock::parse(SAMPLE).unwrap();
        assert_eq!(Lock::parse(&lock.render()).unwrap(), lock);
        assert_eq!(lock.dom0_release().unwrap(), "6.1.0-57-amd64");
        assert_eq!(lock.pin(BUSYBOX).unwrap().version, "1:1.35.0-4");
    }

    #[test]
    fn lock_without_a_kernel_or_with_a_bad_line_is_refused() {
        let no_kernel: String = SAMPLE
            .lines()
            .filter(|l| !l.contains("linux"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(matches!(Lock::parse(&no_kernel), Err(Error::Lock { .. })));
        assert!(matches!(
            Lock::parse("xen-utils-4.17\n"),
            Err(Error::Lock { .. })
        ));
    }
}

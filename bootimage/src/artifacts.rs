//! `target/boot/`: the bootable kernel, ready-to-edit `xl` configs for a
//! Xen PVH guest and (when grub-mkrescue exists) a full HVM guest booting
//! the GRUB ISO.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What was written.
pub struct BootArtifacts {
    /// `kernel.elf`.
    pub kernel: PathBuf,
    /// The PVH entry address from its note.
    pub pvh_entry: u64,
    /// `xl` configs written.
    pub xl_configs: Vec<PathBuf>,
    /// The ISO, if grub-mkrescue was available.
    pub iso: Option<PathBuf>,
}

/// The `xl` config for booting `kernel` as a PVH guest.
pub fn xl_pvh_config(kernel: &Path) -> String {
    format!(
        r#"# Xen PVH guest: Xen enters kernel.elf at the address in its
# XEN_ELFNOTE_PHYS32_ENTRY note. PVH has no emulated serial port: the kernel
# logs to Xen's PV console (`xl console`) once it has found it.
# xl gives the guest its xenstore ring (HVM_PARAM_STORE_PFN/STORE_EVTCHN) and
# home (/local/domain/<domid>); the kernel attaches to it at boot, lists the
# home and watches control/shutdown: `xl shutdown xs-kernel-pvh` writes
# poweroff there, and the kernel acknowledges and powers off (SCHEDOP_shutdown).
# Start with: xl create -c {name}
name = "xs-kernel-pvh"
type = "pvh"
kernel = "{kernel}"
cmdline = ""
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
"#,
        name = "kernel-pvh.cfg",
        kernel = kernel.display()
    )
}

/// The `xl` config for a full HVM guest booting `iso` (the GRUB ISO) as a
/// cdrom. Direct kernel boot does not work under xl's device model (see
/// the config's comments). The real-Xen bed's `xen::hvm_*` tests boot this
/// config (realxen/src/xentest/hvm.rs).
pub fn xl_hvm_config(iso: &Path) -> String {
    format!(
        r#"# Xen HVM guest with a device model: hvmloader and SeaBIOS boot GRUB from
# kernel.iso (the kernel, gzip'ed, without debug info), GRUB enters the kernel through
# multiboot2. dom0 needs what HVM needs: hvmloader (xen-utils), the device
# model /usr/libexec/xen-qemu-system-i386 (qemu-system-xen), SeaBIOS
# (seabios) and QEMU's option ROMs and keymaps (qemu-system-data).
# Tested on Xen 4.17 by the real-Xen bed (realxen: xen::hvm_* tests): boots,
# connects to xenstore, publishes data/, answers xl shutdown, xl reboot and
# xl save/restore; its shell answers on COM1.
# Direct kernel boot (`kernel = "kernel.elf"`) does NOT work here: Debian's
# device model is built for i386 and loads only 32-bit ELF kernels, and its
# xenfv machine has no PVH-note loading; kernel.elf is 64-bit (multiboot2).
# The kernel's shell and log are on COM1 (serial = "pty": `xl console`); its
# log also goes to the PV console. The disk path is absolute: xl does not
# resolve it relative to this file.
# Start with: xl create -c {name}
name = "xs-kernel-hvm"
type = "hvm"
disk = [ "file:{iso},hdc:cdrom,r" ]
boot = "d"
memory = 128
vcpus = 1
serial = "pty"
vnc = 0
nographic = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
"#,
        name = "kernel-hvm.cfg",
        iso = iso.display()
    )
}

const GRUB_CFG: &str = r#"set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "xenstore kernel (multiboot2)" {
    multiboot2 /boot/kernel.elf.gz
    boot
}
"#;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn build_iso(dir: &Path, kernel: &Path) -> Result<Option<PathBuf>, String> {
    if !have("grub-mkrescue") {
        eprintln!(
            "bootimage: grub-mkrescue not installed; skipping the ISO (apt-get install grub-pc-bin xorriso mtools)"
        );
        return Ok(None);
    }
    let root = dir.join("iso-root");
    let grub = root.join("boot/grub");
    std::fs::create_dir_all(&grub).map_err(|e| format!("{}: {e}", grub.display()))?;
    let _ = std::fs::remove_file(root.join("boot/kernel.elf"));
    copy_small(kernel, &root.join("boot/kernel.elf.gz"))?;
    std::fs::write(grub.join("grub.cfg"), GRUB_CFG).map_err(|e| format!("grub.cfg: {e}"))?;
    let iso = dir.join("kernel.iso");
    // Only the modules GRUB_CFG uses (gzio unpacks the kernel), no locales,
    // fonts or themes: with the stripped, gzip'ed kernel the ISO is ~1.3 MB
    // instead of ~26 MB, and an HVM guest reads it through the emulated
    // IDE cdrom, each read a trip through Xen to the device model.
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&root)
        .args([
            "--install-modules=multiboot2 normal serial terminal iso9660 biosdisk part_msdos gzio",
            "--locales=",
            "--fonts=",
            "--themes=",
            "--compress=xz",
        ])
        .output()
        .map_err(|e| format!("grub-mkrescue: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "grub-mkrescue failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Some(iso))
}

/// Writes `kernel` to `to` without its debug info (`strip --strip-debug`)
/// and gzip'ed (GRUB's gzio unpacks it): 15 MB become ~0.7 MB. GRUB loads
/// it through the HVM guest's emulated cdrom, where every read is slow:
/// ~120 s from `xl create` to connected was measured on the real-Xen bed
/// with the debug kernel, ~30 s stripped. Without `strip` (binutils) the
/// debug info stays in.
fn copy_small(kernel: &Path, to: &Path) -> Result<(), String> {
    let stripped = to.with_extension("stripped");
    if have("strip") {
        run_tool(
            Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(&stripped)
                .arg(kernel),
            "strip --strip-debug",
        )?;
    } else {
        eprintln!("bootimage: strip not installed (binutils); the ISO carries the debug kernel");
        std::fs::copy(kernel, &stripped).map_err(|e| format!("copy kernel: {e}"))?;
    }
    let out = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let gzip = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(&stripped)
        .stdout(out)
        .output();
    let _ = std::fs::remove_file(&stripped);
    match gzip {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "gzip of the kernel failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("gzip: {e}")),
    }
}

/// Runs `cmd`; an error with its stderr unless it exits 0.
fn run_tool(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Checks `kernel`'s PVH note and writes everything into `dir`.
pub fn write(dir: &Path, kernel: &Path) -> Result<BootArtifacts, String> {
    let image = std::fs::read(kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    let pvh_entry = crate::pvh::check(&image).map_err(|e| format!("{}: {e}", kernel.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let elf = dir.join("kernel.elf");
    std::fs::write(&elf, &image).map_err(|e| format!("{}: {e}", elf.display()))?;
    let iso = build_iso(dir, &elf)?;
    let mut configs = vec![("kernel-pvh.cfg", xl_pvh_config(&elf))];
    // An HVM guest boots the ISO; without one there is nothing to boot.
    let hvm = dir.join("kernel-hvm.cfg");
    match &iso {
        Some(iso) => configs.push(("kernel-hvm.cfg", xl_hvm_config(iso))),
        None => {
            let _ = std::fs::remove_file(&hvm);
        }
    }
    let mut xl_configs = Vec::new();
    for (name, text) in configs {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        xl_configs.push(path);
    }
    Ok(BootArtifacts {
        kernel: elf,
        pvh_entry,
        xl_configs,
        iso,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_configs_name_the_kernel_and_the_boot_type() {
        let k = Path::new("/x/target/boot/kernel.elf");
        let pvh = xl_pvh_config(k);
        assert!(
            pvh.contains("type = \"pvh\"")
                && pvh.contains("kernel = \"/x/target/boot/kernel.elf\"")
        );
        let hvm = xl_hvm_config(Path::new("/x/target/boot/kernel.iso"));
        assert!(hvm.contains("type = \"hvm\"") && hvm.contains("serial = \"pty\""));
        // The device model cannot load kernel.elf: the ISO is the boot disk.
        assert!(
            hvm.contains("\"file:/x/target/boot/kernel.iso,hdc:cdrom,r\"")
                && hvm.contains("boot = \"d\"")
                && !hvm.contains("\nkernel =")
        );
        // Powering off through SCHEDOP_shutdown must end the domain, not restart it.
        for cfg in [&pvh, &hvm] {
            assert!(cfg.contains("on_poweroff = \"destroy\""), "{cfg}");
        }
    }
}

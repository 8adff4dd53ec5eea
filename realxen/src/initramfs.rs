//! The dom0 initramfs: busybox, our init and agent, the Xen modules, the
//! Xen tools from xen-utils-4.17, what a full HVM guest needs (hvmloader,
//! the device model from qemu-system-xen, SeaBIOS, QEMU's option ROMs and
//! keymaps) and the host's libraries they link, as a gzip'ed newc cpio
//! (the only format the dom0 kernel unpacks). The HVM part makes it ~15
//! MB instead of ~4.5 MB.
//!
//! Built once per content: the archive's name carries a hash of what went
//! in, so a second run reuses it.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::fetch::{cache_dir, extraction};
use crate::packages::{BUSYBOX, Lock, QEMU_DATA, QEMU_XEN, SEABIOS, XEN_UTILS, XEN_UTILS_COMMON};
use crate::progress::Progress;
use crate::tool;

const INIT: &str = include_str!("../dom0/init");
const AGENT: &str = include_str!("../dom0/agent");
/// The project's hotplug scripts for a busybox dom0, where libxl looks for
/// Xen's own (`/etc/xen/scripts`, the defaults for `phy` disks and vifs).
const HOTPLUG: [(&str, &str); 2] = [
    (
        "etc/xen/scripts/block",
        include_str!("../dom0/hotplug/block"),
    ),
    (
        "etc/xen/scripts/vif-bridge",
        include_str!("../dom0/hotplug/vif-bridge"),
    ),
];

/// Where xl and libxl look for their helpers (fixed when Xen was built).
const XEN_BIN: &str = "usr/lib/xen-4.17/bin";
/// The Xen tools dom0 runs: the daemons, xl, and the helpers xl execs
/// (`xl save` needs libxl-save-helper, `xl console` xenconsole), and
/// `vchan-socket-proxy`, the libxenvchan peer of the kernel's vchan tests.
const XEN_TOOLS: [&str; 8] = [
    "xl",
    "xenstored",
    "oxenstored",
    "xenconsoled",
    "xen-init-dom0",
    "libxl-save-helper",
    "xenconsole",
    "vchan-socket-proxy",
];
/// The xenstore-* clients: one binary dispatching on its name, from the
/// host's xenstore-utils.
const XENSTORE_CLIENT: &str = "/usr/bin/xenstore";
const XENSTORE_VERBS: [&str; 9] = [
    "read", "write", "ls", "list", "rm", "exists", "watch", "chmod", "control",
];
/// dlopen'ed by glibc's pthread_cancel, so ldd does not name it.
const RUNTIME_LIBS: [&str; 1] = ["/lib/x86_64-linux-gnu/libgcc_s.so.1"];
/// A full HVM guest's firmware loader (xen-utils-4.17), at the path libxl
/// was built with.
const HVMLOADER: &str = "usr/lib/xen-4.17/boot/hvmloader";
/// The device model libxl starts for an HVM guest (qemu-system-xen).
const DEVICE_MODEL: &str = "usr/libexec/xen-qemu-system-i386";
/// SeaBIOS (`bios-256k.bin`) and its VGA ROMs: in the device model's
/// firmware path.
const SEABIOS_DIR: &str = "usr/share/seabios";
/// What the device model loads from qemu-system-data: the option ROMs of
/// the x86 boot paths and the keymaps (read even with no display).
const QEMU_SHARE: &str = "usr/share/qemu";
const QEMU_FILES: [&str; 7] = [
    "pvh.bin",
    "linuxboot.bin",
    "linuxboot_dma.bin",
    "multiboot.bin",
    "multiboot_dma.bin",
    "kvmvapic.bin",
    "keymaps",
];
/// dom0's modules, from the kernel package: the Xen drivers, the real
/// backends (netback, blkback), and loop for file-backed disks.
const MODULE_DIRS: [&str; 3] = [
    "kernel/drivers/xen",
    "kernel/drivers/net/xen-netback",
    "kernel/drivers/block/xen-blkback",
];
const MODULE_FILES: [&str; 1] = ["kernel/drivers/block/loop.ko"];

/// Returns the archive for `lock`, building it if this content has none.
pub fn dom0_archive(lock: &Lock, progress: &Progress) -> Result<PathBuf> {
    let libs = host_libraries(lock)?;
    let key = content_key(lock, &libs);
    let archive = cache_dir().join(format!("dom0-{key:016x}.cpio.gz"));
    if archive.is_file() {
        return Ok(archive);
    }
    progress.say("building the dom0 initramfs (once per content)");
    let stage = cache_dir().join(format!(".stage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&stage);
    let result = stage_tree(lock, &libs, &stage).and_then(|()| pack(&stage, &archive));
    let _ = std::fs::remove_dir_all(&stage);
    result.map(|()| archive)
}

fn content_key(lock: &Lock, libs: &BTreeSet<PathBuf>) -> u64 {
    let mut h = DefaultHasher::new();
    lock.render().hash(&mut h);
    INIT.hash(&mut h);
    XEN_TOOLS.hash(&mut h);
    AGENT.hash(&mut h);
    HOTPLUG.hash(&mut h);
    MODULE_DIRS.hash(&mut h);
    MODULE_FILES.hash(&mut h);
    for lib in libs {
        lib.hash(&mut h);
        if let Ok(meta) = lib.metadata() {
            meta.len().hash(&mut h);
            meta.modified().ok().hash(&mut h);
        }
    }
    h.finish()
}

/// Every shared library the dom0 tools load, as `ldd` resolves it on this
/// host (the libxen* of the host's libxen-dev must match xen-utils-4.17).
fn host_libraries(lock: &Lock) -> Result<BTreeSet<PathBuf>> {
    let bin = extraction(lock.pin(XEN_UTILS)?).join(XEN_BIN);
    let mut cmd = Command::new("ldd");
    for tool in XEN_TOOLS {
        cmd.arg(bin.join(tool));
    }
    cmd.arg(XENSTORE_CLIENT);
    cmd.arg(extraction(lock.pin(QEMU_XEN)?).join(DEVICE_MODEL));
    let listing = tool::output(
        &mut cmd,
        "ldd on the Xen tools (are libxen-dev and xenstore-utils installed? scripts/install-deps.sh)",
    )?;
    let mut libs: BTreeSet<PathBuf> = RUNTIME_LIBS.iter().map(PathBuf::from).collect();
    for line in listing.lines() {
        if line.contains("not found") {
            return Err(Error::Tool {
                what: "ldd on the Xen tools".to_string(),
                detail: format!("a library is missing on this host: {}", line.trim()),
            });
        }
        // `libx.so => /path (0x..)` or the loader's `/lib64/ld-... (0x..)`;
        // with several files, ldd heads each listing with `/file:`.
        if line.trim_end().ends_with(':') {
            continue;
        }
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libs.insert(PathBuf::from(path));
        }
    }
    Ok(libs)
}

fn stage_tree(lock: &Lock, libs: &BTreeSet<PathBuf>, stage: &Path) -> Result<()> {
    for dir in [
        "bin", "sbin", "usr/bin", "proc", "sys", "dev", "etc/xen", "realxen",
    ] {
        mkdir(&stage.join(dir))?;
    }
    let busybox = extraction(lock.pin(BUSYBOX)?).join("bin/busybox");
    copy(&busybox, &stage.join("bin/busybox"))?;
    write_exec(&stage.join("init"), INIT)?;
    write_exec(&stage.join("realxen/agent"), AGENT)?;
    for (path, text) in HOTPLUG {
        let path = stage.join(path);
        if let Some(dir) = path.parent() {
            mkdir(dir)?;
        }
        write_exec(&path, text)?;
    }

    let utils = extraction(lock.pin(XEN_UTILS)?);
    mkdir(&stage.join(XEN_BIN))?;
    for tool in XEN_TOOLS {
        copy(
            &utils.join(XEN_BIN).join(tool),
            &stage.join(XEN_BIN).join(tool),
        )?;
    }
    // oxenstored reads its configuration from here (xen-utils-common).
    let common = extraction(lock.pin(XEN_UTILS_COMMON)?);
    copy(
        &common.join("etc/xen/oxenstored.conf"),
        &stage.join("etc/xen/oxenstored.conf"),
    )?;
    copy(Path::new(XENSTORE_CLIENT), &stage.join("usr/bin/xenstore"))?;
    for verb in XENSTORE_VERBS {
        symlink("xenstore", &stage.join(format!("usr/bin/xenstore-{verb}")))?;
    }
    // A full HVM guest: hvmloader, the device model and its firmware.
    copy(&utils.join(HVMLOADER), &stage.join(HVMLOADER))?;
    let qemu = extraction(lock.pin(QEMU_XEN)?);
    copy(&qemu.join(DEVICE_MODEL), &stage.join(DEVICE_MODEL))?;
    let seabios = extraction(lock.pin(SEABIOS)?);
    copy_tree(&seabios.join(SEABIOS_DIR), &stage.join(SEABIOS_DIR))?;
    let share = extraction(lock.pin(QEMU_DATA)?).join(QEMU_SHARE);
    for file in QEMU_FILES {
        let from = share.join(file);
        let to = stage.join(QEMU_SHARE).join(file);
        if from.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            copy(&from, &to)?;
        }
    }
    for lib in libs {
        let rel = lib.strip_prefix("/").unwrap_or(lib);
        copy(lib, &stage.join(rel))?;
    }

    let release = lock.dom0_release()?;
    let kernel = extraction(lock.dom0_kernel()?);
    for dir in MODULE_DIRS {
        let rel = format!("lib/modules/{release}/{dir}");
        copy_tree(&kernel.join(&rel), &stage.join(&rel))?;
    }
    for file in MODULE_FILES {
        let rel = format!("lib/modules/{release}/{file}");
        copy(&kernel.join(&rel), &stage.join(&rel))?;
    }
    Ok(())
}

/// `find . | cpio -o -H newc | gzip` in `stage`, written atomically.
fn pack(stage: &Path, archive: &Path) -> Result<()> {
    let partial = archive.with_extension(format!("partial-{}", std::process::id()));
    let out =
        std::fs::File::create(&partial).map_err(|e| Error::io_path("creating", &partial, e))?;
    let script = "find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -6";
    let status = Command::new("sh")
        .args(["-c", script])
        .current_dir(stage)
        .stdout(Stdio::from(out))
        .status()
        .map_err(|e| Error::io("running cpio", e))?;
    if !status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::Tool {
            what: "packing the initramfs".to_string(),
            detail: format!(
                "`{script}` failed ({status}); is cpio installed? (scripts/install-deps.sh)"
            ),
        });
    }
    std::fs::rename(&partial, archive).map_err(|e| Error::io_path("moving into place", archive, e))
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io_path("creating", dir, e))
}

/// Copies a file's content (symlinks followed), keeping its mode.
fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        mkdir(parent)?;
    }
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| Error::io_path("copying into the initramfs", from, e))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    mkdir(to)?;
    let entries = std::fs::read_dir(from).map_err(|e| Error::io_path("listing", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io_path("listing", from, e))?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &dest)?;
        } else {
            copy(&path, &dest)?;
        }
    }
    Ok(())
}

fn symlink(target: &str, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).map_err(|e| Error::io_path("linking", link, e))
}

fn write_exec(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| Error::io_path("writing", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io_path("chmod", path, e))
}

//! Linux PVH domUs beside the kernel under test: dom0's own Debian kernel
//! booted as PVH with a one-program initramfs (a static C program of
//! `dom0/`, built here with the host's gcc, as `/init`), and the C programs
//! dom0 runs beside them. The FPU check and the xenstore comparison of
//! `realxen bench` use them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::fetch::{extraction, fetch_all};
use crate::packages::Lock;
use crate::preload::Preload;
use crate::progress::Progress;
use crate::tool;

/// Where dom0 keeps the domU kernel.
pub const KERNEL: &str = "/boot/vmlinuz";

/// The `xl` config (all but the name) of a Linux PVH domU booting
/// `initrd` (a dom0 path) with `memory_mib`, one vCPU.
pub fn config(initrd: &str, memory_mib: u32) -> String {
    format!(
        "type = \"pvh\"\nkernel = \"{KERNEL}\"\nramdisk = \"{initrd}\"\n\
         extra = \"console=hvc0 rdinit=/init\"\nmemory = {memory_mib}\nvcpus = 1\n\
         on_poweroff = \"destroy\"\non_crash = \"preserve\"\n"
    )
}

/// dom0's kernel, to preload at [`KERNEL`].
pub fn kernel_preload(progress: &Progress) -> Result<Preload> {
    let lock = Lock::load()?;
    fetch_all(&lock, progress)?;
    let kernel: PathBuf =
        extraction(lock.dom0_kernel()?).join(format!("boot/vmlinuz-{}", lock.dom0_release()?));
    Ok(Preload {
        host: kernel,
        dom0: KERNEL.to_string(),
    })
}

/// How [`build_c`] links a program.
pub enum Link<'a> {
    /// `-static`, with these libraries: for a domU's initramfs, which has
    /// no libraries.
    Static(&'a [&'a str]),
    /// Against these shared libraries of the host's libxen-dev, which
    /// dom0 has (xl loads them). libxenstore must be linked this way: its
    /// static archive fails every request once a watch is set (its reader
    /// thread; seen with 4.17: xs_read answers EINVAL).
    Dom0Shared(&'a [&'a str]),
}

/// Builds C program `source` with the host's gcc into `work/name`;
/// returns the binary.
pub fn build_c(work: &Path, source: &str, name: &str, link: Link<'_>) -> Result<PathBuf> {
    std::fs::create_dir_all(work).map_err(|e| Error::io_path("creating", work, e))?;
    let binary = work.join(name);
    let mut cmd = Command::new("gcc");
    cmd.args(["-O1", "-Wall", "-o"]).arg(&binary).arg(source);
    match link {
        Link::Static(libs) => cmd.arg("-static").args(libs),
        Link::Dom0Shared(libs) => cmd.args(libs),
    };
    tool::output(&mut cmd, &format!("building {source} with gcc"))?;
    Ok(binary)
}

/// Packs `program` as `/init` (with an empty `/dev` for devtmpfs) into a
/// gzip'ed newc cpio, `work/name.cpio.gz`.
pub fn initramfs(work: &Path, program: &Path, name: &str) -> Result<PathBuf> {
    let stage = work.join(name);
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(stage.join("dev"))
        .map_err(|e| Error::io_path("creating", &stage, e))?;
    std::fs::copy(program, stage.join("init"))
        .map_err(|e| Error::io_path("copying", program, e))?;
    let archive = work.join(format!("{name}.cpio.gz"));
    let out =
        std::fs::File::create(&archive).map_err(|e| Error::io_path("creating", &archive, e))?;
    let status = Command::new("sh")
        .args([
            "-c",
            "printf 'dev\\ninit\\n' | cpio -o -H newc --quiet | gzip -1",
        ])
        .current_dir(&stage)
        .stdout(Stdio::from(out))
        .status()
        .map_err(|e| Error::io("running cpio", e))?;
    if !status.success() {
        return Err(Error::Tool {
            what: format!("packing the domU initramfs {name}"),
            detail: format!("cpio | gzip failed ({status})"),
        });
    }
    Ok(archive)
}

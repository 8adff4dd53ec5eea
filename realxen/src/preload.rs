//! Files a boot puts into dom0 from the start, as a second cpio archive
//! appended to the initramfs (the kernel unpacks concatenated archives).
//! This is how large files get in: the serial command channel moves
//! about 5 KB/s into dom0 (measured: one 16550 interrupt per few bytes,
//! each one a trip through Xen under TCG), too slow for a 15 MB kernel.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// A host file and where dom0 sees it (an absolute path).
#[derive(Clone, Debug)]
pub struct Preload {
    pub host: PathBuf,
    pub dom0: String,
}

/// Writes `base` followed by an archive of `files` to `out`.
pub fn with_files(base: &Path, files: &[Preload], work: &Path, out: &Path) -> Result<()> {
    let stage = work.join(format!("preload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&stage);
    let result = stage_and_pack(base, files, &stage, out);
    let _ = std::fs::remove_dir_all(&stage);
    result
}

fn stage_and_pack(base: &Path, files: &[Preload], stage: &Path, out: &Path) -> Result<()> {
    for file in files {
        let rel = file.dom0.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(Error::Usage {
                reason: format!("preload path {:?} is not a plain absolute path", file.dom0),
            });
        }
        let dest = stage.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io_path("creating", parent, e))?;
        }
        std::fs::copy(&file.host, &dest).map_err(|e| Error::io_path("copying", &file.host, e))?;
    }
    std::fs::copy(base, out).map_err(|e| Error::io_path("copying", base, e))?;
    if files.is_empty() {
        return Ok(());
    }
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .open(out)
        .map_err(|e| Error::io_path("opening", out, e))?;
    // Directories too: the kernel's unpacker creates no missing parents.
    let script = "find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1";
    let status = Command::new("sh")
        .args(["-c", script])
        .current_dir(stage)
        .stdout(Stdio::from(appended))
        .status()
        .map_err(|e| Error::io("running cpio", e))?;
    if !status.success() {
        return Err(Error::Tool {
            what: "packing the preloaded files".to_string(),
            detail: format!("`{script}` failed ({status})"),
        });
    }
    Ok(())
}

//! Fetching the pinned packages: `apt-get download name=version` and
//! `dpkg -x` into `.cache/realxen/root/<name>_<version>/`, once. An
//! extraction that exists is used as it is, so a second run runs no apt
//! command at all.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::packages::{Lock, Pin};
use crate::progress::Progress;
use crate::tool;

/// The bed's cache: `$REALXEN_CACHE`, else `.cache/realxen` at the root of
/// the source tree (gitignored).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("REALXEN_CACHE") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .join(".cache")
        .join("realxen")
}

/// Where a pinned package is (or will be) extracted.
pub fn extraction(pin: &Pin) -> PathBuf {
    // ':' (an epoch) is legal in paths but awkward in shells: keep it out.
    let version = pin.version.replace(':', "_");
    cache_dir()
        .join("root")
        .join(format!("{}_{version}", pin.name))
}

/// Makes sure every pinned package is extracted; fetches the missing ones,
/// unless `$REALXEN_OFFLINE` is set (`./run-tests.sh --no-install`): then a
/// missing package is an error that says so.
pub fn fetch_all(lock: &Lock, progress: &Progress) -> Result<()> {
    for pin in &lock.pins {
        let target = extraction(pin);
        if target.is_dir() {
            continue;
        }
        if std::env::var_os("REALXEN_OFFLINE").is_some() {
            return Err(Error::Usage {
                reason: format!(
                    "{} {} is not in {} and $REALXEN_OFFLINE is set (--no-install): \
                     run once without it to fetch the packages",
                    pin.name,
                    pin.version,
                    cache_dir().display()
                ),
            });
        }
        progress.say(format!("fetching {} {} (once)", pin.name, pin.version));
        download_into(pin, &target)?;
    }
    Ok(())
}

fn download_into(pin: &Pin, target: &Path) -> Result<()> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let work = parent.join(format!(".download-{}-{}", pin.name, std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| Error::io_path("creating", &work, e))?;
    let result = download_steps(pin, &work, target);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn download_steps(pin: &Pin, work: &Path, target: &Path) -> Result<()> {
    let spec = format!("{}={}", pin.name, pin.version);
    tool::output(
        Command::new("apt-get")
            .args(["download", "-q", &spec])
            .current_dir(work),
        &format!(
            "apt-get download {spec} (if the mirror dropped this version, \
             re-resolve with `cargo run -p realxen -- fetch --refresh`)"
        ),
    )?;
    let deb = std::fs::read_dir(work)
        .map_err(|e| Error::io_path("listing", work, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|ext| ext == "deb"))
        .ok_or_else(|| Error::Tool {
            what: "apt-get download".to_string(),
            detail: format!("left no .deb in {}", work.display()),
        })?;
    let root = work.join("root");
    tool::output(
        Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
        "dpkg -x",
    )?;
    match std::fs::rename(&root, target) {
        Ok(()) => Ok(()),
        // Another process finished first: its copy is as good as ours.
        Err(_) if target.is_dir() => Ok(()),
        Err(e) => Err(Error::io_path("moving the extraction to", target, e)),
    }
}

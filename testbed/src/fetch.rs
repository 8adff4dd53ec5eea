//! Finding the real xenstored: `$XENSTORED`, else a cached extraction of
//! Debian's `xen-utils-4.17`, else download and extract that package once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The Debian package that ships the C xenstored.
pub const PACKAGE: &str = "xen-utils-4.17";
/// Where the package puts the daemon, relative to its root.
const DAEMON_IN_PACKAGE: &str = "usr/lib/xen-4.17/bin/xenstored";
/// The file, next to the extracted tree, holding the package version.
const VERSION_FILE: &str = "VERSION";

/// The daemon binary the testbed runs.
#[derive(Debug, Clone)]
pub struct Xenstored {
    /// Absolute path of the executable.
    pub path: PathBuf,
    /// Its version, e.g. `4.17.7+13-g2445b30a44-0+deb12u1` (the Debian
    /// package version), or `unknown` when `$XENSTORED` names a binary that
    /// no package owns and `$XENSTORED_VERSION` is unset.
    pub version: String,
}

impl std::fmt::Display for Xenstored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (version {})", self.path.display(), self.version)
    }
}

/// Returns the daemon, locating or fetching it on first use (once per
/// process; later calls return the same answer, failure included).
///
/// Order: `$XENSTORED` (version from `$XENSTORED_VERSION`, else from dpkg);
/// else the cache under [`cache_dir`]; else `apt-get download` + `dpkg -x`
/// into the cache, saying so on stderr. Concurrent processes may fetch at
/// the same time: each extracts into its own directory and renames it into
/// place, and the loser discards its copy.
pub fn xenstored() -> Result<&'static Xenstored> {
    static DAEMON: OnceLock<std::result::Result<Xenstored, String>> = OnceLock::new();
    DAEMON
        .get_or_init(|| {
            locate().map_err(|e| match e {
                Error::Fetch { reason } => reason,
                other => other.to_string(),
            })
        })
        .as_ref()
        .map_err(|reason| Error::Fetch {
            reason: reason.clone(),
        })
}

/// The testbed's cache directory: `$TESTBED_CACHE`, else `.cache/testbed`
/// at the root of the source tree this crate was built from (gitignored).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TESTBED_CACHE") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")))
        .join(".cache")
        .join("testbed")
}

fn locate() -> Result<Xenstored> {
    if let Some(path) = std::env::var_os("XENSTORED") {
        return from_env(PathBuf::from(path));
    }
    let extracted = cache_dir().join(PACKAGE);
    if let Some(found) = from_cache(&extracted) {
        return Ok(found);
    }
    if std::env::var_os("TESTBED_OFFLINE").is_some() {
        return Err(Error::Fetch {
            reason: format!(
                "xenstored is not in {} and $TESTBED_OFFLINE is set (--no-install): run once \
                 without it, or name a daemon with $XENSTORED",
                extracted.display()
            ),
        });
    }
    download_into(&extracted)?;
    from_cache(&extracted).ok_or_else(|| Error::Fetch {
        reason: format!(
            "{} has no {DAEMON_IN_PACKAGE} after extraction",
            extracted.display()
        ),
    })
}

fn from_env(path: PathBuf) -> Result<Xenstored> {
    if !is_executable(&path) {
        return Err(Error::Fetch {
            reason: format!("$XENSTORED={} is not an executable file", path.display()),
        });
    }
    let version = std::env::var("XENSTORED_VERSION")
        .ok()
        .or_else(|| extraction_version(&path))
        .or_else(|| dpkg_version_of(&path))
        .unwrap_or_else(|| "unknown".to_string());
    Ok(Xenstored { path, version })
}

fn from_cache(root: &Path) -> Option<Xenstored> {
    let path = root.join(DAEMON_IN_PACKAGE);
    let version = std::fs::read_to_string(root.join(VERSION_FILE)).ok()?;
    is_executable(&path).then(|| Xenstored {
        path,
        version: version.trim().to_string(),
    })
}

/// The version recorded next to an extraction of the package (e.g. the
/// testbed's own cache handed over through `$XENSTORED`).
fn extraction_version(path: &Path) -> Option<String> {
    if !path.ends_with(DAEMON_IN_PACKAGE) {
        return None;
    }
    let root = path
        .ancestors()
        .nth(Path::new(DAEMON_IN_PACKAGE).components().count())?;
    let version = std::fs::read_to_string(root.join(VERSION_FILE)).ok()?;
    Some(version.trim().to_string())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Version of the installed package owning `path`, if dpkg knows one.
fn dpkg_version_of(path: &Path) -> Option<String> {
    let owner = Command::new("dpkg-query")
        .arg("-S")
        .arg(path)
        .output()
        .ok()?;
    let owner = String::from_utf8(owner.stdout).ok()?;
    let package = owner.split(':').next()?.trim();
    let version = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()?;
    let version = String::from_utf8(version.stdout).ok()?;
    (!version.trim().is_empty()).then(|| version.trim().to_string())
}

fn download_into(target: &Path) -> Result<()> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let work = parent.join(format!("download-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| Error::io_path("creating", &work, e))?;
    eprintln!(
        "testbed: fetching the real xenstored: apt-get download {PACKAGE} into {} (done once)",
        parent.display()
    );
    let result = download_steps(&work, target);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn download_steps(work: &Path, target: &Path) -> Result<()> {
    run(
        Command::new("apt-get")
            .args(["download", PACKAGE])
            .current_dir(work),
        "apt-get download (is the apt cache current? try `apt-get update`, or set $XENSTORED)",
    )?;
    let deb = std::fs::read_dir(work)
        .map_err(|e| Error::io_path("listing", work, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|ext| ext == "deb"))
        .ok_or_else(|| Error::Fetch {
            reason: format!("apt-get download left no .deb in {}", work.display()),
        })?;
    let version = run(
        Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"),
        "dpkg-deb -f",
    )?;
    let root = work.join("root");
    run(
        Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
        "dpkg -x",
    )?;
    std::fs::write(root.join(VERSION_FILE), version.trim())
        .map_err(|e| Error::io_path("writing version into", &root, e))?;
    match std::fs::rename(&root, target) {
        Ok(()) => Ok(()),
        // Another process finished first: its copy is as good as ours.
        Err(_) if from_cache(target).is_some() => Ok(()),
        Err(e) => Err(Error::io_path("moving the extraction to", target, e)),
    }
}

/// Runs a fetch step; returns its stdout or a Fetch error with its stderr.
fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().map_err(|e| Error::Fetch {
        reason: format!("{what}: cannot run {cmd:?}: {e}"),
    })?;
    if !out.status.success() {
        return Err(Error::Fetch {
            reason: format!(
                "{what} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

//! The per-testbed instance directory: one place for the daemon's socket,
//! the fake libraries, the event-channel sockets, the ring pages and the
//! logs. The C fakes (`csrc/fake.h`) read the same layout; keep them in step.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// The fake Xen libraries and the LD_PRELOAD shim, built by build.rs.
const FAKE_LIBS: &[(&str, &[u8])] = &[
    (
        "libxenctrl.so.4.17",
        include_bytes!(concat!(env!("OUT_DIR"), "/libxenctrl.so.4.17")),
    ),
    (
        "libxenevtchn.so.1",
        include_bytes!(concat!(env!("OUT_DIR"), "/libxenevtchn.so.1")),
    ),
    (
        "libxengnttab.so.1",
        include_bytes!(concat!(env!("OUT_DIR"), "/libxengnttab.so.1")),
    ),
    (
        PRELOAD_LIB,
        include_bytes!(concat!(env!("OUT_DIR"), "/libxstb_redirect.so")),
    ),
];
const PRELOAD_LIB: &str = "libxstb_redirect.so";

/// Room a socket name under the directory needs: "/ev/g32767p4294967295".
const LONGEST_SOCKET_SUFFIX: usize = 22;
/// sun_path holds 108 bytes including the terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// Subdirectories the testbed creates (and clears when reusing a directory).
const SUBDIRS: &[&str] = &["lib", "ev", "dom", "page"];

/// An instance directory. Removed on drop when the testbed created it,
/// unless [`InstanceDir::keep`] was called (kept for post-mortem).
#[derive(Debug)]
pub(crate) struct InstanceDir {
    root: PathBuf,
    /// True when the testbed chose (and so owns) the whole directory.
    owned: bool,
    keep: bool,
}

impl InstanceDir {
    /// Creates a fresh private directory under `$TESTBED_TMPDIR`, else
    /// /dev/shm (tmpfs: ring pages never touch a disk) unless it is mounted
    /// noexec, else the system temp dir. The name holds the pid and a counter, so testbeds in one process
    /// and across processes never collide.
    pub(crate) fn create_private() -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = private_base();
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let root = base.join(format!("xstb-{}-{n}", std::process::id()));
            match fs::create_dir(&root) {
                Ok(()) => return Self::populate(root, true),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io_path("creating", &root, e)),
            }
        }
    }

    /// Uses a caller-chosen directory (created if missing). Files of an
    /// earlier testbed there are replaced; the logs stay after drop.
    pub(crate) fn use_existing(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).map_err(|e| Error::io_path("creating", root, e))?;
        let root = root
            .canonicalize()
            .map_err(|e| Error::io_path("resolving", root, e))?;
        for sub in SUBDIRS {
            match fs::remove_dir_all(root.join(sub)) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(Error::io_path("clearing", &root.join(sub), e));
                }
                _ => {}
            }
        }
        for file in ["socket", "xenstored.log", "syslog", "trace", "xsd_port"] {
            let _ = fs::remove_file(root.join(file));
        }
        Self::populate(root, false)
    }

    fn populate(root: PathBuf, owned: bool) -> Result<Self> {
        let dir = InstanceDir {
            root,
            owned,
            keep: false,
        };
        if dir.root.as_os_str().len() + LONGEST_SOCKET_SUFFIX > SUN_PATH_MAX {
            return Err(Error::Usage(format!(
                "state directory {} is too long for unix socket paths (max {} bytes)",
                dir.root.display(),
                SUN_PATH_MAX - LONGEST_SOCKET_SUFFIX
            )));
        }
        for sub in SUBDIRS {
            let path = dir.root.join(sub);
            fs::create_dir(&path).map_err(|e| Error::io_path("creating", &path, e))?;
        }
        for (name, bytes) in FAKE_LIBS {
            let path = dir.lib_dir().join(name);
            fs::write(&path, bytes).map_err(|e| Error::io_path("writing", &path, e))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io_path("chmod", &path, e))?;
        }
        // dom0's event channel port, read by the daemon via /proc/xen/xsd_port.
        let port = dir.root.join("xsd_port");
        fs::write(&port, "1\n").map_err(|e| Error::io_path("writing", &port, e))?;
        Ok(dir)
    }

    /// Keeps the directory (and its logs) when dropped.
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
    pub(crate) fn socket(&self) -> PathBuf {
        self.root.join("socket")
    }
    pub(crate) fn lib_dir(&self) -> PathBuf {
        self.root.join("lib")
    }
    pub(crate) fn preload(&self) -> PathBuf {
        self.lib_dir().join(PRELOAD_LIB)
    }
    /// The daemon's stdout and stderr.
    pub(crate) fn daemon_log(&self) -> PathBuf {
        self.root.join("xenstored.log")
    }
    /// The daemon's syslog() output (the LD_PRELOAD shim writes it).
    pub(crate) fn syslog(&self) -> PathBuf {
        self.root.join("syslog")
    }
    /// The default trace file (`-T`).
    pub(crate) fn trace(&self) -> PathBuf {
        self.root.join("trace")
    }
    /// Ring page of `domid` (dom0's page backs /proc/xen/xsd_kva).
    pub(crate) fn page(&self, domid: u32) -> PathBuf {
        self.root.join("page").join(domid.to_string())
    }
    /// State file the fake xc_domain_getinfo reads.
    pub(crate) fn domain_state(&self, domid: u32) -> PathBuf {
        self.root.join("dom").join(domid.to_string())
    }
    /// The daemon's end of the event channel (domid, guest port).
    pub(crate) fn daemon_event(&self, domid: u32, port: u32) -> PathBuf {
        self.root.join("ev").join(format!("d{domid}p{port}"))
    }
    /// The guest's end of the event channel (domid, guest port).
    pub(crate) fn guest_event(&self, domid: u32, port: u32) -> PathBuf {
        self.root.join("ev").join(format!("g{domid}p{port}"))
    }
    /// The daemon's socket for VIRQ `virq`.
    pub(crate) fn virq(&self, virq: u32) -> PathBuf {
        self.root.join("ev").join(format!("virq{virq}"))
    }
}

impl Drop for InstanceDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("testbed: kept {} for inspection", self.root.display());
        } else if self.owned {
            let _ = fs::remove_dir_all(&self.root);
        } else {
            for sub in SUBDIRS {
                let _ = fs::remove_dir_all(self.root.join(sub));
            }
            let _ = fs::remove_file(self.socket());
        }
    }
}

fn private_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("TESTBED_TMPDIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let world_writable = shm
        .metadata()
        .map(|m| m.is_dir() && m.permissions().mode() & 0o002 != 0)
        .unwrap_or(false);
    // The fake libraries are loaded from the directory: containers often
    // mount /dev/shm noexec, which the dynamic loader refuses.
    if world_writable && !mounted_noexec(shm) {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn mounted_noexec(path: &Path) -> bool {
    use nix::sys::statvfs::{FsFlags, statvfs};
    // A path we cannot inspect counts as noexec: the caller then looks elsewhere.
    statvfs(path).map_or(true, |st| st.flags().contains(FsFlags::ST_NOEXEC))
}

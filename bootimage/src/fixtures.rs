//! Host fixtures: things the host must set up before an image boots and
//! may check after it exits, named by the image's `needs = "..."`.
//!
//! A fixture exports variables that the image's QEMU arguments use as
//! `{fixture-name.key}` (e.g. a socket or file path). To add one (issue 4's
//! `xenstored`: start the real daemon through `testbed`, export the ivshmem
//! socket path), implement [`Fixture`] and add it to [`start`].

use std::path::{Path, PathBuf};

/// A started fixture; stopped (cleaned up) when dropped.
pub trait Fixture {
    /// Variables for the QEMU arguments: (key, value) for `{name.key}`.
    fn vars(&self) -> Vec<(String, String)>;
    /// Checks what the guest should have done, after QEMU exited. An error
    /// is reported as a failed test of the image.
    fn check_after_run(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Extra text to show when the image fails (e.g. a daemon's log tail).
    fn diagnostics(&self) -> String {
        String::new()
    }
}

/// Starts the fixture called `name` with a private scratch directory.
pub fn start(name: &str, workdir: &Path) -> Result<Box<dyn Fixture>, String> {
    match name {
        "shared-memory" => SharedMemory::start(workdir).map(|f| Box::new(f) as Box<dyn Fixture>),
        other => Err(format!("unknown fixture {other:?} (known: shared-memory)")),
    }
}

/// Replaces `{name.key}` placeholders in `args`; an unresolved placeholder
/// is an error.
pub fn substitute(args: &[String], vars: &[(String, String)]) -> Result<Vec<String>, String> {
    args.iter()
        .map(|arg| {
            let mut out = arg.clone();
            for (key, value) in vars {
                out = out.replace(&format!("{{{key}}}"), value);
            }
            match (out.find('{'), out.find('}')) {
                (Some(a), Some(b)) if a < b => {
                    Err(format!("unresolved placeholder in QEMU argument {arg:?}"))
                }
                _ => Ok(out),
            }
        })
        .collect()
}

/// A 1 MiB file shared with the guest as ivshmem-plain memory: the host
/// writes [`HOST_MAGIC`] at offset 0 before boot and expects
/// [`GUEST_MAGIC`] at offset 64 afterwards. Exports `path`.
pub struct SharedMemory {
    path: PathBuf,
}

/// What the host puts at offset 0.
pub const HOST_MAGIC: &[u8] = b"ktest host->guest";
/// What the guest must put at offset 64.
pub const GUEST_MAGIC: &[u8] = b"ktest guest->host";

impl SharedMemory {
    fn start(workdir: &Path) -> Result<Self, String> {
        let path = workdir.join("shared-memory.bin");
        let mut bytes = vec![0u8; 1 << 20];
        bytes[..HOST_MAGIC.len()].copy_from_slice(HOST_MAGIC);
        std::fs::write(&path, &bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(Self { path })
    }
}

impl Fixture for SharedMemory {
    fn vars(&self) -> Vec<(String, String)> {
        vec![("shared-memory.path".into(), self.path.display().to_string())]
    }

    fn check_after_run(&mut self) -> Result<(), String> {
        let bytes = std::fs::read(&self.path)
            .map_err(|e| format!("reading {}: {e}", self.path.display()))?;
        let got = bytes.get(64..64 + GUEST_MAGIC.len());
        if got == Some(GUEST_MAGIC) {
            Ok(())
        } else {
            Err(format!(
                "host did not see the guest's write at offset 64: {:?}",
                got.map(String::from_utf8_lossy)
            ))
        }
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_unknown_ones_rejected() {
        let vars = vec![("f.path".to_string(), "/tmp/x".to_string())];
        let args = vec!["a={f.path},b".to_string(), "-device".to_string()];
        assert_eq!(substitute(&args, &vars).unwrap(), ["a=/tmp/x,b", "-device"]);
        assert!(substitute(&["{g.path}".to_string()], &vars).is_err());
    }

    #[test]
    fn unknown_fixture_is_an_error() {
        assert!(start("nope", Path::new("/tmp")).is_err());
    }

    #[test]
    fn shared_memory_checks_the_guest_write() {
        let dir = std::env::temp_dir().join(format!("ktest-fixture-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = SharedMemory::start(&dir).unwrap();
        assert!(f.check_after_run().is_err(), "passes without a guest write");
        let mut bytes = std::fs::read(&f.path).unwrap();
        assert_eq!(&bytes[..HOST_MAGIC.len()], HOST_MAGIC);
        bytes[64..64 + GUEST_MAGIC.len()].copy_from_slice(GUEST_MAGIC);
        std::fs::write(&f.path, bytes).unwrap();
        assert!(f.check_after_run().is_ok());
        drop(f);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

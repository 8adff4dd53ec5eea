//! A 4096-byte ring page in a file, mapped shared: the daemon maps the same
//! file through the fake grant table, QEMU through the ivshmem server.
//!
//! The memory is written concurrently by other processes, so it is never
//! exposed as a Rust reference: every access is a volatile read or write
//! through a raw pointer, bounds-checked here.

use std::fs::{File, OpenOptions};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use crate::error::{Error, Result};

/// Size of a ring page.
pub const PAGE_SIZE: usize = 4096;

/// Offsets in `struct xenstore_domain_interface` (xs_wire.h).
// The undocumented ones are that struct's u32 fields of the same name.
#[allow(missing_docs)]
pub mod offset {
    /// Requests, guest to daemon: 1024 bytes.
    pub const REQ: usize = 0;
    /// Responses and watch events, daemon to guest: 1024 bytes.
    pub const RSP: usize = 1024;
    pub const REQ_CONS: usize = 2048;
    pub const REQ_PROD: usize = 2052;
    pub const RSP_CONS: usize = 2056;
    pub const RSP_PROD: usize = 2060;
    pub const SERVER_FEATURES: usize = 2064;
    pub const CONNECTION: usize = 2068;
    pub const ERROR: usize = 2072;
    pub const EVTCHN_PORT: usize = 2076;
    /// Size of each ring.
    pub const RING_SIZE: usize = 1024;
}

/// A mapped page file. Dropping it unmaps; the file stays.
#[derive(Debug)]
pub struct SharedPage {
    base: NonNull<u8>,
    file: File,
    path: PathBuf,
}

// SAFETY: the mapping is process-wide and every access goes through volatile
// reads/writes of plain bytes; no Rust reference to the memory ever exists,
// so sharing the handle across threads cannot create a data race in the
// language sense (the ring protocol orders the accesses that matter).
unsafe impl Send for SharedPage {}
// SAFETY: as above.
unsafe impl Sync for SharedPage {}

impl SharedPage {
    /// Creates `path` (which must not exist) as a zeroed page and maps it.
    pub fn create(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io_path("creating page", path, e))?;
        file.set_len(PAGE_SIZE as u64)
            .map_err(|e| Error::io_path("sizing page", path, e))?;
        Self::map(file, path)
    }

    /// Maps an existing page file (e.g. a second view of a domain's page).
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io_path("opening page", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io_path("stat", path, e))?
            .len();
        if len != PAGE_SIZE as u64 {
            return Err(Error::Usage(format!(
                "{} is {len} bytes, not a {PAGE_SIZE}-byte page",
                path.display()
            )));
        }
        Self::map(file, path)
    }

    fn map(file: File, path: &Path) -> Result<Self> {
        let len = NonZeroUsize::new(PAGE_SIZE).expect("a page is not empty");
        // SAFETY: a fresh shared mapping of a file we hold, at an address the
        // kernel picks, so it aliases no Rust object. MAP_SHARED makes the
        // daemon's writes visible here; they are why the memory is only
        // ever touched through volatile accesses (see the module doc).
        let addr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        }
        .map_err(|e| Error::io_path("mapping page", path, e.into()))?;
        Ok(SharedPage {
            base: addr.cast::<u8>(),
            file,
            path: path.to_path_buf(),
        })
    }

    /// The page file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open page file (e.g. to pass its fd to QEMU).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Raw pointer to the first byte. Valid for [`PAGE_SIZE`] bytes while
    /// `self` lives; other processes write it concurrently, so use volatile
    /// accesses only and never form references into it.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> Result<()> {
        let in_bounds = offset.checked_add(len).is_some_and(|end| end <= PAGE_SIZE);
        if !in_bounds || !offset.is_multiple_of(align) {
            return Err(Error::Usage(format!(
                "page access at {offset} (+{len}, align {align}) is outside the page or misaligned"
            )));
        }
        Ok(())
    }

    /// Volatile read of the little-endian u32 at `offset` (4-aligned).
    pub fn read_u32(&self, offset: usize) -> Result<u32> {
        self.check(offset, 4, 4)?;
        // SAFETY: in bounds and aligned (checked); the mapping lives as long
        // as self; volatile because another process writes it.
        let raw = unsafe { self.base.as_ptr().add(offset).cast::<u32>().read_volatile() };
        Ok(u32::from_le(raw))
    }

    /// Volatile write of a little-endian u32 at `offset` (4-aligned).
    pub fn write_u32(&self, offset: usize, value: u32) -> Result<()> {
        self.check(offset, 4, 4)?;
        // SAFETY: as in read_u32.
        unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value.to_le())
        };
        Ok(())
    }

    /// Volatile copy of `buf.len()` bytes starting at `offset` into `buf`.
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len(), 1)?;
        for (i, byte) in buf.iter_mut().enumerate() {
            // SAFETY: offset + i < PAGE_SIZE (checked above).
            *byte = unsafe { self.base.as_ptr().add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// Volatile copy of `data` into the page at `offset`.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check(offset, data.len(), 1)?;
        for (i, byte) in data.iter().enumerate() {
            // SAFETY: offset + i < PAGE_SIZE (checked above).
            unsafe { self.base.as_ptr().add(offset + i).write_volatile(*byte) };
        }
        Ok(())
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // An error would mean the mapping is already gone: nothing to do.
        // SAFETY: base/PAGE_SIZE is exactly the mapping made in map(), and
        // no pointer derived from it outlives self (as_ptr's contract).
        let _ = unsafe { munmap(self.base.cast(), PAGE_SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_page(name: &str) -> (SharedPage, PathBuf) {
        let path = std::env::temp_dir().join(format!("xstb-page-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        (SharedPage::create(&path).unwrap(), path)
    }

    #[test]
    fn two_views_of_a_page_file_see_each_others_writes() {
        let (a, path) = scratch_page("views");
        let b = SharedPage::open(&path).unwrap();
        a.write_u32(offset::RSP_PROD, 0x1234_5678).unwrap();
        assert_eq!(b.read_u32(offset::RSP_PROD).unwrap(), 0x1234_5678);
        b.write_bytes(PAGE_SIZE - 3, b"end").unwrap();
        let mut buf = [0u8; 3];
        a.read_bytes(PAGE_SIZE - 3, &mut buf).unwrap();
        assert_eq!(&buf, b"end");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn accesses_outside_the_page_or_misaligned_are_refused() {
        let (page, path) = scratch_page("bounds");
        assert!(page.read_u32(PAGE_SIZE - 4).is_ok());
        assert!(page.read_u32(PAGE_SIZE).is_err());
        assert!(page.write_u32(2, 0).is_err());
        assert!(page.write_bytes(PAGE_SIZE - 1, b"xy").is_err());
        assert!(page.read_bytes(usize::MAX, &mut [0u8; 2]).is_err());
        std::fs::remove_file(path).unwrap();
    }
}

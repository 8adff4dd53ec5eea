//! The file copy service: dom0 pushes files into the guest over a vchan we
//! offer (`docs/fcopy.md`), one transfer at a time, into an in-memory
//! store that the shell reads (`files`, `cat`, `sum`, `rmfile`).
//!
//! The protocol, the store's rules and the transfer state machine are the
//! `fcopy` crate's (pure, host-tested); here are the I/O around them: the
//! vchan and its frames ([`service`]), the claim a sender makes in
//! xenstore ([`claim`]), and the store every thread shares.

mod claim;
mod config;
mod service;

use alloc::string::String;
use alloc::vec::Vec;

use fcopy::{FileStore, StoreError};

pub use config::Config;
pub use service::StartError;

use crate::sync::Mutex;

/// The files copied in; `None` until [`start`]. Taken per frame by the
/// service and per command by the shell; nothing else is locked under it.
static STORE: Mutex<Option<FileStore>> = Mutex::new(None);

/// Why a store operation failed.
#[derive(Debug)]
pub enum FilesError {
    /// The service never started (not on Xen, or its start failed).
    NotRunning,
    /// The store refused.
    Store(StoreError),
}

impl core::fmt::Display for FilesError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotRunning => f.write_str("the file copy service is not running"),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for FilesError {}

fn with_store<R>(f: impl FnOnce(&mut FileStore) -> R) -> Result<R, FilesError> {
    let mut store = STORE.lock();
    store.as_mut().map(f).ok_or(FilesError::NotRunning)
}

/// Creates the store with `config`'s cap and starts the service's thread,
/// which offers the vchan and serves senders for the kernel's life.
pub fn start(config: Config) -> Result<(), StartError> {
    {
        let mut store = STORE.lock();
        if store.is_some() {
            return Err(StartError::AlreadyRunning);
        }
        *store = Some(FileStore::new(config.cap));
    }
    service::spawn(config)
}

/// What `files` shows.
pub struct Listing {
    /// Every file's path and size, in path order.
    pub files: Vec<(String, u64)>,
    /// Bytes the files hold.
    pub used: u64,
    /// The store's cap.
    pub cap: u64,
}

/// The files and the store's use.
pub fn list() -> Result<Listing, FilesError> {
    with_store(|s| Listing {
        files: s.list().map(|(p, n)| (String::from(p), n)).collect(),
        used: s.used(),
        cap: s.cap(),
    })
}

/// Calls `f` with the file at `path` (without copying it).
pub fn read<R>(path: &str, f: impl FnOnce(&[u8]) -> R) -> Result<R, FilesError> {
    with_store(|s| {
        s.get(path)
            .map(f)
            .ok_or_else(|| StoreError::NotFound(String::from(path)))
    })?
    .map_err(FilesError::Store)
}

/// Removes the file at `path`.
pub fn remove(path: &str) -> Result<(), FilesError> {
    with_store(|s| s.remove(path))?.map_err(FilesError::Store)
}

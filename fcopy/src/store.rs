//! Where copied files live: an in-memory store of whole files under
//! absolute paths, with a cap on the bytes it holds (files plus the one
//! transfer staged), and the rules a name must follow.
//!
//! Directories exist only as the set of paths made by a start with
//! create-path (and `/`, always); a file is published whole, so a reader
//! never sees a partial one.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::wire::{MAX_DIR, MAX_NAME, Status};

/// Why the store refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The path or name breaks the rules (see [`check_dir`], [`check_name`]).
    BadName(&'static str),
    /// The file exists and overwrite was not asked for.
    Exists(String),
    /// The directory does not exist and creating it was not asked for.
    NoSuchPath(String),
    /// The file does not fit.
    OutOfSpace {
        /// Bytes asked for.
        want: u64,
        /// Bytes free under the cap.
        free: u64,
    },
    /// No file at this path.
    NotFound(String),
}

impl StoreError {
    /// The wire status that reports it.
    pub fn status(&self) -> Status {
        match self {
            Self::BadName(_) => Status::BadName,
            Self::Exists(_) => Status::Exists,
            Self::NoSuchPath(_) | Self::NotFound(_) => Status::NoSuchPath,
            Self::OutOfSpace { .. } => Status::OutOfSpace,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName(why) => write!(f, "bad name: {why}"),
            Self::Exists(p) => write!(f, "{p} exists (overwrite not asked for)"),
            Self::NoSuchPath(p) => write!(f, "no directory {p} (creating it not asked for)"),
            Self::OutOfSpace { want, free } => {
                write!(f, "out of space: {want} bytes asked for, {free} free")
            }
            Self::NotFound(p) => write!(f, "no file {p}"),
        }
    }
}

impl core::error::Error for StoreError {}

/// Checks a destination directory: UTF-8, absolute, at most
/// [`MAX_DIR`] bytes, no NUL, no empty, `.` or `..` component (a trailing
/// `/` is allowed). Returns it without the trailing `/` (`/` stays `/`).
pub fn check_dir(dir: &[u8]) -> Result<&str, StoreError> {
    let dir = core::str::from_utf8(dir).map_err(|_| StoreError::BadName("not UTF-8"))?;
    if dir.len() > MAX_DIR {
        return Err(StoreError::BadName("directory too long"));
    }
    if dir.contains('\0') {
        return Err(StoreError::BadName("a NUL in the directory"));
    }
    let Some(rest) = dir.strip_prefix('/') else {
        return Err(StoreError::BadName("the directory is not absolute"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok("/");
    }
    for part in rest.split('/') {
        match part {
            "" => return Err(StoreError::BadName("an empty component in the directory")),
            "." | ".." => return Err(StoreError::BadName("'.' or '..' in the directory")),
            _ => {}
        }
    }
    Ok(&dir[..rest.len() + 1])
}

/// Checks a file name: UTF-8, 1 to [`MAX_NAME`] bytes, no NUL, no `/`,
/// not `.` or `..`.
pub fn check_name(name: &[u8]) -> Result<&str, StoreError> {
    let name = core::str::from_utf8(name).map_err(|_| StoreError::BadName("not UTF-8"))?;
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(StoreError::BadName("empty or too long"));
    }
    if name.contains('\0') {
        return Err(StoreError::BadName("a NUL in the name"));
    }
    if name.contains('/') {
        return Err(StoreError::BadName("a '/' in the name"));
    }
    if name == "." || name == ".." {
        return Err(StoreError::BadName("the name is '.' or '..'"));
    }
    Ok(name)
}

/// `dir` and `name` joined (both checked).
pub fn join(dir: &str, name: &str) -> String {
    let mut path = String::from(dir);
    if !path.ends_with('/') {
        path.push('/');
    }
    path.push_str(name);
    path
}

/// Space set aside for a transfer under way (see [`FileStore::reserve`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Reservation {
    path: String,
    dir: String,
    create_path: bool,
    bytes: u64,
}

impl Reservation {
    /// The file's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The bytes set aside (the announced size).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// The files, their directories and the cap.
#[derive(Debug)]
pub struct FileStore {
    cap: u64,
    files: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
    /// Bytes of the files.
    used: u64,
    /// Bytes set aside for the transfer under way.
    reserved: u64,
}

impl FileStore {
    /// An empty store (only `/`) holding at most `cap` bytes.
    pub fn new(cap: u64) -> FileStore {
        let mut dirs = BTreeSet::new();
        dirs.insert(String::from("/"));
        FileStore {
            cap,
            files: BTreeMap::new(),
            dirs,
            used: 0,
            reserved: 0,
        }
    }

    /// The cap, in bytes.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Bytes held by files.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Bytes neither held nor set aside.
    pub fn free(&self) -> u64 {
        self.cap.saturating_sub(self.used + self.reserved)
    }

    /// Checks a transfer's start and sets its size aside: the name rules,
    /// then the directory (it must exist unless `create_path`), then an
    /// existing file (refused unless `overwrite`), then the space (a file
    /// being replaced gives its bytes back). Nothing changes on an error.
    pub fn reserve(
        &mut self,
        dir: &[u8],
        name: &[u8],
        size: u64,
        overwrite: bool,
        create_path: bool,
    ) -> Result<Reservation, StoreError> {
        let dir = check_dir(dir)?;
        let name = check_name(name)?;
        let path = join(dir, name);
        if !create_path && !self.dirs.contains(dir) {
            return Err(StoreError::NoSuchPath(String::from(dir)));
        }
        if self.dirs.contains(&path) || self.files.contains_key(dir) {
            return Err(StoreError::Exists(path));
        }
        let replaced = match self.files.get(&path) {
            Some(_) if !overwrite => return Err(StoreError::Exists(path)),
            Some(old) => old.len() as u64,
            None => 0,
        };
        let free = self.free() + replaced;
        if size > free {
            return Err(StoreError::OutOfSpace { want: size, free });
        }
        self.reserved += size;
        Ok(Reservation {
            path,
            dir: String::from(dir),
            create_path,
            bytes: size,
        })
    }

    /// Gives a reservation's space back (a cancelled transfer).
    pub fn release(&mut self, reservation: Reservation) {
        self.reserved -= reservation.bytes;
    }

    /// Publishes `data` as the reservation's file (replacing the one there),
    /// creating its directories if the start asked for that. `data` is at
    /// most the reserved size (the receiver enforces it).
    pub fn publish(&mut self, reservation: Reservation, data: Vec<u8>) {
        self.reserved -= reservation.bytes;
        if reservation.create_path {
            let mut at = 0;
            while let Some(slash) = reservation.dir[at + 1..].find('/') {
                at += 1 + slash;
                self.dirs.insert(String::from(&reservation.dir[..at]));
            }
            self.dirs.insert(reservation.dir);
        }
        self.used += data.len() as u64;
        if let Some(old) = self.files.insert(reservation.path, data) {
            self.used -= old.len() as u64;
        }
    }

    /// The file at `path`.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// Removes the file at `path`.
    pub fn remove(&mut self, path: &str) -> Result<(), StoreError> {
        let data = self
            .files
            .remove(path)
            .ok_or_else(|| StoreError::NotFound(String::from(path)))?;
        self.used -= data.len() as u64;
        Ok(())
    }

    /// Every file's path and size, in path order.
    pub fn list(&self) -> impl Iterator<Item = (&str, u64)> {
        self.files.iter().map(|(p, d)| (p.as_str(), d.len() as u64))
    }
}

#[cfg(test)]
mod tests;

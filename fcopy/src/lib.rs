//! The file copy service's pure half: what the kernel (the receiver, on a
//! vchan it offers) and dom0's sender (`xen-fcopy`) must agree on, with no
//! I/O, so the host tests all of it.
//!
//! - [`wire`]: the versioned frames (start, write, complete, cancel from
//!   the sender; a status reply for each), decoded into typed errors;
//! - [`store`]: the in-memory file store with its size cap and the path
//!   rules (no `..`, no NUL);
//! - [`receiver`]: one transfer at a time, staged until complete, so a
//!   cancel or a vanished sender leaves no partial file;
//! - [`crc32`]: the checksum busybox's `crc32` prints, to compare a copy
//!   with dom0's file.
//!
//! The protocol and its xenstore keys are described in `docs/fcopy.md`.

#![no_std]

extern crate alloc;

pub mod crc32;
pub mod receiver;
pub mod store;
pub mod wire;

pub use crc32::Crc32;
pub use receiver::Receiver;
pub use store::{FileStore, StoreError};
pub use wire::{DecodeError, Flags, Kind, Reply, Request, Start, Status};

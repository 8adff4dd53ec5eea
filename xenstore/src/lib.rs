//! A XenStore client for a Xen guest kernel and for the host, in the shape
//! of FreeBSD's `xenstore.c`, with several requests in flight.
//!
//! Layers, bottom up (each module's doc says more):
//! - [`wire`], [`request`], [`reply`], [`path`], [`perms`], [`error`]: the
//!   protocol of Xen's `io/xs_wire.h` and `docs/misc/xenstore.txt`.
//! - [`core`]: the sans-IO protocol state machine.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod core;
pub mod error;
pub mod path;
pub mod perms;
pub mod reply;
pub mod request;
pub mod wire;

pub use error::{Context, ErrorCode, ProtocolViolation, TransportError, XsError};

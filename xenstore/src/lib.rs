//! A XenStore client for a Xen guest kernel and for the host, in the shape
//! of FreeBSD's `xenstore.c`, with several requests in flight.
//!
//! Layers, bottom up (each module's doc says more):
//! - [`wire`], [`request`], [`reply`], [`path`], [`perms`], [`error`]: the
//!   protocol of Xen's `io/xs_wire.h` and `docs/misc/xenstore.txt`.
//! - [`protocol`]: the sans-IO protocol state machine (the core).
//! - [`transport`]: moving bytes: [`ring::RingTransport`] over the shared
//!   page with [`ring::RingEvents`], or a unix socket on the host.
//! - the runtime (threads, reply routing, watch queues, suspend lock) on a
//!   small [`Platform`] trait the kernel implements (`StdPlatform` on the
//!   host, feature `std`).
//! - [`Client`], [`Store`], [`Transaction`], [`Watch`]: the driver API.
//!
//! ```no_run
//! # #[cfg(feature = "std")] fn demo() -> Result<(), xenstore_client::XsError> {
//! use xenstore_client::{Client, Store};
//! let xs = Client::connect("/run/xenstored/socket")?;
//! let name: String = xs.read_string("/local/domain/1/name")?;
//! let vcpus: u32 = xs.read_parsed("/local/domain/1/vcpus")?;
//! xs.transaction(|t| t.write("/local/domain/1/data/x", "1"))?;
//! let watch = xs.watch("/local/domain/1/control", |event| log::info!("{event:?}"))?;
//! # drop((name, vcpus, watch)); Ok(()) }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

extern crate alloc;

mod client;
pub mod error;
pub mod path;
pub mod perms;
pub mod platform;
pub mod protocol;
pub mod reply;
pub mod request;
pub mod ring;
mod runtime;
#[cfg(feature = "std")]
mod std_platform;
mod sync;
pub mod transport;
pub mod wire;

pub use client::{Client, Store, Target, Transaction, Watch};
pub use error::{
    Context, ErrorCode, PathError, ProtocolViolation, RingSide, TransportError, XsError,
};
pub use perms::{Access, DomId, Grant, Permissions};
pub use platform::{Lock, Platform, SpawnError, WaitQueue};
pub use request::Request;
pub use runtime::{Callback, Config, ReceiveMode, Stats, WatchEvent};
#[cfg(feature = "std")]
pub use std_platform::{StdLock, StdPlatform, StdWaitQueue};
#[cfg(feature = "std")]
pub use transport::UnixStreamTransport;

//! Host test bed for the real Xen xenstored.
//!
//! Runs Debian's xenstored 4.17 (fetched once, see [`xenstored`]) with fake
//! libxenctrl/libxenevtchn/libxengnttab (C, `csrc/`) on a private socket and
//! directory, plays the toolstack (XS_INTRODUCE, the domain's home), and
//! serves a domain's ring — a shared 4 KiB page and an event channel — to
//! host tests ([`Domain`]) or to QEMU ([`ivshmem::IvshmemServer`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use testbed::{Testbed, wire::ty};
//!
//! let tb = Testbed::start()?;                  // real daemon, private socket
//! let dom = tb.introduce_domain(1)?;           // page + event channel + home
//! let reply = dom.request(ty::READ, b"domid\0", Duration::from_secs(5))?;
//! assert_eq!(reply.text(), "1");
//! tb.cli("write", &["/local/domain/1/data/x", "y"])?.into_stdout()?;
//! # Ok::<(), testbed::Error>(())
//! ```
//!
//! See testbed/README.md for the state directory layout, the CLI
//! (`testbed up`), and what was learnt about the daemon's limits.

mod bed;
mod daemon;
mod domain;
mod error;
mod event;
mod fetch;
pub mod ivshmem;
mod layout;
mod options;
pub mod page;
mod ring;
mod sys;
mod toolstack;
pub mod wire;
#[cfg(feature = "xenstore")]
pub mod xs;

pub use bed::{CliOutput, DomainState, Testbed};
pub use domain::Domain;
pub use error::{Error, Result};
pub use event::GuestEventChannel;
pub use fetch::{PACKAGE, Xenstored, cache_dir, xenstored};
pub use options::{Options, Quota};
pub use page::SharedPage;
pub use toolstack::{DomainConfig, HomeLayout};

//! The Xen hypervisor ABI for an x86_64 HVM/PVH guest, as a `no_std` library with no
//! dependency on the kernel.
//!
//! Where it needs the kernel (CPUID, MSRs, page mappings, the interrupt vector) it takes small
//! traits ([`cpuid::CpuidSource`], [`hypercall::MsrWriter`]) or plain addresses; every
//! hypercall goes through [`hypercall::Hypervisor`], so all the logic above it runs in host
//! tests against a recording fake, and everything shared with Xen is atomics over `#[repr(C)]`
//! layouts checked against the public headers.
//!
//! # Bringing Xen up at boot, in order
//!
//! 1. [`cpuid::detect`] with [`cpuid::NativeCpuid`]. `Err` means "not on Xen": use the test
//!    platform (ivshmem) instead.
//! 2. [`hypercall::HypercallPage::install`] with [`hypercall::NativeMsr`], the page from
//!    `hypercall::builtin_page_address()` (kernel target only: a page in `.text`) and its
//!    guest-physical address. Every later step makes hypercalls through the returned page.
//! 3. The PV console, if any, for the log: [`hvm::console_ring`], map its frame,
//!    [`console::XenconsInterface::from_ptr`], [`console::XenConsole`].
//! 4. shared_info: pick a free guest frame, [`shared_info::map_shared_info`], map it,
//!    [`shared_info::SharedInfo::from_ptr`].
//! 5. Event channels: a `static` [`evtchn::HandlerTable`], [`evtchn::EventChannels::new`],
//!    [`evtchn::EventChannels::mask_all`]; install the upcall vector's IDT entry (its
//!    handler calls [`evtchn::EventChannels::handle_upcall`]); then route upcalls, preferring
//!    [`hvm::set_evtchn_upcall_vector`] when [`cpuid::XenInfo::has_upcall_vector`] (LAPIC
//!    EOI first in the handler) and otherwise [`hvm::set_callback_via`] with
//!    [`hvm::CallbackVia::Vector`] (check [`version::feature::HVM_CALLBACK_VECTOR`]; no EOI).
//!    Enable interrupts.
//! 6. xenstore: [`hvm::store_ring`], map its frame, attach a wake-only handler to its port
//!    with [`evtchn::EventChannels::attach`], notify with [`evtchn::EventChannels::send`].
//! 7. Grant table, when a driver needs one: [`grant_table::ops::query_size`],
//!    [`grant_table::ops::map_frames`] at free frames, map them,
//!    [`grant_table::entries_from_ptr`], [`grant_table::GrantTable::new`].
//! 8. Power off with [`sched::shutdown`].

#![cfg_attr(not(test), no_std)]

pub mod console;
pub mod cpuid;
pub mod error;
pub mod evtchn;
pub mod grant_table;
pub mod hvm;
pub mod hypercall;
pub mod memory;
pub mod sched;
pub mod shared_info;
pub mod types;
pub mod version;

pub use error::{Cause, Errno, Operation, XenError};
pub use types::{DomId, Gfn, GrantRef, PAGE_SIZE, Port, VcpuId};

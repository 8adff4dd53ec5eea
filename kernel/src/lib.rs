//! A small x86_64 kernel that boots as a Xen guest (PVH) or under QEMU, with
//! the services a XenStore client and XenBus drivers need: a serial console
//! behind `log`, interrupts (local APIC + IOAPIC), a microsecond clock,
//! preemptive kernel threads, sleepable locks and wait queues, and paging
//! helpers for MMIO and shared pages; on Xen the hypervisor bring-up
//! ([`hypervisor`]), and the XenStore service ([`xenstore_service`]) over Xen's ring
//! or, under plain QEMU, the ivshmem-doorbell test platform; XenBus and the
//! guest services on it ([`guest`]), and a serial shell ([`shell`]).
//!
//! A kernel binary names its main function with [`entry_point!`]; the boot
//! code initialises everything in [`boot`] order and then calls it on the
//! `main` thread with interrupts enabled.
//!
//! Lock order (outer first), for every lock in the kernel:
//! `WaitQueue` queue locks -> scheduler run state -> thread-stack slots ->
//! kernel heap -> page tables -> frame allocator -> serial port (a leaf).
//! The shell's terminal line state ([`terminal`]) is taken before
//! the serial port, never with another kernel lock held.
//! The xenstore runtime's short locks ([`xenstore_service::platform`]) are spin
//! locks taken inside wait-queue conditions, so they come after the wait
//! queue locks and before the scheduler's.
//! Interrupt handler tables are held only while their handlers run and may
//! take wait-queue locks (to wake threads), never the other way round.

#![no_std]
// The kernel's docs are for its maintainers, built with
// --document-private-items (run-tests.sh's doc step): module docs name the
// private locks and statics they are about, on purpose.
#![allow(rustdoc::private_intra_doc_links)]

extern crate alloc;

pub mod acpi;
pub mod arch;
pub mod boot;
pub mod bootinfo;
pub mod exit;
pub mod fault;
pub mod fcopy;
pub mod guest;
pub mod hostlink;
pub mod hypervisor;
pub mod interrupts;
pub mod logger;
pub mod memory;
pub mod panic;
pub mod pci;
pub mod serial;
pub mod shell;
pub mod spinlock;
pub mod sync;
pub mod terminal;
pub mod thread;
pub mod time;
pub mod vchan;
pub mod xenstore_service;

pub use bootinfo::BootInfo;
pub use exit::{ExitCode, exit};

/// Declares the kernel's main function: `fn(&'static BootInfo) -> !`.
///
/// The boot code calls it once, on the `main` thread, after every subsystem
/// is up and interrupts are enabled. Use it exactly once per kernel image.
#[macro_export]
macro_rules! entry_point {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "Rust" fn __kernel_main(boot: &'static $crate::BootInfo) -> ! {
            let main: fn(&'static $crate::BootInfo) -> ! = $main;
            main(boot)
        }
    };
}

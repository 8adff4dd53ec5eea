//! Synchronisation: IRQ-safe spin locks for short critical sections, and
//! sleeping primitives built on [`WaitQueue`]: [`Mutex`], the FreeBSD-style
//! shared/exclusive [`SxLock`] with its typed wrapper [`RwLock`], and the
//! one-shot [`Completion`].
//!
//! Two layers: the spin locks sit below everything that takes a lock (the
//! scheduler included); the sleeping primitives sit above the scheduler.
//! `WaitQueue` and `Completion` are defined in [`crate::thread`] (they are
//! its block/wake protocol, and a thread's join waits on a `Completion`)
//! and re-exported here.
//!
//! Sleeping primitives may only be waited on from thread context with
//! interrupts enabled (not from an interrupt handler, not under a spin
//! lock); doing otherwise is a kernel bug and panics with a clear message.
//! Their wake-up side (unlock, `complete`, `wake_*`) is callable anywhere.

mod mutex;
mod rwlock;
mod spin;

pub use crate::thread::{Completion, WaitQueue};
pub use mutex::{Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard, SxLock};
pub use spin::{RawSpinLock, SpinLock, SpinLockGuard, held as spin_locks_held};

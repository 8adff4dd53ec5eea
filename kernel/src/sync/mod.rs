//! Synchronisation: IRQ-safe spin locks for short critical sections, and
//! sleeping primitives built on [`WaitQueue`]: [`Mutex`], the FreeBSD-style
//! shared/exclusive [`SxLock`] with its typed wrapper [`RwLock`], and the
//! one-shot [`Completion`].
//!
//! The one place to take them from, outside the kernel's own low layers:
//! the spin locks are defined in [`crate::spinlock`], below everything that
//! takes a lock (the scheduler included), `WaitQueue` and `Completion` in
//! [`crate::thread`] (they are its block/wake protocol, and a thread's join
//! waits on a `Completion`); the mutex and reader/writer lock here sit
//! above the scheduler.
//!
//! Sleeping primitives may only be waited on from thread context with
//! interrupts enabled (not from an interrupt handler, not under a spin
//! lock); doing otherwise is a kernel bug and panics with a clear message.
//! Their wake-up side (unlock, `complete`, `wake_*`) is callable anywhere.

mod mutex;
mod rwlock;

pub use crate::spinlock::{RawSpinLock, SpinLock, SpinLockGuard, held as spin_locks_held};
pub use crate::thread::{Completion, WaitQueue};
pub use mutex::{Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard, SxLock};

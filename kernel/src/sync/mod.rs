//! Synchronisation: IRQ-safe spin locks for short critical sections, and
//! sleeping primitives built on [`WaitQueue`]: [`Mutex`], the FreeBSD-style
//! shared/exclusive [`SxLock`] with its typed wrapper [`RwLock`], and the
//! one-shot [`Completion`].
//!
//! Sleeping primitives may only be waited on from thread context with
//! interrupts enabled (not from an interrupt handler, not under a spin
//! lock); doing otherwise is a kernel bug and panics with a clear message.
//! Their wake-up side (unlock, `complete`, `wake_*`) is callable anywhere.

mod completion;
mod mutex;
mod rwlock;
mod spin;
mod wait_queue;

pub use completion::Completion;
pub use mutex::{Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard, SxLock};
pub use spin::{RawSpinLock, SpinLock, SpinLockGuard, held as spin_locks_held};
pub use wait_queue::WaitQueue;

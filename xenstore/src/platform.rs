//! What the runtime needs from the operating system: short-hold locks, wait
//! queues, threads and a clock. The kernel implements [`Platform`] with its
//! own primitives; `StdPlatform` (feature `std`) uses the host's.
//!
//! Everything else the runtime needs (the suspend reader/writer lock, the
//! reader token, reply slots) is built from these inside the crate, so a
//! kernel implements only this small trait.

use alloc::boxed::Box;
use core::time::Duration;

/// Mutual exclusion around a value, for short critical sections.
///
/// The runtime never blocks, sleeps, calls back into user code or takes a
/// wait queue's internal lock while holding one, and evaluates `with` inside
/// [`WaitQueue::wait_until`] conditions. In a kernel this is therefore a
/// spin lock (interrupts need not be disabled: the runtime's locks are never
/// taken in interrupt context); on the host, a mutex.
pub trait Lock<T>: Send + Sync {
    /// A lock holding `value`.
    fn new(value: T) -> Self;
    /// Runs `f` with exclusive access to the value.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

/// A queue of sleeping threads.
pub trait WaitQueue: Send + Sync {
    /// An empty queue.
    fn new() -> Self;

    /// Returns at once if `cond()` is true; otherwise sleeps until it is,
    /// re-evaluating it after each wake-up, or until `timeout` passes
    /// (`None`: no limit). Returns the last value of `cond()`.
    ///
    /// Contract: no lost wake-ups. A `wake_all` that follows a change making
    /// `cond` true must end the wait even if it races with the evaluation of
    /// `cond` (re-check while enqueued). Once `cond()` returns true it is not
    /// called again (the runtime's conditions may claim a resource when they
    /// succeed). `cond` may take [`Lock`]s; it never sleeps.
    fn wait_until(&self, cond: &mut dyn FnMut() -> bool, timeout: Option<Duration>) -> bool;

    /// Wakes every waiter to re-evaluate its condition. Never called with a
    /// [`Lock`] of the runtime held.
    fn wake_all(&self);
}

/// Could not start a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpawnError;

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("could not start a thread")
    }
}

impl core::error::Error for SpawnError {}

/// The operating-system services the xenstore runtime runs on.
pub trait Platform: Send + Sync + 'static {
    /// Short-hold lock (see [`Lock`]).
    type Lock<T: Send>: Lock<T>;
    /// Wait queue (see [`WaitQueue`]).
    type WaitQueue: WaitQueue;

    /// Starts a thread running `body`. The runtime starts, per client, the
    /// receive thread and one to `Config::watch_threads` watch callback
    /// threads (started on demand; all but one end after a second idle).
    fn spawn(
        &self,
        name: &'static str,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> Result<(), SpawnError>;

    /// An id of the calling thread, unique among live threads. Lets
    /// `unwatch` know it is being called from that watch's own callback.
    fn current_thread_id(&self) -> u64;

    /// A monotonic clock in microseconds (for request deadlines).
    fn now_us(&self) -> u64;
}

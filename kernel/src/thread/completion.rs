//! A one-shot completion: threads wait until some party (possibly an
//! interrupt handler) signals that an event happened.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use super::wait_queue::WaitQueue;

/// A one-shot event. Once completed it stays completed: every present and
/// future waiter returns at once.
pub struct Completion {
    done: AtomicBool,
    /// Threads waiting for `done`.
    waiters: WaitQueue,
}

impl Completion {
    /// A completion not yet signalled.
    pub const fn new() -> Self {
        Self {
            done: AtomicBool::new(false),
            waiters: WaitQueue::new(),
        }
    }

    /// Signals the event and wakes all waiters. Idempotent. Callable from
    /// any context, including interrupt handlers.
    pub fn complete(&self) {
        self.done.store(true, Ordering::Release);
        self.waiters.wake_all();
    }

    /// Whether the event has been signalled.
    pub fn is_complete(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Sleeps until the event is signalled (thread context only).
    pub fn wait(&self) {
        self.waiters.wait(|| self.is_complete());
    }

    /// Sleeps until the event is signalled or `timeout` passes; returns
    /// whether it was signalled.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.waiters
            .wait_until(|| self.is_complete(), Some(timeout))
    }
}

impl Default for Completion {
    fn default() -> Self {
        Self::new()
    }
}

//! [`KernelPlatform`]: the xenstore runtime's threads, locks, wait queues
//! and clock, from the kernel's own primitives.
//!
//! - Short-hold lock: the kernel's IRQ-safe [`SpinLock`]. The runtime never
//!   sleeps or calls user code while holding one, and it takes them inside
//!   wait-queue conditions, which the kernel evaluates with the queue's own
//!   spin lock held: a spin lock is the only kind allowed there (lock order:
//!   a wait queue's lock, then these).
//! - Wait queue: the kernel's [`WaitQueue`], whose `wait_until` re-checks
//!   the condition with the waiter already enqueued (no lost wake-ups) and
//!   may be woken from interrupt context.
//! - Threads: kernel threads with a stack sized for watch callbacks, which
//!   may themselves make xenstore requests.

use alloc::boxed::Box;
use core::time::Duration;

use xenstore::{Platform, SpawnError};

use crate::spinlock::SpinLock;
use crate::sync::WaitQueue;
use crate::thread;

/// Stack of the runtime's threads (receive and watch callbacks). Watch
/// callbacks run driver code, so they get more than the default.
pub const RUNTIME_STACK_SIZE: u64 = 128 * 1024;

/// The kernel as a xenstore [`Platform`]. Zero-sized: every client shares
/// the kernel's scheduler and clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelPlatform;

/// [`xenstore::Lock`] over an IRQ-safe spin lock.
pub struct KernelLock<T>(SpinLock<T>);

impl<T: Send> xenstore::Lock<T> for KernelLock<T> {
    fn new(value: T) -> Self {
        KernelLock(SpinLock::new(value))
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock())
    }
}

/// [`xenstore::WaitQueue`] over the kernel's wait queue.
pub struct KernelWaitQueue(WaitQueue);

impl xenstore::WaitQueue for KernelWaitQueue {
    fn new() -> Self {
        KernelWaitQueue(WaitQueue::new())
    }

    fn wait_until(&self, cond: &mut dyn FnMut() -> bool, timeout: Option<Duration>) -> bool {
        self.0.wait_until(cond, timeout)
    }

    fn wake_all(&self) {
        self.0.wake_all();
    }
}

impl Platform for KernelPlatform {
    type Lock<T: Send> = KernelLock<T>;
    type WaitQueue = KernelWaitQueue;

    fn spawn(
        &self,
        name: &'static str,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> Result<(), SpawnError> {
        thread::Builder::new(name)
            .stack_size(RUNTIME_STACK_SIZE)
            .spawn(body)
            .map(drop)
            .map_err(|e| {
                log::error!("xenstore: cannot start thread {name}: {e}");
                SpawnError
            })
    }

    fn current_thread_id(&self) -> u64 {
        thread::current_id().as_u64()
    }

    fn now_us(&self) -> u64 {
        crate::time::Instant::now().as_micros()
    }
}

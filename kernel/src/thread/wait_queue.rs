//! Wait queues: threads sleep until a condition holds; anyone (including an
//! interrupt handler) may wake them.
//!
//! [`WaitQueue::wait_until`] cannot lose a wake-up (the Theseus design): the
//! condition is re-checked with the queue locked and the thread already
//! marked blocked, and a waker changes the condition *before* it takes the
//! queue lock to wake. So either the waiter sees the new condition, or it is
//! on the queue when the waker looks.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::time::Duration;

use super::Thread;
use crate::arch::cpu::{irq_restore, irq_save};
use crate::spinlock::SpinLock;
use crate::time::Instant;

struct Waiter {
    thread: Arc<Thread>,
    /// The waiter's block sequence number: a stale entry cannot wake a
    /// later, unrelated sleep of the same thread.
    seq: u64,
}

/// A queue of sleeping threads. Lock order: a queue's lock is taken before
/// the scheduler's and never while another queue's lock is held by the same
/// code path, except through a condition closure (see `wait_until`).
pub struct WaitQueue {
    /// The sleeping threads, oldest first.
    waiters: SpinLock<VecDeque<Waiter>>,
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            waiters: SpinLock::new(VecDeque::new()),
        }
    }

    /// Sleeps until `cond()` returns true or `timeout` passes (`None`: no
    /// limit). Returns whether `cond` became true (`false` only on timeout).
    ///
    /// `cond` runs several times: once without the queue lock and then each
    /// time it is re-checked with the queue lock held and interrupts
    /// disabled; so it must be quick and must not sleep (it may take spin
    /// locks that come after wait queues in the lock order). It may have a
    /// side effect when it returns true (e.g. taking a lock): it is not
    /// called again after that.
    ///
    /// Must be called from thread context with interrupts enabled.
    pub fn wait_until(&self, mut cond: impl FnMut() -> bool, timeout: Option<Duration>) -> bool {
        if cond() {
            return true;
        }
        super::assert_may_sleep("WaitQueue::wait_until");
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let irq = irq_save();
            let ticket = {
                let mut waiters = self.waiters.lock();
                if cond() {
                    drop(waiters);
                    irq_restore(irq);
                    return true;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    drop(waiters);
                    irq_restore(irq);
                    return false;
                }
                let ticket = super::prepare_block(deadline);
                waiters.push_back(Waiter {
                    thread: ticket.thread().clone(),
                    seq: ticket.seq(),
                });
                ticket
            };
            let (me, seq) = (ticket.thread().clone(), ticket.seq());
            super::block(ticket);
            // Woken by the timer rather than a waker: take our entry out.
            self.waiters
                .lock()
                .retain(|w| !(Arc::ptr_eq(&w.thread, &me) && w.seq == seq));
            drop(me);
            irq_restore(irq);
        }
    }

    /// Sleeps until `cond()` holds, with no timeout. See [`Self::wait_until`].
    pub fn wait(&self, cond: impl FnMut() -> bool) {
        self.wait_until(cond, None);
    }

    /// Wakes the oldest thread still sleeping here. Returns whether one was
    /// woken. Entries of threads that already woke up (timeout) are dropped
    /// on the way, so the wake-up goes to a thread that needs it. Callable
    /// from any context, including interrupt handlers.
    pub fn wake_one(&self) -> bool {
        let mut waiters = self.waiters.lock();
        while let Some(waiter) = waiters.pop_front() {
            if super::wake(&waiter.thread, waiter.seq) {
                return true;
            }
        }
        false
    }

    /// Wakes every thread sleeping here; returns how many. Callable from any
    /// context, including interrupt handlers.
    pub fn wake_all(&self) -> usize {
        let mut waiters = self.waiters.lock();
        let mut woken = 0;
        while let Some(waiter) = waiters.pop_front() {
            if super::wake(&waiter.thread, waiter.seq) {
                woken += 1;
            }
        }
        woken
    }

    /// Number of threads queued (a snapshot, for diagnostics and tests).
    pub fn len(&self) -> usize {
        self.waiters.lock().len()
    }

    /// Whether no thread is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

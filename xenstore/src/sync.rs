//! Sleepable locks built from the platform's short-hold lock and wait queue.

use core::time::Duration;

use crate::platform::{Lock, Platform, WaitQueue};

/// A deadline on the platform clock, for waits that loop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Option<u64>);

impl Deadline {
    /// No deadline.
    pub(crate) fn never() -> Deadline {
        Deadline(None)
    }

    /// `timeout` from now (`None`: never).
    pub(crate) fn after<P: Platform>(platform: &P, timeout: Option<Duration>) -> Deadline {
        Deadline(timeout.map(|t| {
            platform
                .now_us()
                .saturating_add(t.as_micros().min(u64::MAX as u128) as u64)
        }))
    }

    /// Time left (`None`: unlimited; `Some(ZERO)`: expired).
    pub(crate) fn remaining<P: Platform>(&self, platform: &P) -> Option<Duration> {
        self.0
            .map(|d| Duration::from_micros(d.saturating_sub(platform.now_us())))
    }

    /// Whether the deadline has passed.
    pub(crate) fn expired<P: Platform>(&self, platform: &P) -> bool {
        self.remaining(platform) == Some(Duration::ZERO)
    }
}

#[derive(Default)]
struct RwState {
    readers: usize,
    writer: bool,
    writers_waiting: usize,
}

/// The suspend lock: a reader/writer lock with raw (guard-less) operations,
/// because a transaction holds it shared for its whole life, across calls
/// and possibly threads. A waiting writer blocks new readers, so `suspend`
/// cannot be starved by a stream of new transactions.
pub(crate) struct SuspendLock<P: Platform> {
    state: P::Lock<RwState>,
    queue: P::WaitQueue,
}

impl<P: Platform> SuspendLock<P> {
    pub(crate) fn new() -> Self {
        SuspendLock {
            state: Lock::new(RwState::default()),
            queue: WaitQueue::new(),
        }
    }

    /// Takes the lock shared; sleeps while it is held or wanted exclusively.
    pub(crate) fn lock_shared(&self) {
        let mut claim = || {
            self.state.with(|s| {
                let ok = !s.writer && s.writers_waiting == 0;
                if ok {
                    s.readers += 1;
                }
                ok
            })
        };
        self.queue.wait_until(&mut claim, None);
    }

    /// Releases one shared hold.
    pub(crate) fn unlock_shared(&self) {
        let wake = self.state.with(|s| {
            s.readers = s.readers.saturating_sub(1);
            s.readers == 0 && s.writers_waiting > 0
        });
        if wake {
            self.queue.wake_all();
        }
    }

    /// Takes the lock exclusively: blocks new shared holders at once, then
    /// waits for the current ones to leave.
    pub(crate) fn lock_exclusive(&self) {
        self.state.with(|s| s.writers_waiting += 1);
        let mut claim = || {
            self.state.with(|s| {
                let ok = !s.writer && s.readers == 0;
                if ok {
                    s.writer = true;
                    s.writers_waiting -= 1;
                }
                ok
            })
        };
        self.queue.wait_until(&mut claim, None);
    }

    /// Releases the exclusive hold and lets waiters in.
    pub(crate) fn unlock_exclusive(&self) {
        self.state.with(|s| s.writer = false);
        self.queue.wake_all();
    }

    /// Whether the lock is held or wanted exclusively (a suspend is under way).
    #[cfg(test)]
    pub(crate) fn exclusive_pending(&self) -> bool {
        self.state.with(|s| s.writer || s.writers_waiting > 0)
    }
}

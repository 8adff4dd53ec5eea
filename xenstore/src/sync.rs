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
    /// Shared holders that are always waited for (watch registrations).
    readers: usize,
    /// Open transactions: shared holders waited for at most a grace period.
    transactions: usize,
    writer: bool,
    writers_waiting: usize,
}

/// The suspend lock: a reader/writer lock with raw (guard-less) operations,
/// because a transaction holds it shared for its whole life, across calls
/// and possibly threads. A waiting writer blocks new readers, so `suspend`
/// cannot be starved by a stream of new transactions.
///
/// Two kinds of shared holder: a watch (un)registration (one request,
/// [`SuspendLock::lock_shared`]), which the writer always waits for, and an
/// open transaction ([`SuspendLock::begin_transaction`]), which it waits for
/// only up to a grace period ([`SuspendLock::lock_exclusive_within`]): a
/// transaction may stay open for as long as its owner likes, and a suspend
/// must not wait for it that long (the toolstack gives up on a guest that
/// does not suspend).
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

    /// Opens a transaction's shared hold; sleeps while the lock is held or
    /// wanted exclusively.
    pub(crate) fn begin_transaction(&self) {
        let mut claim = || {
            self.state.with(|s| {
                let ok = !s.writer && s.writers_waiting == 0;
                if ok {
                    s.transactions += 1;
                }
                ok
            })
        };
        self.queue.wait_until(&mut claim, None);
    }

    /// Ends a transaction's shared hold (also one the writer stopped waiting
    /// for).
    pub(crate) fn end_transaction(&self) {
        let wake = self.state.with(|s| {
            s.transactions = s.transactions.saturating_sub(1);
            s.transactions == 0 && s.writers_waiting > 0
        });
        if wake {
            self.queue.wake_all();
        }
    }

    /// Takes the lock exclusively: blocks new shared holders at once, then
    /// waits for the current ones to leave.
    #[cfg(test)]
    pub(crate) fn lock_exclusive(&self) {
        self.lock_exclusive_within(None);
    }

    /// Takes the lock exclusively: blocks new shared holders at once, waits
    /// for the watch registrations under way to end, and for the open
    /// transactions to end for at most `grace` (`None`: for ever). Returns
    /// how many transactions were still open when it took the lock: those
    /// go on holding nothing (their `end_transaction` still counts down).
    pub(crate) fn lock_exclusive_within(&self, grace: Option<Duration>) -> usize {
        self.state.with(|s| s.writers_waiting += 1);
        let mut all_out = || self.state.with(|s| Self::claim(s, true));
        if self.queue.wait_until(&mut all_out, grace) {
            return 0;
        }
        let mut open = 0;
        let mut readers_out = || {
            self.state.with(|s| {
                open = s.transactions;
                Self::claim(s, false)
            })
        };
        self.queue.wait_until(&mut readers_out, None);
        open
    }

    /// Takes the exclusive hold if nobody holds the lock (but transactions,
    /// unless `with_transactions`).
    fn claim(s: &mut RwState, with_transactions: bool) -> bool {
        let ok = !s.writer && s.readers == 0 && (!with_transactions || s.transactions == 0);
        if ok {
            s.writer = true;
            s.writers_waiting -= 1;
        }
        ok
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

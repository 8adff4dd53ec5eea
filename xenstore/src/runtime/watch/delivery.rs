//! The callback threads: each takes a watch with events, runs its callback
//! for the next event with no lock held, and gives the watch back.
//!
//! Invariants (under `table`): a watch is `claimed` exactly while it is in
//! `ready` or in `running`, so one thread at most delivers it and its events
//! keep their order; `idle` counts the threads that will take the next
//! ready watch without a new thread being started.

use core::time::Duration;

use super::{Callback, Queued, WatchEvent, WatchTable, Watches};
use crate::XsError;
use crate::platform::{Lock, Platform, WaitQueue};
use crate::protocol::WatchId;

/// How long a callback thread beyond the first waits for work before it
/// ends.
const IDLE_RETIRE: Duration = Duration::from_secs(1);

/// What an idle thread does next.
enum Next {
    /// Run `callback` for the event; `room_made`: its queue fell to half,
    /// which may end the reader's wait for room.
    Deliver {
        id: WatchId,
        event: WatchEvent,
        callback: Callback,
        room_made: bool,
    },
    Wait,
    Exit,
}

impl<P: Platform> Watches<P> {
    /// Starts the first callback thread if none runs, so that a failure to
    /// start one is reported when the first watch is added.
    pub(crate) fn ensure_thread(&self) -> Result<(), XsError> {
        let start = self.table.with(|t| {
            let start = t.threads == 0 && !t.closing;
            if start {
                t.threads = 1;
                t.idle += 1;
            }
            start
        });
        if start && (self.spawner)().is_err() {
            self.table.with(|t| {
                t.threads -= 1;
                t.idle -= 1;
            });
            return Err(XsError::Spawn("xenwatch"));
        }
        Ok(())
    }

    /// How many threads to start for the ready watches that no idle thread
    /// will take; counts them as started (and idle). Under `table`.
    pub(super) fn threads_to_start(&self, t: &mut WatchTable) -> usize {
        if t.closing {
            return 0;
        }
        let wanted = t.ready.len().saturating_sub(t.idle);
        let n = wanted.min(self.policy.threads.saturating_sub(t.threads));
        t.threads += n;
        t.idle += n;
        n
    }

    /// Starts `n` threads counted by `threads_to_start`. A thread that
    /// cannot start is uncounted; its watch waits for a running thread.
    pub(super) fn start_threads(&self, n: usize) {
        for _ in 0..n {
            if (self.spawner)().is_err() {
                let threads = self.table.with(|t| {
                    t.threads -= 1;
                    t.idle -= 1;
                    t.threads
                });
                log::warn!(
                    "xenstore: cannot start a watch callback thread ({threads} running): \
                     ready watches wait for a free one"
                );
                return;
            }
        }
    }

    /// A callback thread's body: delivers events until the watches close or
    /// the thread retires. It starts counted as idle.
    pub(crate) fn run(&self, platform: &P) {
        let me = platform.current_thread_id();
        loop {
            let Some((id, event, mut callback)) = self.next_work(me) else {
                return;
            };
            callback(&event);
            self.give_back(id, callback);
        }
    }

    /// Waits for a ready watch and claims its next event; `None` when the
    /// thread should end (closing, or idle too long while others run).
    fn next_work(&self, me: u64) -> Option<(WatchId, WatchEvent, Callback)> {
        loop {
            let mut next = Next::Wait;
            let mut step = |may_retire: bool| {
                self.table.with(|t| {
                    next = self.claim(t, me, may_retire);
                    !matches!(next, Next::Wait)
                })
            };
            // The last thread waits without a timeout (no idle wake-ups).
            let timeout = self.table.with(|t| t.threads > 1).then_some(IDLE_RETIRE);
            if !self.work.wait_until(&mut || step(false), timeout) {
                // Timed out with nothing to do: retire if others remain.
                step(true);
            }
            match next {
                Next::Deliver {
                    id,
                    event,
                    callback,
                    room_made,
                } => {
                    if room_made {
                        self.wake_reader();
                    }
                    return Some((id, event, callback));
                }
                Next::Exit => return None,
                Next::Wait => {}
            }
        }
    }

    /// Under `table`: takes the first ready watch's next event, or says
    /// whether the calling idle thread ends.
    fn claim(&self, t: &mut WatchTable, me: u64, may_retire: bool) -> Next {
        if t.closing || (may_retire && t.threads > 1 && t.ready.is_empty()) {
            t.threads -= 1;
            t.idle -= 1;
            return Next::Exit;
        }
        while let Some(id) = t.ready.pop_front() {
            // Removed watches leave stale ids behind.
            let Some(entry) = t.entries.get_mut(&id) else {
                continue;
            };
            let Some(queued) = entry.events.pop_front() else {
                entry.claimed = false;
                continue;
            };
            let Some(callback) = entry.callback.take() else {
                // Unreachable while `claimed` holds; never lose the event.
                entry.events.push_front(queued);
                continue;
            };
            let event = match queued {
                Queued::Changed(path) => {
                    if !entry.stalled {
                        t.depths.moved(entry.queued, entry.queued - 1);
                    }
                    entry.queued -= 1;
                    WatchEvent::Changed { path }
                }
                Queued::Overflow(missed) => WatchEvent::Overflow { missed },
            };
            let half_empty = entry.queued <= self.policy.limit / 2;
            if half_empty && entry.stalled {
                entry.stalled = false;
                t.depths.insert(entry.queued);
            }
            t.running.insert(id, me);
            t.idle -= 1;
            t.handed_out += 1;
            return Next::Deliver {
                id,
                event,
                callback,
                room_made: half_empty,
            };
        }
        Next::Wait
    }

    /// After a callback returned: puts it back (or drops it, outside the
    /// lock, if its watch was removed meanwhile), requeues the watch if it
    /// has more events, and wakes whoever waits for that.
    fn give_back(&self, id: WatchId, callback: Callback) {
        let (orphan, wake_work) = self.table.with(|t| {
            t.running.remove(&id);
            t.stats.callbacks += 1;
            t.idle += 1;
            let (orphan, requeued) = match t.entries.get_mut(&id) {
                Some(entry) => {
                    entry.callback = Some(callback);
                    let more = !entry.events.is_empty();
                    entry.claimed = more;
                    (None, more)
                }
                None => (Some(callback), false),
            };
            if requeued {
                t.ready.push_back(id);
            }
            (orphan, requeued || t.unwatch_waiters > 0)
        });
        drop(orphan);
        if wake_work {
            self.work.wake_all();
        }
    }
}

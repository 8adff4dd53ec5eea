//! Watch callbacks: per-watch bounded queues, callback threads, and flow
//! control of the reader.
//!
//! Delivery ([`delivery`]): each watch has its own queue, and at most one
//! thread runs its callback at a time, so a watch sees its events in the
//! daemon's order. Different watches do not wait for each other: a watch
//! with events and no thread gets an idle callback thread, or a new one is
//! started (up to `Config::watch_threads`; only beyond that does a watch
//! wait for a free thread). Threads beyond the first retire after a second
//! without work.
//!
//! Bound and flow control ([`flow`]): a watch queues at most `limit` change
//! events. The receive thread reads no more than every watch can take, and
//! while a queue is full it stops reading, so the events wait in the ring
//! and in the daemon while the callback catches up: nothing is lost for a
//! callback that is merely slow. Reading goes on regardless, and what does
//! not fit is dropped, in two cases: a request is waiting for its reply
//! (replies share the ring with events, so holding reading back could
//! deadlock, for example a callback that makes a request), or the full
//! watch's callback made no progress for `Config::watch_stall_timeout`
//! (it is then *stalled* until it drains its queue to half).
//!
//! A drop is never silent: one [`WatchEvent::Overflow`] marker is queued at
//! that point of the watch's sequence and counts every event dropped there,
//! until the next event that fits (queued after the marker). The callback
//! thus learns where and how many events were lost and should re-read what
//! it watches. Markers do not count against the bound. (The 4.17 daemon
//! itself drops events a guest leaves unread for 20 s, or past its memory
//! quota; no client can see those: see xenstore/README.md.)

mod delivery;
mod depths;
mod flow;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::AtomicBool;
use core::time::Duration;

use crate::platform::{Lock, Platform, SpawnError, WaitQueue};
use crate::protocol::WatchId;

/// What a watch callback is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// `path` changed: it is the watched path or below it (for the
    /// initial event the daemon sends on registration, and for the removal
    /// of a parent, it is the watched path itself). Relative if the watch
    /// path was relative.
    Changed {
        /// The path the daemon reported.
        path: String,
    },
    /// `missed` events for this watch were dropped here (see the module
    /// docs for when); re-read the watched subtree to catch up.
    Overflow {
        /// How many events were dropped at this point.
        missed: u64,
    },
}

impl WatchEvent {
    /// The changed path, for [`WatchEvent::Changed`].
    pub fn path(&self) -> Option<&str> {
        match self {
            WatchEvent::Changed { path } => Some(path),
            WatchEvent::Overflow { .. } => None,
        }
    }
}

/// A watch callback. Runs on a callback thread (never two at once for one
/// watch); may make xenstore requests and may remove any watch, its own
/// included. It must not panic: the runtime cannot catch a panic in a
/// `no_std` kernel, and on the host it would end the thread with its watch
/// marked running (so removing that watch would wait for ever).
pub type Callback = Box<dyn FnMut(&WatchEvent) + Send + 'static>;

/// Starts one callback thread running [`Watches::run`].
pub(crate) type Spawner = Box<dyn Fn() -> Result<(), SpawnError> + Send + Sync>;

enum Queued {
    Changed(String),
    /// Events dropped at this point (still counting while it is the last
    /// thing queued).
    Overflow(u64),
}

struct WatchEntry {
    path: String,
    token: String,
    /// `None` while a thread runs it.
    callback: Option<Callback>,
    events: VecDeque<Queued>,
    /// Change events in `events` (markers excluded).
    queued: usize,
    /// In `ready` or being delivered: no other thread may take it.
    claimed: bool,
    /// The reader stopped waiting for this watch (see the module docs).
    stalled: bool,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct WatchStats {
    pub(crate) overflowed: u64,
    pub(crate) after_unwatch: u64,
    pub(crate) callbacks: u64,
    pub(crate) stalls: u64,
    pub(crate) reader_waits: u64,
    pub(crate) threads: usize,
}

#[derive(Default)]
struct WatchTable {
    entries: BTreeMap<WatchId, WatchEntry>,
    /// The queue depth of every entry that is not stalled: changed with
    /// every `queued` and `stalled` change, so that the reader's budget is
    /// not a scan of every watch.
    depths: depths::QueueDepths,
    /// Watches with events and no thread, in the order they became ready.
    ready: VecDeque<WatchId>,
    /// Watches whose callback runs, with the id of the thread running it.
    running: BTreeMap<WatchId, u64>,
    /// Callback threads alive (or being started), and how many of them wait
    /// for work (or are about to).
    threads: usize,
    idle: usize,
    closing: bool,
    /// Threads in `wait_idle` waiting for a callback to finish.
    unwatch_waiters: usize,
    /// Events handed to callbacks so far: the flow control's progress mark.
    handed_out: u64,
    next_id: WatchId,
    stats: WatchStats,
}

/// Tunables of watch delivery (from `Config`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WatchPolicy {
    /// Change events queued per watch.
    pub(crate) limit: usize,
    /// Callback threads at most.
    pub(crate) threads: usize,
    /// How long the reader waits for a full watch that makes no progress.
    pub(crate) stall_timeout: Duration,
}

/// The registered watches, their pending events and the callback threads.
///
/// `table` is a short lock, never held together with the connection lock,
/// and never while a callback runs or a thread is started.
pub(crate) struct Watches<P: Platform> {
    table: P::Lock<WatchTable>,
    /// Idle callback threads wait here for work; `wait_idle` waits here for
    /// a running callback to finish.
    work: P::WaitQueue,
    /// The reader waits here while a queue is full ([`flow`]).
    room: P::WaitQueue,
    /// The reader is (about to be) waiting on `room`.
    reader_waiting: AtomicBool,
    spawner: Spawner,
    policy: WatchPolicy,
}

impl<P: Platform> Watches<P> {
    /// Empty; `spawner` starts a callback thread (see [`Watches::run`]).
    pub(crate) fn new(policy: WatchPolicy, spawner: Spawner) -> Self {
        Watches {
            table: Lock::new(WatchTable::default()),
            work: WaitQueue::new(),
            room: WaitQueue::new(),
            reader_waiting: AtomicBool::new(false),
            spawner,
            policy: WatchPolicy {
                limit: policy.limit.max(1),
                threads: policy.threads.max(1),
                ..policy
            },
        }
    }

    pub(crate) fn stats(&self) -> WatchStats {
        self.table.with(|t| WatchStats {
            threads: t.threads,
            ..t.stats
        })
    }

    /// Registers a callback; returns its id and the token to send.
    pub(crate) fn add(&self, path: &str, callback: Callback) -> (WatchId, String) {
        self.table.with(|t| {
            t.next_id += 1;
            let id = t.next_id;
            let token = alloc::format!("{id:X}");
            let entry = WatchEntry {
                path: String::from(path),
                token: token.clone(),
                callback: Some(callback),
                events: VecDeque::new(),
                queued: 0,
                claimed: false,
                stalled: false,
            };
            t.entries.insert(id, entry);
            t.depths.insert(0);
            (id, token)
        })
    }

    /// Unregisters `id` and discards its queued events: from now on none of
    /// its events is queued or delivered. Returns its path and token, and
    /// its callback unless it is running (its thread drops it then).
    pub(crate) fn remove(&self, id: WatchId) -> Option<(String, String, Option<Callback>)> {
        let removed = self.table.with(|t| {
            let entry = t.entries.remove(&id)?;
            if !entry.stalled {
                t.depths.remove(entry.queued);
            }
            // A stale id left in `ready` is skipped when popped.
            Some((entry.path, entry.token, entry.callback))
        });
        // A full queue gone may let the reader go on.
        self.wake_reader();
        removed
    }

    /// (path, token) of every registered watch.
    pub(crate) fn registered(&self) -> Vec<(String, String)> {
        self.table.with(|t| {
            t.entries
                .values()
                .map(|e| (e.path.clone(), e.token.clone()))
                .collect()
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.with(|t| t.entries.is_empty())
    }

    /// Queues events from the receive side, applying the bound policy, and
    /// finds each watch that now has work a thread (starting one if none is
    /// idle and the limit allows).
    pub(crate) fn enqueue(&self, events: impl Iterator<Item = (WatchId, String)>) {
        let limit = self.policy.limit;
        let (any_ready, to_start) = self.table.with(|t| {
            let mut any_ready = false;
            for (id, path) in events {
                let Some(entry) = t.entries.get_mut(&id) else {
                    t.stats.after_unwatch += 1;
                    continue;
                };
                if entry.queued < limit {
                    if !entry.stalled {
                        t.depths.moved(entry.queued, entry.queued + 1);
                    }
                    entry.queued += 1;
                    entry.events.push_back(Queued::Changed(path));
                } else {
                    t.stats.overflowed += 1;
                    match entry.events.back_mut() {
                        Some(Queued::Overflow(missed)) => *missed += 1,
                        _ => entry.events.push_back(Queued::Overflow(1)),
                    }
                }
                if !entry.claimed {
                    entry.claimed = true;
                    t.ready.push_back(id);
                    any_ready = true;
                }
            }
            (any_ready, self.threads_to_start(t))
        });
        self.start_threads(to_start);
        if any_ready {
            self.work.wake_all();
        }
    }

    /// Stops the callback threads (queued events are not delivered) and
    /// ends the reader's wait for room.
    pub(crate) fn close(&self) {
        self.table.with(|t| t.closing = true);
        self.work.wake_all();
        self.room.wake_all();
    }

    /// Waits until no callback of `id` runs, unless it runs on the calling
    /// thread (a callback removing its own watch must not wait for itself).
    ///
    /// A callback may remove another watch: it then waits for that watch's
    /// running callback to return. Two callbacks that remove each other's
    /// watches at the same moment wait for each other for ever, as two
    /// threads taking two locks in opposite orders would.
    pub(crate) fn wait_idle(&self, id: WatchId, current_thread: u64) {
        let must_wait = self.table.with(|t| {
            let wait = t.running.get(&id).is_some_and(|&th| th != current_thread);
            if wait {
                t.unwatch_waiters += 1;
            }
            wait
        });
        if must_wait {
            self.work.wait_until(
                &mut || self.table.with(|t| !t.running.contains_key(&id)),
                None,
            );
            self.table.with(|t| t.unwatch_waiters -= 1);
        }
    }
}

#[cfg(test)]
mod tests;

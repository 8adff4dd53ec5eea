//! Watch callbacks: per-watch bounded queues and the watch thread.
//!
//! The receive side appends events here and never waits for a consumer.
//! One watch thread runs callbacks one at a time, in arrival order across
//! all watches (so per watch, in the daemon's order).
//!
//! Queue bound policy: each watch may have at most `limit` change events
//! queued. An event that does not fit is not queued; instead one
//! [`WatchEvent::Overflow`] marker is queued at that point of the sequence
//! and counts every event dropped there, until the next event that fits
//! (which is queued after the marker). The callback thus learns exactly
//! where and how many events were lost and should re-read what it watches;
//! nothing is lost silently. Markers do not count against the bound.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use super::Shared;
use crate::XsError;
use crate::core::WatchId;
use crate::platform::{Lock, Platform, SpawnError, WaitQueue};

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
    /// `missed` events for this watch did not fit its queue and were
    /// dropped here; re-read the watched subtree to catch up.
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

/// A watch callback. Runs on the watch thread; may make xenstore requests
/// and may remove its own watch.
pub type Callback = Box<dyn FnMut(&WatchEvent) + Send + 'static>;

enum Queued {
    Changed(String),
    Overflow(Arc<AtomicU64>),
}

struct WatchEntry {
    path: String,
    token: String,
    /// `None` while the watch thread runs it.
    callback: Option<Callback>,
    /// Change events queued (markers excluded).
    queued: usize,
    /// The marker still counting drops, if the last thing queued for this
    /// watch is one.
    open_overflow: Option<Arc<AtomicU64>>,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct WatchStats {
    pub(crate) overflowed: u64,
    pub(crate) after_unwatch: u64,
    pub(crate) callbacks: u64,
}

#[derive(Default)]
struct WatchTable {
    entries: BTreeMap<WatchId, WatchEntry>,
    queue: VecDeque<(WatchId, Queued)>,
    /// The watch whose callback is running.
    running: Option<WatchId>,
    thread_id: Option<u64>,
    thread_started: bool,
    closing: bool,
    /// Threads in `unwatch` waiting for a callback to finish.
    unwatch_waiters: usize,
    next_id: WatchId,
    stats: WatchStats,
}

/// The registered watches and their pending events. `table` is a short
/// lock, never held together with the connection lock, and never while a
/// callback runs.
pub(crate) struct Watches<P: Platform> {
    table: P::Lock<WatchTable>,
    /// The watch thread waits here for events; `unwatch` waits here for a
    /// running callback to finish.
    queue: P::WaitQueue,
    limit: usize,
}

impl<P: Platform> Watches<P> {
    pub(crate) fn new(limit: usize) -> Self {
        Watches {
            table: Lock::new(WatchTable::default()),
            queue: WaitQueue::new(),
            limit: limit.max(1),
        }
    }

    pub(crate) fn stats(&self) -> WatchStats {
        self.table.with(|t| t.stats)
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
                queued: 0,
                open_overflow: None,
            };
            t.entries.insert(id, entry);
            (id, token)
        })
    }

    /// Unregisters `id` and discards its queued events: from now on none of
    /// its events is queued or delivered. Returns its path and token, and
    /// its callback unless it is running (the watch thread drops it then).
    pub(crate) fn remove(&self, id: WatchId) -> Option<(String, String, Option<Callback>)> {
        self.table.with(|t| {
            let entry = t.entries.remove(&id)?;
            t.queue.retain(|(w, _)| *w != id);
            Some((entry.path, entry.token, entry.callback))
        })
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

    /// Queues events from the receive side, applying the bound policy.
    pub(crate) fn enqueue(&self, events: impl Iterator<Item = (WatchId, String)>) {
        let limit = self.limit;
        let queued_any = self.table.with(|t| {
            let before = t.queue.len();
            for (id, path) in events {
                let Some(entry) = t.entries.get_mut(&id) else {
                    t.stats.after_unwatch += 1;
                    continue;
                };
                if entry.queued < limit {
                    entry.queued += 1;
                    entry.open_overflow = None;
                    t.queue.push_back((id, Queued::Changed(path)));
                } else {
                    t.stats.overflowed += 1;
                    match &entry.open_overflow {
                        Some(count) => {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            let count = Arc::new(AtomicU64::new(1));
                            entry.open_overflow = Some(Arc::clone(&count));
                            t.queue.push_back((id, Queued::Overflow(count)));
                        }
                    }
                }
            }
            t.queue.len() > before
        });
        if queued_any {
            self.queue.wake_all();
        }
    }

    /// Stops the watch thread (queued events are not delivered).
    pub(crate) fn close(&self) {
        self.table.with(|t| t.closing = true);
        self.queue.wake_all();
    }

    /// Waits until no callback of `id` runs, unless called from the watch
    /// thread itself (a callback removing a watch must not wait for itself).
    pub(crate) fn wait_idle(&self, id: WatchId, current_thread: u64) {
        let must_wait = self.table.with(|t| {
            let wait = t.running == Some(id) && t.thread_id != Some(current_thread);
            if wait {
                t.unwatch_waiters += 1;
            }
            wait
        });
        if must_wait {
            self.queue
                .wait_until(&mut || self.table.with(|t| t.running != Some(id)), None);
            self.table.with(|t| t.unwatch_waiters -= 1);
        }
    }

    /// Starts the watch thread if it is not running.
    pub(crate) fn ensure_thread(shared: &Arc<Shared<P>>) -> Result<(), XsError> {
        let start = shared
            .watches
            .table
            .with(|t| !core::mem::replace(&mut t.thread_started, true));
        if !start {
            return Ok(());
        }
        let s = Arc::clone(shared);
        let spawned = shared
            .platform
            .spawn("xenwatch", Box::new(move || s.watches.run(&s.platform)));
        spawned.map_err(|SpawnError| {
            shared.watches.table.with(|t| t.thread_started = false);
            XsError::Spawn("xenwatch")
        })
    }

    /// The watch thread: pops events in order and runs their callbacks with
    /// no lock held.
    fn run(&self, platform: &P) {
        let me = platform.current_thread_id();
        self.table.with(|t| t.thread_id = Some(me));
        loop {
            let mut next = None;
            let mut pop = || {
                self.table.with(|t| {
                    if t.closing {
                        return true;
                    }
                    while let Some((id, queued)) = t.queue.pop_front() {
                        // `remove` purges a watch's events, so the entry is there
                        // and its callback is not running (one watch thread).
                        let Some(entry) = t.entries.get_mut(&id) else {
                            continue;
                        };
                        let event = match queued {
                            Queued::Changed(path) => {
                                entry.queued -= 1;
                                WatchEvent::Changed { path }
                            }
                            Queued::Overflow(count) => {
                                // Close the marker so later drops start a new one.
                                if entry
                                    .open_overflow
                                    .as_ref()
                                    .is_some_and(|open| Arc::ptr_eq(open, &count))
                                {
                                    entry.open_overflow = None;
                                }
                                WatchEvent::Overflow {
                                    missed: count.load(Ordering::Relaxed),
                                }
                            }
                        };
                        let Some(callback) = entry.callback.take() else {
                            continue;
                        };
                        t.running = Some(id);
                        next = Some((id, event, callback));
                        return true;
                    }
                    false
                })
            };
            self.queue.wait_until(&mut pop, None);
            let Some((id, event, mut callback)) = next else {
                return;
            };
            callback(&event);
            // Put the callback back unless its watch was removed meanwhile;
            // then drop it here, outside the lock (its drop may run user code).
            let (orphan, wake) = self.table.with(|t| {
                t.running = None;
                t.stats.callbacks += 1;
                let orphan = match t.entries.get_mut(&id) {
                    Some(entry) => {
                        entry.callback = Some(callback);
                        None
                    }
                    None => Some(callback),
                };
                (orphan, t.unwatch_waiters > 0)
            });
            drop(orphan);
            if wake {
                self.queue.wake_all();
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! Flow control: the reader reads no more than every watch queue can take,
//! and waits while one is full (see the parent module's docs for the
//! policy).

use core::sync::atomic::Ordering;

use super::{WatchTable, Watches};
use crate::platform::{Lock, Platform, WaitQueue};
use crate::wire::HEADER_LEN;

/// The fewest bytes a watch event for one of our watches takes on the
/// wire: the header, an empty path and a one-character token, each
/// NUL-terminated (our tokens are never empty).
const MIN_EVENT_BYTES: usize = HEADER_LEN + 3;

impl<P: Platform> Watches<P> {
    /// How many bytes the reader may read now (at most `max`), waiting
    /// while that is none; and whether it waited.
    ///
    /// Reading `n` bytes completes at most `1 + (n - 1) / MIN_EVENT_BYTES`
    /// events (the first may have been partly read already), so reading
    /// `free * MIN_EVENT_BYTES - 1` bytes, where `free` is the room in the
    /// fullest queue, overflows no watch. While a queue is full this waits
    /// until it is half empty, and returns `max` early if `must_read()` (a
    /// request waits for its reply, or the connection failed: what does not
    /// fit is then dropped, with markers). If the full watches' callbacks
    /// take no event for the stall timeout, those watches are marked
    /// stalled: they no longer hold reading back until they catch up.
    pub(crate) fn read_budget(
        &self,
        max: usize,
        must_read: &mut dyn FnMut() -> bool,
    ) -> (usize, bool) {
        let resume_at = (self.policy.limit / 2).max(1);
        let mut waited = false;
        loop {
            let (free, progress_mark) = self.table.with(|t| (self.min_free(t), t.handed_out));
            match free {
                None => return (max, waited),
                Some(free) if free > 0 => return (max.min(free * MIN_EVENT_BYTES - 1), waited),
                Some(_) => {}
            }
            if must_read() {
                return (max, waited);
            }
            waited = true;
            self.table.with(|t| t.stats.reader_waits += 1);
            // Set before the condition is checked, so a waker that changes
            // the state after that check sees it (SeqCst on both sides).
            self.reader_waiting.store(true, Ordering::SeqCst);
            let mut room = || {
                must_read()
                    || self
                        .table
                        .with(|t| t.closing || self.min_free(t).is_none_or(|f| f >= resume_at))
            };
            let woken = self
                .room
                .wait_until(&mut room, Some(self.policy.stall_timeout));
            self.reader_waiting.store(false, Ordering::SeqCst);
            if !woken {
                self.stall_if_stuck(progress_mark);
            }
        }
    }

    /// Wakes the reader if it waits for room (after a change that may end
    /// its wait: room made, a watch removed, a request sent).
    pub(crate) fn wake_reader(&self) {
        if self.reader_waiting.load(Ordering::SeqCst) {
            self.room.wake_all();
        }
    }

    /// The room left in the fullest queue of a watch that is not stalled
    /// (`None`: no such watch). Under `table`; O(log n) in the watches.
    fn min_free(&self, t: &WatchTable) -> Option<usize> {
        t.depths
            .deepest()
            .map(|depth| self.policy.limit.saturating_sub(depth))
    }

    /// After a wait for room timed out: if no callback took an event since
    /// `progress_mark`, marks every full watch stalled and says so once.
    fn stall_if_stuck(&self, progress_mark: u64) {
        let limit = self.policy.limit;
        let stalled = self.table.with(|t| {
            if t.handed_out != progress_mark {
                return alloc::vec::Vec::new();
            }
            let mut paths = alloc::vec::Vec::new();
            // A scan, but only after the reader waited the stall timeout.
            for entry in t.entries.values_mut() {
                if !entry.stalled && entry.queued >= limit {
                    entry.stalled = true;
                    t.depths.remove(entry.queued);
                    paths.push(entry.path.clone());
                }
            }
            t.stats.stalls += paths.len() as u64;
            paths
        });
        if !stalled.is_empty() {
            log::warn!(
                "xenstore: watch callbacks for {stalled:?} took no event for {:?} with full \
                 queues: reading goes on, their excess events are dropped (overflow markers)",
                self.policy.stall_timeout
            );
        }
    }
}

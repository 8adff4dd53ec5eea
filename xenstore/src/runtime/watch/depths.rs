//! How full the watch queues are, kept as a multiset of queue depths so
//! that the reader learns the fullest queue in O(log n) per read instead of
//! scanning every watch: with 10,000 watches registered that scan made
//! every request slower (measured by `./run-bench.sh --scaling`).

use alloc::collections::BTreeMap;

/// The queue depths (change events queued) of the watches that hold the
/// reader back: every registered watch that is not stalled counts once.
#[derive(Default)]
pub(super) struct QueueDepths {
    /// depth -> how many watches have it (never 0).
    counts: BTreeMap<usize, usize>,
}

impl QueueDepths {
    /// A watch at `depth` starts counting.
    pub(super) fn insert(&mut self, depth: usize) {
        *self.counts.entry(depth).or_insert(0) += 1;
    }

    /// A watch at `depth` stops counting (removed, or stalled).
    pub(super) fn remove(&mut self, depth: usize) {
        if let Some(n) = self.counts.get_mut(&depth) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&depth);
            }
        }
    }

    /// A counted watch went from depth `from` to `to`.
    pub(super) fn moved(&mut self, from: usize, to: usize) {
        self.remove(from);
        self.insert(to);
    }

    /// The deepest queue among the counted watches (`None`: none counts).
    pub(super) fn deepest(&self) -> Option<usize> {
        self.counts.keys().next_back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deepest_follows_inserts_moves_and_removals() {
        let mut d = QueueDepths::default();
        assert_eq!(d.deepest(), None);
        d.insert(0);
        d.insert(0);
        assert_eq!(d.deepest(), Some(0));
        d.moved(0, 3);
        assert_eq!(d.deepest(), Some(3));
        d.insert(3);
        d.moved(3, 2);
        assert_eq!(d.deepest(), Some(3), "one watch is still at 3");
        d.remove(3);
        assert_eq!(d.deepest(), Some(2));
        d.remove(2);
        d.remove(0);
        assert_eq!(d.deepest(), None);
    }
}

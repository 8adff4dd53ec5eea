//! The requests in flight, by request id.
//!
//! A vector searched linearly: a connection has a handful of requests in
//! flight (one per waiting thread, a bounded window per pipelined batch), and
//! unlike a tree map a vector keeps its allocation from request to request.
//!
//! Entries stay in the order they were inserted, oldest first: the daemon
//! answers one connection's requests in order, so the oldest entry is the
//! next to be answered (the runtime hands the reader token to the oldest
//! entry that still has a waiter).

use alloc::vec::Vec;

/// A map from request id to `T`, for small counts.
pub(crate) struct InFlight<T> {
    entries: Vec<(u32, T)>,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight {
            entries: Vec::new(),
        }
    }
}

impl<T> InFlight<T> {
    pub(crate) fn insert(&mut self, id: u32, value: T) {
        debug_assert!(!self.contains(id), "request id {id} is already in flight");
        self.entries.push((id, value));
    }

    pub(crate) fn contains(&self, id: u32) -> bool {
        self.entries.iter().any(|(i, _)| *i == id)
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.entries
            .iter_mut()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v)
    }

    /// Removes `id`'s entry, keeping the others in order. Replies come in
    /// order, so the entry removed is almost always the first: the shift is
    /// over a handful of entries at most.
    pub(crate) fn remove(&mut self, id: u32) -> Option<T> {
        let at = self.entries.iter().position(|(i, _)| *i == id)?;
        Some(self.entries.remove(at).1)
    }

    /// The values, oldest first.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Removes and returns every entry, keeping the allocation.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.entries.drain(..).map(|(_, v)| v)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

//! A free list of grant references over caller-provided storage (no allocation, O(1) both
//! ways, two bytes per reference).
//!
//! `next[r]` is the free reference after `r` while `r` is free, and `IN_USE` while it is
//! handed out, which is what catches a double free or a release of a reference never
//! allocated.

/// Marks a reference that is handed out (or reserved).
const IN_USE: u16 = 0xFFFE;
/// Ends the list.
const END: u16 = 0xFFFF;
/// Most references one list can track (the two sentinels are not references).
pub const MAX_REFS: usize = IN_USE as usize;

/// Why a reference could not be released.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReleaseError {
    /// Beyond the list, or one of the reserved references below `first`.
    OutOfRange,
    /// Already free: a double release.
    NotAllocated,
}

impl core::fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::OutOfRange => "grant reference out of range or reserved",
            Self::NotAllocated => "grant reference already free (double release)",
        })
    }
}

impl core::error::Error for ReleaseError {}

/// The free grant references `first..len` of a table.
pub struct GrantRefFreeList<'a> {
    next: &'a mut [u16],
    head: u16,
    first: u16,
    free: usize,
}

impl<'a> GrantRefFreeList<'a> {
    /// A list where references `first..storage.len()` (capped at [`MAX_REFS`]) start free
    /// and the ones below `first` are reserved forever. Lowest references are handed out
    /// first.
    pub fn new(storage: &'a mut [u16], first: u16) -> Self {
        let len = storage.len().min(MAX_REFS);
        let next = &mut storage[..len];
        let first = first.min(len as u16);
        for (r, slot) in next.iter_mut().enumerate() {
            *slot = if r < first as usize {
                IN_USE
            } else if r + 1 < len {
                (r + 1) as u16
            } else {
                END
            };
        }
        let head = if (first as usize) < len { first } else { END };
        Self {
            next,
            head,
            first,
            free: len - first as usize,
        }
    }

    /// Takes the next free reference, or `None` if all are handed out.
    pub fn alloc(&mut self) -> Option<u32> {
        if self.head == END {
            return None;
        }
        let r = self.head;
        self.head = self.next[r as usize];
        self.next[r as usize] = IN_USE;
        self.free -= 1;
        Some(u32::from(r))
    }

    /// Returns `r` to the list. It becomes the next one handed out.
    pub fn release(&mut self, r: u32) -> Result<(), ReleaseError> {
        if !self.in_range(r) {
            return Err(ReleaseError::OutOfRange);
        }
        let slot = &mut self.next[r as usize];
        if *slot != IN_USE {
            return Err(ReleaseError::NotAllocated);
        }
        *slot = self.head;
        self.head = r as u16;
        self.free += 1;
        Ok(())
    }

    /// Whether `r` is a usable (not reserved) reference that is currently handed out.
    pub fn is_allocated(&self, r: u32) -> bool {
        self.in_range(r) && self.next[r as usize] == IN_USE
    }

    /// References currently free.
    pub fn free_count(&self) -> usize {
        self.free
    }

    /// One past the highest reference tracked.
    pub fn len(&self) -> usize {
        self.next.len()
    }

    /// Whether the list tracks no usable reference at all.
    pub fn is_empty(&self) -> bool {
        self.len() <= self.first as usize
    }

    fn in_range(&self, r: u32) -> bool {
        r >= u32::from(self.first) && (r as usize) < self.next.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_every_usable_reference_once_then_runs_dry() {
        let mut storage = [0u16; 12];
        let mut list = GrantRefFreeList::new(&mut storage, 8);
        assert_eq!(list.free_count(), 4);
        let got: Vec<_> = std::iter::from_fn(|| list.alloc()).collect();
        assert_eq!(
            got,
            vec![8, 9, 10, 11],
            "reserved refs 0..8 never handed out"
        );
        assert_eq!(list.alloc(), None);
        assert_eq!(list.free_count(), 0);
    }

    #[test]
    fn released_references_are_reused_lifo() {
        let mut storage = [0u16; 12];
        let mut list = GrantRefFreeList::new(&mut storage, 8);
        let (a, b) = (list.alloc().unwrap(), list.alloc().unwrap());
        list.release(a).unwrap();
        list.release(b).unwrap();
        assert_eq!(list.alloc(), Some(b));
        assert_eq!(list.alloc(), Some(a));
        assert_eq!(list.free_count(), 2);
    }

    #[test]
    fn double_and_foreign_releases_are_refused() {
        let mut storage = [0u16; 12];
        let mut list = GrantRefFreeList::new(&mut storage, 8);
        let r = list.alloc().unwrap();
        assert!(list.is_allocated(r));
        list.release(r).unwrap();
        assert_eq!(list.release(r), Err(ReleaseError::NotAllocated));
        assert_eq!(
            list.release(10),
            Err(ReleaseError::NotAllocated),
            "never allocated"
        );
        assert_eq!(list.release(1), Err(ReleaseError::OutOfRange), "reserved");
        assert_eq!(list.release(12), Err(ReleaseError::OutOfRange));
        assert_eq!(list.free_count(), 4, "refused releases change nothing");
    }

    #[test]
    fn storage_smaller_than_the_reserved_range_yields_an_empty_list() {
        let mut storage = [0u16; 4];
        let mut list = GrantRefFreeList::new(&mut storage, 8);
        assert!(list.is_empty());
        assert_eq!(list.alloc(), None);
    }

    #[test]
    fn oversized_storage_is_capped_below_the_sentinels() {
        let mut storage = vec![0u16; MAX_REFS + 10];
        let list = GrantRefFreeList::new(&mut storage, 8);
        assert_eq!(list.len(), MAX_REFS);
        assert_eq!(list.free_count(), MAX_REFS - 8);
    }
}

//! Grant table v1: letting another domain map or copy one of this guest's frames.
//!
//! Setup (once, at boot): [`ops::query_size`], then [`ops::map_frames`] to place the table's
//! frames at free guest frames, the kernel maps them, [`entries_from_ptr`] views them, and
//! [`GrantTable::new`] adds the free list. References 0..8 are reserved
//! (`GNTTAB_NR_RESERVED_ENTRIES`: the toolstack uses 0 for the console and 1 for xenstore)
//! and never handed out.

pub mod entry;
pub mod free_list;
pub mod ops;

use core::fmt;
use core::ptr::NonNull;

pub use entry::{ENTRIES_PER_FRAME, GrantEntryV1, GrantFlags};
pub use free_list::{GrantRefFreeList, ReleaseError};

pub use crate::types::GrantRef;
use crate::types::{DomId, Gfn};

/// `GNTTAB_NR_RESERVED_ENTRIES`.
pub const NR_RESERVED_ENTRIES: u16 = 8;

/// Access a grant gives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GrantAccess {
    /// The peer may only read the frame (`GTF_readonly`).
    ReadOnly,
    /// The peer may read and write the frame.
    ReadWrite,
}

/// Why a grant operation failed. The grant table is never left half-updated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GrantError {
    /// Every reference is in use.
    Exhausted,
    /// v1 entries hold 32-bit frame numbers; this frame is above 16 TiB.
    FrameTooLarge(Gfn),
    /// The peer still has the frame mapped (`GTF_reading`/`GTF_writing`): the grant stays in
    /// force and the frame must not be reused. Retry after the peer unmaps.
    StillMapped {
        /// The reference.
        gref: GrantRef,
        /// Its entry's flags as read.
        flags: GrantFlags,
    },
    /// Not a reference this table handed out (free, reserved, or out of range).
    NotGranted(GrantRef),
    /// The free list offered a reference whose entry is not invalid (stale state, e.g. left
    /// over from before a kexec). The reference is kept out of circulation.
    EntryNotFree {
        /// The reference.
        gref: GrantRef,
        /// Its entry's flags as read.
        flags: GrantFlags,
    },
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted => f.write_str("no free grant reference"),
            Self::FrameTooLarge(gfn) => write!(f, "{gfn} does not fit a v1 grant entry"),
            Self::StillMapped { gref, flags } => {
                write!(f, "{gref} still mapped by the peer ({flags:?})")
            }
            Self::NotGranted(gref) => write!(f, "{gref} is not an active grant of this table"),
            Self::EntryNotFree { gref, flags } => write!(f, "{gref} entry not free ({flags:?})"),
        }
    }
}

impl core::error::Error for GrantError {}

/// Views `nr_frames` mapped grant-table frames at `ptr` as entries.
///
/// # Safety
/// `ptr` must map, read-write, contiguously, the frames placed with [`ops::map_frames`] (or
/// returned by [`ops::setup_table`]), for `'a`, and nothing else may use that memory.
pub unsafe fn entries_from_ptr<'a>(ptr: NonNull<u8>, nr_frames: usize) -> &'a [GrantEntryV1] {
    let len = nr_frames * ENTRIES_PER_FRAME;
    // SAFETY: per the contract the memory is `nr_frames` mapped pages shared with Xen; the
    // entries are atomics (any bit pattern valid, shared mutation allowed); pages are aligned.
    unsafe { core::slice::from_raw_parts(ptr.cast::<GrantEntryV1>().as_ptr(), len) }
}

/// The guest side of a v1 grant table: entries plus the free list of references.
pub struct GrantTable<'a> {
    entries: &'a [GrantEntryV1],
    /// Guards the free list and every guest-side entry transition (publish, revoke), so that
    /// a reference is never handed out while it is being revoked. A short-hold spin lock; a
    /// leaf (nothing else is taken under it, no hypercall is made under it). Not for
    /// interrupt context: a handler that spun on it could deadlock against the thread it
    /// interrupted.
    refs: spin::Mutex<GrantRefFreeList<'a>>,
}

impl<'a> GrantTable<'a> {
    /// A table over `entries`, tracking free references in `free_storage` (one `u16` per
    /// entry; references beyond `free_storage.len()` or above 65533 are not used).
    pub fn new(entries: &'a [GrantEntryV1], free_storage: &'a mut [u16]) -> Self {
        let len = entries.len().min(free_storage.len());
        let list = GrantRefFreeList::new(&mut free_storage[..len], NR_RESERVED_ENTRIES);
        Self {
            entries,
            refs: spin::Mutex::new(list),
        }
    }

    /// Grants `domid` `access` to guest frame `gfn` and returns the reference to tell it.
    ///
    /// # Safety
    /// Until [`end_access`](Self::end_access) succeeds, `domid` may map the frame, and with
    /// [`GrantAccess::ReadWrite`] write it at any time: `gfn` must stay allocated to the
    /// caller until then, and hold no Rust object, only data it reads as shared memory.
    pub unsafe fn grant_access(
        &self,
        domid: DomId,
        gfn: Gfn,
        access: GrantAccess,
    ) -> Result<GrantRef, GrantError> {
        let frame = u32::try_from(gfn.0).map_err(|_| GrantError::FrameTooLarge(gfn))?;
        let mut refs = self.refs.lock();
        let gref = GrantRef(refs.alloc().ok_or(GrantError::Exhausted)?);
        let readonly = access == GrantAccess::ReadOnly;
        // The free list only holds references below entries.len().
        let entry = &self.entries[gref.0 as usize];
        entry
            .publish(domid.0, frame, readonly)
            .map_err(|flags| GrantError::EntryNotFree { gref, flags })?;
        Ok(gref)
    }

    /// Ends grant `gref` and returns the reference to the free list.
    ///
    /// Contract: succeeds only if the peer has the frame unmapped; otherwise
    /// [`GrantError::StillMapped`], the grant stays, and the frame must stay untouched and
    /// allocated until a later call succeeds (FreeBSD and Linux defer such frees the same way).
    pub fn end_access(&self, gref: GrantRef) -> Result<(), GrantError> {
        let mut refs = self.refs.lock();
        if !refs.is_allocated(gref.0) {
            return Err(GrantError::NotGranted(gref));
        }
        self.entries[gref.0 as usize]
            .revoke()
            .map_err(|flags| GrantError::StillMapped { gref, flags })?;
        refs.release(gref.0)
            .map_err(|_| GrantError::NotGranted(gref))
    }

    /// The entry behind `gref`, for diagnostics.
    pub fn entry(&self, gref: GrantRef) -> Option<&GrantEntryV1> {
        self.entries.get(gref.0 as usize)
    }

    /// References currently free.
    pub fn free_count(&self) -> usize {
        self.refs.lock().free_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

    /// Grants in a test: nothing ever maps the frames the tests name.
    fn grant(
        table: &GrantTable<'_>,
        domid: DomId,
        gfn: Gfn,
        access: GrantAccess,
    ) -> Result<GrantRef, GrantError> {
        // SAFETY: the entries are test memory no hypervisor reads; no peer maps `gfn`.
        unsafe { table.grant_access(domid, gfn, access) }
    }

    fn entries(n: usize) -> Vec<GrantEntryV1> {
        (0..n)
            .map(|_| GrantEntryV1 {
                flags: AtomicU16::new(0),
                domid: AtomicU16::new(0),
                frame: AtomicU32::new(0),
            })
            .collect()
    }

    #[test]
    fn grant_then_end_cycles_an_entry_through_its_states() {
        let e = entries(16);
        let mut storage = vec![0u16; 16];
        let table = GrantTable::new(&e, &mut storage);
        assert_eq!(table.free_count(), 8);
        let gref = grant(&table, DomId(0), Gfn(0x1234), GrantAccess::ReadWrite).unwrap();
        assert_eq!(gref, GrantRef(8), "first unreserved reference");
        let entry = table.entry(gref).unwrap();
        assert_eq!(entry.flags(), GrantFlags::PERMIT_ACCESS);
        assert_eq!(entry.frame.load(Ordering::Relaxed), 0x1234);
        assert_eq!(table.free_count(), 7);

        table.end_access(gref).unwrap();
        assert!(entry.flags().is_empty(), "entry invalid again");
        assert_eq!(table.free_count(), 8);
        assert_eq!(
            table.end_access(gref),
            Err(GrantError::NotGranted(gref)),
            "double end"
        );
    }

    #[test]
    fn read_only_grants_carry_gtf_readonly() {
        let e = entries(16);
        let mut storage = vec![0u16; 16];
        let table = GrantTable::new(&e, &mut storage);
        let gref = grant(&table, DomId(5), Gfn(7), GrantAccess::ReadOnly).unwrap();
        let entry = table.entry(gref).unwrap();
        assert_eq!(
            entry.flags(),
            GrantFlags::PERMIT_ACCESS | GrantFlags::READONLY
        );
        assert_eq!(entry.domid.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_mapped_grant_cannot_end_and_keeps_its_reference() {
        let e = entries(16);
        let mut storage = vec![0u16; 16];
        let table = GrantTable::new(&e, &mut storage);
        let gref = grant(&table, DomId(0), Gfn(1), GrantAccess::ReadWrite).unwrap();
        e[gref.0 as usize]
            .flags
            .fetch_or(GrantFlags::WRITING.bits(), Ordering::SeqCst);
        let err = table.end_access(gref).unwrap_err();
        assert!(matches!(err, GrantError::StillMapped { gref: g, .. } if g == gref));
        assert_eq!(table.free_count(), 7, "reference not recycled while mapped");
        e[gref.0 as usize]
            .flags
            .fetch_and(!GrantFlags::WRITING.bits(), Ordering::SeqCst);
        assert_eq!(table.end_access(gref), Ok(()));
    }

    #[test]
    fn exhaustion_and_bad_references_are_errors() {
        let e = entries(10);
        let mut storage = vec![0u16; 10];
        let table = GrantTable::new(&e, &mut storage);
        let g = |t: &GrantTable<'_>| grant(t, DomId(0), Gfn(1), GrantAccess::ReadOnly);
        assert!(g(&table).is_ok() && g(&table).is_ok());
        assert_eq!(g(&table), Err(GrantError::Exhausted));
        assert_eq!(
            table.end_access(GrantRef(1)),
            Err(GrantError::NotGranted(GrantRef(1)))
        );
        assert_eq!(
            table.end_access(GrantRef(999)),
            Err(GrantError::NotGranted(GrantRef(999)))
        );
    }

    #[test]
    fn frames_beyond_32_bits_are_refused_without_using_a_reference() {
        let e = entries(16);
        let mut storage = vec![0u16; 16];
        let table = GrantTable::new(&e, &mut storage);
        let big = Gfn(1 << 32);
        let err = grant(&table, DomId(0), big, GrantAccess::ReadWrite);
        assert_eq!(err, Err(GrantError::FrameTooLarge(big)));
        assert_eq!(table.free_count(), 8);
    }

    #[test]
    fn a_stale_entry_is_reported_and_quarantined() {
        let e = entries(10);
        e[8].flags
            .store(GrantFlags::PERMIT_ACCESS.bits(), Ordering::SeqCst); // left from before
        let mut storage = vec![0u16; 10];
        let table = GrantTable::new(&e, &mut storage);
        let err = grant(&table, DomId(0), Gfn(1), GrantAccess::ReadOnly).unwrap_err();
        assert!(matches!(
            err,
            GrantError::EntryNotFree {
                gref: GrantRef(8),
                ..
            }
        ));
        let next = grant(&table, DomId(0), Gfn(1), GrantAccess::ReadOnly).unwrap();
        assert_eq!(
            next,
            GrantRef(9),
            "the stale reference is not offered again"
        );
    }

    #[test]
    fn entries_view_covers_whole_frames() {
        #[repr(C, align(4096))]
        struct TwoFrames([u8; 8192]);
        let mut mem = Box::new(TwoFrames([0; 8192]));
        let ptr = NonNull::new(mem.0.as_mut_ptr()).unwrap();
        // SAFETY: the buffer is two aligned "frames" owned by this test.
        let view = unsafe { entries_from_ptr(ptr, 2) };
        assert_eq!(view.len(), 1024);
        view[513].frame.store(0xdead_beef, Ordering::Relaxed);
        assert_eq!(
            &mem.0[513 * 8 + 4..513 * 8 + 8],
            &0xdead_beef_u32.to_le_bytes()
        );
    }
}

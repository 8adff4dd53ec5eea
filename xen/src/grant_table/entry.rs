//! `struct grant_entry_v1` and its two guest-side transitions (`grant_table.h`).
//!
//! Introducing a grant: write `frame` and `domid`, then a write barrier, then `flags`;
//! Xen may use the entry the moment the type bits appear, so they go last (a `Release` store
//! orders the earlier writes before it; on x86 that is a compiler barrier).
//!
//! Ending a grant: read `flags`; if Xen has set `GTF_reading`/`GTF_writing` the peer still
//! has the frame mapped and the grant cannot be ended; otherwise `cmpxchg(flags, old, 0)`,
//! retrying if Xen changed the flags in between. The compare-exchange is what makes it safe:
//! a peer mapping the frame at the same moment either lands before (and the exchange fails)
//! or finds the entry invalid.

use bitflags::bitflags;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

bitflags! {
    /// `GTF_*` flags of a v1 entry.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub struct GrantFlags: u16 {
        /// Type `GTF_permit_access`: `domid` may map/copy `frame`.
        const PERMIT_ACCESS = 1;
        /// Type `GTF_accept_transfer`.
        const ACCEPT_TRANSFER = 2;
        /// Both type bits (`GTF_type_mask`); 3 is `GTF_transitive`.
        const TYPE_MASK = 3;
        /// `GTF_readonly` (guest): read-only access only.
        const READONLY = 1 << 2;
        /// `GTF_reading` (Xen): currently mapped for reading by `domid`.
        const READING = 1 << 3;
        /// `GTF_writing` (Xen): currently mapped for writing by `domid`.
        const WRITING = 1 << 4;
        /// Cache attribute `GTF_PWT`.
        const PWT = 1 << 5;
        /// Cache attribute `GTF_PCD`.
        const PCD = 1 << 6;
        /// Cache attribute `GTF_PAT`.
        const PAT = 1 << 7;
        /// `GTF_sub_page` (v2 semantics, never set by this crate).
        const SUB_PAGE = 1 << 8;
        const _ = !0;
    }
}

/// `struct grant_entry_v1`: 8 bytes, 512 per 4 KiB frame. Shared with Xen, hence atomics.
#[repr(C)]
pub struct GrantEntryV1 {
    /// `GTF_*`; written by both the guest and Xen.
    pub flags: AtomicU16,
    /// The domain being granted access (guest-written).
    pub domid: AtomicU16,
    /// The granted guest frame (guest-written); v1 frames are 32 bits.
    pub frame: AtomicU32,
}

/// Entries per 4 KiB grant-table frame.
pub const ENTRIES_PER_FRAME: usize = crate::types::PAGE_SIZE / core::mem::size_of::<GrantEntryV1>();

/// How many times [`GrantEntryV1::revoke`] retries when Xen keeps changing the flags.
const REVOKE_ATTEMPTS: usize = 64;

impl GrantEntryV1 {
    /// The current flags.
    pub fn flags(&self) -> GrantFlags {
        GrantFlags::from_bits_retain(self.flags.load(Ordering::Acquire))
    }

    /// Makes the entry grant `domid` access to `frame`.
    ///
    /// Returns the flags found, without writing anything, if the entry is not invalid (0):
    /// another grant lives there.
    pub(crate) fn publish(&self, domid: u16, frame: u32, readonly: bool) -> Result<(), GrantFlags> {
        let current = self.flags();
        if !current.is_empty() {
            return Err(current);
        }
        self.frame.store(frame, Ordering::Relaxed);
        self.domid.store(domid, Ordering::Relaxed);
        let mut flags = GrantFlags::PERMIT_ACCESS;
        flags.set(GrantFlags::READONLY, readonly);
        // Release: `frame` and `domid` are visible before Xen can see a valid type.
        self.flags.store(flags.bits(), Ordering::Release);
        Ok(())
    }

    /// Ends the grant if the peer has nothing mapped. On refusal returns the flags seen
    /// (with `READING` and/or `WRITING` set); the grant is then still in force.
    pub(crate) fn revoke(&self) -> Result<(), GrantFlags> {
        let busy = GrantFlags::READING | GrantFlags::WRITING;
        let mut seen = self.flags.load(Ordering::Acquire);
        for _ in 0..REVOKE_ATTEMPTS {
            if GrantFlags::from_bits_retain(seen).intersects(busy) {
                return Err(GrantFlags::from_bits_retain(seen));
            }
            match self
                .flags
                .compare_exchange(seen, 0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(now) => seen = now,
            }
        }
        // Xen changed the flags 64 times in a row: treat as still in use rather than spin.
        Err(GrantFlags::from_bits_retain(seen) | busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    fn entry() -> GrantEntryV1 {
        GrantEntryV1 {
            flags: AtomicU16::new(0),
            domid: AtomicU16::new(0),
            frame: AtomicU32::new(0),
        }
    }

    #[test]
    fn entry_matches_the_header_layout() {
        assert_eq!(size_of::<GrantEntryV1>(), 8);
        assert_eq!(offset_of!(GrantEntryV1, flags), 0);
        assert_eq!(offset_of!(GrantEntryV1, domid), 2);
        assert_eq!(offset_of!(GrantEntryV1, frame), 4);
        assert_eq!(ENTRIES_PER_FRAME, 512);
    }

    #[test]
    fn publish_sets_frame_domid_and_permit_flags() {
        let e = entry();
        e.publish(0, 0xabcde, false).unwrap();
        assert_eq!(e.flags(), GrantFlags::PERMIT_ACCESS);
        assert_eq!(
            (
                e.domid.load(Ordering::Relaxed),
                e.frame.load(Ordering::Relaxed)
            ),
            (0, 0xabcde)
        );
        let ro = entry();
        ro.publish(3, 1, true).unwrap();
        assert_eq!(ro.flags(), GrantFlags::PERMIT_ACCESS | GrantFlags::READONLY);
    }

    #[test]
    fn publish_refuses_an_entry_in_use_and_leaves_it_alone() {
        let e = entry();
        e.publish(0, 10, false).unwrap();
        assert_eq!(e.publish(5, 20, true), Err(GrantFlags::PERMIT_ACCESS));
        assert_eq!(
            (
                e.domid.load(Ordering::Relaxed),
                e.frame.load(Ordering::Relaxed)
            ),
            (0, 10)
        );
    }

    #[test]
    fn revoke_succeeds_only_when_the_peer_has_nothing_mapped() {
        let e = entry();
        e.publish(0, 10, false).unwrap();
        // Xen marks the entry mapped for writing (the backend mapped it).
        e.flags
            .fetch_or(GrantFlags::WRITING.bits(), Ordering::SeqCst);
        let refused = e.revoke().unwrap_err();
        assert!(refused.contains(GrantFlags::WRITING));
        assert_eq!(
            e.flags(),
            GrantFlags::PERMIT_ACCESS | GrantFlags::WRITING,
            "still granted"
        );
        // The backend unmaps; now the grant can end.
        e.flags
            .fetch_and(!GrantFlags::WRITING.bits(), Ordering::SeqCst);
        assert_eq!(e.revoke(), Ok(()));
        assert!(e.flags().is_empty());
        // Reading mappings block it the same way.
        e.publish(0, 10, true).unwrap();
        e.flags
            .fetch_or(GrantFlags::READING.bits(), Ordering::SeqCst);
        assert!(e.revoke().unwrap_err().contains(GrantFlags::READING));
    }
}

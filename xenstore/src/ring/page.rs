//! The shared page (`struct xenstore_domain_interface`) and the index
//! arithmetic of its two 1 KiB rings.
//!
//! Layout (byte offsets): `req[1024]` at 0, `rsp[1024]` at 1024, then u32
//! `req_cons` 2048, `req_prod` 2052, `rsp_cons` 2056, `rsp_prod` 2060,
//! `server_features` 2064, `connection` 2068, `error` 2072 and, in newer
//! Xen, `evtchn_port` 2076. Indexes are free-running `u32`s masked with
//! `& 1023`; they need not start at 0 and wrap at `u32::MAX`.
//!
//! The page is written concurrently by the other side (another domain, or
//! a host process in tests), so every access is volatile, through the
//! `volatile` crate's [`VolatilePtr`] to the page's `#[repr(C)]` layout:
//! the compiler must neither cache nor elide it. Ordering between the data
//! and the indexes is the ring transport's job (see `ring::RingTransport`).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::ptr::NonNull;

use volatile::{VolatilePtr, map_field};

/// Size of each ring (`XENSTORE_RING_SIZE`).
pub const RING_SIZE: u32 = 1024;
/// Size of the shared page.
pub const PAGE_SIZE: usize = 4096;

/// `struct xenstore_domain_interface` up to `error` (the `evtchn_port`
/// after it is not used here).
#[repr(C)]
struct Interface {
    req: [u8; RING_SIZE as usize],
    rsp: [u8; RING_SIZE as usize],
    req_cons: u32,
    req_prod: u32,
    rsp_cons: u32,
    rsp_prod: u32,
    server_features: u32,
    connection: u32,
    error: u32,
}

/// Whether `len` bytes at `offset` stay inside one ring.
fn fits_in_ring(offset: usize, len: usize) -> bool {
    offset
        .checked_add(len)
        .is_some_and(|end| end <= RING_SIZE as usize)
}

/// One of the two rings of [`Interface`].
type Ring<'a> = VolatilePtr<'a, [u8; RING_SIZE as usize]>;

/// `server_features` bit: the daemon supports ring reconnection.
pub const FEATURE_RECONNECTION: u32 = 1;
/// `server_features` bit: the daemon reports errors in the `error` field.
pub const FEATURE_ERROR: u32 = 2;
/// `connection` value: the steady state (only the server sets it).
pub const CONNECTED: u32 = 0;
/// `connection` value: the guest asks for a reconnection.
pub const RECONNECT: u32 = 1;

/// Whether a consumer/producer pair is sane: the producer can be at most
/// one ring ahead. Anything else is corruption (or hostility) and the data
/// between them must not be trusted.
pub fn indexes_valid(cons: u32, prod: u32) -> bool {
    prod.wrapping_sub(cons) <= RING_SIZE
}

/// The contiguous free region a producer may write at `prod`: (offset in
/// the ring, length). Length 0 when the ring is full. Indexes must be valid.
pub fn output_chunk(cons: u32, prod: u32) -> (usize, usize) {
    let offset = prod & (RING_SIZE - 1);
    let free = RING_SIZE - prod.wrapping_sub(cons);
    (offset as usize, (RING_SIZE - offset).min(free) as usize)
}

/// The contiguous readable region a consumer may read at `cons`: (offset
/// in the ring, length). Length 0 when empty. Indexes must be valid.
pub fn input_chunk(cons: u32, prod: u32) -> (usize, usize) {
    let offset = cons & (RING_SIZE - 1);
    let used = prod.wrapping_sub(cons);
    (offset as usize, (RING_SIZE - offset).min(used) as usize)
}

#[repr(C, align(4096))]
struct PageMemory(UnsafeCell<[u8; PAGE_SIZE]>);

/// A page-sized, page-aligned buffer in our own memory: the shared page of
/// tests and host simulations, where both sides run in one process.
pub struct LocalPage(Box<PageMemory>);

// SAFETY: the bytes sit in an UnsafeCell and are only accessed through
// `RingPage`'s volatile operations, which is how shared memory is used.
unsafe impl Sync for LocalPage {}
// SAFETY: as above; no thread-affine state.
unsafe impl Send for LocalPage {}

impl LocalPage {
    /// A zeroed page (indexes 0, CONNECTED, no features).
    pub fn new() -> Arc<LocalPage> {
        Arc::new(LocalPage(Box::new(PageMemory(UnsafeCell::new(
            [0; PAGE_SIZE],
        )))))
    }

    /// A copy of the page's bytes.
    pub fn snapshot(&self) -> [u8; PAGE_SIZE] {
        let page = NonNull::from(&self.0.0).cast::<[u8; PAGE_SIZE]>();
        // SAFETY: the page is ours and lives while `self` does; volatile
        // because the other side may be writing (a torn copy is what a
        // snapshot of a live page is).
        unsafe { VolatilePtr::new(page) }.read()
    }
}

/// A mapped xenstore page. All access goes through volatile reads and
/// writes.
pub struct RingPage {
    base: NonNull<Interface>,
    /// Keeps a [`LocalPage`] alive; `None` for a mapping owned elsewhere.
    _owner: Option<Arc<LocalPage>>,
}

impl core::fmt::Debug for RingPage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RingPage")
            .field("base", &self.base)
            .finish()
    }
}

// SAFETY: the page is memory shared with another party by design; every
// access is volatile and `RingPage` itself holds no thread-affine state.
// Which thread may produce or consume is decided by the ring transport's
// callers (the runtime has one sender at a time and one reader-token holder).
unsafe impl Send for RingPage {}
// SAFETY: as above; concurrent volatile access is what the page is for.
unsafe impl Sync for RingPage {}

impl RingPage {
    /// Wraps a mapped page.
    ///
    /// # Safety
    /// `base` must point to [`PAGE_SIZE`] bytes, 4-byte aligned, valid for
    /// reads and writes for as long as the `RingPage` (and anything built on
    /// it) lives, and not accessed by this program other than through
    /// `RingPage`s (the peer on the other side of the page is expected).
    pub unsafe fn new(base: NonNull<u8>) -> RingPage {
        RingPage {
            base: base.cast(),
            _owner: None,
        }
    }

    /// A view of a [`LocalPage`] (several views may share one page: the
    /// client's and the simulated peer's).
    pub fn local(page: &Arc<LocalPage>) -> RingPage {
        // Mutation through this pointer is allowed: it points into an UnsafeCell.
        let base = NonNull::from(&page.0.0).cast::<Interface>();
        RingPage {
            base,
            _owner: Some(Arc::clone(page)),
        }
    }

    /// The page, for volatile access.
    fn interface(&self) -> VolatilePtr<'_, Interface> {
        // SAFETY: `new`'s contract (or a `LocalPage` kept alive by `_owner`):
        // the page is mapped, aligned and ours to access for as long as
        // `self` lives, which bounds the returned pointer's lifetime.
        unsafe { VolatilePtr::new(self.base) }
    }

    /// Byte `index` of `ring`. Panics if `index` is outside the ring: the
    /// offsets come from [`output_chunk`]/[`input_chunk`], never from the peer.
    fn ring_byte(ring: Ring<'_>, index: usize) -> VolatilePtr<'_, u8> {
        assert!(index < RING_SIZE as usize, "ring access out of bounds");
        // SAFETY: `index` is inside the array `ring` points to, so the byte
        // is valid for volatile access as long as `ring` is.
        unsafe { ring.map(|bytes| bytes.cast::<u8>().add(index)) }
    }

    /// Copies `out.len()` bytes from `ring` at `offset` (no wrap).
    fn copy_out(ring: Ring<'_>, offset: usize, out: &mut [u8]) {
        // Checked once here, the per-byte check in `ring_byte` compiles away
        // and the loop is the plain byte copy it was before `volatile`.
        assert!(fits_in_ring(offset, out.len()), "ring read out of bounds");
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = Self::ring_byte(ring, offset + i).read();
        }
    }

    /// Copies `data` into `ring` at `offset` (no wrap).
    fn copy_in(ring: Ring<'_>, offset: usize, data: &[u8]) {
        assert!(fits_in_ring(offset, data.len()), "ring write out of bounds");
        for (i, byte) in data.iter().enumerate() {
            Self::ring_byte(ring, offset + i).write(*byte);
        }
    }

    /// Reads request-ring bytes at `offset` (the daemon's side; for peers
    /// in tests). Panics if the range leaves the ring: offsets come from
    /// [`output_chunk`]/[`input_chunk`], never from the peer.
    pub fn read_req(&self, offset: usize, out: &mut [u8]) {
        let page = self.interface();
        Self::copy_out(map_field!(page.req), offset, out)
    }

    /// Writes request-ring bytes at `offset`. Panics as [`RingPage::read_req`].
    pub fn write_req(&self, offset: usize, data: &[u8]) {
        let page = self.interface();
        Self::copy_in(map_field!(page.req), offset, data)
    }

    /// Reads response-ring bytes at `offset`. Panics as [`RingPage::read_req`].
    pub fn read_rsp(&self, offset: usize, out: &mut [u8]) {
        let page = self.interface();
        Self::copy_out(map_field!(page.rsp), offset, out)
    }

    /// Writes response-ring bytes at `offset` (the daemon's side; for peers
    /// in tests). Panics as [`RingPage::read_req`].
    pub fn write_rsp(&self, offset: usize, data: &[u8]) {
        let page = self.interface();
        Self::copy_in(map_field!(page.rsp), offset, data)
    }

    /// `req_cons` (written by the daemon).
    pub fn req_cons(&self) -> u32 {
        let page = self.interface();
        map_field!(page.req_cons).read()
    }
    /// `req_prod` (written by us).
    pub fn req_prod(&self) -> u32 {
        let page = self.interface();
        map_field!(page.req_prod).read()
    }
    /// `rsp_cons` (written by us).
    pub fn rsp_cons(&self) -> u32 {
        let page = self.interface();
        map_field!(page.rsp_cons).read()
    }
    /// `rsp_prod` (written by the daemon).
    pub fn rsp_prod(&self) -> u32 {
        let page = self.interface();
        map_field!(page.rsp_prod).read()
    }
    /// Sets `req_cons` (the daemon's field: for peers and fault injection).
    pub fn set_req_cons(&self, v: u32) {
        let page = self.interface();
        map_field!(page.req_cons).write(v)
    }
    /// Sets `req_prod`.
    pub fn set_req_prod(&self, v: u32) {
        let page = self.interface();
        map_field!(page.req_prod).write(v)
    }
    /// Sets `rsp_cons`.
    pub fn set_rsp_cons(&self, v: u32) {
        let page = self.interface();
        map_field!(page.rsp_cons).write(v)
    }
    /// Sets `rsp_prod` (the daemon's field: for peers and fault injection).
    pub fn set_rsp_prod(&self, v: u32) {
        let page = self.interface();
        map_field!(page.rsp_prod).write(v)
    }
    /// `server_features` ([`FEATURE_RECONNECTION`], [`FEATURE_ERROR`], ...;
    /// unknown bits are ignored).
    pub fn server_features(&self) -> u32 {
        let page = self.interface();
        map_field!(page.server_features).read()
    }
    /// Sets `server_features` (the daemon's field: for peers in tests).
    pub fn set_server_features(&self, v: u32) {
        let page = self.interface();
        map_field!(page.server_features).write(v)
    }
    /// `connection`: [`CONNECTED`] or [`RECONNECT`].
    pub fn connection(&self) -> u32 {
        let page = self.interface();
        map_field!(page.connection).read()
    }
    /// Sets `connection`.
    pub fn set_connection(&self, v: u32) {
        let page = self.interface();
        map_field!(page.connection).write(v)
    }
    /// `error`: 0 none, 1 COMM, 2 RINGIDX, 3 PROTO (valid only with
    /// [`FEATURE_ERROR`]).
    pub fn error(&self) -> u32 {
        let page = self.interface();
        map_field!(page.error).read()
    }
    /// Sets `error` (the daemon's field: for peers in tests).
    pub fn set_error(&self, v: u32) {
        let page = self.interface();
        map_field!(page.error).write(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_sanity_allows_at_most_one_ring_of_gap() {
        assert!(indexes_valid(0, 0));
        assert!(indexes_valid(0, 1024));
        assert!(!indexes_valid(0, 1025));
        assert!(
            !indexes_valid(5, 4),
            "producer behind consumer is a gap of ~4G"
        );
        assert!(indexes_valid(u32::MAX - 10, 5), "wrap-around is fine");
        assert!(!indexes_valid(u32::MAX - 1100, 5));
    }

    #[test]
    fn chunks_stop_at_the_ring_end_and_respect_free_space() {
        assert_eq!(output_chunk(0, 0), (0, 1024));
        assert_eq!(output_chunk(0, 1024), (0, 0), "full");
        assert_eq!(output_chunk(1000, 1020), (1020, 4), "stops at the ring end");
        assert_eq!(output_chunk(u32::MAX - 3, u32::MAX - 3), (1020, 4));
        assert_eq!(
            output_chunk(u32::MAX - 3, 0),
            (0, 1020),
            "after wrapping: 4 used"
        );
        assert_eq!(input_chunk(0, 0), (0, 0), "empty");
        assert_eq!(input_chunk(1020, 1030), (1020, 4));
        assert_eq!(input_chunk(u32::MAX - 1, 3), (1022, 2));
        assert_eq!(input_chunk(0, 3), (0, 3));
    }

    #[test]
    fn the_layout_is_xs_wire_h_s() {
        use core::mem::offset_of;
        assert_eq!(offset_of!(Interface, req), 0);
        assert_eq!(offset_of!(Interface, rsp), 1024);
        assert_eq!(offset_of!(Interface, req_cons), 2048);
        assert_eq!(offset_of!(Interface, error), 2072);
        assert!(core::mem::size_of::<Interface>() <= PAGE_SIZE);
    }

    #[test]
    fn fields_sit_at_their_xs_wire_h_offsets() {
        let local = LocalPage::new();
        let page = RingPage::local(&local);
        page.set_req_cons(1);
        page.set_req_prod(2);
        page.set_rsp_cons(3);
        page.set_rsp_prod(4);
        page.set_server_features(5);
        page.set_connection(6);
        page.set_error(7);
        let bytes = local.snapshot();
        let word = |off: usize| u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
        let got: [u32; 7] = [2048, 2052, 2056, 2060, 2064, 2068, 2072].map(word);
        assert_eq!(got, [1, 2, 3, 4, 5, 6, 7]);
    }
}

//! The vchan shared page and its two byte rings, wire-compatible with
//! Xen's libxenvchan (`public/io/libxenvchan.h`, Xen 4.17).
//!
//! The server grants one page holding `struct vchan_interface`: two index
//! pairs (`left`: client writes, server reads; `right`: the reverse), the
//! two ring orders, a liveness byte per side (0 gone, 1 connected, 2 client
//! not yet connected) and a notify byte per side, then the grant references
//! of any ring that does not fit in the page. A ring of order 10 lives at
//! offset 1024 of that page, order 11 at 2048 (only one ring may be in the
//! page), order 12..=20 in `2^(order-12)` pages of their own.
//!
//! Notification is asked for, not automatic: a side that is about to wait
//! sets a bit in the *peer's* notify byte (`NOTIFY_WRITE`: tell me when you
//! write; `NOTIFY_READ`: tell me when you consume); a side that moved an
//! index clears that bit in its *own* byte and signals the event channel
//! only if it was set. [`Endpoint`] does the ring half of that; whoever
//! owns the event channel sends the event when an operation says so.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, Ordering, fence};

use crate::types::PAGE_SIZE;

/// Order of the ring at [`SMALL_RING_OFFSET`].
pub const SMALL_RING_ORDER: u16 = 10;
/// Order of the ring at [`LARGE_RING_OFFSET`].
pub const LARGE_RING_ORDER: u16 = 11;
/// Where an order-10 ring starts in the shared page.
pub const SMALL_RING_OFFSET: usize = 1024;
/// Where an order-11 ring starts in the shared page.
pub const LARGE_RING_OFFSET: usize = 2048;
/// The smallest order with pages of its own.
pub const PAGE_RING_ORDER: u16 = 12;
/// The largest order libxenvchan accepts (1 MiB).
pub const MAX_RING_ORDER: u16 = 20;
/// Notify bit: data was written.
pub const NOTIFY_WRITE: u8 = 1;
/// Notify bit: data was consumed.
pub const NOTIFY_READ: u8 = 2;

/// Byte offsets in `struct vchan_interface`.
pub mod offset {
    /// `left.cons`.
    pub const LEFT_CONS: usize = 0;
    /// `left.prod`.
    pub const LEFT_PROD: usize = 4;
    /// `right.cons`.
    pub const RIGHT_CONS: usize = 8;
    /// `right.prod`.
    pub const RIGHT_PROD: usize = 12;
    /// `left_order` (u16).
    pub const LEFT_ORDER: usize = 16;
    /// `right_order` (u16).
    pub const RIGHT_ORDER: usize = 18;
    /// `cli_live` (u8).
    pub const CLI_LIVE: usize = 20;
    /// `srv_live` (u8).
    pub const SRV_LIVE: usize = 21;
    /// `cli_notify` (u8).
    pub const CLI_NOTIFY: usize = 22;
    /// `srv_notify` (u8).
    pub const SRV_NOTIFY: usize = 23;
    /// `grants[]` (u32 each): left's pages, then right's.
    pub const GRANTS: usize = 24;
}

/// Which end of a vchan this is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// Granted the page, published it in xenstore; reads `left`.
    Server,
    /// Mapped the page; writes `left`.
    Client,
}

/// A side's liveness byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Liveness {
    /// 0: closed or exited.
    Gone,
    /// 1: connected.
    Connected,
    /// 2 (the client's before it connects), or any value the peer should not write.
    NotYet,
}

impl Liveness {
    fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::Gone,
            1 => Self::Connected,
            _ => Self::NotYet,
        }
    }
}

/// Where a ring of some order lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Placement {
    /// In the shared page at this offset.
    InPage(usize),
    /// In this many granted pages of its own.
    Pages(usize),
}

/// Why ring orders cannot be used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OrderError {
    /// A requested minimum over 1 MiB.
    TooLarge(usize),
    /// The page announces orders libxenvchan never makes (out of 10..=20,
    /// both in the page, or grant lists that overlap a ring).
    Invalid {
        /// `left_order` as read.
        left: u16,
        /// `right_order` as read.
        right: u16,
    },
}

/// Where a ring of `order` lives (`order` must be valid: 10..=20).
pub const fn placement(order: u16) -> Placement {
    match order {
        SMALL_RING_ORDER => Placement::InPage(SMALL_RING_OFFSET),
        LARGE_RING_ORDER => Placement::InPage(LARGE_RING_OFFSET),
        o => Placement::Pages(1 << (o - PAGE_RING_ORDER)),
    }
}

fn pages_of(order: u16) -> usize {
    match placement(order) {
        Placement::InPage(_) => 0,
        Placement::Pages(n) => n,
    }
}

fn min_order(bytes: usize) -> u16 {
    let mut order = PAGE_RING_ORDER;
    while bytes > 1 << order {
        order += 1;
    }
    order
}

/// The orders a server picks for rings of at least `left_min` (client to
/// server) and `right_min` bytes, as libxenvchan's server does: in-page
/// rings where they fit, else the smallest page ring.
pub fn server_orders(left_min: usize, right_min: usize) -> Result<(u16, u16), OrderError> {
    let max = 1usize << MAX_RING_ORDER;
    for min in [left_min, right_min] {
        if min > max {
            return Err(OrderError::TooLarge(min));
        }
    }
    let (small, large) = (1usize << SMALL_RING_ORDER, 1usize << LARGE_RING_ORDER);
    let (mut left, mut right) = (min_order(left_min), min_order(right_min));
    if left_min <= small && right_min <= large {
        (left, right) = (SMALL_RING_ORDER, LARGE_RING_ORDER);
    } else if left_min <= large && right_min <= small {
        (left, right) = (LARGE_RING_ORDER, SMALL_RING_ORDER);
    } else if left_min <= large {
        left = LARGE_RING_ORDER;
    } else if right_min <= large {
        right = LARGE_RING_ORDER;
    }
    Ok((left, right))
}

/// Checks orders read from a page a server shared: what libxenvchan's
/// client checks, plus that the grant list stays clear of the in-page ring
/// and inside the page (so a bad peer cannot make us read past it).
pub fn check_orders(left: u16, right: u16) -> Result<(), OrderError> {
    let bad = OrderError::Invalid { left, right };
    let valid = |o: u16| (SMALL_RING_ORDER..=MAX_RING_ORDER).contains(&o);
    if !valid(left) || !valid(right) || (left == right && left < PAGE_RING_ORDER) {
        return Err(bad);
    }
    let limit = match (placement(left), placement(right)) {
        (Placement::InPage(a), Placement::InPage(b)) => a.min(b),
        (Placement::InPage(a), _) | (_, Placement::InPage(a)) => a,
        _ => PAGE_SIZE,
    };
    let end = offset::GRANTS + 4 * (pages_of(left) + pages_of(right));
    if end > limit {
        return Err(bad);
    }
    Ok(())
}

/// The shared page, seen through atomics (the peer writes it concurrently).
#[derive(Clone, Copy)]
pub struct Interface {
    base: NonNull<u8>,
}

// SAFETY: all access is atomic or volatile; the page is shared memory by design.
unsafe impl Send for Interface {}
// SAFETY: as above.
unsafe impl Sync for Interface {}

impl Interface {
    /// Views the page at `base`.
    ///
    /// # Safety
    /// `base` must map a whole page, read-write, for as long as this view
    /// and every [`Endpoint`] made from it are used, holding no Rust object
    /// (shared memory only).
    pub unsafe fn from_ptr(base: NonNull<u8>) -> Self {
        Self { base }
    }

    /// The page's address.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.base
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is one of the aligned offsets inside the page (from
        // `offset` or a grant index checked by the caller); atomics allow
        // concurrent access and any bit pattern.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off).cast()) }
    }

    fn u16_at(&self, off: usize) -> &AtomicU16 {
        // SAFETY: as in `u32_at`, for the two order fields.
        unsafe { AtomicU16::from_ptr(self.base.as_ptr().add(off).cast()) }
    }

    fn u8_at(&self, off: usize) -> &AtomicU8 {
        // SAFETY: as in `u32_at`, for the live and notify bytes.
        unsafe { AtomicU8::from_ptr(self.base.as_ptr().add(off)) }
    }

    /// Server setup: zero the page, then orders, liveness (server 1,
    /// client 2) and "client, tell me when you write", as libxenvchan does.
    pub fn init_server(&self, left: u16, right: u16) {
        for off in (0..PAGE_SIZE).step_by(4) {
            self.u32_at(off).store(0, Ordering::Relaxed);
        }
        self.u16_at(offset::LEFT_ORDER)
            .store(left, Ordering::Relaxed);
        self.u16_at(offset::RIGHT_ORDER)
            .store(right, Ordering::Relaxed);
        self.u8_at(offset::CLI_LIVE).store(2, Ordering::Relaxed);
        self.u8_at(offset::SRV_LIVE).store(1, Ordering::Relaxed);
        self.u8_at(offset::CLI_NOTIFY)
            .store(NOTIFY_WRITE, Ordering::SeqCst);
    }

    /// `(left_order, right_order)` as the page says.
    pub fn orders(&self) -> (u16, u16) {
        (
            self.u16_at(offset::LEFT_ORDER).load(Ordering::Acquire),
            self.u16_at(offset::RIGHT_ORDER).load(Ordering::Acquire),
        )
    }

    /// Grant reference `i` of the list (left's pages first). `i` must be
    /// below the pages [`check_orders`] accepted.
    pub fn grant(&self, i: usize) -> u32 {
        self.u32_at(offset::GRANTS + 4 * i).load(Ordering::Acquire)
    }

    /// Sets grant reference `i` (server setup, before the page is shared).
    /// `i` must be below the pages of the orders set.
    pub fn set_grant(&self, i: usize, gref: u32) {
        self.u32_at(offset::GRANTS + 4 * i)
            .store(gref, Ordering::Release);
    }

    fn live_offset(role: Role) -> usize {
        match role {
            Role::Server => offset::SRV_LIVE,
            Role::Client => offset::CLI_LIVE,
        }
    }

    /// `role`'s liveness byte.
    pub fn liveness(&self, role: Role) -> Liveness {
        Liveness::from_byte(self.u8_at(Self::live_offset(role)).load(Ordering::SeqCst))
    }

    /// Sets `role`'s liveness byte.
    pub fn set_liveness(&self, role: Role, live: Liveness) {
        let b = match live {
            Liveness::Gone => 0,
            Liveness::Connected => 1,
            Liveness::NotYet => 2,
        };
        self.u8_at(Self::live_offset(role))
            .store(b, Ordering::SeqCst);
    }

    /// Client connect: "server, tell me when you write", then connected.
    pub fn connect_client(&self) {
        self.u8_at(offset::SRV_NOTIFY)
            .store(NOTIFY_WRITE, Ordering::SeqCst);
        self.set_liveness(Role::Client, Liveness::Connected);
    }
}

/// One direction's ring: its index pair in the page and its buffer.
#[derive(Clone, Copy)]
struct Ring {
    cons: usize,
    prod: usize,
    buffer: NonNull<u8>,
    size: u32,
}

/// The peer broke the ring: its indexes claim more than the ring holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RingCorrupt {
    /// `prod - cons` as read.
    pub used: u32,
    /// The ring's size.
    pub size: u32,
}

/// One end of a connected vchan: non-blocking reads and writes on the two
/// rings. Each returns whether the peer must now be signalled.
pub struct Endpoint {
    iface: Interface,
    role: Role,
    rx: Ring,
    tx: Ring,
}

impl Endpoint {
    /// An end over `iface` whose rings are at `left` (`2^left_order` bytes)
    /// and `right`. The orders are the ones the caller checked with
    /// [`check_orders`] (a client) or chose (a server): they are not read
    /// from the page again, so a peer that rewrites them later cannot make
    /// this end reach past its rings.
    ///
    /// # Safety
    /// `left` and `right` must map their rings' whole sizes read-write for
    /// as long as the endpoint is used (shared memory, no Rust object), and
    /// not overlap the header or each other.
    pub unsafe fn new(
        iface: Interface,
        role: Role,
        (left, lo): (NonNull<u8>, u16),
        (right, ro): (NonNull<u8>, u16),
    ) -> Self {
        let left = Ring {
            cons: offset::LEFT_CONS,
            prod: offset::LEFT_PROD,
            buffer: left,
            size: 1 << lo,
        };
        let right = Ring {
            cons: offset::RIGHT_CONS,
            prod: offset::RIGHT_PROD,
            buffer: right,
            size: 1 << ro,
        };
        let (rx, tx) = match role {
            Role::Server => (left, right),
            Role::Client => (right, left),
        };
        Self {
            iface,
            role,
            rx,
            tx,
        }
    }

    /// The shared page.
    pub fn interface(&self) -> Interface {
        self.iface
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's liveness byte.
    pub fn peer(&self) -> Liveness {
        self.iface.liveness(match self.role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        })
    }

    /// `(left, right)` ring sizes in bytes.
    pub fn ring_sizes(&self) -> (u32, u32) {
        match self.role {
            Role::Server => (self.rx.size, self.tx.size),
            Role::Client => (self.tx.size, self.rx.size),
        }
    }

    /// Bytes this end can write at most at once.
    pub fn tx_size(&self) -> u32 {
        self.tx.size
    }

    fn peer_notify(&self) -> &AtomicU8 {
        self.iface.u8_at(match self.role {
            Role::Server => offset::CLI_NOTIFY,
            Role::Client => offset::SRV_NOTIFY,
        })
    }

    fn own_notify(&self) -> &AtomicU8 {
        self.iface.u8_at(match self.role {
            Role::Server => offset::SRV_NOTIFY,
            Role::Client => offset::CLI_NOTIFY,
        })
    }

    fn used(&self, ring: &Ring) -> Result<u32, RingCorrupt> {
        let prod = self.iface.u32_at(ring.prod).load(Ordering::Acquire);
        let cons = self.iface.u32_at(ring.cons).load(Ordering::Acquire);
        let used = prod.wrapping_sub(cons);
        fence(Ordering::SeqCst);
        if used > ring.size {
            return Err(RingCorrupt {
                used,
                size: ring.size,
            });
        }
        Ok(used)
    }

    /// Bytes waiting to be read, without asking for a notification.
    pub fn data_ready(&self) -> Result<u32, RingCorrupt> {
        self.used(&self.rx)
    }

    /// Free bytes in the write ring, without asking for a notification.
    pub fn buffer_space(&self) -> Result<u32, RingCorrupt> {
        Ok(self.tx.size - self.used(&self.tx)?)
    }

    /// Asks the peer to signal when it writes (before waiting for data),
    /// then returns the bytes ready, re-read after the request so that a
    /// write in between is not missed.
    pub fn arm_read(&self) -> Result<u32, RingCorrupt> {
        self.peer_notify().fetch_or(NOTIFY_WRITE, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.data_ready()
    }

    /// Asks the peer to signal when it consumes (before waiting for room),
    /// then returns the space, re-read after the request.
    pub fn arm_write(&self) -> Result<u32, RingCorrupt> {
        self.peer_notify().fetch_or(NOTIFY_READ, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.buffer_space()
    }

    /// Whether the peer asked for `bit`; clears the request.
    fn take_request(&self, bit: u8) -> bool {
        fence(Ordering::SeqCst);
        self.own_notify().fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }

    /// Reads up to `out.len()` bytes. Returns the count (0 if the ring is
    /// empty) and whether to signal the peer.
    pub fn read(&self, out: &mut [u8]) -> Result<(usize, bool), RingCorrupt> {
        let ready = self.data_ready()? as usize;
        let n = ready.min(out.len());
        if n == 0 {
            return Ok((0, false));
        }
        let cons_idx = self.iface.u32_at(self.rx.cons);
        let cons = cons_idx.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let start = (cons & (self.rx.size - 1)) as usize;
        let first = n.min(self.rx.size as usize - start);
        // SAFETY: `start + first <= size` and `n - first < size`: inside the
        // ring's buffer (constructor contract).
        unsafe {
            copy_from_shared(self.rx.buffer.as_ptr().add(start), &mut out[..first]);
            copy_from_shared(self.rx.buffer.as_ptr(), &mut out[first..n]);
        }
        fence(Ordering::SeqCst);
        cons_idx.store(cons.wrapping_add(n as u32), Ordering::Release);
        Ok((n, self.take_request(NOTIFY_READ)))
    }

    /// Writes up to `data.len()` bytes. Returns the count (0 if the ring is
    /// full) and whether to signal the peer.
    pub fn write(&self, data: &[u8]) -> Result<(usize, bool), RingCorrupt> {
        let space = self.buffer_space()? as usize;
        let n = space.min(data.len());
        if n == 0 {
            return Ok((0, false));
        }
        let prod_idx = self.iface.u32_at(self.tx.prod);
        let prod = prod_idx.load(Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let start = (prod & (self.tx.size - 1)) as usize;
        let first = n.min(self.tx.size as usize - start);
        // SAFETY: as in `read`, inside the write ring's buffer.
        unsafe {
            copy_to_shared(&data[..first], self.tx.buffer.as_ptr().add(start));
            copy_to_shared(&data[first..n], self.tx.buffer.as_ptr());
        }
        fence(Ordering::Release);
        prod_idx.store(prod.wrapping_add(n as u32), Ordering::Release);
        Ok((n, self.take_request(NOTIFY_WRITE)))
    }
}

/// Copies shared memory at `src` into `out`, volatile (the peer may be
/// writing elsewhere in the ring), a word at a time where aligned.
///
/// # Safety
/// `src .. src + out.len()` must be mapped and readable.
unsafe fn copy_from_shared(src: *const u8, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        // SAFETY: `i < out.len()`: inside the caller's range.
        let p = unsafe { src.add(i) };
        if (p as usize).is_multiple_of(8) && out.len() - i >= 8 {
            // SAFETY: aligned and 8 bytes inside the range.
            let word = unsafe { p.cast::<u64>().read_volatile() };
            out[i..i + 8].copy_from_slice(&word.to_ne_bytes());
            i += 8;
        } else {
            // SAFETY: inside the range.
            out[i] = unsafe { p.read_volatile() };
            i += 1;
        }
    }
}

/// Copies `data` to shared memory at `dst`, volatile, a word at a time
/// where aligned.
///
/// # Safety
/// `dst .. dst + data.len()` must be mapped and writable, holding no Rust object.
unsafe fn copy_to_shared(data: &[u8], dst: *mut u8) {
    let mut i = 0;
    while i < data.len() {
        // SAFETY: `i < data.len()`: inside the caller's range.
        let p = unsafe { dst.add(i) };
        if (p as usize).is_multiple_of(8) && data.len() - i >= 8 {
            let mut word = [0u8; 8];
            word.copy_from_slice(&data[i..i + 8]);
            // SAFETY: aligned and 8 bytes inside the range.
            unsafe { p.cast::<u64>().write_volatile(u64::from_ne_bytes(word)) };
            i += 8;
        } else {
            // SAFETY: inside the range.
            unsafe { p.write_volatile(data[i]) };
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(4096))]
    struct Page([u8; PAGE_SIZE]);

    /// A server and a client end over one page in this process: the ring
    /// logic both sides of a real vchan run.
    fn pair(left_min: usize, right_min: usize) -> (Box<Page>, Endpoint, Endpoint) {
        let (lo, ro) = server_orders(left_min, right_min).unwrap();
        assert!(matches!(placement(lo), Placement::InPage(_)));
        assert!(matches!(placement(ro), Placement::InPage(_)));
        let mut page = Box::new(Page([0; PAGE_SIZE]));
        let base = NonNull::new(page.0.as_mut_ptr()).unwrap();
        // SAFETY: the boxed page outlives both ends (returned together).
        let iface = unsafe { Interface::from_ptr(base) };
        iface.init_server(lo, ro);
        check_orders(lo, ro).unwrap();
        let at = |o| match placement(o) {
            // SAFETY: inside the page.
            Placement::InPage(off) => unsafe { NonNull::new_unchecked(base.as_ptr().add(off)) },
            Placement::Pages(_) => unreachable!(),
        };
        // SAFETY: in-page rings at distinct offsets of the boxed page.
        let server = unsafe { Endpoint::new(iface, Role::Server, (at(lo), lo), (at(ro), ro)) };
        iface.connect_client();
        // SAFETY: as above.
        let client = unsafe { Endpoint::new(iface, Role::Client, (at(lo), lo), (at(ro), ro)) };
        (page, server, client)
    }

    #[test]
    fn interface_offsets_match_the_header() {
        assert_eq!(offset::GRANTS, 2 * 8 + 2 * 2 + 4);
        assert_eq!(offset::SRV_NOTIFY, 23);
    }

    #[test]
    fn server_orders_follow_libxenvchan() {
        assert_eq!(
            server_orders(0, 0),
            Ok((10, 11)),
            "vchan-socket-proxy's (0, 0)"
        );
        assert_eq!(server_orders(2048, 1024), Ok((11, 10)));
        assert_eq!(server_orders(2048, 1 << 16), Ok((11, 16)));
        assert_eq!(server_orders(1 << 16, 1 << 16), Ok((16, 16)));
        assert_eq!(server_orders(5000, 100), Ok((13, 11)));
        assert_eq!(
            server_orders((1 << 20) + 1, 0),
            Err(OrderError::TooLarge((1 << 20) + 1))
        );
    }

    #[test]
    fn orders_from_a_peer_are_checked() {
        assert_eq!(check_orders(10, 11), Ok(()));
        assert_eq!(check_orders(20, 20), Ok(()), "512 grants fill the page");
        assert!(check_orders(10, 10).is_err(), "two rings at one offset");
        assert!(check_orders(9, 12).is_err());
        assert!(check_orders(12, 21).is_err());
        assert!(
            check_orders(10, 20).is_err(),
            "256 grants would run into the ring at 1024"
        );
        assert_eq!(check_orders(11, 19), Ok(()));
    }

    #[test]
    fn bytes_cross_both_ways_and_wrap_around() {
        let (_page, server, client) = pair(0, 0);
        assert_eq!(server.peer(), Liveness::Connected);
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 256) as u8).collect();
        let mut got = Vec::new();
        let mut sent = 0;
        let mut buf = [0u8; 333];
        while got.len() < data.len() {
            let (n, _) = client.write(&data[sent..]).unwrap();
            sent += n;
            let (m, _) = server.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..m]);
        }
        assert_eq!(got, data, "left ring, 1 KiB, wrapped several times");
        let (n, _) = server.write(&data).unwrap();
        assert_eq!(n, 2048, "right ring holds 2 KiB");
        assert_eq!(server.write(b"x").unwrap(), (0, false), "full");
        let mut out = vec![0u8; 4096];
        assert_eq!(client.read(&mut out).unwrap().0, 2048);
        assert_eq!(&out[..2048], &data[..2048]);
    }

    #[test]
    fn a_signal_is_due_only_when_the_peer_asked() {
        let (_page, server, client) = pair(0, 0);
        // The client connected asking "tell me when you write".
        assert_eq!(server.write(b"hi").unwrap(), (2, true));
        assert_eq!(server.write(b"!").unwrap(), (1, false), "asked once");
        // The server was set up asking the client the same.
        assert_eq!(client.write(b"a").unwrap(), (1, true));
        let mut buf = [0u8; 8];
        assert_eq!(server.read(&mut buf).unwrap(), (1, false));
        // A reader about to wait arms, and the next write signals.
        assert_eq!(server.arm_read().unwrap(), 0);
        assert_eq!(client.write(b"b").unwrap(), (1, true));
        // A writer about to wait for room arms, and the next read signals.
        client.arm_write().unwrap();
        assert_eq!(server.read(&mut buf).unwrap(), (1, true));
    }

    #[test]
    fn liveness_is_seen_from_the_other_side() {
        let (_page, server, client) = pair(0, 0);
        assert_eq!(client.peer(), Liveness::Connected);
        server
            .interface()
            .set_liveness(Role::Server, Liveness::Gone);
        assert_eq!(client.peer(), Liveness::Gone);
    }

    #[test]
    fn orders_rewritten_by_the_peer_after_setup_are_ignored() {
        let (_page, server, client) = pair(0, 0);
        let iface = server.interface();
        iface.u16_at(offset::LEFT_ORDER).store(20, Ordering::SeqCst);
        iface
            .u16_at(offset::RIGHT_ORDER)
            .store(20, Ordering::SeqCst);
        assert_eq!(client.ring_sizes(), (1024, 2048));
        let big = vec![7u8; 1 << 20];
        assert_eq!(client.write(&big).unwrap().0, 1024, "still the 1 KiB ring");
    }

    #[test]
    fn indexes_that_claim_too_much_are_an_error_not_a_read_out_of_bounds() {
        let (_page, server, _client) = pair(0, 0);
        server
            .interface()
            .u32_at(offset::LEFT_PROD)
            .store(5000, Ordering::SeqCst);
        let mut buf = [0u8; 16];
        assert_eq!(
            server.read(&mut buf),
            Err(RingCorrupt {
                used: 5000,
                size: 1024
            })
        );
    }
}

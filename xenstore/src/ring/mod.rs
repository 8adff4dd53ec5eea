//! The shared-ring transport: the guest side of the xenstore page.
//!
//! [`RingEvents`] is the one boundary between "Xen" and "the QEMU test
//! platform": on Xen, `notify` is an event-channel send and the event is the
//! event-channel upcall; under QEMU it is the ivshmem doorbell and its
//! interrupt; on the host it is the test bed's event socket. Nothing above
//! this module knows which.
//!
//! Memory ordering follows FreeBSD's `xs_write_store`/`xs_read_store`:
//! - producer: read the indexes, then copy the data, then a write barrier,
//!   then publish the new producer index, then notify. The barrier makes
//!   the data visible before the index that announces it. We also order the
//!   index read before the data writes (Linux's `xb_write` does: the space
//!   the consumer index frees must really be free before we overwrite it).
//! - consumer: read the indexes, then a read barrier, then copy the data
//!   (the data read must not be satisfied before the index that announced
//!   it), then a full barrier, then publish the new consumer index (our
//!   reads of the data must be done before the producer may reuse the
//!   space), then notify.
//!
//! Rust's fences are used for the barriers: `Acquire` for rmb, `Release`
//! for wmb, `SeqCst` for mb. The page is accessed with volatile operations,
//! which the compiler does not reorder across these fences; on x86 the
//! hardware keeps the rest of the order (TSO), so they cost nothing there
//! but a compiler barrier, except `SeqCst` (an `mfence`).

mod page;

use core::sync::atomic::{AtomicBool, Ordering, fence};
use core::time::Duration;

pub use page::{
    CONNECTED, FEATURE_ERROR, FEATURE_RECONNECTION, LocalPage, PAGE_SIZE, RECONNECT, RING_SIZE,
    RingPage, indexes_valid, input_chunk, output_chunk,
};

use crate::error::{RingSide, TransportError};
use crate::transport::{TimeLeft, Transport};

/// Event delivery between us and the daemon for one ring page.
pub trait RingEvents: Send + Sync {
    /// Signals the daemon that the ring changed (event channel send,
    /// doorbell). Implies a full memory barrier, as `notify_remote_via_evtchn`
    /// does (a hypercall or an MMIO/syscall write is one).
    fn notify(&self);

    /// Blocks until `ready()` returns true, or `timeout` passes (`None`:
    /// no limit); returns the last value of `ready()`.
    ///
    /// Contract: an event from the daemon that arrives after `ready()` was
    /// evaluated false must end the wait (re-check `ready` after arming the
    /// wake-up, as a kernel wait queue does). Events from both rings are
    /// combined: `ready` is re-checked on any event. Spurious wake-ups are
    /// fine. Once `ready()` returns true, it is not called again.
    fn wait_until(&self, ready: &mut dyn FnMut() -> bool, timeout: Option<Duration>) -> bool;

    /// Wakes every thread blocked in `wait_until` so it re-checks its
    /// condition (used when the transport shuts down).
    fn wake_all(&self);
}

/// The guest side of a xenstore ring page.
pub struct RingTransport<E: RingEvents> {
    page: RingPage,
    events: E,
    closed: AtomicBool,
    /// Set by `pause`: `recv` does not touch the page until `unpause`.
    paused: AtomicBool,
    /// A `recv` is between its look at the indexes and its update of
    /// `rsp_cons` (what `pause` waits out).
    reading: AtomicBool,
}

impl<E: RingEvents> RingTransport<E> {
    /// A transport over `page`, signalled through `events`, without the
    /// reconnection handshake (see [`RingTransport::connect`]).
    ///
    /// Like FreeBSD's `xs_init_comms`, anything left unread in the response
    /// ring (by a previous kernel, before a kexec) is discarded: it cannot
    /// be a reply to us.
    pub fn new(page: RingPage, events: E) -> RingTransport<E> {
        let t = RingTransport {
            page,
            events,
            closed: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            reading: AtomicBool::new(false),
        };
        t.discard_stale_responses();
        t
    }

    /// A transport over `page` that starts on a packet boundary where the
    /// daemon makes that possible: if it offers ring reconnection
    /// ([`FEATURE_RECONNECTION`]), or a reconnection is already under way
    /// (`connection` is [`RECONNECT`], as for a dom0less guest), this runs
    /// the handshake of Xen's `docs/misc/xenstore-ring.txt`: set
    /// `connection` to [`RECONNECT`], notify, and wait (up to `timeout`,
    /// `None`: no limit) for the daemon to empty both rings, drop this
    /// connection's requests, watches and transactions, and set it back to
    /// [`CONNECTED`]. Otherwise (the C daemon of Xen 4.17 offers nothing)
    /// it does what [`RingTransport::new`] does.
    ///
    /// Errors: [`TransportError::TimedOut`] if the daemon did not finish
    /// the handshake in time.
    pub fn connect(
        page: RingPage,
        events: E,
        timeout: Option<Duration>,
    ) -> Result<RingTransport<E>, TransportError> {
        let t = RingTransport {
            page,
            events,
            closed: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            reading: AtomicBool::new(false),
        };
        if t.page.server_features() & FEATURE_RECONNECTION != 0 || t.page.connection() == RECONNECT
        {
            t.reconnect(timeout)?;
        } else {
            t.discard_stale_responses();
        }
        Ok(t)
    }

    /// The handshake (see [`RingTransport::connect`]). Only the daemon may
    /// set `connection` back to [`CONNECTED`]; until it does, every other
    /// field belongs to it.
    fn reconnect(&self, timeout: Option<Duration>) -> Result<(), TransportError> {
        log::info!("xenstore: asking the daemon to reset the ring (reconnection)");
        if self.page.connection() != RECONNECT {
            self.page.set_connection(RECONNECT);
        }
        // Our write of `connection` before the daemon's look at it (notify
        // implies a full barrier).
        self.events.notify();
        let page = &self.page;
        let mut done = || page.connection() == CONNECTED;
        if !self.events.wait_until(&mut done, timeout) {
            log::error!("xenstore: the daemon did not complete the ring reconnection");
            return Err(TransportError::TimedOut);
        }
        // The daemon's reset of the indexes before our first use of them.
        fence(Ordering::Acquire);
        Ok(())
    }

    /// The page (for diagnostics and fault injection in tests).
    pub fn page(&self) -> &RingPage {
        &self.page
    }

    /// The events (for the platform that delivers them).
    pub fn events(&self) -> &E {
        &self.events
    }

    /// Returns whether anything was discarded.
    fn discard_stale_responses(&self) -> bool {
        let (cons, prod) = (self.page.rsp_cons(), self.page.rsp_prod());
        if cons != prod {
            log::warn!(
                "xenstore: response ring not quiescent ({cons:#010x}:{prod:#010x}): discarding"
            );
            self.page.set_rsp_cons(prod);
        }
        cons != prod
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the daemon advertises its `error` field and has set it.
    fn peer_flagged_error(&self) -> bool {
        self.page.server_features() & FEATURE_ERROR != 0 && self.page.error() != 0
    }

    /// The daemon's `error` field, when it advertises one.
    fn check_peer_error(&self) -> Result<(), TransportError> {
        if self.page.server_features() & FEATURE_ERROR != 0 {
            let code = self.page.error();
            if code != 0 {
                // Logged once, by the runtime that fails the connection.
                return Err(TransportError::PeerReported { code });
            }
        }
        Ok(())
    }

    /// Logged once, by the runtime that fails the connection.
    fn bad_indexes(ring: RingSide, cons: u32, prod: u32) -> TransportError {
        TransportError::BadRingIndexes { ring, cons, prod }
    }
}

impl<E: RingEvents> RingTransport<E> {
    /// The read itself, once `recv` may touch the page.
    fn recv_now(&self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let page = &self.page;
        if self.is_closed() {
            return Err(TransportError::Closed);
        }
        self.check_peer_error()?;
        let (cons, prod) = (page.rsp_cons(), page.rsp_prod());
        if !indexes_valid(cons, prod) {
            return Err(Self::bad_indexes(RingSide::Response, cons, prod));
        }
        // rmb: read the data only after the producer index that announced it.
        fence(Ordering::Acquire);
        let mut total = 0;
        let mut at = cons;
        // Up to two chunks: to the end of the ring, then from its start.
        while total < buf.len() {
            let (offset, avail) = input_chunk(at, prod);
            let n = avail.min(buf.len() - total);
            if n == 0 {
                break;
            }
            page.read_rsp(offset, &mut buf[total..total + n]);
            total += n;
            at = at.wrapping_add(n as u32);
        }
        // mb: our reads of the data complete before the space is handed back.
        fence(Ordering::SeqCst);
        page.set_rsp_cons(at);
        self.events.notify();
        Ok(total)
    }
}

impl<E: RingEvents> Transport for RingTransport<E> {
    fn send(&self, message: &[u8], time_left: TimeLeft<'_>) -> Result<(), TransportError> {
        let mut rest = message;
        while !rest.is_empty() {
            let page = &self.page;
            // Wait for space; a corrupt gap or the daemon's error flag also
            // ends the wait so we report it.
            let mut has_room = || {
                self.is_closed()
                    || page.req_prod().wrapping_sub(page.req_cons()) != RING_SIZE
                    || self.peer_flagged_error()
            };
            if !self.events.wait_until(&mut has_room, time_left()) {
                return Err(TransportError::SendTimedOut {
                    sent: message.len() - rest.len(),
                    len: message.len(),
                });
            }
            if self.is_closed() {
                return Err(TransportError::Closed);
            }
            self.check_peer_error()?;
            let (cons, prod) = (page.req_cons(), page.req_prod());
            if !indexes_valid(cons, prod) {
                return Err(Self::bad_indexes(RingSide::Request, cons, prod));
            }
            // The consumer index must be read before we overwrite the space it frees.
            fence(Ordering::Acquire);
            let (offset, room) = output_chunk(cons, prod);
            let n = room.min(rest.len());
            page.write_req(offset, &rest[..n]);
            // wmb: the data must be visible before the index that announces it.
            fence(Ordering::Release);
            page.set_req_prod(prod.wrapping_add(n as u32));
            self.events.notify();
            rest = &rest[n..];
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, TransportError> {
        let page = &self.page;
        // The daemon's error flag ends the wait too: it stops answering
        // once it sets it, so waiting for data would wait for ever.
        let mut has_data = || {
            self.is_closed()
                || (!self.paused.load(Ordering::SeqCst)
                    && (page.rsp_prod() != page.rsp_cons() || self.peer_flagged_error()))
        };
        loop {
            if !self.events.wait_until(&mut has_data, timeout) {
                return Err(TransportError::TimedOut);
            }
            // Dekker with `pause`: announce the read, then look at the flag.
            self.reading.store(true, Ordering::SeqCst);
            if !self.paused.load(Ordering::SeqCst) || self.is_closed() {
                break;
            }
            self.reading.store(false, Ordering::SeqCst);
            self.events.wake_all();
        }
        let result = self.recv_now(buf);
        self.reading.store(false, Ordering::SeqCst);
        if self.paused.load(Ordering::SeqCst) {
            self.events.wake_all();
        }
        result
    }

    fn health(&self) -> Result<(), TransportError> {
        self.check_peer_error()
    }

    /// A ring never holds more than its size.
    fn recv_buffer_size(&self) -> usize {
        RING_SIZE as usize
    }

    fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.events.wake_all();
    }

    /// Waits until no `recv` is part-way through the page and keeps the
    /// next ones off it: across a save/restore the page is cleared under
    /// our feet, and a read that straddled it would publish a consumer
    /// index of the old ring into the new one (Linux's `xs_suspend` holds
    /// `xs_response_mutex` for the same reason).
    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        let mut idle = || !self.reading.load(Ordering::SeqCst);
        self.events.wait_until(&mut idle, None);
    }

    fn unpause(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.events.wake_all();
    }

    /// As Linux's `xb_init_comms` on resume: the toolstack hands a restored
    /// guest a cleared page, so both rings should be quiescent; a request
    /// ring that is not is reported (the daemon will read it), a response
    /// ring that is not is discarded (it cannot answer anything we sent on
    /// this connection).
    fn resume(&self) -> Result<bool, TransportError> {
        let (cons, prod) = (self.page.req_cons(), self.page.req_prod());
        if cons != prod {
            log::warn!(
                "xenstore: request ring not quiescent after resume ({cons:#010x}:{prod:#010x})"
            );
        }
        Ok(self.discard_stale_responses())
    }
}

#[cfg(test)]
mod tests;

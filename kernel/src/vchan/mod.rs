//! A vchan to another domain, wire-compatible with Xen 4.17's libxenvchan:
//! the same shared page and rings (`xen::io::vchan`), the same xenstore
//! keys (`PATH/ring-ref`, `PATH/event-channel`, written by the server), and
//! the same liveness bytes, so dom0's `vchan-socket-proxy` (or anything
//! linked against libxenvchan) is the other end.
//!
//! Reads and writes come blocking (with an optional timeout) and
//! non-blocking. A read returns 0 at end of stream: the peer closed (or its
//! process died: libxenvchan has Linux's gntalloc/gntdev clear its
//! liveness byte and signal us then) and everything it wrote was read.
//! A write to a closed peer is [`VchanError::PeerClosed`]. Dropping a vchan
//! closes it: liveness 0, a signal, then the grants end (the server also
//! removes its xenstore keys).
//!
//! Every vchan event wakes one kernel-wide wait queue; waiters re-check
//! their own ring (a handful of vchans, so a spurious wake-up is cheap).

mod error;
pub mod pages;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::time::Duration;

use xen::DomId;
use xen::evtchn::{Port, PortHandler};
use xen::grant_table::{GrantAccess, GrantRef};
use xen::io::vchan::{self, Endpoint, Interface, Liveness, Placement, Role};
use xenstore::Store;

pub use error::VchanError;
use pages::{ForeignPages, GrantedPages};

use crate::guest::XenResources;
use crate::sync::WaitQueue;

/// Ring size (each way) for a vchan whose server is ours and whose peer
/// moves bulk data. Measured on the real-Xen bed (TCG) against dom0's
/// vchan-socket-proxy, 1-2 MiB each way, in one boot: in-page rings (1 and
/// 2 KiB) 0.1-0.5 MiB/s, 4 KiB ~0.4, 16 KiB ~1.3, 64 KiB 2-3, 256 KiB
/// 2.8-3.4 MiB/s: 64 KiB is the knee (16 pages each way; the proxy moves
/// at most 8 KiB per wake-up).
pub const BULK_RING_BYTES: usize = 64 << 10;

/// Woken by every vchan event.
static VCHAN_EVENTS: WaitQueue = WaitQueue::new();
static VCHAN_PORT: PortHandler = PortHandler::new(&|_: Port| {
    VCHAN_EVENTS.wake_all();
});

/// The shared memory of one end.
enum Memory {
    Server {
        ring: Option<GrantedPages>,
        rings: Vec<GrantedPages>,
        xs_path: String,
    },
    Client {
        ring: Option<ForeignPages>,
        rings: Vec<ForeignPages>,
    },
}

/// One end of a vchan.
pub struct Vchan {
    res: Arc<XenResources>,
    end: Endpoint,
    port: Port,
    remote: DomId,
    memory: Memory,
    /// [`crate::guest::resumes`] when it was made: after a resume into a
    /// new domain its peer, port and grants were the old domain's.
    epoch: u64,
}

// SAFETY: the vchan owns its shared pages and their mappings (nothing else
// in this kernel reaches them), and every access to them is atomic or
// volatile; moving it to another thread moves that ownership. It is not
// `Sync`: two threads reading at once would race on the consumer index.
unsafe impl Send for Vchan {}

fn resources() -> Result<Arc<XenResources>, VchanError> {
    let guest = crate::hypervisor::guest().ok_or(VchanError::NotOnXen)?;
    XenResources::setup(guest).map_err(VchanError::Resources)
}

fn store() -> Result<crate::xenstore_service::XsClient, VchanError> {
    crate::xenstore_service::client().map_err(|e| VchanError::Resources(format!("{e}")))
}

/// A ring's buffer: in the shared page, or pages of its own.
fn ring_at(page: NonNull<u8>, order: u16, own: Option<NonNull<u8>>) -> NonNull<u8> {
    match (vchan::placement(order), own) {
        // SAFETY: in-page offsets (1024, 2048) are inside the page.
        (Placement::InPage(off), _) => unsafe { page.add(off) },
        (Placement::Pages(_), Some(p)) => p,
        (Placement::Pages(_), None) => unreachable!("page rings are mapped before use"),
    }
}

impl Vchan {
    /// Offers a vchan to `remote` at xenstore `path` (absolute, or relative
    /// to our home), with rings of at least `left_min` bytes (client to
    /// server) and `right_min` (server to client), chosen as libxenvchan
    /// does (0, 0: the in-page 1 KiB and 2 KiB rings).
    /// [`wait_connected`](Self::wait_connected) waits for the client.
    pub fn server(
        remote: DomId,
        path: &str,
        left_min: usize,
        right_min: usize,
    ) -> Result<Vchan, VchanError> {
        let res = resources()?;
        let (lo, ro) = vchan::server_orders(left_min, right_min).map_err(VchanError::Orders)?;
        let epoch = crate::guest::resumes();
        let port = res
            .alloc_unbound_port(remote, &VCHAN_PORT)
            .map_err(VchanError::Evtchn)?;
        let ring = match pages::grant_pages(&res, remote, 1) {
            Ok(ring) => ring,
            Err(e) => {
                let _ = res.close_port(port);
                return Err(e);
            }
        };
        // SAFETY: the granted page is ours and mapped until `Drop` ends it.
        let iface = unsafe { Interface::from_ptr(ring.as_ptr()) };
        iface.init_server(lo, ro);
        let mut vchan = Vchan {
            res: Arc::clone(&res),
            // Placeholder rings in the page until the real ones exist; it is
            // replaced below before any use.
            // SAFETY: in-page offsets of the page just granted.
            end: unsafe {
                Endpoint::new(
                    iface,
                    Role::Server,
                    (ring_at(ring.as_ptr(), 10, None), 10),
                    (ring_at(ring.as_ptr(), 11, None), 11),
                )
            },
            port,
            remote,
            memory: Memory::Server {
                ring: None,
                rings: Vec::new(),
                xs_path: String::new(),
            },
            epoch,
        };
        let ring_ptr = ring.as_ptr();
        let ring_gref = ring.grefs()[0];
        let Memory::Server {
            ring: slot,
            rings,
            xs_path,
        } = &mut vchan.memory
        else {
            unreachable!()
        };
        *slot = Some(ring);
        let mut next_grant = 0;
        let mut own = [None, None];
        for (i, order) in [lo, ro].into_iter().enumerate() {
            if let Placement::Pages(n) = vchan::placement(order) {
                let granted = pages::grant_pages(&res, remote, n)?;
                for gref in granted.grefs() {
                    iface.set_grant(next_grant, gref.0);
                    next_grant += 1;
                }
                own[i] = Some(granted.as_ptr());
                rings.push(granted);
            }
        }
        // SAFETY: the rings are the page's in-page areas or pages granted
        // just above, all held by `vchan.memory` for the endpoint's life.
        vchan.end = unsafe {
            Endpoint::new(
                iface,
                Role::Server,
                (ring_at(ring_ptr, lo, own[0]), lo),
                (ring_at(ring_ptr, ro, own[1]), ro),
            )
        };
        let xs = store()?;
        xs.transaction(|t| {
            t.write(&format!("{path}/ring-ref"), format!("{}", ring_gref.0))?;
            t.write(&format!("{path}/event-channel"), format!("{}", port.get()))
        })
        .map_err(VchanError::Xenstore)?;
        *xs_path = String::from(path);
        Ok(vchan)
    }

    /// Connects to the vchan `remote` offers at xenstore `path`.
    pub fn client(remote: DomId, path: &str) -> Result<Vchan, VchanError> {
        let res = resources()?;
        let xs = store()?;
        let gref: u32 = xs
            .read_parsed(&format!("{path}/ring-ref"))
            .map_err(VchanError::Xenstore)?;
        let remote_port: u32 = xs
            .read_parsed(&format!("{path}/event-channel"))
            .map_err(VchanError::Xenstore)?;
        let epoch = crate::guest::resumes();
        let port = res
            .bind_interdomain_port(remote, remote_port, &VCHAN_PORT)
            .map_err(VchanError::Evtchn)?;
        let ring = match pages::map_foreign(&res, remote, &[GrantRef(gref)], GrantAccess::ReadWrite)
        {
            Ok(ring) => ring,
            Err(e) => {
                let _ = res.close_port(port);
                return Err(e);
            }
        };
        // SAFETY: the peer's page, mapped until `Drop` unmaps it.
        let iface = unsafe { Interface::from_ptr(ring.as_ptr()) };
        let ring_ptr = ring.as_ptr();
        let (lo, ro) = iface.orders();
        let mut memory = Memory::Client {
            ring: Some(ring),
            rings: Vec::new(),
        };
        let checked = vchan::check_orders(lo, ro).map_err(VchanError::Orders);
        let mut own = [None, None];
        let mapped = checked.and_then(|()| {
            let Memory::Client { rings, .. } = &mut memory else {
                unreachable!()
            };
            let mut next_grant = 0;
            for (i, order) in [lo, ro].into_iter().enumerate() {
                if let Placement::Pages(n) = vchan::placement(order) {
                    let grefs: Vec<GrantRef> = (next_grant..next_grant + n)
                        .map(|g| GrantRef(iface.grant(g)))
                        .collect();
                    next_grant += n;
                    let mapped = pages::map_foreign(&res, remote, &grefs, GrantAccess::ReadWrite)?;
                    own[i] = Some(mapped.as_ptr());
                    rings.push(mapped);
                }
            }
            Ok(())
        });
        // SAFETY: in-page offsets of the mapped page (used only if the
        // mapping below failed, to build a value that is then dropped).
        let placeholder = unsafe {
            Endpoint::new(
                iface,
                Role::Client,
                (ring_at(ring_ptr, 10, None), 10),
                (ring_at(ring_ptr, 11, None), 11),
            )
        };
        let mut vchan = Vchan {
            res,
            end: placeholder,
            port,
            remote,
            memory,
            epoch,
        };
        mapped?;
        // SAFETY: orders checked; rings in the page or mapped above, held by
        // `vchan.memory` for the endpoint's life.
        vchan.end = unsafe {
            Endpoint::new(
                iface,
                Role::Client,
                (ring_at(ring_ptr, lo, own[0]), lo),
                (ring_at(ring_ptr, ro, own[1]), ro),
            )
        };
        iface.connect_client();
        vchan.notify()?;
        Ok(vchan)
    }

    /// The peer domain.
    pub fn remote(&self) -> DomId {
        self.remote
    }

    /// `(left, right)` ring sizes in bytes.
    pub fn ring_sizes(&self) -> (usize, usize) {
        let (left, right) = self.end.ring_sizes();
        (left as usize, right as usize)
    }

    fn notify(&self) -> Result<(), VchanError> {
        self.res
            .guest()
            .channels
            .send(self.port)
            .map_err(VchanError::Xen)
    }

    /// The peer's liveness.
    pub fn peer(&self) -> Liveness {
        self.end.peer()
    }

    /// Whether the kernel resumed into a new domain since this vchan was
    /// made: its peer and resources were the old domain's (no event will
    /// come; make a new one).
    pub fn is_stale(&self) -> bool {
        crate::guest::resumes() != self.epoch
    }

    fn wait(
        &self,
        mut cond: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<(), VchanError> {
        if self.is_stale() {
            return Err(VchanError::Stale);
        }
        if VCHAN_EVENTS.wait_until(|| cond() || self.is_stale(), timeout) && !self.is_stale() {
            Ok(())
        } else if self.is_stale() {
            Err(VchanError::Stale)
        } else {
            Err(VchanError::TimedOut)
        }
    }

    /// Server: waits until the client connected (or came and went).
    pub fn wait_connected(&self, timeout: Option<Duration>) -> Result<(), VchanError> {
        self.wait(|| self.end.peer() != Liveness::NotYet, timeout)
    }

    /// Reads what is there, up to `buf.len()`, without waiting: `Ok(0)` if
    /// nothing is.
    pub fn try_read(&self, buf: &mut [u8]) -> Result<usize, VchanError> {
        let (n, signal) = self.end.read(buf).map_err(VchanError::Corrupt)?;
        if signal {
            self.notify()?;
        }
        Ok(n)
    }

    /// Reads at least one byte, up to `buf.len()`, waiting for data; `Ok(0)`
    /// at end of stream (the peer closed and all it wrote was read).
    pub fn read(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, VchanError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.try_read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.end.arm_read().map_err(VchanError::Corrupt)? > 0 {
                continue;
            }
            if self.end.peer() == Liveness::Gone {
                return Ok(0);
            }
            self.wait(
                || {
                    self.end.data_ready().map_or(true, |n| n > 0)
                        || self.end.peer() == Liveness::Gone
                },
                timeout,
            )?;
        }
    }

    /// Writes what fits, up to `data.len()`, without waiting: `Ok(0)` if the
    /// ring is full.
    pub fn try_write(&self, data: &[u8]) -> Result<usize, VchanError> {
        if self.end.peer() == Liveness::Gone {
            return Err(VchanError::PeerClosed);
        }
        let (n, signal) = self.end.write(data).map_err(VchanError::Corrupt)?;
        if signal {
            self.notify()?;
        }
        Ok(n)
    }

    /// Writes all of `data`, waiting for room; `timeout` bounds each wait.
    pub fn write_all(&self, mut data: &[u8], timeout: Option<Duration>) -> Result<(), VchanError> {
        while !data.is_empty() {
            let n = self.try_write(data)?;
            data = &data[n..];
            if n > 0 {
                continue;
            }
            if self.end.arm_write().map_err(VchanError::Corrupt)? > 0 {
                continue;
            }
            self.wait(
                || {
                    self.end.buffer_space().map_or(true, |n| n > 0)
                        || self.end.peer() == Liveness::Gone
                },
                timeout,
            )?;
        }
        Ok(())
    }

    /// Waits until the peer consumed everything written (vchan-socket-proxy
    /// drops unread data once it sees a close, so a sender flushes first).
    pub fn flush(&self, timeout: Option<Duration>) -> Result<(), VchanError> {
        let empty = || {
            self.end
                .buffer_space()
                .map_or(true, |n| n == self.end.tx_size())
        };
        loop {
            if empty() {
                return Ok(());
            }
            if self.end.peer() == Liveness::Gone {
                return Err(VchanError::PeerClosed);
            }
            self.end.arm_write().map_err(VchanError::Corrupt)?;
            self.wait(|| empty() || self.end.peer() == Liveness::Gone, timeout)?;
        }
    }

    /// Closes this end (as dropping it does).
    pub fn close(self) {}
}

impl Drop for Vchan {
    fn drop(&mut self) {
        self.end
            .interface()
            .set_liveness(self.end.role(), Liveness::Gone);
        // A stale vchan's port was the old domain's, forgotten at the
        // resume; its number may be a new binding's now (a frontend's), so
        // it is neither signalled nor closed.
        if !self.is_stale() {
            let _ = self.notify();
            if let Err(e) = self.res.close_port(self.port) {
                log::warn!("vchan: closing {}: {e}", self.port);
            }
        }
        match &mut self.memory {
            Memory::Server {
                ring,
                rings,
                xs_path,
            } => {
                for r in rings.drain(..).chain(ring.take()) {
                    pages::end_grants(&self.res, r);
                }
                if !xs_path.is_empty()
                    && let Ok(xs) = store()
                {
                    let _ = xs.rm(xs_path);
                }
            }
            Memory::Client { ring, rings } => {
                for r in rings.drain(..).chain(ring.take()) {
                    pages::unmap_foreign(&self.res, r);
                }
            }
        }
    }
}

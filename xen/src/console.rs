//! The PV console ring (`struct xencons_interface`, `io/console.h`): the guest log on Xen.
//!
//! The guest produces into `out` (2 KiB) and advances `out_prod`; the backend (xenconsoled or
//! Xen itself) consumes and advances `out_cons`. Indexes are free-running `u32`, masked with
//! the ring size. Producer protocol: read `out_cons` (acquire: the backend's reads of the
//! bytes happen before its index update), write the bytes, then publish `out_prod` with a
//! release store (the bytes are visible before the index that covers them), then notify the
//! console event channel.
//!
//! Input runs the other way: the backend produces into `in` (1 KiB) and advances `in_prod`;
//! the guest consumes and advances `in_cons`, then notifies the same event channel.
//!
//! A backend that writes nonsense indexes (more than a ring's worth outstanding) gets a
//! [`ConsoleError::Corrupt`] and no write or read: the guest never indexes outside the rings.

use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::error::XenError;
use crate::evtchn::{Port, ops};
use crate::hypercall::Hypervisor;

/// Size of the guest-to-backend ring.
pub const OUT_RING_SIZE: usize = 2048;
/// Size of the backend-to-guest ring.
pub const IN_RING_SIZE: usize = 1024;
/// `XENCONSOLE_DISCONNECTED`: set by a backend that will not drain the ring (newer Xen).
pub const CONSOLE_DISCONNECTED: u8 = 1;

/// `struct xencons_interface`, plus the `connection` byte newer headers add (0, "connected",
/// on backends that predate it, since the page starts zeroed).
#[repr(C)]
pub struct XenconsInterface {
    /// `in`: backend-to-guest bytes (keyboard input).
    pub input: [AtomicU8; IN_RING_SIZE],
    /// `out`: guest-to-backend bytes (the log).
    pub output: [AtomicU8; OUT_RING_SIZE],
    /// Guest-written consumer index of `input`.
    pub in_cons: AtomicU32,
    /// Backend-written producer index of `input`.
    pub in_prod: AtomicU32,
    /// Backend-written consumer index of `output`.
    pub out_cons: AtomicU32,
    /// Guest-written producer index of `output`.
    pub out_prod: AtomicU32,
    /// Backend-written; [`CONSOLE_DISCONNECTED`] means nobody drains `output`.
    pub connection: AtomicU8,
}

impl XenconsInterface {
    /// Views the mapped console page.
    ///
    /// # Safety
    /// `page` must map the frame from `HVM_PARAM_CONSOLE_PFN` read-write for `'a`.
    pub unsafe fn from_ptr<'a>(page: core::ptr::NonNull<u8>) -> &'a XenconsInterface {
        // SAFETY: per the contract the page is live and shared with the backend; all fields
        // are atomics, so any content is a valid value and shared mutation is sound.
        unsafe { page.cast::<XenconsInterface>().as_ref() }
    }
}

/// The backend left the ring in a state no correct backend produces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConsoleError {
    /// More than a ring's worth outstanding between `out_cons` and `out_prod`.
    Corrupt {
        /// `out_prod` as read.
        prod: u32,
        /// `out_cons` as read.
        cons: u32,
    },
    /// The notification hypercall failed.
    Notify(XenError),
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt { prod, cons } => {
                write!(
                    f,
                    "console ring indexes corrupt (out_prod {prod}, out_cons {cons})"
                )
            }
            Self::Notify(e) => write!(f, "console notify: {e}"),
        }
    }
}

impl core::error::Error for ConsoleError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Notify(e) => Some(e),
            Self::Corrupt { .. } => None,
        }
    }
}

/// The producer side of the output ring. `&mut self` for writes: one producer at a time (the
/// kernel's log lock serializes writers).
pub struct ConsoleRing<'a> {
    intf: &'a XenconsInterface,
}

impl<'a> ConsoleRing<'a> {
    /// The producer over `intf`.
    pub fn new(intf: &'a XenconsInterface) -> Self {
        Self { intf }
    }

    /// Copies as much of `bytes` as fits and publishes it. Returns how many were queued (0
    /// when full). Does not notify.
    pub fn write_some(&mut self, bytes: &[u8]) -> Result<usize, ConsoleError> {
        let cons = self.intf.out_cons.load(Ordering::Acquire);
        // Only this producer writes out_prod, so a relaxed read sees our own last value.
        let prod = self.intf.out_prod.load(Ordering::Relaxed);
        let queued = prod.wrapping_sub(cons) as usize;
        if queued > OUT_RING_SIZE {
            return Err(ConsoleError::Corrupt { prod, cons });
        }
        let n = bytes.len().min(OUT_RING_SIZE - queued);
        for (i, &b) in bytes[..n].iter().enumerate() {
            let idx = prod.wrapping_add(i as u32) as usize % OUT_RING_SIZE;
            self.intf.output[idx].store(b, Ordering::Relaxed);
        }
        // Release: the bytes above are visible before the index that publishes them.
        self.intf
            .out_prod
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        Ok(n)
    }

    /// Bytes written but not yet consumed by the backend.
    pub fn pending(&self) -> u32 {
        let prod = self.intf.out_prod.load(Ordering::Relaxed);
        prod.wrapping_sub(self.intf.out_cons.load(Ordering::Acquire))
    }

    /// Whether the backend says it will drain the ring (always true on older backends).
    pub fn backend_connected(&self) -> bool {
        self.intf.connection.load(Ordering::Acquire) != CONSOLE_DISCONNECTED
    }

    /// Consumes up to `room` bytes of input (the `in` ring the backend fills), in order,
    /// handing each to `push`; returns how many. Does not notify.
    pub fn read_some(
        &mut self,
        room: usize,
        push: &mut dyn FnMut(u8),
    ) -> Result<usize, ConsoleError> {
        // Acquire: the backend's bytes are visible before the index that covers them.
        let prod = self.intf.in_prod.load(Ordering::Acquire);
        // Only this consumer writes in_cons.
        let cons = self.intf.in_cons.load(Ordering::Relaxed);
        let available = prod.wrapping_sub(cons) as usize;
        if available > IN_RING_SIZE {
            return Err(ConsoleError::Corrupt { prod, cons });
        }
        let n = available.min(room);
        for i in 0..n {
            let idx = cons.wrapping_add(i as u32) as usize % IN_RING_SIZE;
            push(self.intf.input[idx].load(Ordering::Relaxed));
        }
        // Release: our reads of the bytes happen before the backend may reuse their slots.
        self.intf
            .in_cons
            .store(cons.wrapping_add(n as u32), Ordering::Release);
        Ok(n)
    }
}

/// How long [`XenConsole::write_bytes`] waits for a full ring to drain before dropping the
/// rest: per attempt a `SCHEDOP_yield` and spins of [`core::hint::spin_loop`]; attempts.
const DRAIN_SPINS: usize = 10_000;
const DRAIN_ATTEMPTS: usize = 100;

/// The guest log on the PV console: ring + event channel + a count of bytes dropped.
///
/// Never blocks forever: a backend that stops consuming costs a bounded wait per write, then
/// the rest of that write is dropped and counted ([`XenConsole::dropped`]).
pub struct XenConsole<'a, H: Hypervisor> {
    ring: ConsoleRing<'a>,
    port: Port,
    hv: &'a H,
    dropped: AtomicU64,
}

impl<'a, H: Hypervisor> XenConsole<'a, H> {
    /// A console over `intf`, notifying `port` (from [`crate::hvm::console_ring`]).
    pub fn new(intf: &'a XenconsInterface, port: Port, hv: &'a H) -> Self {
        Self {
            ring: ConsoleRing::new(intf),
            port,
            hv,
            dropped: AtomicU64::new(0),
        }
    }

    /// Notifies `port` from now on (after a resume the toolstack may have
    /// bound the console to another one).
    pub fn set_port(&mut self, port: Port) {
        self.port = port;
    }

    /// The port it notifies.
    pub fn port(&self) -> Port {
        self.port
    }

    /// Writes all of `bytes` if the backend keeps up; notifies after each chunk queued.
    /// Returns how many bytes were queued; the rest were dropped and counted. A disconnected
    /// backend drops immediately instead of waiting.
    pub fn write_bytes(&mut self, mut bytes: &[u8]) -> Result<usize, ConsoleError> {
        let total = bytes.len();
        let mut attempts = 0;
        while !bytes.is_empty() {
            let n = self.ring.write_some(bytes)?;
            if n > 0 {
                ops::send(self.hv, self.port).map_err(ConsoleError::Notify)?;
                bytes = &bytes[n..];
                continue;
            }
            attempts += 1;
            if attempts > DRAIN_ATTEMPTS || !self.ring.backend_connected() {
                break;
            }
            // The backend (xenconsoled in dom0) may share our physical CPU: give it the
            // CPU rather than only spinning. A refused yield leaves the spin.
            let _ = crate::sched::yield_cpu(self.hv);
            for _ in 0..DRAIN_SPINS {
                core::hint::spin_loop();
            }
        }
        self.dropped
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(total - bytes.len())
    }

    /// Bytes dropped since creation because the backend did not drain the ring.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Output bytes the backend has not consumed yet.
    pub fn pending(&self) -> u32 {
        self.ring.pending()
    }

    /// Takes up to `room` bytes of input (keyboard input from `xl console`, or whatever dom0
    /// wrote to the console's pty) into `push`; notifies the backend when it took any, so it
    /// can refill the ring. Returns how many.
    pub fn read_input(
        &mut self,
        room: usize,
        push: &mut dyn FnMut(u8),
    ) -> Result<usize, ConsoleError> {
        let n = self.ring.read_some(room, push)?;
        if n > 0 {
            ops::send(self.hv, self.port).map_err(ConsoleError::Notify)?;
        }
        Ok(n)
    }
}

/// Log text: each `\n` goes out as `\r\n`, as a terminal attached by `xl console` expects.
impl<H: Hypervisor> fmt::Write for XenConsole<'_, H> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.write_bytes(b"\r\n").map_err(|_| fmt::Error)?;
            }
            self.write_bytes(line.as_bytes()).map_err(|_| fmt::Error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::HypercallOp;
    use crate::hypercall::fake::RecordingHypervisor;
    use core::fmt::Write;
    use core::mem::{offset_of, size_of};

    fn zeroed() -> Box<XenconsInterface> {
        // SAFETY: all fields are atomics; zero is valid (and is what a fresh page holds).
        unsafe { Box::<XenconsInterface>::new_zeroed().assume_init() }
    }

    /// Plays the backend: consumes everything queued, returning it.
    fn drain(intf: &XenconsInterface) -> Vec<u8> {
        let prod = intf.out_prod.load(Ordering::Acquire);
        let mut cons = intf.out_cons.load(Ordering::Relaxed);
        let mut out = Vec::new();
        while cons != prod {
            out.push(intf.output[cons as usize % OUT_RING_SIZE].load(Ordering::Relaxed));
            cons = cons.wrapping_add(1);
        }
        intf.out_cons.store(cons, Ordering::Release);
        out
    }

    #[test]
    fn interface_matches_the_header_layout() {
        assert_eq!(offset_of!(XenconsInterface, input), 0);
        assert_eq!(offset_of!(XenconsInterface, output), 1024);
        assert_eq!(offset_of!(XenconsInterface, in_cons), 3072);
        assert_eq!(offset_of!(XenconsInterface, in_prod), 3076);
        assert_eq!(offset_of!(XenconsInterface, out_cons), 3080);
        assert_eq!(offset_of!(XenconsInterface, out_prod), 3084);
        assert_eq!(offset_of!(XenconsInterface, connection), 3088);
        assert!(size_of::<XenconsInterface>() <= crate::types::PAGE_SIZE);
    }

    #[test]
    fn writes_wrap_around_the_ring_end_and_the_u32_index() {
        let intf = zeroed();
        // Start just before both the ring end and the u32 wrap.
        let start = u32::MAX - 2;
        intf.out_prod.store(start, Ordering::Relaxed);
        intf.out_cons.store(start, Ordering::Relaxed);
        let mut ring = ConsoleRing::new(&intf);
        assert_eq!(ring.write_some(b"hello"), Ok(5));
        assert_eq!(intf.out_prod.load(Ordering::Relaxed), start.wrapping_add(5));
        // u32::MAX - 2 is slot 2045; the ring size divides 2^32, so the index wrap and the
        // ring wrap coincide: "hel" fills 2045..2048, "lo" lands at 0 and 1.
        let at = |i: usize| intf.output[i].load(Ordering::Relaxed);
        assert_eq!((at(OUT_RING_SIZE - 3), at(OUT_RING_SIZE - 1)), (b'h', b'l'));
        assert_eq!((at(0), at(1)), (b'l', b'o'), "wrapped to the ring start");
        assert_eq!(drain(&intf), b"hello");
        assert_eq!(ring.pending(), 0);
    }

    #[test]
    fn a_full_ring_takes_only_what_fits() {
        let intf = zeroed();
        let mut ring = ConsoleRing::new(&intf);
        let big = vec![b'x'; OUT_RING_SIZE + 100];
        assert_eq!(ring.write_some(&big), Ok(OUT_RING_SIZE));
        assert_eq!(ring.write_some(b"more"), Ok(0));
        assert_eq!(drain(&intf).len(), OUT_RING_SIZE);
        assert_eq!(ring.write_some(b"more"), Ok(4));
    }

    #[test]
    fn corrupt_backend_indexes_are_refused_without_writing() {
        let intf = zeroed();
        intf.out_prod.store(10, Ordering::Relaxed);
        intf.out_cons.store(5000, Ordering::Relaxed); // "consumed" past what was produced
        let mut ring = ConsoleRing::new(&intf);
        assert_eq!(
            ring.write_some(b"x"),
            Err(ConsoleError::Corrupt {
                prod: 10,
                cons: 5000
            })
        );
        assert_eq!(intf.out_prod.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn console_notifies_the_port_and_translates_newlines() {
        let intf = zeroed();
        let hv = RecordingHypervisor::returning(0);
        let port = Port::new(3).unwrap();
        let mut con = XenConsole::new(&intf, port, &hv);
        write!(con, "boot\nok\n").unwrap();
        assert_eq!(drain(&intf), b"boot\r\nok\r\n");
        let calls = hv.calls();
        assert!(!calls.is_empty());
        assert!(
            calls
                .iter()
                .all(|c| c.op == HypercallOp::EventChannelOp && c.cmd() == 4)
        );
        assert!(
            calls.iter().all(|c| c.field(0, 4) == 3),
            "EVTCHNOP_send on the console port"
        );
        assert_eq!(con.dropped(), 0);
    }

    /// Plays the backend's input side: queues `bytes` into `in`.
    fn type_in(intf: &XenconsInterface, bytes: &[u8]) {
        let prod = intf.in_prod.load(Ordering::Relaxed);
        for (i, &b) in bytes.iter().enumerate() {
            let idx = prod.wrapping_add(i as u32) as usize % IN_RING_SIZE;
            intf.input[idx].store(b, Ordering::Relaxed);
        }
        intf.in_prod
            .store(prod.wrapping_add(bytes.len() as u32), Ordering::Release);
    }

    #[test]
    fn input_is_read_in_order_up_to_the_room_given_and_wraps() {
        let intf = zeroed();
        let start = u32::MAX - 1;
        intf.in_prod.store(start, Ordering::Relaxed);
        intf.in_cons.store(start, Ordering::Relaxed);
        type_in(&intf, b"read domid\r");
        let hv = RecordingHypervisor::returning(0);
        let mut con = XenConsole::new(&intf, Port::new(3).unwrap(), &hv);
        let mut got = Vec::new();
        assert_eq!(con.read_input(4, &mut |b| got.push(b)), Ok(4));
        assert_eq!(got, b"read");
        assert_eq!(hv.calls().len(), 1, "the backend is told there is room");
        assert_eq!(con.read_input(100, &mut |b| got.push(b)), Ok(7));
        assert_eq!(got, b"read domid\r");
        assert_eq!(con.read_input(100, &mut |b| got.push(b)), Ok(0));
        assert_eq!(hv.calls().len(), 2, "nothing read, no notification");
    }

    #[test]
    fn corrupt_input_indexes_are_refused_without_reading() {
        let intf = zeroed();
        intf.in_prod.store(5000, Ordering::Relaxed);
        let mut ring = ConsoleRing::new(&intf);
        let mut got = Vec::new();
        assert_eq!(
            ring.read_some(10, &mut |b| got.push(b)),
            Err(ConsoleError::Corrupt {
                prod: 5000,
                cons: 0
            })
        );
        assert!(got.is_empty());
        assert_eq!(intf.in_cons.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_stuck_backend_costs_a_bounded_wait_and_a_counted_drop() {
        let intf = zeroed();
        let hv = RecordingHypervisor::returning(0);
        let mut con = XenConsole::new(&intf, Port::new(3).unwrap(), &hv);
        let big = vec![b'y'; OUT_RING_SIZE + 10];
        assert_eq!(con.write_bytes(&big), Ok(OUT_RING_SIZE));
        assert_eq!(con.dropped(), 10);
        let yields = hv
            .calls()
            .iter()
            .filter(|c| c.op == HypercallOp::SchedOp)
            .count();
        assert_eq!(
            yields, DRAIN_ATTEMPTS,
            "the CPU is offered to the backend while waiting"
        );
        intf.connection
            .store(CONSOLE_DISCONNECTED, Ordering::Relaxed);
        assert_eq!(con.write_bytes(b"zz"), Ok(0), "disconnected: no waiting");
        assert_eq!(con.dropped(), 12);
    }
}

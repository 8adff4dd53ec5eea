//! Connecting our client to the REAL xenstored run by the testbed: as dom0
//! over its socket, and as a guest over a domain's ring page.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use testbed::{Domain, Testbed};
use xenstore::ring::{RingEvents, RingPage};
use xenstore::{Client, Config, StdPlatform};

/// A testbed, printing which daemon runs (the run's output names it).
pub fn start_testbed() -> Testbed {
    let tb = Testbed::start().unwrap_or_else(|e| panic!("the real xenstored could not start: {e}"));
    eprintln!("xenstored: {:?}", tb.xenstored());
    tb
}

/// A privileged client on the testbed's socket.
pub fn socket_client(tb: &Testbed, config: Config) -> Client<StdPlatform> {
    Client::connect_with(tb.socket_path(), config).unwrap()
}

/// [`RingEvents`] over a testbed domain's event channel: the daemon's kicks
/// arrive as datagrams on the domain's socket; `wake_all` kicks a private
/// socket polled alongside it.
pub struct DomainEvents {
    domain: Arc<Domain>,
    wake_rx: UnixDatagram,
    wake_tx: UnixDatagram,
}

impl DomainEvents {
    pub fn new(domain: Arc<Domain>) -> DomainEvents {
        let (wake_tx, wake_rx) = UnixDatagram::pair().unwrap();
        wake_rx.set_nonblocking(true).unwrap();
        wake_tx.set_nonblocking(true).unwrap();
        DomainEvents {
            domain,
            wake_rx,
            wake_tx,
        }
    }

    fn drain(&self) {
        let _ = self.domain.take_event();
        let mut buf = [0u8; 16];
        while self.wake_rx.recv(&mut buf).is_ok() {}
    }
}

impl RingEvents for DomainEvents {
    fn notify(&self) {
        if let Err(e) = self.domain.notify() {
            eprintln!("notify failed: {e}");
        }
    }

    fn wait_until(&self, ready: &mut dyn FnMut() -> bool, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            // Consume kicks first: one arriving after `ready()` stays queued
            // and ends the poll below.
            self.drain();
            if ready() {
                return true;
            }
            let ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return ready();
                    }
                    left.as_millis().clamp(1, i32::MAX as u128) as i32
                }
            };
            let mut fds = [
                libc::pollfd {
                    fd: self.domain.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.wake_rx.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two pollfd for the call's duration.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        }
    }

    fn wake_all(&self) {
        let _ = self.wake_tx.send(&[1]);
    }
}

/// A guest client on `domain`'s ring, as the kernel will have it.
pub fn ring_client(domain: Arc<Domain>, config: Config) -> Client<StdPlatform> {
    let base = NonNull::new(domain.page().as_ptr()).unwrap();
    // SAFETY: the testbed maps the page for as long as `domain` lives, and
    // the events below keep `domain` alive as long as the transport.
    let page = unsafe { RingPage::new(base) };
    Client::over_ring(StdPlatform, page, DomainEvents::new(domain), config).unwrap()
}

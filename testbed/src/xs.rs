//! Our own `xenstore` client as a guest on a testbed domain's ring (feature
//! `xenstore`): what the guest kernel has, on the host, for tests of the
//! `xenstore` and `xenbus` crates against the real daemon.
//!
//! The daemon's kicks arrive as datagrams on the domain's event socket
//! ([`Domain`]'s fd); [`DomainEvents`] turns them into
//! [`xenstore::ring::RingEvents`].

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xenstore::ring::{RingEvents, RingPage};
use xenstore::{Client, Config, StdPlatform};

use crate::domain::Domain;
use crate::error::{Error, Result};

/// [`RingEvents`] over a testbed domain's event channel: the daemon's kicks
/// arrive as datagrams on the domain's socket; `wake_all` kicks a private
/// socket polled alongside it.
pub struct DomainEvents {
    domain: Arc<Domain>,
    wake_rx: UnixDatagram,
    wake_tx: UnixDatagram,
}

impl DomainEvents {
    /// Events for `domain`. Errors: the private wake-up socket pair could
    /// not be made.
    pub fn new(domain: Arc<Domain>) -> Result<DomainEvents> {
        let context = "creating the ring client's wake-up socket pair";
        let (wake_tx, wake_rx) = UnixDatagram::pair().map_err(|e| Error::io(context, e))?;
        for socket in [&wake_rx, &wake_tx] {
            socket
                .set_nonblocking(true)
                .map_err(|e| Error::io(context, e))?;
        }
        Ok(DomainEvents {
            domain,
            wake_rx,
            wake_tx,
        })
    }

    /// Consumes pending kicks from the daemon and from `wake_all`.
    fn drain(&self) {
        // A failed read only means no kick is pending: the poll below decides.
        let _ = self.domain.take_event();
        let mut buf = [0u8; 16];
        while self.wake_rx.recv(&mut buf).is_ok() {}
    }
}

impl RingEvents for DomainEvents {
    fn notify(&self) {
        // The trait cannot report it; a lost kick shows up as a test timeout.
        if let Err(e) = self.domain.notify() {
            eprintln!(
                "testbed: notifying the daemon for domain {} failed: {e}",
                self.domain.domid()
            );
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
            // SAFETY: `fds` is a valid array of two pollfd for the call's
            // duration. EINTR or an error just loops to re-check `ready`.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        }
    }

    fn wake_all(&self) {
        // A full socket already holds a pending wake-up.
        let _ = self.wake_tx.send(&[1]);
    }
}

/// A guest client on `domain`'s ring, as the kernel will have it.
///
/// Errors: [`Error::Io`] if the wake-up sockets or the client's threads
/// cannot be created.
pub fn ring_client(domain: Arc<Domain>, config: Config) -> Result<Client<StdPlatform>> {
    let domid = domain.domid();
    let base = NonNull::new(domain.page().as_ptr())
        .ok_or_else(|| Error::Usage(format!("domain {domid}'s ring page is not mapped")))?;
    // SAFETY: the testbed maps the page for as long as `domain` lives, and
    // the events below keep `domain` alive as long as the transport.
    let page = unsafe { RingPage::new(base) };
    let events = DomainEvents::new(domain)?;
    Client::over_ring(StdPlatform, page, events, config).map_err(|e| {
        Error::io(
            format!("starting a xenstore client on domain {domid}'s ring"),
            std::io::Error::other(e),
        )
    })
}

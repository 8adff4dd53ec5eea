//! The guest side of an introduced domain: its ring page and its end of the
//! event channel, plus a simple blocking ring client for tests.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::GuestEventChannel;
use crate::page::SharedPage;
use crate::ring::GuestRing;
use crate::toolstack::DomainConfig;
use crate::wire::{Message, ty};

/// A domain the testbed introduced: what a guest kernel would hold.
///
/// Dropping it unmaps the page and closes the guest's event endpoint; the
/// domain stays introduced (and its page file stays) until the testbed
/// stops, so [`crate::Testbed::restart_daemon`] still re-introduces it.
#[derive(Debug)]
pub struct Domain {
    config: DomainConfig,
    page: SharedPage,
    events: GuestEventChannel,
    /// Guards the ring client's state: taken for the whole of a request so
    /// callers on several threads take turns on the ring. Never held while
    /// taking another testbed lock.
    client: Mutex<RingClientState>,
}

#[derive(Debug, Default)]
struct RingClientState {
    next_req_id: u32,
    /// Watch events read while waiting for a reply, oldest first.
    watch_events: VecDeque<Message>,
}

impl Domain {
    pub(crate) fn new(config: DomainConfig, page: SharedPage, events: GuestEventChannel) -> Self {
        Domain {
            config,
            page,
            events,
            client: Mutex::new(RingClientState {
                next_req_id: 1,
                ..Default::default()
            }),
        }
    }

    /// The domain id.
    pub fn domid(&self) -> u32 {
        self.config.domid
    }

    /// How the domain was introduced (port, mfn, home layout).
    pub fn config(&self) -> &DomainConfig {
        &self.config
    }

    /// The domain's home, `/local/domain/<domid>`.
    pub fn home_path(&self) -> String {
        self.config.home_path()
    }

    /// The shared ring page (`struct xenstore_domain_interface`). Poke it
    /// freely, e.g. write corrupt indexes to play a hostile guest.
    pub fn page(&self) -> &SharedPage {
        &self.page
    }

    /// The page file (what the daemon maps; what QEMU gets as BAR2).
    pub fn page_path(&self) -> &Path {
        self.page.path()
    }

    /// Kicks the daemon's end of the event channel (never blocks).
    pub fn notify(&self) -> Result<()> {
        self.events.notify()
    }

    /// Waits up to `timeout` for the daemon to kick this domain; consumes
    /// all pending kicks. False on timeout.
    pub fn wait_event(&self, timeout: Duration) -> Result<bool> {
        self.events.wait(timeout)
    }

    /// Consumes pending kicks without waiting; true if there was one.
    pub fn take_event(&self) -> Result<bool> {
        self.events.take_pending()
    }

    /// Sends one request through the ring as this (unprivileged) guest and
    /// returns the daemon's reply as is: an error reply is a message of
    /// type ERROR (see [`Message::error`]), not an `Err`. Watch events that
    /// arrive first are kept for [`Domain::next_watch_event`]. Errs on
    /// timeout or on a ring the daemon (or a test) corrupted.
    pub fn request(&self, msg_ty: u32, payload: &[u8], timeout: Duration) -> Result<Message> {
        let deadline = Instant::now() + timeout;
        let mut state = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let req_id = state.next_req_id;
        state.next_req_id = state.next_req_id.wrapping_add(1);
        let ring = self.ring();
        ring.send(&Message::new(msg_ty, req_id, payload), deadline)?;
        loop {
            let reply = ring.receive(deadline)?;
            if reply.ty == ty::WATCH_EVENT {
                state.watch_events.push_back(reply);
            } else if reply.req_id == req_id {
                return Ok(reply);
            } else {
                return Err(Error::Protocol(format!(
                    "reply for req_id {} while waiting for {req_id}",
                    reply.req_id
                )));
            }
        }
    }

    /// Returns the oldest watch event received on the ring, reading the
    /// ring for up to `timeout` if none is queued.
    pub fn next_watch_event(&self, timeout: Duration) -> Result<Message> {
        let deadline = Instant::now() + timeout;
        let mut state = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(event) = state.watch_events.pop_front() {
            return Ok(event);
        }
        let msg = self.ring().receive(deadline)?;
        if msg.ty != ty::WATCH_EVENT {
            return Err(Error::Protocol(format!(
                "unsolicited message of type {} (req_id {}) on the ring",
                msg.ty, msg.req_id
            )));
        }
        Ok(msg)
    }

    fn ring(&self) -> GuestRing<'_> {
        GuestRing {
            page: &self.page,
            events: &self.events,
        }
    }
}

impl AsFd for Domain {
    /// The guest event endpoint, as for [`AsRawFd`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }
}

impl AsRawFd for Domain {
    /// The guest event endpoint: readable while the daemon's kick is pending.
    fn as_raw_fd(&self) -> RawFd {
        self.events.as_raw_fd()
    }
}

//! Our own `xenstore` client as a guest on a testbed domain's ring (feature
//! `xenstore`): what the guest kernel has, on the host, for tests of the
//! `xenstore` and `xenbus` crates against the real daemon.
//!
//! The daemon's kicks arrive as datagrams on the domain's event socket
//! ([`Domain`]'s fd); [`DomainEvents`] turns them into
//! [`xenstore::ring::RingEvents`].

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;

use nix::poll::{PollFd, PollFlags};
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use xenstore::ring::{RingEvents, RingPage};
use xenstore::{Client, Config, StdPlatform};

use crate::domain::Domain;
use crate::error::{Error, Result};

/// [`RingEvents`] over a testbed domain's event channel: the daemon's kicks
/// arrive as datagrams on the domain's socket; `wake_all` kicks a private
/// socket polled alongside it.
///
/// The ring transport has two waiters at once (a sender waiting for room in
/// the request ring, the receiver waiting for data), and a kick is meant for
/// both: whichever consumes it must not leave the other asleep. So one waiter
/// at a time polls the sockets; every kick is consumed under `waiters`, and
/// only while no waiter holds the poller role, and bumps its epoch, which
/// wakes the others (asleep on `changed`) to re-check their conditions.
pub struct DomainEvents {
    domain: Arc<Domain>,
    wake_rx: UnixDatagram,
    wake_tx: UnixDatagram,
    /// Guards the epoch and the poller role. Held only briefly: never while
    /// a condition is evaluated or the sockets are polled.
    waiters: Mutex<Waiters>,
    /// Waiters other than the poller sleep here until the epoch moves or
    /// the poller leaves.
    changed: Condvar,
}

#[derive(Default)]
struct Waiters {
    /// Kicks consumed so far (by any waiter).
    epoch: u64,
    /// A waiter is polling the sockets.
    polling: bool,
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
            waiters: Mutex::new(Waiters::default()),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Consumes pending kicks from the daemon and from `wake_all`; true if
    /// there was one.
    fn drain(&self) -> bool {
        // A failed read only means no kick is pending: the poll decides.
        let mut any = self.domain.take_event().unwrap_or(false);
        let mut buf = [0u8; 16];
        while self.wake_rx.recv(&mut buf).is_ok() {
            any = true;
        }
        any
    }

    /// Blocks until a kick is pending on either socket or `timeout` passes.
    fn poll(&self, timeout: Option<Duration>) {
        // At least 1 ms: a shorter positive timeout would spin.
        let timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
        let mut fds = [
            PollFd::new(self.domain.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN),
        ];
        // EINTR or an error just makes the caller re-check.
        let _ = crate::sys::poll(&mut fds, timeout);
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
        let mut waiters = self.lock();
        loop {
            // Consume kicks first: one arriving after `ready()` stays queued
            // and ends the poll below, or, if another waiter consumes it,
            // moves the epoch. Never while another waiter holds the poller
            // role: it may be about to poll, or inside `poll` (which re-checks
            // readiness after a wake-up), and would sleep on with its kick
            // gone. The poller drains here itself once its poll ends.
            if !waiters.polling && self.drain() {
                waiters.epoch += 1;
                self.changed.notify_all();
            }
            let seen = waiters.epoch;
            drop(waiters);
            if ready() {
                return true;
            }
            waiters = self.lock();
            if waiters.epoch != seen {
                continue; // Kicked while `ready()` ran.
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                drop(waiters);
                return ready();
            }
            if waiters.polling {
                waiters = match left {
                    None => self
                        .changed
                        .wait(waiters)
                        .unwrap_or_else(PoisonError::into_inner),
                    Some(left) => match self.changed.wait_timeout(waiters, left) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    },
                };
            } else {
                waiters.polling = true;
                drop(waiters);
                #[cfg(test)]
                tests::before_poll();
                self.poll(left);
                waiters = self.lock();
                waiters.polling = false;
                // Whoever still waits re-checks, and one of them polls next.
                self.changed.notify_all();
            }
        }
    }

    fn wake_all(&self) {
        // Ends the poller's poll; it then wakes the others. A full socket
        // already holds a pending wake-up.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::GuestEventChannel;
    use crate::page::SharedPage;
    use crate::toolstack::DomainConfig;
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    thread_local! {
        /// Runs in the polling waiter's thread after it has taken the poller
        /// role and released `waiters`, just before it polls: the window in
        /// which another waiter used to consume the poller's kick.
        static BEFORE_POLL: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    /// Called by `wait_until` just before `poll` (tests only).
    pub(super) fn before_poll() {
        if let Some(hook) = BEFORE_POLL.with(|h| h.borrow_mut().take()) {
            hook();
        }
    }

    /// A domain whose event channel this test kicks itself (no daemon).
    fn lone_domain(name: &str) -> (Arc<Domain>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("xstb-events-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let page = SharedPage::create(&dir.join("page")).unwrap();
        let guest = dir.join("guest");
        let events = GuestEventChannel::bind(guest.clone(), dir.join("daemon")).unwrap();
        (
            Arc::new(Domain::new(DomainConfig::new(1), page, events)),
            guest,
        )
    }

    /// The ring transport has two waiters at once (a sender waiting for room,
    /// the receiver waiting for data). A kick that arrives while one of them
    /// evaluates its condition must end its wait even when the other waiter
    /// is the one that consumes the kick.
    #[test]
    fn a_kick_consumed_by_one_waiter_still_ends_the_other_waiters_wait() {
        let (domain, guest_end) = lone_domain("two-waiters");
        let events = Arc::new(DomainEvents::new(domain).unwrap());
        let flag = Arc::new(AtomicBool::new(false));
        let (ev, f) = (Arc::clone(&events), Arc::clone(&flag));
        let slow = std::thread::spawn(move || {
            let start = Instant::now();
            // Reads false, then stays in `ready` while the kick comes and goes.
            let mut ready = || {
                let now = f.load(Ordering::SeqCst);
                if !now {
                    std::thread::sleep(Duration::from_millis(200));
                }
                now
            };
            let woke = ev.wait_until(&mut ready, Some(Duration::from_secs(10)));
            (woke, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        flag.store(true, Ordering::SeqCst);
        UnixDatagram::unbound()
            .unwrap()
            .send_to(&[1], &guest_end)
            .unwrap();
        // The other waiter consumes the kick; its own condition never holds.
        assert!(!events.wait_until(&mut || false, Some(Duration::from_millis(50))));
        let (woke, waited) = slow.join().unwrap();
        assert!(woke);
        assert!(
            waited < Duration::from_secs(5),
            "the kick was lost to the other waiter: woke only at the timeout ({waited:?})"
        );
        drop(events);
        if let Some(dir) = guest_end.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// The race behind hung large ring writes (issue 10): a waiter had
    /// taken the poller role but not yet entered `poll` when the kick for
    /// its condition arrived; another waiter entering `wait_until` consumed
    /// that kick, so the poller then slept with its condition true and
    /// nothing left to wake it. Deterministic: the kick and the other
    /// waiter run exactly in that window, through `before_poll`.
    #[test]
    fn a_kick_arriving_as_the_poller_starts_polling_still_ends_its_wait() {
        let (domain, guest_end) = lone_domain("poll-window");
        let events = Arc::new(DomainEvents::new(domain).unwrap());
        let flag = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel();
        let poller = {
            let (ev, f, guest_end) = (Arc::clone(&events), Arc::clone(&flag), guest_end.clone());
            std::thread::spawn(move || {
                let (ev2, f2) = (Arc::clone(&ev), Arc::clone(&f));
                BEFORE_POLL.with(|h| {
                    *h.borrow_mut() = Some(Box::new(move || {
                        // The poller's condition becomes true and the daemon
                        // kicks; then a second waiter (whose condition
                        // already holds) passes through `wait_until`.
                        f2.store(true, Ordering::SeqCst);
                        UnixDatagram::unbound()
                            .unwrap()
                            .send_to(&[1], &guest_end)
                            .unwrap();
                        let other = std::thread::spawn(move || ev2.wait_until(&mut || true, None));
                        assert!(other.join().unwrap());
                    }))
                });
                let woke = ev.wait_until(&mut || f.load(Ordering::SeqCst), None);
                done_tx.send(woke).unwrap();
            })
        };
        // Only a guard against hanging the suite: with the race, the poller
        // never returns on its own.
        let result = done_rx.recv_timeout(Duration::from_secs(30));
        if result.is_err() {
            events.wake_all(); // lets the stuck poller end
        }
        poller.join().unwrap();
        assert_eq!(
            result,
            Ok(true),
            "the poller's kick was consumed by the other waiter: it slept with its condition true"
        );
        drop(events);
        if let Some(dir) = guest_end.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

//! The driver-facing API.
//!
//! A [`Client`] is one connection to the daemon; clone it freely (clones
//! share the connection), use it from any thread. Node operations live in
//! the [`Store`] trait, implemented by the client (outside any transaction)
//! and by [`Transaction`] (inside one): `use xenstore::Store`.
//!
//! Failure behaviour: when the transport fails (the daemon closes the
//! socket, the ring's indexes are corrupt, ...), every request in flight
//! fails with [`XsError::Disconnected`] carrying the cause, and so does
//! every later call, at once. Watches stop firing. There is no automatic
//! reconnection: make a new client.

mod backoff;
mod store;
mod transaction;
mod watch;

use alloc::sync::Arc;
use alloc::vec::Vec;

pub use store::{Store, Target};
pub use transaction::Transaction;
pub use watch::Watch;

use crate::error::{TransportError, XsError};
use crate::platform::{Platform, WaitQueue as _};
use crate::request::Request;
use crate::ring::{RingEvents, RingPage, RingTransport};
use crate::runtime::{Config, Shared, Stats, WatchEvent};
use crate::transport::Transport;

/// Shuts the connection down when the last [`Client`] clone is dropped.
struct Handle<P: Platform> {
    shared: Arc<Shared<P>>,
}

impl<P: Platform> Drop for Handle<P> {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

/// A connection to the XenStore daemon.
///
/// Watch callbacks that capture a clone of their client keep the
/// connection alive until the watch is removed.
pub struct Client<P: Platform> {
    handle: Arc<Handle<P>>,
}

impl<P: Platform> Clone for Client<P> {
    fn clone(&self) -> Self {
        Client {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<P: Platform> Client<P> {
    /// A client over `transport`, running on `platform`'s threads.
    ///
    /// Starts the receive thread at once if `config.receive_mode` is
    /// `Dedicated` or the transport needs one (the ring does).
    /// Errors: [`XsError::Spawn`].
    pub fn new(
        platform: P,
        transport: impl Transport + 'static,
        config: Config,
    ) -> Result<Client<P>, XsError> {
        let shared = Shared::launch(platform, alloc::boxed::Box::new(transport), config)?;
        Ok(Client {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// A client over a xenstore ring page, signalled through `events` (the
    /// guest kernel's constructor). The ring is taken over as
    /// [`RingTransport::connect`] says: with the daemon's reconnection
    /// handshake where it offers one (bounded by
    /// [`Config::request_timeout`]), else discarding stale responses.
    ///
    /// Errors: [`XsError::Disconnected`] if the handshake did not complete;
    /// [`XsError::Spawn`].
    pub fn over_ring<E: RingEvents + 'static>(
        platform: P,
        page: RingPage,
        events: E,
        config: Config,
    ) -> Result<Client<P>, XsError> {
        let transport = RingTransport::connect(page, events, config.request_timeout)
            .map_err(XsError::Disconnected)?;
        Client::new(platform, transport, config)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<P>> {
        &self.handle.shared
    }

    /// Starts a transaction. It holds the suspend lock shared until it ends,
    /// so this waits while a suspend is under way.
    ///
    /// A suspend that is waiting keeps new shared holders out, so that it
    /// cannot be starved. A thread that already holds an open transaction
    /// and starts another one, or adds or removes a watch (which take the
    /// lock shared too), while a suspend begins waits for the suspend, which
    /// waits for its open transaction up to
    /// `Config::suspend_transaction_grace`: a delay, not a deadlock (with
    /// a grace of `None`, a deadlock). See [`Transaction`] for what becomes
    /// of a transaction still open when the suspend goes on.
    ///
    /// Errors: as for any request; at the daemon's quota of open
    /// transactions (unprivileged domains) the C daemon answers
    /// [`XsError::Enospc`] (oxenstored: [`XsError::Equota`]).
    pub fn transaction_start(&self) -> Result<Transaction<P>, XsError> {
        Transaction::start(self.clone())
    }

    /// Runs `body` in a transaction and commits it, retrying the whole
    /// transaction while the daemon answers EAGAIN (a conflicting change),
    /// at most `Config::transaction_attempts` times. Before each retry it
    /// waits a random time in a window that doubles with each loss (see
    /// `backoff`), so clients contending for the same nodes stop colliding.
    /// An error from `body` aborts the transaction and is returned (EAGAIN
    /// from `body` retries).
    ///
    /// Errors: `body`'s error; the last EAGAIN once attempts run out.
    ///
    /// ```no_run
    /// # #[cfg(feature = "std")] fn demo() -> Result<(), xenstore_client::XsError> {
    /// use xenstore_client::{Client, Store};
    /// let xs = Client::connect("/run/xenstored/socket")?;
    /// // Read, then write what was read plus one: atomic, retried on conflict.
    /// let n = xs.transaction(|t| {
    ///     let n: u32 = t.read_parsed("/local/domain/1/data/counter")?;
    ///     t.write_display("/local/domain/1/data/counter", n + 1)?;
    ///     Ok(n + 1)
    /// })?;
    /// # let _ = n; Ok(()) }
    /// ```
    pub fn transaction<R>(
        &self,
        mut body: impl FnMut(&Transaction<P>) -> Result<R, XsError>,
    ) -> Result<R, XsError> {
        let shared = self.shared();
        let attempts = shared.config.transaction_attempts.max(1);
        let mut last = None;
        for losses in 1..=attempts {
            let started_us = shared.platform.now_us();
            let t = self.transaction_start()?;
            let result = match body(&t) {
                Ok(value) => t.commit().map(|()| value),
                Err(e) => {
                    // Abort; its own failure matters less than `body`'s.
                    let _ = t.abort();
                    Err(e)
                }
            };
            match result {
                Err(e) if e.is_eagain() => last = Some(e),
                other => return other,
            }
            if losses < attempts {
                let now = shared.platform.now_us();
                let seed = now ^ shared.platform.current_thread_id().rotate_left(32);
                let pause = backoff::after_eagain(losses, now.saturating_sub(started_us), seed);
                P::WaitQueue::new().wait_until(&mut || false, Some(pause));
            }
        }
        Err(last.unwrap_or(XsError::InvalidState("no transaction attempt made")))
    }

    /// Watches `path` (or an `@special` path): `callback` runs on a
    /// callback thread for the daemon's initial event (possibly before this
    /// returns) and for each change at or below `path`, one event at a time
    /// in the daemon's order; other watches' callbacks may run meanwhile.
    /// Events per watch are queued up to `Config::watch_queue_limit`, with
    /// flow control; when events are dropped see [`WatchEvent::Overflow`].
    ///
    /// The returned handle removes the watch when dropped or on
    /// [`Watch::unwatch`]; [`Watch::detach`] keeps it for the client's life.
    /// Registering and removing take the suspend lock shared for a moment
    /// (see [`Client::transaction_start`] for what that forbids).
    /// Errors: invalid path; daemon errors (at its watch quota the C daemon
    /// answers [`XsError::E2big`], oxenstored [`XsError::Equota`]);
    /// [`XsError::Spawn`] if the watch or receive thread cannot start.
    ///
    /// ```no_run
    /// # #[cfg(feature = "std")] fn demo() -> Result<(), xenstore_client::XsError> {
    /// use xenstore_client::{Client, WatchEvent};
    /// let xs = Client::connect("/run/xenstored/socket")?;
    /// let watch = xs.watch("/local/domain/1/control", |event: &WatchEvent| match event {
    ///     WatchEvent::Changed { path } => println!("{path} changed"),
    ///     // Events were dropped here: re-read the subtree to catch up.
    ///     WatchEvent::Overflow { missed } => println!("{missed} events missed"),
    /// })?;
    /// // ... later: after unwatch returns, the callback never runs again.
    /// watch.unwatch()?;
    /// # Ok(()) }
    /// ```
    pub fn watch(
        &self,
        path: &str,
        callback: impl FnMut(&WatchEvent) + Send + 'static,
    ) -> Result<Watch<P>, XsError> {
        let id = Shared::add_watch(self.shared(), path, alloc::boxed::Box::new(callback))?;
        Ok(Watch::new(self.clone(), id, path))
    }

    /// Asks the daemon to drop every watch and transaction it holds for
    /// this connection (stale ones from a previous kernel on the same ring).
    /// Errors: [`XsError::InvalidState`] if this client has watches or open
    /// transactions (they would silently die).
    pub fn reset_watches(&self) -> Result<(), XsError> {
        self.shared().reset_watches()
    }

    /// Quiesces the client before a VM suspend: new transactions and watch
    /// registrations wait; it waits for the registrations under way, for
    /// open transactions to end (at most `Config::suspend_transaction_grace`:
    /// one still open after it does not hold the suspend up, see
    /// [`Transaction`]), then for every request in flight to end (its reply,
    /// or the request timeout). Requests made after this wait until
    /// [`Client::resume`] or [`Client::resume_cancelled`].
    /// Errors: [`XsError::InvalidState`] if already suspended.
    pub fn suspend(&self) -> Result<(), XsError> {
        self.shared().suspend()
    }

    /// After the VM really resumed (a save/restore or a migration: a new
    /// domain, so a fresh connection; the platform has re-established the
    /// ring page and re-bound its event channel): discards stale input and
    /// any partial message, ends the old connection's transactions (their
    /// next request and their commit give [`XsError::Eagain`], so
    /// [`Client::transaction`] runs them again), re-registers every watch
    /// (each gets an initial event again), and lets the requests that
    /// waited meanwhile go, to the new connection: relative paths then name
    /// the new home. For a suspend that did not happen use
    /// [`Client::resume_cancelled`], which loses nothing.
    /// Errors: the first failure met; the client is resumed regardless.
    pub fn resume(&self) -> Result<(), XsError> {
        self.shared().resume()
    }

    /// After a suspend that did not happen (cancelled, as after a
    /// checkpoint, or a failed suspend hypercall): the guest never left its
    /// daemon, so everything is kept: watches, unread events in the ring,
    /// the connection. Lets waiting requests go.
    /// Errors: [`XsError::InvalidState`] if not suspended.
    pub fn resume_cancelled(&self) -> Result<(), XsError> {
        self.shared().resume_cancelled()
    }

    /// Sends any request (e.g. the toolstack's INTRODUCE) outside a
    /// transaction and returns the reply payload, checked for its type's
    /// shape.
    pub fn raw_request(&self, request: &Request<'_>) -> Result<Vec<u8>, XsError> {
        self.shared().call(request, crate::runtime::Tx::NONE)
    }

    /// The client's counters (replies, dropped messages, overflows, ...).
    pub fn stats(&self) -> Stats {
        self.shared().stats()
    }

    /// Why the connection failed, if it did.
    pub fn failure(&self) -> Option<TransportError> {
        self.shared().failure()
    }
}

#[cfg(feature = "std")]
impl Client<crate::StdPlatform> {
    /// Connects to the daemon's unix socket at `path` with the default
    /// [`Config`] (requesters read their own replies until a watch exists).
    pub fn connect(path: impl AsRef<std::path::Path>) -> Result<Self, XsError> {
        Self::connect_with(path, Config::default())
    }

    /// Like [`Client::connect`] with a chosen configuration.
    pub fn connect_with(
        path: impl AsRef<std::path::Path>,
        config: Config,
    ) -> Result<Self, XsError> {
        let transport =
            crate::transport::UnixStreamTransport::connect(path).map_err(XsError::Disconnected)?;
        Client::new(crate::StdPlatform, transport, config)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn handles_can_be_shared_and_moved_across_threads() {
        fn shared<T: Send + Sync>() {}
        fn moved<T: Send>() {}
        shared::<Client<crate::StdPlatform>>();
        shared::<Transaction<crate::StdPlatform>>();
        moved::<Watch<crate::StdPlatform>>();
        moved::<XsError>();
    }
}

//! Suspend/resume, and watch registration (which takes part in it).
//!
//! As in FreeBSD: every open transaction holds the suspend lock shared, and
//! so does a watch (un)registration while it talks to the daemon.
//! `suspend()` takes it exclusive (holding off new transactions and
//! registrations, waiting for the registrations under way and, for at most
//! `Config::suspend_transaction_grace`, for open transactions to end), then
//! closes the request gate and waits for the requests in flight.
//!
//! What waits for what: the suspend waits for requests (each ends by its
//! reply or the request timeout) and for registrations (one request each),
//! never unboundedly for a transaction, whose owner may keep it open as
//! long as it likes, or may itself be waiting for something the suspend
//! holds up; so a transaction left open cannot make the toolstack's suspend
//! time out.
//!
//! Two ways back. `resume_cancelled()` (the VM never moved: a checkpoint,
//! `xl save -c`, or a failed suspend hypercall) keeps everything: the ring's
//! unread bytes, watches, open transactions. `resume()` (a real resume
//! after a save/restore or a migration: a new domain, a fresh connection,
//! maybe a new daemon) starts a new connection generation: stale input and
//! partial messages are dropped, transactions of the old generation end
//! with EAGAIN, every watch is registered again (the new daemon sends each
//! its initial event, so callbacks re-read their state; a daemon that kept
//! them answers EEXIST, which is fine), then the requests that waited at
//! the gate go out, on the new connection. No request is ever in flight
//! across the platform's suspend: each ended before it.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::requests::{Gate, Tx};
use super::watch::Callback;
use super::{Deferred, Outcome, Shared};
use crate::XsError;
use crate::error::TransportError;
use crate::path::{self, PathKind};
use crate::platform::{Lock, Platform, WaitQueue};
use crate::protocol::WatchId;
use crate::request::Request;

impl<P: Platform> Shared<P> {
    /// Registers a watch on `path`; events go to `callback` on the watch
    /// thread. The daemon's initial event may run the callback before this
    /// returns.
    pub(crate) fn add_watch(
        this: &Arc<Self>,
        path: &str,
        callback: Callback,
    ) -> Result<WatchId, XsError> {
        path::validate(path, PathKind::Watch)?;
        this.watches.ensure_thread()?;
        // Watch events arrive unasked: someone must always be reading.
        Self::ensure_receiver(this)?;
        this.suspend_lock.lock_shared();
        let (id, token) = this.watches.add(path, callback);
        this.conn.with(|c| c.core.register_watch(&token, id));
        let result = this.call(
            &Request::Watch {
                path,
                token: &token,
            },
            Tx::NONE,
        );
        let cleanup = match result {
            Ok(_) => None,
            Err(ref e) => {
                if matches!(e, XsError::Timeout(_)) {
                    // The daemon may still add it: remove it then.
                    this.defer(Deferred::Unwatch {
                        path: path.into(),
                        token: token.clone(),
                    });
                }
                this.conn.with(|c| c.core.unregister_watch(&token));
                this.watches.remove(id)
            }
        };
        this.suspend_lock.unlock_shared();
        drop(cleanup); // The callback, outside every lock.
        result.map(|_| id)
    }

    /// Removes watch `id`. When this returns, none of its callbacks runs or
    /// will run, unless called from its own callback (which then finishes).
    /// The watch is gone locally even if the daemon's answer is an error,
    /// which is returned (ENOENT, the daemon not knowing it, is not one).
    pub(crate) fn remove_watch(&self, id: WatchId) -> Result<(), XsError> {
        self.suspend_lock.lock_shared();
        let removed = self.watches.remove(id);
        let result = match &removed {
            Some((path, token, _)) => {
                let r = self.call(&Request::Unwatch { path, token }, Tx::NONE);
                // Only now: events already sent count as "after unwatch".
                self.conn.with(|c| c.core.unregister_watch(token));
                match r {
                    Ok(_) | Err(XsError::Enoent(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            None => Ok(()),
        };
        self.suspend_lock.unlock_shared();
        drop(removed);
        self.watches
            .wait_idle(id, self.platform.current_thread_id());
        result
    }

    /// Drops every watch and transaction the daemon keeps for this
    /// connection (left by a previous user of the ring, e.g. before a
    /// kexec). Refused while this client has watches or transactions.
    pub(crate) fn reset_watches(&self) -> Result<(), XsError> {
        if !self.watches.is_empty() {
            return Err(XsError::InvalidState(
                "reset_watches with watches registered",
            ));
        }
        if self.conn.with(|c| c.core.open_transactions()) > 0 {
            return Err(XsError::InvalidState(
                "reset_watches with transactions open",
            ));
        }
        self.call(&Request::ResetWatches, Tx::NONE).map(drop)
    }

    /// Quiesces the client for a VM suspend: holds off new transactions and
    /// watch registrations, waits for the registrations under way and, up to
    /// `Config::suspend_transaction_grace`, for open transactions to end;
    /// then closes the gate (later requests wait until the resume) and
    /// waits for every request in flight to end (reply, or the request
    /// timeout). A thread holding an open transaction may call it: the
    /// grace then runs out (with a grace of `None` it would wait for itself).
    pub(crate) fn suspend(&self) -> Result<(), XsError> {
        if self.gate_closed.load(Ordering::SeqCst) {
            return Err(XsError::InvalidState("already suspended"));
        }
        let still_open = self
            .suspend_lock
            .lock_exclusive_within(self.config.suspend_transaction_grace);
        if still_open > 0 {
            log::warn!(
                "xenstore: suspending with {still_open} transaction(s) still open: \
                 they go on after a cancelled suspend, end with EAGAIN after a resume"
            );
        }
        // Under `conn`: see `Shared::gate_closed`.
        self.conn
            .with(|_| self.gate_closed.store(true, Ordering::SeqCst));
        let mut drained =
            || self.active.load(Ordering::SeqCst) == 0 || self.conn.with(|c| c.failed.is_some());
        self.conn_queue.wait_until(&mut drained, None);
        // Nobody waits for a reply now; the reader must not be part-way
        // through the ring when the VM stops (it may be cleared under it).
        self.transport.pause();
        Ok(())
    }

    /// Undoes [`Shared::suspend`] after a real resume: the connection is a
    /// fresh one (after a save/restore or a migration: a new domain, maybe a
    /// new daemon; the platform has re-established the ring and its event
    /// channel). As Linux's `xs_resume`: stale input in the ring is dropped
    /// (`xb_init_comms`), so is any partial message and every clean-up
    /// queued for the old connection; transactions of the old connection
    /// end ([`crate::XsError::Eagain`] on their next request); every watch
    /// is registered again (the daemon then fires each once, so callbacks
    /// re-read their state; EEXIST from a daemon that kept it is fine);
    /// then the requests that waited at the gate are sent, in the new
    /// connection. No request is in flight here: `suspend` waited for each
    /// to end. Returns the first error met (the client is resumed
    /// regardless).
    pub(crate) fn resume(&self) -> Result<(), XsError> {
        if !self.gate_closed.load(Ordering::SeqCst) {
            return Err(XsError::InvalidState("resume without suspend"));
        }
        let mut first_error = None;
        if let Err(e) = self.transport.resume() {
            first_error = Some(XsError::Disconnected(e));
        }
        let orphans = self.conn.with(|c| {
            c.epoch += 1;
            c.deferred.clear();
            let mut orphans = c.core.reset_connection();
            // None expected (see above); never left waiting if there are.
            orphans.retain(|w| w.deliver(Outcome::Failed(TransportError::Closed)));
            orphans
        });
        for w in orphans {
            w.queue.wake_all();
        }
        // Only now may the reader parse again: from a clean state.
        self.transport.unpause();
        for (path, token) in self.watches.registered() {
            let req = Request::Watch {
                path: &path,
                token: &token,
            };
            match self
                .start(&req, Tx::NONE, Gate::Bypass)
                .and_then(|t| self.finish(t, Some(&path)))
            {
                // EEXIST: the daemon kept it (no migration happened, or the
                // suspend was cancelled); FreeBSD ignores it the same way.
                Ok(_) | Err(XsError::Eexist(_)) => {}
                Err(e) => {
                    log::warn!("xenstore: re-registering watch on {path} after resume failed: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        self.open_gate();
        first_error.map_or(Ok(()), Err)
    }

    /// Undoes [`Shared::suspend`] when the VM did not move (the suspend was
    /// cancelled, e.g. `xl save -c`, or the suspend hypercall failed): the
    /// daemon kept our watches and the ring holds a valid stream, so
    /// everything is kept (unread events included); requests go again.
    pub(crate) fn resume_cancelled(&self) -> Result<(), XsError> {
        if !self.gate_closed.load(Ordering::SeqCst) {
            return Err(XsError::InvalidState("resume without suspend"));
        }
        self.transport.unpause();
        self.open_gate();
        Ok(())
    }

    /// Lets requests through again and ends the suspension.
    fn open_gate(&self) {
        self.conn
            .with(|_| self.gate_closed.store(false, Ordering::SeqCst));
        self.conn_queue.wake_all();
        self.suspend_lock.unlock_exclusive();
    }
}

//! Suspend/resume, and watch registration (which takes part in it).
//!
//! As in FreeBSD: every open transaction holds the suspend lock shared, and
//! so does a watch (un)registration while it talks to the daemon.
//! `suspend()` takes it exclusive (waiting for open transactions to end and
//! holding off new ones), then closes the request gate and waits for the
//! requests in flight. `resume()` re-registers every watch, opens the gate
//! and releases the lock. After a migration the new daemon knows none of
//! our watches and sends each its initial event again, so callbacks re-read
//! their state; a daemon that kept them answers EEXIST, which is fine.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::requests::Gate;
use super::watch::Callback;
use super::{Deferred, Shared};
use crate::XsError;
use crate::core::WatchId;
use crate::path::{self, PathKind};
use crate::platform::{Lock, Platform, WaitQueue};
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
            0,
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
                let r = self.call(&Request::Unwatch { path, token }, 0);
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
        self.call(&Request::ResetWatches, 0).map(drop)
    }

    /// Quiesces the client for a VM suspend: waits for open transactions to
    /// end (new ones wait), then for requests in flight; later requests wait
    /// until [`Shared::resume`]. Must not be called by a thread holding an
    /// open transaction (it would wait for itself).
    pub(crate) fn suspend(&self) -> Result<(), XsError> {
        if self.gate_closed.load(Ordering::SeqCst) {
            return Err(XsError::InvalidState("already suspended"));
        }
        self.suspend_lock.lock_exclusive();
        // Under `conn`: see `Shared::gate_closed`.
        self.conn
            .with(|_| self.gate_closed.store(true, Ordering::SeqCst));
        let mut drained =
            || self.active.load(Ordering::SeqCst) == 0 || self.conn.with(|c| c.failed.is_some());
        self.conn_queue.wait_until(&mut drained, None);
        Ok(())
    }

    /// Undoes [`Shared::suspend`]: lets the transport recover its stream,
    /// re-registers every watch, then lets requests through again. Returns
    /// the first error met (the client is resumed regardless).
    pub(crate) fn resume(&self) -> Result<(), XsError> {
        if !self.gate_closed.load(Ordering::SeqCst) {
            return Err(XsError::InvalidState("resume without suspend"));
        }
        let mut first_error = None;
        match self.transport.resume() {
            // Bytes were discarded: any partial message is gone with them.
            // (Nothing is in flight: `suspend` waited for every request.)
            Ok(true) => drop(self.conn.with(|c| c.core.reset_connection())),
            Ok(false) => {}
            Err(e) => first_error = Some(XsError::Disconnected(e)),
        }
        for (path, token) in self.watches.registered() {
            let req = Request::Watch {
                path: &path,
                token: &token,
            };
            match self
                .start(&req, 0, Gate::Bypass)
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

//! The request side: the suspend gate, framing into the outbox, batched
//! sending, and turning an outcome into the caller's result.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem;
use core::sync::atomic::Ordering;

use super::{ConnState, Deferred, Outcome, Shared, Slot};
use crate::error::{Context, XsError};
use crate::platform::{Lock, Platform, WaitQueue};
use crate::protocol::ReplyError;
use crate::request::Request;
use crate::sync::Deadline;
use crate::wire::MsgType;

/// A request in flight: redeem it with [`Shared::finish`].
pub(crate) struct Ticket<P: Platform> {
    slot: Arc<Slot<P>>,
    req_id: u32,
    op: MsgType,
    deadline: Deadline,
    /// The connection generation it was sent in.
    epoch: u64,
}

impl<P: Platform> Ticket<P> {
    /// The connection generation the request was sent in (a transaction
    /// started by it belongs to that one).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether its outcome is in: [`Shared::finish`] would not wait.
    pub(crate) fn answered(&self) -> bool {
        self.slot.state.with(|s| s.outcome.is_some())
    }
}

/// The transaction a request belongs to: the daemon's id (0: none) and the
/// connection generation the transaction was started in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tx {
    pub(crate) id: u32,
    pub(crate) epoch: u64,
}

impl Tx {
    /// Outside any transaction.
    pub(crate) const NONE: Tx = Tx { id: 0, epoch: 0 };
}

/// Whether a request may pass the suspend gate while it is closed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Wait while a suspend is in progress.
    Respect,
    /// `resume` re-registering watches.
    Bypass,
}

/// What [`Shared::queue`] did.
pub(crate) enum Entered<P: Platform> {
    /// Framed: the request is in flight once flushed.
    Ticket(Ticket<P>),
    /// Not framed: a suspend closed the gate.
    GateClosed,
}

/// Whether a requester writes the outbox at once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SendWhen {
    Now,
    /// The caller will flush after framing more.
    Later,
}

/// What `enter` decided under the connection lock.
enum Step {
    /// Framed; `batch` is `Some` if this requester must write the outbox
    /// now (else a sender is at it, or the caller flushes later).
    Queued {
        req_id: u32,
        batch: Option<Vec<u8>>,
        epoch: u64,
    },
    /// The gate is closed: nothing framed.
    GateClosed,
    Refused(XsError),
}

impl<P: Platform> Shared<P> {
    /// Sends `req` in transaction `tx` and waits for its reply payload.
    ///
    /// Errors: the request's own checks, daemon errors with `req`'s context,
    /// [`XsError::Protocol`], [`XsError::Timeout`], [`XsError::Disconnected`];
    /// [`XsError::Eagain`] for a request in a transaction that a real
    /// resume (a fresh connection) ended.
    pub(crate) fn call(&self, req: &Request<'_>, tx: Tx) -> Result<Vec<u8>, XsError> {
        let ticket = self.start(req, tx, Gate::Respect)?;
        self.finish(ticket, req.path())
    }

    /// Sends `req` without waiting for the reply (pipelining). Every ticket
    /// must be passed to [`Shared::finish`]. Waits while the suspend gate is
    /// closed (unless `gate` bypasses it): so a caller must not hold
    /// unfinished tickets, which `suspend` waits for (use [`Shared::queue`]).
    pub(crate) fn start(
        &self,
        req: &Request<'_>,
        tx: Tx,
        gate: Gate,
    ) -> Result<Ticket<P>, XsError> {
        loop {
            match self.enter(req, tx, gate, SendWhen::Now)? {
                Entered::Ticket(ticket) => return Ok(ticket),
                Entered::GateClosed => {
                    let mut open = || {
                        !self.gate_closed.load(Ordering::SeqCst)
                            || self.conn.with(|c| c.failed.is_some())
                    };
                    self.conn_queue.wait_until(&mut open, None);
                }
            }
        }
    }

    /// Frames `req` into the outbox without writing it, so that several
    /// requests leave in one write: the caller must call [`Shared::flush`]
    /// before it waits for any of them (a concurrent sender may take them
    /// out earlier; that is fine). Never waits at the suspend gate: while it
    /// is closed this returns [`Entered::GateClosed`], and the caller must
    /// finish the tickets it holds before it waits there (by
    /// [`Shared::start`]), since `suspend` waits for them.
    pub(crate) fn queue(&self, req: &Request<'_>, tx: Tx) -> Result<Entered<P>, XsError> {
        self.enter(req, tx, Gate::Respect, SendWhen::Later)
    }

    /// Writes what [`Shared::queue`] framed, unless a sender is already at
    /// it (its loop then writes it too).
    pub(crate) fn flush(&self) {
        let batch = self.conn.with(|c| {
            let idle = !c.outbox.is_empty() && !c.sending;
            idle.then(|| {
                c.sending = true;
                mem::take(&mut c.spare)
            })
        });
        if let Some(batch) = batch {
            self.write_outbox(batch);
        }
    }

    /// Frames `req` into the outbox (and writes it, for `SendWhen::Now`,
    /// unless a sender is at it), or refuses it, or reports a closed gate
    /// when `gate` respects it. Never waits.
    fn enter(
        &self,
        req: &Request<'_>,
        tx: Tx,
        gate: Gate,
        send: SendWhen,
    ) -> Result<Entered<P>, XsError> {
        let slot = Slot::<P>::pooled(&self.slots);
        let step = self.conn.with(|c| {
            if let Some(cause) = &c.failed {
                return Step::Refused(XsError::Disconnected(cause.clone()));
            }
            if gate == Gate::Respect && self.gate_closed.load(Ordering::SeqCst) {
                return Step::GateClosed;
            }
            if tx.id != 0 && tx.epoch != c.epoch {
                // A real resume came between: the daemon we talk to now
                // never heard of this transaction (or gave its id to
                // another). Nothing is sent; retrying it is the cure.
                return Step::Refused(XsError::Eagain(Context::new(req.msg_type(), req.path())));
            }
            match c.core.encode(req, tx.id, Arc::clone(&slot), &mut c.outbox) {
                Err(e) => Step::Refused(e),
                Ok(req_id) => {
                    // Clean-ups go with a request that is sure to be
                    // written, never into an outbox nobody will send
                    // (which a resume would then send to a new daemon).
                    Self::frame_deferred(c);
                    self.active.fetch_add(1, Ordering::SeqCst);
                    let sender = send == SendWhen::Now && !mem::replace(&mut c.sending, true);
                    Step::Queued {
                        req_id,
                        batch: sender.then(|| mem::take(&mut c.spare)),
                        epoch: c.epoch,
                    }
                }
            }
        });
        match step {
            Step::Queued {
                req_id,
                batch,
                epoch,
            } => {
                // A reply is awaited now: a reader paused for a full
                // watch queue must go on (see `watch`'s flow control).
                self.watches.wake_reader();
                // The deadline starts before sending, so the time spent
                // writing counts against it.
                let deadline = Deadline::after(&self.platform, self.config.request_timeout);
                if let Some(batch) = batch {
                    self.write_outbox(batch);
                }
                Ok(Entered::Ticket(Ticket {
                    slot,
                    req_id,
                    op: req.msg_type(),
                    deadline,
                    epoch,
                }))
            }
            Step::Refused(e) => {
                self.recycle_slot(slot);
                Err(e)
            }
            Step::GateClosed => {
                self.recycle_slot(slot);
                Ok(Entered::GateClosed)
            }
        }
    }

    /// The sender's loop: writes the outbox until it is empty. `batch` is an
    /// empty buffer to swap with it.
    ///
    /// Each write may wait for room for at most the request timeout (from
    /// the start of that write): a daemon that stopped reading fails the
    /// connection with [`crate::TransportError::SendTimedOut`], and with it
    /// every request in flight, since a message cannot be taken back
    /// half-written.
    fn write_outbox(&self, mut batch: Vec<u8>) {
        loop {
            let more = self.conn.with(|c| {
                if c.outbox.is_empty() || c.failed.is_some() {
                    c.sending = false;
                    c.spare = mem::take(&mut batch);
                    false
                } else {
                    mem::swap(&mut c.outbox, &mut batch);
                    true
                }
            });
            if !more {
                return;
            }
            let deadline = Deadline::after(&self.platform, self.config.request_timeout);
            let time_left = || deadline.remaining(&self.platform);
            if let Err(e) = self.transport.send(&batch, &time_left) {
                // Fails every request in flight, these included.
                self.fail(e);
                self.conn.with(|c| c.sending = false);
                return;
            }
            batch.clear();
        }
    }

    /// Waits for a started request's reply. `path` is the request's path,
    /// for the error context.
    pub(crate) fn finish(&self, ticket: Ticket<P>, path: Option<&str>) -> Result<Vec<u8>, XsError> {
        let Ticket {
            slot,
            req_id,
            op,
            deadline,
            epoch: _,
        } = ticket;
        let outcome = self.wait_for_outcome(&slot, deadline).or_else(|| {
            match self.conn.with(|c| c.core.abandon(req_id)) {
                // Gave up before the reply: it will be dropped when it comes.
                Some(_) => None,
                // The reply (or the connection's failure) won the race: both
                // are delivered to the slot under the connection lock, so it
                // is there now.
                None => Some(slot.state.with(|s| s.outcome.take()).unwrap_or_else(|| {
                    Outcome::Failed(self.failure().unwrap_or(crate::TransportError::Closed))
                })),
            }
        });
        if outcome.is_none() {
            // The ring's error flag may have been set with no event to
            // tell us: a timeout is when to look.
            if let Err(e) = self.transport.health() {
                self.fail(e);
            }
            self.pass_reader_on();
        }
        self.leave_gate();
        self.recycle_slot(slot);
        match outcome {
            // Gave up; if the connection failed meanwhile (the health
            // check above, say), that is the better answer.
            None => match self.failure() {
                Some(cause) => Err(XsError::Disconnected(cause)),
                None => Err(XsError::Timeout(Context::new(op, path))),
            },
            Some(Outcome::Reply(Ok(body))) => Ok(body),
            Some(Outcome::Reply(Err(ReplyError::Daemon(code)))) => {
                Err(XsError::from_code(code, Context::new(op, path)))
            }
            Some(Outcome::Reply(Err(ReplyError::Protocol(violation)))) => Err(XsError::Protocol {
                ctx: Context::new(op, path),
                violation,
            }),
            Some(Outcome::Failed(cause)) => Err(XsError::Disconnected(cause)),
        }
    }

    /// Queues a clean-up request for the next sender.
    pub(crate) fn defer(&self, job: Deferred) {
        self.conn.with(|c| c.deferred.push(job));
    }

    /// Frames queued clean-ups into the outbox; nobody waits for their
    /// replies (the core reports them as late). One that cannot be framed
    /// any more (its transaction already ended) is dropped.
    fn frame_deferred(c: &mut ConnState<P>) {
        for job in mem::take(&mut c.deferred) {
            let _ = match &job {
                Deferred::AbortTransaction(tx) => c.core.encode_unattended(
                    &Request::TransactionEnd { commit: false },
                    *tx,
                    &mut c.outbox,
                ),
                Deferred::Unwatch { path, token } => {
                    c.core
                        .encode_unattended(&Request::Unwatch { path, token }, 0, &mut c.outbox)
                }
            };
        }
    }

    /// A request is done: `suspend` may be waiting for the last one.
    fn leave_gate(&self) {
        // SeqCst pairs with `suspend`: it closes the gate, then reads
        // `active`; we decrement `active`, then read the gate.
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1
            && self.gate_closed.load(Ordering::SeqCst)
        {
            self.conn_queue.wake_all();
        }
    }

    /// Returns a slot to the pool if nothing else refers to it (an abandoned
    /// request's slot may still be referenced for a moment by a reader).
    fn recycle_slot(&self, slot: Arc<Slot<P>>) {
        slot.state.with(|s| {
            s.outcome = None;
            s.nudged = false;
            s.sleeping = false;
        });
        if Arc::strong_count(&slot) == 1 {
            self.slots.with(|p| p.push(slot));
        }
    }
}

//! The request side: the suspend gate, framing, sending, and turning an
//! outcome into the caller's result.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem;

use super::{Deferred, Outcome, Shared, Slot};
use crate::core::ReplyError;
use crate::error::{Context, XsError};
use crate::platform::{Lock, Platform, WaitQueue};
use crate::request::Request;
use crate::sync::Deadline;
use crate::wire::MsgType;

/// A request in flight: redeem it with [`Shared::finish`].
pub(crate) struct Ticket<P: Platform> {
    slot: Arc<Slot<P>>,
    req_id: u32,
    op: MsgType,
    deadline: Deadline,
}

/// Whether a request may pass the suspend gate while it is closed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Wait while a suspend is in progress.
    Respect,
    /// `resume` re-registering watches.
    Bypass,
}

impl<P: Platform> Shared<P> {
    /// Sends `req` in transaction `tx_id` and waits for its reply payload.
    ///
    /// Errors: the request's own checks, daemon errors with `req`'s context,
    /// [`XsError::Protocol`], [`XsError::Timeout`], [`XsError::Disconnected`].
    pub(crate) fn call(&self, req: &Request<'_>, tx_id: u32) -> Result<Vec<u8>, XsError> {
        let ticket = self.start(req, tx_id, Gate::Respect)?;
        self.finish(ticket, req.path())
    }

    /// Sends `req` without waiting for the reply (pipelining). Every ticket
    /// must be passed to [`Shared::finish`].
    pub(crate) fn start(
        &self,
        req: &Request<'_>,
        tx_id: u32,
        gate: Gate,
    ) -> Result<Ticket<P>, XsError> {
        self.enter_gate(gate)?;
        let ticket = self.encode_and_send(req, tx_id);
        if ticket.is_err() {
            self.leave_gate();
        }
        ticket
    }

    fn encode_and_send(&self, req: &Request<'_>, tx_id: u32) -> Result<Ticket<P>, XsError> {
        self.send_deferred();
        let slot = Slot::<P>::pooled(&self.slots);
        let mut buf = slot.state.with(|s| mem::take(&mut s.buf));
        buf.clear();
        let encoded = self.conn.with(|c| match &c.failed {
            Some(cause) => Err(XsError::Disconnected(cause.clone())),
            None => c.core.encode(req, tx_id, Arc::clone(&slot), &mut buf),
        });
        let req_id = match encoded {
            Ok(id) => id,
            Err(e) => {
                self.recycle(slot, buf);
                return Err(e);
            }
        };
        // The deadline starts before sending: a send blocked on a full ring
        // counts against it too.
        let deadline = Deadline::after(&self.platform, self.config.request_timeout);
        self.send_lock.lock();
        let sent = self.transport.send(&buf);
        self.send_lock.unlock();
        slot.state.with(|s| s.buf = buf);
        if let Err(e) = sent {
            // Fails every request in flight, this one included.
            self.fail(e);
        }
        Ok(Ticket {
            slot,
            req_id,
            op: req.msg_type(),
            deadline,
        })
    }

    /// Waits for a started request's reply. `path` is the request's path,
    /// for the error context.
    pub(crate) fn finish(&self, ticket: Ticket<P>, path: Option<&str>) -> Result<Vec<u8>, XsError> {
        let Ticket {
            slot,
            req_id,
            op,
            deadline,
        } = ticket;
        let outcome = match self.wait_for_outcome(&slot, deadline) {
            Some(outcome) => outcome,
            None => match self.conn.with(|c| c.core.abandon(req_id)) {
                // Gave up before the reply: it will be dropped when it comes.
                Some(_) => {
                    self.pass_reader_on();
                    self.leave_gate();
                    self.recycle_slot(slot);
                    return Err(XsError::Timeout(Context::new(op, path)));
                }
                // The reply (or the connection's failure) won the race: both
                // are delivered to the slot under the connection lock, so it
                // is there now.
                None => slot.state.with(|s| s.outcome.take()).unwrap_or_else(|| {
                    Outcome::Failed(self.failure().unwrap_or(crate::TransportError::Closed))
                }),
            },
        };
        self.leave_gate();
        self.recycle_slot(slot);
        match outcome {
            Outcome::Reply(Ok(body)) => Ok(body),
            Outcome::Reply(Err(ReplyError::Daemon(code))) => {
                Err(XsError::from_code(code, Context::new(op, path)))
            }
            Outcome::Reply(Err(ReplyError::Protocol(violation))) => Err(XsError::Protocol {
                ctx: Context::new(op, path),
                violation,
            }),
            Outcome::Failed(cause) => Err(XsError::Disconnected(cause)),
        }
    }

    /// Queues a clean-up request for the next sender.
    pub(crate) fn defer(&self, job: Deferred) {
        self.conn.with(|c| c.deferred.push(job));
    }

    /// Sends queued clean-ups without waiting for their replies.
    fn send_deferred(&self) {
        let jobs = self.conn.with(|c| mem::take(&mut c.deferred));
        for job in jobs {
            let mut buf = Vec::new();
            let encoded = self.conn.with(|c| match &job {
                Deferred::AbortTransaction(tx) => c.core.encode_unattended(
                    &Request::TransactionEnd { commit: false },
                    *tx,
                    &mut buf,
                ),
                Deferred::Unwatch { path, token } => {
                    c.core
                        .encode_unattended(&Request::Unwatch { path, token }, 0, &mut buf)
                }
            });
            if encoded.is_ok() {
                self.send_lock.lock();
                let sent = self.transport.send(&buf);
                self.send_lock.unlock();
                if let Err(e) = sent {
                    self.fail(e);
                    return;
                }
            }
        }
    }

    /// Passes the suspend gate (waiting while a suspend is in progress) and
    /// counts the request as active.
    fn enter_gate(&self, gate: Gate) -> Result<(), XsError> {
        let mut verdict = None;
        let mut pass = || {
            self.conn.with(|c| {
                if let Some(cause) = &c.failed {
                    verdict = Some(Err(XsError::Disconnected(cause.clone())));
                } else if !c.gate_closed || gate == Gate::Bypass {
                    c.active_requests += 1;
                    verdict = Some(Ok(()));
                }
                verdict.is_some()
            })
        };
        self.conn_queue.wait_until(&mut pass, None);
        verdict.unwrap_or(Err(XsError::InvalidState(
            "suspend gate wait ended without a verdict",
        )))
    }

    fn leave_gate(&self) {
        let wake = self.conn.with(|c| {
            c.active_requests = c.active_requests.saturating_sub(1);
            c.gate_closed && c.active_requests == 0
        });
        if wake {
            self.conn_queue.wake_all();
        }
    }

    fn recycle(&self, slot: Arc<Slot<P>>, buf: Vec<u8>) {
        slot.state.with(|s| s.buf = buf);
        self.recycle_slot(slot);
    }

    /// Returns a slot to the pool if nothing else refers to it (an abandoned
    /// request's slot stays with the core until its reply comes).
    fn recycle_slot(&self, slot: Arc<Slot<P>>) {
        slot.state.with(|s| {
            s.outcome = None;
            s.nudged = false;
        });
        if Arc::strong_count(&slot) == 1 {
            self.slots.with(|p| p.push(slot));
        }
    }
}

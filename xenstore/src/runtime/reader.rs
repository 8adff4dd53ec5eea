//! The receive side: reading from the transport, demultiplexing through the
//! core, and the reader token that decides who reads.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::mem;
use core::sync::atomic::Ordering;

use super::{Deferred, Outcome, ReaderCtx, Shared, Slot};
use crate::XsError;
use crate::error::TransportError;
use crate::platform::{Lock, Platform, SpawnError, WaitQueue};
use crate::protocol::Event;
use crate::reply;
use crate::sync::Deadline;
use crate::wire::MsgType;

impl<P: Platform> Shared<P> {
    /// Reads once, at most `limit` bytes, from the transport and dispatches
    /// what arrived: replies to their slots (waking exactly those
    /// requesters), watch events to the watch queues. Called only by the
    /// reader token holder.
    pub(super) fn read_once(
        &self,
        ctx: &mut ReaderCtx<P>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<(), TransportError> {
        let limit = limit.clamp(1, ctx.buf.len());
        let n = match self
            .transport
            .recv(&mut ctx.buf[..limit], self.recv_timeout(deadline))
        {
            Err(TransportError::TimedOut) => return Err(self.stalled_message()),
            received => received?,
        };
        let mut broken = None;
        let ReaderCtx {
            buf,
            wakes,
            events,
            deferred,
        } = ctx;
        self.conn.with(|c| {
            c.core.feed(&buf[..n], &mut |event| match event {
                Event::Reply { waiter, result } => {
                    if waiter.deliver(Outcome::Reply(result)) {
                        wakes.push(waiter);
                    }
                }
                Event::Watch { watch, path } => events.push((watch, path)),
                Event::LateReply {
                    ty: MsgType::TransactionStart,
                    result: Ok(body),
                } => {
                    // Its requester timed out: abort what it started.
                    if let Ok(tx) = reply::transaction_id(&body) {
                        deferred.push(Deferred::AbortTransaction(tx));
                    }
                }
                Event::LateReply { ty, result } => {
                    log::debug!("xenstore: late {ty} reply dropped: {result:?}");
                }
                Event::Dropped(why) => {
                    log::warn!("xenstore: dropped a message from the daemon: {why:?}")
                }
                Event::Broken(violation) => broken = Some(violation),
            });
            c.deferred.append(deferred);
            self.note_input(c);
        });
        for slot in wakes.drain(..) {
            slot.queue.wake_all();
        }
        if !events.is_empty() {
            self.watches.enqueue(events.drain(..));
        }
        // The caller fails the connection: everyone waiting hears at once.
        broken.map_or(Ok(()), |v| Err(TransportError::Framing(v)))
    }

    /// Takes the reader token if it is free (and the receive thread does not
    /// want it); returns the reader context to work with.
    fn try_take_reader(&self) -> Option<ReaderCtx<P>> {
        if self.receiver_wants_token.load(Ordering::Acquire) {
            return None;
        }
        let got = self
            .reader_busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        got.then(|| {
            self.reader
                .with(Option::take)
                .unwrap_or_else(|| ReaderCtx::fresh(self.transport.recv_buffer_size()))
        })
    }

    /// Returns the token and passes it on: to the receive thread if it
    /// waits for it, else to a requester still waiting for its reply.
    fn release_reader(&self, ctx: ReaderCtx<P>) {
        /// Who reads next.
        enum Next<S> {
            /// The receive thread (it sleeps on the connection queue).
            Receiver,
            /// A requester still waiting for its reply.
            Requester(S),
            /// Nobody waits: the next requester takes the token itself.
            Nobody,
        }
        self.reader.with(|r| *r = Some(ctx));
        // Under `conn`, so the waiter picked is one registered before the
        // token became free; later requesters find it free themselves.
        // SeqCst pairs with `receive_thread` (it sets `receiver_wants_token`
        // then tries the token): we either see its wish or it sees the token
        // free; never neither.
        let next = self.conn.with(|c| {
            self.reader_busy.store(false, Ordering::SeqCst);
            if self.receiver_wants_token.load(Ordering::SeqCst) {
                Next::Receiver
            } else {
                c.core
                    .oldest_waiter()
                    .cloned()
                    .map_or(Next::Nobody, Next::Requester)
            }
        });
        match next {
            Next::Receiver => self.conn_queue.wake_all(),
            Next::Requester(slot) => slot.nudge(),
            Next::Nobody => {}
        }
    }

    /// If nobody reads, asks a waiting requester to (after a requester left
    /// without reading, e.g. on a timeout, so the others are not stranded).
    pub(super) fn pass_reader_on(&self) {
        let next = self.conn.with(|c| {
            if self.reader_busy.load(Ordering::Acquire) {
                None
            } else {
                c.core.oldest_waiter().cloned()
            }
        });
        if let Some(slot) = next {
            slot.nudge();
        }
    }

    /// Sleeps until `slot` has an outcome or `deadline` passes, reading from
    /// the transport meanwhile whenever the reader token is free.
    pub(super) fn wait_for_outcome(
        &self,
        slot: &Arc<Slot<P>>,
        deadline: Deadline,
    ) -> Option<Outcome> {
        loop {
            if let Some(outcome) = slot.state.with(|s| s.outcome.take()) {
                return Some(outcome);
            }
            if deadline.expired(&self.platform) {
                return None;
            }
            if let Some(mut ctx) = self.try_take_reader() {
                let result = loop {
                    // No receive thread, so no watch: nothing to hold back.
                    let all = ctx.buf.len();
                    match self.read_once(&mut ctx, all, deadline) {
                        Ok(()) | Err(TransportError::TimedOut) => {}
                        Err(e) => break Err(e),
                    }
                    if slot.state.with(|s| s.outcome.is_some()) || deadline.expired(&self.platform)
                    {
                        break Ok(());
                    }
                };
                // Fail first: whoever reads next must not find a dead
                // connection with requests still waiting on it.
                if let Err(e) = result {
                    self.fail(e);
                }
                self.release_reader(ctx);
                continue;
            }
            let mut ready = || {
                slot.state.with(|s| {
                    let ready = s.outcome.is_some() || mem::take(&mut s.nudged);
                    s.sleeping = !ready;
                    ready
                })
            };
            slot.queue
                .wait_until(&mut ready, deadline.remaining(&self.platform));
        }
    }

    /// Starts the receive thread if it is not running. It takes the reader
    /// token (waiting for a requester that holds it) and keeps it.
    pub(crate) fn ensure_receiver(this: &Arc<Self>) -> Result<(), XsError> {
        let start = this
            .conn
            .with(|c| !mem::replace(&mut c.receiver_started, true));
        if !start {
            return Ok(());
        }
        let shared = Arc::clone(this);
        let spawned = this
            .platform
            .spawn("xenstore-rx", Box::new(move || shared.receive_thread()));
        spawned.map_err(|SpawnError| {
            this.conn.with(|c| c.receiver_started = false);
            XsError::Spawn("xenstore receive")
        })
    }

    fn receive_thread(&self) {
        // While a requester reads, ask it to hand the token over (see
        // `release_reader` for the ordering).
        self.receiver_wants_token.store(true, Ordering::SeqCst);
        let mut claim = || {
            self.conn.with(|c| c.failed.is_some())
                || self
                    .reader_busy
                    .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
        };
        self.conn_queue.wait_until(&mut claim, None);
        self.receiver_wants_token.store(false, Ordering::SeqCst);
        if self.failure().is_some() {
            return;
        }
        let mut ctx = self
            .reader
            .with(Option::take)
            .unwrap_or_else(|| ReaderCtx::fresh(self.transport.recv_buffer_size()));
        loop {
            // Flow control: no more than the watch queues can take.
            let (budget, waited) = self
                .watches
                .read_budget(ctx.buf.len(), &mut || self.must_read());
            if waited {
                // Not reading is no silence of the daemon's: a message
                // part-way counts as stalled only while we wait for it.
                self.conn.with(|c| self.note_input(c));
            }
            match self.read_once(&mut ctx, budget, Deadline::never()) {
                Ok(()) | Err(TransportError::TimedOut) => {}
                Err(e) => {
                    self.fail(e);
                    return;
                }
            }
        }
    }
}

impl<P: Platform> ReaderCtx<P> {
    /// A context reading up to `size` bytes at a time.
    pub(super) fn fresh(size: usize) -> Self {
        ReaderCtx {
            buf: alloc::vec![0; size.max(1)],
            wakes: alloc::vec::Vec::new(),
            events: alloc::vec::Vec::new(),
            deferred: alloc::vec::Vec::new(),
        }
    }
}

impl<P: Platform> Slot<P> {
    /// A pooled slot ready for a new request.
    pub(super) fn pooled(pool: &P::Lock<alloc::vec::Vec<Arc<Slot<P>>>>) -> Arc<Slot<P>> {
        pool.with(|p| p.pop())
            .unwrap_or_else(|| Arc::new(Slot::new()))
    }
}

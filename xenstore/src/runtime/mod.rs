//! The threaded runtime: sends requests, gets each reply to the thread
//! that waits for it, runs watch callbacks, and implements suspend/resume.
//!
//! Shape (FreeBSD's `xenstore.c`, with several requests in flight):
//! - A requester frames its request into the outbox under the connection
//!   lock, sends it (see "Sending" below; a pipelining caller may frame
//!   several, then send them), then sleeps on its own reply slot. Only the
//!   requester whose reply arrived is woken, and only if it is asleep.
//! - Reading is done by whoever holds the *reader token*: the receive
//!   thread, which then holds it for good (the kernel shape: an interrupt
//!   wakes it and it demultiplexes), or, while no receive thread runs and
//!   the transport allows it, a waiting requester, which reads until its
//!   own reply is in and hands the token to the oldest waiter, whose reply
//!   comes next (as libxenstore reads on the calling thread while no watch
//!   exists). The receive thread is started when the first watch is
//!   registered, or at once for [`ReceiveMode::Dedicated`] and for
//!   transports that need it (the ring).
//! - Watch events go to per-watch bounded queues; callback threads run
//!   each watch's callbacks in order, different watches in parallel
//!   ([`watch`]). The receive thread reads only as much as the queues can
//!   take and pauses while one is full, unless a reply is awaited
//!   (flow control, see [`watch`]).
//!
//! Locks, and the order they are taken in (never the other way round):
//! `suspend` (sleepable, held shared by each open transaction and during
//! watch registration; exclusive by `suspend()`) → `conn` (short: the
//! protocol core, the outbox, connection state) → a slot's `state` (short:
//! one requester's outcome). `reader` and `slots` (short) are taken alone.
//! `watches.table` (short) is never held with `conn`. No short lock is held
//! across a blocking call, a wake-up or user code.
//!
//! Sending is batched: a requester frames its request into the outbox
//! under `conn`; if nobody is writing, it becomes the sender and writes the
//! outbox, looping until it is empty, while later requesters just append
//! and go wait. So there is no send lock to sleep on, and requests that
//! pile up while a write is under way leave in one write. A pipelining
//! caller (`read_many`) frames several requests without sending
//! ([`Shared::queue`]), then writes them at once ([`Shared::flush`]).

mod framing;
mod reader;
mod requests;
mod suspend;
pub(crate) mod watch;

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::time::Duration;

use crate::error::TransportError;
use crate::platform::{Lock, Platform, WaitQueue};
use crate::protocol::{Core, CoreStats, ReplyResult};
use crate::sync::SuspendLock;
use crate::transport::Transport;
use core::sync::atomic::{AtomicBool, AtomicUsize};

pub(crate) use requests::{Entered, Gate, Ticket, Tx};
pub use watch::{Callback, WatchEvent};

/// Who reads from the transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReceiveMode {
    /// Requesters read their own replies while no watch is registered, if
    /// the transport allows it (the socket does, the ring does not); a
    /// receive thread takes over with the first watch.
    #[default]
    Auto,
    /// A receive thread reads from the start (the kernel's shape).
    Dedicated,
}

/// Tunables of a client. `Config::default()` suits a kernel component.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a request may take: `None` (the default) is for ever, as
    /// FreeBSD and Linux wait; a kernel should set one (ours: 30 s, see
    /// `kernel::xenstore_service::DEFAULT_REQUEST_TIMEOUT`), so that a dead or
    /// stopped daemon ends every request with a typed error:
    /// - waiting for the reply: [`crate::XsError::Timeout`]. The late reply
    ///   is dropped (counted); a transaction it started is aborted and a
    ///   watch it added is removed (those clean-ups go out with the
    ///   client's next request).
    /// - writing: each write of the outbox may wait for room (a full ring,
    ///   a full socket buffer) this long. Past it the connection fails with
    ///   [`crate::TransportError::SendTimedOut`], for every request in
    ///   flight, since a message cannot be abandoned half-written.
    /// - a reply that stops part-way (a header without its body) for this
    ///   long fails the connection with
    ///   [`crate::TransportError::Framing`]
    ///   ([`crate::ProtocolViolation::TruncatedMessage`]).
    /// - the ring's reconnection handshake, where the daemon offers it
    ///   ([`crate::ring::RingTransport::connect`]).
    pub request_timeout: Option<Duration>,
    /// Events queued per watch. While a queue is full the receive thread
    /// stops reading so the callback catches up; events are dropped (and
    /// announced, see [`crate::WatchEvent::Overflow`]) only while a reply is
    /// awaited or after the callback stalls. Default 1024.
    pub watch_queue_limit: usize,
    /// How long a full watch queue whose callback takes no event may hold
    /// reading back; the watch is then stalled and its excess events are
    /// dropped until it drains half its queue. Default 2 s.
    pub watch_stall_timeout: Duration,
    /// Callback threads at most: this many watches run callbacks at the
    /// same time, and only beyond it does a watch wait for another. Threads
    /// are started on demand; all but one end after a second idle.
    /// Default 16.
    pub watch_threads: usize,
    /// Attempts `transaction()` makes before returning the last EAGAIN.
    /// Default 16.
    pub transaction_attempts: u32,
    /// How long `suspend()` waits for open transactions to end before it
    /// goes on without them (`None`: for ever, as FreeBSD and Linux wait).
    /// A transaction still open then is not lost: its later requests wait
    /// until the resume, and after a cancelled suspend it goes on and
    /// commits (or gets the daemon's EAGAIN); after a real resume (a new
    /// daemon, which never heard of it) its requests and its commit end
    /// with [`crate::XsError::Eagain`], so `Client::transaction` runs it
    /// again. Default 10 s: the toolstack (libxl) gives a guest 60 s to
    /// suspend once it has acknowledged the request.
    pub suspend_transaction_grace: Option<Duration>,
    /// Requests `gather`/`read_many` keep in flight at once. Default 16.
    pub pipeline_depth: usize,
    /// Who reads from the transport. Default [`ReceiveMode::Auto`].
    pub receive_mode: ReceiveMode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_timeout: None,
            watch_queue_limit: 1024,
            watch_stall_timeout: Duration::from_secs(2),
            watch_threads: 16,
            transaction_attempts: 16,
            suspend_transaction_grace: Some(Duration::from_secs(10)),
            pipeline_depth: 16,
            receive_mode: ReceiveMode::Auto,
        }
    }
}

/// Counters of a client: the core's, plus the runtime's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// What the protocol core saw (replies, dropped messages, ...).
    pub core: CoreStats,
    /// Watch events that did not fit a watch's queue (reported to the
    /// callback through [`crate::WatchEvent::Overflow`]).
    pub watch_events_overflowed: u64,
    /// Watch events that arrived for a watch already removed (between our
    /// UNWATCH and the daemon's acknowledgement): dropped.
    pub watch_events_after_unwatch: u64,
    /// Watch callbacks run.
    pub watch_callbacks: u64,
    /// Times a full watch queue stopped holding reading back because its
    /// callback took no event for `Config::watch_stall_timeout`.
    pub watch_stalls: u64,
    /// Times the receive thread stopped reading because a watch queue was
    /// full (flow control at work).
    pub watch_reader_waits: u64,
    /// Callback threads alive now.
    pub watch_threads: usize,
    /// Fatal transport errors (at most one per connection).
    pub transport_failures: u64,
}

/// How a request ended, as seen by its slot.
pub(crate) enum Outcome {
    /// The core's verdict on the reply.
    Reply(ReplyResult),
    /// The connection failed before the reply came.
    Failed(TransportError),
}

#[derive(Default)]
pub(crate) struct SlotState {
    outcome: Option<Outcome>,
    /// Set when the reader token is handed to this requester.
    nudged: bool,
    /// The requester is (about to be) asleep on `queue`: only then does a
    /// delivery need a wake-up (a syscall on the host).
    sleeping: bool,
}

/// Where one request's outcome is delivered; pooled and reused.
pub(crate) struct Slot<P: Platform> {
    state: P::Lock<SlotState>,
    queue: P::WaitQueue,
}

impl<P: Platform> Slot<P> {
    fn new() -> Self {
        Slot {
            state: Lock::new(SlotState::default()),
            queue: WaitQueue::new(),
        }
    }

    /// Stores the outcome; returns whether the requester must be woken.
    #[must_use]
    fn deliver(&self, outcome: Outcome) -> bool {
        self.state.with(|s| {
            s.outcome = Some(outcome);
            s.sleeping
        })
    }

    fn nudge(&self) {
        if self.state.with(|s| {
            s.nudged = true;
            s.sleeping
        }) {
            self.queue.wake_all();
        }
    }
}

/// A request to send on the next occasion (clean-up after a timeout).
pub(crate) enum Deferred {
    /// Abort a transaction whose start reply came after its requester left.
    AbortTransaction(u32),
    /// Remove a watch whose registration timed out.
    Unwatch {
        path: alloc::string::String,
        token: alloc::string::String,
    },
}

/// Connection state, under `Shared::conn`.
pub(crate) struct ConnState<P: Platform> {
    pub(crate) core: Core<Arc<Slot<P>>>,
    /// Framed requests waiting to be written, in order.
    outbox: Vec<u8>,
    /// An empty buffer kept for the next sender's batch (saves allocating).
    spare: Vec<u8>,
    /// A requester is writing the outbox: others append and go wait.
    sending: bool,
    /// The receive thread has been started.
    receiver_started: bool,
    /// Set once the connection is unusable.
    failed: Option<TransportError>,
    deferred: Vec<Deferred>,
    transport_failures: u64,
    /// When bytes last arrived (platform µs; kept only with a request
    /// timeout): a message left part-way for that long breaks the stream.
    last_input_us: u64,
    /// The connection's generation: bumped by each real resume (a fresh
    /// connection, maybe a new daemon). A transaction belongs to the
    /// generation it was started in.
    epoch: u64,
}

/// What the reader token holder works with; parked here between holders.
pub(crate) struct ReaderCtx<P: Platform> {
    buf: Vec<u8>,
    wakes: Vec<Arc<Slot<P>>>,
    events: Vec<(crate::protocol::WatchId, alloc::string::String)>,
    deferred: Vec<Deferred>,
}

/// Everything a client's threads share.
pub(crate) struct Shared<P: Platform> {
    pub(crate) platform: P,
    pub(crate) config: Config,
    transport: Box<dyn Transport>,
    pub(crate) conn: P::Lock<ConnState<P>>,
    /// Woken on connection-state changes: token released to the receive
    /// thread, gate opened, requests drained, failure.
    conn_queue: P::WaitQueue,
    /// The reader token: someone reads from the transport.
    reader_busy: AtomicBool,
    /// The receive thread waits for the token: requesters leave it alone.
    receiver_wants_token: AtomicBool,
    /// New requests wait at the gate (between `suspend` and `resume`).
    /// Written under `conn` so that a request either passed the gate and is
    /// counted in `active` before `suspend` closes it, or sees it closed.
    gate_closed: AtomicBool,
    /// Requests between the gate and their outcome (`suspend` waits for 0).
    active: AtomicUsize,
    reader: P::Lock<Option<ReaderCtx<P>>>,
    pub(crate) suspend_lock: SuspendLock<P>,
    pub(crate) watches: watch::Watches<P>,
    slots: P::Lock<Vec<Arc<Slot<P>>>>,
}

impl<P: Platform> Shared<P> {
    /// A runtime over `transport`. Starts the receive thread if the mode
    /// or the transport asks for one.
    pub(crate) fn launch(
        platform: P,
        transport: Box<dyn Transport>,
        config: Config,
    ) -> Result<Arc<Self>, crate::XsError> {
        let dedicated =
            config.receive_mode == ReceiveMode::Dedicated || !transport.allows_caller_reads();
        let reader = ReaderCtx::fresh(transport.recv_buffer_size());
        let policy = watch::WatchPolicy {
            limit: config.watch_queue_limit,
            threads: config.watch_threads,
            stall_timeout: config.watch_stall_timeout,
        };
        let shared = Arc::new_cyclic(|this: &Weak<Self>| Shared {
            platform,
            watches: watch::Watches::new(policy, Self::callback_spawner(this.clone())),
            config,
            transport,
            conn: Lock::new(ConnState {
                core: Core::new(),
                outbox: Vec::new(),
                spare: Vec::new(),
                sending: false,
                receiver_started: false,
                failed: None,
                deferred: Vec::new(),
                transport_failures: 0,
                last_input_us: 0,
                epoch: 0,
            }),
            conn_queue: WaitQueue::new(),
            reader_busy: AtomicBool::new(false),
            receiver_wants_token: AtomicBool::new(false),
            gate_closed: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            reader: Lock::new(Some(reader)),
            suspend_lock: SuspendLock::new(),
            slots: Lock::new(Vec::new()),
        });
        if dedicated {
            Self::ensure_receiver(&shared)?;
        }
        Ok(shared)
    }

    /// Starts callback threads for [`watch::Watches`]; each holds the
    /// runtime alive until the watches close.
    fn callback_spawner(this: Weak<Self>) -> watch::Spawner {
        Box::new(move || {
            let shared = this.upgrade().ok_or(crate::platform::SpawnError)?;
            let body = Arc::clone(&shared);
            shared.platform.spawn(
                "xenwatch",
                Box::new(move || body.watches.run(&body.platform)),
            )
        })
    }

    /// Whether the receive thread must read now whatever the watch queues
    /// hold: a reply is awaited, or the connection failed.
    pub(crate) fn must_read(&self) -> bool {
        self.conn
            .with(|c| c.failed.is_some() || c.core.oldest_waiter().is_some())
    }

    /// The counters.
    pub(crate) fn stats(&self) -> Stats {
        let (core, transport_failures) = self.conn.with(|c| (c.core.stats(), c.transport_failures));
        let w = self.watches.stats();
        Stats {
            core,
            watch_events_overflowed: w.overflowed,
            watch_events_after_unwatch: w.after_unwatch,
            watch_callbacks: w.callbacks,
            watch_stalls: w.stalls,
            watch_reader_waits: w.reader_waits,
            watch_threads: w.threads,
            transport_failures,
        }
    }

    /// Marks the connection failed: every waiting requester gets `err`,
    /// later requests fail fast, the transport is shut down.
    pub(crate) fn fail(&self, err: TransportError) {
        let (waiters, first) = self.conn.with(|c| {
            let first = c.failed.is_none();
            if first {
                c.failed = Some(err.clone());
                c.transport_failures += 1;
            }
            // Unsent requests go with the connection.
            c.outbox.clear();
            let mut waiters = c.core.reset_connection();
            // Delivered under the connection lock, like replies, so a
            // requester that finds its request gone finds its outcome.
            waiters.retain(|w| w.deliver(Outcome::Failed(err.clone())));
            (waiters, first)
        });
        if first && err != TransportError::Closed {
            log::error!("xenstore: connection failed: {err}");
        }
        self.transport.shutdown();
        for w in waiters {
            w.queue.wake_all();
        }
        self.conn_queue.wake_all();
        self.watches.wake_reader();
    }

    /// Closes the connection for good (the last `Client` handle is gone).
    pub(crate) fn shutdown(&self) {
        self.fail(TransportError::Closed);
        self.watches.close();
    }

    /// Whether the connection failed, and why.
    pub(crate) fn failure(&self) -> Option<TransportError> {
        self.conn.with(|c| c.failed.clone())
    }
}

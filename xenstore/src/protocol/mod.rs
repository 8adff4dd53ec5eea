//! The protocol core, without I/O: frames requests, allocates request ids,
//! matches replies to requests (any number in flight, in any order), routes
//! watch events by token, and tracks open transactions.
//!
//! It never blocks and never panics on peer input. Fed bytes, it reports
//! [`Event`]s; what a peer got wrong is counted in [`CoreStats`] and either
//! fails the request it concerns or is dropped (a reply nobody asked for, an
//! event for a token nobody registered). The runtime drives it under a lock;
//! tests and the fuzz target drive it directly.
//!
//! `W` is whatever the caller wants back with a reply (the runtime uses the
//! requester's reply slot).

mod in_flight;
mod parser;

use alloc::collections::{BTreeMap, BTreeSet};

use alloc::string::String;
use alloc::vec::Vec;
use in_flight::InFlight;

pub use parser::{Frame, Parser};

use crate::error::{ErrorCode, ProtocolViolation, XsError};
use crate::reply;
use crate::request::Request;
use crate::wire::{Header, MsgType};

/// Identifies a registered watch (chosen by the caller).
pub type WatchId = u64;

/// Why a successful-looking reply is not a success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// The daemon answered `ERROR` with this code.
    Daemon(ErrorCode),
    /// The peer broke the protocol in its reply.
    Protocol(ProtocolViolation),
}

impl core::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReplyError::Daemon(code) => write!(f, "the daemon answered {code}"),
            ReplyError::Protocol(_) => f.write_str("protocol violation in the reply"),
        }
    }
}

impl core::error::Error for ReplyError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ReplyError::Protocol(violation) => Some(violation),
            ReplyError::Daemon(_) => None,
        }
    }
}

/// A reply's outcome: the payload of a well-formed reply of the request's
/// type, or why not.
pub type ReplyResult = Result<Vec<u8>, ReplyError>;

/// Something the core found in the received bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<W> {
    /// The reply to a request whose requester still waits.
    Reply {
        /// What the requester registered with the request.
        waiter: W,
        /// The outcome.
        result: ReplyResult,
    },
    /// The reply to a request its requester abandoned (timed out). The
    /// runtime may need to undo its effect (abort a transaction that
    /// started, remove a watch that was added).
    LateReply {
        /// The abandoned request's type.
        ty: MsgType,
        /// The outcome.
        result: ReplyResult,
    },
    /// A watch event for a registered token.
    Watch {
        /// The watch the token belongs to.
        watch: WatchId,
        /// The path that changed.
        path: String,
    },
    /// A message dropped without a requester to tell; already counted in
    /// [`CoreStats`]. Reported so the runtime can log it.
    Dropped(Dropped),
    /// The byte stream cannot be framed any more (a header announcing more
    /// than [`crate::wire::PAYLOAD_MAX`] bytes): where the next message
    /// starts is unknown, so the core parses nothing more until
    /// [`Core::reset_connection`]. Reported once; the connection is lost.
    Broken(ProtocolViolation),
}

/// Why a received message was dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// A reply whose `req_id` matches no request in flight.
    UnknownReqId {
        /// The message header.
        header: Header,
    },
    /// A watch event whose token no watch has.
    UnknownToken {
        /// The token (lossily decoded).
        token: String,
    },
    /// A watch event that is not `<path>|<token>|`.
    MalformedWatchEvent,
}

/// Counters of what the core has seen. Every dropped or rejected message is
/// counted in exactly one of the error counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Replies matched to a request (including late ones).
    pub replies: u64,
    /// Watch events routed to a registered watch.
    pub watch_events: u64,
    /// Replies with a `req_id` no request had: dropped.
    pub unknown_req_id: u64,
    /// Watch events with an unregistered token: dropped.
    pub unknown_watch_token: u64,
    /// Messages announcing more than 4096 bytes (each breaks the stream).
    pub oversized: u64,
    /// Replies or events with a malformed payload (missing NUL, bad shape).
    pub malformed: u64,
    /// Replies whose type was neither the request's nor `ERROR`.
    pub unexpected_type: u64,
    /// Replies to requests abandoned by their requester.
    pub late_replies: u64,
}

struct Pending<W> {
    ty: MsgType,
    tx_id: u32,
    /// `None` once the requester gave up.
    waiter: Option<W>,
}

/// The sans-IO protocol state of one connection.
pub struct Core<W> {
    parser: Parser,
    next_req_id: u32,
    pending: InFlight<Pending<W>>,
    watches: BTreeMap<String, WatchId>,
    transactions: BTreeSet<u32>,
    /// Set by an unframeable message: nothing more is parsed.
    broken: bool,
    stats: CoreStats,
}

impl<W> Default for Core<W> {
    fn default() -> Self {
        Core {
            parser: Parser::default(),
            next_req_id: 0,
            pending: InFlight::default(),
            watches: BTreeMap::new(),
            transactions: BTreeSet::new(),
            broken: false,
            stats: CoreStats::default(),
        }
    }
}

impl<W> Core<W> {
    /// A core for a fresh connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames `req` in transaction `tx_id` (0 for none) onto `out`, and
    /// records it as in flight; its reply will be reported with `waiter`.
    /// Returns the request id used.
    ///
    /// Errors (nothing recorded, `out` unchanged): the request's own checks
    /// ([`Request::encode`]); [`XsError::NoSuchTransaction`] if `tx_id` is
    /// not an open transaction of this connection;
    /// [`XsError::InvalidState`] for `TRANSACTION_START` inside one.
    pub fn encode(
        &mut self,
        req: &Request<'_>,
        tx_id: u32,
        waiter: W,
        out: &mut Vec<u8>,
    ) -> Result<u32, XsError> {
        self.encode_for(req, tx_id, Some(waiter), out)
    }

    /// Like [`Core::encode`] for a request nobody waits for (a clean-up
    /// sent on its own): its reply is reported as [`Event::LateReply`].
    pub fn encode_unattended(
        &mut self,
        req: &Request<'_>,
        tx_id: u32,
        out: &mut Vec<u8>,
    ) -> Result<u32, XsError> {
        self.encode_for(req, tx_id, None, out)
    }

    fn encode_for(
        &mut self,
        req: &Request<'_>,
        tx_id: u32,
        waiter: Option<W>,
        out: &mut Vec<u8>,
    ) -> Result<u32, XsError> {
        let ty = req.msg_type();
        // The daemon ignores the transaction of a watch; send none.
        let tx_id = if matches!(ty, MsgType::Watch | MsgType::Unwatch) {
            0
        } else {
            tx_id
        };
        if tx_id != 0 && !self.transactions.contains(&tx_id) {
            return Err(XsError::NoSuchTransaction { tx_id });
        }
        if tx_id != 0 && ty == MsgType::TransactionStart {
            return Err(XsError::InvalidState(
                "TRANSACTION_START inside a transaction",
            ));
        }
        let req_id = self.allocate_req_id();
        req.encode(req_id, tx_id, out)?;
        self.pending.insert(req_id, Pending { ty, tx_id, waiter });
        Ok(req_id)
    }

    /// Skips 0 (the id of watch events) and ids still in flight after the
    /// counter wrapped.
    fn allocate_req_id(&mut self) -> u32 {
        loop {
            self.next_req_id = self.next_req_id.wrapping_add(1);
            if self.next_req_id != 0 && !self.pending.contains(self.next_req_id) {
                return self.next_req_id;
            }
        }
    }

    /// Processes received bytes, reporting each event to `sink` in order.
    /// Any split of a byte stream into `feed` calls gives the same events.
    /// After [`Event::Broken`], bytes are ignored until
    /// [`Core::reset_connection`].
    pub fn feed(&mut self, mut bytes: &[u8], sink: &mut impl FnMut(Event<W>)) {
        while !self.broken
            && let Some(frame) = self.parser.next_frame(&mut bytes)
        {
            let event = match frame {
                Frame::Oversized(header) => self.on_oversized(header),
                Frame::Message(header, body) if header.ty == MsgType::WatchEvent as u32 => {
                    self.on_watch_event(&body)
                }
                Frame::Message(header, body) => self.on_reply(header, body),
            };
            sink(event);
        }
    }

    /// A header announcing more than the payload limit. Skipping that many
    /// bytes would trust the peer to send them: one that sent a short body
    /// would have later replies swallowed as "body". So the stream is
    /// declared lost instead.
    fn on_oversized(&mut self, header: Header) -> Event<W> {
        self.stats.oversized += 1;
        self.broken = true;
        Event::Broken(ProtocolViolation::PayloadTooLong { len: header.len })
    }

    fn on_watch_event(&mut self, body: &[u8]) -> Event<W> {
        let mut parts = match reply::split_strings(body) {
            Ok(parts) => parts,
            Err(_) => {
                self.stats.malformed += 1;
                return Event::Dropped(Dropped::MalformedWatchEvent);
            }
        };
        let (Some(path), Some(token)) = (parts.next(), parts.next()) else {
            self.stats.malformed += 1;
            return Event::Dropped(Dropped::MalformedWatchEvent);
        };
        let watch = core::str::from_utf8(token)
            .ok()
            .and_then(|t| self.watches.get(t))
            .copied();
        let Some(watch) = watch else {
            self.stats.unknown_watch_token += 1;
            let token = String::from_utf8_lossy(token).into_owned();
            return Event::Dropped(Dropped::UnknownToken { token });
        };
        let Ok(path) = core::str::from_utf8(path) else {
            self.stats.malformed += 1;
            return Event::Dropped(Dropped::MalformedWatchEvent);
        };
        self.stats.watch_events += 1;
        Event::Watch {
            watch,
            path: String::from(path),
        }
    }

    fn on_reply(&mut self, header: Header, body: Vec<u8>) -> Event<W> {
        let Some(p) = self.pending.remove(header.req_id) else {
            self.stats.unknown_req_id += 1;
            return Event::Dropped(Dropped::UnknownReqId { header });
        };
        let result = if header.ty == MsgType::Error as u32 {
            match body.strip_suffix(&[0]) {
                Some(code) => Err(ReplyError::Daemon(ErrorCode::from_wire(code))),
                None => {
                    self.stats.malformed += 1;
                    Err(ReplyError::Protocol(ProtocolViolation::MissingNul))
                }
            }
        } else if header.ty != p.ty as u32 {
            self.stats.unexpected_type += 1;
            Err(ReplyError::Protocol(
                ProtocolViolation::UnexpectedReplyType {
                    expected: p.ty,
                    got: header.ty,
                },
            ))
        } else {
            match reply::check(p.ty, &body) {
                Ok(()) => Ok(body),
                Err(v) => {
                    self.stats.malformed += 1;
                    Err(ReplyError::Protocol(v))
                }
            }
        };
        self.complete(p, result)
    }

    /// Applies a reply's effect on transaction tracking and hands it on.
    fn complete(&mut self, p: Pending<W>, result: ReplyResult) -> Event<W> {
        self.stats.replies += 1;
        match (p.ty, &result) {
            (MsgType::TransactionStart, Ok(body)) => {
                if let Ok(id) = reply::transaction_id(body) {
                    self.transactions.insert(id);
                }
            }
            // Whatever the outcome, the daemon no longer knows the transaction
            // (or never did): ENOENT, EAGAIN and OK all end it.
            (MsgType::TransactionEnd, _) => {
                self.transactions.remove(&p.tx_id);
            }
            (MsgType::ResetWatches, Ok(_)) => self.transactions.clear(),
            _ => {}
        }
        match p.waiter {
            Some(waiter) => Event::Reply { waiter, result },
            None => {
                self.stats.late_replies += 1;
                Event::LateReply { ty: p.ty, result }
            }
        }
    }

    /// The requester of `req_id` gives up: its reply, when it comes, is
    /// reported as [`Event::LateReply`]. Returns the waiter, or `None` if the
    /// reply was already reported (the caller then has it).
    pub fn abandon(&mut self, req_id: u32) -> Option<W> {
        self.pending.get_mut(req_id).and_then(|p| p.waiter.take())
    }

    /// Forgets every request in flight and any partial message, returning
    /// the waiters (whose replies will never come: the connection broke or
    /// was reset). Transactions are forgotten too; watch tokens are kept so
    /// they can be registered again.
    pub fn reset_connection(&mut self) -> Vec<W> {
        self.parser.reset();
        self.broken = false;
        self.transactions.clear();
        self.pending.drain().filter_map(|p| p.waiter).collect()
    }

    /// How much of a message has arrived, if one is part-way: (bytes
    /// received, bytes it has), as [`Parser::partial`]. The runtime uses it
    /// to notice a peer that stops in the middle of a message.
    pub fn partial_message(&self) -> Option<(u32, u32)> {
        if self.broken {
            None
        } else {
            self.parser.partial()
        }
    }

    /// The requester that has waited longest for its reply, if any. The
    /// daemon answers in order, so its reply is the next to come: the
    /// runtime passes the job of reading to it, and the reader then most
    /// often reads its own reply rather than waking another thread for it.
    pub fn oldest_waiter(&self) -> Option<&W> {
        self.pending.values().find_map(|p| p.waiter.as_ref())
    }

    /// Number of requests in flight, abandoned ones included.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Routes events carrying `token` to `watch` from now on. Returns false
    /// (and changes nothing) if the token is already registered.
    pub fn register_watch(&mut self, token: &str, watch: WatchId) -> bool {
        if self.watches.contains_key(token) {
            return false;
        }
        self.watches.insert(String::from(token), watch);
        true
    }

    /// Stops routing `token`; later events for it count as unknown.
    pub fn unregister_watch(&mut self, token: &str) -> Option<WatchId> {
        self.watches.remove(token)
    }

    /// Whether `tx_id` is a transaction this connection has open.
    pub fn is_open_transaction(&self, tx_id: u32) -> bool {
        self.transactions.contains(&tx_id)
    }

    /// Number of open transactions.
    pub fn open_transactions(&self) -> usize {
        self.transactions.len()
    }

    /// The counters.
    pub fn stats(&self) -> CoreStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;

//! What can go wrong below the API: a peer breaking the protocol, and the
//! transport failing.

use alloc::string::String;
use core::fmt;

use crate::wire::MsgType;

/// Something the peer sent that the protocol does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolViolation {
    /// A message announced a payload over [`crate::wire::PAYLOAD_MAX`].
    /// Fatal to the connection ([`TransportError::Framing`]): a peer that
    /// sends such a header cannot be trusted to send that many bytes, so
    /// where the next message starts is unknown.
    PayloadTooLong {
        /// The announced length.
        len: u32,
    },
    /// A message stopped arriving part-way: no byte of it came for the
    /// request timeout ([`crate::Config::request_timeout`]). Fatal to the
    /// connection ([`TransportError::Framing`]).
    TruncatedMessage {
        /// Bytes of the message received (header included).
        received: u32,
        /// Bytes the message has (header included), or 16 while the
        /// header itself is incomplete.
        expected: u32,
    },
    /// A payload that must end in NUL does not.
    MissingNul,
    /// A reply whose type is neither the request's nor `ERROR`.
    UnexpectedReplyType {
        /// The request's type.
        expected: MsgType,
        /// The raw type received.
        got: u32,
    },
    /// A reply body that does not have the shape its type requires.
    MalformedBody {
        /// The reply's type.
        ty: MsgType,
        /// What was wrong.
        what: &'static str,
    },
}

impl fmt::Display for ProtocolViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolViolation::PayloadTooLong { len } => {
                write!(f, "payload of {len} bytes exceeds the 4096-byte limit")
            }
            ProtocolViolation::TruncatedMessage { received, expected } => write!(
                f,
                "message cut short: {received} of {expected} bytes, then nothing until the deadline"
            ),
            ProtocolViolation::MissingNul => f.write_str("payload lacks its terminating NUL"),
            ProtocolViolation::UnexpectedReplyType { expected, got } => {
                write!(f, "reply of type {got} to a {expected} request")
            }
            ProtocolViolation::MalformedBody { ty, what } => {
                write!(f, "malformed {ty} reply: {what}")
            }
        }
    }
}

impl core::error::Error for ProtocolViolation {}

/// Which of the two rings of the shared page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingSide {
    /// The request ring (we produce, the daemon consumes).
    Request,
    /// The response ring (the daemon produces, we consume).
    Response,
}

/// Why a transport stopped working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The peer closed the connection, or the client shut it down.
    Closed,
    /// Nothing arrived within the timeout (not fatal).
    TimedOut,
    /// An operating-system I/O error (errno where known).
    Io {
        /// The OS error number, if any.
        errno: Option<i32>,
        /// What the OS said.
        detail: String,
    },
    /// The ring's producer is more than a ring ahead of its consumer: the
    /// indexes are corrupt and were not trusted.
    BadRingIndexes {
        /// The ring whose indexes are bad.
        ring: RingSide,
        /// Its consumer index.
        cons: u32,
        /// Its producer index.
        prod: u32,
    },
    /// The daemon reported an error in the ring page's `error` field
    /// (1 COMM, 2 RINGIDX, 3 PROTO).
    PeerReported {
        /// The value of the `error` field.
        code: u32,
    },
    /// The bytes from the peer cannot be framed into messages any more
    /// (see the violation): every request in flight fails, and nothing
    /// more is parsed from this connection, since the next header's place
    /// in the stream is unknown.
    Framing(ProtocolViolation),
    /// The peer took too long to take our bytes: `sent` of `len` bytes of
    /// a write were handed over when the request timeout passed (a daemon
    /// that stopped reading, e.g. killed or stopped, leaves the ring
    /// full). The connection is unusable: a message cannot be abandoned
    /// half-written.
    SendTimedOut {
        /// Bytes handed to the peer.
        sent: usize,
        /// Bytes the write had.
        len: usize,
    },
}

impl TransportError {
    /// Whether the connection is unusable after this error (everything but
    /// a timeout).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, TransportError::TimedOut)
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Closed => f.write_str("connection closed"),
            TransportError::TimedOut => f.write_str("timed out"),
            TransportError::Io {
                errno: Some(e),
                detail,
            } => write!(f, "I/O error {e}: {detail}"),
            TransportError::Io {
                errno: None,
                detail,
            } => write!(f, "I/O error: {detail}"),
            TransportError::BadRingIndexes { ring, cons, prod } => write!(
                f,
                "bad {ring:?} ring indexes cons={cons:#x} prod={prod:#x} (gap over 1024)"
            ),
            TransportError::PeerReported { code } => {
                write!(f, "the daemon flagged error {code} in the ring page")
            }
            TransportError::Framing(violation) => {
                write!(f, "cannot frame the daemon's messages: {violation}")
            }
            TransportError::SendTimedOut { sent, len } => write!(
                f,
                "the daemon stopped taking our messages ({sent} of {len} bytes sent by the deadline)"
            ),
        }
    }
}

impl core::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            TransportError::Framing(violation) => Some(violation),
            _ => None,
        }
    }
}

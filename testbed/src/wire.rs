//! Just enough of the XenStore wire protocol (xs_wire.h) for the testbed to
//! play the toolstack and to talk through a guest ring in its own tests.
//! The project's real implementation is the `xenstore` crate; this one stays
//! deliberately small and independent of it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// Message types (enum xsd_sockmsg_type) the testbed uses by name.
// Each constant is xs_wire.h's XS_<NAME>; a doc line per name would only
// repeat it.
#[allow(missing_docs)]
pub mod ty {
    pub const CONTROL: u32 = 0;
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const GET_PERMS: u32 = 3;
    pub const WATCH: u32 = 4;
    pub const UNWATCH: u32 = 5;
    pub const TRANSACTION_START: u32 = 6;
    pub const TRANSACTION_END: u32 = 7;
    pub const INTRODUCE: u32 = 8;
    pub const RELEASE: u32 = 9;
    pub const GET_DOMAIN_PATH: u32 = 10;
    pub const WRITE: u32 = 11;
    pub const MKDIR: u32 = 12;
    pub const RM: u32 = 13;
    pub const SET_PERMS: u32 = 14;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
    pub const IS_DOMAIN_INTRODUCED: u32 = 17;
    pub const RESUME: u32 = 18;
    pub const SET_TARGET: u32 = 19;
    pub const RESET_WATCHES: u32 = 21;
    pub const DIRECTORY_PART: u32 = 22;

    /// The xs_wire.h name of a message type, for messages to humans.
    pub fn name(ty: u32) -> &'static str {
        const NAMES: [&str; 23] = [
            "CONTROL",
            "DIRECTORY",
            "READ",
            "GET_PERMS",
            "WATCH",
            "UNWATCH",
            "TRANSACTION_START",
            "TRANSACTION_END",
            "INTRODUCE",
            "RELEASE",
            "GET_DOMAIN_PATH",
            "WRITE",
            "MKDIR",
            "RM",
            "SET_PERMS",
            "WATCH_EVENT",
            "ERROR",
            "IS_DOMAIN_INTRODUCED",
            "RESUME",
            "SET_TARGET",
            "RESTRICT",
            "RESET_WATCHES",
            "DIRECTORY_PART",
        ];
        NAMES.get(ty as usize).copied().unwrap_or("UNKNOWN")
    }
}

/// Size of the wire header (type, req_id, tx_id, len; u32 little-endian).
pub const HEADER_LEN: usize = 16;
/// Largest payload the protocol allows (XENSTORE_PAYLOAD_MAX).
pub const PAYLOAD_MAX: usize = 4096;

/// One wire message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Message type ([`ty`]).
    pub ty: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0: none).
    pub tx_id: u32,
    /// The payload, without the 16-byte header.
    pub payload: Vec<u8>,
}

impl Message {
    /// A request with transaction 0.
    pub fn new(ty: u32, req_id: u32, payload: &[u8]) -> Self {
        Message {
            ty,
            req_id,
            tx_id: 0,
            payload: payload.to_vec(),
        }
    }

    /// Header followed by payload, ready to send.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        for field in [self.ty, self.req_id, self.tx_id, self.payload.len() as u32] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(&self.payload);
        out
    }

    /// Parses a header; returns (type, req_id, tx_id, len). A length over
    /// [`PAYLOAD_MAX`] is a protocol error (nothing valid follows it).
    pub fn decode_header(header: &[u8; HEADER_LEN]) -> Result<(u32, u32, u32, usize)> {
        let field = |i: usize| u32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().unwrap());
        let len = field(3) as usize;
        if len > PAYLOAD_MAX {
            return Err(Error::Protocol(format!(
                "message length {len} exceeds {PAYLOAD_MAX}"
            )));
        }
        Ok((field(0), field(1), field(2), len))
    }

    /// The payload as text without its trailing NUL (lossy).
    pub fn text(&self) -> String {
        let bytes = self.payload.strip_suffix(b"\0").unwrap_or(&self.payload);
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// The daemon's error string ("EACCES", ...) if this is an ERROR reply.
    pub fn error(&self) -> Option<String> {
        (self.ty == ty::ERROR).then(|| self.text())
    }
}

/// Joins strings into a payload, each followed by NUL ("a\0b\0").
pub fn nul_join(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

/// Describes a request for error messages: "WRITE /a/b".
pub(crate) fn describe(msg: &Message) -> String {
    let first = msg.payload.split(|&b| b == 0).next().unwrap_or_default();
    format!("{} {}", ty::name(msg.ty), String::from_utf8_lossy(first))
}

/// A privileged (dom0) connection to the daemon's unix socket, one request
/// at a time. Every read and write has a timeout, so a wedged daemon gives
/// an error instead of a hang.
#[derive(Debug)]
pub struct SocketClient {
    stream: UnixStream,
    next_req_id: u32,
}

impl SocketClient {
    /// Connects to the daemon socket at `path`; I/O waits at most `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self> {
        let stream =
            UnixStream::connect(path).map_err(|e| Error::io_path("connecting to", path, e))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| Error::io("setting socket timeouts", e))?;
        Ok(SocketClient {
            stream,
            next_req_id: 1,
        })
    }

    /// Sends a request and returns the reply's payload; an ERROR reply
    /// becomes [`Error::Xs`]. Watch events that arrive meanwhile are
    /// discarded: a watch registered here (the scaling bench's dom0 load)
    /// is there for the daemon to match writes against, not to be seen.
    pub fn request(&mut self, ty: u32, payload: &[u8]) -> Result<Vec<u8>> {
        let msg = Message::new(ty, self.next_req_id, payload);
        self.next_req_id = self.next_req_id.wrapping_add(1);
        self.stream
            .write_all(&msg.encode())
            .map_err(|e| Error::io(format!("sending {}", describe(&msg)), e))?;
        let reply = self.receive(&msg)?;
        if let Some(error) = reply.error() {
            return Err(Error::Xs {
                request: describe(&msg),
                error,
            });
        }
        if reply.ty != msg.ty || reply.req_id != msg.req_id {
            return Err(Error::Protocol(format!(
                "{}: reply has type {} req_id {}",
                describe(&msg),
                reply.ty,
                reply.req_id
            )));
        }
        Ok(reply.payload)
    }

    /// The next message that is not a watch event.
    fn receive(&mut self, request: &Message) -> Result<Message> {
        loop {
            let message = self.receive_any(request)?;
            if message.ty != ty::WATCH_EVENT {
                return Ok(message);
            }
        }
    }

    fn receive_any(&mut self, request: &Message) -> Result<Message> {
        let context = || format!("reading the reply to {}", describe(request));
        let mut header = [0u8; HEADER_LEN];
        self.stream
            .read_exact(&mut header)
            .map_err(|e| Error::io(context(), e))?;
        let (ty, req_id, tx_id, len) = Message::decode_header(&header)?;
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| Error::io(context(), e))?;
        Ok(Message {
            ty,
            req_id,
            tx_id,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_through_its_header() {
        let msg = Message {
            ty: ty::WRITE,
            req_id: 7,
            tx_id: 3,
            payload: b"/a\0b".to_vec(),
        };
        let bytes = msg.encode();
        assert_eq!(bytes.len(), HEADER_LEN + 4);
        let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().unwrap();
        assert_eq!(
            Message::decode_header(&header).unwrap(),
            (ty::WRITE, 7, 3, 4)
        );
    }

    #[test]
    fn a_length_over_the_payload_limit_is_a_protocol_error() {
        let mut header = [0u8; HEADER_LEN];
        header[12..].copy_from_slice(&(PAYLOAD_MAX as u32 + 1).to_le_bytes());
        assert!(matches!(
            Message::decode_header(&header),
            Err(Error::Protocol(_))
        ));
        header[12..].copy_from_slice(&(PAYLOAD_MAX as u32).to_le_bytes());
        assert!(Message::decode_header(&header).is_ok());
    }

    #[test]
    fn error_replies_and_text_drop_the_trailing_nul() {
        let reply = Message::new(ty::ERROR, 1, b"EACCES\0");
        assert_eq!(reply.error().as_deref(), Some("EACCES"));
        assert_eq!(Message::new(ty::READ, 1, b"v").error(), None);
        assert_eq!(nul_join(&["a", "b"]), b"a\0b\0");
    }
}

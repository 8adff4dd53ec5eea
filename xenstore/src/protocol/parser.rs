//! Incremental message framing for the receive direction.
//!
//! Bytes arrive in arbitrary pieces (a socket read, a ring chunk that wraps).
//! The parser keeps its place between pieces and yields whole messages. It
//! never parses a header from the middle of a body: a body announced longer
//! than [`PAYLOAD_MAX`] is reported at once (and would be skipped in full if
//! fed on; the core stops feeding instead, since a peer that announces such
//! a length cannot be trusted to send it: see [`super::Event::Broken`]).

use alloc::vec::Vec;

use crate::wire::{HEADER_LEN, Header, PAYLOAD_MAX};

/// What the parser found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message.
    Message(Header, Vec<u8>),
    /// A header announcing more than [`PAYLOAD_MAX`] bytes; that many bytes
    /// that follow are being discarded.
    Oversized(Header),
}

#[derive(Debug)]
enum State {
    /// Collecting the 16 header bytes.
    Header {
        bytes: [u8; HEADER_LEN],
        have: usize,
    },
    /// Collecting `header.len` body bytes.
    Body { header: Header, body: Vec<u8> },
    /// Discarding the body of an oversized message.
    Skip { remaining: u32 },
}

/// The framing state machine. `Parser::default()` expects a header.
#[derive(Debug)]
pub struct Parser {
    state: State,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            state: State::Header {
                bytes: [0; HEADER_LEN],
                have: 0,
            },
        }
    }
}

impl Parser {
    /// Consumes bytes from the front of `input` until one frame is complete
    /// (returned) or `input` is empty (`None`; the partial message is kept).
    ///
    /// Invariant: the frames yielded for a byte stream do not depend on how
    /// the stream was cut into `input` pieces (the fuzz target checks this).
    pub fn next_frame(&mut self, input: &mut &[u8]) -> Option<Frame> {
        while !input.is_empty() {
            match &mut self.state {
                State::Header { bytes, have } => {
                    let take = (HEADER_LEN - *have).min(input.len());
                    bytes[*have..*have + take].copy_from_slice(&input[..take]);
                    *have += take;
                    *input = &input[take..];
                    if *have < HEADER_LEN {
                        continue;
                    }
                    let header = Header::decode(bytes);
                    if header.len as usize > PAYLOAD_MAX {
                        self.state = State::Skip {
                            remaining: header.len,
                        };
                        return Some(Frame::Oversized(header));
                    }
                    if header.len == 0 {
                        self.reset();
                        return Some(Frame::Message(header, Vec::new()));
                    }
                    self.state = State::Body {
                        header,
                        body: Vec::with_capacity(header.len as usize),
                    };
                }
                State::Body { header, body } => {
                    let take = (header.len as usize - body.len()).min(input.len());
                    body.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    if body.len() == header.len as usize {
                        let header = *header;
                        let body = core::mem::take(body);
                        self.reset();
                        return Some(Frame::Message(header, body));
                    }
                }
                State::Skip { remaining } => {
                    // `remaining` fits in u32, so the min does too.
                    let take = (*remaining as usize).min(input.len());
                    *remaining -= take as u32;
                    *input = &input[take..];
                    if *remaining == 0 {
                        self.reset();
                    }
                }
            }
        }
        None
    }

    /// Forgets any partial message (after a reconnection or resume, when
    /// the byte stream starts afresh).
    pub fn reset(&mut self) {
        *self = Parser::default();
    }

    /// Whether the parser is between messages.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Header { have: 0, .. })
    }

    /// Where the parser is within a message it has started: (bytes
    /// received, bytes the message has), headers included; 16 stands for
    /// the length while the header itself is incomplete. `None` between
    /// messages and while skipping an oversized body.
    pub fn partial(&self) -> Option<(u32, u32)> {
        const HEADER: u32 = HEADER_LEN as u32;
        match &self.state {
            State::Header { have: 0, .. } | State::Skip { .. } => None,
            State::Header { have, .. } => Some((*have as u32, HEADER)),
            // Both fit: the body is at most PAYLOAD_MAX here.
            State::Body { header, body } => Some((HEADER + body.len() as u32, HEADER + header.len)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn message(ty: u32, req_id: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Header {
            ty,
            req_id,
            tx_id: 0,
            len: body.len() as u32,
        }
        .encode()
        .to_vec();
        out.extend_from_slice(body);
        out
    }

    fn frames(stream: &[u8], piece: usize) -> Vec<Frame> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for mut chunk in stream.chunks(piece) {
            while let Some(f) = p.next_frame(&mut chunk) {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn frames_do_not_depend_on_how_bytes_are_cut() {
        let mut stream = message(2, 1, b"value");
        stream.extend(message(11, 2, b"OK\0"));
        stream.extend(message(1, 3, b""));
        let whole = frames(&stream, stream.len());
        assert_eq!(whole.len(), 3);
        for piece in 1..stream.len() {
            assert_eq!(frames(&stream, piece), whole, "piece size {piece}");
        }
    }

    #[test]
    fn oversized_body_is_skipped_in_full_and_stream_stays_in_step() {
        let mut stream = Header {
            ty: 2,
            req_id: 7,
            tx_id: 0,
            len: 5000,
        }
        .encode()
        .to_vec();
        // The body contains what looks like a header: it must not be parsed.
        let mut body = message(2, 99, b"fake");
        body.resize(5000, 0xAA);
        stream.extend(body);
        stream.extend(message(2, 8, b"real"));
        for piece in [1, 7, 1024, stream.len()] {
            let f = frames(&stream, piece);
            assert_eq!(f.len(), 2, "piece size {piece}");
            assert!(matches!(&f[0], Frame::Oversized(h) if h.req_id == 7 && h.len == 5000));
            assert!(matches!(&f[1], Frame::Message(h, b) if h.req_id == 8 && b == b"real"));
        }
    }

    #[test]
    fn partial_message_is_kept_until_complete() {
        let stream = message(2, 1, b"abc");
        let mut p = Parser::default();
        let mut first = &stream[..10];
        assert_eq!(p.next_frame(&mut first), None);
        assert!(!p.is_idle());
        let mut rest = &stream[10..];
        assert_eq!(
            p.next_frame(&mut rest),
            Some(Frame::Message(
                Header::decode(stream[..16].try_into().unwrap()),
                vec![b'a', b'b', b'c']
            ))
        );
        assert!(p.is_idle());
    }

    #[test]
    fn partial_reports_how_much_of_a_message_came() {
        let stream = message(2, 1, b"abc");
        let mut p = Parser::default();
        assert_eq!(p.partial(), None);
        let mut some = &stream[..5];
        p.next_frame(&mut some);
        assert_eq!(p.partial(), Some((5, 16)));
        let mut more = &stream[5..17];
        p.next_frame(&mut more);
        assert_eq!(p.partial(), Some((17, 19)));
        let mut rest = &stream[17..];
        assert!(p.next_frame(&mut rest).is_some());
        assert_eq!(p.partial(), None);
    }

    #[test]
    fn maximum_length_is_allowed() {
        let body = vec![b'x'; PAYLOAD_MAX];
        let f = frames(&message(2, 1, &body), 999);
        assert!(matches!(&f[..], [Frame::Message(_, b)] if b.len() == PAYLOAD_MAX));
    }
}

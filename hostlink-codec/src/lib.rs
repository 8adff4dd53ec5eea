//! The line format between a guest and the host agent (`bootimage`'s
//! `agent` module), on the guest's serial port.
//!
//! One crate shared by both ends (the kernel's `hostlink` module, and the
//! host agents of `bootimage` and `realxen`), so the two cannot drift. It
//! needs only `alloc`.
//!
//! ```text
//! guest -> host   @host <seq> <verb> [<arg> ...]
//! host -> guest   @ok <seq> [<value> ...]
//!                 @err <seq> <message>
//! ```
//!
//! One message per line; a line is a message only if it *starts* with the
//! marker, so log lines around it (the kernel writes whole lines atomically)
//! are ignored. Tokens are separated by single spaces. Each token is
//! escaped: bytes outside `!`..=`~` and `%` itself become `%XX` (two
//! uppercase hex digits), and the empty token is `%-`. `<seq>` is a decimal
//! number chosen by the guest; a reply carries its request's. The message
//! of `@err` is one escaped token too.

#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// Marks a request line (guest to host).
pub const REQUEST_MARKER: &str = "@host";
/// Marks a success reply (host to guest).
pub const OK_MARKER: &str = "@ok";
/// Marks a failure reply (host to guest).
pub const ERR_MARKER: &str = "@err";
/// Starts the line the kernel prints just before it powers off or resets
/// the machine on the host's request: `@power poweroff` or `@power reboot`.
/// Not a request (nothing answers it): the test runner reads it to tell a
/// requested reset (QEMU `-no-reboot` then exits with status 0) from a
/// triple fault, and a requested poweroff from an early exit.
pub const POWER_MARKER: &str = "@power";
/// The escaped form of an empty token.
const EMPTY: &str = "%-";

/// A request from the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the guest; echoed in the reply.
    pub seq: u64,
    /// What to do (`write`, `flood`, ...; the agent's vocabulary).
    pub verb: String,
    /// Its arguments, unescaped.
    pub args: Vec<Vec<u8>>,
}

/// The host's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done; the values the verb returns.
    Ok {
        /// The request's sequence number.
        seq: u64,
        /// Returned values, unescaped.
        values: Vec<Vec<u8>>,
    },
    /// Not done, and why.
    Err {
        /// The request's sequence number.
        seq: u64,
        /// What went wrong.
        message: String,
    },
}

impl Reply {
    /// The sequence number of the request this answers.
    pub fn seq(&self) -> u64 {
        match self {
            Reply::Ok { seq, .. } | Reply::Err { seq, .. } => *seq,
        }
    }
}

/// Why a marked line could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The sequence number is missing or not a number.
    BadSeq,
    /// A request without a verb.
    NoVerb,
    /// A `%` escape that is not `%XX` or `%-`.
    BadEscape {
        /// The token (as received).
        token: String,
    },
}

/// Appends the escaped form of `token` to `out`.
pub fn escape_into(token: &[u8], out: &mut String) {
    if token.is_empty() {
        out.push_str(EMPTY);
        return;
    }
    for &b in token {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// The bytes an escaped token stands for.
pub fn unescape(token: &str) -> Result<Vec<u8>, DecodeError> {
    if token == EMPTY {
        return Ok(Vec::new());
    }
    let bad = || DecodeError::BadEscape {
        token: String::from(token),
    };
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let digit = |c: u8| (c as char).to_digit(16).ok_or_else(bad);
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn join(marker: &str, seq: u64, words: &[&[u8]]) -> String {
    let mut line = String::from(marker);
    line.push(' ');
    line.push_str(&alloc::format!("{seq}"));
    for word in words {
        line.push(' ');
        escape_into(word, &mut line);
    }
    line
}

/// The line (without its newline) for a request.
pub fn encode_request(seq: u64, verb: &str, args: &[&[u8]]) -> String {
    let mut words: Vec<&[u8]> = Vec::with_capacity(args.len() + 1);
    words.push(verb.as_bytes());
    words.extend_from_slice(args);
    join(REQUEST_MARKER, seq, &words)
}

/// The line (without its newline) for a reply.
pub fn encode_reply(reply: &Reply) -> String {
    match reply {
        Reply::Ok { seq, values } => {
            let words: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            join(OK_MARKER, *seq, &words)
        }
        Reply::Err { seq, message } => join(ERR_MARKER, *seq, &[message.as_bytes()]),
    }
}

/// Splits a line that starts with `marker` followed by a space (or ends
/// there) into its sequence number and the remaining tokens; `None` when
/// the line is not marked.
fn split<'a>(
    line: &'a str,
    marker: &str,
) -> Option<Result<(u64, impl Iterator<Item = &'a str>), DecodeError>> {
    let line = line.trim_end_matches(['\r', '\n']);
    let rest = line.strip_prefix(marker)?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    Some(
        words
            .next()
            .and_then(|s| s.parse().ok())
            .map(|seq| (seq, words))
            .ok_or(DecodeError::BadSeq),
    )
}

/// Decodes a request line. `None`: not a request (a log line); the caller
/// ignores it.
pub fn decode_request(line: &str) -> Option<Result<Request, DecodeError>> {
    Some(split(line, REQUEST_MARKER)?.and_then(|(seq, mut words)| {
        let verb = words.next().ok_or(DecodeError::NoVerb)?;
        let verb = String::from_utf8_lossy(&unescape(verb)?).into_owned();
        let args = words.map(unescape).collect::<Result<_, _>>()?;
        Ok(Request { seq, verb, args })
    }))
}

/// Decodes a reply line. `None`: not a reply.
pub fn decode_reply(line: &str) -> Option<Result<Reply, DecodeError>> {
    if let Some(parts) = split(line, OK_MARKER) {
        return Some(parts.and_then(|(seq, words)| {
            let values = words.map(unescape).collect::<Result<_, _>>()?;
            Ok(Reply::Ok { seq, values })
        }));
    }
    let parts = split(line, ERR_MARKER)?;
    Some(parts.and_then(|(seq, words)| {
        let mut message = Vec::new();
        for (i, w) in words.enumerate() {
            if i > 0 {
                message.push(b' ');
            }
            message.extend(unescape(w)?);
        }
        Ok(Reply::Err {
            seq,
            message: String::from_utf8_lossy(&message).into_owned(),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn request_round_trips_with_awkward_bytes() {
        let value: &[u8] = b"a b%c\n\x00\xff";
        let line = encode_request(7, "write", &[b"/local/domain/1/x", value, b""]);
        assert_eq!(
            line,
            "@host 7 write /local/domain/1/x a%20b%25c%0A%00%FF %-"
        );
        let req = decode_request(&line).unwrap().unwrap();
        assert_eq!(
            req,
            Request {
                seq: 7,
                verb: "write".into(),
                args: vec![b"/local/domain/1/x".to_vec(), value.to_vec(), vec![]],
            }
        );
    }

    #[test]
    fn replies_round_trip() {
        for reply in [
            Reply::Ok {
                seq: 1,
                values: vec![],
            },
            Reply::Ok {
                seq: 2,
                values: vec![b"5".to_vec(), b"two words".to_vec()],
            },
            Reply::Err {
                seq: 3,
                message: "xenstore-write failed: EACCES".into(),
            },
        ] {
            let line = encode_reply(&reply);
            assert_eq!(decode_reply(&line), Some(Ok(reply.clone())), "{line}");
            assert_eq!(decode_reply(&(line + "\r\n")), Some(Ok(reply)));
        }
    }

    #[test]
    fn unmarked_and_look_alike_lines_are_not_messages() {
        assert_eq!(decode_request("[ 0.1] INFO kernel: booted"), None);
        assert_eq!(decode_request("@hostile 1 write"), None);
        assert_eq!(
            decode_request(" @host 1 write x"),
            None,
            "marker must start the line"
        );
        assert_eq!(decode_reply("@okay 1"), None);
        assert_eq!(decode_reply("ktest: start x"), None);
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        assert_eq!(decode_request("@host"), Some(Err(DecodeError::BadSeq)));
        assert_eq!(
            decode_request("@host x write"),
            Some(Err(DecodeError::BadSeq))
        );
        assert_eq!(decode_request("@host 4"), Some(Err(DecodeError::NoVerb)));
        assert!(matches!(
            decode_request("@host 4 write %G1"),
            Some(Err(DecodeError::BadEscape { .. }))
        ));
        assert!(matches!(
            decode_reply("@ok 4 abc%4"),
            Some(Err(DecodeError::BadEscape { .. }))
        ));
        assert_eq!(
            unescape("%"),
            Err(DecodeError::BadEscape { token: "%".into() })
        );
    }
}

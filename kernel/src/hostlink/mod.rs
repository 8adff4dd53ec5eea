//! The guest side of the host agent: a test, benchmark or demo image asks
//! the host to act (write a node with the real `xenstore-write`, restart
//! the daemon, corrupt the ring, ...) by printing a request line on COM1
//! and reading the answer from COM1's input. The format is in [`hostlink_codec`];
//! the host side is `bootimage`'s agent, started by the `xenstore` fixture.
//!
//! One request at a time ([`LINK`] serialises callers); each waits up to its
//! timeout for the reply with its own sequence number. Input lines that are
//! not replies, or replies to an earlier request that timed out, are
//! dropped with a warning: nothing is taken for an answer it is not.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use hostlink_codec::{Reply, decode_reply, encode_request};

use crate::sync::Mutex;
use crate::time::Instant;

/// How long [`request`] waits for the host by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest reply line accepted.
const MAX_LINE: usize = 16 * 1024;

/// Why a request to the host failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The host answered `@err` with this message.
    Refused(String),
    /// No answer in time (is the image booted without the agent?).
    Timeout {
        /// The verb asked for.
        verb: String,
    },
    /// Serial input is not available.
    NoInput,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(m) => write!(f, "host refused: {m}"),
            Self::Timeout { verb } => write!(
                f,
                "no answer from the host agent to {verb:?} (booted without the xenstore fixture?)"
            ),
            Self::NoInput => write!(f, "serial input is not enabled"),
        }
    }
}

struct LinkState {
    next_seq: u64,
    /// Bytes of a reply line read so far (kept across timeouts, so a slow
    /// line is not cut in two).
    partial: Vec<u8>,
}

/// The link: one request in flight at a time.
static LINK: Mutex<LinkState> = Mutex::new(LinkState {
    next_seq: 1,
    partial: Vec::new(),
});

/// Asks the host agent to perform `verb` with `args` and returns the values
/// it answered, waiting up to [`DEFAULT_TIMEOUT`]. Thread context.
pub fn request(verb: &str, args: &[&[u8]]) -> Result<Vec<Vec<u8>>, HostError> {
    request_timeout(verb, args, DEFAULT_TIMEOUT)
}

/// [`request`] with an explicit timeout.
pub fn request_timeout(
    verb: &str,
    args: &[&[u8]],
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, HostError> {
    let mut link = LINK.lock();
    let seq = link.next_seq;
    link.next_seq += 1;
    let mut line = encode_request(seq, verb, args);
    line.push('\n');
    crate::serial::write_bytes(line.as_bytes());
    let deadline = Instant::now() + timeout;
    loop {
        let Some(text) = read_line(&mut link, deadline)? else {
            return Err(HostError::Timeout { verb: verb.into() });
        };
        match decode_reply(&text) {
            Some(Ok(reply)) if reply.seq() == seq => {
                return match reply {
                    Reply::Ok { values, .. } => Ok(values),
                    Reply::Err { message, .. } => Err(HostError::Refused(message)),
                };
            }
            Some(Ok(stale)) => log::warn!(
                "hostlink: dropping a reply to request {} (waiting for {seq})",
                stale.seq()
            ),
            Some(Err(e)) => log::warn!("hostlink: undecodable reply dropped: {e:?}"),
            None => log::warn!(
                "hostlink: unexpected input line dropped ({} bytes)",
                text.len()
            ),
        }
    }
}

/// Reads the next input line (without terminator) before `deadline`;
/// `Ok(None)` on timeout (the partial line is kept for the next call).
fn read_line(link: &mut LinkState, deadline: Instant) -> Result<Option<String>, HostError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let Some(byte) = crate::serial::read_byte(Some(left)) else {
            if !crate::serial::input_enabled() {
                return Err(HostError::NoInput);
            }
            continue;
        };
        match byte {
            b'\n' | b'\r' if link.partial.is_empty() => {}
            b'\n' | b'\r' => {
                let text = String::from_utf8_lossy(&link.partial).into_owned();
                link.partial.clear();
                return Ok(Some(text));
            }
            _ if link.partial.len() >= MAX_LINE => {
                log::warn!("hostlink: input line over {MAX_LINE} bytes dropped");
                link.partial.clear();
            }
            _ => link.partial.push(byte),
        }
    }
}

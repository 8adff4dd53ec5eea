//! The frames of the file copy protocol, version 1 (`docs/fcopy.md`).
//!
//! Every frame is an 8-byte header and a body, integers little-endian:
//!
//! ```text
//! header   magic "FC" (2)  version (1)  kind (1)  body length (4)
//! start    size (8)  flags (4)  dir length (2)  name length (2)  dir  name
//! write    offset (8)  data (the rest of the body, at most MAX_CHUNK)
//! complete (empty)
//! cancel   (empty)
//! status   code (2)  kind answered (1)  reserved 0 (1)  value (8)
//! ```
//!
//! The sender sends start, writes, then complete or cancel; the receiver
//! answers every frame with one status, in order. Decoding never trusts a
//! length: a header announcing more than [`MAX_BODY`] is refused before
//! anything is read or allocated, and every field is bounds-checked.

use alloc::vec::Vec;
use core::fmt;

/// The first two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"FC";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes in a frame header.
pub const HEADER_LEN: usize = 8;
/// Most data bytes one write carries.
pub const MAX_CHUNK: usize = 64 << 10;
/// Longest destination directory, in bytes.
pub const MAX_DIR: usize = 1024;
/// Longest file name, in bytes.
pub const MAX_NAME: usize = 255;
/// Bytes in a write body before its data.
pub const WRITE_PREFIX: usize = 8;
/// Bytes in a start body before its dir and name.
const START_PREFIX: usize = 16;
/// Bytes in a status body.
pub const STATUS_LEN: usize = 12;
/// The largest body any frame may announce.
pub const MAX_BODY: usize = WRITE_PREFIX + MAX_CHUNK;

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sender: a new transfer.
    Start,
    /// Sender: bytes at an offset.
    Write,
    /// Sender: publish the file.
    Complete,
    /// Sender: drop the transfer.
    Cancel,
    /// Receiver: the answer to one sender frame.
    Status,
}

impl Kind {
    /// The byte on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Self::Start => 1,
            Self::Write => 2,
            Self::Complete => 3,
            Self::Cancel => 4,
            Self::Status => 0x81,
        }
    }

    /// The kind with this byte, if any.
    pub const fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            1 => Self::Start,
            2 => Self::Write,
            3 => Self::Complete,
            4 => Self::Cancel,
            0x81 => Self::Status,
            _ => return None,
        })
    }

    /// Its name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Write => "write",
            Self::Complete => "complete",
            Self::Cancel => "cancel",
            Self::Status => "status",
        }
    }
}

/// Start's flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// Replace a file that exists.
    pub overwrite: bool,
    /// Create the destination directory (and its parents) if missing.
    pub create_path: bool,
}

impl Flags {
    const OVERWRITE: u32 = 1;
    const CREATE_PATH: u32 = 2;

    fn bits(self) -> u32 {
        (if self.overwrite { Self::OVERWRITE } else { 0 })
            | (if self.create_path {
                Self::CREATE_PATH
            } else {
                0
            })
    }

    fn from_bits(bits: u32) -> Result<Flags, DecodeError> {
        if bits & !(Self::OVERWRITE | Self::CREATE_PATH) != 0 {
            return Err(DecodeError::UnknownFlags(bits));
        }
        Ok(Flags {
            overwrite: bits & Self::OVERWRITE != 0,
            create_path: bits & Self::CREATE_PATH != 0,
        })
    }
}

/// A start frame's body. `dir` and `name` are raw bytes: the store judges
/// them (a NUL or `..` is its error to report, with a status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start<'a> {
    /// The destination directory, absolute (`/` or `/a/b`).
    pub dir: &'a [u8],
    /// The file's name in it.
    pub name: &'a [u8],
    /// The file's size in bytes.
    pub size: u64,
    /// Overwrite, create the path.
    pub flags: Flags,
}

/// A frame from the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// A new transfer.
    Start(Start<'a>),
    /// `data` at `offset` of the file.
    Write {
        /// Where in the file.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// Publish the file.
    Complete,
    /// Drop the transfer.
    Cancel,
}

impl Request<'_> {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Start(_) => Kind::Start,
            Self::Write { .. } => Kind::Write,
            Self::Complete => Kind::Complete,
            Self::Cancel => Kind::Cancel,
        }
    }
}

/// The status codes of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok,
    /// The file exists and overwrite was not set.
    Exists,
    /// The directory does not exist and create-path was not set.
    NoSuchPath,
    /// The file does not fit under the store's cap (value: bytes free).
    OutOfSpace,
    /// A write reaches past the size announced at start (value: the size).
    OffsetOutOfRange,
    /// A start while a transfer is in progress.
    Busy,
    /// The directory or name is empty, too long, not UTF-8, or holds a
    /// NUL, a `/` (in a name) or a `.`/`..` component.
    BadName,
    /// A write, complete or cancel with no transfer in progress.
    NoTransfer,
    /// Complete before the announced size was written (value: bytes
    /// written).
    Incomplete,
    /// The frame's version is not ours (value: our version); the receiver
    /// closes the channel after this answer.
    BadVersion,
    /// The frame could not be decoded; the receiver closes the channel
    /// after this answer.
    Malformed,
    /// A code this version does not know (from a newer peer).
    Other(u16),
}

impl Status {
    /// The code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            Self::Ok => 0,
            Self::Exists => 1,
            Self::NoSuchPath => 2,
            Self::OutOfSpace => 3,
            Self::OffsetOutOfRange => 4,
            Self::Busy => 5,
            Self::BadName => 6,
            Self::NoTransfer => 7,
            Self::Incomplete => 8,
            Self::BadVersion => 9,
            Self::Malformed => 10,
            Self::Other(code) => code,
        }
    }

    /// The status with this code.
    pub const fn from_code(code: u16) -> Status {
        match code {
            0 => Self::Ok,
            1 => Self::Exists,
            2 => Self::NoSuchPath,
            3 => Self::OutOfSpace,
            4 => Self::OffsetOutOfRange,
            5 => Self::Busy,
            6 => Self::BadName,
            7 => Self::NoTransfer,
            8 => Self::Incomplete,
            9 => Self::BadVersion,
            10 => Self::Malformed,
            other => Self::Other(other),
        }
    }

    /// A short stable word for it (tests and scripts match on these).
    pub const fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Exists => "exists",
            Self::NoSuchPath => "no-such-path",
            Self::OutOfSpace => "out-of-space",
            Self::OffsetOutOfRange => "offset-out-of-range",
            Self::Busy => "busy",
            Self::BadName => "bad-name",
            Self::NoTransfer => "no-transfer",
            Self::Incomplete => "incomplete",
            Self::BadVersion => "bad-version",
            Self::Malformed => "malformed",
            Self::Other(_) => "other",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::Exists => "the file exists and overwrite was not asked for",
            Self::NoSuchPath => "no such directory and creating it was not asked for",
            Self::OutOfSpace => "out of space",
            Self::OffsetOutOfRange => "write outside the size announced at start",
            Self::Busy => "another transfer is in progress",
            Self::BadName => "bad name (empty, too long, not UTF-8, a NUL, '/', '.' or '..')",
            Self::NoTransfer => "no transfer in progress",
            Self::Incomplete => "complete before every byte was written",
            Self::BadVersion => "protocol version not supported",
            Self::Malformed => "malformed frame",
            Self::Other(code) => return write!(f, "status code {code} (unknown to this version)"),
        })
    }
}

/// The receiver's answer to one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// What it answers ([`Kind::Status`] for a frame whose kind byte named
    /// nothing).
    pub answers: Kind,
    /// How it went.
    pub status: Status,
    /// A figure for the status (see [`Status`]'s variants); for an `Ok`
    /// write, the bytes received so far.
    pub value: u64,
}

/// Why bytes are not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or the body needs.
    Short {
        /// Bytes needed.
        need: usize,
        /// Bytes there.
        have: usize,
    },
    /// The first two bytes are not [`MAGIC`].
    BadMagic([u8; 2]),
    /// A version this crate does not speak.
    BadVersion(u8),
    /// A kind byte that names no frame.
    UnknownKind(u8),
    /// A body longer than [`MAX_BODY`].
    TooLong(u32),
    /// A body whose length does not fit its kind.
    BadLength {
        /// The frame's kind.
        kind: Kind,
        /// The length announced.
        len: u32,
    },
    /// Start's directory or name length beyond the limits or the body.
    BadStringLength,
    /// Start flags this version does not know.
    UnknownFlags(u32),
    /// A status frame from the sender, or a sender frame as a reply.
    WrongDirection(Kind),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short { need, have } => write!(f, "short frame: {have} of {need} bytes"),
            Self::BadMagic(m) => write!(f, "bad magic {m:02x?}"),
            Self::BadVersion(v) => write!(f, "version {v}, this end speaks {VERSION}"),
            Self::UnknownKind(k) => write!(f, "unknown frame kind {k:#04x}"),
            Self::TooLong(n) => write!(f, "body of {n} bytes, over the limit of {MAX_BODY}"),
            Self::BadLength { kind, len } => {
                write!(f, "a {} frame cannot have a {len}-byte body", kind.name())
            }
            Self::BadStringLength => {
                f.write_str("start's directory or name length is out of range")
            }
            Self::UnknownFlags(b) => write!(f, "unknown start flags {b:#x}"),
            Self::WrongDirection(k) => write!(f, "a {} frame in the wrong direction", k.name()),
        }
    }
}

impl core::error::Error for DecodeError {}

/// A parsed header: the body that follows has `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The frame's kind.
    pub kind: Kind,
    /// The body's length (at most [`MAX_BODY`]).
    pub len: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Parses a header from the first [`HEADER_LEN`] bytes of `bytes`. Checks
/// the magic, the version, the kind and the body length against its kind,
/// so the caller may then read exactly `len` bytes.
pub fn parse_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Short {
            need: HEADER_LEN,
            have: bytes.len(),
        });
    }
    let magic = [bytes[0], bytes[1]];
    if magic != MAGIC {
        return Err(DecodeError::BadMagic(magic));
    }
    if bytes[2] != VERSION {
        return Err(DecodeError::BadVersion(bytes[2]));
    }
    let kind = Kind::from_code(bytes[3]).ok_or(DecodeError::UnknownKind(bytes[3]))?;
    let len = u32_at(bytes, 4);
    if len as usize > MAX_BODY {
        return Err(DecodeError::TooLong(len));
    }
    let fits = match kind {
        Kind::Start => (START_PREFIX..=START_PREFIX + MAX_DIR + MAX_NAME).contains(&(len as usize)),
        Kind::Write => len as usize >= WRITE_PREFIX,
        Kind::Complete | Kind::Cancel => len == 0,
        Kind::Status => len as usize == STATUS_LEN,
    };
    if !fits {
        return Err(DecodeError::BadLength { kind, len });
    }
    Ok(Header {
        kind,
        len: len as usize,
    })
}

fn need(body: &[u8], len: usize) -> Result<(), DecodeError> {
    if body.len() < len {
        return Err(DecodeError::Short {
            need: len,
            have: body.len(),
        });
    }
    Ok(())
}

/// Decodes a sender frame's body (`body` is exactly the header's `len`
/// bytes).
pub fn decode_request<'a>(header: Header, body: &'a [u8]) -> Result<Request<'a>, DecodeError> {
    need(body, header.len)?;
    let body = &body[..header.len];
    Ok(match header.kind {
        Kind::Start => {
            let size = u64_at(body, 0);
            let flags = Flags::from_bits(u32_at(body, 8))?;
            let dir_len = usize::from(u16_at(body, 12));
            let name_len = usize::from(u16_at(body, 14));
            if dir_len > MAX_DIR
                || name_len > MAX_NAME
                || START_PREFIX + dir_len + name_len != body.len()
            {
                return Err(DecodeError::BadStringLength);
            }
            let dir = &body[START_PREFIX..START_PREFIX + dir_len];
            let name = &body[START_PREFIX + dir_len..];
            Request::Start(Start {
                dir,
                name,
                size,
                flags,
            })
        }
        Kind::Write => Request::Write {
            offset: u64_at(body, 0),
            data: &body[WRITE_PREFIX..],
        },
        Kind::Complete => Request::Complete,
        Kind::Cancel => Request::Cancel,
        Kind::Status => return Err(DecodeError::WrongDirection(Kind::Status)),
    })
}

fn header(kind: Kind, len: usize) -> [u8; HEADER_LEN] {
    let len = (len as u32).to_le_bytes();
    [
        MAGIC[0],
        MAGIC[1],
        VERSION,
        kind.code(),
        len[0],
        len[1],
        len[2],
        len[3],
    ]
}

/// Why a request cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The directory is longer than [`MAX_DIR`].
    DirTooLong(usize),
    /// The name is longer than [`MAX_NAME`].
    NameTooLong(usize),
    /// A write's data is longer than [`MAX_CHUNK`].
    ChunkTooLong(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DirTooLong(n) => write!(f, "directory of {n} bytes (at most {MAX_DIR})"),
            Self::NameTooLong(n) => write!(f, "name of {n} bytes (at most {MAX_NAME})"),
            Self::ChunkTooLong(n) => write!(f, "write of {n} bytes (at most {MAX_CHUNK})"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// The header and offset of a write of `len` bytes: send these, then the
/// data itself (no copy of the data needed).
pub fn write_prefix(
    offset: u64,
    len: usize,
) -> Result<[u8; HEADER_LEN + WRITE_PREFIX], EncodeError> {
    if len > MAX_CHUNK {
        return Err(EncodeError::ChunkTooLong(len));
    }
    let mut out = [0u8; HEADER_LEN + WRITE_PREFIX];
    out[..HEADER_LEN].copy_from_slice(&header(Kind::Write, WRITE_PREFIX + len));
    out[HEADER_LEN..].copy_from_slice(&offset.to_le_bytes());
    Ok(out)
}

/// Appends `request`'s frame to `out`.
pub fn encode_request(request: &Request<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match request {
        Request::Start(s) => {
            if s.dir.len() > MAX_DIR {
                return Err(EncodeError::DirTooLong(s.dir.len()));
            }
            if s.name.len() > MAX_NAME {
                return Err(EncodeError::NameTooLong(s.name.len()));
            }
            out.extend_from_slice(&header(
                Kind::Start,
                START_PREFIX + s.dir.len() + s.name.len(),
            ));
            out.extend_from_slice(&s.size.to_le_bytes());
            out.extend_from_slice(&s.flags.bits().to_le_bytes());
            out.extend_from_slice(&(s.dir.len() as u16).to_le_bytes());
            out.extend_from_slice(&(s.name.len() as u16).to_le_bytes());
            out.extend_from_slice(s.dir);
            out.extend_from_slice(s.name);
        }
        Request::Write { offset, data } => {
            out.extend_from_slice(&write_prefix(*offset, data.len())?);
            out.extend_from_slice(data);
        }
        Request::Complete => out.extend_from_slice(&header(Kind::Complete, 0)),
        Request::Cancel => out.extend_from_slice(&header(Kind::Cancel, 0)),
    }
    Ok(())
}

/// The whole frame of `reply`.
pub fn encode_reply(reply: &Reply) -> [u8; HEADER_LEN + STATUS_LEN] {
    let mut out = [0u8; HEADER_LEN + STATUS_LEN];
    out[..HEADER_LEN].copy_from_slice(&header(Kind::Status, STATUS_LEN));
    out[8..10].copy_from_slice(&reply.status.code().to_le_bytes());
    out[10] = reply.answers.code();
    out[12..20].copy_from_slice(&reply.value.to_le_bytes());
    out
}

/// Decodes a whole reply frame (header and body).
pub fn decode_reply(frame: &[u8]) -> Result<Reply, DecodeError> {
    let header = parse_header(frame)?;
    if header.kind != Kind::Status {
        return Err(DecodeError::WrongDirection(header.kind));
    }
    let body = &frame[HEADER_LEN..];
    need(body, STATUS_LEN)?;
    // `Status` answers a frame whose kind byte named nothing.
    let answers = Kind::from_code(body[2]).ok_or(DecodeError::UnknownKind(body[2]))?;
    Ok(Reply {
        answers,
        status: Status::from_code(u16_at(body, 0)),
        value: u64_at(body, 4),
    })
}

#[cfg(test)]
mod tests;

//! Errors: the daemon's error strings ([`ErrorCode`]), what a misbehaving
//! peer can do wrong ([`ProtocolViolation`]), transport failures
//! ([`TransportError`]), and the one error type of the API ([`XsError`]).

mod code;
mod transport;

use alloc::string::String;
use core::fmt;

pub use code::ErrorCode;
pub use transport::{ProtocolViolation, RingSide, TransportError};

use crate::wire::MsgType;

/// The operation and path an error is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// The request's message type.
    pub op: MsgType,
    /// The path the request named, if it named one.
    pub path: Option<String>,
}

impl Context {
    /// Context for `op` on `path`.
    pub fn new(op: MsgType, path: Option<&str>) -> Context {
        Context {
            op,
            path: path.map(String::from),
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{} {p}", self.op),
            None => write!(f, "{}", self.op),
        }
    }
}

/// Why a path was refused before sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The empty string.
    Empty,
    /// Longer than [`crate::wire::ABS_PATH_MAX`] (absolute) or
    /// [`crate::wire::REL_PATH_MAX`] (relative).
    TooLong {
        /// The path's length.
        len: usize,
        /// The applicable limit.
        max: usize,
    },
    /// A byte outside `[A-Za-z0-9-/_@]`.
    BadChar(u8),
    /// `//` somewhere.
    DoubleSlash,
    /// A trailing `/` (only the root may end in `/`).
    TrailingSlash,
    /// A `@special` path where only watches allow one.
    SpecialNotAllowed,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Empty => f.write_str("empty path"),
            PathError::TooLong { len, max } => write!(f, "{len} bytes long, at most {max} allowed"),
            PathError::BadChar(b) => write!(f, "byte {b:#04x} is not allowed in a path"),
            PathError::DoubleSlash => f.write_str("contains //"),
            PathError::TrailingSlash => f.write_str("ends in /"),
            PathError::SpecialNotAllowed => f.write_str("a @special path outside a watch"),
        }
    }
}

impl core::error::Error for PathError {}

/// Every error the API returns.
///
/// Daemon errors carry the [`Context`] (operation and path) they answered;
/// match them as `XsError::Enoent(_)`. [`XsError::code`] gives the bare
/// [`ErrorCode`] for code that handles errors generically.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XsError {
    /// Daemon: EINVAL.
    Einval(Context),
    /// Daemon: EACCES.
    Eacces(Context),
    /// Daemon: EEXIST.
    Eexist(Context),
    /// Daemon: EISDIR.
    Eisdir(Context),
    /// Daemon: ENOENT.
    Enoent(Context),
    /// Daemon: ENOMEM.
    Enomem(Context),
    /// Daemon: ENOSPC.
    Enospc(Context),
    /// Daemon: EIO.
    Eio(Context),
    /// Daemon: ENOTEMPTY.
    Enotempty(Context),
    /// Daemon: ENOSYS.
    Enosys(Context),
    /// Daemon: EROFS.
    Erofs(Context),
    /// Daemon: EBUSY.
    Ebusy(Context),
    /// Daemon: EAGAIN (transaction conflict).
    Eagain(Context),
    /// Daemon: EISCONN.
    Eisconn(Context),
    /// Daemon: E2BIG.
    E2big(Context),
    /// Daemon: EPERM.
    Eperm(Context),
    /// Daemon: EQUOTA (oxenstored only; the C daemon answers ENOSPC or E2BIG
    /// past its quotas, see the crate README).
    Equota(Context),
    /// Daemon: an error string no Xen header lists.
    Unknown(String, Context),

    /// Local: the path was refused before sending.
    InvalidPath {
        /// The path (truncated to 64 bytes if longer).
        path: String,
        /// Why.
        reason: PathError,
    },
    /// Local: the request's payload would exceed 4096 bytes; not sent.
    PayloadTooLarge {
        /// The operation and path.
        ctx: Context,
        /// The payload length it would have had.
        len: usize,
    },
    /// Local: a request named a transaction this client does not have open.
    NoSuchTransaction {
        /// The transaction id.
        tx_id: u32,
    },
    /// The peer broke the protocol while answering this request.
    Protocol {
        /// The operation and path.
        ctx: Context,
        /// What the peer did.
        violation: ProtocolViolation,
    },
    /// The connection is unusable; every later call fails the same way.
    Disconnected(TransportError),
    /// No reply within the configured request timeout.
    Timeout(Context),
    /// A value could not be parsed into the requested type.
    Parse {
        /// The node read.
        path: String,
        /// The value (lossily decoded, truncated to 64 bytes).
        value: String,
    },
    /// The client is in a state that forbids the call (e.g. `reset_watches`
    /// while watches are registered); says which.
    InvalidState(&'static str),
    /// The platform could not start a thread the runtime needs.
    Spawn(&'static str),
}

/// Generates the conversions between [`ErrorCode`] and `XsError`'s daemon
/// variants (one per code, named alike) from one list of their names.
/// `from_code`'s match is exhaustive, so a code added to the table without
/// its variant does not compile.
macro_rules! daemon_variants {
    ($($variant:ident),* $(,)?) => {
        impl XsError {
            /// The error for daemon reply `code` to the request described by `ctx`.
            pub fn from_code(code: ErrorCode, ctx: Context) -> XsError {
                match code {
                    $(ErrorCode::$variant => XsError::$variant(ctx),)*
                    ErrorCode::Unknown(s) => XsError::Unknown(s, ctx),
                }
            }

            /// The daemon's error code, if this error came from the daemon.
            pub fn code(&self) -> Option<ErrorCode> {
                match self {
                    $(XsError::$variant(_) => Some(ErrorCode::$variant),)*
                    XsError::Unknown(s, _) => Some(ErrorCode::Unknown(s.clone())),
                    _ => None,
                }
            }

            /// The request a daemon error answered.
            fn daemon_context(&self) -> Option<&Context> {
                match self {
                    $(XsError::$variant(c))|* | XsError::Unknown(_, c) => Some(c),
                    _ => None,
                }
            }
        }
    };
}

daemon_variants!(
    Einval, Eacces, Eexist, Eisdir, Enoent, Enomem, Enospc, Eio, Enotempty, Enosys, Erofs, Ebusy,
    Eagain, Eisconn, E2big, Eperm, Equota,
);

impl XsError {
    /// The operation context of a daemon error, timeout or violation.
    pub fn context(&self) -> Option<&Context> {
        if let Some(c) = self.daemon_context() {
            return Some(c);
        }
        match self {
            XsError::Timeout(c) => Some(c),
            XsError::PayloadTooLarge { ctx, .. } | XsError::Protocol { ctx, .. } => Some(ctx),
            _ => None,
        }
    }

    /// Whether this is the daemon's EAGAIN (a transaction should be retried).
    pub fn is_eagain(&self) -> bool {
        matches!(self, XsError::Eagain(_))
    }
}

/// At most 64 bytes of `s`, cut at a character boundary, for error messages.
pub(crate) fn truncated(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    String::from(&s[..end])
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(code), Some(ctx)) = (self.code(), self.context()) {
            // Daemon errors: "ENOENT from READ /a/b".
            return write!(f, "{code} from {ctx}");
        }
        match self {
            XsError::InvalidPath { path, reason } => write!(f, "invalid path {path:?}: {reason:?}"),
            XsError::PayloadTooLarge { ctx, len } => {
                write!(
                    f,
                    "{ctx}: payload of {len} bytes exceeds the 4096-byte limit; not sent"
                )
            }
            XsError::NoSuchTransaction { tx_id } => write!(f, "transaction {tx_id} is not open"),
            XsError::Protocol { ctx, violation } => {
                write!(f, "{ctx}: protocol violation: {violation}")
            }
            XsError::Disconnected(cause) => write!(f, "xenstore connection lost: {cause}"),
            XsError::Timeout(ctx) => write!(f, "{ctx}: no reply within the request timeout"),
            XsError::Parse { path, value } => write!(f, "{path}: cannot parse value {value:?}"),
            XsError::InvalidState(why) => write!(f, "not allowed now: {why}"),
            XsError::Spawn(what) => write!(f, "could not start the {what} thread"),
            // Daemon errors were written above.
            other => write!(f, "{other:?}"),
        }
    }
}

impl core::error::Error for XsError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            XsError::Disconnected(cause) => Some(cause),
            XsError::Protocol { violation, .. } => Some(violation),
            XsError::InvalidPath { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn every_xsd_error_string_maps_to_its_code_and_back() {
        // The strings of xs_wire.h's xsd_errors[], in its order, plus oxenstored's EQUOTA.
        let strings = [
            "EINVAL",
            "EACCES",
            "EEXIST",
            "EISDIR",
            "ENOENT",
            "ENOMEM",
            "ENOSPC",
            "EIO",
            "ENOTEMPTY",
            "ENOSYS",
            "EROFS",
            "EBUSY",
            "EAGAIN",
            "EISCONN",
            "E2BIG",
            "EPERM",
            "EQUOTA",
        ];
        let ctx = Context::new(MsgType::Read, Some("/a"));
        let mut seen = alloc::vec::Vec::new();
        for s in strings {
            let code = ErrorCode::from_wire(s.as_bytes());
            assert!(
                !matches!(code, ErrorCode::Unknown(_)),
                "{s} should be known"
            );
            assert_eq!(code.as_str(), s);
            let err = XsError::from_code(code.clone(), ctx.clone());
            assert_eq!(err.code(), Some(code.clone()));
            assert_eq!(err.context(), Some(&ctx));
            assert!(!seen.contains(&code), "{s} maps to a code already used");
            seen.push(code);
        }
        assert_eq!(ErrorCode::known().collect::<alloc::vec::Vec<_>>(), seen);
        assert_eq!(ErrorCode::Enoent.errno(), Some(2));
        assert_eq!(ErrorCode::Eisconn.errno(), Some(106));
        assert_eq!(ErrorCode::Unknown("EX".into()).errno(), None);
        assert_eq!(ErrorCode::Enoent.meaning(), Some("no such node"));
        assert!(XsError::from_code(ErrorCode::Eagain, ctx.clone()).is_eagain());
        assert!(matches!(
            XsError::from_code(ErrorCode::Eacces, ctx.clone()),
            XsError::Eacces(Context {
                op: MsgType::Read,
                ..
            })
        ));
    }

    #[test]
    fn unknown_error_strings_are_kept_verbatim() {
        let code = ErrorCode::from_wire(b"EINVAL: Could not convert 'x' to int");
        assert_eq!(
            code,
            ErrorCode::Unknown("EINVAL: Could not convert 'x' to int".into())
        );
        let err = XsError::from_code(code, Context::new(MsgType::Write, Some("/x")));
        assert_eq!(
            err.to_string(),
            "EINVAL: Could not convert 'x' to int from WRITE /x"
        );
        // Invalid UTF-8 does not panic.
        assert!(matches!(
            ErrorCode::from_wire(&[0xff, b'E']),
            ErrorCode::Unknown(_)
        ));
    }

    #[test]
    fn display_names_the_operation_and_path() {
        let err = XsError::Enoent(Context::new(MsgType::Read, Some("/local/domain/1/x")));
        assert_eq!(err.to_string(), "ENOENT from READ /local/domain/1/x");
        let err = XsError::Disconnected(TransportError::BadRingIndexes {
            ring: RingSide::Response,
            cons: 0,
            prod: 5000,
        });
        assert!(err.to_string().contains("bad Response ring indexes"));
        // The transport failure is the cause a reporter walking `source()` finds.
        let cause = core::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(
            cause.as_deref(),
            Some(
                err.to_string()
                    .trim_start_matches("xenstore connection lost: ")
            )
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "é".repeat(40); // 80 bytes
        let t = truncated(&s);
        assert!(t.len() <= 64);
        assert!(s.starts_with(&t));
    }
}

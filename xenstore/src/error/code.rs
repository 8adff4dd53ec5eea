//! The daemon's error strings, as a type.

use alloc::string::String;
use core::fmt;

/// An error string the daemon sent in an `ERROR` reply.
///
/// The first sixteen are `xsd_errors[]` of `io/xs_wire.h`, in its order.
/// `Equota` is what the OCaml daemon (oxenstored) sends when a quota is hit;
/// the C daemon answers `Enospc` (or `E2big` for watches) instead.
/// Anything else is kept verbatim in `Unknown` (FreeBSD maps it to EINVAL;
/// we keep the string so the caller can see it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Invalid argument (bad path, malformed request).
    Einval,
    /// Permission denied.
    Eacces,
    /// Already exists.
    Eexist,
    /// Is a directory.
    Eisdir,
    /// No such node or transaction.
    Enoent,
    /// The daemon ran out of memory.
    Enomem,
    /// Out of space: the C daemon's answer past its per-domain quotas of
    /// nodes, node size, permissions and open transactions.
    Enospc,
    /// Input/output error.
    Eio,
    /// Directory not empty.
    Enotempty,
    /// Operation not supported by this daemon.
    Enosys,
    /// Read-only.
    Erofs,
    /// Busy.
    Ebusy,
    /// Transaction conflict: retry it.
    Eagain,
    /// Already connected.
    Eisconn,
    /// Too big (reply over the payload limit, node too large; the C daemon
    /// also answers it past its watch quota).
    E2big,
    /// Operation not permitted.
    Eperm,
    /// Quota exceeded (oxenstored).
    Equota,
    /// A string no Xen header lists.
    Unknown(String),
}

/// The known error strings, indexed like the variants above.
const KNOWN: [(&str, ErrorCode); 17] = [
    ("EINVAL", ErrorCode::Einval),
    ("EACCES", ErrorCode::Eacces),
    ("EEXIST", ErrorCode::Eexist),
    ("EISDIR", ErrorCode::Eisdir),
    ("ENOENT", ErrorCode::Enoent),
    ("ENOMEM", ErrorCode::Enomem),
    ("ENOSPC", ErrorCode::Enospc),
    ("EIO", ErrorCode::Eio),
    ("ENOTEMPTY", ErrorCode::Enotempty),
    ("ENOSYS", ErrorCode::Enosys),
    ("EROFS", ErrorCode::Erofs),
    ("EBUSY", ErrorCode::Ebusy),
    ("EAGAIN", ErrorCode::Eagain),
    ("EISCONN", ErrorCode::Eisconn),
    ("E2BIG", ErrorCode::E2big),
    ("EPERM", ErrorCode::Eperm),
    ("EQUOTA", ErrorCode::Equota),
];

impl ErrorCode {
    /// Maps an error string (without its NUL) to a code; unknown strings are
    /// kept in [`ErrorCode::Unknown`] (lossily decoded if not UTF-8).
    pub fn from_wire(s: &[u8]) -> ErrorCode {
        KNOWN
            .iter()
            .find(|(name, _)| name.as_bytes() == s)
            .map(|(_, code)| code.clone())
            .unwrap_or_else(|| ErrorCode::Unknown(String::from_utf8_lossy(s).into_owned()))
    }

    /// The wire string of this code.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Unknown(s) => s,
            known => KNOWN
                .iter()
                .find(|(_, c)| c == known)
                .map_or("", |(name, _)| name),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

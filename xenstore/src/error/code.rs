//! The daemon's error strings, as a type.

use alloc::string::String;
use core::fmt;

/// An error string the daemon sent in an `ERROR` reply.
///
/// The first sixteen are `xsd_errors[]` of `io/xs_wire.h`, in its order
/// (their strings and numbers are in one table, behind [`ErrorCode::as_str`]
/// and [`ErrorCode::errno`]). `Equota` is what the OCaml daemon (oxenstored) sends when a quota is hit;
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

/// One known code: its wire string, the errno it names and a few words on it.
struct Entry {
    code: ErrorCode,
    name: &'static str,
    errno: u32,
    meaning: &'static str,
}

/// The error table, the one place each code's string and number are written.
///
/// The first sixteen rows are `xsd_errors[]` of `io/xs_wire.h`, in its order;
/// their numbers are what that table's `EINVAL`, ... are on x86 Linux, which
/// Linux's xenbus also writes into `error/` nodes (some, such as EISDIR and
/// EROFS, are not in Xen's own `errno.h`, so they are not `xen::Errno`s).
/// EQUOTA is oxenstored's; it stands for Linux's EDQUOT.
static TABLE: [Entry; 17] = [
    entry(ErrorCode::Einval, "EINVAL", 22, "invalid argument"),
    entry(ErrorCode::Eacces, "EACCES", 13, "permission denied"),
    entry(ErrorCode::Eexist, "EEXIST", 17, "already exists"),
    entry(ErrorCode::Eisdir, "EISDIR", 21, "is a directory"),
    entry(ErrorCode::Enoent, "ENOENT", 2, "no such node"),
    entry(
        ErrorCode::Enomem,
        "ENOMEM",
        12,
        "the daemon is out of memory",
    ),
    entry(ErrorCode::Enospc, "ENOSPC", 28, "over the daemon's quota"),
    entry(ErrorCode::Eio, "EIO", 5, "input/output error"),
    entry(
        ErrorCode::Enotempty,
        "ENOTEMPTY",
        39,
        "the node has children",
    ),
    entry(
        ErrorCode::Enosys,
        "ENOSYS",
        38,
        "not supported by this daemon",
    ),
    entry(ErrorCode::Erofs, "EROFS", 30, "read-only"),
    entry(ErrorCode::Ebusy, "EBUSY", 16, "busy"),
    entry(
        ErrorCode::Eagain,
        "EAGAIN",
        11,
        "transaction conflict: retry it",
    ),
    entry(ErrorCode::Eisconn, "EISCONN", 106, "already connected"),
    entry(ErrorCode::E2big, "E2BIG", 7, "too big"),
    entry(ErrorCode::Eperm, "EPERM", 1, "operation not permitted"),
    entry(ErrorCode::Equota, "EQUOTA", 122, "over the daemon's quota"),
];

const fn entry(code: ErrorCode, name: &'static str, errno: u32, meaning: &'static str) -> Entry {
    Entry {
        code,
        name,
        errno,
        meaning,
    }
}

impl ErrorCode {
    /// Every code a Xen header or daemon names (all but `Unknown`), in the
    /// table's order.
    pub fn known() -> impl Iterator<Item = ErrorCode> {
        TABLE.iter().map(|e| e.code.clone())
    }

    fn entry(&self) -> Option<&'static Entry> {
        TABLE.iter().find(|e| e.code == *self)
    }

    /// Maps an error string (without its NUL) to a code; unknown strings are
    /// kept in [`ErrorCode::Unknown`] (lossily decoded if not UTF-8).
    pub fn from_wire(s: &[u8]) -> ErrorCode {
        TABLE
            .iter()
            .find(|e| e.name.as_bytes() == s)
            .map(|e| e.code.clone())
            .unwrap_or_else(|| ErrorCode::Unknown(String::from_utf8_lossy(s).into_owned()))
    }

    /// The wire string of this code.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Unknown(s) => s,
            known => known.entry().map_or("", |e| e.name),
        }
    }

    /// The positive errno this code names (x86 Linux numbering, as Linux's
    /// xenbus writes it in an `error/` node); `None` for `Unknown`.
    pub fn errno(&self) -> Option<u32> {
        self.entry().map(|e| e.errno)
    }

    /// A few words on the code for people (`"no such node"`); `None` for
    /// `Unknown`.
    pub fn meaning(&self) -> Option<&'static str> {
        self.entry().map(|e| e.meaning)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

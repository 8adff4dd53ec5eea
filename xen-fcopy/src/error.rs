//! Why a copy failed, and the exit status each reason gives.

use std::fmt;

use fcopy::Reply;
use xenstore::XsError;

/// A failed copy.
#[derive(Debug)]
pub enum Error {
    /// Bad arguments.
    Usage(String),
    /// A local file could not be read.
    Io(String, std::io::Error),
    /// No such domain, or it offers no file copy service.
    NoService(String),
    /// Another sender holds the claim (its value).
    Busy(String),
    /// The guest answered with a refusal.
    Refused(Reply),
    /// The channel failed (the proxy, the vchan, a bad frame from the guest).
    Transport(String),
    /// A xenstore request failed.
    Xenstore(String, XsError),
}

impl Error {
    /// The process's exit status: 2 refused by the guest, 3 the service
    /// is claimed by another sender, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused(_) => 2,
            Self::Busy(_) => 3,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(e) => write!(f, "{e}"),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
            Self::NoService(e) => write!(f, "no file copy service: {e}"),
            Self::Busy(holder) => write!(f, "busy: the service is claimed by {holder:?}"),
            Self::Refused(r) => write!(
                f,
                "refused: {} ({}) answering {} (value {})",
                r.status.word(),
                r.status,
                r.answers.name(),
                r.value
            ),
            Self::Transport(e) => write!(f, "transport: {e}"),
            Self::Xenstore(what, e) => write!(f, "xenstore: {what}: {e}"),
        }
    }
}

impl std::error::Error for Error {}

//! The testbed's error type: every failure says what was being done and,
//! when the daemon is involved, what the daemon last said.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong in the testbed.
#[derive(Debug)]
pub enum Error {
    /// The xenstored binary could not be found, downloaded or extracted.
    Fetch {
        /// Why, including what to do about it.
        reason: String,
    },
    /// An operating-system call failed.
    Io {
        /// What the testbed was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The daemon did not come up (exited, or its socket never answered).
    DaemonStart {
        /// Why, with the tail of the daemon's stderr and syslog.
        reason: String,
    },
    /// The daemon exited while the testbed was using it.
    DaemonDied {
        /// Its exit status.
        status: ExitStatus,
        /// The tails of its stderr, syslog and trace files.
        report: String,
    },
    /// The daemon answered a request with an error (e.g. "EACCES").
    Xs {
        /// The request, e.g. `WRITE /local/domain/1/name`.
        request: String,
        /// The daemon's error string.
        error: String,
    },
    /// A peer broke the wire protocol (bad header, wrong reply).
    Protocol(String),
    /// Nothing happened within the allowed time.
    Timeout {
        /// What was awaited.
        what: String,
    },
    /// A xenstore-* CLI tool could not be run.
    Cli {
        /// The command line.
        command: String,
        /// Why.
        source: io::Error,
    },
    /// A xenstore-* CLI tool ran and failed.
    CliFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The caller asked for something the testbed does not allow.
    Usage(String),
}

impl Error {
    /// Wraps an I/O error with what the testbed was doing.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps an I/O error on a path.
    pub(crate) fn io_path(what: &str, path: &std::path::Path, source: io::Error) -> Self {
        Error::io(format!("{what} {}", path.display()), source)
    }

    /// The daemon's error string if this is a daemon error reply.
    pub fn xs_error(&self) -> Option<&str> {
        match self {
            Error::Xs { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Fetch { reason } => write!(f, "cannot obtain xenstored: {reason}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::DaemonStart { reason } => write!(f, "xenstored did not start: {reason}"),
            Error::DaemonDied { status, report } => {
                write!(f, "xenstored died ({status})\n{report}")
            }
            Error::Xs { request, error } => write!(f, "{request}: xenstored answered {error}"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::Timeout { what } => write!(f, "timed out waiting for {what}"),
            Error::Cli { command, source } => write!(f, "cannot run {command}: {source}"),
            Error::CliFailed {
                command,
                status,
                stderr,
            } => write!(f, "{command} failed ({status}): {}", stderr.trim()),
            Error::Usage(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Cli { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The testbed's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Reads the last `max` bytes of a log file for an error report; a missing
/// file reads as a note saying so.
pub(crate) fn tail(path: &PathBuf, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
            if start > 0 {
                format!("[...]{text}")
            } else {
                text
            }
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

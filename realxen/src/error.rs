//! The bed's errors: each says which phase failed and carries what the
//! caller needs to understand it (the command, the path, the console tail).

use std::path::{Path, PathBuf};

/// Anything that stops the bed.
#[derive(Debug)]
pub enum Error {
    /// A file-system or process operation failed.
    Io {
        what: String,
        path: Option<PathBuf>,
        source: std::io::Error,
    },
    /// A host tool (apt-get, dpkg, cpio, ...) ran and failed.
    Tool { what: String, detail: String },
    /// The packages lock file is malformed or names nothing usable.
    Lock { reason: String },
    /// A caller asked for something the bed cannot do (a bad path, ...).
    Usage { reason: String },
    /// Xen or dom0 did not come up: `stage` is the last one reached.
    Boot {
        stage: String,
        reason: String,
        console_tail: Vec<String>,
    },
    /// The dom0 agent broke the protocol or went away.
    Agent { reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io_path(what: impl Into<String>, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            path: Some(path.to_path_buf()),
            source,
        }
    }

    /// An I/O error with no path.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            path: None,
            source,
        }
    }

    pub fn agent(reason: impl Into<String>) -> Self {
        Error::Agent {
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io {
                what,
                path: Some(p),
                source,
            } => write!(f, "{what} {}: {source}", p.display()),
            Error::Io {
                what,
                path: None,
                source,
            } => write!(f, "{what}: {source}"),
            Error::Tool { what, detail } => write!(f, "{what}: {detail}"),
            Error::Lock { reason } => write!(f, "packages lock: {reason}"),
            Error::Usage { reason } => write!(f, "{reason}"),
            Error::Boot {
                stage,
                reason,
                console_tail,
            } => {
                write!(f, "boot stopped after \"{stage}\": {reason}")?;
                if !console_tail.is_empty() {
                    write!(f, "\nlast console lines:")?;
                    for line in console_tail {
                        write!(f, "\n  | {line}")?;
                    }
                }
                Ok(())
            }
            Error::Agent { reason } => write!(f, "dom0 agent: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

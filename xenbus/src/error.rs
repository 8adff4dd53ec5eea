//! Errors of the bus ([`BusError`]), of the platform's grant and
//! event-channel helpers ([`ResourceError`]) and of the guest services
//! ([`ServiceError`], [`PowerError`]). Each carries what was being done and
//! on which node; none is ever a panic.

use alloc::string::String;
use core::fmt;
use core::time::Duration;

use xenstore::XsError;

use crate::state::{StateSet, XenbusState};

/// Why the platform could not grant a page or allocate an event channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceError {
    /// This platform has no such thing (the QEMU test platform has no
    /// grant table and no event channels).
    Unsupported {
        /// What was asked for, e.g. "grant a ring page".
        what: &'static str,
        /// The platform that said no, e.g. "QEMU test platform".
        platform: &'static str,
    },
    /// Out of grant references, event channels or memory.
    Exhausted {
        /// What ran out.
        what: &'static str,
    },
    /// The other end still maps the granted page, so the grant cannot
    /// end yet (the page must not be reused while it can write to it).
    StillMapped {
        /// What was asked for.
        what: &'static str,
    },
    /// The hypervisor refused (its negative errno).
    Hypervisor {
        /// What was asked for.
        what: &'static str,
        /// The hypercall's return value.
        code: i32,
    },
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceError::Unsupported { what, platform } => {
                write!(f, "cannot {what}: unsupported on the {platform}")
            }
            ResourceError::Exhausted { what } => write!(f, "cannot {what}: none left"),
            ResourceError::StillMapped { what } => {
                write!(f, "cannot {what}: the other end still maps the page")
            }
            ResourceError::Hypervisor { what, code } => {
                write!(f, "cannot {what}: hypervisor error {code}")
            }
        }
    }
}

impl core::error::Error for ResourceError {}

/// Every error of the bus and of the [`crate::Device`] helpers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusError {
    /// A xenstore request failed while doing `doing`.
    Store {
        /// What the bus was doing, e.g. "reading backend-id".
        doing: &'static str,
        /// The client's error (it names the operation and path).
        source: XsError,
    },
    /// A node holds a value the protocol does not allow (garbage in
    /// `state`, a non-numeric `backend-id`, an empty `backend`, ...).
    BadValue {
        /// The node.
        path: String,
        /// Its value (lossily decoded, at most 64 bytes).
        value: String,
        /// What it should have been.
        expected: &'static str,
    },
    /// The other end did not reach a wanted state in time.
    Timeout {
        /// Our device.
        nodename: String,
        /// The states waited for.
        wanted: StateSet,
        /// The last state seen, if any was.
        last: Option<XenbusState>,
        /// How long we waited.
        waited: Duration,
    },
    /// The other end went Closing or Closed while we waited for a state
    /// that is neither.
    OtherendClosed {
        /// Our device.
        nodename: String,
        /// The state it went to.
        state: XenbusState,
    },
    /// The other end's `state` node, or its whole directory, disappeared.
    OtherendGone {
        /// Our device.
        nodename: String,
        /// The other end's path.
        otherend: String,
    },
    /// Our device node was removed; the device is detached.
    DeviceRemoved {
        /// Our device.
        nodename: String,
    },
    /// The other end's details are not known (not read yet, or unreadable).
    NoOtherend {
        /// Our device.
        nodename: String,
    },
    /// The platform could not grant a page or allocate an event channel.
    Resource {
        /// Our device.
        nodename: String,
        /// Why.
        source: ResourceError,
    },
    /// A driver refused the device or failed in a callback.
    Driver {
        /// Our device.
        nodename: String,
        /// The driver's reason.
        reason: String,
    },
    /// A platform step (e.g. suspending the VM) failed.
    Platform {
        /// What was being done.
        doing: &'static str,
        /// Why, as the platform said.
        reason: String,
    },
    /// The bus is stopped, or was asked something it cannot do now.
    InvalidState(&'static str),
    /// The platform could not start a bus thread.
    Spawn(&'static str),
}

impl BusError {
    /// A [`BusError::Store`] for `source` while doing `doing`.
    pub fn store(doing: &'static str, source: XsError) -> BusError {
        BusError::Store { doing, source }
    }

    /// The positive errno Linux would report for this error in an
    /// `error/<nodename>/error` node (`"<errno> <message>"`).
    pub fn errno(&self) -> u32 {
        match self {
            BusError::Store { source, .. } => xs_errno(source),
            BusError::BadValue { .. } => 22,        // EINVAL
            BusError::Timeout { .. } => 110,        // ETIMEDOUT
            BusError::OtherendClosed { .. } => 107, // ENOTCONN
            BusError::OtherendGone { .. } => 2,     // ENOENT
            BusError::DeviceRemoved { .. } => 19,   // ENODEV
            BusError::NoOtherend { .. } => 2,       // ENOENT
            BusError::Resource { source, .. } => match source {
                ResourceError::Unsupported { .. } => 95, // EOPNOTSUPP
                ResourceError::Exhausted { .. } => 28,   // ENOSPC
                ResourceError::StillMapped { .. } => 16, // EBUSY
                ResourceError::Hypervisor { code, .. } => code.unsigned_abs(),
            },
            BusError::Driver { .. } => 5,    // EIO
            BusError::Platform { .. } => 5,  // EIO
            BusError::InvalidState(_) => 22, // EINVAL
            BusError::Spawn(_) => 11,        // EAGAIN
        }
    }
}

/// The errno for a xenstore error (the daemon's codes are errno names).
fn xs_errno(e: &XsError) -> u32 {
    match e.code() {
        // A string no header lists (`Unknown`) has no number: say EIO.
        Some(code) => code.errno().unwrap_or(5),
        None => match e {
            XsError::Timeout(_) => 110,
            XsError::InvalidPath { .. } | XsError::Parse { .. } => 22,
            XsError::PayloadTooLarge { .. } => 7,
            XsError::Protocol { .. } => 71, // EPROTO
            XsError::Disconnected(_) => 107,
            _ => 5,
        },
    }
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Store { doing, source } => write!(f, "{doing}: {source}"),
            BusError::BadValue {
                path,
                value,
                expected,
            } => write!(f, "{path} holds {value:?}, expected {expected}"),
            BusError::Timeout {
                nodename,
                wanted,
                last,
                waited,
            } => {
                write!(f, "{nodename}: other end not {wanted} after {waited:?}")?;
                match last {
                    Some(s) => write!(f, " (it is {s})"),
                    None => write!(f, " (its state was never read)"),
                }
            }
            BusError::OtherendClosed { nodename, state } => {
                write!(f, "{nodename}: other end went {state}")
            }
            BusError::OtherendGone { nodename, otherend } => {
                write!(f, "{nodename}: other end {otherend} disappeared")
            }
            BusError::DeviceRemoved { nodename } => write!(f, "{nodename}: device removed"),
            BusError::NoOtherend { nodename } => {
                write!(f, "{nodename}: other end not known")
            }
            BusError::Resource { nodename, source } => write!(f, "{nodename}: {source}"),
            BusError::Driver { nodename, reason } => write!(f, "{nodename}: driver: {reason}"),
            BusError::Platform { doing, reason } => write!(f, "{doing}: {reason}"),
            BusError::InvalidState(why) => write!(f, "not allowed now: {why}"),
            BusError::Spawn(what) => write!(f, "could not start the {what} thread"),
        }
    }
}

impl core::error::Error for BusError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            BusError::Store { source, .. } => Some(source),
            BusError::Resource { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What an OS action ([`crate::services::PowerControl`]) reports when it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PowerError {
    /// The OS cannot do this at all here.
    Unsupported,
    /// It tried and failed.
    Failed(String),
}

impl fmt::Display for PowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerError::Unsupported => f.write_str("not supported by this OS"),
            PowerError::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

impl core::error::Error for PowerError {}

/// Every error of the guest services. The service records the last one
/// (see [`crate::services::ServiceStatus`]) and logs each; none stops it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceError {
    /// A xenstore request failed.
    Store {
        /// The service.
        service: &'static str,
        /// What it was doing.
        doing: &'static str,
        /// The client's error.
        source: XsError,
    },
    /// The host wrote a command the service does not know (left in the
    /// node unacknowledged, as Linux does).
    UnknownCommand {
        /// The service.
        service: &'static str,
        /// The node.
        path: String,
        /// What was written (lossily decoded, at most 64 bytes).
        value: String,
    },
    /// The handler did not finish within the service's request timeout.
    /// The service still waits for it before taking another request, and
    /// drops its late result.
    HandlerTimeout {
        /// The service.
        service: &'static str,
        /// The request, e.g. "poweroff".
        request: String,
        /// The timeout.
        after: Duration,
    },
    /// The service was stopped while a handler ran, and the handler was
    /// still running a timeout later: it was abandoned (its thread ends
    /// when it returns and takes no other request).
    HandlerAbandoned {
        /// The service.
        service: &'static str,
        /// The request, e.g. "suspend" ("" if none was recorded).
        request: String,
        /// How long the stop waited.
        after: Duration,
    },
    /// An OS action failed.
    Power {
        /// The action, e.g. "reboot".
        action: &'static str,
        /// Why.
        source: PowerError,
    },
    /// The suspend path through the bus failed.
    Suspend(BusError),
    /// A subtree was larger than the service accepts.
    TooLarge {
        /// The service.
        service: &'static str,
        /// The subtree.
        path: String,
        /// The limit (nodes).
        limit: usize,
    },
    /// The platform could not start a service thread.
    Spawn(&'static str),
}

impl ServiceError {
    /// A [`ServiceError::Store`].
    pub fn store(service: &'static str, doing: &'static str, source: XsError) -> ServiceError {
        ServiceError::Store {
            service,
            doing,
            source,
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Store {
                service,
                doing,
                source,
            } => write!(f, "{service}: {doing}: {source}"),
            ServiceError::UnknownCommand {
                service,
                path,
                value,
            } => write!(f, "{service}: unknown command {value:?} in {path}"),
            ServiceError::HandlerTimeout {
                service,
                request,
                after,
            } => write!(
                f,
                "{service}: handler for {request:?} still running after {after:?}"
            ),
            ServiceError::HandlerAbandoned {
                service,
                request,
                after,
            } => write!(
                f,
                "{service}: stopped; handler for {request:?} still running {after:?} later, abandoned"
            ),
            ServiceError::Power { action, source } => write!(f, "{action}: {source}"),
            ServiceError::Suspend(e) => write!(f, "suspend: {e}"),
            ServiceError::TooLarge {
                service,
                path,
                limit,
            } => write!(f, "{service}: {path} has more than {limit} nodes"),
            ServiceError::Spawn(what) => write!(f, "could not start the {what} thread"),
        }
    }
}

impl core::error::Error for ServiceError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ServiceError::Store { source, .. } => Some(source),
            ServiceError::Power { source, .. } => Some(source),
            ServiceError::Suspend(source) => Some(source),
            _ => None,
        }
    }
}

/// At most 64 bytes of `bytes`, lossily decoded, for error messages.
pub(crate) fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    String::from(&text[..end])
}

//! The other end of a device: where it is (`backend`, `backend-id` under
//! our node, as Linux's `xenbus_read_otherend_details` reads them), and
//! what state it is in (its `state` node, read when its watch fires).

use alloc::string::String;
use core::fmt;

use xenstore::{Client, DomId, Platform, Store, XsError, path};

use crate::error::{BusError, shown};
use crate::state::XenbusState;

/// Where the other end of a device lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Otherend {
    /// Its directory, e.g. `/local/domain/0/backend/vif/1/0`.
    pub path: String,
    /// Its domain.
    pub id: DomId,
}

impl Otherend {
    /// Its `state` node.
    pub fn state_path(&self) -> String {
        path::join(&self.path, "state")
    }
}

/// What the other end's `state` node said the last time it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OtherendState {
    /// A defined state. A directory without a `state` node reads as
    /// [`XenbusState::Unknown`], as Linux's `xenbus_read_driver_state` has it.
    Known(XenbusState),
    /// The other end's directory is gone (unplugged, or the domain died).
    Gone,
    /// The node holds something that is not a state (the peer's fault).
    Invalid {
        /// The value (lossily decoded, at most 64 bytes).
        value: String,
    },
}

impl OtherendState {
    /// The state, if it is a defined one.
    pub fn state(&self) -> Option<XenbusState> {
        match self {
            OtherendState::Known(s) => Some(*s),
            _ => None,
        }
    }
}

impl fmt::Display for OtherendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtherendState::Known(s) => write!(f, "{s}"),
            OtherendState::Gone => f.write_str("gone"),
            OtherendState::Invalid { value } => write!(f, "invalid ({value:?})"),
        }
    }
}

/// Reads `<nodename>/backend-id` and `<nodename>/backend` (one pipelined
/// round trip) and checks the backend directory exists.
///
/// Errors: [`BusError::Store`] (e.g. ENOENT when a node is missing),
/// [`BusError::BadValue`] for a `backend-id` that is not a domain id or an
/// empty or relative `backend`, [`BusError::NoOtherend`] when the backend
/// directory does not exist or is not readable by us.
pub(crate) fn read_details<P: Platform>(
    xs: &Client<P>,
    nodename: &str,
) -> Result<Otherend, BusError> {
    let id_path = path::join(nodename, "backend-id");
    let dir_path = path::join(nodename, "backend");
    let values = xs
        .gather(&[&id_path, &dir_path])
        .map_err(|e| BusError::store("reading the other end's details", e))?;
    let [id_raw, dir_raw] = [&values[0], &values[1]];
    let id = core::str::from_utf8(id_raw)
        .ok()
        .map(str::trim_ascii)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<DomId>().ok())
        .ok_or_else(|| BusError::BadValue {
            path: id_path.clone(),
            value: shown(id_raw),
            expected: "a domain id (0-65535)",
        })?;
    let dir = core::str::from_utf8(dir_raw)
        .ok()
        .map(str::trim_ascii)
        .filter(|d| d.starts_with('/') && path::validate(d, path::PathKind::Node).is_ok())
        .ok_or_else(|| BusError::BadValue {
            path: dir_path.clone(),
            value: shown(dir_raw),
            expected: "an absolute xenstore path",
        })?;
    match xs.exists(dir) {
        Ok(true) => Ok(Otherend {
            path: String::from(dir),
            id,
        }),
        Ok(false) | Err(XsError::Eacces(_)) => Err(BusError::NoOtherend {
            nodename: String::from(nodename),
        }),
        Err(e) => Err(BusError::store("checking the other end exists", e)),
    }
}

/// Reads the other end's state now. A missing `state` node in an existing
/// directory is `Known(Unknown)`; a missing directory is `Gone`, and so is
/// EACCES: the daemon answers that for a removed node whose remaining
/// parent we may not read (a backend directory under dom0), and a backend
/// we may no longer read is gone for us either way.
///
/// Errors: other xenstore failures.
pub(crate) fn read_state<P: Platform>(
    xs: &Client<P>,
    otherend: &Otherend,
) -> Result<OtherendState, XsError> {
    let value = match xs.read_optional(&otherend.state_path()) {
        Ok(value) => value,
        Err(XsError::Eacces(_)) => return Ok(OtherendState::Gone),
        Err(e) => return Err(e),
    };
    match value {
        Some(value) => Ok(match XenbusState::parse(&value) {
            Ok(s) => OtherendState::Known(s),
            Err(_) => OtherendState::Invalid {
                value: shown(&value),
            },
        }),
        None => match xs.exists(&otherend.path) {
            Ok(true) => Ok(OtherendState::Known(XenbusState::Unknown)),
            Ok(false) | Err(XsError::Eacces(_)) => Ok(OtherendState::Gone),
            Err(e) => Err(e),
        },
    }
}

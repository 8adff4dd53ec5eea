//! Requests: every request type of `io/xs_wire.h` with its payload layout
//! (`docs/misc/xenstore.txt`), validated and encoded without allocating
//! beyond the caller's output buffer.

use core::fmt::Write as _;

use crate::error::{Context, XsError};
use crate::path::{self, PathKind};
use crate::perms::{DomId, Grant};
use crate::wire::{HEADER_LEN, Header, MsgType, PAYLOAD_MAX};

/// One request, borrowing its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `CONTROL <command>|<args>|*`: daemon-specific (privileged).
    Control {
        /// The command and its arguments, each sent NUL-terminated.
        args: &'a [&'a str],
    },
    /// `DIRECTORY <path>|`: the names of the children.
    Directory(&'a str),
    /// `DIRECTORY_PART <path>|<offset>|`: children from a byte offset.
    DirectoryPart {
        /// The node.
        path: &'a str,
        /// Byte offset into the children list.
        offset: u32,
    },
    /// `READ <path>|`: the value.
    Read(&'a str),
    /// `GET_PERMS <path>|`.
    GetPerms(&'a str),
    /// `WATCH <path>|<token>|`.
    Watch {
        /// The path or `@special` to watch.
        path: &'a str,
        /// Our token, echoed in events.
        token: &'a str,
    },
    /// `UNWATCH <path>|<token>|`.
    Unwatch {
        /// The watched path.
        path: &'a str,
        /// The token it was registered with.
        token: &'a str,
    },
    /// `TRANSACTION_START |`.
    TransactionStart,
    /// `TRANSACTION_END T|` (commit) or `F|` (abort).
    TransactionEnd {
        /// Commit (`true`) or abort.
        commit: bool,
    },
    /// `INTRODUCE <domid>|<mfn>|<port>|` (toolstack only).
    Introduce {
        /// The domain.
        domid: DomId,
        /// Its store page frame, sent in signed decimal as the protocol says.
        mfn: i64,
        /// Its unbound event channel port.
        port: u32,
    },
    /// `RELEASE <domid>|` (toolstack only).
    Release(DomId),
    /// `GET_DOMAIN_PATH <domid>|`.
    GetDomainPath(DomId),
    /// `WRITE <path>|<value>` (the value is raw bytes, no NUL added).
    Write {
        /// The node.
        path: &'a str,
        /// The value.
        value: &'a [u8],
    },
    /// `MKDIR <path>|`.
    Mkdir(&'a str),
    /// `RM <path>|`.
    Rm(&'a str),
    /// `SET_PERMS <path>|<perm>|+`.
    SetPerms {
        /// The node.
        path: &'a str,
        /// Owner entry first, then grants.
        perms: &'a [Grant],
    },
    /// `IS_DOMAIN_INTRODUCED <domid>|` (toolstack only).
    IsDomainIntroduced(DomId),
    /// `RESUME <domid>|` (toolstack only).
    Resume(DomId),
    /// `SET_TARGET <domid>|<target>|` (toolstack only).
    SetTarget {
        /// The domain gaining rights.
        domid: DomId,
        /// The domain it may act for.
        target: DomId,
    },
    /// `RESET_WATCHES |`.
    ResetWatches,
}

impl<'a> Request<'a> {
    /// The message type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Request::Control { .. } => MsgType::Control,
            Request::Directory(_) => MsgType::Directory,
            Request::DirectoryPart { .. } => MsgType::DirectoryPart,
            Request::Read(_) => MsgType::Read,
            Request::GetPerms(_) => MsgType::GetPerms,
            Request::Watch { .. } => MsgType::Watch,
            Request::Unwatch { .. } => MsgType::Unwatch,
            Request::TransactionStart => MsgType::TransactionStart,
            Request::TransactionEnd { .. } => MsgType::TransactionEnd,
            Request::Introduce { .. } => MsgType::Introduce,
            Request::Release(_) => MsgType::Release,
            Request::GetDomainPath(_) => MsgType::GetDomainPath,
            Request::Write { .. } => MsgType::Write,
            Request::Mkdir(_) => MsgType::Mkdir,
            Request::Rm(_) => MsgType::Rm,
            Request::SetPerms { .. } => MsgType::SetPerms,
            Request::IsDomainIntroduced(_) => MsgType::IsDomainIntroduced,
            Request::Resume(_) => MsgType::Resume,
            Request::SetTarget { .. } => MsgType::SetTarget,
            Request::ResetWatches => MsgType::ResetWatches,
        }
    }

    /// The path this request names, if any (for error context).
    pub fn path(&self) -> Option<&'a str> {
        match *self {
            Request::Directory(p)
            | Request::Read(p)
            | Request::GetPerms(p)
            | Request::Mkdir(p)
            | Request::Rm(p)
            | Request::DirectoryPart { path: p, .. }
            | Request::Watch { path: p, .. }
            | Request::Unwatch { path: p, .. }
            | Request::Write { path: p, .. }
            | Request::SetPerms { path: p, .. } => Some(p),
            _ => None,
        }
    }

    /// The error context (operation and path) of this request.
    pub fn context(&self) -> Context {
        Context::new(self.msg_type(), self.path())
    }

    /// Checks the request's paths and arguments before anything is sent.
    ///
    /// Errors: [`XsError::InvalidPath`] for a bad path or a token/argument
    /// containing NUL (which would break the framing).
    pub fn validate(&self) -> Result<(), XsError> {
        let kind = match self {
            Request::Watch { .. } | Request::Unwatch { .. } => PathKind::Watch,
            _ => PathKind::Node,
        };
        if let Some(p) = self.path() {
            path::validate(p, kind)?;
        }
        let nul_free = |s: &str| {
            if s.as_bytes().contains(&0) {
                Err(XsError::InvalidPath {
                    path: crate::error::truncated(s),
                    reason: crate::error::PathError::BadChar(0),
                })
            } else {
                Ok(())
            }
        };
        match self {
            Request::Watch { token, .. } | Request::Unwatch { token, .. } => nul_free(token),
            Request::Control { args } => args.iter().try_for_each(|a| nul_free(a)),
            _ => Ok(()),
        }
    }

    /// Appends the payload (without header) to `out`.
    pub fn encode_payload(&self, out: &mut alloc::vec::Vec<u8>) {
        let mut w = PayloadWriter(out);
        match *self {
            Request::Control { args } => args.iter().for_each(|a| w.string(a)),
            Request::Directory(p)
            | Request::Read(p)
            | Request::GetPerms(p)
            | Request::Mkdir(p)
            | Request::Rm(p) => w.string(p),
            Request::DirectoryPart { path, offset } => {
                w.string(path);
                w.number(offset);
            }
            Request::Watch { path, token } | Request::Unwatch { path, token } => {
                w.string(path);
                w.string(token);
            }
            Request::TransactionStart | Request::ResetWatches => w.string(""),
            Request::TransactionEnd { commit } => w.string(if commit { "T" } else { "F" }),
            Request::Introduce { domid, mfn, port } => {
                w.number(domid.0);
                w.number(mfn);
                w.number(port);
            }
            Request::Release(d)
            | Request::GetDomainPath(d)
            | Request::IsDomainIntroduced(d)
            | Request::Resume(d) => w.number(d.0),
            Request::Write { path, value } => {
                w.string(path);
                w.0.extend_from_slice(value);
            }
            Request::SetPerms { path, perms } => {
                w.string(path);
                for g in perms {
                    w.number(format_args!("{g}"));
                }
            }
            Request::SetTarget { domid, target } => {
                w.number(domid.0);
                w.number(target.0);
            }
        }
    }

    /// Validates the request and appends the whole message (header and
    /// payload) to `out`. On error `out` is left as it was.
    ///
    /// Errors: [`XsError::InvalidPath`]; [`XsError::PayloadTooLarge`] if the
    /// payload would exceed [`PAYLOAD_MAX`] (the daemon would drop us).
    pub fn encode(
        &self,
        req_id: u32,
        tx_id: u32,
        out: &mut alloc::vec::Vec<u8>,
    ) -> Result<(), XsError> {
        self.validate()?;
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        self.encode_payload(out);
        let len = out.len() - start - HEADER_LEN;
        if len > PAYLOAD_MAX {
            out.truncate(start);
            return Err(XsError::PayloadTooLarge {
                ctx: self.context(),
                len,
            });
        }
        let header = Header {
            ty: self.msg_type() as u32,
            req_id,
            tx_id,
            len: len as u32,
        };
        out[start..start + HEADER_LEN].copy_from_slice(&header.encode());
        Ok(())
    }
}

/// Appends NUL-terminated strings and decimal numbers to a payload.
struct PayloadWriter<'v>(&'v mut alloc::vec::Vec<u8>);

impl PayloadWriter<'_> {
    fn string(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }

    fn number(&mut self, n: impl core::fmt::Display) {
        // Writing to a Vec cannot fail.
        let _ = write!(self, "{n}");
        self.0.push(0);
    }
}

impl core::fmt::Write for PayloadWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

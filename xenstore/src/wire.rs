//! The XenStore wire format (Xen's `io/xs_wire.h`): message types, the
//! 16-byte header, and the protocol's size limits.
//!
//! Every message, in both directions and on both transports (the unix
//! socket and the shared ring), is a [`Header`] followed by `len` bytes of
//! payload. The header's fields are native-endian `u32`s; every Xen
//! architecture is little-endian, so we read and write little-endian.

/// Largest payload either side may send (`XENSTORE_PAYLOAD_MAX`). A daemon
/// kills a client that exceeds it, so we check before sending.
pub const PAYLOAD_MAX: usize = 4096;
/// Longest absolute path the daemon accepts (`XENSTORE_ABS_PATH_MAX`).
pub const ABS_PATH_MAX: usize = 3072;
/// Longest relative path a client should send (`XENSTORE_REL_PATH_MAX`).
pub const REL_PATH_MAX: usize = 2048;
/// Size of the encoded [`Header`].
pub const HEADER_LEN: usize = 16;

/// A message type (`enum xsd_sockmsg_type`). Values are fixed by the ABI;
/// 20 (`XS_RESTRICT`) was removed from Xen and is not a valid type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum MsgType {
    /// `XS_CONTROL` (formerly `XS_DEBUG`): daemon-specific commands.
    Control = 0,
    /// List the children of a node.
    Directory = 1,
    /// Read a node's value.
    Read = 2,
    /// Read a node's permissions.
    GetPerms = 3,
    /// Register a watch.
    Watch = 4,
    /// Remove a watch.
    Unwatch = 5,
    /// Start a transaction.
    TransactionStart = 6,
    /// Commit or abort a transaction.
    TransactionEnd = 7,
    /// Toolstack: connect the daemon to a domain's ring.
    Introduce = 8,
    /// Toolstack: disconnect a domain.
    Release = 9,
    /// The home path of a domain (`/local/domain/<id>`).
    GetDomainPath = 10,
    /// Write a node's value.
    Write = 11,
    /// Create a node (and its parents).
    Mkdir = 12,
    /// Remove a node and its children.
    Rm = 13,
    /// Replace a node's permissions.
    SetPerms = 14,
    /// Unsolicited: a watched path changed.
    WatchEvent = 15,
    /// A reply carrying an error string instead of the request's type.
    Error = 16,
    /// Toolstack: is the daemon connected to a domain?
    IsDomainIntroduced = 17,
    /// Toolstack: re-arm `@releaseDomain` for a domain.
    Resume = 18,
    /// Toolstack: let one domain act for another.
    SetTarget = 19,
    /// Drop every watch and transaction of this connection.
    ResetWatches = 21,
    /// One page of a directory listing too large for one reply.
    DirectoryPart = 22,
}

impl MsgType {
    /// Every valid message type, in numeric order.
    pub const ALL: [MsgType; 22] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
    ];

    /// The type with numeric value `raw`, or `None` for a value the ABI
    /// does not define (a peer may send anything).
    pub fn from_raw(raw: u32) -> Option<MsgType> {
        MsgType::ALL.iter().copied().find(|t| *t as u32 == raw)
    }

    /// The name the Xen sources and the daemon's trace log use.
    pub fn name(self) -> &'static str {
        match self {
            MsgType::Control => "CONTROL",
            MsgType::Directory => "DIRECTORY",
            MsgType::Read => "READ",
            MsgType::GetPerms => "GET_PERMS",
            MsgType::Watch => "WATCH",
            MsgType::Unwatch => "UNWATCH",
            MsgType::TransactionStart => "TRANSACTION_START",
            MsgType::TransactionEnd => "TRANSACTION_END",
            MsgType::Introduce => "INTRODUCE",
            MsgType::Release => "RELEASE",
            MsgType::GetDomainPath => "GET_DOMAIN_PATH",
            MsgType::Write => "WRITE",
            MsgType::Mkdir => "MKDIR",
            MsgType::Rm => "RM",
            MsgType::SetPerms => "SET_PERMS",
            MsgType::WatchEvent => "WATCH_EVENT",
            MsgType::Error => "ERROR",
            MsgType::IsDomainIntroduced => "IS_DOMAIN_INTRODUCED",
            MsgType::Resume => "RESUME",
            MsgType::SetTarget => "SET_TARGET",
            MsgType::ResetWatches => "RESET_WATCHES",
            MsgType::DirectoryPart => "DIRECTORY_PART",
        }
    }
}

impl core::fmt::Display for MsgType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The message header (`struct xsd_sockmsg`). `ty` stays raw because a
/// peer may send a value that is not a [`MsgType`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type (see [`MsgType::from_raw`]).
    pub ty: u32,
    /// Request id, echoed by the daemon in its reply; 0 in watch events.
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Payload length in bytes.
    pub len: u32,
}

impl Header {
    /// The 16 wire bytes of this header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (i, v) in [self.ty, self.req_id, self.tx_id, self.len]
            .iter()
            .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Parses a header from its 16 wire bytes. Never fails: judging the
    /// fields (type, length) is the caller's business.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| {
            u32::from_le_bytes([
                bytes[i * 4],
                bytes[i * 4 + 1],
                bytes[i * 4 + 2],
                bytes[i * 4 + 3],
            ])
        };
        Header {
            ty: word(0),
            req_id: word(1),
            tx_id: word(2),
            len: word(3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_numbers_match_xs_wire_h() {
        let expected: [(MsgType, u32); 22] = [
            (MsgType::Control, 0),
            (MsgType::Directory, 1),
            (MsgType::Read, 2),
            (MsgType::GetPerms, 3),
            (MsgType::Watch, 4),
            (MsgType::Unwatch, 5),
            (MsgType::TransactionStart, 6),
            (MsgType::TransactionEnd, 7),
            (MsgType::Introduce, 8),
            (MsgType::Release, 9),
            (MsgType::GetDomainPath, 10),
            (MsgType::Write, 11),
            (MsgType::Mkdir, 12),
            (MsgType::Rm, 13),
            (MsgType::SetPerms, 14),
            (MsgType::WatchEvent, 15),
            (MsgType::Error, 16),
            (MsgType::IsDomainIntroduced, 17),
            (MsgType::Resume, 18),
            (MsgType::SetTarget, 19),
            (MsgType::ResetWatches, 21),
            (MsgType::DirectoryPart, 22),
        ];
        for (ty, raw) in expected {
            assert_eq!(ty as u32, raw, "{ty}");
            assert_eq!(MsgType::from_raw(raw), Some(ty));
        }
        // XS_RESTRICT (20) was removed; XS_TYPE_COUNT (23) and XS_INVALID are not types.
        for raw in [20, 23, 0xffff, u32::MAX] {
            assert_eq!(MsgType::from_raw(raw), None, "{raw}");
        }
    }

    #[test]
    fn header_round_trips_little_endian() {
        let h = Header {
            ty: 2,
            req_id: 0x0102_0304,
            tx_id: 7,
            len: 4096,
        };
        let bytes = h.encode();
        assert_eq!(&bytes[..8], &[2, 0, 0, 0, 4, 3, 2, 1]);
        assert_eq!(&bytes[12..], &[0, 16, 0, 0]);
        assert_eq!(Header::decode(&bytes), h);
    }
}

//! Decoding reply payloads by the request type they answer.
//!
//! Each function judges one payload shape of `docs/misc/xenstore.txt` and
//! returns a [`ProtocolViolation`] when the peer sent something else; the
//! caller attaches the request's context. None of them panics on any input.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::ProtocolViolation;
use crate::perms::Permissions;
use crate::wire::MsgType;

fn malformed(ty: MsgType, what: &'static str) -> ProtocolViolation {
    ProtocolViolation::MalformedBody { ty, what }
}

/// The NUL-terminated strings of `body`, without their NULs. An empty body
/// has no strings.
///
/// Errors: [`ProtocolViolation::MissingNul`] if the last string is not
/// terminated.
pub fn split_strings(body: &[u8]) -> Result<impl Iterator<Item = &[u8]>, ProtocolViolation> {
    match body.last() {
        None | Some(0) => {}
        Some(_) => return Err(ProtocolViolation::MissingNul),
    }
    // An empty body has no strings (splitting it would yield one empty one).
    let count = if body.is_empty() { 0 } else { usize::MAX };
    let body = body.strip_suffix(&[0]).unwrap_or(body);
    Ok(body.split(|&b| b == 0).take(count))
}

/// A single NUL-terminated string (the `<path>|`, `<transid>|` replies).
pub fn single_string(ty: MsgType, body: &[u8]) -> Result<String, ProtocolViolation> {
    let text = body
        .strip_suffix(&[0])
        .ok_or(ProtocolViolation::MissingNul)?;
    if text.contains(&0) {
        return Err(malformed(ty, "more than one string"));
    }
    String::from_utf8(text.to_vec()).map_err(|_| malformed(ty, "not UTF-8"))
}

/// The `OK|` acknowledgement of WRITE, MKDIR, RM, SET_PERMS, WATCH, ...
pub fn ok(ty: MsgType, body: &[u8]) -> Result<(), ProtocolViolation> {
    match body {
        b"OK\0" => Ok(()),
        [.., 0] => Err(malformed(ty, "acknowledgement is not OK")),
        _ => Err(ProtocolViolation::MissingNul),
    }
}

/// A transaction id (`TRANSACTION_START`): unsigned decimal, NUL-terminated.
pub fn transaction_id(body: &[u8]) -> Result<u32, ProtocolViolation> {
    let text = single_string(MsgType::TransactionStart, body)?;
    match text.parse::<u32>() {
        Ok(0) | Err(_) => Err(malformed(
            MsgType::TransactionStart,
            "transaction id is not a non-zero u32",
        )),
        Ok(id) => Ok(id),
    }
}

/// The children names of a `DIRECTORY` reply (`<name>|*`). An empty name
/// is refused: joined to its parent it would name the parent again (and a
/// tree walk would never end).
pub fn directory(body: &[u8]) -> Result<Vec<String>, ProtocolViolation> {
    split_strings(body)?
        .map(|name| {
            if name.is_empty() {
                return Err(malformed(MsgType::Directory, "empty name"));
            }
            String::from_utf8(name.to_vec())
                .map_err(|_| malformed(MsgType::Directory, "name not UTF-8"))
        })
        .collect()
}

/// One page of a `DIRECTORY_PART` reply: `<gencnt>|<name>|*`, where the
/// last page ends with an extra empty string.
#[derive(Debug, PartialEq, Eq)]
pub struct DirectoryPage {
    /// The node's generation count; pages with different counts come from
    /// different versions of the node.
    pub generation: String,
    /// The names in this page.
    pub names: Vec<String>,
    /// Bytes of the children list this page covers (the next offset is the
    /// current one plus this).
    pub consumed: u32,
    /// Whether this is the last page.
    pub last: bool,
}

/// Decodes one `DIRECTORY_PART` page.
pub fn directory_page(body: &[u8]) -> Result<DirectoryPage, ProtocolViolation> {
    let ty = MsgType::DirectoryPart;
    let mut strings = split_strings(body)?;
    let generation = strings.next().ok_or(malformed(ty, "no generation count"))?;
    let generation = String::from_utf8(generation.to_vec())
        .map_err(|_| malformed(ty, "generation not UTF-8"))?;
    let mut names = Vec::new();
    let mut consumed = 0u32;
    let mut last = false;
    for name in strings {
        if last {
            return Err(malformed(ty, "names after the end marker"));
        }
        if name.is_empty() {
            last = true;
            continue;
        }
        consumed = consumed.saturating_add(name.len() as u32 + 1);
        names.push(String::from_utf8(name.to_vec()).map_err(|_| malformed(ty, "name not UTF-8"))?);
    }
    if !last && names.is_empty() {
        // A page that neither ends the list nor advances would loop forever.
        return Err(malformed(ty, "empty page without end marker"));
    }
    Ok(DirectoryPage {
        generation,
        names,
        consumed,
        last,
    })
}

/// The permissions of a `GET_PERMS` reply (`<perm>|+`).
pub fn permissions(body: &[u8]) -> Result<Permissions, ProtocolViolation> {
    Permissions::from_entries(split_strings(body)?)
        .ok_or(malformed(MsgType::GetPerms, "bad permission entry"))
}

/// The `T|` / `F|` of `IS_DOMAIN_INTRODUCED`.
pub fn boolean(ty: MsgType, body: &[u8]) -> Result<bool, ProtocolViolation> {
    match body {
        b"T\0" => Ok(true),
        b"F\0" => Ok(false),
        [.., 0] => Err(malformed(ty, "expected T or F")),
        _ => Err(ProtocolViolation::MissingNul),
    }
}

/// Checks that `body` has the shape a successful reply of type `ty` must
/// have, without keeping the decoded value (the core does this for every
/// reply so a malformed one fails its request, counted, in one place).
pub fn check(ty: MsgType, body: &[u8]) -> Result<(), ProtocolViolation> {
    match ty {
        // Values are raw bytes; CONTROL output is daemon-specific.
        MsgType::Read | MsgType::Control => Ok(()),
        MsgType::Directory => directory(body).map(drop),
        MsgType::DirectoryPart => directory_page(body).map(drop),
        MsgType::GetPerms => permissions(body).map(drop),
        MsgType::TransactionStart => transaction_id(body).map(drop),
        MsgType::GetDomainPath => single_string(ty, body).map(drop),
        MsgType::IsDomainIntroduced => boolean(ty, body).map(drop),
        MsgType::Watch
        | MsgType::Unwatch
        | MsgType::TransactionEnd
        | MsgType::Introduce
        | MsgType::Release
        | MsgType::Write
        | MsgType::Mkdir
        | MsgType::Rm
        | MsgType::SetPerms
        | MsgType::Resume
        | MsgType::SetTarget
        | MsgType::ResetWatches => ok(ty, body),
        // Never the type of a request, so never the type of its reply.
        MsgType::WatchEvent | MsgType::Error => Err(malformed(ty, "not a reply type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::{Access, DomId};

    #[test]
    fn ok_needs_exactly_ok_nul() {
        assert_eq!(ok(MsgType::Write, b"OK\0"), Ok(()));
        assert_eq!(
            ok(MsgType::Write, b"OK"),
            Err(ProtocolViolation::MissingNul)
        );
        assert!(matches!(
            ok(MsgType::Write, b"NO\0"),
            Err(ProtocolViolation::MalformedBody { .. })
        ));
        assert_eq!(ok(MsgType::Write, b""), Err(ProtocolViolation::MissingNul));
    }

    #[test]
    fn directory_splits_names_and_accepts_empty() {
        assert_eq!(directory(b"a\0bc\0").unwrap(), ["a", "bc"]);
        assert!(directory(b"").unwrap().is_empty());
        assert_eq!(directory(b"a\0bc"), Err(ProtocolViolation::MissingNul));
        for bad in [&b"\0"[..], b"a\0\0b\0", b"\xff\0"] {
            assert!(
                matches!(directory(bad), Err(ProtocolViolation::MalformedBody { .. })),
                "{bad:?}"
            );
            assert_eq!(check(MsgType::Directory, bad), directory(bad).map(drop));
        }
    }

    #[test]
    fn single_string_requires_its_nul() {
        assert_eq!(
            single_string(MsgType::GetDomainPath, b"/local/domain/1\0").unwrap(),
            "/local/domain/1"
        );
        assert_eq!(
            single_string(MsgType::GetDomainPath, b"/local"),
            Err(ProtocolViolation::MissingNul)
        );
        assert!(single_string(MsgType::GetDomainPath, b"a\0b\0").is_err());
    }

    #[test]
    fn transaction_ids_are_nonzero_decimal() {
        assert_eq!(transaction_id(b"17\0"), Ok(17));
        assert!(transaction_id(b"0\0").is_err());
        assert!(transaction_id(b"x\0").is_err());
        assert!(transaction_id(b"4294967296\0").is_err());
        assert_eq!(transaction_id(b"17"), Err(ProtocolViolation::MissingNul));
    }

    #[test]
    fn directory_pages_track_offset_and_end() {
        // A middle page: generation then whole names.
        let p = directory_page(b"42\0ab\0c\0").unwrap();
        assert_eq!(
            p,
            DirectoryPage {
                generation: "42".into(),
                names: vec!["ab".into(), "c".into()],
                consumed: 5,
                last: false
            }
        );
        // The last page carries an extra empty string.
        let p = directory_page(b"42\0d\0\0").unwrap();
        assert!(p.last);
        assert_eq!(p.names, ["d"]);
        // Offset past the end: "gen\0\0".
        let p = directory_page(b"42\0\0").unwrap();
        assert!(p.last && p.names.is_empty());
        assert!(
            directory_page(b"42\0").is_err(),
            "a page that cannot advance is refused"
        );
        assert!(directory_page(b"42\0\0x\0").is_err());
        assert!(directory_page(b"").is_err());
    }

    #[test]
    fn permissions_and_booleans() {
        let p = permissions(b"n1\0r0\0").unwrap();
        assert_eq!(
            (p.owner, p.others, p.grants.len()),
            (DomId(1), Access::None, 1)
        );
        assert!(permissions(b"").is_err());
        assert!(permissions(b"q1\0").is_err());
        assert_eq!(boolean(MsgType::IsDomainIntroduced, b"T\0"), Ok(true));
        assert_eq!(boolean(MsgType::IsDomainIntroduced, b"F\0"), Ok(false));
        assert_eq!(
            boolean(MsgType::IsDomainIntroduced, b"T"),
            Err(ProtocolViolation::MissingNul)
        );
    }
}

//! Node permissions, typed.
//!
//! On the wire a node's permissions are a list of strings `<a><domid>`
//! where `<a>` is `n` (none), `r` (read), `w` (write) or `b` (both). The
//! first entry names the node's owner (who always has full access) and the
//! access every domain not listed gets; the others are per-domain grants.

use alloc::vec::Vec;
use core::fmt;

pub use xen::DomId;

/// What a domain may do with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read only.
    Read,
    /// `w`: write only.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The wire letter.
    pub fn letter(self) -> u8 {
        match self {
            Access::None => b'n',
            Access::Read => b'r',
            Access::Write => b'w',
            Access::Both => b'b',
        }
    }

    fn from_letter(c: u8) -> Option<Access> {
        Some(match c {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return None,
        })
    }
}

/// One grant: `domid` gets `access`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The domain.
    pub domid: DomId,
    /// What it may do.
    pub access: Access,
}

impl Grant {
    /// Parses one wire entry such as `r5`. `None` if malformed.
    pub fn parse(entry: &[u8]) -> Option<Grant> {
        let (&letter, digits) = entry.split_first()?;
        let access = Access::from_letter(letter)?;
        let digits = core::str::from_utf8(digits).ok()?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Grant {
            domid: digits.parse().ok()?,
            access,
        })
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter() as char, self.domid.0)
    }
}

/// A node's permissions: its owner, the default access of everyone else,
/// and per-domain grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    /// The owning domain (full access).
    pub owner: DomId,
    /// Access for domains not listed in `grants`.
    pub others: Access,
    /// Per-domain grants, in order.
    pub grants: Vec<Grant>,
}

impl Permissions {
    /// Owned by `owner`, `others` for everyone else, no grants.
    pub fn new(owner: impl Into<DomId>, others: Access) -> Permissions {
        Permissions {
            owner: owner.into(),
            others,
            grants: Vec::new(),
        }
    }

    /// Adds a grant (builder style).
    pub fn grant(mut self, domid: impl Into<DomId>, access: Access) -> Permissions {
        self.grants.push(Grant {
            domid: domid.into(),
            access,
        });
        self
    }

    /// All entries as the wire lists them, owner entry first.
    pub fn entries(&self) -> impl Iterator<Item = Grant> + '_ {
        core::iter::once(Grant {
            domid: self.owner,
            access: self.others,
        })
        .chain(self.grants.iter().copied())
    }

    /// Parses the NUL-separated entries of a `GET_PERMS` reply. `None` if
    /// there is no entry or one is malformed.
    pub fn from_entries<'a>(mut entries: impl Iterator<Item = &'a [u8]>) -> Option<Permissions> {
        let first = Grant::parse(entries.next()?)?;
        let grants = entries.map(Grant::parse).collect::<Option<Vec<_>>>()?;
        Some(Permissions {
            owner: first.domid,
            others: first.access,
            grants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parses_every_access_letter() {
        for (s, access) in [
            ("n0", Access::None),
            ("r1", Access::Read),
            ("w2", Access::Write),
            ("b65535", Access::Both),
        ] {
            let g = Grant::parse(s.as_bytes()).unwrap();
            assert_eq!(g.access, access);
            assert_eq!(g.to_string(), s);
        }
    }

    #[test]
    fn refuses_malformed_entries() {
        for bad in ["", "x1", "r", "r-1", "r1a", "r65536", "R1"] {
            assert_eq!(Grant::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn first_entry_is_owner_and_default() {
        let p = Permissions::from_entries([&b"n1"[..], b"r0", b"b3"].into_iter()).unwrap();
        assert_eq!(
            p,
            Permissions::new(1, Access::None)
                .grant(0, Access::Read)
                .grant(3, Access::Both)
        );
        let wire: alloc::vec::Vec<_> = p.entries().map(|g| g.to_string()).collect();
        assert_eq!(wire, ["n1", "r0", "b3"]);
        assert_eq!(Permissions::from_entries(core::iter::empty()), None);
    }
}

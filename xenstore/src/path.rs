//! Path rules of `docs/misc/xenstore.txt`, checked before a request is sent
//! so a bad path is a local, typed error rather than a round trip.
//!
//! A path is absolute (`/local/domain/1/name`) or, for a guest on its ring,
//! relative to its home (`device/vif/0`). Allowed bytes are ASCII
//! alphanumerics and `-/_@`; no `//`, no trailing `/` except the root.
//! Watches may also name the special paths `@introduceDomain` and
//! `@releaseDomain` (any `@...` path: the daemon decides what it means).

use crate::error::{PathError, XsError, truncated};
use crate::wire::{ABS_PATH_MAX, REL_PATH_MAX};

/// Whether a path may be a `@special` watch path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// A node path (every operation but watch/unwatch).
    Node,
    /// A watch path: a node path or an `@special` one.
    Watch,
}

/// Checks `path` against the protocol's rules for `kind`.
///
/// Errors: [`XsError::InvalidPath`] naming the rule broken.
pub fn validate(path: &str, kind: PathKind) -> Result<(), XsError> {
    check(path, kind).map_err(|reason| XsError::InvalidPath {
        path: truncated(path),
        reason,
    })
}

fn check(path: &str, kind: PathKind) -> Result<(), PathError> {
    let bytes = path.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(PathError::Empty);
    };
    if first == b'@' {
        if kind != PathKind::Watch {
            return Err(PathError::SpecialNotAllowed);
        }
        // The daemon only matches its own special names; we only refuse what
        // could not be a name at all.
        return check_chars(&bytes[1..]).and_then(|_| check_len(bytes.len(), ABS_PATH_MAX));
    }
    let max = if first == b'/' {
        ABS_PATH_MAX
    } else {
        REL_PATH_MAX
    };
    check_len(bytes.len(), max)?;
    check_chars(bytes)?;
    if path == "/" {
        return Ok(());
    }
    if bytes.windows(2).any(|w| w == b"//") {
        return Err(PathError::DoubleSlash);
    }
    if bytes.last() == Some(&b'/') {
        return Err(PathError::TrailingSlash);
    }
    Ok(())
}

fn check_len(len: usize, max: usize) -> Result<(), PathError> {
    if len > max {
        Err(PathError::TooLong { len, max })
    } else {
        Ok(())
    }
}

fn check_chars(bytes: &[u8]) -> Result<(), PathError> {
    match bytes
        .iter()
        .find(|b| !(b.is_ascii_alphanumeric() || b"-/_@".contains(b)))
    {
        Some(&bad) => Err(PathError::BadChar(bad)),
        None => Ok(()),
    }
}

/// `dir` joined with `name` by one `/` (FreeBSD's `xs_join`); an empty
/// `name` gives `dir` itself. The result is not validated here.
pub fn join(dir: &str, name: &str) -> alloc::string::String {
    let mut out = alloc::string::String::with_capacity(dir.len() + 1 + name.len());
    out.push_str(dir);
    if !name.is_empty() {
        if !dir.ends_with('/') {
            out.push('/');
        }
        out.push_str(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn reason(path: &str, kind: PathKind) -> Option<PathError> {
        match validate(path, kind) {
            Ok(()) => None,
            Err(XsError::InvalidPath { reason, .. }) => Some(reason),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn accepts_absolute_relative_and_root_paths() {
        for p in [
            "/",
            "/local/domain/1",
            "/a-b_c@d/0",
            "device/vif/0",
            "name",
            "data",
        ] {
            assert_eq!(reason(p, PathKind::Node), None, "{p}");
        }
        assert_eq!(reason("@releaseDomain", PathKind::Watch), None);
        assert_eq!(reason("@introduceDomain", PathKind::Watch), None);
    }

    #[test]
    fn refuses_what_the_protocol_forbids() {
        assert_eq!(reason("", PathKind::Node), Some(PathError::Empty));
        assert_eq!(
            reason("/a//b", PathKind::Node),
            Some(PathError::DoubleSlash)
        );
        assert_eq!(
            reason("/a/", PathKind::Node),
            Some(PathError::TrailingSlash)
        );
        assert_eq!(
            reason("/a b", PathKind::Node),
            Some(PathError::BadChar(b' '))
        );
        assert_eq!(reason("/a\0b", PathKind::Node), Some(PathError::BadChar(0)));
        assert_eq!(
            reason("/a.b", PathKind::Node),
            Some(PathError::BadChar(b'.'))
        );
        assert_eq!(reason("/é", PathKind::Node), Some(PathError::BadChar(0xc3)));
        assert_eq!(
            reason("@releaseDomain", PathKind::Node),
            Some(PathError::SpecialNotAllowed)
        );
    }

    #[test]
    fn enforces_absolute_and_relative_length_limits() {
        let abs_ok = alloc::format!("/{}", "a".repeat(ABS_PATH_MAX - 1));
        assert_eq!(reason(&abs_ok, PathKind::Node), None);
        let abs_long = alloc::format!("/{}", "a".repeat(ABS_PATH_MAX));
        assert_eq!(
            reason(&abs_long, PathKind::Node),
            Some(PathError::TooLong {
                len: ABS_PATH_MAX + 1,
                max: ABS_PATH_MAX
            })
        );
        let rel_ok = "a".repeat(REL_PATH_MAX);
        assert_eq!(reason(&rel_ok, PathKind::Node), None);
        let rel_long: String = "a".repeat(REL_PATH_MAX + 1);
        assert_eq!(
            reason(&rel_long, PathKind::Node),
            Some(PathError::TooLong {
                len: REL_PATH_MAX + 1,
                max: REL_PATH_MAX
            })
        );
    }

    #[test]
    fn join_inserts_one_slash() {
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(join("/a", ""), "/a");
        assert_eq!(join("/", "b"), "/b");
        assert_eq!(join("device", "vif"), "device/vif");
    }
}

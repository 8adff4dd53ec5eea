//! Grant references.

use core::fmt;

/// A grant reference (`grant_ref_t`): what the peer is told (e.g. `ring-ref` in xenstore).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct GrantRef(pub u32);

impl fmt::Display for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gref {}", self.0)
    }
}

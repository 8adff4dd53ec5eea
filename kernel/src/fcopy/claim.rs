//! The claim a sender makes before it connects (`data/fcopy/claim`, see
//! `docs/fcopy.md`): the sender creates it in a transaction only one can
//! win; the guest removes it when the connection ends, and removes one
//! whose sender never connected.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xenstore::{Store, XsError};

use crate::xenstore_service::XsClient;

/// The claim node of the service at `base`.
pub fn path(base: &str) -> String {
    format!("{base}/claim")
}

/// Removes the claim (absent is fine): the service is free again.
pub fn release(xs: &XsClient, base: &str) {
    match xs.rm(&path(base)) {
        Ok(()) | Err(XsError::Enoent(_)) => {}
        Err(e) => log::warn!("fcopy: releasing the claim: {e}"),
    }
}

/// Watches for a claim whose sender never connects: [`Stale::check`] is
/// called once per idle period while nobody is connected.
#[derive(Default)]
pub struct Stale {
    seen: Option<Vec<u8>>,
}

impl Stale {
    /// Removes the claim if it held the same value at the last check too:
    /// its sender had a whole idle period to connect and did not.
    pub fn check(&mut self, xs: &XsClient, base: &str) {
        let now = xs.read(&path(base)).ok();
        if now.is_some() && now == self.seen {
            let holder = String::from_utf8_lossy(now.as_deref().unwrap_or_default()).into_owned();
            log::warn!("fcopy: the claim of {holder:?} never connected; released");
            release(xs, base);
            self.seen = None;
        } else {
            self.seen = now;
        }
    }
}

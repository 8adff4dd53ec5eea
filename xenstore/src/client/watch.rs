//! The watch handle.

use alloc::string::String;

use super::Client;
use crate::XsError;
use crate::platform::Platform;
use crate::protocol::WatchId;

/// A registered watch. Dropping it removes the watch (like
/// [`Watch::unwatch`], ignoring the daemon's answer).
#[must_use = "dropping a Watch removes it at once; use detach() to keep it"]
pub struct Watch<P: Platform> {
    client: Client<P>,
    id: WatchId,
    path: String,
    active: bool,
}

impl<P: Platform> Watch<P> {
    pub(super) fn new(client: Client<P>, id: WatchId, path: &str) -> Watch<P> {
        Watch {
            client,
            id,
            path: String::from(path),
            active: true,
        }
    }

    /// The watched path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Removes the watch. When this returns no callback of this watch runs
    /// or will run, unless it is called from that callback (which then
    /// finishes normally). The watch is removed locally even on error; the
    /// error says the daemon could not be told (a lost connection).
    pub fn unwatch(mut self) -> Result<(), XsError> {
        self.active = false;
        self.client.shared().remove_watch(self.id)
    }

    /// Keeps the watch for the life of the client, dropping the handle.
    pub fn detach(mut self) {
        self.active = false;
    }
}

impl<P: Platform> Drop for Watch<P> {
    fn drop(&mut self) {
        if self.active {
            let _ = self.client.shared().remove_watch(self.id);
        }
    }
}

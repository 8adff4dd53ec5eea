//! The backends the host plays for the `xenbus` fixture's toolstack
//! ([`super::toolstack`]): a dom0 connection watching the guest's `device`
//! tree moves each `auto` device's backend as a Linux backend (blkback,
//! netback) would, given the frontend's state ([`backend_reaction`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use testbed::Testbed;
use xenstore::{Client, StdPlatform, Store, Watch, WatchEvent};

use super::verbs::lock;

/// Who plays a device's backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendMode {
    /// The [`BackendPlayer`], following the frontend.
    Auto,
    /// The test, state by state (`backend-state`).
    Manual,
}

impl std::str::FromStr for BackendMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendMode::Auto),
            "manual" => Ok(BackendMode::Manual),
            other => Err(format!("backend mode {other:?}: want auto|manual")),
        }
    }
}

/// XenBus states (public/io/xenbus.h) the backend writes.
pub mod state {
    pub const INITIALISING: u32 = 1;
    pub const INIT_WAIT: u32 = 2;
    pub const INITIALISED: u32 = 3;
    pub const CONNECTED: u32 = 4;
    pub const CLOSING: u32 = 5;
    pub const CLOSED: u32 = 6;
}

/// The backend's next state given the frontend's and its own, as a Linux
/// backend (blkback, netback) moves: set up at once (InitWait); connect
/// when the frontend has published (Initialised, or already Connected);
/// follow the frontend's close. `None`: stay.
pub fn backend_reaction(front: Option<u32>, back: Option<u32>) -> Option<u32> {
    use state::*;
    match (front, back?) {
        (_, INITIALISING) => Some(INIT_WAIT),
        (Some(INITIALISED | CONNECTED), INIT_WAIT) => Some(CONNECTED),
        (Some(CLOSING), b) if b != CLOSING && b != CLOSED => Some(CLOSING),
        (Some(CLOSED), b) if b != CLOSED => Some(CLOSED),
        _ => None,
    }
}

/// A device the toolstack created.
pub type Devices = Arc<Mutex<BTreeMap<(String, String), BackendMode>>>;

/// Plays the backends of `auto` devices over its own dom0 connection.
pub struct BackendPlayer {
    // Dropped first: no callback runs once the watch is gone.
    _watch: Watch<StdPlatform>,
    _client: Client<StdPlatform>,
}

impl BackendPlayer {
    /// Connects to the daemon of `testbed` and plays, from now on, the
    /// backends of the `auto` devices of `domid` listed in `devices`
    /// (read at each event, so devices added later are played too). A
    /// failed step is recorded in `errors`.
    pub fn start(
        testbed: &Testbed,
        domid: u32,
        devices: Devices,
        errors: Arc<Mutex<Vec<String>>>,
    ) -> Result<BackendPlayer, String> {
        let client = Client::connect(testbed.socket_path()).map_err(|e| e.to_string())?;
        let player = client.clone();
        let watch = client
            .watch(
                &format!("/local/domain/{domid}/device"),
                move |_: &WatchEvent| {
                    let auto: Vec<(String, String)> = lock(&devices)
                        .iter()
                        .filter(|(_, mode)| **mode == BackendMode::Auto)
                        .map(|(key, _)| key.clone())
                        .collect();
                    for (class, id) in auto {
                        if let Err(e) = play(&player, domid, &class, &id) {
                            lock(&errors).push(format!("backend {class}/{id}: {e}"));
                        }
                    }
                },
            )
            .map_err(|e| e.to_string())?;
        Ok(BackendPlayer {
            _watch: watch,
            _client: client,
        })
    }
}

/// One step of an auto backend, in a transaction so that a device being
/// removed is not recreated by our write.
fn play(xs: &Client<StdPlatform>, domid: u32, class: &str, id: &str) -> Result<(), String> {
    let front = frontend_path(domid, class, id) + "/state";
    let back = backend_path(domid, class, id) + "/state";
    let number =
        |v: Option<Vec<u8>>| v.and_then(|v| String::from_utf8(v).ok()?.trim().parse().ok());
    xs.transaction(|t| {
        let front_state = number(t.read_optional(&front)?);
        let back_state = number(t.read_optional(&back)?);
        match backend_reaction(front_state, back_state) {
            Some(next) => t.write_display(&back, next),
            None => Ok(()),
        }
    })
    .map_err(|e| e.to_string())
}

/// `/local/domain/0/backend/<class>/<domid>/<id>`.
pub fn backend_path(domid: u32, class: &str, id: &str) -> String {
    format!("/local/domain/0/backend/{class}/{domid}/{id}")
}

/// `/local/domain/<domid>/device/<class>/<id>`.
pub fn frontend_path(domid: u32, class: &str, id: &str) -> String {
    format!("/local/domain/{domid}/device/{class}/{id}")
}

#[cfg(test)]
mod tests {
    use super::state::*;
    use super::*;

    #[test]
    fn the_backend_walks_the_handshake_and_follows_the_close() {
        assert_eq!(
            backend_reaction(Some(INITIALISING), Some(INITIALISING)),
            Some(INIT_WAIT)
        );
        assert_eq!(backend_reaction(None, Some(INITIALISING)), Some(INIT_WAIT));
        assert_eq!(backend_reaction(Some(INITIALISING), Some(INIT_WAIT)), None);
        assert_eq!(
            backend_reaction(Some(INITIALISED), Some(INIT_WAIT)),
            Some(CONNECTED)
        );
        assert_eq!(
            backend_reaction(Some(CONNECTED), Some(INIT_WAIT)),
            Some(CONNECTED)
        );
        assert_eq!(backend_reaction(Some(CONNECTED), Some(CONNECTED)), None);
        assert_eq!(
            backend_reaction(Some(CLOSING), Some(CONNECTED)),
            Some(CLOSING)
        );
        assert_eq!(backend_reaction(Some(CLOSED), Some(CLOSING)), Some(CLOSED));
        assert_eq!(backend_reaction(Some(CLOSED), Some(CLOSED)), None);
        assert_eq!(
            backend_reaction(Some(CONNECTED), None),
            None,
            "no backend: nothing to play"
        );
    }

    #[test]
    fn modes_parse() {
        assert_eq!("auto".parse(), Ok(BackendMode::Auto));
        assert_eq!("manual".parse(), Ok(BackendMode::Manual));
        assert!("sometimes".parse::<BackendMode>().is_err());
    }
}

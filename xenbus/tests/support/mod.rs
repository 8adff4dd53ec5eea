//! The real xenstored (testbed) with our client as guest 1 on its ring,
//! the host playing toolstack and backend (a dom0 socket client and the
//! real `xenstore-*` CLI), and test doubles for the driver and the OS.

#![allow(dead_code)]

pub mod os;

#[allow(unused_imports)] // Not every test file uses them.
pub use os::{RecordingPower, fixed_info};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testbed::{Domain, Testbed};
use xenbus::{BusError, Device, Driver, OtherendState};
use xenstore::{Access, Client, Config, Permissions, StdPlatform, Store};

pub type Dev = Device<StdPlatform>;

/// Prints the crates' log lines on stderr (shown for failing tests).
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        eprintln!(
            "[{:?} {}] {}",
            std::thread::current().id(),
            record.level(),
            record.args()
        );
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Polls `cond` for up to 10 s (for effects of background threads).
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A testbed with domain 1, a guest client on its ring and a dom0 client.
pub struct Env {
    pub tb: Testbed,
    pub dom: Arc<Domain>,
    pub guest: Client<StdPlatform>,
    host: Mutex<Client<StdPlatform>>,
}

pub const HOME: &str = "/local/domain/1";

impl Env {
    pub fn start() -> Env {
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
        let tb =
            Testbed::start().unwrap_or_else(|e| panic!("the real xenstored could not start: {e}"));
        let dom = Arc::new(tb.introduce_domain(1).expect("introduce domain 1"));
        let guest = testbed::xs::ring_client(Arc::clone(&dom), Config::default())
            .expect("guest ring client");
        let host = Client::connect_with(tb.socket_path(), Config::default()).expect("dom0 client");
        Env {
            tb,
            dom,
            guest,
            host: Mutex::new(host),
        }
    }

    /// The dom0 socket client (reconnected after a daemon restart).
    pub fn host(&self) -> Client<StdPlatform> {
        self.host.lock().unwrap().clone()
    }

    /// Reconnects the dom0 client (the old one died with the old daemon).
    pub fn reconnect_host(&self) {
        let fresh = Client::connect_with(self.tb.socket_path(), Config::default()).unwrap();
        *self.host.lock().unwrap() = fresh;
    }

    /// `xenstore-read PATH` (the real CLI); `None` if it fails (no node).
    pub fn cli_read(&self, path: &str) -> Option<String> {
        let out = self.tb.cli("read", &[path]).expect("run xenstore-read");
        out.into_stdout()
            .ok()
            .map(|s| s.trim_end_matches('\n').to_string())
    }

    /// `xenstore-write PATH VALUE` (the real CLI).
    pub fn cli_write(&self, path: &str, value: &str) {
        self.tb
            .cli("write", &[path, value])
            .and_then(|o| o.into_stdout())
            .unwrap_or_else(|e| panic!("xenstore-write {path} {value}: {e}"));
    }

    /// `xenstore-rm PATH` (the real CLI).
    pub fn cli_rm(&self, path: &str) {
        self.tb
            .cli("rm", &[path])
            .and_then(|o| o.into_stdout())
            .unwrap_or_else(|e| panic!("xenstore-rm {path}: {e}"));
    }

    /// The value of an absolute path as dom0 sees it.
    pub fn host_read(&self, path: &str) -> Option<String> {
        self.host()
            .read_optional(path)
            .unwrap()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Creates a device as a toolstack does: the backend directory under
    /// dom0 (readable by domain 1), then the frontend's nodes, with both
    /// states Initialising, in one transaction.
    pub fn add_device(&self, class: &str, id: &str) -> Backend {
        self.add_device_with(class, id, &[])
    }

    /// [`Env::add_device`] with some frontend nodes given other values
    /// (written in the same transaction).
    pub fn add_device_with(&self, class: &str, id: &str, front_nodes: &[(&str, &str)]) -> Backend {
        let backend = Backend::path_for(class, id);
        let front = format!("{HOME}/device/{class}/{id}");
        let host = self.host();
        host.transaction(|t| {
            // Readable by the frontend from the start, as libxl does it.
            let perms = Permissions::new(0, Access::None).grant(1, Access::Read);
            t.write(&format!("{backend}/state"), "1")?;
            t.set_permissions(&backend, &perms)?;
            t.set_permissions(&format!("{backend}/state"), &perms)?;
            t.write(&format!("{backend}/frontend"), &front)?;
            t.write(&format!("{backend}/frontend-id"), "1")?;
            t.write(&format!("{front}/backend"), &backend)?;
            t.write(&format!("{front}/backend-id"), "0")?;
            for (node, value) in front_nodes {
                t.write(&format!("{front}/{node}"), value)?;
            }
            t.write(&format!("{front}/state"), "1")
        })
        .unwrap();
        Backend {
            path: backend,
            host,
        }
    }

    /// The frontend's `state` as dom0 reads it.
    pub fn front_state(&self, class: &str, id: &str) -> Option<String> {
        self.host_read(&format!("{HOME}/device/{class}/{id}/state"))
    }
}

/// A backend directory the host controls.
pub struct Backend {
    pub path: String,
    host: Client<StdPlatform>,
}

impl Backend {
    pub fn path_for(class: &str, id: &str) -> String {
        format!("/local/domain/0/backend/{class}/1/{id}")
    }

    /// Writes the backend's `state`.
    pub fn set_state(&self, state: u32) {
        self.host
            .write_display(&format!("{}/state", self.path), state)
            .unwrap();
    }
}

/// A driver that records its callbacks and keeps the devices it got.
#[derive(Default)]
pub struct RecordingDriver {
    pub events: Mutex<Vec<String>>,
    pub devices: Mutex<BTreeMap<String, Dev>>,
    /// Probes of these nodenames fail.
    pub refuse: Mutex<Vec<String>>,
}

impl RecordingDriver {
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    pub fn saw(&self, event: &str) -> bool {
        self.events().iter().any(|e| e == event)
    }

    pub fn device(&self, nodename: &str) -> Dev {
        self.devices.lock().unwrap()[nodename].clone()
    }

    fn log(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
}

impl Driver<StdPlatform> for RecordingDriver {
    fn probe(&self, dev: &Dev) -> Result<(), BusError> {
        self.log(format!("probe {}", dev.nodename()));
        if self
            .refuse
            .lock()
            .unwrap()
            .iter()
            .any(|n| n == dev.nodename())
        {
            return Err(BusError::Driver {
                nodename: dev.nodename().into(),
                reason: "refused by the test".into(),
            });
        }
        self.devices
            .lock()
            .unwrap()
            .insert(dev.nodename().into(), dev.clone());
        Ok(())
    }

    fn attach(&self, dev: &Dev) -> Result<(), BusError> {
        self.log(format!("attach {}", dev.nodename()));
        Ok(())
    }

    fn detach(&self, dev: &Dev) {
        self.log(format!("detach {}", dev.nodename()));
    }

    fn otherend_changed(&self, dev: &Dev, state: &OtherendState) {
        self.log(format!("otherend {} {state}", dev.nodename()));
    }

    fn suspend(&self, dev: &Dev) -> Result<(), BusError> {
        self.log(format!("suspend {}", dev.nodename()));
        Ok(())
    }

    fn resume(&self, dev: &Dev) -> Result<(), BusError> {
        self.log(format!("resume {}", dev.nodename()));
        Ok(())
    }
}

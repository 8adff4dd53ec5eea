//! Helpers for the xenbus images (booted with `needs = "xenbus"`): the
//! kernel's guest side, waits on bus state, the host toolstack's verbs,
//! and a driver that records its callbacks.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use kernel::guest::{KernelDevice, KernelGuest, Setup};
use kernel::sync::SpinLock;
use kernel::time::Instant;
use kernel::xenstore_service::KernelPlatform;
use xenbus::{BusError, DeviceInfo, Driver, GuestConfig, OtherendState, XenbusState};

use super::host;

/// How long a test waits for something the guest or host should do soon.
pub const WAIT: Duration = Duration::from_secs(20);

/// Starts (once) the kernel's bus and services with the host agent, and
/// returns them. Panics with the reason if they cannot start.
pub fn guest() -> &'static KernelGuest {
    kernel::guest::start(Setup::with_host_agent(GuestConfig::default()))
        .unwrap_or_else(|e| panic!("xenbus did not start: {e}"))
}

/// Polls `done` every 10 ms until it holds; panics after `timeout`
/// naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        kernel::thread::sleep(Duration::from_millis(10));
    }
}

/// The bus's view of `nodename`, if it knows the device.
pub fn device_info(nodename: &str) -> Option<DeviceInfo> {
    guest()
        .bus()
        .devices()
        .into_iter()
        .find(|d| d.nodename == nodename)
}

/// Waits until the bus knows `nodename` with a driver bound; returns it.
pub fn bound_device(nodename: &str) -> KernelDevice {
    wait_until(&format!("{nodename} bound to a driver"), WAIT, || {
        device_info(nodename).is_some_and(|d| d.driver.is_some())
    });
    guest()
        .bus()
        .device(nodename)
        .expect("a bound device is known")
}

/// Waits until our state of `nodename` (as the bus last wrote it) is `state`.
pub fn wait_for_our_state(nodename: &str, state: XenbusState) {
    wait_until(&format!("{nodename} in our state {state}"), WAIT, || {
        device_info(nodename).is_some_and(|d| d.state == state)
    });
}

/// Has the host check, over its own dom0 connection, that the frontend's
/// `state` node reads `state`.
pub fn host_sees_front_state(class: &str, id: &str, state: XenbusState) {
    let ms = format!("{}", WAIT.as_millis());
    host(
        "wait-front-state",
        &[class, id, &format!("{}", state.raw()), &ms],
    );
}

/// Has the host toolstack write the backend's `state` (a manual backend).
pub fn backend_goes(class: &str, id: &str, state: XenbusState) {
    host("backend-state", &[class, id, &format!("{}", state.raw())]);
}

/// A driver that records its callbacks (`probe device/x/0`, ...) and
/// refuses to probe devices whose id is in `refuse`.
pub struct RecordingDriver {
    events: SpinLock<Vec<String>>,
    refuse: &'static [&'static str],
}

impl RecordingDriver {
    /// A driver refusing the ids in `refuse`.
    pub fn new(refuse: &'static [&'static str]) -> Arc<RecordingDriver> {
        Arc::new(RecordingDriver {
            events: SpinLock::new(Vec::new()),
            refuse,
        })
    }

    /// The callbacks so far.
    pub fn events(&self) -> Vec<String> {
        self.events.lock().clone()
    }

    /// Waits until `event` was recorded.
    pub fn expect(&self, event: &str) {
        wait_until(&format!("driver callback {event:?}"), WAIT, || {
            self.events.lock().iter().any(|e| e == event)
        });
    }

    fn record(&self, event: String) {
        self.events.lock().push(event);
    }
}

impl Driver<KernelPlatform> for RecordingDriver {
    fn probe(&self, dev: &KernelDevice) -> Result<(), BusError> {
        self.record(format!("probe {}", dev.nodename()));
        let id = dev.nodename().rsplit('/').next().unwrap_or_default();
        if self.refuse.contains(&id) {
            return Err(BusError::Driver {
                nodename: dev.nodename().into(),
                reason: "this test driver refuses the device".into(),
            });
        }
        Ok(())
    }

    fn attach(&self, dev: &KernelDevice) -> Result<(), BusError> {
        self.record(format!("attach {}", dev.nodename()));
        Ok(())
    }

    fn detach(&self, dev: &KernelDevice) {
        self.record(format!("detach {}", dev.nodename()));
    }

    fn otherend_changed(&self, dev: &KernelDevice, state: &OtherendState) {
        self.record(format!("otherend {} {state}", dev.nodename()));
    }
}

//! Test doubles of the OS for the guest services: recorded power actions,
//! fixed `data/` figures; and starting the services on an [`Env`].

use std::sync::{Arc, Condvar, Mutex};

use xenbus::services::{GuestInfo, PowerControl, SystemInfo};
use xenbus::{Guest, GuestConfig, GuestOs, PowerError, SuspendOutcome, UnsupportedResources};
use xenstore::StdPlatform;

use super::Env;

impl Env {
    /// Starts the bus and services on the guest client.
    pub fn guest_services(
        &self,
        power: Arc<RecordingPower>,
        config: GuestConfig,
    ) -> Guest<StdPlatform> {
        let os = GuestOs {
            power,
            info: Arc::new(FixedInfo),
            resources: Arc::new(UnsupportedResources {
                platform: "host test platform",
            }),
        };
        Guest::start(StdPlatform, self.guest.clone(), os, config).expect("guest services")
    }
}

/// What the platform's suspend does in a test.
pub type SuspendHook = Box<dyn Fn() -> Result<SuspendOutcome, PowerError> + Send>;

/// The OS's actions, recorded. `hold` makes poweroff block until
/// `release`; `on_suspend` plays the platform's suspend.
#[derive(Default)]
pub struct RecordingPower {
    pub calls: Mutex<Vec<&'static str>>,
    held: Mutex<bool>,
    gate: Condvar,
    pub on_suspend: Mutex<Option<SuspendHook>>,
}

impl RecordingPower {
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }

    /// Makes the next actions block until `release`.
    pub fn hold(&self) {
        *self.held.lock().unwrap() = true;
    }

    pub fn release(&self) {
        *self.held.lock().unwrap() = false;
        self.gate.notify_all();
    }

    fn act(&self, what: &'static str) -> Result<(), PowerError> {
        self.calls.lock().unwrap().push(what);
        let mut held = self.held.lock().unwrap();
        while *held {
            held = self.gate.wait(held).unwrap();
        }
        Ok(())
    }
}

impl PowerControl for RecordingPower {
    fn poweroff(&self) -> Result<(), PowerError> {
        self.act("poweroff")
    }

    fn reboot(&self) -> Result<(), PowerError> {
        self.act("reboot")
    }

    fn halt(&self) -> Result<(), PowerError> {
        self.act("halt")
    }

    fn suspend(&self) -> Result<SuspendOutcome, PowerError> {
        self.calls.lock().unwrap().push("suspend");
        match &*self.on_suspend.lock().unwrap() {
            Some(f) => f(),
            None => Ok(SuspendOutcome::Cancelled),
        }
    }
}

/// Fixed figures for the `data/` pool.
pub struct FixedInfo;

pub fn fixed_info() -> GuestInfo {
    GuestInfo {
        os_name: "xenbus test OS 1.2".into(),
        os_distro: "testos".into(),
        os_majorver: "1".into(),
        os_minorver: "2".into(),
        os_uname: "0.1.0-test".into(),
        uptime_secs: 42,
        meminfo_total_kib: 262144,
        meminfo_free_kib: 131072,
    }
}

impl SystemInfo for FixedInfo {
    fn guest_info(&self) -> GuestInfo {
        fixed_info()
    }
}

//! Guest services over xenstore, each on the shared request state machine
//! ([`ServiceState`]):
//!
//! - [`ControlService`]: `control/shutdown` (poweroff, reboot, halt,
//!   suspend), acknowledged by clearing the node, as Linux's `manage.c`;
//! - [`DataPublisher`]: the guest's `data/` pool (OS and memory figures),
//!   as the Xen guest agent publishes it, refreshed on a period;
//! - [`VmData`]: the host's `vm-data/` pool, a key/value view kept current
//!   by a watch.
//!
//! The OS supplies [`PowerControl`] (the actions) and [`SystemInfo`] (the
//! figures); [`crate::Guest`] wires everything to a bus.

mod control;
mod data;
mod machine;
mod vmdata;

use alloc::string::String;
use core::time::Duration;

pub use control::{ControlService, ShutdownCommand};
pub use data::{DataPublisher, GuestInfo};
pub use machine::{ServiceState, ServiceStatus};
pub use vmdata::VmData;

use crate::bus::SuspendOutcome;
use crate::error::{PowerError, ServiceError};

/// What the OS does when the host asks (the kernel implements it; tests
/// record the calls).
pub trait PowerControl: Send + Sync + 'static {
    /// Powers the VM off (SCHEDOP_shutdown, SHUTDOWN_poweroff). In a
    /// kernel this does not return on success.
    fn poweroff(&self) -> Result<(), PowerError>;

    /// Reboots the VM (SHUTDOWN_reboot).
    fn reboot(&self) -> Result<(), PowerError>;

    /// Halts (Linux treats "halt" as poweroff).
    fn halt(&self) -> Result<(), PowerError>;

    /// Suspends the VM (SHUTDOWN_suspend) and returns once it runs again:
    /// [`SuspendOutcome::Cancelled`] if the hypercall said the suspend was
    /// cancelled. Called with the bus and the xenstore client quiesced.
    fn suspend(&self) -> Result<SuspendOutcome, PowerError>;

    /// After a suspend that ended [`SuspendOutcome::Resumed`], once the
    /// xenstore client works again (watches registered again) and the bus
    /// has resumed its drivers, before `data/` is republished: the OS
    /// re-reads what a new domain changed (its domain id and home, say).
    /// Default: nothing.
    fn after_resume(&self) {}
}

/// Figures the `data/` pool publishes (the kernel implements it).
pub trait SystemInfo: Send + Sync + 'static {
    /// The figures now. Called on the publisher's handler thread, once per
    /// period.
    fn guest_info(&self) -> GuestInfo;
}

/// The whole suspend path the control service runs for "suspend" (see
/// [`crate::Guest`]: drivers, xenstore, the platform, then republishing).
pub trait SuspendPath: Send + Sync + 'static {
    /// Suspends and resumes; returns how it ended.
    fn suspend(&self) -> Result<SuspendOutcome, ServiceError>;
}

/// Timing of a request-driven service.
#[derive(Clone, Copy, Debug)]
pub struct ServiceConfig {
    /// How long a request's handler may run before the service reports it
    /// ([`ServiceError::HandlerTimeout`]); it is still waited for. Also how
    /// long stopping the service waits for a running handler.
    pub handler_timeout: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            handler_timeout: Duration::from_secs(30),
        }
    }
}

/// Timing of the `data/` publisher.
#[derive(Clone, Copy, Debug)]
pub struct DataConfig {
    /// How often the figures are refreshed (the guest agent's default is
    /// 60 s).
    pub period: Duration,
    /// How long one refresh may take before it is reported (it is still
    /// waited for; the next period starts after it).
    pub handler_timeout: Duration,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            period: Duration::from_secs(60),
            handler_timeout: Duration::from_secs(10),
        }
    }
}

/// `dir/name`, for the fixed relative paths of the services.
fn node(dir: &str, name: &str) -> String {
    xenstore::path::join(dir, name)
}

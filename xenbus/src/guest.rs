//! [`Guest`]: the bus and the three services of a guest, wired together,
//! and the suspend path the control service runs for "suspend".
//!
//! What the kernel does to start it:
//!
//! ```text
//! let guest = Guest::start(KernelPlatform, xs, os, GuestConfig::default())?;
//! guest.bus().register_driver("vif", Arc::new(SampleFrontend::new()))?;
//! guest.bus().attach()?; // probes the devices present, then follows hot-plug
//! ```
//!
//! # Suspend (and migration)
//!
//! On "suspend" in `control/shutdown` the control service's handler runs,
//! in order: the drivers' `suspend` (bus worker) → xenstore `suspend()`
//! (waits for open transactions, holds off new requests) → the OS's
//! [`PowerControl::suspend`] → xenstore `resume()` (re-registers every
//! watch: after a migration the new daemon fires each once) → the bus
//! re-reads each device's other end and resumes its driver → the OS's
//! [`PowerControl::after_resume`] (the kernel re-reads its domain id and
//! home) → the `data/` pool is published again, `vm-data/` re-read and the
//! control features advertised again. Devices the new host lacks are detached by the rescan
//! that follows; their state is republished by their drivers.

use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::sync::Arc;
use core::fmt;

use xenstore::{Client, Lock, Platform, XsError};

use crate::bus::{Bus, BusConfig, PlatformSuspend, SuspendOutcome};
use crate::error::{BusError, ServiceError};
use crate::resources::DeviceResources;
use crate::services::{
    ControlService, DataConfig, DataPublisher, PowerControl, ServiceConfig, SuspendPath,
    SystemInfo, VmData,
};

/// What the OS supplies.
pub struct GuestOs {
    /// Poweroff, reboot, halt, suspend.
    pub power: Arc<dyn PowerControl>,
    /// The figures of the `data/` pool.
    pub info: Arc<dyn SystemInfo>,
    /// Grant table and event channels (or [`crate::UnsupportedResources`]).
    pub resources: Arc<dyn DeviceResources>,
}

/// Tunables of every part.
#[derive(Clone, Debug, Default)]
pub struct GuestConfig {
    /// The bus.
    pub bus: BusConfig,
    /// `control/shutdown`.
    pub control: ServiceConfig,
    /// `data/`.
    pub data: DataConfig,
    /// `vm-data/`.
    pub vm_data: ServiceConfig,
}

/// Why [`Guest::start`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The bus could not start.
    Bus(BusError),
    /// A service could not start.
    Service(ServiceError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bus(e) => write!(f, "xenbus: {e}"),
            StartError::Service(e) => write!(f, "xenbus service: {e}"),
        }
    }
}

impl core::error::Error for StartError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            StartError::Bus(e) => Some(e),
            StartError::Service(e) => Some(e),
        }
    }
}

/// The bus and the guest services. Dropping it stops them all.
pub struct Guest<P: Platform> {
    // Field order is drop order: the control service (which may be
    // running a suspend through the bus) goes first.
    control: ControlService<P>,
    vm_data: VmData<P>,
    data: DataPublisher<P>,
    bus: Bus<P>,
}

impl<P: Platform> Guest<P> {
    /// Starts the bus (not attached yet: register drivers, then
    /// [`Bus::attach`]), the `data/` publisher (publishes at once), the
    /// `vm-data/` reader and the control service (advertises its features).
    ///
    /// Errors: a thread or a watch could not be set up.
    pub fn start(
        platform: P,
        xs: Client<P>,
        os: GuestOs,
        config: GuestConfig,
    ) -> Result<Guest<P>, StartError> {
        let platform = Arc::new(platform);
        let bus =
            Bus::new(&*platform, xs.clone(), os.resources, config.bus).map_err(StartError::Bus)?;
        let data = DataPublisher::start(Arc::clone(&platform), xs.clone(), os.info, config.data)
            .map_err(StartError::Service)?;
        let vm_data = VmData::start(Arc::clone(&platform), xs.clone(), config.vm_data)
            .map_err(StartError::Service)?;
        let suspend: Arc<dyn SuspendPath> = Arc::new(GuestSuspend {
            bus: bus.clone(),
            xs: xs.clone(),
            power: Arc::clone(&os.power),
            data: data.clone(),
            vm_data: vm_data.clone(),
        });
        let control = ControlService::start(platform, xs, os.power, Some(suspend), config.control)
            .map_err(StartError::Service)?;
        Ok(Guest {
            control,
            vm_data,
            data,
            bus,
        })
    }

    /// The bus.
    pub fn bus(&self) -> &Bus<P> {
        &self.bus
    }

    /// The `control/shutdown` service.
    pub fn control(&self) -> &ControlService<P> {
        &self.control
    }

    /// The `data/` publisher.
    pub fn data(&self) -> &DataPublisher<P> {
        &self.data
    }

    /// The `vm-data/` pool.
    pub fn vm_data(&self) -> &VmData<P> {
        &self.vm_data
    }
}

/// The suspend path of a [`Guest`] (see the module doc).
struct GuestSuspend<P: Platform> {
    bus: Bus<P>,
    xs: Client<P>,
    power: Arc<dyn PowerControl>,
    data: DataPublisher<P>,
    vm_data: VmData<P>,
}

impl<P: Platform> SuspendPath for GuestSuspend<P> {
    fn suspend(&self) -> Result<SuspendOutcome, ServiceError> {
        // The platform step runs on the bus worker; it leaves the xenstore
        // client's resume error here, so the VM's outcome (and the drivers'
        // resume) does not depend on every watch coming back.
        let resume_error: Arc<P::Lock<Option<XsError>>> = Arc::new(Lock::new(None));
        let (xs, power, slot) = (
            self.xs.clone(),
            Arc::clone(&self.power),
            Arc::clone(&resume_error),
        );
        let step: PlatformSuspend = Box::new(move || {
            xs.suspend()
                .map_err(|e| BusError::store("suspending the xenstore client", e))?;
            let outcome = power.suspend();
            // Only a VM that really moved has a fresh ring and daemon; after
            // a cancelled or failed suspend everything is kept.
            let resumed = match outcome {
                Ok(SuspendOutcome::Resumed) => xs.resume(),
                Ok(SuspendOutcome::Cancelled) | Err(_) => xs.resume_cancelled(),
            };
            if let Err(e) = resumed {
                slot.with(|s| *s = Some(e));
            }
            outcome.map_err(|e| BusError::Platform {
                doing: "suspending the VM",
                reason: e.to_string(),
            })
        });
        let outcome = self
            .bus
            .suspend_and_resume(step)
            .map_err(ServiceError::Suspend)?;
        if outcome == SuspendOutcome::Resumed {
            self.power.after_resume();
            self.data.republish();
            self.vm_data.refresh();
        }
        match resume_error.with(Option::take) {
            Some(e) => Err(ServiceError::store(
                "control",
                "resuming the xenstore client",
                e,
            )),
            None => Ok(outcome),
        }
    }
}

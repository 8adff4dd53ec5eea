//! XenBus and the guest services in the kernel: the `xenbus` crate's
//! [`Guest`] (the bus, `control/shutdown`, the `data/` and `vm-data/`
//! pools) started over the kernel's xenstore client, with the OS half they
//! need: [`KernelPower`] (poweroff, reboot, suspend), [`KernelInfo`] (the
//! `data/` figures) and the grant/event-channel resources ([`XenResources`]
//! on Xen; on the QEMU test platform `xenbus::UnsupportedResources`).
//!
//! ```ignore
//! let guest = kernel::guest::start(kernel::guest::Setup::interactive())?;
//! for dev in guest.bus().devices() { /* nodename, state, other end */ }
//! guest.control().status();          // the control service's state machine
//! ```
//!
//! [`start`] runs once, after the xenstore service ([`crate::xenstore_service::init`],
//! which it calls): it starts the services, registers the sample frontend
//! for [`SAMPLE_CLASSES`] and attaches the bus (probing the devices present).
//!
//! Threads: the bus worker, and two per service for the guest's whole
//! life: the service thread and its `xenbus-handler` thread, which runs the
//! service's requests one at a time. None is started per request or per
//! period.
//!
//! Locks: `STARTING` (sleeping) serialises [`start`]; it is taken before
//! the xenstore service's `ATTACH`. Nothing else here locks.

pub mod load;
pub mod power;
mod resources;
mod sysinfo;

use alloc::sync::Arc;
use core::fmt;

use spin::Once;
use xenbus::frontend::{RingProtocol, SampleFrontend};
use xenbus::{
    BusError, DeviceResources, Guest, GuestConfig, GuestOs, StartError, UnsupportedResources,
};

pub use power::KernelPower;
pub use resources::{XenResources, resumes};
pub use sysinfo::KernelInfo;

use crate::sync::Mutex;
use crate::xenstore_service::{KernelPlatform, StoreError};

/// The bus and services on the kernel's platform.
pub type KernelGuest = Guest<KernelPlatform>;
/// A XenBus device as the kernel's drivers see it.
pub type KernelDevice = xenbus::Device<KernelPlatform>;

/// Device classes bound to the frontend at start, with the ring protocol
/// each speaks (the handshake only, no data moved; see `xenbus::frontend`).
pub const SAMPLE_CLASSES: [(&str, RingProtocol); 2] =
    [("vif", RingProtocol::Netif), ("vbd", RingProtocol::Blkif)];

/// How to start the guest side.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Timeouts and periods of the bus and services.
    pub config: GuestConfig,
    /// A host agent answers `@host` requests on the serial line (test
    /// images): the QEMU platform's suspend asks it to play the toolstack.
    pub host_agent: bool,
}

impl Setup {
    /// The interactive kernel: default timings; the serial line is the
    /// shell's (no host agent).
    pub fn interactive() -> Setup {
        Setup::default()
    }

    /// A test image booted by the runner's `xenbus` fixture.
    pub fn with_host_agent(config: GuestConfig) -> Setup {
        Setup {
            config,
            host_agent: true,
        }
    }
}

/// Why [`start`] failed.
#[derive(Debug)]
pub enum GuestError {
    /// The xenstore service did not start.
    Store(StoreError),
    /// The services or the bus did not start.
    Start(StartError),
    /// A driver could not be registered or the bus could not attach.
    Bus(BusError),
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "{e}"),
            Self::Start(e) => write!(f, "{e}"),
            Self::Bus(e) => write!(f, "xenbus: {e}"),
        }
    }
}

struct Running {
    guest: KernelGuest,
    power: Arc<KernelPower>,
}

/// The started guest side, for the kernel's life.
static RUNNING: Once<Running> = Once::new();
/// Serialises [`start`].
static STARTING: Mutex<()> = Mutex::new(());

/// Starts the xenstore service if needed, then the bus and the guest
/// services, binds the sample frontend to [`SAMPLE_CLASSES`] and attaches
/// the bus (returns once the devices present were probed). Idempotent:
/// later calls return the first guest, whatever their `setup`. Thread
/// context.
pub fn start(setup: Setup) -> Result<&'static KernelGuest, GuestError> {
    let _starting = STARTING.lock();
    if let Some(running) = RUNNING.get() {
        return Ok(&running.guest);
    }
    crate::xenstore_service::init().map_err(GuestError::Store)?;
    let xs = crate::xenstore_service::client().map_err(GuestError::Store)?;
    let power = Arc::new(KernelPower::new(setup.host_agent));
    let os = GuestOs {
        power: power.clone(),
        info: Arc::new(KernelInfo),
        resources: device_resources(),
    };
    let guest = Guest::start(KernelPlatform, xs, os, setup.config).map_err(GuestError::Start)?;
    for (class, protocol) in SAMPLE_CLASSES {
        guest
            .bus()
            .register_driver(class, Arc::new(SampleFrontend::with_protocol(protocol)))
            .map_err(GuestError::Bus)?;
    }
    guest.bus().attach().map_err(GuestError::Bus)?;
    log::info!(
        "xenbus: attached, {} device(s); services: control/shutdown, data/, vm-data/",
        guest.bus().devices().len()
    );
    Ok(&RUNNING.call_once(|| Running { guest, power }).guest)
}

/// Grants and event channels: Xen's if we run on Xen and its grant table
/// could be placed, else a clear "unsupported" naming the platform.
fn device_resources() -> Arc<dyn DeviceResources> {
    match crate::hypervisor::guest() {
        Some(xen) => match XenResources::setup(xen) {
            Ok(resources) => resources,
            Err(e) => {
                log::error!("xen: no grant table ({e}); frontends get no data path");
                Arc::new(UnsupportedResources {
                    platform: "Xen guest without a grant table",
                })
            }
        },
        None => Arc::new(UnsupportedResources {
            platform: "QEMU test platform",
        }),
    }
}

/// The guest side, once [`start`] succeeded.
pub fn guest() -> Option<&'static KernelGuest> {
    RUNNING.get().map(|r| &r.guest)
}

/// The kernel's power control, once [`start`] succeeded (the shell's
/// `poweroff`; tests read its suspend counters).
pub fn power() -> Option<&'static KernelPower> {
    RUNNING.get().map(|r| &*r.power)
}

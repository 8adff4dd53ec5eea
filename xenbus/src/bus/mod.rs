//! The bus: finds the devices under `device/<class>/<id>`, binds them to
//! the drivers registered for their class, and follows their other ends.
//!
//! # Threading model
//!
//! - **xenstore callback threads** run the bus's watch callbacks (each
//!   watch on its own, so a driver's slow watch never delays them). They
//!   never wait for the bus: the watch on `device` only queues a rescan;
//!   the watch on each other end's `state` reads that node (one request),
//!   records it in the device (waking [`Device::wait_for_otherend`]
//!   callers) and queues the change for the driver.
//! - The worker's queue is bounded whatever the peers send: changes under
//!   `device` merge into one pending rescan (of up to 64 paths, then of
//!   everything), and a device's other-end changes into one pending state
//!   (the newest; the driver may miss transient states, as [`Driver`]
//!   allows). The rest are items of callers waiting on the bus; see
//!   [`Bus::queued_work`].
//! - The **bus worker** (one thread, started by [`Bus::new`]) does
//!   everything else in order: enumeration, probe, attach, detach,
//!   `otherend_changed`, suspend and resume. All driver callbacks run on
//!   it, one at a time, so a driver never races itself.
//! - Any thread may call the [`Bus`] and [`Device`] methods.
//!
//! # Locks
//!
//! Every lock of the bus (the registry, the mailbox, each device's state,
//! its watch slot and driver data, the problem log) is a short-hold
//! platform [`Lock`] taken alone: none is held while another is taken, a
//! xenstore request is made, a callback runs or a wait queue is woken.
//! So there is no lock order to get wrong.

mod worker;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use xenstore::{Client, Lock, Platform, Watch, WatchEvent};

use crate::device::Device;
use crate::driver::Driver;
use crate::error::BusError;
use crate::otherend::{Otherend, OtherendState};
use crate::resources::DeviceResources;
use crate::state::XenbusState;
use crate::sync::{Completion, Mailbox};

pub(crate) use worker::Work;

/// How many errors [`Bus::problems`] keeps (the oldest go first).
const PROBLEM_LOG: usize = 32;

/// How many changed paths a pending rescan names before it becomes a
/// rescan of everything.
const RESCAN_PATHS: usize = 64;

/// What [`Bus::suspend_and_resume`]'s platform step reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendOutcome {
    /// The VM ran again after a real suspend (possibly migrated: the store
    /// may be a fresh one). Drivers are resumed.
    Resumed,
    /// The suspend was cancelled (Xen's `SCHEDOP_shutdown` returned 1): we
    /// are on the same host and store. Drivers are not resumed.
    Cancelled,
}

/// The platform step of a suspend, run on the bus worker between the
/// drivers' suspend and resume (see [`Bus::suspend_and_resume`]).
pub type PlatformSuspend = Box<dyn FnOnce() -> Result<SuspendOutcome, BusError> + Send>;

/// A device as [`Bus::devices`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `device/<class>/<id>`.
    pub nodename: String,
    /// The class.
    pub class: String,
    /// Our state as we last wrote it.
    pub state: XenbusState,
    /// The other end, once read.
    pub otherend: Option<Otherend>,
    /// The other end's state as last read.
    pub otherend_state: Option<OtherendState>,
    /// The class of the driver bound to it (`None`: unbound).
    pub driver: Option<String>,
    /// The last error reported for it.
    pub last_error: Option<BusError>,
}

/// Drivers by class and devices by nodename.
pub(crate) struct Registry<P: Platform> {
    pub(crate) drivers: BTreeMap<String, Arc<dyn Driver<P>>>,
    pub(crate) devices: BTreeMap<String, Device<P>>,
}

/// Errors not tied to a bound device (e.g. garbage in a new device's
/// `state`), newest last, and how many older ones were dropped.
#[derive(Default)]
struct ProblemLog {
    entries: VecDeque<(String, BusError)>,
    dropped: u64,
}

/// Changes under the root that the worker has not looked at yet.
#[derive(Default)]
pub(crate) struct PendingRescans {
    /// A [`Work::Rescan`] for them is queued.
    queued: bool,
    /// Look at everything (a lost event, attach, resume, or more than
    /// [`RESCAN_PATHS`] paths).
    pub(crate) all: bool,
    /// The changed paths (relative to our home), at most [`RESCAN_PATHS`].
    pub(crate) paths: BTreeSet<String>,
}

pub(crate) struct BusShared<P: Platform> {
    pub(crate) xs: Client<P>,
    pub(crate) resources: Arc<dyn DeviceResources>,
    /// The directory devices live in, relative to our home (`device`).
    pub(crate) root: String,
    /// Guards the driver and device tables.
    pub(crate) registry: P::Lock<Registry<P>>,
    /// The worker's queue. Bounded by construction: at most one
    /// [`Work::Rescan`], one [`Work::Otherend`] per device, and one item per
    /// caller waiting on the bus (bind, suspend, settle, stop).
    pub(crate) work: Mailbox<P, Work<P>>,
    /// Guards the changes a queued [`Work::Rescan`] is for.
    pub(crate) rescans: P::Lock<PendingRescans>,
    /// The watch on `root`; set by `attach`, taken by `stop`.
    root_watch: P::Lock<Option<Watch<P>>>,
    /// Guards the problem log.
    problems: P::Lock<ProblemLog>,
}

impl<P: Platform> BusShared<P> {
    /// Records and logs an error about `nodename` that has no device to
    /// keep it.
    pub(crate) fn problem(&self, nodename: &str, err: BusError) {
        log::warn!("xenbus: {nodename}: {err}");
        self.problems.with(|log| {
            if log.entries.len() == PROBLEM_LOG {
                log.entries.pop_front();
                log.dropped += 1;
            }
            log.entries.push_back((String::from(nodename), err));
        });
    }

    /// Asks the worker to look at `changed` (`None`: everything), merged
    /// into the rescan already queued if there is one.
    /// Errors: the bus is stopped.
    pub(crate) fn rescan(&self, changed: Option<String>) -> Result<(), BusError> {
        let queue = self.rescans.with(|r| {
            match changed {
                Some(_) if r.all => {}
                Some(path) if r.paths.len() < RESCAN_PATHS || r.paths.contains(&path) => {
                    r.paths.insert(path);
                }
                // Too many, or a lost event (`None`): look at everything.
                _ => {
                    r.all = true;
                    r.paths.clear();
                }
            }
            !core::mem::replace(&mut r.queued, true)
        });
        if queue && self.work.push(Work::Rescan).is_err() {
            return Err(BusError::InvalidState("the bus is stopped"));
        }
        Ok(())
    }

    pub(crate) fn driver_for(&self, class: &str) -> Option<Arc<dyn Driver<P>>> {
        self.registry.with(|r| r.drivers.get(class).cloned())
    }

    fn stop(&self) {
        let watch = self.root_watch.with(Option::take);
        if let Some(w) = watch {
            let _ = w.unwatch();
        }
        let done = Arc::new(Completion::new());
        if self.work.push(Work::Stop(Arc::clone(&done))).is_ok() {
            done.wait(None);
        }
    }
}

/// Stops the bus when the last [`Bus`] clone is dropped.
struct Handle<P: Platform> {
    shared: Arc<BusShared<P>>,
}

impl<P: Platform> Drop for Handle<P> {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// The XenBus frontend bus of this domain. Clone it freely.
pub struct Bus<P: Platform> {
    handle: Arc<Handle<P>>,
}

impl<P: Platform> Clone for Bus<P> {
    fn clone(&self) -> Self {
        Bus {
            handle: Arc::clone(&self.handle),
        }
    }
}

/// Tunables of a [`Bus`].
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// The directory under our home that holds `<class>/<id>` device
    /// nodes. Default `device` (frontends).
    pub root: String,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            root: String::from("device"),
        }
    }
}

impl<P: Platform> Bus<P> {
    /// A bus on `xs`, with its worker thread started on `platform`. No
    /// device is looked at before [`Bus::attach`].
    ///
    /// Errors: [`BusError::Spawn`] if the worker cannot start.
    pub fn new(
        platform: &P,
        xs: Client<P>,
        resources: Arc<dyn DeviceResources>,
        config: BusConfig,
    ) -> Result<Bus<P>, BusError> {
        let shared = Arc::new(BusShared {
            xs,
            resources,
            root: config.root,
            registry: Lock::new(Registry {
                drivers: BTreeMap::new(),
                devices: BTreeMap::new(),
            }),
            work: Mailbox::new(),
            rescans: Lock::new(PendingRescans::default()),
            root_watch: Lock::new(None),
            problems: Lock::new(ProblemLog::default()),
        });
        let worker = Arc::clone(&shared);
        platform
            .spawn("xenbus-worker", Box::new(move || worker::run(&worker)))
            .map_err(|_| BusError::Spawn("xenbus worker"))?;
        Ok(Bus {
            handle: Arc::new(Handle { shared }),
        })
    }

    fn shared(&self) -> &Arc<BusShared<P>> {
        &self.handle.shared
    }

    /// Registers `driver` for devices of `class`. Devices of that class
    /// already found are bound to it on the worker (so this may be called
    /// before or after [`Bus::attach`]).
    ///
    /// Errors: [`BusError::InvalidState`] if `class` already has a driver.
    pub fn register_driver(&self, class: &str, driver: Arc<dyn Driver<P>>) -> Result<(), BusError> {
        let added = self.shared().registry.with(|r| {
            if r.drivers.contains_key(class) {
                return false;
            }
            r.drivers.insert(String::from(class), driver);
            true
        });
        if !added {
            return Err(BusError::InvalidState(
                "a driver is already registered for this class",
            ));
        }
        self.push(Work::Bind(String::from(class)))
    }

    /// Enumerates the devices present now and watches `root` for devices
    /// that appear or disappear later. Returns once the devices present
    /// were probed and attached (driver callbacks included).
    ///
    /// Errors: the watch could not be registered; [`BusError::InvalidState`]
    /// if already attached.
    pub fn attach(&self) -> Result<(), BusError> {
        let shared = self.shared();
        if shared.root_watch.with(|w| w.is_some()) {
            return Err(BusError::InvalidState("the bus is already attached"));
        }
        let weak = Arc::downgrade(shared);
        let watch = shared
            .xs
            .watch(&shared.root, move |event: &WatchEvent| {
                let Some(bus) = weak.upgrade() else { return };
                // A lost event (queue overflow) means: look at everything.
                let path = event.path().map(String::from);
                let _ = bus.rescan(path);
            })
            .map_err(|e| BusError::store("watching the device directory", e))?;
        shared.root_watch.with(|w| *w = Some(watch));
        // The watch's first event queues a rescan too; this one makes
        // `attach` return only once it is done.
        shared.rescan(None)?;
        self.settle()
    }

    /// Waits until the worker has handled everything queued before this
    /// call. Errors: [`BusError::InvalidState`] if the bus is stopped.
    pub fn settle(&self) -> Result<(), BusError> {
        let done = Arc::new(Completion::new());
        self.push(Work::Barrier(Arc::clone(&done)))?;
        done.wait(None);
        Ok(())
    }

    /// Suspends the bus around `platform_suspend` (which suspends the
    /// xenstore client, the VM, and resumes the client): on the worker,
    /// calls each bound driver's `suspend`, stops watching the other ends,
    /// runs `platform_suspend`, then, if the VM resumed, re-reads each
    /// device's other end, calls the drivers' `resume` and watches the
    /// other ends again (their first events follow as `otherend_changed`).
    /// A rescan of `root` follows, so devices that vanished meanwhile are
    /// detached and new ones probed.
    ///
    /// Must not be called from a driver callback (it would wait for
    /// itself). Errors: `platform_suspend`'s; [`BusError::InvalidState`]
    /// if the bus is stopped.
    pub fn suspend_and_resume(
        &self,
        platform_suspend: PlatformSuspend,
    ) -> Result<SuspendOutcome, BusError> {
        let done = Arc::new(Completion::new());
        self.push(Work::Suspend(Arc::clone(&done), platform_suspend))?;
        done.wait(None).unwrap_or(Err(BusError::InvalidState(
            "the bus stopped during suspend",
        )))
    }

    /// The device at `nodename` (`device/<class>/<id>`), if the bus knows it.
    pub fn device(&self, nodename: &str) -> Option<Device<P>> {
        self.shared()
            .registry
            .with(|r| r.devices.get(nodename).cloned())
    }

    /// Every device the bus knows, bound or not, by nodename.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        let devices: Vec<Device<P>> = self
            .shared()
            .registry
            .with(|r| r.devices.values().cloned().collect());
        devices.iter().map(info).collect()
    }

    /// Recent errors about devices the bus could not take (newest last),
    /// and how many older ones were dropped to bound the log.
    pub fn problems(&self) -> (Vec<(String, BusError)>, u64) {
        self.shared()
            .problems
            .with(|log| (log.entries.iter().cloned().collect(), log.dropped))
    }

    /// How many work items wait for the bus worker now. Bounded whatever
    /// the peers do: at most one rescan, one other-end change per device
    /// (a newer state replaces a queued one), and one item per caller
    /// waiting on the bus.
    pub fn queued_work(&self) -> usize {
        self.shared().work.len()
    }

    /// The xenstore client the bus runs on.
    pub fn store(&self) -> &Client<P> {
        &self.shared().xs
    }

    fn push(&self, work: Work<P>) -> Result<(), BusError> {
        self.shared()
            .work
            .push(work)
            .map_err(|_| BusError::InvalidState("the bus is stopped"))
    }
}

fn info<P: Platform>(dev: &Device<P>) -> DeviceInfo {
    dev.inner.state.with(|s| DeviceInfo {
        nodename: dev.inner.nodename.clone(),
        class: dev.inner.class.clone(),
        state: s.ours,
        otherend: s.otherend.clone(),
        otherend_state: s.seen.clone(),
        driver: s.driver.clone(),
        last_error: s.last_error.clone(),
    })
}

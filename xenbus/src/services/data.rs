//! The `data/` pool: what the guest tells the host about itself, under the
//! key names of the Xen guest agent (xe-guest-utilities' `xe-daemon`), so
//! a toolstack that reads the agent's keys reads ours:
//!
//! | key | value |
//! |---|---|
//! | `data/os_name` | pretty OS name, e.g. "Debian GNU/Linux 12 (bookworm)" |
//! | `data/os_distro` | short distribution id, e.g. "debian" |
//! | `data/os_majorver`, `data/os_minorver` | OS version |
//! | `data/os_uname` | kernel release/build (`uname -r`) |
//! | `data/meminfo_total`, `data/meminfo_free` | memory in KiB (free = available) |
//! | `data/uptime` | seconds since boot (ours: the agent has no such key) |
//! | `data/updated` | changes whenever the keys above change |
//!
//! The agent writes a wall-clock time to `data/updated`; a toolstack only
//! watches it for changes. We have no calendar clock, so ours is a count of
//! refreshes that changed something. As the agent does, only values that
//! changed since the last refresh are written (plain writes, no
//! transaction: one would arm the daemon's write-rate limiter).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use xenstore::{Client, Lock, Platform, Store};

use super::machine::{Handler, Machine, ServiceStatus, Timing};
use super::{DataConfig, SystemInfo, node};
use crate::error::ServiceError;

const NAME: &str = "data";
const DATA: &str = "data";

/// The figures a [`SystemInfo`] gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestInfo {
    /// Pretty OS name (`data/os_name`).
    pub os_name: String,
    /// Distribution id (`data/os_distro`).
    pub os_distro: String,
    /// Major version (`data/os_majorver`).
    pub os_majorver: String,
    /// Minor version (`data/os_minorver`).
    pub os_minorver: String,
    /// Kernel release/build (`data/os_uname`).
    pub os_uname: String,
    /// Seconds since boot (`data/uptime`).
    pub uptime_secs: u64,
    /// Total memory in KiB (`data/meminfo_total`).
    pub meminfo_total_kib: u64,
    /// Available memory in KiB (`data/meminfo_free`).
    pub meminfo_free_kib: u64,
}

impl GuestInfo {
    /// The `data/` keys and values, in the order they are written.
    pub fn keys(&self) -> Vec<(&'static str, String)> {
        alloc::vec![
            ("os_name", self.os_name.clone()),
            ("os_distro", self.os_distro.clone()),
            ("os_majorver", self.os_majorver.clone()),
            ("os_minorver", self.os_minorver.clone()),
            ("os_uname", self.os_uname.clone()),
            ("meminfo_total", format!("{}", self.meminfo_total_kib)),
            ("meminfo_free", format!("{}", self.meminfo_free_kib)),
            ("uptime", format!("{}", self.uptime_secs)),
        ]
    }
}

#[derive(Default)]
struct Published {
    /// What the store holds, as far as we know.
    values: BTreeMap<&'static str, String>,
    /// Refreshes that changed something (the `data/updated` value).
    updates: u64,
}

pub(crate) struct DataHandler<P: Platform> {
    xs: Client<P>,
    info: Arc<dyn SystemInfo>,
    /// Guards the cache of published values. Taken alone, never across a
    /// request. Refreshes never overlap (the service runs one handler at a
    /// time, even past its timeout).
    published: P::Lock<Published>,
}

impl<P: Platform> Handler for DataHandler<P> {
    type Request = ();

    fn name(&self) -> &'static str {
        NAME
    }

    fn receive(&self) -> Result<Option<()>, ServiceError> {
        Ok(Some(())) // The trigger (period, resume) is the request.
    }

    fn handle(&self, (): ()) -> Result<(), ServiceError> {
        let info = self.info.guest_info();
        let known = self.published.with(|p| p.values.clone());
        let mut first_error = None;
        let mut changed = 0;
        for (key, value) in info.keys() {
            if known.get(key) == Some(&value) {
                continue;
            }
            match self.xs.write(&node(DATA, key), &value) {
                Ok(()) => {
                    self.published.with(|p| p.values.insert(key, value));
                    changed += 1;
                }
                Err(e) => {
                    first_error.get_or_insert(ServiceError::store(NAME, "publishing", e));
                }
            }
        }
        if changed > 0 {
            let updates = self.published.with(|p| {
                p.updates += 1;
                p.updates
            });
            if let Err(e) = self.xs.write_display(&node(DATA, "updated"), updates) {
                first_error.get_or_insert(ServiceError::store(NAME, "writing data/updated", e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn describe(&self, (): &()) -> String {
        String::from("refresh")
    }
}

/// The `data/` publisher. Clone to share; stops with its last clone.
pub struct DataPublisher<P: Platform> {
    handle: Arc<Stopper<P>>,
}

struct Stopper<P: Platform> {
    machine: Machine<P, DataHandler<P>>,
}

impl<P: Platform> Drop for Stopper<P> {
    fn drop(&mut self) {
        self.machine.stop();
    }
}

impl<P: Platform> Clone for DataPublisher<P> {
    fn clone(&self) -> Self {
        DataPublisher {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<P: Platform> DataPublisher<P> {
    /// Starts publishing: once now, then every `config.period`.
    /// Errors: [`ServiceError::Spawn`].
    pub fn start(
        platform: Arc<P>,
        xs: Client<P>,
        info: Arc<dyn SystemInfo>,
        config: DataConfig,
    ) -> Result<DataPublisher<P>, ServiceError> {
        let handler = DataHandler {
            xs,
            info,
            published: Lock::new(Published::default()),
        };
        let timing = Timing {
            timeout: config.handler_timeout,
            period: Some(config.period),
        };
        let machine = Machine::start(platform, handler, timing, "xenbus-data")?;
        machine.trigger();
        Ok(DataPublisher {
            handle: Arc::new(Stopper { machine }),
        })
    }

    /// Refreshes now (or right after the refresh under way).
    pub fn refresh(&self) {
        self.handle.machine.trigger();
    }

    /// Forgets what was published and publishes everything again (after a
    /// migration the store is a new, empty one).
    pub fn republish(&self) {
        self.handle
            .machine
            .inner
            .handler
            .published
            .with(|p| p.values.clear());
        self.refresh();
    }

    /// The service's state and counters.
    pub fn status(&self) -> ServiceStatus {
        self.handle.machine.status()
    }
}

//! The `vm-data/` pool: keys the host (XenServer's xapi, from the VM's
//! `xenstore-data`) writes under the guest's `vm-data`, for drivers and the
//! shell to read. A watch on `vm-data` triggers a re-read of the whole
//! subtree into a snapshot, which replaces the previous one whole: readers
//! never see a snapshot being built. The re-read is not a transaction, so
//! one that races a host update may catch part of it; the update's own
//! watch event then brings another re-read, which sees all of it.
//!
//! Keys are paths relative to `vm-data` (`"key"`, `"dir/key"`); only
//! leaves (nodes without children) are kept. A subtree of more than
//! [`VM_DATA_LIMIT`] nodes is refused ([`ServiceError::TooLarge`]) and
//! the previous snapshot kept.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use xenstore::{Client, Lock, Platform, Store, WaitQueue, Watch, WatchEvent, XsError, path};

use super::ServiceConfig;
use super::machine::{Handler, Machine, ServiceStatus, Timing};
use crate::error::ServiceError;

const NAME: &str = "vm-data";
const ROOT: &str = "vm-data";

/// The most nodes the `vm-data` subtree may have.
pub const VM_DATA_LIMIT: usize = 1024;

#[derive(Default)]
struct Snapshot {
    values: Arc<BTreeMap<String, Vec<u8>>>,
    /// Bumped at each re-read that changed the values.
    generation: u64,
}

pub(crate) struct VmDataHandler<P: Platform> {
    xs: Client<P>,
    /// Guards the current snapshot. Taken alone.
    snapshot: P::Lock<Snapshot>,
    /// Woken when the snapshot changes.
    changed: P::WaitQueue,
}

impl<P: Platform> VmDataHandler<P> {
    /// Reads every leaf under `vm-data` (listing first, then the values
    /// pipelined). A missing `vm-data` is an empty pool.
    fn read_tree(&self) -> Result<BTreeMap<String, Vec<u8>>, ServiceError> {
        let store_err = |e| ServiceError::store(NAME, "reading vm-data", e);
        let mut leaves = Vec::new();
        let mut pending = alloc::vec![String::new()];
        let mut seen = 0usize;
        while let Some(rel) = pending.pop() {
            let full = path::join(ROOT, &rel);
            let children = match self.xs.directory(&full) {
                Ok(children) => children,
                Err(XsError::Enoent(_)) => Vec::new(), // Removed meanwhile.
                Err(e) => return Err(store_err(e)),
            };
            seen += children.len();
            if seen > VM_DATA_LIMIT {
                return Err(ServiceError::TooLarge {
                    service: NAME,
                    path: String::from(ROOT),
                    limit: VM_DATA_LIMIT,
                });
            }
            pending.extend(children.iter().map(|c| match rel.as_str() {
                "" => c.clone(),
                dir => path::join(dir, c),
            }));
            if children.is_empty() && !rel.is_empty() {
                leaves.push(rel);
            }
        }
        let full: Vec<String> = leaves.iter().map(|l| path::join(ROOT, l)).collect();
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let mut values = BTreeMap::new();
        for (key, value) in leaves.into_iter().zip(self.xs.read_many(&refs)) {
            match value {
                Ok(v) => drop(values.insert(key, v)),
                Err(XsError::Enoent(_)) => {} // Removed meanwhile.
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(values)
    }
}

impl<P: Platform> Handler for VmDataHandler<P> {
    type Request = ();

    fn name(&self) -> &'static str {
        NAME
    }

    fn receive(&self) -> Result<Option<()>, ServiceError> {
        Ok(Some(())) // A change under vm-data: re-read it.
    }

    fn handle(&self, (): ()) -> Result<(), ServiceError> {
        let values = self.read_tree()?;
        // Key names only (values may be private): enough for a host to see
        // that its write arrived, e.g. on a PV console with no shell.
        let keys: Vec<String> = values.keys().cloned().collect();
        let changed = self.snapshot.with(|s| {
            if *s.values == values {
                return None;
            }
            s.values = Arc::new(values);
            s.generation += 1;
            Some(s.generation)
        });
        if let Some(generation) = changed {
            log::info!(
                "xenbus: vm-data: generation {generation}, keys [{}]",
                keys.join(", ")
            );
            self.changed.wake_all();
        }
        Ok(())
    }

    fn describe(&self, (): &()) -> String {
        String::from("re-read")
    }
}

/// The host's `vm-data/` pool, kept current. Clone to share; stops with
/// its last clone.
pub struct VmData<P: Platform> {
    handle: Arc<Stopper<P>>,
}

struct Stopper<P: Platform> {
    machine: Machine<P, VmDataHandler<P>>,
    /// The watch on `vm-data`; taken alone.
    watch: P::Lock<Option<Watch<P>>>,
}

impl<P: Platform> Drop for Stopper<P> {
    fn drop(&mut self) {
        let watch = self.watch.with(Option::take);
        drop(watch);
        self.machine.stop();
    }
}

impl<P: Platform> Clone for VmData<P> {
    fn clone(&self) -> Self {
        VmData {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<P: Platform> VmData<P> {
    /// Starts the service and watches `vm-data` (whose first event reads
    /// the pool). Errors: [`ServiceError::Spawn`]; the watch failed.
    pub fn start(
        platform: Arc<P>,
        xs: Client<P>,
        config: ServiceConfig,
    ) -> Result<VmData<P>, ServiceError> {
        let handler = VmDataHandler {
            xs: xs.clone(),
            snapshot: Lock::new(Snapshot::default()),
            changed: WaitQueue::new(),
        };
        let timing = Timing {
            timeout: config.handler_timeout,
            period: None,
        };
        let machine = Machine::start(platform, handler, timing, "xenbus-vmdata")?;
        let trigger = machine.clone();
        let watch = xs
            .watch(ROOT, move |_: &WatchEvent| trigger.trigger())
            .map_err(|e| {
                machine.stop();
                ServiceError::store(NAME, "watching vm-data", e)
            })?;
        Ok(VmData {
            handle: Arc::new(Stopper {
                machine,
                watch: Lock::new(Some(watch)),
            }),
        })
    }

    fn handler(&self) -> &VmDataHandler<P> {
        &self.handle.machine.inner.handler
    }

    /// The value of `key` (relative to `vm-data`) as last read.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.handler().snapshot.with(|s| s.values.get(key).cloned())
    }

    /// Every key and value as last read (a consistent snapshot).
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Vec<u8>>> {
        self.handler().snapshot.with(|s| Arc::clone(&s.values))
    }

    /// How many times the pool changed since the start.
    pub fn generation(&self) -> u64 {
        self.handler().snapshot.with(|s| s.generation)
    }

    /// Waits until the generation passes `seen` or `timeout` ends;
    /// returns the generation then.
    pub fn wait_changed(&self, seen: u64, timeout: Duration) -> u64 {
        let handler = self.handler();
        let mut now = seen;
        let mut moved = || {
            now = handler.snapshot.with(|s| s.generation);
            now != seen
        };
        handler.changed.wait_until(&mut moved, Some(timeout));
        now
    }

    /// Re-reads the pool now (e.g. after a resume on a new store).
    pub fn refresh(&self) {
        self.handle.machine.trigger();
    }

    /// The service's state and counters.
    pub fn status(&self) -> ServiceStatus {
        self.handle.machine.status()
    }
}

//! The toolstack's side of XenBus for the `xenbus` fixture, on the real
//! daemon: creates and removes a guest's devices as libxl does, plays their
//! backends (by itself, or one state at a time when a test asks), and plays
//! a suspend as `xl save`/`xl migrate` would.
//!
//! - **Devices** are created in one dom0 transaction, as libxl's
//!   `libxl__device_generic_add`: the backend directory
//!   `/local/domain/0/backend/<class>/<domid>/<id>` with permissions
//!   `n0 r<domid>` (the frontend must read it, or its probe fails with
//!   `NoOtherend`), then `frontend`, `frontend-id`, `online`, `state` = 1;
//!   the frontend directory `device/<class>/<id>` with `n<domid> r0`, then
//!   `backend`, `backend-id`, `state` = 1. Permissions are set on the
//!   directories before their nodes are written, so the nodes inherit them.
//! - **Backends** of `auto` devices are played by [`BackendPlayer`]
//!   ([`super::backend`]); `manual` devices change state only when asked
//!   (`backend-state`).
//! - **Suspend**: `migrate` (the default) replaces the daemon by a fresh
//!   one (empty store), re-introduces the domain and recreates its devices,
//!   then answers `migrated`; `checkpoint` leaves everything as it is and
//!   answers `cancelled` (Xen's `SCHEDOP_shutdown` returning 1).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testbed::Testbed;
use xenstore::{Access, Client, Permissions, StdPlatform, Store};

use super::backend::{BackendMode, BackendPlayer, Devices, backend_path, frontend_path, state};
use super::verbs::lock;

/// What the toolstack does when the guest suspends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendMode {
    /// Fresh daemon, domain re-introduced, devices recreated: `migrated`.
    Migrate,
    /// Nothing changes: `cancelled`.
    Checkpoint,
}

/// The toolstack of one domain.
pub struct Toolstack {
    testbed: Arc<Testbed>,
    domid: u32,
    devices: Devices,
    /// Errors of the backend player (a failed step is never silent).
    errors: Arc<Mutex<Vec<String>>>,
    /// Replaced on migration (its connection dies with the old daemon).
    player: Mutex<Option<BackendPlayer>>,
    suspend_mode: Mutex<SuspendMode>,
    suspends: AtomicU64,
}

impl Toolstack {
    /// A toolstack for `domid` (introduced already), with its backend
    /// player watching.
    pub fn start(testbed: Arc<Testbed>, domid: u32) -> Result<Toolstack, String> {
        let toolstack = Toolstack {
            testbed,
            domid,
            devices: Arc::default(),
            errors: Arc::default(),
            player: Mutex::new(None),
            suspend_mode: Mutex::new(SuspendMode::Migrate),
            suspends: AtomicU64::new(0),
        };
        toolstack.start_player()?;
        Ok(toolstack)
    }

    fn start_player(&self) -> Result<(), String> {
        let player = BackendPlayer::start(
            &self.testbed,
            self.domid,
            Arc::clone(&self.devices),
            Arc::clone(&self.errors),
        )?;
        *lock(&self.player) = Some(player);
        Ok(())
    }

    fn dom0(&self) -> Result<Client<StdPlatform>, String> {
        Client::connect(self.testbed.socket_path()).map_err(|e| format!("dom0 connection: {e}"))
    }

    /// Creates `device/<class>/<id>` and its backend (see the module doc).
    pub fn add_device(&self, class: &str, id: &str, mode: BackendMode) -> Result<(), String> {
        // Recorded first: the player must know the device when the
        // creation's watch event arrives.
        lock(&self.devices).insert((class.into(), id.into()), mode);
        let created = self.create_nodes(class, id);
        if created.is_err() {
            lock(&self.devices).remove(&(class.into(), id.into()));
        }
        created
    }

    fn create_nodes(&self, class: &str, id: &str) -> Result<(), String> {
        let d = self.domid;
        let domid = u16::try_from(d).map_err(|_| format!("domid {d} out of range"))?;
        let (back, front) = (backend_path(d, class, id), frontend_path(d, class, id));
        self.dom0()?
            .transaction(|t| {
                t.mkdir(&back)?;
                t.set_permissions(
                    &back,
                    &Permissions::new(0, Access::None).grant(domid, Access::Read),
                )?;
                t.write(&format!("{back}/frontend"), &front)?;
                t.write_display(&format!("{back}/frontend-id"), d)?;
                t.write(&format!("{back}/online"), "1")?;
                t.write_display(&format!("{back}/state"), state::INITIALISING)?;
                t.mkdir(&front)?;
                t.set_permissions(
                    &front,
                    &Permissions::new(domid, Access::None).grant(0, Access::Read),
                )?;
                t.write(&format!("{front}/backend"), &back)?;
                t.write(&format!("{front}/backend-id"), "0")?;
                t.write_display(&format!("{front}/state"), state::INITIALISING)
            })
            .map_err(|e| format!("creating {class}/{id}: {e}"))
    }

    /// Removes the frontend and backend directories in one transaction
    /// (an unplug whose orderly close is over, or `xl device-detach -f`).
    pub fn remove_device(&self, class: &str, id: &str) -> Result<(), String> {
        lock(&self.devices).remove(&(class.into(), id.into()));
        let d = self.domid;
        self.dom0()?
            .transaction(|t| {
                t.rm(&frontend_path(d, class, id))?;
                t.rm(&backend_path(d, class, id))
            })
            .map_err(|e| format!("removing {class}/{id}: {e}"))
    }

    /// Removes only the backend directory (the backend goes away).
    pub fn remove_backend(&self, class: &str, id: &str) -> Result<(), String> {
        self.dom0()?
            .rm(&backend_path(self.domid, class, id))
            .map_err(|e| format!("removing backend {class}/{id}: {e}"))
    }

    /// Writes the backend's state (a `manual` backend's next step).
    pub fn set_backend_state(&self, class: &str, id: &str, state: u32) -> Result<(), String> {
        let node = backend_path(self.domid, class, id) + "/state";
        self.dom0()?
            .write_display(&node, state)
            .map_err(|e| format!("writing {node}: {e}"))
    }

    /// Waits until the frontend's `state` reads `want` (polled over a dom0
    /// connection). Errors after `timeout`, with the last value seen.
    pub fn wait_front_state(
        &self,
        class: &str,
        id: &str,
        want: u32,
        timeout: Duration,
    ) -> Result<(), String> {
        let node = frontend_path(self.domid, class, id) + "/state";
        let xs = self.dom0()?;
        let deadline = Instant::now() + timeout;
        loop {
            let seen = xs.read_optional(&node).map_err(|e| e.to_string())?;
            let text = seen.as_deref().map(String::from_utf8_lossy);
            if text.as_deref().map(str::trim) == Some(want.to_string().as_str()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{node} is {text:?} after {timeout:?}, not {want}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sets what the next suspends do.
    pub fn set_suspend_mode(&self, mode: SuspendMode) {
        *lock(&self.suspend_mode) = mode;
    }

    /// Suspends played so far.
    pub fn suspends(&self) -> u64 {
        self.suspends.load(Ordering::SeqCst)
    }

    /// Plays the guest's suspend (see [`SuspendMode`]); returns what the
    /// guest's hypercall would: `migrated` or `cancelled`.
    pub fn suspend(&self) -> Result<&'static str, String> {
        self.suspends.fetch_add(1, Ordering::SeqCst);
        match *lock(&self.suspend_mode) {
            SuspendMode::Checkpoint => Ok("cancelled"),
            SuspendMode::Migrate => self.migrate().map(|()| "migrated"),
        }
    }

    /// A fresh daemon with the domain re-introduced (its home recreated by
    /// the testbed), then its devices recreated and their backends played
    /// again, as the destination host's toolstack does.
    pub fn migrate(&self) -> Result<(), String> {
        // The old player's connection dies with the old daemon.
        lock(&self.player).take();
        self.testbed.restart_daemon().map_err(|e| e.to_string())?;
        self.start_player()?;
        let devices: Vec<((String, String), BackendMode)> = lock(&self.devices)
            .iter()
            .map(|(k, m)| (k.clone(), *m))
            .collect();
        for ((class, id), mode) in devices {
            self.add_device(&class, &id, mode)?;
        }
        Ok(())
    }

    /// The values written to nodes whose path ends with `suffix`, in the
    /// order the daemon received them (its `-T` trace: `IN ... WRITE (path
    /// value)`), by any connection: the host's view of a state walk.
    pub fn traced_writes(&self, suffix: &str) -> Result<Vec<String>, String> {
        let trace = self
            .testbed
            .trace_path()
            .ok_or("the daemon runs without a trace")?;
        let text =
            std::fs::read_to_string(trace).map_err(|e| format!("{}: {e}", trace.display()))?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("IN "))
            .filter_map(|l| l.split_once(" WRITE (")?.1.strip_suffix(')'))
            .filter_map(|body| {
                // The payload's NUL separators are traced as blanks.
                let (path, value) = body.split_once(' ')?;
                path.ends_with(suffix).then(|| value.trim_end().to_string())
            })
            .collect())
    }

    /// The backend player's errors so far.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    /// The devices and who plays them, for a failure report.
    pub fn describe(&self) -> String {
        let devices: Vec<String> = lock(&self.devices)
            .iter()
            .map(|((c, i), m)| format!("{c}/{i} ({m:?})"))
            .collect();
        format!(
            "devices: {}; suspends played: {}",
            devices.join(", "),
            self.suspends()
        )
    }
}

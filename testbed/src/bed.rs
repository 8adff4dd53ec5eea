//! [`Testbed`]: one real xenstored on a private socket and directory, with
//! the toolstack's view (socket, CLI, introducing domains) and the means to
//! restart the daemon under live domains.

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};

use crate::daemon::{DaemonConfig, DaemonProcess};
use crate::domain::Domain;
use crate::error::{Error, Result};
use crate::event::GuestEventChannel;
use crate::fetch::{Xenstored, xenstored};
use crate::layout::InstanceDir;
use crate::options::{Options, Quota};
use crate::page::SharedPage;
use crate::toolstack::{self, DomainConfig, REQUEST_TIMEOUT};
use crate::wire::{SocketClient, nul_join, ty};

/// Xen's VIRQ_DOM_EXC: "a domain died", which makes xenstored look.
const VIRQ_DOM_EXC: u32 = 3;
/// Largest domid a guest can have (DOMID_FIRST_RESERVED - 1).
const MAX_GUEST_DOMID: u32 = 0x7fef;

/// What a xenstore-* tool printed.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// The command line, for messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl CliOutput {
    /// Its stdout if it exited 0, else [`Error::CliFailed`].
    pub fn into_stdout(self) -> Result<String> {
        if self.status.success() {
            Ok(self.stdout)
        } else {
            Err(Error::CliFailed {
                command: self.command,
                status: self.status,
                stderr: self.stderr,
            })
        }
    }
}

/// What the fake xc_domain_getinfo reports for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainState {
    /// Alive (what introduce_domain sets).
    Running,
    /// Being destroyed (`dying`).
    Dying,
    /// Shut down (`shutdown`, reason poweroff).
    Shutdown,
    /// Crashed (`shutdown` + `crashed`).
    Crashed,
    /// Destroyed: not reported at all.
    Gone,
}

/// One real xenstored with its own socket and directory.
///
/// All methods take `&self`; share a testbed across threads by reference.
/// Dropping it stops the daemon (SIGTERM, then SIGKILL) and removes the
/// directory. The daemon also dies with this process if it is killed.
#[derive(Debug)]
pub struct Testbed {
    /// The running daemon; `None` after a failed restart.
    /// Lock order: `daemon` before `domains`.
    daemon: Mutex<Option<DaemonProcess>>,
    /// Every domain introduced and not released, in order, for
    /// re-introduction by [`Testbed::restart_daemon`].
    domains: Mutex<Vec<DomainConfig>>,
    config: DaemonConfig,
    keep_on_panic: bool,
    /// Declared last: removed after the daemon has stopped.
    dir: InstanceDir,
}

impl Testbed {
    /// Starts a daemon with [`Options::default`].
    pub fn start() -> Result<Self> {
        Self::with_options(Options::default())
    }

    /// Locates (or fetches) xenstored, prepares the directory and starts
    /// the daemon; returns once its socket accepts connections. Fails with
    /// the daemon's own output if it does not come up.
    pub fn with_options(options: Options) -> Result<Self> {
        let binary = xenstored()?.clone();
        let dir = match &options.state_dir {
            Some(path) => InstanceDir::use_existing(path)?,
            None => InstanceDir::create_private()?,
        };
        // dom0's ring page (behind /proc/xen/xsd_kva).
        let dom0_page = dir.page(0);
        std::fs::write(&dom0_page, vec![0u8; crate::page::PAGE_SIZE])
            .map_err(|e| Error::io_path("writing", &dom0_page, e))?;
        let mut args: Vec<String> = options.quotas.iter().flat_map(|q| q.args()).collect();
        args.extend(options.daemon_args.iter().cloned());
        let config = DaemonConfig {
            binary,
            trace: options.trace.then(|| dir.trace()),
            args,
        };
        let daemon = DaemonProcess::start(&config, &dir)?;
        Ok(Testbed {
            daemon: Mutex::new(Some(daemon)),
            domains: Mutex::new(Vec::new()),
            config,
            keep_on_panic: options.keep_on_panic,
            dir,
        })
    }

    /// The daemon binary and its version.
    pub fn xenstored(&self) -> &Xenstored {
        &self.config.binary
    }

    /// The daemon's unix socket (what `XENSTORED_PATH` must name).
    pub fn socket_path(&self) -> PathBuf {
        self.dir.socket()
    }

    /// The state directory (layout in testbed/README.md).
    pub fn state_dir(&self) -> &Path {
        self.dir.root()
    }

    /// The ring page file of domain `domid` (whether or not introduced);
    /// map it with [`SharedPage::open`] for a second view.
    pub fn page_path(&self, domid: u32) -> PathBuf {
        self.dir.page(domid)
    }

    /// The trace file, if tracing is on.
    pub fn trace_path(&self) -> Option<&Path> {
        self.config.trace.as_deref()
    }

    /// The file collecting the daemon's syslog() messages.
    pub fn syslog_path(&self) -> PathBuf {
        self.dir.syslog()
    }

    /// The daemon's pid, if it runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.lock_daemon().as_ref().map(DaemonProcess::pid)
    }

    /// The last couple of KiB of the daemon's stdout/stderr, syslog and
    /// trace, for a failure report (e.g. a kernel test that failed).
    pub fn log_tails(&self) -> String {
        self.lock_daemon()
            .as_ref()
            .map(DaemonProcess::report)
            .unwrap_or_else(|| "(no daemon: the last restart failed)".to_string())
    }

    /// Ok while the daemon runs; else why not ([`Error::DaemonDied`] with
    /// its logs).
    pub fn check_daemon(&self) -> Result<()> {
        Self::check(&mut self.lock_daemon())
    }

    fn check(daemon: &mut Option<DaemonProcess>) -> Result<()> {
        match daemon.as_mut() {
            Some(d) => d.check_alive(),
            None => Err(Error::DaemonStart {
                reason: "the last restart failed; no daemon runs".to_string(),
            }),
        }
    }

    /// If `result` failed and the daemon has died, the death is the better
    /// explanation; otherwise `result` as is.
    fn explain<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(e) => Err(self.check_daemon().err().unwrap_or(e)),
            ok => ok,
        }
    }

    /// Environment variables pointing libxenstore and the xenstore-* tools
    /// at this daemon.
    pub fn client_env(&self) -> Vec<(&'static str, OsString)> {
        vec![("XENSTORED_PATH", self.socket_path().into_os_string())]
    }

    /// A command for the xenstore-* tool `tool` ("read" or "xenstore-read")
    /// aimed at this daemon, for tools that run long (xenstore-watch).
    pub fn cli_command(&self, tool: &str) -> Command {
        let program = if tool.starts_with("xenstore") {
            tool.to_string()
        } else {
            format!("xenstore-{tool}")
        };
        let mut cmd = Command::new(program);
        cmd.envs(self.client_env());
        cmd
    }

    /// Runs the real xenstore-* tool `tool` with `args` against this daemon
    /// and returns what it printed. A tool that fails is not an `Err` (see
    /// [`CliOutput::into_stdout`]) unless the daemon died.
    pub fn cli(&self, tool: &str, args: &[&str]) -> Result<CliOutput> {
        let mut cmd = self.cli_command(tool);
        cmd.args(args);
        let command = format!("{cmd:?}");
        let out = cmd.output().map_err(|source| Error::Cli {
            command: format!("{command} (install the xenstore-utils package)"),
            source,
        })?;
        let out = CliOutput {
            command,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if !out.status.success() {
            self.check_daemon()?;
        }
        Ok(out)
    }

    /// A privileged (dom0) raw connection to the daemon.
    pub fn connect(&self) -> Result<SocketClient> {
        self.explain(SocketClient::connect(&self.socket_path(), REQUEST_TIMEOUT))
    }

    /// Sends XS_CONTROL with `args` (what `xenstore-control` does) and
    /// returns the daemon's answer, e.g. `control(&["quota"])`.
    pub fn control(&self, args: &[&str]) -> Result<String> {
        let reply = self.explain(
            self.connect()
                .and_then(|mut xs| xs.request(ty::CONTROL, &nul_join(args))),
        )?;
        let text = reply.strip_suffix(b"\0").unwrap_or(&reply);
        Ok(String::from_utf8_lossy(text).into_owned())
    }

    /// Changes a limit in the running daemon (for every domain). Lost on
    /// [`Testbed::restart_daemon`]; use [`Options::quota`] to keep it.
    pub fn set_quota(&self, quota: Quota) -> Result<()> {
        self.control(&["quota", "set", quota.name(), &quota.value().to_string()])
            .map(drop)
    }

    /// Introduces `domid` with [`DomainConfig::new`]'s defaults.
    pub fn introduce_domain(&self, domid: u32) -> Result<Domain> {
        self.introduce_domain_with(DomainConfig::new(domid))
    }

    /// Creates the domain's page and event endpoint, sends XS_INTRODUCE,
    /// then creates its home as [`DomainConfig::home`] says. Errs if the
    /// domid is not a guest's or is already introduced.
    pub fn introduce_domain_with(&self, config: DomainConfig) -> Result<Domain> {
        if config.domid == 0 || config.domid > MAX_GUEST_DOMID {
            return Err(Error::Usage(format!(
                "domid {} is not a guest domid (1..={MAX_GUEST_DOMID})",
                config.domid
            )));
        }
        let mut daemon = self.lock_daemon();
        let mut domains = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        if domains.iter().any(|d| d.domid == config.domid) {
            return Err(Error::Usage(format!(
                "domain {} is already introduced",
                config.domid
            )));
        }
        Self::check(&mut daemon)?;
        self.write_state(config.domid, DomainState::Running)?;
        let page = SharedPage::create(&self.dir.page(config.domid))?;
        let events = GuestEventChannel::bind(
            self.dir.guest_event(config.domid, config.event_port),
            self.dir.daemon_event(config.domid, config.event_port),
        )?;
        let introduced = toolstack::introduce(&self.socket_path(), &config);
        if let Err(e) = introduced {
            return Err(Self::check(&mut daemon).err().unwrap_or(e));
        }
        domains.push(config.clone());
        Ok(Domain::new(config, page, events))
    }

    /// Tells the daemon's xc_domain_getinfo that `domid` is in `state` and
    /// raises VIRQ_DOM_EXC, as Xen does when a domain changes state. The
    /// 4.17 daemon then reacts as for real Xen: `Shutdown`/`Crashed` fire
    /// @releaseDomain once but keep the domain introduced (a toolstack
    /// would now destroy it); `Dying`/`Gone` release it (@releaseDomain,
    /// connection dropped, its nodes deleted), and the testbed forgets it
    /// too (no re-introduction on restart).
    pub fn set_domain_state(&self, domid: u32, state: DomainState) -> Result<()> {
        let _daemon = self.lock_daemon();
        let mut domains = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        if !domains.iter().any(|d| d.domid == domid) {
            return Err(Error::Usage(format!("domain {domid} is not introduced")));
        }
        self.write_state(domid, state)?;
        if matches!(state, DomainState::Dying | DomainState::Gone) {
            domains.retain(|d| d.domid != domid);
        }
        if state != DomainState::Running {
            kick(&self.dir.virq(VIRQ_DOM_EXC))?;
        }
        Ok(())
    }

    /// Raises domain `domid`'s event as the daemon's notify would: whoever
    /// holds the guest end (a [`Domain`], or the ivshmem server, which turns
    /// it into the guest's MSI-X interrupt) sees a kick. For hostile-peer
    /// tests: poke the page, then make the guest look at it.
    pub fn notify_guest(&self, domid: u32) -> Result<()> {
        let port = self.event_port(domid)?;
        kick(&self.dir.guest_event(domid, port))
    }

    /// Kicks the daemon's end of domain `domid`'s event channel, as the
    /// guest's notify would (e.g. when the ivshmem server owns the guest
    /// end and a test poked the ring).
    pub fn notify_daemon(&self, domid: u32) -> Result<()> {
        let port = self.event_port(domid)?;
        kick(&self.dir.daemon_event(domid, port))
    }

    fn event_port(&self, domid: u32) -> Result<u32> {
        let domains = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        domains
            .iter()
            .find(|d| d.domid == domid)
            .map(|d| d.event_port)
            .ok_or_else(|| Error::Usage(format!("domain {domid} is not introduced")))
    }

    fn write_state(&self, domid: u32, state: DomainState) -> Result<()> {
        let path = self.dir.domain_state(domid);
        let text = match state {
            DomainState::Running => "running",
            DomainState::Dying => "dying",
            DomainState::Shutdown => "shutdown",
            DomainState::Crashed => "crashed",
            DomainState::Gone => {
                return std::fs::remove_file(&path)
                    .map_err(|e| Error::io_path("removing", &path, e));
            }
        };
        std::fs::write(&path, text).map_err(|e| Error::io_path("writing", &path, e))
    }

    /// Stops the daemon and starts a fresh one (empty store) on the same
    /// socket and directory, then re-introduces every domain with its same
    /// page and event channel and recreates its home: what a guest sees
    /// across a migration. Ring contents and indexes are left as they are;
    /// watches and transactions of the old daemon are gone. [`Domain`]
    /// handles stay valid.
    pub fn restart_daemon(&self) -> Result<()> {
        let mut daemon = self.lock_daemon();
        let domains = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut old) = daemon.take() {
            old.stop();
        }
        *daemon = Some(DaemonProcess::start(&self.config, &self.dir)?);
        for config in domains.iter() {
            if let Err(e) = toolstack::introduce(&self.socket_path(), config) {
                return Err(Self::check(&mut daemon).err().unwrap_or(e));
            }
        }
        Ok(())
    }

    fn lock_daemon(&self) -> MutexGuard<'_, Option<DaemonProcess>> {
        self.daemon.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sends one kick to an event socket; a full queue is already pending.
fn kick(socket: &Path) -> Result<()> {
    match UnixDatagram::unbound().and_then(|s| {
        s.set_nonblocking(true)?;
        s.send_to(&[1], socket)
    }) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(Error::io_path("kicking", socket, e)),
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.lock_daemon().take() {
            daemon.stop();
        }
        if self.keep_on_panic && std::thread::panicking() {
            self.dir.keep();
        }
    }
}

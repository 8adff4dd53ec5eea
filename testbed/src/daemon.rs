//! Running one xenstored process: start it on the instance directory with
//! the fake libraries, wait until its socket answers, notice when it dies,
//! and stop it.
//!
//! Leak-proofing: the daemon gets PR_SET_PDEATHSIG(SIGKILL), so it dies with
//! the process that started it even if that process is killed or aborts
//! before any Drop runs. The kernel ties that signal to the *thread* that
//! forked, and test threads come and go, so every daemon is forked by one
//! spawner thread that lives as long as the process.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::getppid;

use crate::error::{Error, Result, tail};
use crate::fetch::Xenstored;
use crate::layout::InstanceDir;

/// How long a daemon may take to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopping daemon gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How much of each log an error report shows.
const REPORT_TAIL: usize = 2000;

/// What to run: the daemon binary and its extra command-line arguments.
#[derive(Debug, Clone)]
pub(crate) struct DaemonConfig {
    pub binary: Xenstored,
    pub trace: Option<PathBuf>,
    pub args: Vec<String>,
}

/// A started daemon. Stopped (and reaped) on drop.
#[derive(Debug)]
pub(crate) struct DaemonProcess {
    child: Child,
    /// Set once the daemon has been reaped.
    exit: Option<ExitStatus>,
    logs: Logs,
}

/// The files that explain a daemon's death.
#[derive(Debug, Clone)]
struct Logs {
    output: PathBuf,
    syslog: PathBuf,
    trace: Option<PathBuf>,
}

impl Logs {
    fn report(&self) -> String {
        let mut out = format!(
            "--- xenstored stdout/stderr ({}):\n{}\n--- syslog ({}):\n{}",
            self.output.display(),
            tail(&self.output, REPORT_TAIL),
            self.syslog.display(),
            tail(&self.syslog, REPORT_TAIL)
        );
        if let Some(trace) = &self.trace {
            out += &format!(
                "\n--- trace ({}):\n{}",
                trace.display(),
                tail(trace, REPORT_TAIL)
            );
        }
        out
    }
}

impl DaemonProcess {
    /// Starts the daemon in `dir` and waits until its socket accepts a
    /// connection. Fails with the daemon's own output if it exits first.
    pub(crate) fn start(config: &DaemonConfig, dir: &InstanceDir) -> Result<Self> {
        let logs = Logs {
            output: dir.daemon_log(),
            syslog: dir.syslog(),
            trace: config.trace.clone(),
        };
        let output = File::options()
            .create(true)
            .append(true)
            .open(&logs.output)
            .map_err(|e| Error::io_path("opening", &logs.output, e))?;
        let output2 = output
            .try_clone()
            .map_err(|e| Error::io_path("duplicating", &logs.output, e))?;

        let mut cmd = Command::new(&config.binary.path);
        // -N: stay in the foreground so we own the process.
        cmd.arg("-N");
        if let Some(trace) = &config.trace {
            cmd.arg("-T").arg(trace);
        }
        cmd.args(&config.args)
            .current_dir(dir.root())
            .env_clear()
            .env("TESTBED_DIR", dir.root())
            .env("LD_LIBRARY_PATH", dir.lib_dir())
            .env("LD_PRELOAD", dir.preload())
            .env("XENSTORED_RUNDIR", dir.root())
            .env("XENSTORED_ROOTDIR", dir.root())
            .env("XENSTORED_PATH", dir.socket())
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output2);
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe calls (sigprocmask, prctl, getppid) on
        // local data; nix's wrappers of them do not allocate.
        unsafe {
            cmd.pre_exec(move || {
                // The mask survives exec and std leaves it alone here: a
                // caller that blocks SIGTERM for a signalfd (testbed up)
                // would otherwise make the daemon deaf to our SIGTERM.
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
                set_pdeathsig(Signal::SIGKILL)?;
                // The parent may have died before prctl took effect. The error
                // is a bare kind: building it does not allocate, which a forked
                // child of a threaded process must not do.
                if getppid().as_raw() as u32 != parent {
                    return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
                }
                Ok(())
            });
        }
        let child = spawn_from_keeper_thread(cmd).map_err(|e| Error::DaemonStart {
            reason: format!("cannot execute {}: {e}", config.binary.path.display()),
        })?;
        let mut daemon = DaemonProcess {
            child,
            exit: None,
            logs,
        };
        daemon.wait_until_ready(dir)?;
        Ok(daemon)
    }

    fn wait_until_ready(&mut self, dir: &InstanceDir) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let socket = dir.socket();
        loop {
            if let Some(status) = self.poll_exit() {
                return Err(Error::DaemonStart {
                    reason: format!("it exited with {status}\n{}", self.logs.report()),
                });
            }
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::DaemonStart {
                    reason: format!(
                        "{} did not accept connections within {START_TIMEOUT:?}\n{}",
                        socket.display(),
                        self.logs.report()
                    ),
                });
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The tails of the daemon's output, syslog and trace.
    pub(crate) fn report(&self) -> String {
        self.logs.report()
    }

    /// The daemon's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reaps the daemon if it has exited; returns its status then.
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Ok while the daemon runs; [`Error::DaemonDied`] with its logs once
    /// it has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        match self.poll_exit() {
            None => Ok(()),
            Some(status) => Err(Error::DaemonDied {
                status,
                report: self.logs.report(),
            }),
        }
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after a grace period; reaps
    /// it. Idempotent.
    pub(crate) fn stop(&mut self) {
        if self.poll_exit().is_some() {
            return;
        }
        let _ = crate::sys::kill(self.child.id(), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.poll_exit().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
        let _ = self.child.kill();
        self.exit = self.child.wait().ok();
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Forks `cmd` from the process-lifetime keeper thread (see module docs).
fn spawn_from_keeper_thread(cmd: Command) -> std::io::Result<Child> {
    /// The keeper's request queue; started on first use. Held only to clone
    /// or create the sender (no other lock is taken meanwhile).
    static KEEPER: Mutex<Option<mpsc::Sender<SpawnRequest>>> = Mutex::new(None);
    let sender = {
        let mut keeper = KEEPER.lock().unwrap_or_else(|p| p.into_inner());
        match keeper.as_ref() {
            Some(sender) => sender.clone(),
            None => {
                let (tx, rx) = mpsc::channel::<SpawnRequest>();
                thread::Builder::new()
                    .name("testbed-spawner".into())
                    .spawn(move || {
                        for (mut cmd, reply) in rx {
                            let _ = reply.send(cmd.spawn());
                        }
                    })?;
                keeper.insert(tx).clone()
            }
        }
    };
    let (reply_tx, reply_rx) = mpsc::channel();
    let gone = || std::io::Error::other("the testbed's spawner thread is gone");
    sender.send((cmd, reply_tx)).map_err(|_| gone())?;
    reply_rx.recv().map_err(|_| gone())?
}

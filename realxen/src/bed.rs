//! The bed itself: Xen + dom0 in QEMU under TCG, booted once, then driven
//! through the dom0 agent. Dropping the bed ends QEMU.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent::{Agent, Output};
use crate::console::{Console, Seen, TAIL_LINES};
use crate::error::{Error, Result};
use crate::fetch::{cache_dir, extraction, fetch_all};
use crate::initramfs::dom0_archive;
use crate::packages::{HYPERVISOR, Lock};
use crate::preload::{self, Preload};
use crate::progress::Progress;

/// The emulated CPU. TCG implements SVM with nested paging, so Xen runs
/// HVM/PVH guests. Each feature taken away is one Xen or Linux cannot use
/// under TCG: SMAP/SMEP (dom0 faulted on its own stack), MONITOR/MWAIT
/// (Xen's idle loop took a #GP with -smp 2), RDTSCP (TCG's SVM lacks
/// nrip-save, so Xen cannot step over it for a guest).
pub const DEFAULT_CPU: &str = "EPYC,+svm,+npt,-smap,-smep,-monitor,-rdtscp";
/// `max_cstate=1` keeps Xen off MWAIT; `noreboot` lets a crash be read.
///
/// `spec-ctrl=eager-fpu`: on this (emulated AMD) CPU Xen defaults to lazy
/// FPU switching, which relies on the #NM trap that CR0.TS raises. Under
/// QEMU's TCG that trap does not stop an HVM/PVH guest: it ran SSE code on
/// dom0's live registers, and dom0's processes got the guest's values
/// back (measured: hundreds of corrupted xmm/ymm registers in 40 s with a
/// Linux domU spinning on SSE; none with eager switching). It explains the
/// busybox segfault seen before, in glibc's `__ctype_init` loading a TLS
/// pointer that an SSE/AVX memcpy had just copied as 0. Eager switching
/// saves and restores the FPU on every vCPU switch, trap or not.
const XEN_CMDLINE: &str = "dom0_mem=768M console=com1 com1=115200 loglvl=all guest_loglvl=all \
     noreboot max_cstate=1 spec-ctrl=eager-fpu";
const DOM0_CMDLINE: &str = "console=hvc0 earlyprintk=xen";

/// Console texts that mean the boot cannot succeed any more.
const FATAL: [&str; 4] = [
    "@realxen init failed",
    "Kernel panic",
    "(XEN) Panic on CPU",
    "(XEN) Hardware Dom0 crashed",
];

/// Which of Xen's two xenstore daemons dom0 runs (both from xen-utils).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daemon {
    /// The C `xenstored`.
    Xenstored,
    /// The OCaml `oxenstored` (configured by /etc/xen/oxenstored.conf).
    Oxenstored,
}

impl Daemon {
    /// Both, in the order the suite runs them.
    pub const ALL: [Daemon; 2] = [Daemon::Xenstored, Daemon::Oxenstored];

    /// The daemon's program name (what dom0's init starts).
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Xenstored => "xenstored",
            Daemon::Oxenstored => "oxenstored",
        }
    }

    /// Parses a program name.
    pub fn parse(text: &str) -> Option<Daemon> {
        Daemon::ALL.into_iter().find(|d| d.name() == text)
    }
}

/// How to boot the machine.
#[derive(Clone, Debug)]
pub struct BedOptions {
    /// The xenstore daemon dom0 runs.
    pub daemon: Daemon,
    pub cpu: String,
    pub smp: u32,
    /// Appended to Xen's command line (experiments: `--xen-append`).
    pub xen_append: String,
    /// Per boot phase.
    pub phase_limit: Duration,
    /// Where each boot's console log, socket and initramfs go, in a
    /// directory of its own (`run-<pid>`), so that runs can overlap.
    pub run_dir: PathBuf,
    /// Files in dom0 from the start (large ones: see `preload`).
    pub preload: Vec<Preload>,
}

impl Default for BedOptions {
    fn default() -> Self {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        BedOptions {
            daemon: Daemon::Xenstored,
            cpu: std::env::var("REALXEN_CPU").unwrap_or_else(|_| DEFAULT_CPU.to_string()),
            smp: 1,
            xen_append: String::new(),
            phase_limit: Duration::from_secs(240),
            run_dir: manifest.parent().unwrap_or(manifest).join("target/realxen"),
            preload: Vec::new(),
        }
    }
}

pub struct Bed {
    qemu: Child,
    pub console: Console,
    agent: Agent,
    pub progress: Progress,
    /// When dom0's agent answered, from the start of the run.
    pub dom0_up_secs: f64,
    /// This boot's initramfs (large: removed with the bed).
    initrd: PathBuf,
}

impl Bed {
    /// Fetches what is missing, builds the initramfs and boots Xen + dom0,
    /// saying where it is on the way; returns once dom0's agent answers.
    pub fn boot(options: &BedOptions, progress: Progress) -> Result<Bed> {
        let lock = Lock::load()?;
        fetch_all(&lock, &progress)?;
        let xen = xen_elf(&lock)?;
        let dom0_kernel =
            extraction(lock.dom0_kernel()?).join(format!("boot/vmlinuz-{}", lock.dom0_release()?));
        let run_dir = options.run_dir.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&run_dir).map_err(|e| Error::io_path("creating", &run_dir, e))?;
        let initrd = run_dir.join("dom0.cpio.gz");
        preload::with_files(
            &dom0_archive(&lock, &progress)?,
            &options.preload,
            &run_dir,
            &initrd,
        )?;
        for path in [&xen, &dom0_kernel, &initrd] {
            // QEMU's -initrd splits modules at commas.
            if path.to_string_lossy().contains(',') {
                return Err(Error::Usage {
                    reason: format!("{} has a comma, which QEMU cannot pass", path.display()),
                });
            }
        }
        let socket = run_dir.join("agent.sock");
        let _ = std::fs::remove_file(&socket);
        let log = run_dir.join("console.log");
        let stderr_path = run_dir.join("qemu-stderr.log");
        let stderr_log = std::fs::File::create(&stderr_path)
            .map_err(|e| Error::io_path("creating", &stderr_path, e))?;

        progress.say(format!(
            "booting Xen in QEMU (TCG, -cpu {}, console log {})",
            options.cpu,
            log.display()
        ));
        let mut qemu = qemu_command(options, &xen, &dom0_kernel, &initrd, &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_log))
            .spawn()
            .map_err(|e| Error::io("starting qemu-system-x86_64", e))?;
        let console = Console::default();
        let agent = qemu
            .stdout
            .take()
            .ok_or_else(|| Error::agent("QEMU's stdout was not captured"))
            .and_then(|out| console.capture(out, &log))
            .and_then(|()| connect(&socket, &mut qemu, &console));
        let agent = match agent {
            Ok(agent) => agent,
            Err(e) => {
                let _ = qemu.kill();
                let _ = qemu.wait();
                return Err(e);
            }
        };
        let mut bed = Bed {
            agent,
            qemu,
            console,
            progress,
            dom0_up_secs: 0.0,
            initrd,
        };
        let _ = std::fs::remove_file(&socket);
        bed.wait_phase(
            "QEMU started",
            "(XEN) Xen version",
            "Xen booting",
            options.phase_limit,
        )?;
        bed.wait_phase(
            "Xen booting",
            "Linux version",
            "dom0 kernel booting",
            options.phase_limit,
        )?;
        bed.wait_phase(
            "dom0 kernel booting",
            "@realxen daemons up",
            &format!("dom0 up: {}, xenconsoled", options.daemon.name()),
            options.phase_limit,
        )?;
        bed.agent
            .wait_ready(options.phase_limit)
            .map_err(|e| bed.boot_error("dom0 up", &e.to_string()))?;
        bed.dom0_up_secs = bed.progress.elapsed();
        bed.progress.say("dom0 agent ready");
        // The tests must run against the daemon they are named for.
        let daemon = options.daemon.name();
        let running = bed
            .run(&format!("pidof {daemon}"), Duration::from_secs(60))
            .map_err(|e| bed.boot_error("dom0 up", &e.to_string()))?;
        if !running.success() {
            return Err(bed.boot_error("dom0 up", &format!("{daemon} is not running in dom0")));
        }
        Ok(bed)
    }

    fn wait_phase(
        &mut self,
        stage: &str,
        want: &str,
        reached: &str,
        limit: Duration,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            let left = limit.saturating_sub(start.elapsed());
            match self
                .console
                .wait_for(0, want, &FATAL, left.min(Duration::from_secs(15)))
            {
                Seen::Line => {
                    self.progress.say(reached);
                    return Ok(());
                }
                Seen::Failure(line) => {
                    return Err(self.boot_error(stage, &format!("the console said {line:?}")));
                }
                Seen::Closed => return Err(self.boot_error(stage, "QEMU exited")),
                Seen::TimedOut if left.is_zero() => {
                    return Err(
                        self.boot_error(stage, &format!("no {want:?} within {}s", limit.as_secs()))
                    );
                }
                Seen::TimedOut => self.progress.say(format!("still waiting for {want:?} ...")),
            }
        }
    }

    fn boot_error(&self, stage: &str, reason: &str) -> Error {
        Error::Boot {
            stage: stage.to_string(),
            reason: reason.to_string(),
            console_tail: self.console.tail(TAIL_LINES),
        }
    }

    /// Runs `script` with sh in dom0, killed after `limit`.
    pub fn run(&mut self, script: &str, limit: Duration) -> Result<Output> {
        self.agent.run(script, limit)
    }

    /// Writes `data` to `path` in dom0.
    pub fn put(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.agent.put(path, data)
    }

    /// Console lines that show the bed itself misbehaving (a process in
    /// dom0 crashing), from line `from` on: a test run must have none.
    pub fn crashes_since(&self, from: usize) -> Vec<String> {
        let mut found = self.console.matching(from, "segfault at");
        found.extend(self.console.matching(from, "general protection fault"));
        found.extend(self.console.matching(from, "traps:"));
        found.sort();
        found.dedup();
        found
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        let _ = std::fs::remove_file(&self.initrd);
    }
}

/// QEMU running Xen (a multiboot kernel) with dom0's kernel and initramfs
/// as its modules; Xen's console on stdout, the agent on a second UART.
fn qemu_command(
    options: &BedOptions,
    xen: &Path,
    dom0_kernel: &Path,
    initrd: &Path,
    socket: &Path,
) -> Command {
    let mut cmd =
        Command::new(std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into()));
    cmd.args(["-machine", "q35", "-accel", "tcg", "-cpu", &options.cpu])
        .args(["-m", "2048", "-smp", &options.smp.to_string()])
        .args(["-display", "none", "-no-reboot", "-monitor", "none"])
        .args(["-net", "none", "-serial", "stdio"])
        // wait=on: the machine starts only once we are connected, so no
        // agent output is lost.
        .arg("-chardev")
        .arg(format!(
            "socket,id=agent,path={},server=on,wait=on",
            socket.display()
        ))
        .args(["-serial", "chardev:agent"])
        .arg("-kernel")
        .arg(xen)
        .arg("-append")
        .arg(format!("{XEN_CMDLINE} {}", options.xen_append).trim_end())
        .arg("-initrd")
        .arg(format!(
            "{} {DOM0_CMDLINE} realxen.xenstored={},{}",
            dom0_kernel.display(),
            options.daemon.name(),
            initrd.display()
        ));
    cmd
}

/// Connects to QEMU's agent socket (it appears once QEMU has started).
fn connect(socket: &Path, qemu: &mut Child, console: &Console) -> Result<Agent> {
    let start = Instant::now();
    loop {
        match UnixStream::connect(socket) {
            Ok(stream) => return Agent::new(stream),
            Err(e) => {
                if let Ok(Some(status)) = qemu.try_wait() {
                    return Err(Error::Boot {
                        stage: "starting QEMU".to_string(),
                        reason: format!("QEMU exited ({status})"),
                        console_tail: console.tail(TAIL_LINES),
                    });
                }
                if start.elapsed() > Duration::from_secs(30) {
                    return Err(Error::io_path(
                        "connecting to QEMU's agent socket",
                        socket,
                        e,
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Xen as a plain ELF (QEMU's multiboot loader does not take the .gz).
fn xen_elf(lock: &Lock) -> Result<PathBuf> {
    let pin = lock.pin(HYPERVISOR)?;
    let elf = cache_dir().join(format!("xen-{}.elf", pin.version.replace(':', "_")));
    if elf.is_file() {
        return Ok(elf);
    }
    let gz = extraction(pin).join("boot/xen-4.17-amd64.gz");
    // Per process: two runs may unpack at once; the rename settles it.
    let partial = elf.with_extension(format!("partial-{}", std::process::id()));
    let out =
        std::fs::File::create(&partial).map_err(|e| Error::io_path("creating", &partial, e))?;
    let status = Command::new("gzip")
        .arg("-dc")
        .arg(&gz)
        .stdout(out)
        .status()
        .map_err(|e| Error::io("running gzip", e))?;
    if !status.success() {
        return Err(Error::Tool {
            what: "gunzip Xen".to_string(),
            detail: format!("gzip -dc {} failed ({status})", gz.display()),
        });
    }
    std::fs::rename(&partial, &elf).map_err(|e| Error::io_path("moving into place", &elf, e))?;
    Ok(elf)
}

//! [`KernelPower`]: what the kernel does when the toolstack writes
//! `control/shutdown` (the xenbus control service calls it), and what the
//! shell's `poweroff` does.
//!
//! | action | on Xen | on the QEMU test platform |
//! |---|---|---|
//! | poweroff, halt | `SCHEDOP_shutdown(poweroff)` (the exit hook) | `isa-debug-exit` with success: QEMU exits 33 |
//! | reboot | `SCHEDOP_shutdown(reboot)` | PIIX3 reset (port 0xcf9), then the 8042 reset line: under `-no-reboot` QEMU exits with status 0 |
//! | suspend | `SCHEDOP_shutdown(suspend)`: returns 0 once resumed (maybe on another host), 1 if cancelled | asks the host agent to act as the toolstack (`suspend` verb): it migrates (fresh daemon) or checkpoints (cancelled) |
//!
//! Before a poweroff or reset the kernel prints
//! [`hostlink_codec::POWER_MARKER`] and the action, so
//! the runner can tell a requested reset from a triple fault.
//!
//! The Xen paths are written from `sched.h` and Linux's `manage.c`/`suspend.c`
//! and compile here; they have not run (no Xen on the build host).

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use xen::XenError;
use xen::error::Cause;
use xen::sched::{self, ShutdownReason};
use xenbus::services::PowerControl;
use xenbus::{PowerError, SuspendOutcome};

use crate::arch::cpu::outb;
use crate::hypervisor::XenGuest;
use hostlink_codec::POWER_MARKER;

/// PIIX3/ICH reset control register; bit 2 starts the reset, bit 1 makes
/// it a hard one.
const RESET_CONTROL_PORT: u16 = 0xcf9;
/// The 8042 keyboard controller's command port; 0xfe pulses the reset line.
const KBC_COMMAND_PORT: u16 = 0x64;
/// How long each reset method gets before the next is tried.
const RESET_GRACE: Duration = Duration::from_millis(50);
/// How long the host agent may take to play a suspend (a daemon restart
/// and the devices recreated take milliseconds; leave room for TCG).
const HOST_SUSPEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where power requests go.
#[derive(Clone, Copy)]
enum Platform {
    /// Hypercalls.
    Xen(&'static XenGuest),
    /// QEMU; `host_agent` says whether a host agent answers on the serial
    /// line (test images), which a suspend needs.
    Qemu { host_agent: bool },
}

/// The kernel's [`PowerControl`]. Counts suspends, so tests can see
/// whether (and how often) the platform step ran.
pub struct KernelPower {
    platform: Platform,
    suspends_started: AtomicU64,
    suspends_resumed: AtomicU64,
}

impl KernelPower {
    /// Power control for the platform the kernel runs on: Xen when the
    /// hypervisor bring-up succeeded, QEMU otherwise. `host_agent`: a host
    /// agent answers `@host` requests on the serial line (test images); the
    /// interactive kernel says `false`, because its shell owns serial input.
    pub fn new(host_agent: bool) -> KernelPower {
        let platform = match crate::hypervisor::guest() {
            Some(guest) => Platform::Xen(guest),
            None => Platform::Qemu { host_agent },
        };
        KernelPower {
            platform,
            suspends_started: AtomicU64::new(0),
            suspends_resumed: AtomicU64::new(0),
        }
    }

    /// Suspends that reached the platform step (after the drivers and the
    /// xenstore client were quiesced).
    pub fn suspends_started(&self) -> u64 {
        self.suspends_started.load(Ordering::SeqCst)
    }

    /// Suspends after which the VM ran again as resumed (not cancelled).
    pub fn suspends_resumed(&self) -> u64 {
        self.suspends_resumed.load(Ordering::SeqCst)
    }

    /// Prints the power marker on a line of its own (a half-typed shell
    /// line is moved out of the way).
    fn announce(action: &str) {
        crate::terminal::print_event(&format!("{POWER_MARKER} {action}"));
    }

    fn qemu_suspend(&self) -> Result<SuspendOutcome, PowerError> {
        let answer = crate::hostlink::request_timeout("suspend", &[], HOST_SUSPEND_TIMEOUT)
            .map_err(|e| PowerError::Failed(format!("the host agent did not suspend us: {e}")))?;
        match answer.first().map(|v| v.as_slice()) {
            Some(b"migrated") => Ok(SuspendOutcome::Resumed),
            Some(b"cancelled") => Ok(SuspendOutcome::Cancelled),
            other => Err(PowerError::Failed(format!(
                "the host agent answered {:?} to suspend (want migrated|cancelled)",
                other.map(String::from_utf8_lossy)
            ))),
        }
    }
}

impl PowerControl for KernelPower {
    /// Does not return on success.
    fn poweroff(&self) -> Result<(), PowerError> {
        Self::announce("poweroff");
        log::info!("power: powering off");
        // isa-debug-exit under QEMU, then the Xen hook (SCHEDOP_shutdown).
        crate::exit::poweroff()
    }

    /// Does not return on success.
    fn reboot(&self) -> Result<(), PowerError> {
        match self.platform {
            Platform::Xen(guest) => {
                Self::announce("reboot");
                sched::shutdown(guest.hypervisor, ShutdownReason::Reboot)
                    .map_err(|e| PowerError::Failed(format!("{e}")))
            }
            Platform::Qemu { .. } => {
                Self::announce("reboot");
                log::info!("power: resetting the machine");
                reset_machine();
                Err(PowerError::Failed(String::from(
                    "neither the 0xcf9 reset register nor the 8042 reset line reset the machine",
                )))
            }
        }
    }

    /// Linux's `manage.c` treats "halt" as a poweroff; so do we.
    fn halt(&self) -> Result<(), PowerError> {
        self.poweroff()
    }

    fn suspend(&self) -> Result<SuspendOutcome, PowerError> {
        self.suspends_started.fetch_add(1, Ordering::SeqCst);
        let outcome = match self.platform {
            Platform::Xen(guest) => xen_suspend(guest),
            Platform::Qemu { host_agent: true } => self.qemu_suspend(),
            Platform::Qemu { host_agent: false } => Err(PowerError::Failed(String::from(
                "suspend on the QEMU test platform is played by the test harness's host agent, \
                 and this kernel's serial line belongs to its shell",
            ))),
        }?;
        if outcome == SuspendOutcome::Resumed {
            self.suspends_resumed.fetch_add(1, Ordering::SeqCst);
        }
        log::info!("power: suspend ended: {outcome:?}");
        Ok(outcome)
    }

    /// A restored domain has a new id and home: read them again.
    fn after_resume(&self) {
        if let Err(e) = crate::xenstore_service::refresh_identity() {
            log::error!("xenstore: cannot read our domain id and home after resume: {e}");
        }
    }
}

/// Resets the machine the ways a PC offers, each given a moment to act.
/// Returns only if none did.
fn reset_machine() {
    // SAFETY: the reset control register (0xcf9) resets the machine or does
    // nothing; we are resetting on purpose.
    unsafe {
        outb(RESET_CONTROL_PORT, 0x02);
        outb(RESET_CONTROL_PORT, 0x06);
    }
    crate::time::spin_for(RESET_GRACE);
    // SAFETY: the keyboard controller's pulse-reset command, as above.
    unsafe { outb(KBC_COMMAND_PORT, 0xfe) };
    crate::time::spin_for(RESET_GRACE);
}

/// `SCHEDOP_shutdown(SHUTDOWN_suspend)`. Xen returns 1 when the suspend was
/// cancelled (same domain, nothing to redo), 0 once the domain runs again
/// after a save/restore or migration; then, as Linux's
/// `xen_hvm_post_suspend` does, shared_info is placed again at its frame
/// and the upcall re-routed (a new host knows neither).
///
/// Interrupts stay off from the hypercall until shared_info and the grant
/// table are placed again (Linux suspends under `stop_machine` with
/// interrupts off for the same reason): in the restored domain their frames
/// are holes (reads give all ones, writes are dropped) until then, and the
/// saved local APIC may hold the upcall vector pending (an event that came
/// while the save ran). An upcall taken before the remap scanned the hole,
/// found `evtchn_upcall_pending` set forever, and spun with interrupts off:
/// the restored guest at 100% CPU, silent.
fn xen_suspend(guest: &'static XenGuest) -> Result<SuspendOutcome, PowerError> {
    let irqs = crate::arch::cpu::irq_save();
    let outcome = sched::shutdown(guest.hypervisor, ShutdownReason::Suspend).map(|()| {
        let restored = crate::hypervisor::restore_after_resume(guest);
        super::resources::restore_after_resume();
        restored
    });
    crate::arch::cpu::irq_restore(irqs);
    match outcome {
        Ok(restored) => {
            restored.map_err(|e| PowerError::Failed(format!("restoring Xen state: {e}")))?;
            // Before the xenstore client's resume talks to the new daemon.
            crate::xenstore_service::resume_channel()
                .map_err(|e| PowerError::Failed(format!("re-binding xenstore: {e}")))?;
            Ok(SuspendOutcome::Resumed)
        }
        Err(XenError {
            cause: Cause::UnexpectedReturn(1),
            ..
        }) => Ok(SuspendOutcome::Cancelled),
        Err(e) => Err(PowerError::Failed(format!("{e}"))),
    }
}

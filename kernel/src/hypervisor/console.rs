//! The guest log on Xen's PV console (`HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`):
//! a [`crate::logger`] sink next to COM1. PVH guests have no UART, so this
//! is where `xl console` shows the boot log.

use core::ptr::NonNull;

use xen::console::{XenConsole, XenconsInterface};
use xen::hvm;
use xen::hypercall::HypercallPage;

use crate::sync::SpinLock;

/// The console, once attached. Taken by the log sink with interrupts
/// disabled (a leaf, like the serial port's lock).
static PV_CONSOLE: SpinLock<Option<XenConsole<'static, HypercallPage>>> = SpinLock::new(None);

/// Finds the PV console and adds it as a log sink. Logs and gives up on any
/// error: the console is a convenience, never a reason to stop booting.
pub(crate) fn attach(hv: &'static HypercallPage) {
    let ring = match hvm::console_ring(hv) {
        Ok(Some(ring)) => ring,
        Ok(None) => {
            log::info!("xen: no PV console (CONSOLE_PFN is 0): logging to COM1 only");
            return;
        }
        Err(e) => {
            log::warn!("xen: cannot read the PV console location: {e}");
            return;
        }
    };
    let page = match super::map_special_page(ring.gfn) {
        Ok(page) => page,
        Err(e) => {
            log::warn!("xen: cannot map the PV console page {}: {e}", ring.gfn);
            return;
        }
    };
    let Some(page) = NonNull::new(page.as_mut_ptr::<u8>()) else {
        return;
    };
    // SAFETY: the page maps CONSOLE_PFN read-write for the kernel's life
    // (never unmapped) and only this console uses it.
    let intf: &'static XenconsInterface = unsafe { XenconsInterface::from_ptr(page) };
    *PV_CONSOLE.lock() = Some(XenConsole::new(intf, ring.port, hv));
    if crate::logger::add_sink(write_line) {
        log::info!(
            "xen: logging to the PV console too ({}, {})",
            ring.gfn,
            ring.port
        );
    } else {
        log::warn!("xen: no free log sink slot for the PV console");
    }
}

/// After a resume: the console's event channel is whatever the toolstack
/// bound for the restored domain (`HVM_PARAM_CONSOLE_EVTCHN` again). The
/// page stays where it was (libxl restores `CONSOLE_PFN` and clears the
/// page; the ring keeps no indexes of its own). Logs what it finds.
pub(crate) fn restore_after_resume(hv: &'static HypercallPage) {
    match hvm::console_ring(hv) {
        Ok(Some(ring)) => {
            let moved = PV_CONSOLE.lock().as_mut().map(|console| {
                let old = console.port();
                console.set_port(ring.port);
                old
            });
            if let Some(old) = moved {
                log::info!(
                    "xen: PV console on {} after resume ({old} before)",
                    ring.port
                );
            }
        }
        Ok(None) => log::warn!("xen: no PV console after resume"),
        Err(e) => log::warn!("xen: cannot read the PV console location after resume: {e}"),
    }
}

/// The log sink: one line, interrupts disabled (logger contract).
fn write_line(line: &str) {
    if let Some(console) = PV_CONSOLE.lock().as_mut() {
        // A stalled backend costs a bounded wait and drops the rest
        // (counted by the console); nothing else can be done from here.
        let _ = core::fmt::Write::write_str(console, line);
    }
}

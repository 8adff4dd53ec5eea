//! Xen's PV console (`HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`) as the kernel's
//! console next to COM1: everything written to the serial console (log,
//! `println!`, the shell, test results) is mirrored to it, and what dom0
//! types into it (`xl console`, or a write to the pty xenconsoled exposes)
//! joins the serial input. PVH guests have no UART, so this is where
//! `xl console` shows the log and reaches the shell.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use xen::console::{XenConsole, XenconsInterface};
use xen::evtchn::{EventChannels, Port, PortHandler};
use xen::hvm;
use xen::hypercall::HypercallPage;

use crate::spinlock::SpinLock;

/// The console, once attached. Taken with interrupts disabled, inside the
/// serial port's output lock or its input buffer's lock (it is their leaf).
static PV_CONSOLE: SpinLock<Option<XenConsole<'static, HypercallPage>>> = SpinLock::new(None);
/// The port the input handler is attached to (0: none yet). It moves to
/// the restored domain's port on resume.
static INPUT_PORT: AtomicU32 = AtomicU32::new(0);
/// The console's event channel, once attached (0: none).
static PORT: AtomicU32 = AtomicU32::new(0);
/// The console port's handler: moves typed bytes into the serial input.
static INPUT_HANDLER: PortHandler = PortHandler::new(&|_: Port| crate::serial::input_arrived());

/// Finds the PV console and mirrors the console output to it. Logs and
/// gives up on any error: the console is a convenience, never a reason to
/// stop booting.
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
    // SAFETY: the toolstack's console page, from HVM_PARAM_CONSOLE_PFN.
    let page = match unsafe { super::map_special_page(ring.gfn) } {
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
    PORT.store(ring.port.get(), Ordering::Release);
    if crate::serial::set_mirror(mirror) {
        log::info!(
            "xen: the console is mirrored to the PV console ({}, {})",
            ring.gfn,
            ring.port
        );
    } else {
        log::warn!("xen: the console already has a mirror; the PV console stays unused");
    }
}

/// Takes the PV console's input as console input from now on: its event
/// channel's handler feeds the serial input buffer. Called once event
/// channels work; does nothing without a PV console.
pub(crate) fn enable_input(channels: &EventChannels<'static, HypercallPage>) {
    let Some(port) = Port::new(PORT.load(Ordering::Acquire)) else {
        return;
    };
    if let Err(e) = channels.attach(port, &INPUT_HANDLER) {
        log::warn!("xen: no input from the PV console: cannot attach to {port}: {e}");
        return;
    }
    INPUT_PORT.store(port.get(), Ordering::Release);
    if crate::serial::add_input_source(read_input) {
        log::info!("xen: console input from the PV console ({port})");
    }
}

/// The serial mirror: one piece of output. Fatal paths only try the lock
/// (the code that crashed may hold it).
fn mirror(bytes: &[u8], emergency: bool) {
    let mut guard = if emergency {
        match PV_CONSOLE.try_lock() {
            Some(guard) => guard,
            None => return,
        }
    } else {
        PV_CONSOLE.lock()
    };
    if let Some(console) = guard.as_mut() {
        // A stalled backend costs a bounded wait and drops the rest
        // (counted by the console); nothing else can be done from here.
        let _ = console.write_bytes(bytes);
    }
}

/// The serial input source: what dom0 typed, at most `room` bytes.
fn read_input(room: usize, push: &mut dyn FnMut(u8)) -> usize {
    match PV_CONSOLE.lock().as_mut() {
        // A backend that corrupts the indexes gets nothing read, ever
        // again in effect; the console output still works.
        Some(console) => console.read_input(room, push).unwrap_or(0),
        None => 0,
    }
}

/// Waits, boundedly, until the backend has taken all output (before
/// powering off: the last lines, e.g. a test's result, must reach the log).
/// Yields the CPU to Xen between checks so dom0 can drain the ring.
pub(crate) fn flush(hv: &HypercallPage) {
    /// A "never" bound: xenconsoled drains 2 KiB long before this.
    const ATTEMPTS: u32 = 2000;
    for _ in 0..ATTEMPTS {
        let pending = PV_CONSOLE.lock().as_ref().map_or(0, |c| c.pending());
        if pending == 0 {
            return;
        }
        let _ = xen::sched::yield_cpu(hv);
    }
}

/// After a resume: the console's event channel is whatever the toolstack
/// bound for the restored domain (`HVM_PARAM_CONSOLE_EVTCHN` again), so
/// output notifies it and the input handler moves to it. The page stays
/// where it was (libxl restores `CONSOLE_PFN` and clears the page; the ring
/// keeps no indexes of its own). Logs what it finds.
pub(crate) fn restore_after_resume(
    hv: &'static HypercallPage,
    channels: &EventChannels<'static, HypercallPage>,
) {
    let ring = match hvm::console_ring(hv) {
        Ok(Some(ring)) => ring,
        Ok(None) => return log::warn!("xen: no PV console after resume"),
        Err(e) => return log::warn!("xen: cannot read the PV console location after resume: {e}"),
    };
    let old = PV_CONSOLE.lock().as_mut().map(|console| {
        let old = console.port();
        console.set_port(ring.port);
        old
    });
    let Some(old) = old else { return };
    PORT.store(ring.port.get(), Ordering::Release);
    if let Some(input) = Port::new(INPUT_PORT.load(Ordering::Acquire)) {
        channels.detach(input);
        match channels.attach(ring.port, &INPUT_HANDLER) {
            Ok(()) => INPUT_PORT.store(ring.port.get(), Ordering::Release),
            Err(e) => {
                INPUT_PORT.store(0, Ordering::Release);
                log::warn!("xen: no PV console input after resume: {e}");
            }
        }
    }
    log::info!(
        "xen: PV console on {} after resume ({old} before)",
        ring.port
    );
}

//! Xen's PV console (`HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`) as the kernel's
//! console next to COM1: everything written to the serial console (log,
//! `println!`, the shell, test results) is mirrored to it, and what dom0
//! types into it (`xl console`, or a write to the pty xenconsoled exposes)
//! joins the serial input. PVH guests have no UART, so this is where
//! `xl console` shows the log and reaches the shell.

use core::ptr::NonNull;

use xen::console::{XenConsole, XenconsInterface};
use xen::evtchn::{EventChannels, Port, PortHandler};
use xen::hvm;
use xen::hypercall::HypercallPage;

use crate::sync::SpinLock;

/// The console, once attached. Taken with interrupts disabled, inside the
/// serial port's output lock or its input buffer's lock (it is their leaf).
static PV_CONSOLE: SpinLock<Option<XenConsole<'static, HypercallPage>>> = SpinLock::new(None);
/// Its event channel, once attached.
static PORT: spin::Once<Port> = spin::Once::new();
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
    PORT.call_once(|| ring.port);
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
    let Some(&port) = PORT.get() else { return };
    if let Err(e) = channels.attach(port, &INPUT_HANDLER) {
        log::warn!("xen: no input from the PV console: cannot attach to {port}: {e}");
        return;
    }
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

//! Leaving the kernel: QEMU's `isa-debug-exit` device (tests, the demo),
//! then an optional platform power-off hook (e.g. Xen's SCHEDOP_shutdown),
//! and as a last resort halting the CPU.

use crate::arch::cpu::{self, outl};

/// The `isa-debug-exit` port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Exit status. QEMU exits with `(code << 1) | 1`: 33 for success, 35 for
/// failure (the test runner maps 33 to success).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Everything passed (QEMU status 33).
    Success = 0x10,
    /// Something failed (QEMU status 35).
    Failure = 0x11,
}

/// Powers off by some platform means; gets the exit code; must not return
/// if it succeeded.
pub type PowerOffHook = fn(ExitCode);

static POWER_OFF: spin::Mutex<Option<PowerOffHook>> = spin::Mutex::new(None);

/// Installs the platform power-off hook tried after `isa-debug-exit` (the
/// Xen layer installs SCHEDOP_shutdown here).
pub fn set_power_off_hook(hook: PowerOffHook) {
    *POWER_OFF.lock() = Some(hook);
}

/// Stops the machine with `code`. Under QEMU, `isa-debug-exit` ends the
/// process; otherwise the power-off hook runs; if both are absent the CPU
/// halts with interrupts disabled.
pub fn exit(code: ExitCode) -> ! {
    // SAFETY: QEMU's isa-debug-exit device, if present, ends the process;
    // the port is unused otherwise, and we stop the machine anyway.
    unsafe { outl(DEBUG_EXIT_PORT, code as u32) };
    // Still here: no debug-exit device.
    let hook = POWER_OFF.try_lock().and_then(|h| *h);
    if let Some(hook) = hook {
        hook(code);
    }
    crate::serial::write_fmt(format_args!(
        "kernel: exit({code:?}) with no isa-debug-exit device or power-off hook; halting\n"
    ));
    cpu::halt_forever()
}

/// Powers off with success (used by the shell's `poweroff`).
pub fn poweroff() -> ! {
    exit(ExitCode::Success)
}

//! The panic handler: report (thread, location, message, backtrace), run
//! the installed hook (test images print their FAILED line there), then exit
//! with failure. A panic never hangs the machine.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::serial::EmergencyWriter;

/// Runs after the panic is reported, before the kernel exits with failure.
pub type PanicHook = fn(&PanicInfo<'_>);

static HOOK: spin::Mutex<Option<PanicHook>> = spin::Mutex::new(None);
static PANICKING: AtomicBool = AtomicBool::new(false);

/// Installs the panic hook (replacing any previous one).
pub fn set_hook(hook: PanicHook) {
    *HOOK.lock() = Some(hook);
}

/// Prints return addresses by walking saved frame pointers from `rbp`
/// (the kernel is built with frame pointers), stopping at anything that
/// does not look like a kernel stack.
pub fn print_backtrace(out: &mut dyn Write, mut rbp: u64) {
    let _ = writeln!(out, "  backtrace (resolve with addr2line -e <image>):");
    for depth in 0..32 {
        let readable = rbp != 0
            && rbp.is_multiple_of(8)
            && crate::memory::virt_to_phys_nonblocking(rbp).is_some()
            && crate::memory::virt_to_phys_nonblocking(rbp + 8).is_some();
        if !readable {
            break;
        }
        // SAFETY: both words were just checked to be mapped; a frame-pointer
        // chain stores (previous rbp, return address) at rbp.
        let (next, ret) = unsafe {
            (
                core::ptr::read_volatile(rbp as *const u64),
                core::ptr::read_volatile((rbp + 8) as *const u64),
            )
        };
        if ret == 0 {
            break;
        }
        let _ = writeln!(out, "    #{depth} {ret:#x}");
        if next <= rbp {
            break;
        }
        rbp = next;
    }
}

fn current_rbp() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register, no memory or flags touched.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags))
    };
    rbp
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    let mut out = EmergencyWriter;
    if PANICKING.swap(true, Ordering::SeqCst) {
        let _ = writeln!(out, "\nkernel: panic while panicking: {}", info.message());
        crate::exit::exit(crate::ExitCode::Failure);
    }
    let _ = write!(
        out,
        "\nKERNEL PANIC in thread {}",
        crate::thread::current_id_for_report()
    );
    if let Some(loc) = info.location() {
        let _ = write!(out, " at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    let _ = writeln!(out, ": {}", info.message());
    print_backtrace(&mut out, current_rbp());
    let hook = HOOK.try_lock().and_then(|h| *h);
    if let Some(hook) = hook {
        hook(info);
    }
    crate::exit::exit(crate::ExitCode::Failure)
}

//! Trap dispatch: the entry stubs land here. A breakpoint is counted and
//! resumed; any other CPU exception goes to the exception handler, and
//! vectors 32-255 to the interrupt handler. Both handlers belong to higher
//! layers, which install them at boot (`fault` reports exceptions,
//! `interrupts` dispatches to drivers): arch calls up through them only.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;

use super::cpu;

/// The register state saved by the entry stubs, lowest address first. The
/// layout is shared with the assembly in `idt.rs`.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Vector number pushed by the stub.
    pub vector: u64,
    /// CPU error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Vector numbers of the exceptions handled specially.
pub mod vector {
    /// `int3`.
    pub const BREAKPOINT: u64 = 3;
    /// Double fault (runs on its own IST stack).
    pub const DOUBLE_FAULT: u64 = 8;
    /// Page fault (CR2 holds the address).
    pub const PAGE_FAULT: u64 = 14;
}

/// Handles a CPU exception other than a breakpoint; does not return.
pub type ExceptionHandler = fn(&TrapFrame) -> !;
/// Handles an interrupt (vectors 32-255) with interrupts disabled.
pub type InterruptHandler = fn(&mut TrapFrame);

static EXCEPTION_HANDLER: Once<ExceptionHandler> = Once::new();
static INTERRUPT_HANDLER: Once<InterruptHandler> = Once::new();
static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

/// Installs the exception handler (once, at boot, as soon as the IDT is
/// loaded; later calls are ignored). Until then an exception halts the CPU.
pub fn set_exception_handler(handler: ExceptionHandler) {
    EXCEPTION_HANDLER.call_once(|| handler);
}

/// Installs the interrupt handler (once, at boot, before interrupts are
/// enabled; later calls are ignored). Until then interrupts are dropped.
pub fn set_interrupt_handler(handler: InterruptHandler) {
    INTERRUPT_HANDLER.call_once(|| handler);
}

/// How many `int3` breakpoints have been handled since boot.
pub fn breakpoint_count() -> u64 {
    BREAKPOINTS.load(Ordering::SeqCst)
}

/// Called by the common entry stub with interrupts disabled.
pub(super) extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        vector::BREAKPOINT => {
            // `int3` is a trap: rip already points past it, so returning
            // resumes right after the breakpoint.
            BREAKPOINTS.fetch_add(1, Ordering::SeqCst);
            log::info!("breakpoint at {:#x}; resuming", frame.rip.wrapping_sub(1));
        }
        0..32 => match EXCEPTION_HANDLER.get() {
            Some(handler) => handler(frame),
            None => cpu::halt_forever(),
        },
        _ => {
            if let Some(handler) = INTERRUPT_HANDLER.get() {
                handler(frame);
            }
        }
    }
}

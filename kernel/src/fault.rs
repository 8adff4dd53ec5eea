//! Fatal CPU exceptions: the report (exception, faulting address, a stack
//! overflow's guard page, registers, backtrace, the thread), then the fatal
//! hook, then exit with failure. Installed as `arch::trap`'s exception
//! handler at boot ([`init`]).

use core::fmt;

use crate::arch::trap::{self, TrapFrame, vector};
use crate::memory::GuardPageOwner;

/// A fatal exception as reported to the fatal hook.
pub struct FaultReport<'a> {
    /// The saved registers.
    pub frame: &'a TrapFrame,
    /// CR2 at the time of the report (the last page-fault address).
    pub cr2: u64,
    /// A stack guard page that `cr2` or `rsp` hit, if any: "stack overflow".
    pub stack_overflow: Option<GuardPageOwner>,
}

/// Called after a fatal exception is printed; it must not return. Test
/// images use it to turn an expected double fault into a pass.
pub type FatalHook = fn(&FaultReport<'_>) -> !;

/// Set once or twice at start-up; read (with `try_lock`) only on the fatal path.
static FATAL_HOOK: spin::Mutex<Option<FatalHook>> = spin::Mutex::new(None);

/// Installs the hook run after a fatal exception has been reported (instead
/// of the default: exit with failure). Replaces any previous hook.
pub fn set_fatal_hook(hook: FatalHook) {
    *FATAL_HOOK.lock() = Some(hook);
}

/// Makes [`fatal_exception`] the CPU exception handler. Called once by
/// boot, right after the IDT is loaded.
pub(crate) fn init() {
    trap::set_exception_handler(fatal_exception);
}

fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "non-maskable interrupt",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point error",
        20 => "virtualization exception",
        21 => "control protection exception",
        28 => "hypervisor injection exception",
        29 => "VMM communication exception",
        30 => "security exception",
        _ => "reserved exception",
    }
}

struct Registers<'a>(&'a TrapFrame);

impl fmt::Display for Registers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        writeln!(
            f,
            "  rip {:#018x}  cs {:#06x}  rflags {:#010x}",
            r.rip, r.cs, r.rflags
        )?;
        writeln!(
            f,
            "  rsp {:#018x}  ss {:#06x}  error {:#x}",
            r.rsp, r.ss, r.error_code
        )?;
        writeln!(
            f,
            "  rax {:#018x}  rbx {:#018x}  rcx {:#018x}",
            r.rax, r.rbx, r.rcx
        )?;
        writeln!(
            f,
            "  rdx {:#018x}  rsi {:#018x}  rdi {:#018x}",
            r.rdx, r.rsi, r.rdi
        )?;
        writeln!(
            f,
            "  rbp {:#018x}  r8  {:#018x}  r9  {:#018x}",
            r.rbp, r.r8, r.r9
        )?;
        writeln!(
            f,
            "  r10 {:#018x}  r11 {:#018x}  r12 {:#018x}",
            r.r10, r.r11, r.r12
        )?;
        write!(
            f,
            "  r13 {:#018x}  r14 {:#018x}  r15 {:#018x}",
            r.r13, r.r14, r.r15
        )
    }
}

fn fatal_exception(frame: &TrapFrame) -> ! {
    let cr2 = crate::arch::cpu::cr2();
    let stack_overflow =
        crate::memory::guard_page_owner(cr2).or_else(|| crate::memory::guard_page_owner(frame.rsp));
    let thread = crate::thread::current_id_for_report();
    let mut out = crate::serial::EmergencyWriter;
    let _ = fmt::write(
        &mut out,
        format_args!(
            "\nFATAL: {} (vector {}) in thread {}\n",
            exception_name(frame.vector),
            frame.vector,
            thread
        ),
    );
    if matches!(frame.vector, vector::PAGE_FAULT | vector::DOUBLE_FAULT) {
        let _ = fmt::write(
            &mut out,
            format_args!("  faulting address (cr2) {cr2:#018x}\n"),
        );
    }
    if let Some(owner) = &stack_overflow {
        let _ = fmt::write(&mut out, format_args!("  kernel stack overflow: {owner}\n"));
    }
    let _ = fmt::write(&mut out, format_args!("{}\n", Registers(frame)));
    crate::panic::print_backtrace(&mut out, frame.rbp);
    let report = FaultReport {
        frame,
        cr2,
        stack_overflow,
    };
    let hook = FATAL_HOOK.try_lock().and_then(|hook| *hook);
    if let Some(hook) = hook {
        hook(&report);
    }
    crate::exit::exit(crate::ExitCode::Failure)
}

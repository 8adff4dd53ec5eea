//! The context switch and the first frame of a new thread.
//!
//! A switched-out thread's stack holds its callee-saved registers and the
//! return address into `switch`; its saved stack pointer lives in its
//! `Thread`. Caller-saved registers need no saving (the switch is a call),
//! and interrupt state is restored by each thread's own code on resumption.
//! The kernel target has no SSE, so there is no FPU state to save.

/// Saves callee-saved registers on the current stack, stores the stack
/// pointer to `*save_rsp`, loads `load_rsp` and pops the next thread's
/// registers, returning into it.
///
/// # Safety
/// Interrupts must be disabled; `save_rsp` must be valid for a write;
/// `load_rsp` must be a stack pointer saved by this function or built by
/// [`initial_stack`], whose stack stays mapped while that thread runs.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn switch(save_rsp: *mut u64, load_rsp: u64) {
    core::arch::naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// First code of every new thread: `switch` "returns" here. The stack is
/// 16-byte aligned at this point, so the call below gives `thread_start`
/// the alignment the ABI promises a called function.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() -> ! {
    core::arch::naked_asm!(
        "call {start}",
        "ud2",
        start = sym super::thread_start,
    )
}

/// Writes the first frame of a new thread at the top of its stack and
/// returns the stack pointer to give to [`switch`].
///
/// # Safety
/// `top` must be the 16-byte-aligned top of a mapped, unused stack of at
/// least 64 bytes.
pub(super) unsafe fn initial_stack(top: u64) -> u64 {
    // From the top: 16 bytes of padding (so the trampoline starts with
    // rsp = top - 16, aligned), the return address, six zeroed callee-saved
    // registers (rbp = 0 ends backtraces).
    let frame: [u64; 9] = [0, 0, 0, 0, 0, 0, trampoline as *const () as u64, 0, 0];
    let rsp = top - 8 * frame.len() as u64;
    // SAFETY: guaranteed by the caller: the 72 bytes below `top` are ours.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut u64, frame.len()) };
    rsp
}

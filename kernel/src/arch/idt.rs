//! The IDT: one assembly entry stub per vector (written with `global_asm!`
//! for stable Rust), all funnelling into [`super::trap::trap_dispatch`] with a
//! [`super::trap::TrapFrame`].

use spin::Once;
use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptDescriptorTable;

use super::gdt::DOUBLE_FAULT_IST;

/// Distance between consecutive entry stubs (each is padded to this size).
const STUB_STRIDE: u64 = 16;

// Each stub pushes a zero error code when the CPU does not push one (so the
// frame layout is uniform), then its vector, then jumps to the common path,
// which saves the general registers, calls Rust and returns with iretq.
// Vectors with a CPU error code: 8, 10-14, 17, 21, 29, 30.
core::arch::global_asm!(
    r#"
.section .text.trap_stubs, "ax"
.balign 16
.global trap_stubs
trap_stubs:
.set vec, 0
.rept 256
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
        push 0
    .endif
    push vec
    jmp trap_common
    .set vec, vec + 1
.endr

trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call {dispatch}
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
"#,
    dispatch = sym super::trap::trap_dispatch,
);

unsafe extern "C" {
    static trap_stubs: u8;
}

static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Builds and loads the IDT. Called once on the boot CPU after the GDT.
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        let base = (&raw const trap_stubs) as u64;
        let stub = |vector: u64| VirtAddr::new(base + vector * STUB_STRIDE);
        // SAFETY: each address given to set_handler_addr below is the entry
        // stub for that vector, which saves all registers, handles the
        // error-code difference and returns with iretq.
        unsafe {
            idt.divide_error.set_handler_addr(stub(0));
            idt.debug.set_handler_addr(stub(1));
            idt.non_maskable_interrupt.set_handler_addr(stub(2));
            idt.breakpoint.set_handler_addr(stub(3));
            idt.overflow.set_handler_addr(stub(4));
            idt.bound_range_exceeded.set_handler_addr(stub(5));
            idt.invalid_opcode.set_handler_addr(stub(6));
            idt.device_not_available.set_handler_addr(stub(7));
            idt.double_fault
                .set_handler_addr(stub(8))
                .set_stack_index(DOUBLE_FAULT_IST);
            idt.invalid_tss.set_handler_addr(stub(10));
            idt.segment_not_present.set_handler_addr(stub(11));
            idt.stack_segment_fault.set_handler_addr(stub(12));
            idt.general_protection_fault.set_handler_addr(stub(13));
            idt.page_fault.set_handler_addr(stub(14));
            idt.x87_floating_point.set_handler_addr(stub(16));
            idt.alignment_check.set_handler_addr(stub(17));
            idt.machine_check.set_handler_addr(stub(18));
            idt.simd_floating_point.set_handler_addr(stub(19));
            idt.virtualization.set_handler_addr(stub(20));
            idt.cp_protection_exception.set_handler_addr(stub(21));
            idt.hv_injection_exception.set_handler_addr(stub(28));
            idt.vmm_communication_exception.set_handler_addr(stub(29));
            idt.security_exception.set_handler_addr(stub(30));
            for vector in 32..=255u8 {
                idt[vector].set_handler_addr(stub(u64::from(vector)));
            }
        }
        idt
    });
    idt.load();
}

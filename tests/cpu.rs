//! CPU basics: exceptions that are not fatal resume, and the address space
//! traps what it should.

#![no_std]
#![no_main]

use kernel::arch::trap::breakpoint_count;
use kernel::memory::{VirtAddr, virt_to_phys};

ktests::config!(timeout_secs = 30);
ktests::main!(
    breakpoint_is_handled_and_execution_resumes,
    null_page_is_unmapped
);

fn breakpoint_is_handled_and_execution_resumes() {
    let before = breakpoint_count();
    let mut after_int3 = 0u64;
    // SAFETY: int3 traps into the kernel's breakpoint handler, which returns
    // to the next instruction; no registers or memory are changed.
    unsafe { core::arch::asm!("int3", "mov {0}, 42", out(reg) after_int3) };
    assert_eq!(after_int3, 42, "execution did not resume after int3");
    assert_eq!(
        breakpoint_count(),
        before + 1,
        "handler did not run exactly once"
    );
}

fn null_page_is_unmapped() {
    assert_eq!(virt_to_phys(VirtAddr::new(0)), None, "page 0 must fault");
    assert!(
        virt_to_phys(VirtAddr::new(0x1000)).is_some(),
        "low memory above page 0 is mapped"
    );
}

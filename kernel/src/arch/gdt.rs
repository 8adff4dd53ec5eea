//! GDT and TSS. The TSS exists for its interrupt stack table: the double
//! fault handler runs on its own stack (IST 1) so a kernel stack overflow is
//! reported instead of escalating to a triple fault.

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (0-based, as `x86_64` counts) used by the double-fault handler.
pub const DOUBLE_FAULT_IST: u16 = 0;

const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct FaultStack([u8; DOUBLE_FAULT_STACK_SIZE]);

/// Only the CPU writes this stack, when it delivers a double fault; Rust
/// never makes a reference to it (hence `static mut`, used via `&raw`).
static mut DOUBLE_FAULT_STACK: FaultStack = FaultStack([0; DOUBLE_FAULT_STACK_SIZE]);

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(
    GlobalDescriptorTable,
    SegmentSelector,
    SegmentSelector,
    SegmentSelector,
)> = Once::new();

/// The double-fault stack's address range, for fault reports.
pub fn double_fault_stack() -> core::ops::Range<u64> {
    let base = (&raw const DOUBLE_FAULT_STACK) as u64;
    base..base + DOUBLE_FAULT_STACK_SIZE as u64
}

/// Loads the kernel GDT and TSS and reloads the segment registers.
/// Called once on the boot CPU before the IDT is loaded.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] =
            VirtAddr::new(double_fault_stack().end);
        tss
    });
    let (gdt, code, data, tss_sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment(tss));
        (gdt, code, data, tss_sel)
    });
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which
    // lives in a static for the rest of the kernel's life.
    unsafe {
        CS::set_reg(*code);
        DS::set_reg(*data);
        ES::set_reg(*data);
        SS::set_reg(*data);
        load_tss(*tss_sel);
    }
}

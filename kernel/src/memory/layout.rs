//! Fixed regions of the kernel's virtual address space (see [`super`]).

/// Start of the kernel heap.
pub const HEAP_BASE: u64 = 0xffff_8000_0000_0000;
/// Most the heap may grow to.
pub const HEAP_MAX: u64 = 16 << 30;
/// Start of the thread-stack slots.
pub const STACKS_BASE: u64 = 0xffff_9000_0000_0000;
/// Size of one stack slot: the guard page plus up to 1 MiB - 4 KiB of stack.
pub const STACK_SLOT_SIZE: u64 = 1 << 20;
/// Number of stack slots (threads alive at once).
pub const STACK_SLOTS: u64 = 1 << 16;
/// Start of the MMIO window.
pub const MMIO_BASE: u64 = 0xffff_a000_0000_0000;
/// Size of the MMIO window.
pub const MMIO_SIZE: u64 = 1 << 40;
/// Start of the general kernel mapping area.
pub const KMAP_BASE: u64 = 0xffff_b000_0000_0000;
/// Size of the general kernel mapping area.
pub const KMAP_SIZE: u64 = 1 << 40;

unsafe extern "C" {
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
    static __boot_stack_guard: u8;
    static __boot_stack_top: u8;
}

/// Physical (= virtual) address ranges of the kernel image, from the linker
/// script.
pub struct KernelImage {
    /// `[start, text_end)`: code, read + execute.
    pub start: u64,
    /// End of code, start of read-only data.
    pub text_end: u64,
    /// End of read-only data, start of data/bss.
    pub rodata_end: u64,
    /// End of the image (page aligned).
    pub end: u64,
    /// The boot stack's guard page (left unmapped).
    pub boot_stack_guard: u64,
    /// Top of the boot stack.
    pub boot_stack_top: u64,
}

/// The kernel image's section boundaries.
pub fn kernel_image() -> KernelImage {
    KernelImage {
        start: (&raw const __kernel_start) as u64,
        text_end: (&raw const __text_end) as u64,
        rodata_end: (&raw const __rodata_end) as u64,
        end: (&raw const __kernel_end) as u64,
        boot_stack_guard: (&raw const __boot_stack_guard) as u64,
        boot_stack_top: (&raw const __boot_stack_top) as u64,
    }
}

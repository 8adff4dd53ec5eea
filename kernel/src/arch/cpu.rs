//! Small CPU helpers: interrupt flag save/restore, halting, the TSC, ports.

use x86_64::instructions::{interrupts, port::Port};

/// Whether interrupts were enabled before [`irq_save`]; give it back to
/// [`irq_restore`]. Nesting is fine: each level restores what it saw.
#[derive(Clone, Copy, Debug)]
#[must_use = "give the saved state back to irq_restore"]
pub struct IrqState(bool);

/// Disables interrupts on this CPU and returns the previous state.
#[inline]
pub fn irq_save() -> IrqState {
    let was = interrupts::are_enabled();
    interrupts::disable();
    IrqState(was)
}

/// Restores the interrupt state saved by [`irq_save`].
#[inline]
pub fn irq_restore(state: IrqState) {
    if state.0 {
        interrupts::enable();
    }
}

/// Whether interrupts are enabled on this CPU.
#[inline]
pub fn irqs_enabled() -> bool {
    interrupts::are_enabled()
}

/// Enables interrupts and halts until the next one, atomically (`sti; hlt`),
/// so an interrupt arriving in between cannot be missed.
#[inline]
pub fn enable_irqs_and_halt() {
    interrupts::enable_and_hlt();
}

/// Stops this CPU for good: interrupts off, halt forever.
pub fn halt_forever() -> ! {
    loop {
        interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear in ring 0 anyway.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Executes CPUID for `leaf`/`subleaf`.
#[inline]
pub fn cpuid(leaf: u32, subleaf: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}

// Port I/O reaches the PIC, the PIT, PCI configuration space and devices
// that can DMA into RAM: a stray write can break memory safety, so every
// accessor is `unsafe`, and its caller says which device it drives.

/// Reads an 8-bit I/O port.
///
/// # Safety
/// `port` must belong to a device the caller drives, and reading it must
/// not have side effects (acknowledging, popping a FIFO) another driver
/// relies on.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: the caller vouches for the port (see `# Safety`).
    unsafe { Port::<u8>::new(port).read() }
}

/// Writes an 8-bit I/O port.
///
/// # Safety
/// `port` must belong to a device the caller drives, and the write must
/// leave it in a state that cannot break memory safety (no DMA into memory
/// the kernel uses, no interrupt routing the kernel does not expect).
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the port and the value.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Reads a 32-bit I/O port.
///
/// # Safety
/// As for [`inb`].
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::<u32>::new(port).read() }
}

/// Writes a 32-bit I/O port.
///
/// # Safety
/// As for [`outb`].
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller vouches for the port and the value.
    unsafe { Port::<u32>::new(port).write(value) }
}

/// Reads CR2 (the faulting address of the last page fault).
#[inline]
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

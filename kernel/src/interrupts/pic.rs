//! The legacy 8259 PICs: remapped to vectors 32-47 (so their spurious
//! interrupts cannot look like exceptions) and fully masked; the IOAPIC
//! delivers ISA interrupts instead.

use crate::arch::cpu::outb;

const PIC1: u16 = 0x20;
const PIC2: u16 = 0xa0;
const BASE: u8 = 32;

/// Whether `vector` belongs to the (masked) PICs: only spurious ones arrive.
pub(super) fn is_pic_vector(vector: u8) -> bool {
    (BASE..BASE + 16).contains(&vector)
}

pub(super) fn remap_and_mask() {
    // SAFETY: ports 0x20/0x21 and 0xa0/0xa1 are the two PICs, which this
    // module owns; the sequence only moves their vectors off the exceptions
    // and masks every line.
    unsafe {
        // ICW1..ICW4: init, vector offsets, cascade on IRQ 2, 8086 mode.
        outb(PIC1, 0x11);
        outb(PIC2, 0x11);
        outb(PIC1 + 1, BASE);
        outb(PIC2 + 1, BASE + 8);
        outb(PIC1 + 1, 4);
        outb(PIC2 + 1, 2);
        outb(PIC1 + 1, 1);
        outb(PIC2 + 1, 1);
        // Mask everything.
        outb(PIC1 + 1, 0xff);
        outb(PIC2 + 1, 0xff);
    }
}

//! x86_64 specifics: the boot entry, CPU helpers, segmentation and traps.

pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod trap;

core::arch::global_asm!(include_str!("boot.s"), options(att_syntax));

//! What the kernel needs to find and program a PCI function's MSI-X
//! vectors, as pure code: the walk over the capability list, the layout of
//! the MSI-X capability ([`capability`]), and the message a device writes to
//! raise an x86 interrupt ([`msi`]). The caller supplies config-space reads
//! and does the MMIO; nothing here touches hardware, so the host tests it.

#![no_std]

pub mod capability;
pub mod msi;

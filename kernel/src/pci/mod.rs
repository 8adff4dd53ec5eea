//! PCI configuration space through the legacy 0xcf8/0xcfc ports (present on
//! QEMU's i440fx and q35 and on Xen HVM; not on Xen PVH), enumeration, BAR
//! decoding, the capability list ([`capability`]) and MSI-X ([`msix`]) for
//! drivers (the ivshmem-doorbell test platform of the xenstore ring).

pub mod msix;

use alloc::vec::Vec;
use core::fmt;

use pci_msi::capability;

use crate::arch::cpu::{inl, outl};
use crate::spinlock::SpinLock;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
const COMMAND: u8 = 0x04;
const COMMAND_IO: u16 = 1 << 0;
const COMMAND_MEMORY: u16 = 1 << 1;
const COMMAND_BUS_MASTER: u16 = 1 << 2;
const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// Serialises the two-step address/data protocol. A leaf lock.
static CONFIG_LOCK: SpinLock<()> = SpinLock::new(());

/// A PCI function's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PciAddress {
    /// Bus 0-255.
    pub bus: u8,
    /// Device 0-31.
    pub device: u8,
    /// Function 0-7.
    pub function: u8,
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

impl PciAddress {
    /// Reads the aligned config dword at `offset`.
    pub fn read32(self, offset: u8) -> u32 {
        let _cfg = CONFIG_LOCK.lock();
        // SAFETY: 0xcf8/0xcfc are the config mechanism, owned by this module
        // and serialised by `CONFIG_LOCK`; config reads have no side effects.
        unsafe {
            outl(CONFIG_ADDRESS, self.config_address(offset));
            inl(CONFIG_DATA)
        }
    }

    /// Writes the aligned config dword at `offset`.
    ///
    /// # Safety
    /// A config write can move a BAR over RAM, turn on bus mastering or
    /// retarget interrupts: the caller must drive this function and write
    /// only values that leave its DMA and decoding aimed at memory and
    /// addresses it may use.
    pub unsafe fn write32(self, offset: u8, value: u32) {
        let _cfg = CONFIG_LOCK.lock();
        // SAFETY: as in `read32`; the caller vouches for the value.
        unsafe {
            outl(CONFIG_ADDRESS, self.config_address(offset));
            outl(CONFIG_DATA, value);
        }
    }

    /// Reads the config word at `offset` (2-byte aligned).
    pub fn read16(self, offset: u8) -> u16 {
        (self.read32(offset & !3) >> ((offset & 2) * 8)) as u16
    }

    /// Writes the config word at `offset` (2-byte aligned), preserving the
    /// other half of its dword.
    ///
    /// # Safety
    /// As for [`write32`](Self::write32).
    pub unsafe fn write16(self, offset: u8, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read32(offset & !3) & !(0xffff << shift);
        // SAFETY: the other half is written back unchanged; the caller
        // vouches for `value`.
        unsafe { self.write32(offset & !3, old | (u32::from(value) << shift)) };
    }

    /// Reads the config byte at `offset`.
    pub fn read8(self, offset: u8) -> u8 {
        (self.read32(offset & !3) >> ((offset & 3) * 8)) as u8
    }

    fn config_address(self, offset: u8) -> u32 {
        0x8000_0000
            | (u32::from(self.bus) << 16)
            | (u32::from(self.device) << 11)
            | (u32::from(self.function) << 8)
            | u32::from(offset & 0xfc)
    }
}

/// A decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// Memory space (map it with [`crate::memory::map_mmio`]).
    Memory {
        /// Physical address (may be above 4 GiB for 64-bit BARs).
        address: u64,
        /// Size in bytes.
        size: u64,
        /// Whether it is prefetchable.
        prefetchable: bool,
    },
    /// I/O port space.
    Io {
        /// First port.
        port: u16,
        /// Number of ports.
        size: u32,
    },
}

/// One PCI function found by [`enumerate`].
#[derive(Clone, Copy, Debug)]
pub struct PciDevice {
    /// Its address.
    pub address: PciAddress,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Class, subclass, prog-if.
    pub class: [u8; 3],
}

impl fmt::Display for PciDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} class {:02x}{:02x}{:02x}",
            self.address, self.vendor, self.device, self.class[0], self.class[1], self.class[2]
        )
    }
}

impl PciDevice {
    /// The interrupt line register (the IRQ the firmware routed INTx to;
    /// 0xff if none), for [`crate::interrupts::register_pci_intx`].
    pub fn interrupt_line(&self) -> u8 {
        self.address.read8(0x3c)
    }

    /// The interrupt pin (1 = INTA .. 4 = INTD, 0 = none).
    pub fn interrupt_pin(&self) -> u8 {
        self.address.read8(0x3d)
    }

    /// Enables memory decoding and bus mastering, and INTx delivery.
    ///
    /// # Safety
    /// With bus mastering on the function may DMA: whatever it was left
    /// programmed to do (by firmware, or a kernel before us) must target
    /// only memory the caller gives it, or be nothing.
    pub unsafe fn enable(&self) {
        let cmd = self.address.read16(COMMAND);
        let cmd = (cmd | COMMAND_MEMORY | COMMAND_BUS_MASTER) & !COMMAND_INTX_DISABLE;
        // SAFETY: the caller vouches for the function's DMA; the BARs are
        // the firmware's, which do not overlap RAM.
        unsafe { self.address.write16(COMMAND, cmd) };
    }

    /// The function's capability list (see [`capability::capabilities`]).
    pub fn capabilities(&self) -> capability::Capabilities<impl Fn(u8) -> u32> {
        let address = self.address;
        capability::capabilities(move |offset| address.read32(offset))
    }

    /// Decodes BAR `index` (0-5); `None` if unimplemented or the upper half
    /// of a 64-bit BAR. Sizing briefly disables decoding, so call it before
    /// the device is in use.
    pub fn bar(&self, index: u8) -> Option<Bar> {
        if index > 5 || self.is_upper_half_of_64_bit_bar(index) {
            return None;
        }
        let a = self.address;
        let off = 0x10 + index * 4;
        let low = a.read32(off);
        let cmd = a.read16(COMMAND);
        // SAFETY: BAR sizing as the PCI spec describes it, with decoding off,
        // so the all-ones probe decodes nowhere; each BAR and the command
        // register get their old values back before decoding resumes.
        unsafe {
            a.write16(COMMAND, cmd & !(COMMAND_IO | COMMAND_MEMORY));
            let bar = if low & 1 == 1 {
                a.write32(off, u32::MAX);
                let mask = a.read32(off) & !0x3;
                a.write32(off, low);
                let size = (!mask).wrapping_add(1) & 0xffff;
                (mask != 0).then_some(Bar::Io {
                    port: (low & !0x3) as u16,
                    size,
                })
            } else {
                let is64 = (low >> 1) & 0x3 == 0x2;
                let high = if is64 && index < 5 {
                    a.read32(off + 4)
                } else {
                    0
                };
                a.write32(off, u32::MAX);
                let mask_low = a.read32(off) & !0xf;
                a.write32(off, low);
                let mask_high = if is64 && index < 5 {
                    a.write32(off + 4, u32::MAX);
                    let m = a.read32(off + 4);
                    a.write32(off + 4, high);
                    m
                } else {
                    u32::MAX
                };
                let mask = (u64::from(mask_high) << 32) | u64::from(mask_low);
                (mask_low != 0).then_some(Bar::Memory {
                    address: (u64::from(high) << 32) | u64::from(low & !0xf),
                    size: (!mask).wrapping_add(1),
                    prefetchable: low & 0x8 != 0,
                })
            };
            a.write16(COMMAND, cmd);
            bar
        }
    }

    /// Whether BAR `index` holds the high 32 bits of the 64-bit memory BAR
    /// before it. Only a walk from BAR0 can tell: the register itself is an
    /// address, and its low bits may look like any BAR type.
    fn is_upper_half_of_64_bit_bar(&self, index: u8) -> bool {
        let mut i = 0;
        while i < index {
            let low = self.address.read32(0x10 + i * 4);
            let is_64_bit_memory = low & 1 == 0 && (low >> 1) & 0x3 == 0x2;
            if is_64_bit_memory && i + 1 == index {
                return true;
            }
            i += if is_64_bit_memory { 2 } else { 1 };
        }
        false
    }
}

/// Every PCI function on every bus (brute force; fine at boot).
pub fn enumerate() -> Vec<PciDevice> {
    let mut found = Vec::new();
    for bus in 0..=255u8 {
        for device in 0..32u8 {
            for function in 0..8u8 {
                let address = PciAddress {
                    bus,
                    device,
                    function,
                };
                let id = address.read32(0);
                if id & 0xffff == 0xffff {
                    if function == 0 {
                        break; // no device here
                    }
                    continue;
                }
                let class = address.read32(0x08);
                found.push(PciDevice {
                    address,
                    vendor: id as u16,
                    device: (id >> 16) as u16,
                    class: [(class >> 24) as u8, (class >> 16) as u8, (class >> 8) as u8],
                });
                let multifunction = address.read8(0x0e) & 0x80 != 0;
                if function == 0 && !multifunction {
                    break;
                }
            }
        }
    }
    found
}

/// The first function with this vendor and device id.
pub fn find(vendor: u16, device: u16) -> Option<PciDevice> {
    enumerate()
        .into_iter()
        .find(|d| d.vendor == vendor && d.device == device)
}

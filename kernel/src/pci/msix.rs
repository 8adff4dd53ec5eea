//! MSI-X for one PCI function: find the capability, map the vector table,
//! point entries at a local-APIC vector, and turn delivery on.
//!
//! Order (PCI 3.0, 6.8.2): set Enable together with Function Mask so no
//! entry fires half-programmed, mask every entry, program the entries the
//! driver wants and unmask them, then clear Function Mask. A device keeps
//! an event that arrives while its entry is masked in the pending-bit
//! array and sends it on unmask (QEMU does too), but a device that raises
//! nothing while MSI-X is disabled (ivshmem-doorbell) loses events from
//! before [`MsixTable::enable`]: drivers re-check their state after it.

use core::fmt;

use super::{Bar, PciDevice};
use crate::memory::{MapError, MmioRegion, map_mmio};
use pci_msi::capability::{
    CAP_ID_MSIX, CapListError, MSIX_CONTROL_ENABLE, MSIX_CONTROL_FUNCTION_MASK, MSIX_ENTRY_MASKED,
    MsixInfo,
};
use pci_msi::msi::{MSI_ADDRESS_BASE, MsiMessage};

/// Why MSI-X could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixError {
    /// The function has no MSI-X capability.
    NoCapability,
    /// The capability list is corrupt.
    CapabilityList(CapListError),
    /// The capability names a reserved BAR, or does not fit in config space.
    BadCapability,
    /// The BAR holding the table is not a memory BAR.
    TableBarMissing {
        /// Its index.
        bar: u8,
    },
    /// The table does not fit in its BAR.
    TableOutsideBar,
    /// Mapping the table failed.
    Map(MapError),
    /// No such table entry.
    NoSuchEntry(u16),
    /// A message address outside the MSI window, refused by
    /// [`MsixTable::program`].
    NotMsiAddress(u64),
}

impl fmt::Display for MsixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCapability => write!(f, "no MSI-X capability"),
            Self::CapabilityList(e) => write!(f, "corrupt capability list: {e:?}"),
            Self::BadCapability => write!(
                f,
                "MSI-X capability names a reserved BAR or runs past config space"
            ),
            Self::TableBarMissing { bar } => write!(f, "MSI-X table BAR{bar} is not memory"),
            Self::TableOutsideBar => write!(f, "MSI-X table does not fit in its BAR"),
            Self::Map(e) => write!(f, "cannot map the MSI-X table: {e}"),
            Self::NoSuchEntry(i) => write!(f, "no MSI-X table entry {i}"),
            Self::NotMsiAddress(a) => write!(f, "{a:#x} is not an MSI address"),
        }
    }
}

/// Message Control's offset within the capability.
const CONTROL: u8 = 2;
/// Entry field offsets.
const ENTRY_ADDRESS_LOW: usize = 0;
const ENTRY_ADDRESS_HIGH: usize = 4;
const ENTRY_DATA: usize = 8;
const ENTRY_VECTOR_CONTROL: usize = 12;

/// A function's MSI-X table, mapped, with MSI-X enabled and the function
/// masked until [`MsixTable::enable`].
pub struct MsixTable {
    device: PciDevice,
    /// Config-space offset of the capability.
    cap: u8,
    info: MsixInfo,
    /// The table, uncached (device registers).
    table: MmioRegion,
}

impl MsixTable {
    /// Finds `device`'s MSI-X capability, maps its table, sets Enable and
    /// Function Mask and masks every entry. The device's memory decoding
    /// and bus mastering must be on ([`PciDevice::enable`]): MSI-X messages
    /// are bus-master writes.
    pub fn setup(device: &PciDevice) -> Result<MsixTable, MsixError> {
        let cap = device
            .capabilities()
            .find(CAP_ID_MSIX)
            .map_err(MsixError::CapabilityList)?
            .ok_or(MsixError::NoCapability)?;
        let a = device.address;
        let info = MsixInfo::read(cap.offset, |offset| a.read32(offset))
            .ok_or(MsixError::BadCapability)?;
        let Some(Bar::Memory { address, size, .. }) = device.bar(info.table_bar) else {
            return Err(MsixError::TableBarMissing {
                bar: info.table_bar,
            });
        };
        let table_len = usize::from(info.table_size) * pci_msi::capability::MSIX_ENTRY_SIZE;
        if u64::from(info.table_offset) + table_len as u64 > size {
            return Err(MsixError::TableOutsideBar);
        }
        let table_phys = address
            .checked_add(u64::from(info.table_offset))
            .ok_or(MsixError::TableOutsideBar)?;
        // SAFETY: the table lies inside a memory BAR (checked above), device
        // memory; its entries are written only by `program`, which keeps the
        // messages in the interrupt window.
        let table = unsafe { map_mmio(table_phys, table_len) }.map_err(MsixError::Map)?;
        let control = a.read16(cap.offset + CONTROL);
        // SAFETY: turns MSI-X on with the whole function masked: nothing
        // fires until `program` has aimed an entry at the interrupt window.
        unsafe {
            a.write16(
                cap.offset + CONTROL,
                control | MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK,
            );
        }
        let msix = MsixTable {
            device: *device,
            cap: cap.offset,
            info,
            table,
        };
        for entry in 0..info.table_size {
            msix.set_masked(entry, true)?;
        }
        Ok(msix)
    }

    /// What the capability says (table size, where the table is).
    pub fn info(&self) -> MsixInfo {
        self.info
    }

    fn entry(&self, index: u16) -> Result<usize, MsixError> {
        self.info
            .entry_offset(index)
            .map(|off| off - self.info.table_offset as usize)
            .ok_or(MsixError::NoSuchEntry(index))
    }

    fn set_masked(&self, index: u16, masked: bool) -> Result<(), MsixError> {
        let at = self.entry(index)? + ENTRY_VECTOR_CONTROL;
        let control = self.table.read32(at);
        let control = if masked {
            control | MSIX_ENTRY_MASKED
        } else {
            control & !MSIX_ENTRY_MASKED
        };
        self.table.write32(at, control);
        Ok(())
    }

    /// Points entry `index` at `message` and unmasks it. The entry is
    /// masked while its fields change, so it never fires half-written.
    /// A message whose address is outside the MSI window (0xfee0_0000,
    /// 1 MiB) is refused: the device would write `data` there, into RAM.
    pub fn program(&self, index: u16, message: MsiMessage) -> Result<(), MsixError> {
        if message.address >> 20 != u64::from(MSI_ADDRESS_BASE >> 20) {
            return Err(MsixError::NotMsiAddress(message.address));
        }
        let at = self.entry(index)?;
        self.set_masked(index, true)?;
        self.table
            .write32(at + ENTRY_ADDRESS_LOW, message.address as u32);
        self.table
            .write32(at + ENTRY_ADDRESS_HIGH, (message.address >> 32) as u32);
        self.table.write32(at + ENTRY_DATA, message.data);
        self.set_masked(index, false)
    }

    /// Clears Function Mask: unmasked entries may fire from now on.
    pub fn enable(&self) {
        let a = self.device.address;
        let control = a.read16(self.cap + CONTROL);
        // SAFETY: entries can only hold interrupt-window addresses (see
        // `program`), so unmasking lets the device raise interrupts, no more.
        unsafe {
            a.write16(
                self.cap + CONTROL,
                (control | MSIX_CONTROL_ENABLE) & !MSIX_CONTROL_FUNCTION_MASK,
            );
        }
    }

    /// Masks the whole function (events are then held pending by the
    /// device, or dropped by one without a pending-bit array).
    pub fn mask_function(&self) {
        let a = self.device.address;
        let control = a.read16(self.cap + CONTROL);
        // SAFETY: masking only stops the function's interrupts.
        unsafe { a.write16(self.cap + CONTROL, control | MSIX_CONTROL_FUNCTION_MASK) };
    }
}

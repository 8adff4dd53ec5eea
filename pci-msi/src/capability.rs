//! The PCI capability list: a walk over a function's config space, and the
//! layout of the MSI-X capability.
//!
//! Pure code over a config-space reader (no port I/O here): the kernel's
//! PCI driver supplies the reader, and the host runs the tests.
//!
//! Config space (PCI Local Bus 3.0, section 6.7): Status bit 4 says a list
//! exists; its head is the byte at 0x34; each entry starts with its id and
//! the offset of the next entry (0 ends the list). Entries live in
//! 0x40..=0xfc, dword aligned (the low two bits of a pointer are reserved
//! and masked off). A device (or a hostile hypervisor) may present a
//! corrupt list: pointers into the header or a loop. The walk then stops
//! and says so instead of spinning or reading nonsense.

/// Capability id of MSI.
pub const CAP_ID_MSI: u8 = 0x05;
/// Capability id of vendor-specific data.
pub const CAP_ID_VENDOR: u8 = 0x09;
/// Capability id of MSI-X.
pub const CAP_ID_MSIX: u8 = 0x11;

/// Offset of the dword holding Command (low half) and Status (high half).
const COMMAND_STATUS: u8 = 0x04;
/// Status bit: the capability list exists.
const STATUS_CAP_LIST: u32 = 1 << 4;
/// Offset of the capability pointer.
const CAP_POINTER: u8 = 0x34;
/// The first offset after the standard header.
const FIRST_CAP_OFFSET: u8 = 0x40;
/// At most this many entries fit in 0x40..0x100 (one dword each).
const MAX_CAPS: usize = (256 - FIRST_CAP_OFFSET as usize) / 4;

/// One entry of the capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Its id ([`CAP_ID_MSIX`], ...).
    pub id: u8,
    /// Its offset in config space.
    pub offset: u8,
}

/// Why a walk stopped before the end of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapListError {
    /// A pointer into the standard header (below 0x40).
    BadPointer {
        /// The offending pointer.
        pointer: u8,
    },
    /// More entries than config space can hold: the list loops.
    Loop,
}

/// Iterates over a function's capability list. Reads config space through
/// `read32(offset)` (an aligned dword at `offset`).
pub struct Capabilities<F: Fn(u8) -> u32> {
    read32: F,
    next: u8,
    seen: usize,
    error: Option<CapListError>,
}

/// The capability list of the function `read32` reads (empty when Status
/// says there is none).
pub fn capabilities<F: Fn(u8) -> u32>(read32: F) -> Capabilities<F> {
    let has_list = read32(COMMAND_STATUS) >> 16 & STATUS_CAP_LIST != 0;
    let next = if has_list {
        read32(CAP_POINTER) as u8 & 0xfc
    } else {
        0
    };
    Capabilities {
        read32,
        next,
        seen: 0,
        error: None,
    }
}

impl<F: Fn(u8) -> u32> Capabilities<F> {
    /// Why the walk stopped early, once the iterator has returned `None`
    /// (`None`: it reached the end of a well-formed list).
    pub fn error(&self) -> Option<CapListError> {
        self.error
    }

    /// The first capability with `id`, or why the list could not be
    /// searched to its end (`Ok(None)`: not present).
    pub fn find(mut self, id: u8) -> Result<Option<Capability>, CapListError> {
        match self.by_ref().find(|c| c.id == id) {
            Some(cap) => Ok(Some(cap)),
            None => self.error.map_or(Ok(None), Err),
        }
    }
}

impl<F: Fn(u8) -> u32> Iterator for Capabilities<F> {
    type Item = Capability;

    fn next(&mut self) -> Option<Capability> {
        if self.next == 0 || self.error.is_some() {
            return None;
        }
        if self.next < FIRST_CAP_OFFSET {
            self.error = Some(CapListError::BadPointer { pointer: self.next });
            return None;
        }
        if self.seen == MAX_CAPS {
            self.error = Some(CapListError::Loop);
            return None;
        }
        self.seen += 1;
        let offset = self.next;
        let header = (self.read32)(offset);
        self.next = (header >> 8) as u8 & 0xfc;
        Some(Capability {
            id: header as u8,
            offset,
        })
    }
}

/// Message Control bit: MSI-X enabled.
pub const MSIX_CONTROL_ENABLE: u16 = 1 << 15;
/// Message Control bit: every vector of the function masked.
pub const MSIX_CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// Bytes per MSI-X table entry: address low, address high, data, vector
/// control (bit 0: masked).
pub const MSIX_ENTRY_SIZE: usize = 16;
/// Vector control bit: this entry is masked.
pub const MSIX_ENTRY_MASKED: u32 = 1;

/// A decoded MSI-X capability (PCI 3.0, section 6.8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixInfo {
    /// Entries in the table (Table Size + 1).
    pub table_size: u16,
    /// BAR index holding the table.
    pub table_bar: u8,
    /// Offset of the table in that BAR.
    pub table_offset: u32,
    /// BAR index holding the pending-bit array.
    pub pba_bar: u8,
    /// Offset of the pending-bit array in that BAR.
    pub pba_offset: u32,
}

impl MsixInfo {
    /// Decodes the capability's first three dwords (header with Message
    /// Control, Table Offset/BIR, PBA Offset/BIR). `None` when a BIR names
    /// no BAR (6 and 7 are reserved).
    pub fn decode(header: u32, table: u32, pba: u32) -> Option<MsixInfo> {
        let control = (header >> 16) as u16;
        let (table_bar, pba_bar) = ((table & 7) as u8, (pba & 7) as u8);
        if table_bar > 5 || pba_bar > 5 {
            return None;
        }
        Some(MsixInfo {
            table_size: (control & 0x7ff) + 1,
            table_bar,
            table_offset: table & !7,
            pba_bar,
            pba_offset: pba & !7,
        })
    }

    /// Reads and decodes the MSI-X capability found at config-space
    /// `offset` through `read32`. `None` when a BIR names no BAR, or when the
    /// capability's three dwords do not fit in config space (a device may
    /// put its header in the last dwords).
    pub fn read(offset: u8, read32: impl Fn(u8) -> u32) -> Option<MsixInfo> {
        let table = offset.checked_add(4)?;
        let pba = offset.checked_add(8)?;
        Self::decode(read32(offset), read32(table), read32(pba))
    }

    /// Byte offset of entry `index` in the table's BAR (`None` past the table).
    pub fn entry_offset(&self, index: u16) -> Option<usize> {
        (index < self.table_size)
            .then(|| self.table_offset as usize + usize::from(index) * MSIX_ENTRY_SIZE)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec::Vec;

    /// A config space given as (offset, dword) pairs; everything else reads 0.
    fn space(dwords: &[(u8, u32)]) -> impl Fn(u8) -> u32 + '_ {
        move |off| {
            dwords
                .iter()
                .find(|(o, _)| *o == off)
                .map_or(0, |(_, v)| *v)
        }
    }

    const WITH_LIST: (u8, u32) = (0x04, (STATUS_CAP_LIST << 16) | 0x0007);

    #[test]
    fn walks_the_list_in_order_and_masks_reserved_pointer_bits() {
        // ivshmem-doorbell's shape: MSI-X at 0x40, then a vendor cap at 0x50.
        let cfg = space(&[
            WITH_LIST,
            (0x34, 0x43), // low bits reserved: still 0x40
            (0x40, 0x0000_5011),
            (0x50, 0x0000_0009),
        ]);
        let caps: Vec<_> = capabilities(&cfg).collect();
        assert_eq!(
            caps,
            [
                Capability {
                    id: CAP_ID_MSIX,
                    offset: 0x40
                },
                Capability {
                    id: CAP_ID_VENDOR,
                    offset: 0x50
                }
            ]
        );
        assert_eq!(
            capabilities(&cfg).find(CAP_ID_VENDOR),
            Ok(Some(Capability {
                id: 9,
                offset: 0x50
            }))
        );
        assert_eq!(capabilities(&cfg).find(CAP_ID_MSI), Ok(None));
    }

    #[test]
    fn no_list_when_status_says_so() {
        // A pointer without the Status bit is ignored (it may be garbage).
        let cfg = space(&[(0x04, 0x0007), (0x34, 0x40), (0x40, 0x11)]);
        assert_eq!(capabilities(&cfg).count(), 0);
    }

    #[test]
    fn a_looping_list_ends_with_an_error() {
        let cfg = space(&[WITH_LIST, (0x34, 0x40), (0x40, 0x4005)]);
        let mut caps = capabilities(&cfg);
        assert_eq!(caps.by_ref().count(), MAX_CAPS);
        assert_eq!(caps.error(), Some(CapListError::Loop));
        assert_eq!(
            capabilities(&cfg).find(CAP_ID_MSIX),
            Err(CapListError::Loop)
        );
    }

    #[test]
    fn a_pointer_into_the_header_ends_with_an_error() {
        let cfg = space(&[WITH_LIST, (0x34, 0x40), (0x40, 0x1009)]);
        let mut caps = capabilities(&cfg);
        assert_eq!(caps.next().map(|c| c.id), Some(CAP_ID_VENDOR));
        assert_eq!(caps.next(), None);
        assert_eq!(
            caps.error(),
            Some(CapListError::BadPointer { pointer: 0x10 })
        );
    }

    #[test]
    fn msix_capability_fields_decode() {
        // Table size 1 (encoded 0), table in BAR1 at 0, PBA in BAR1 at 0x800.
        let info = MsixInfo::decode(0x0000_0011, 0x0000_0001, 0x0000_0801).unwrap();
        assert_eq!(
            info,
            MsixInfo {
                table_size: 1,
                table_bar: 1,
                table_offset: 0,
                pba_bar: 1,
                pba_offset: 0x800
            }
        );
        assert_eq!(info.entry_offset(0), Some(0));
        assert_eq!(info.entry_offset(1), None);
        let big = MsixInfo::decode(0xc7ff_0011, 0x0000_2004, 0x0000_3004).unwrap();
        assert_eq!(
            (big.table_size, big.table_bar, big.table_offset),
            (2048, 4, 0x2000)
        );
        assert_eq!(big.entry_offset(3), Some(0x2000 + 48));
        assert_eq!(MsixInfo::decode(0x11, 0x6, 0x1), None, "BIR 6 is reserved");
    }

    #[test]
    fn msix_capability_running_past_config_space_is_refused() {
        let cfg = |_| 0x0000_0011; // every dword an MSI-X header, BIR 1
        assert!(MsixInfo::read(0xf4, cfg).is_some(), "the last three dwords");
        assert_eq!(MsixInfo::read(0xf8, cfg), None);
        assert_eq!(MsixInfo::read(0xfc, cfg), None);
    }
}

//! The MSI-X capability of the device the kernel's test platform rests on,
//! as the kernel reads and programs it.

use pci_msi::{capability, msi};

/// The ivshmem-doorbell device QEMU 7.2 presents, as the kernel walks it:
/// MSI-X first in the list, table and PBA in BAR1.
#[test]
fn ivshmem_doorbell_msix_is_found_and_programmed_for_cpu_0() {
    let config = |offset: u8| -> u32 {
        match offset {
            0x04 => 0x0010_0007, // Status: capability list; Command: io, mem, master
            0x34 => 0x40,
            0x40 => 0x0000_0011, // MSI-X, end of list, 1 vector
            0x44 => 0x0000_0001, // table: BAR1 + 0
            0x48 => 0x0000_0801, // PBA: BAR1 + 0x800
            _ => 0,
        }
    };
    let cap = capability::capabilities(config)
        .find(capability::CAP_ID_MSIX)
        .expect("well-formed list")
        .expect("MSI-X present");
    let info = capability::MsixInfo::read(cap.offset, config).expect("valid BIRs");
    assert_eq!(
        (info.table_bar, info.table_offset, info.table_size),
        (1, 0, 1)
    );
    let message = msi::MsiMessage::fixed(0, 0x31).expect("a dynamic vector");
    assert_eq!(message.address as u32, 0xfee0_0000);
    assert_eq!(message.data & 0xff, 0x31);
}

//! The x86 MSI message: the address and data a device writes to raise an
//! interrupt (Intel SDM vol. 3, "Message Signalled Interrupts"). Used for
//! MSI and for each MSI-X table entry.
//!
//! Pure code: the kernel programs what it computes, and the host runs the
//! tests.
//!
//! Address: 0xFEE in bits 31:20, the destination APIC id in 19:12,
//! redirection hint (bit 3) and destination mode (bit 2) both 0: physical
//! destination, exactly that CPU. Data: the vector in 7:0, delivery mode
//! fixed (10:8 = 0), level "assert" (bit 14) and edge trigger (bit 15 = 0),
//! as Linux writes them.

/// Base of the MSI address window.
pub const MSI_ADDRESS_BASE: u32 = 0xfee0_0000;
/// Data bit 14: level assert (required by some chipsets for edge too).
const DATA_LEVEL_ASSERT: u32 = 1 << 14;
/// The lowest vector an MSI may carry: 0-15 are reserved and raise an
/// APIC error ("illegal vector").
pub const MIN_MSI_VECTOR: u8 = 16;

/// What a device writes to raise one interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    /// The address (the high half is 0 on x86).
    pub address: u64,
    /// The data.
    pub data: u32,
}

impl MsiMessage {
    /// A fixed-delivery, edge-triggered interrupt on `vector` for the CPU
    /// whose local APIC id is `apic_id`. `None` for a reserved vector.
    pub fn fixed(apic_id: u8, vector: u8) -> Option<MsiMessage> {
        (vector >= MIN_MSI_VECTOR).then(|| MsiMessage {
            address: u64::from(MSI_ADDRESS_BASE | (u32::from(apic_id) << 12)),
            data: DATA_LEVEL_ASSERT | u32::from(vector),
        })
    }

    /// The vector this message raises.
    pub fn vector(&self) -> u8 {
        self.data as u8
    }

    /// The destination APIC id.
    pub fn destination(&self) -> u8 {
        (self.address >> 12) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_edge_message_for_one_cpu() {
        let m = MsiMessage::fixed(0, 0x30).unwrap();
        assert_eq!(m.address, 0xfee0_0000, "APIC 0, physical mode, no hint");
        assert_eq!(m.data, 0x4030, "vector 0x30, fixed, edge, assert");
        let m = MsiMessage::fixed(3, 0xef).unwrap();
        assert_eq!(m.address, 0xfee0_3000);
        assert_eq!((m.vector(), m.destination()), (0xef, 3));
        assert_eq!(m.data & 0x700, 0, "delivery mode fixed");
        assert_eq!(m.data & (1 << 15), 0, "edge triggered");
    }

    #[test]
    fn reserved_vectors_are_refused() {
        assert_eq!(MsiMessage::fixed(0, 15), None);
        assert!(MsiMessage::fixed(0, 16).is_some());
    }
}

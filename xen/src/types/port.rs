//! Event-channel ports and virtual IRQs, and the bitmap geometry that bounds a port.

use core::fmt;

/// Bits in one `xen_ulong_t` word of the event-channel bitmaps.
pub const BITS_PER_WORD: usize = 64;
/// Words in `evtchn_pending` / `evtchn_mask` (`sizeof(xen_ulong_t) * 8`).
pub const EVTCHN_WORDS: usize = 64;

/// Ports the 2-level ABI has on x86_64: 64 words of 64 bits.
pub const NR_PORTS: usize = EVTCHN_WORDS * BITS_PER_WORD;

/// A local event-channel port (`evtchn_port_t`), guaranteed to fit the 2-level bitmaps.
///
/// Port 0 is never allocated by Xen (it is reserved), so it is rejected too: an HVM param
/// holding 0 means "not set up", not "port 0".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(u32);

impl Port {
    /// `raw` as a port, if `1 <= raw < NR_PORTS`.
    pub const fn new(raw: u32) -> Option<Port> {
        if raw != 0 && (raw as usize) < NR_PORTS {
            Some(Port(raw))
        } else {
            None
        }
    }

    /// The port number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Index of the bitmap word holding this port.
    pub(crate) const fn word(self) -> usize {
        self.0 as usize / BITS_PER_WORD
    }

    /// This port's bit within its word.
    pub(crate) const fn bit(self) -> u64 {
        1 << (self.0 as usize % BITS_PER_WORD)
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A virtual IRQ (`VIRQ_*` in `xen.h`) that can be bound to a port with `EVTCHNOP_bind_virq`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Virq(pub u32);

impl Virq {
    /// Per-vCPU timer (`VCPUOP_set_singleshot_timer`).
    pub const TIMER: Virq = Virq(0);
    /// Debug request from the Xen console ('q' key etc.).
    pub const DEBUG: Virq = Virq(1);
    /// Xen console input (dom0 only).
    pub const CONSOLE: Virq = Virq(2);
    /// A domain exited (dom0 only).
    pub const DOM_EXC: Virq = Virq(3);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_outside_the_2_level_range_are_rejected() {
        assert_eq!(NR_PORTS, 4096);
        assert!(Port::new(0).is_none(), "port 0 is reserved");
        assert_eq!(Port::new(4095).map(Port::get), Some(4095));
        assert!(Port::new(4096).is_none());
        assert!(Port::new(u32::MAX).is_none());
    }

    #[test]
    fn port_word_and_bit_split() {
        let p = Port::new(130).unwrap();
        assert_eq!((p.word(), p.bit()), (2, 1 << 2));
        let p = Port::new(63).unwrap();
        assert_eq!((p.word(), p.bit()), (0, 1 << 63));
    }
}

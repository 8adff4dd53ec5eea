//! The 2-level event-channel bitmaps: per-port operations and the upcall scan.
//!
//! How Xen raises an event on port `p` bound to vCPU `v` (`evtchn_2l_set_pending`):
//! set `pending[p]`; if it was already set, stop. If `mask[p]` is clear and bit `p / 64` of
//! `v`'s `evtchn_pending_sel` was clear, set it, and if `evtchn_upcall_pending` was clear, set
//! it and inject the upcall. The scan below undoes those steps in reverse order, so an event
//! raised at any point during the scan either is seen by this pass or re-arms the upcall.
//!
//! All read-modify-writes are `SeqCst` atomics: on x86 they are the `lock`-prefixed
//! instructions Xen's side uses, and they order the guest's bitmap accesses against Xen's.

use core::sync::atomic::Ordering::SeqCst;

use super::Port;
use crate::shared_info::{BITS_PER_WORD, SharedInfo, VcpuInfo};

impl SharedInfo {
    /// Sets `port`'s mask bit: Xen keeps recording events but raises no upcall for it.
    /// Returns whether it was already masked.
    pub fn mask(&self, port: Port) -> bool {
        self.evtchn_mask[port.word()].fetch_or(port.bit(), SeqCst) & port.bit() != 0
    }

    /// Masks every port. Run once before upcalls are enabled, so that only ports the kernel
    /// binds (and unmasks) can raise one (Xen leaves the mask of a fresh domain clear).
    pub fn mask_all(&self) {
        for word in &self.evtchn_mask {
            word.store(u64::MAX, SeqCst);
        }
    }

    /// Whether `port` is masked.
    pub fn is_masked(&self, port: Port) -> bool {
        self.evtchn_mask[port.word()].load(SeqCst) & port.bit() != 0
    }

    /// Whether `port` has an event not yet taken.
    pub fn is_pending(&self, port: Port) -> bool {
        self.evtchn_pending[port.word()].load(SeqCst) & port.bit() != 0
    }

    /// Takes `port`'s pending event, if any (atomic test-and-clear). Returns whether one was
    /// pending.
    pub fn clear_pending(&self, port: Port) -> bool {
        self.evtchn_pending[port.word()].fetch_and(!port.bit(), SeqCst) & port.bit() != 0
    }

    /// Clears `port`'s mask bit and reports whether it was set. Raw bit operation: it does
    /// not re-deliver an event that became pending while masked; use
    /// [`super::EventChannels::unmask`], which follows the unmask rules.
    pub(crate) fn clear_mask_bit(&self, port: Port) -> bool {
        self.evtchn_mask[port.word()].fetch_and(!port.bit(), SeqCst) & port.bit() != 0
    }
}

/// One upcall's worth of work: takes every pending, unmasked port announced to `vcpu` and
/// passes it to `deliver`, in ascending port order within each pass. Returns how many ports
/// were delivered.
///
/// Contract, for each pass: clear `evtchn_upcall_pending`; atomically take the selector
/// (`xchg` with 0); for each selected word, for each bit set in `pending & !mask`,
/// test-and-clear the pending bit and call `deliver` only if this call cleared it (so a port
/// is delivered once per event even if another CPU scans the same word). Passes repeat while
/// Xen has set `evtchn_upcall_pending` again, exactly as Linux and mini-os loop.
///
/// The pending bit is cleared *before* `deliver` runs, so an event raised while the handler
/// runs sets it again and is delivered by a later pass; none is lost. A masked pending port is
/// left pending (its selector bit is consumed; the unmask rules re-announce it).
///
/// Runs in interrupt context on `vcpu`; `deliver` must not block.
pub fn scan_pending(shared: &SharedInfo, vcpu: &VcpuInfo, mut deliver: impl FnMut(Port)) -> usize {
    let mut delivered = 0;
    loop {
        vcpu.evtchn_upcall_pending.store(0, SeqCst);
        let mut selector = vcpu.evtchn_pending_sel.swap(0, SeqCst);
        while selector != 0 {
            let word = selector.trailing_zeros() as usize;
            selector &= selector - 1;
            let mut active =
                shared.evtchn_pending[word].load(SeqCst) & !shared.evtchn_mask[word].load(SeqCst);
            while active != 0 {
                let bit = active.trailing_zeros() as usize;
                active &= active - 1;
                let mask = 1u64 << bit;
                let taken = shared.evtchn_pending[word].fetch_and(!mask, SeqCst) & mask != 0;
                // Ports are built from bitmap positions, always in 0..4096; Xen never raises
                // the reserved port 0, but a stray bit there must not be dispatched.
                let raw = (word * BITS_PER_WORD + bit) as u32;
                if let (true, Some(port)) = (taken, Port::new(raw)) {
                    deliver(port);
                    delivered += 1;
                }
            }
        }
        if vcpu.evtchn_upcall_pending.load(SeqCst) == 0 {
            return delivered;
        }
    }
}

/// Test helper: raises an event on `port` for vCPU `vcpu` exactly as Xen's
/// `evtchn_2l_set_pending` does. Returns whether an upcall would be injected.
#[cfg(test)]
pub(crate) fn xen_set_pending(shared: &SharedInfo, vcpu: &VcpuInfo, port: Port) -> bool {
    if shared.evtchn_pending[port.word()].fetch_or(port.bit(), SeqCst) & port.bit() != 0 {
        return false;
    }
    if shared.is_masked(port) {
        return false;
    }
    let sel_bit = 1u64 << port.word();
    if vcpu.evtchn_pending_sel.fetch_or(sel_bit, SeqCst) & sel_bit != 0 {
        return false;
    }
    vcpu.evtchn_upcall_pending.swap(1, SeqCst) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_info::zeroed_shared_info;

    fn port(n: u32) -> Port {
        Port::new(n).unwrap()
    }

    fn collect(shared: &SharedInfo) -> Vec<u32> {
        let mut got = Vec::new();
        scan_pending(shared, &shared.vcpu_info[0], |p| got.push(p.get()));
        got
    }

    #[test]
    fn several_ports_across_words_are_delivered_once_each() {
        let s = zeroed_shared_info();
        let v = &s.vcpu_info[0];
        for p in [5, 1, 64, 4095, 130] {
            xen_set_pending(&s, v, port(p));
        }
        assert_eq!(v.evtchn_upcall_pending.load(SeqCst), 1);
        assert_eq!(
            v.evtchn_pending_sel.load(SeqCst),
            1 | 1 << 1 | 1 << 2 | 1 << 63
        );
        assert_eq!(collect(&s), vec![1, 5, 64, 130, 4095]);
        assert_eq!(
            v.evtchn_upcall_pending.load(SeqCst),
            0,
            "upcall acknowledged"
        );
        assert_eq!(v.evtchn_pending_sel.load(SeqCst), 0, "selector consumed");
        assert!(
            s.evtchn_pending.iter().all(|w| w.load(SeqCst) == 0),
            "all taken"
        );
        assert_eq!(collect(&s), Vec::<u32>::new(), "nothing twice");
    }

    #[test]
    fn masked_ports_stay_pending_and_are_not_delivered() {
        let s = zeroed_shared_info();
        let v = &s.vcpu_info[0];
        s.mask(port(7));
        assert!(!xen_set_pending(&s, v, port(7)), "masked: no upcall");
        xen_set_pending(&s, v, port(8));
        assert_eq!(collect(&s), vec![8]);
        assert!(s.is_pending(port(7)), "masked event kept for the unmask");
    }

    #[test]
    fn a_port_masked_after_announcement_is_skipped() {
        let s = zeroed_shared_info();
        let v = &s.vcpu_info[0];
        xen_set_pending(&s, v, port(9));
        xen_set_pending(&s, v, port(10));
        s.mask(port(9));
        assert_eq!(collect(&s), vec![10]);
        assert!(s.is_pending(port(9)));
    }

    #[test]
    fn pending_bits_in_unselected_words_wait_for_their_selector() {
        let s = zeroed_shared_info();
        let v = &s.vcpu_info[0];
        // Pending without a selector bit: e.g. it was raised while masked, then the mask was
        // cleared directly. Only the selector makes the scan look at a word.
        s.evtchn_pending[3].fetch_or(1, SeqCst);
        v.evtchn_upcall_pending.store(1, SeqCst);
        assert_eq!(collect(&s), Vec::<u32>::new());
        v.evtchn_pending_sel.fetch_or(1 << 3, SeqCst);
        assert_eq!(collect(&s), vec![192]);
    }

    #[test]
    fn an_event_raised_by_a_handler_is_delivered_in_a_later_pass() {
        let s = zeroed_shared_info();
        let v = &s.vcpu_info[0];
        xen_set_pending(&s, v, port(3));
        let mut order = Vec::new();
        scan_pending(&s, v, |p| {
            order.push(p.get());
            if order.len() == 1 {
                // While port 3's handler runs, Xen raises 3 again and 200 for the first time.
                assert!(
                    xen_set_pending(&s, v, port(3)),
                    "re-raise injects a new upcall"
                );
                xen_set_pending(&s, v, port(200));
            }
        });
        assert_eq!(order, vec![3, 3, 200]);
        assert_eq!(v.evtchn_upcall_pending.load(SeqCst), 0);
    }

    #[test]
    fn a_spurious_upcall_delivers_nothing() {
        let s = zeroed_shared_info();
        let v = &s.vcpu_info[0];
        v.evtchn_upcall_pending.store(1, SeqCst);
        assert_eq!(scan_pending(&s, v, |_| panic!("nothing is pending")), 0);
        assert_eq!(v.evtchn_upcall_pending.load(SeqCst), 0);
    }

    #[test]
    fn a_stray_bit_for_reserved_port_0_is_cleared_not_delivered() {
        let s = zeroed_shared_info();
        let v = &s.vcpu_info[0];
        s.evtchn_pending[0].store(1, SeqCst);
        v.evtchn_pending_sel.store(1, SeqCst);
        assert_eq!(collect(&s), Vec::<u32>::new());
        assert_eq!(s.evtchn_pending[0].load(SeqCst), 0);
    }

    #[test]
    fn mask_bits_are_per_port() {
        let s = zeroed_shared_info();
        assert!(!s.mask(port(65)));
        assert!(s.mask(port(65)), "second mask reports it was masked");
        assert!(s.is_masked(port(65)));
        assert!(!s.is_masked(port(64)) && !s.is_masked(port(66)));
        assert!(s.clear_mask_bit(port(65)));
        assert!(!s.is_masked(port(65)));
        s.mask_all();
        assert!(s.is_masked(port(1)) && s.is_masked(port(4095)));
    }

    #[test]
    fn clear_pending_is_a_test_and_clear() {
        let s = zeroed_shared_info();
        s.evtchn_pending[1].store(0b110, SeqCst);
        assert!(s.clear_pending(port(65)));
        assert!(!s.clear_pending(port(65)));
        assert_eq!(
            s.evtchn_pending[1].load(SeqCst),
            0b100,
            "neighbours untouched"
        );
    }
}

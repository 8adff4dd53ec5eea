//! Detecting Xen through CPUID (`xen/include/public/arch-x86/cpuid.h`).
//!
//! Xen's leaves sit at the first 0x100-aligned base from 0x4000_0000 that is not taken by
//! another interface: when Viridian (Hyper-V) enlightenments are on, Hyper-V's leaves own
//! 0x4000_0000 and Xen's move to 0x4000_0100. Relative to that base:
//!
//! | leaf | content |
//! |---|---|
//! | base+0 | EAX = largest Xen leaf; EBX:ECX:EDX = `"XenVMMXenVMM"` |
//! | base+1 | EAX = version, major in 31:16, minor in 15:0 |
//! | base+2 | EAX = number of hypercall pages; EBX = MSR that installs them |
//! | base+4 | HVM features (EAX); vCPU id in EBX and domid in ECX when flagged |
//!
//! The scan is a pure function over a [`CpuidSource`], so host tests feed it synthetic leaves.

use core::fmt;

use bitflags::bitflags;

use crate::types::{DomId, VcpuId};

/// The four registers one CPUID leaf returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// Something that answers CPUID: the CPU itself ([`NativeCpuid`]) or a table in tests.
pub trait CpuidSource {
    /// The registers for `leaf` / `subleaf`. Must not fail: CPUID has no error path.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult;
}

/// The executing CPU's `cpuid` instruction.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeCpuid;

#[cfg(target_arch = "x86_64")]
impl CpuidSource for NativeCpuid {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        CpuidResult {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }
}

/// First leaf of the hypervisor range.
pub const HYPERVISOR_LEAF_FIRST: u32 = 0x4000_0000;
/// One past the last base the scan tries (Linux and FreeBSD stop at the same place).
pub const HYPERVISOR_LEAF_END: u32 = 0x4001_0000;
/// Distance between candidate bases.
pub const HYPERVISOR_LEAF_STRIDE: u32 = 0x100;
/// The Xen signature as it reads across EBX, ECX, EDX.
pub const XEN_SIGNATURE: &[u8; 12] = b"XenVMMXenVMM";

/// CPUID.1:ECX bit 31, set by every hypervisor that wants to be found.
const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;

bitflags! {
    /// HVM-specific features, leaf base+4 EAX (`XEN_HVM_CPUID_*`).
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub struct HvmFeatures: u32 {
        /// Virtualized APIC registers.
        const APIC_ACCESS_VIRT = 1 << 0;
        /// Virtualized x2APIC accesses.
        const X2APIC_VIRT = 1 << 1;
        /// Memory mapped from other domains has valid IOMMU entries.
        const IOMMU_MAPPINGS = 1 << 2;
        /// EBX holds this vCPU's Xen id.
        const VCPU_ID_PRESENT = 1 << 3;
        /// ECX holds this domain's id.
        const DOMID_PRESENT = 1 << 4;
        /// Extended destination id in IO-APIC RTEs and MSI addresses.
        const EXT_DEST_ID = 1 << 5;
        /// `HVMOP_set_evtchn_upcall_vector` (per-vCPU, LAPIC-delivered upcalls) works.
        const UPCALL_VECTOR = 1 << 6;
        // Bits Xen adds later are kept, not dropped.
        const _ = !0;
    }
}

/// Xen's version as leaf base+1 reports it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct XenVersion {
    /// Major version (high 16 bits of the raw value).
    pub major: u16,
    /// Minor version (low 16 bits).
    pub minor: u16,
}

impl XenVersion {
    /// Splits the `major << 16 | minor` encoding used by CPUID and `XENVER_version`.
    pub const fn from_raw(raw: u32) -> Self {
        Self {
            major: (raw >> 16) as u16,
            minor: raw as u16,
        }
    }
}

/// The HVM leaf (base+4), when Xen exposes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HvmLeaf {
    /// Feature bits from EAX of the HVM leaf (`XEN_HVM_CPUID_*`).
    pub features: HvmFeatures,
    /// This vCPU's Xen id (what `vcpu` fields of hypercalls want), if Xen said.
    pub vcpu_id: Option<VcpuId>,
    /// This domain's id, if Xen said. The xenstore `domid` node is the portable source.
    pub domid: Option<DomId>,
}

/// What CPUID says about the Xen we run on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct XenInfo {
    /// The base leaf where the signature was found (0x4000_0000 or a later 0x100 step).
    pub base: u32,
    /// The largest Xen leaf (absolute, not relative to `base`).
    pub max_leaf: u32,
    /// Xen's version (leaf base+1).
    pub version: XenVersion,
    /// Number of hypercall pages Xen offers (always at least 1 once detected).
    pub hypercall_pages: u32,
    /// The MSR that installs a hypercall page (written with its guest-physical address).
    pub hypercall_msr: u32,
    /// The HVM leaf, if `max_leaf` reaches it.
    pub hvm: Option<HvmLeaf>,
}

impl XenInfo {
    /// True when per-vCPU upcall vectors are available (prefer them: they go through the LAPIC).
    pub fn has_upcall_vector(&self) -> bool {
        self.hvm
            .is_some_and(|h| h.features.contains(HvmFeatures::UPCALL_VECTOR))
    }
}

/// Why Xen was not detected. Every case is normal on bare metal or another hypervisor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DetectError {
    /// CPUID.1:ECX.hypervisor is clear: not virtualized, or the hypervisor hides itself.
    NoHypervisor,
    /// A hypervisor is present but none of the bases carries Xen's signature; `signature` is
    /// what the first base said (e.g. `"KVMKVMKVM\0\0\0"`, `"TCGTCGTCGTCG"`), for the log.
    NotXen {
        /// EBX, ECX, EDX of the first base leaf, as bytes.
        signature: [u8; 12],
    },
    /// The signature is there but the leaves stop before the hypercall leaf.
    TooFewLeaves {
        /// The base leaf with Xen's signature.
        base: u32,
        /// The largest leaf it reports.
        max_leaf: u32,
    },
    /// Xen reports zero hypercall pages, so no hypercall can be made.
    NoHypercallPage {
        /// The base leaf with Xen's signature.
        base: u32,
    },
}

impl fmt::Display for DetectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHypervisor => f.write_str("no hypervisor (CPUID hypervisor bit clear)"),
            Self::NotXen { signature } => write!(
                f,
                "hypervisor is not Xen (signature {:?})",
                core::str::from_utf8(signature).unwrap_or("not UTF-8")
            ),
            Self::TooFewLeaves { base, max_leaf } => write!(
                f,
                "Xen's CPUID leaves at {base:#x} stop at {max_leaf:#x}, before the hypercall leaf"
            ),
            Self::NoHypercallPage { base } => {
                write!(f, "Xen (CPUID base {base:#x}) reports no hypercall page")
            }
        }
    }
}

impl core::error::Error for DetectError {}

fn signature_of(r: CpuidResult) -> [u8; 12] {
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
    sig
}

/// Finds Xen's CPUID leaves and reads them.
///
/// Contract: checks the hypervisor bit first (as Linux does), then scans the bases
/// 0x4000_0000, 0x4000_0100, ... below 0x4001_0000 for `"XenVMMXenVMM"` with at least the
/// hypercall leaf (base+2) present. Never fails on odd values: a max leaf below the base is
/// reported as [`DetectError::TooFewLeaves`].
pub fn detect(cpu: &impl CpuidSource) -> Result<XenInfo, DetectError> {
    if cpu.cpuid(1, 0).ecx & CPUID1_ECX_HYPERVISOR == 0 {
        return Err(DetectError::NoHypervisor);
    }
    let first = signature_of(cpu.cpuid(HYPERVISOR_LEAF_FIRST, 0));
    let mut base = HYPERVISOR_LEAF_FIRST;
    while base < HYPERVISOR_LEAF_END {
        let leaf0 = cpu.cpuid(base, 0);
        if &signature_of(leaf0) == XEN_SIGNATURE {
            return read_leaves(cpu, base, leaf0.eax);
        }
        base += HYPERVISOR_LEAF_STRIDE;
    }
    Err(DetectError::NotXen { signature: first })
}

fn read_leaves(cpu: &impl CpuidSource, base: u32, max_leaf: u32) -> Result<XenInfo, DetectError> {
    if max_leaf < base + 2 {
        return Err(DetectError::TooFewLeaves { base, max_leaf });
    }
    let version = XenVersion::from_raw(cpu.cpuid(base + 1, 0).eax);
    let hc = cpu.cpuid(base + 2, 0);
    if hc.eax == 0 {
        return Err(DetectError::NoHypercallPage { base });
    }
    let hvm = (max_leaf >= base + 4).then(|| {
        let r = cpu.cpuid(base + 4, 0);
        let features = HvmFeatures::from_bits_retain(r.eax);
        HvmLeaf {
            features,
            vcpu_id: features
                .contains(HvmFeatures::VCPU_ID_PRESENT)
                .then_some(VcpuId(r.ebx)),
            domid: features
                .contains(HvmFeatures::DOMID_PRESENT)
                .then_some(DomId(r.ecx as u16)),
        }
    });
    Ok(XenInfo {
        base,
        max_leaf,
        version,
        hypercall_pages: hc.eax,
        hypercall_msr: hc.ebx,
        hvm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Synthetic CPUID: unknown leaves answer zeros, like a CPU past its max leaf mostly does.
    #[derive(Default)]
    struct CpuidTable(HashMap<u32, CpuidResult>);

    impl CpuidTable {
        fn with_hypervisor_bit() -> Self {
            let mut t = Self::default();
            t.set(
                1,
                CpuidResult {
                    ecx: 1 << 31,
                    ..Default::default()
                },
            );
            t
        }
        fn set(&mut self, leaf: u32, r: CpuidResult) {
            self.0.insert(leaf, r);
        }
        fn signature(&mut self, base: u32, sig: &[u8; 12], max_leaf: u32) {
            let word = |i: usize| u32::from_le_bytes(sig[i..i + 4].try_into().unwrap());
            self.set(
                base,
                CpuidResult {
                    eax: max_leaf,
                    ebx: word(0),
                    ecx: word(4),
                    edx: word(8),
                },
            );
        }
        fn xen_at(&mut self, base: u32) {
            self.signature(base, XEN_SIGNATURE, base + 5);
            self.set(
                base + 1,
                CpuidResult {
                    eax: 0x0004_0011,
                    ..Default::default()
                },
            );
            self.set(
                base + 2,
                CpuidResult {
                    eax: 1,
                    ebx: 0x4000_0000,
                    ..Default::default()
                },
            );
            let flags = HvmFeatures::VCPU_ID_PRESENT | HvmFeatures::DOMID_PRESENT;
            let eax = flags.bits() | HvmFeatures::UPCALL_VECTOR.bits();
            self.set(
                base + 4,
                CpuidResult {
                    eax,
                    ebx: 0,
                    ecx: 7,
                    edx: 0,
                },
            );
        }
    }

    impl CpuidSource for CpuidTable {
        fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidResult {
            self.0.get(&leaf).copied().unwrap_or_default()
        }
    }

    #[test]
    fn xen_at_the_first_base_is_parsed() {
        let mut cpu = CpuidTable::with_hypervisor_bit();
        cpu.xen_at(0x4000_0000);
        let info = detect(&cpu).expect("Xen detected");
        assert_eq!(info.base, 0x4000_0000);
        assert_eq!(
            info.version,
            XenVersion {
                major: 4,
                minor: 17
            }
        );
        assert_eq!(info.hypercall_pages, 1);
        assert_eq!(info.hypercall_msr, 0x4000_0000);
        let hvm = info.hvm.expect("HVM leaf present");
        assert_eq!(hvm.vcpu_id, Some(VcpuId(0)));
        assert_eq!(hvm.domid, Some(DomId(7)));
        assert!(info.has_upcall_vector());
    }

    #[test]
    fn xen_behind_viridian_is_found_at_the_next_base() {
        let mut cpu = CpuidTable::with_hypervisor_bit();
        cpu.signature(0x4000_0000, b"Microsoft Hv", 0x4000_0006);
        cpu.xen_at(0x4000_0100);
        let info = detect(&cpu).expect("Xen detected behind Viridian");
        assert_eq!(info.base, 0x4000_0100);
        assert_eq!(info.max_leaf, 0x4000_0105);
    }

    #[test]
    fn other_hypervisors_are_named_in_the_error() {
        let mut cpu = CpuidTable::with_hypervisor_bit();
        cpu.signature(0x4000_0000, b"TCGTCGTCGTCG", 0x4000_0001);
        assert_eq!(
            detect(&cpu),
            Err(DetectError::NotXen {
                signature: *b"TCGTCGTCGTCG"
            })
        );
    }

    #[test]
    fn bare_metal_is_not_scanned() {
        let mut cpu = CpuidTable::default();
        // Even a stray signature must not count without the hypervisor bit.
        cpu.xen_at(0x4000_0000);
        assert_eq!(detect(&cpu), Err(DetectError::NoHypervisor));
    }

    #[test]
    fn truncated_leaves_are_rejected_not_misread() {
        let mut cpu = CpuidTable::with_hypervisor_bit();
        cpu.signature(0x4000_0000, XEN_SIGNATURE, 0x4000_0001);
        assert_eq!(
            detect(&cpu),
            Err(DetectError::TooFewLeaves {
                base: 0x4000_0000,
                max_leaf: 0x4000_0001
            })
        );
        // A max leaf below its own base (garbage) is handled the same way.
        cpu.signature(0x4000_0000, XEN_SIGNATURE, 3);
        assert!(matches!(
            detect(&cpu),
            Err(DetectError::TooFewLeaves { .. })
        ));
    }

    #[test]
    fn missing_hvm_leaf_and_flags_give_none() {
        let mut cpu = CpuidTable::with_hypervisor_bit();
        cpu.xen_at(0x4000_0000);
        cpu.signature(0x4000_0000, XEN_SIGNATURE, 0x4000_0002);
        let info = detect(&cpu).unwrap();
        assert_eq!(info.hvm, None);
        assert!(!info.has_upcall_vector());

        cpu.signature(0x4000_0000, XEN_SIGNATURE, 0x4000_0004);
        cpu.set(
            0x4000_0004,
            CpuidResult {
                eax: 0,
                ebx: 3,
                ecx: 9,
                edx: 0,
            },
        );
        let hvm = detect(&cpu).unwrap().hvm.unwrap();
        assert_eq!(
            (hvm.vcpu_id, hvm.domid),
            (None, None),
            "values without flags are ignored"
        );
    }

    #[test]
    fn zero_hypercall_pages_is_an_error() {
        let mut cpu = CpuidTable::with_hypervisor_bit();
        cpu.xen_at(0x4000_0000);
        cpu.set(0x4000_0002, CpuidResult::default());
        assert_eq!(
            detect(&cpu),
            Err(DetectError::NoHypercallPage { base: 0x4000_0000 })
        );
    }
}

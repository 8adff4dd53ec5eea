//! `HYPERVISOR_xen_version` (`version.h`, `features.h`) and the debug console hypercall.

use crate::cpuid::XenVersion;
use crate::error::{Operation, XenError, expect_non_negative, expect_zero};
use crate::hypercall::{HypercallOp, Hypervisor, call_with_struct};

/// `XENVER_version`: returns `major << 16 | minor`, no argument.
pub const XENVER_VERSION: u32 = 0;
/// `XENVER_get_features`.
pub const XENVER_GET_FEATURES: u32 = 6;
/// `CONSOLEIO_write`.
pub const CONSOLEIO_WRITE: u32 = 0;

/// `XENFEAT_*` bit numbers (submap 0) a PVH/HVM guest cares about.
pub mod feature {
    /// Xen translates guest-physical to machine addresses itself.
    pub const AUTO_TRANSLATED_PHYSMAP: u32 = 2;
    /// The guest kernel runs in ring 0 (PVH).
    pub const SUPERVISOR_MODE_KERNEL: u32 = 3;
    /// `HVM_PARAM_CALLBACK_IRQ` accepts the vector type.
    pub const HVM_CALLBACK_VECTOR: u32 = 8;
    /// The pvclock in `vcpu_time_info` is safe to use on HVM.
    pub const HVM_SAFE_PVCLOCK: u32 = 9;
}

/// `struct xen_feature_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenFeatureInfo {
    /// In: which 32-bit submap of the feature bits.
    pub submap_idx: u32,
    /// Out: that submap (`XENFEAT_*` bits, numbered from `32 * submap_idx`).
    pub submap: u32,
}

/// The running Xen's version.
pub fn xen_version(hv: &impl Hypervisor) -> Result<XenVersion, XenError> {
    // SAFETY: XENVER_version takes no argument block (NULL).
    let rc = unsafe { hv.hypercall(HypercallOp::XenVersion, [0; 5]) };
    let raw = expect_non_negative(Operation::XenVersion, rc)?;
    Ok(XenVersion::from_raw(raw as u32))
}

/// Feature bits `32 * submap .. 32 * submap + 31` (`XENVER_get_features`); test bit
/// `feature::X % 32` of submap `feature::X / 32`.
pub fn features(hv: &impl Hypervisor, submap: u32) -> Result<u32, XenError> {
    let mut arg = XenFeatureInfo {
        submap_idx: submap,
        submap: 0,
    };
    let op = Operation::GetFeatures { submap };
    // SAFETY: `xen_feature_info` is what XENVER_get_features reads and fills.
    let rc =
        unsafe { call_with_struct(hv, HypercallOp::XenVersion, XENVER_GET_FEATURES, &mut arg) };
    expect_zero(op, rc)?;
    Ok(arg.submap)
}

/// Whether Xen reports feature bit `bit` (a `feature::*` constant).
pub fn has_feature(hv: &impl Hypervisor, bit: u32) -> Result<bool, XenError> {
    Ok(features(hv, bit / 32)? & (1 << (bit % 32)) != 0)
}

/// Writes `bytes` to Xen's own console (`CONSOLEIO_write`). Xen allows this to unprivileged
/// guests only when built for debugging or booted with `guest_loglvl`; otherwise it fails
/// (typically `EPERM`), which makes it a last-resort early log, never the only one.
pub fn console_io_write(hv: &impl Hypervisor, bytes: &[u8]) -> Result<(), XenError> {
    let args = [
        u64::from(CONSOLEIO_WRITE),
        bytes.len() as u64,
        bytes.as_ptr() as u64,
        0,
        0,
    ];
    // SAFETY: (cmd, count, buffer): Xen reads `count` bytes from `buffer`, which is `bytes`.
    let rc = unsafe { hv.hypercall(HypercallOp::ConsoleIo, args) };
    expect_zero(Operation::ConsoleIoWrite, rc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::fake::RecordingHypervisor;

    #[test]
    fn feature_info_matches_the_header_layout() {
        assert_eq!(core::mem::size_of::<XenFeatureInfo>(), 8);
        assert_eq!(core::mem::offset_of!(XenFeatureInfo, submap), 4);
    }

    #[test]
    fn version_is_split_from_the_return_value() {
        let hv = RecordingHypervisor::returning(0x0004_0013);
        assert_eq!(
            xen_version(&hv),
            Ok(XenVersion {
                major: 4,
                minor: 19
            })
        );
        let call = hv.single_call();
        assert_eq!((call.op, call.args), (HypercallOp::XenVersion, [0; 5]));
    }

    #[test]
    fn features_marshal_the_submap_and_test_bits() {
        let hv = RecordingHypervisor::answering(|call| {
            assert_eq!(call.field(0, 4), 0, "submap 0");
            call.set_field(4, 4, 1 << feature::HVM_CALLBACK_VECTOR);
            0
        });
        assert_eq!(has_feature(&hv, feature::HVM_CALLBACK_VECTOR), Ok(true));
        assert_eq!(has_feature(&hv, feature::HVM_SAFE_PVCLOCK), Ok(false));
        assert!(hv.calls().iter().all(|c| c.cmd() == 6));
    }

    #[test]
    fn console_io_passes_length_and_buffer() {
        let hv = RecordingHypervisor::returning(0);
        console_io_write(&hv, b"early").unwrap();
        let call = hv.single_call();
        assert_eq!(
            (call.op, call.cmd(), call.args[1]),
            (HypercallOp::ConsoleIo, 0, 5)
        );
        assert_eq!(call.bytes, b"early");
    }
}

//! HVM parameters (`HVMOP_get_param` / `HVMOP_set_param`, `hvm/params.h`) and upcall routing.
//!
//! The toolstack leaves the xenstore and console ring locations in HVM params; the guest tells
//! Xen how to deliver event-channel upcalls through `HVM_PARAM_CALLBACK_IRQ` (domain-wide, vCPU
//! 0) or, where CPUID advertises it, per vCPU with `HVMOP_set_evtchn_upcall_vector`.

use crate::error::{Cause, Operation, XenError, expect_zero};
use crate::evtchn::Port;
use crate::hypercall::{HypercallOp, Hypervisor, call_with_struct};
pub use crate::types::HvmParam;
use crate::types::{DomId, Gfn, VcpuId};

/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM: u32 = 0;
/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM: u32 = 1;
/// `HVMOP_set_evtchn_upcall_vector`.
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u32 = 23;

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenHvmParam {
    /// In: the domain (`DOMID_SELF`).
    pub domid: u16,
    /// In: the parameter (`HVM_PARAM_*`).
    pub index: u32,
    /// In for set, out for get.
    pub value: u64,
}

/// `struct xen_hvm_evtchn_upcall_vector`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenHvmEvtchnUpcallVector {
    /// In: the vCPU.
    pub vcpu: u32,
    /// In: the IDT vector its upcall is raised on.
    pub vector: u8,
}

/// PCI interrupt pin for [`CallbackVia::PciIntx`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum IntxPin {
    /// INTA#.
    A = 0,
    /// INTB#.
    B = 1,
    /// INTC#.
    C = 2,
    /// INTD#.
    D = 3,
}

/// How vCPU 0's event-channel upcall reaches the guest (`HVM_PARAM_CALLBACK_IRQ`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CallbackVia {
    /// No upcalls (encoding 0).
    Disabled,
    /// A level-triggered GSI through the emulated IO-APIC (type 0). GSI 0 cannot be used.
    Gsi(u32),
    /// The INTx line of a PCI device (type 1), e.g. the Xen platform device.
    PciIntx {
        /// PCI segment.
        domain: u16,
        /// Bus number.
        bus: u16,
        /// Device << 3 | function.
        devfn: u8,
        /// The interrupt pin.
        pin: IntxPin,
    },
    /// An IDT vector injected directly (type 2, needs `XENFEAT_hvm_callback_vector`). It
    /// bypasses the LAPIC: no IRR/ISR bit, so the handler must NOT send an EOI.
    Vector(u8),
}

const CALLBACK_TYPE_SHIFT: u32 = 56;
const CALLBACK_VALUE_MASK: u64 = (1 << CALLBACK_TYPE_SHIFT) - 1;

impl CallbackVia {
    /// The param value: type in bits 63:56, the rest per type (`hvm/params.h`).
    pub const fn encode(self) -> u64 {
        match self {
            Self::Disabled => 0,
            Self::Gsi(gsi) => gsi as u64,
            Self::PciIntx {
                domain,
                bus,
                devfn,
                pin,
            } => {
                (1 << CALLBACK_TYPE_SHIFT)
                    | (domain as u64) << 32
                    | (bus as u64) << 16
                    | (devfn as u64) << 8
                    | pin as u64
            }
            Self::Vector(v) => (2 << CALLBACK_TYPE_SHIFT) | v as u64,
        }
    }

    /// Parses a param value (e.g. one read back from Xen); `None` for a type this guest does
    /// not know or an encoding with stray bits.
    pub const fn decode(value: u64) -> Option<Self> {
        let payload = value & CALLBACK_VALUE_MASK;
        match value >> CALLBACK_TYPE_SHIFT {
            _ if value == 0 => Some(Self::Disabled),
            0 if payload <= u32::MAX as u64 => Some(Self::Gsi(payload as u32)),
            1 if payload >> 48 == 0 && payload & 0xfc == 0 => Some(Self::PciIntx {
                domain: (payload >> 32) as u16,
                bus: (payload >> 16) as u16,
                devfn: (payload >> 8) as u8,
                pin: match payload & 3 {
                    0 => IntxPin::A,
                    1 => IntxPin::B,
                    2 => IntxPin::C,
                    _ => IntxPin::D,
                },
            }),
            2 if payload <= 0xff => Some(Self::Vector(payload as u8)),
            _ => None,
        }
    }
}

/// Lowest vector a callback may use: 0..31 are CPU exceptions.
pub const MIN_CALLBACK_VECTOR: u8 = 0x20;

/// Reads HVM parameter `param` of this domain.
pub fn get_param(hv: &impl Hypervisor, param: HvmParam) -> Result<u64, XenError> {
    let mut arg = XenHvmParam {
        domid: DomId::SELF.0,
        index: param.0,
        value: 0,
    };
    // SAFETY: `arg` is the `xen_hvm_param` HVMOP_get_param reads and fills.
    let rc = unsafe { call_with_struct(hv, HypercallOp::HvmOp, HVMOP_GET_PARAM, &mut arg) };
    expect_zero(Operation::HvmGetParam(param), rc)?;
    Ok(arg.value)
}

/// Sets HVM parameter `param` of this domain to `value`.
pub fn set_param(hv: &impl Hypervisor, param: HvmParam, value: u64) -> Result<(), XenError> {
    let mut arg = XenHvmParam {
        domid: DomId::SELF.0,
        index: param.0,
        value,
    };
    // SAFETY: `arg` is the `xen_hvm_param` HVMOP_set_param reads.
    let rc = unsafe { call_with_struct(hv, HypercallOp::HvmOp, HVMOP_SET_PARAM, &mut arg) };
    expect_zero(Operation::HvmSetParam(param), rc)
}

/// Routes vCPU 0's upcall as `via` says. A [`CallbackVia::Vector`] below
/// [`MIN_CALLBACK_VECTOR`], and GSI 0 (it encodes as "disabled"), are refused without calling
/// Xen.
pub fn set_callback_via(hv: &impl Hypervisor, via: CallbackVia) -> Result<(), XenError> {
    let refused = matches!(via, CallbackVia::Vector(v) if v < MIN_CALLBACK_VECTOR)
        || via == CallbackVia::Gsi(0);
    if refused {
        let op = Operation::HvmSetParam(HvmParam::CALLBACK_IRQ);
        return Err(XenError::new(op, Cause::InvalidArgument));
    }
    set_param(hv, HvmParam::CALLBACK_IRQ, via.encode())
}

/// Delivers `vcpu`'s upcalls on `vector` through its LAPIC (Xen 4.17+, or when CPUID's HVM
/// leaf has `UPCALL_VECTOR`). Unlike [`CallbackVia::Vector`] this sets the LAPIC IRR/ISR, so
/// the handler MUST send an EOI. It overrides `HVM_PARAM_CALLBACK_IRQ` for that vCPU; Linux
/// still sets that param to a non-zero value afterwards so that toolstacks treat the guest as
/// having PV drivers.
pub fn set_evtchn_upcall_vector(
    hv: &impl Hypervisor,
    vcpu: VcpuId,
    vector: u8,
) -> Result<(), XenError> {
    let op = Operation::HvmSetUpcallVector { vcpu, vector };
    if vector < MIN_CALLBACK_VECTOR {
        return Err(XenError::new(op, Cause::InvalidArgument));
    }
    let mut arg = XenHvmEvtchnUpcallVector {
        vcpu: vcpu.0,
        vector,
    };
    let cmd = HVMOP_SET_EVTCHN_UPCALL_VECTOR;
    // SAFETY: `arg` is the `xen_hvm_evtchn_upcall_vector` this command reads.
    let rc = unsafe { call_with_struct(hv, HypercallOp::HvmOp, cmd, &mut arg) };
    expect_zero(op, rc)
}

/// Where a PV ring (xenstore or console) lives: its page and its event channel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RingLocation {
    /// The ring page's guest frame.
    pub gfn: Gfn,
    /// The ring's event channel.
    pub port: Port,
}

fn ring_location(
    hv: &impl Hypervisor,
    pfn_param: HvmParam,
    port_param: HvmParam,
) -> Result<Option<RingLocation>, XenError> {
    let pfn = get_param(hv, pfn_param)?;
    if pfn == 0 {
        return Ok(None);
    }
    let raw_port = get_param(hv, port_param)?;
    let bad_port = XenError::new(
        Operation::HvmGetParam(port_param),
        Cause::BadValue(raw_port),
    );
    let port = u32::try_from(raw_port)
        .ok()
        .and_then(Port::new)
        .ok_or(bad_port)?;
    Ok(Some(RingLocation {
        gfn: Gfn(pfn),
        port,
    }))
}

/// The xenstore ring the toolstack set up (`STORE_PFN`, `STORE_EVTCHN`).
///
/// A frame of 0 means the toolstack gave this guest no xenstore: that is an error here
/// ([`Cause::BadValue`]) because nothing above can work without it. A port beyond the 2-level
/// ABI is an error too, never truncated.
pub fn store_ring(hv: &impl Hypervisor) -> Result<RingLocation, XenError> {
    ring_location(hv, HvmParam::STORE_PFN, HvmParam::STORE_EVTCHN)?.ok_or(XenError::new(
        Operation::HvmGetParam(HvmParam::STORE_PFN),
        Cause::BadValue(0),
    ))
}

/// The PV console ring (`CONSOLE_PFN`, `CONSOLE_EVTCHN`), or `None` when the guest has none
/// (frame 0), which is normal for HVM guests with an emulated serial console only.
pub fn console_ring(hv: &impl Hypervisor) -> Result<Option<RingLocation>, XenError> {
    ring_location(hv, HvmParam::CONSOLE_PFN, HvmParam::CONSOLE_EVTCHN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Errno;
    use crate::hypercall::fake::RecordingHypervisor;
    use core::mem::{offset_of, size_of};

    #[test]
    fn param_structs_match_the_header_layout() {
        assert_eq!(size_of::<XenHvmParam>(), 16);
        assert_eq!(offset_of!(XenHvmParam, domid), 0);
        assert_eq!(offset_of!(XenHvmParam, index), 4);
        assert_eq!(offset_of!(XenHvmParam, value), 8);
        assert_eq!(size_of::<XenHvmEvtchnUpcallVector>(), 8);
        assert_eq!(offset_of!(XenHvmEvtchnUpcallVector, vcpu), 0);
        assert_eq!(offset_of!(XenHvmEvtchnUpcallVector, vector), 4);
    }

    #[test]
    fn get_param_marshals_domid_self_and_index_and_returns_the_value() {
        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(8, 8, 0xfeffc);
            0
        });
        assert_eq!(get_param(&hv, HvmParam::STORE_PFN), Ok(0xfeffc));
        let call = hv.single_call();
        assert_eq!((call.op, call.cmd()), (HypercallOp::HvmOp, 1));
        assert_eq!(call.field(0, 2), 0x7ff0, "domid = DOMID_SELF");
        assert_eq!(call.field(4, 4), 1, "index = HVM_PARAM_STORE_PFN");
    }

    #[test]
    fn get_param_errors_carry_the_param() {
        let hv = RecordingHypervisor::returning(-22);
        let err = get_param(&hv, HvmParam::CONSOLE_PFN).unwrap_err();
        assert_eq!(err.op, Operation::HvmGetParam(HvmParam::CONSOLE_PFN));
        assert_eq!(err.errno(), Some(Errno::EINVAL));
        assert_eq!(
            format!("{:?}", err.op),
            "HvmGetParam(HVM_PARAM_CONSOLE_PFN)"
        );
    }

    #[test]
    fn callback_via_encodings_follow_params_h() {
        assert_eq!(CallbackVia::Vector(0xf3).encode(), 0x0200_0000_0000_00f3);
        assert_eq!(CallbackVia::Gsi(28).encode(), 28);
        let intx = CallbackVia::PciIntx {
            domain: 1,
            bus: 2,
            devfn: 0x18,
            pin: IntxPin::C,
        };
        assert_eq!(intx.encode(), 0x0100_0001_0002_1802);
        for via in [
            CallbackVia::Disabled,
            CallbackVia::Vector(0x20),
            CallbackVia::Gsi(5),
            intx,
        ] {
            assert_eq!(CallbackVia::decode(via.encode()), Some(via));
        }
        assert_eq!(
            CallbackVia::decode(0x0200_0000_0000_01f3),
            None,
            "vector > 0xff"
        );
        assert_eq!(
            CallbackVia::decode(0x0300_0000_0000_0001),
            None,
            "unknown type"
        );
    }

    #[test]
    fn set_callback_via_writes_the_encoded_param() {
        let hv = RecordingHypervisor::returning(0);
        set_callback_via(&hv, CallbackVia::Vector(0xf3)).unwrap();
        let call = hv.single_call();
        assert_eq!((call.op, call.cmd()), (HypercallOp::HvmOp, 0));
        assert_eq!(call.field(4, 4), 0, "index = HVM_PARAM_CALLBACK_IRQ");
        assert_eq!(call.field(8, 8), 0x0200_0000_0000_00f3);
    }

    #[test]
    fn exception_vectors_are_refused_before_the_call() {
        let hv = RecordingHypervisor::returning(0);
        let err = set_callback_via(&hv, CallbackVia::Vector(14)).unwrap_err();
        assert_eq!(err.cause, Cause::InvalidArgument);
        let err = set_callback_via(&hv, CallbackVia::Gsi(0)).unwrap_err();
        assert_eq!(
            err.cause,
            Cause::InvalidArgument,
            "GSI 0 would silently disable upcalls"
        );
        let err = set_evtchn_upcall_vector(&hv, VcpuId(0), 3).unwrap_err();
        assert_eq!(err.cause, Cause::InvalidArgument);
        assert!(hv.calls().is_empty());
    }

    #[test]
    fn upcall_vector_marshals_vcpu_and_vector() {
        let hv = RecordingHypervisor::returning(0);
        set_evtchn_upcall_vector(&hv, VcpuId(2), 0xf3).unwrap();
        let call = hv.single_call();
        assert_eq!((call.op, call.cmd()), (HypercallOp::HvmOp, 23));
        assert_eq!((call.field(0, 4), call.field(4, 1)), (2, 0xf3));
    }

    /// Answers STORE/CONSOLE params from a table, like a toolstack-configured Xen.
    fn params(pfn: u64, port: u64) -> RecordingHypervisor {
        RecordingHypervisor::answering(move |call| {
            let value = match call.field(4, 4) {
                1 | 17 => pfn,
                2 | 18 => port,
                _ => return -22,
            };
            call.set_field(8, 8, value);
            0
        })
    }

    #[test]
    fn store_ring_reads_both_params() {
        let ring = store_ring(&params(0xfeffc, 3)).unwrap();
        assert_eq!(
            ring,
            RingLocation {
                gfn: Gfn(0xfeffc),
                port: Port::new(3).unwrap()
            }
        );
    }

    #[test]
    fn missing_or_bogus_rings_are_errors_not_panics() {
        let err = store_ring(&params(0, 3)).unwrap_err();
        assert_eq!(err.cause, Cause::BadValue(0));
        assert_eq!(
            console_ring(&params(0, 3)),
            Ok(None),
            "no PV console is normal"
        );
        let err = store_ring(&params(0xfeffc, 1 << 40)).unwrap_err();
        assert_eq!(err.op, Operation::HvmGetParam(HvmParam::STORE_EVTCHN));
        assert_eq!(err.cause, Cause::BadValue(1 << 40));
        let err = console_ring(&params(0xfeffd, 5000)).unwrap_err();
        assert_eq!(
            err.cause,
            Cause::BadValue(5000),
            "beyond the 4096 2-level ports"
        );
    }
}

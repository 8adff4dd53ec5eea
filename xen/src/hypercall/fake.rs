//! A recording FAKE hypervisor for host tests (never used by the kernel).
//!
//! It records every hypercall with a byte snapshot of its argument structure, taken at the
//! size the public headers give for that op/command (x86_64), and lets a test script the
//! answer, including output fields written back through the pointer as Xen would. Tests then
//! check the marshalling against the header offsets by hand, independently of this crate's
//! own `#[repr(C)]` definitions.

use std::cell::RefCell;
use std::vec::Vec;

use super::{HypercallOp, Hypervisor};

/// One recorded hypercall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    pub op: HypercallOp,
    pub args: [u64; 5],
    /// The argument structure's bytes as Xen would have read them; a responder may change
    /// them and the change is written back (output fields).
    pub bytes: Vec<u8>,
}

impl Call {
    /// The sub-command (first argument).
    pub fn cmd(&self) -> u64 {
        self.args[0]
    }
    /// A little-endian field of the argument structure.
    pub fn field(&self, offset: usize, len: usize) -> u64 {
        let mut v = [0u8; 8];
        v[..len].copy_from_slice(&self.bytes[offset..offset + len]);
        u64::from_le_bytes(v)
    }
    /// Writes a little-endian output field, as Xen would.
    pub fn set_field(&mut self, offset: usize, len: usize, value: u64) {
        self.bytes[offset..offset + len].copy_from_slice(&value.to_le_bytes()[..len]);
    }
}

/// Where the argument structure of a call is, and its size per the public headers.
fn argument_block(op: HypercallOp, args: &[u64; 5]) -> Option<(usize, usize)> {
    let cmd = args[0];
    let size = match (op, cmd) {
        (HypercallOp::MemoryOp, 7) => 24,              // xen_add_to_physmap
        (HypercallOp::MemoryOp, 15) => 16,             // xen_remove_from_physmap
        (HypercallOp::XenVersion, 6) => 8,             // xen_feature_info
        (HypercallOp::HvmOp, 0 | 1) => 16,             // xen_hvm_param
        (HypercallOp::HvmOp, 23) => 8,                 // xen_hvm_evtchn_upcall_vector
        (HypercallOp::EventChannelOp, 0 | 1) => 12,    // bind_interdomain, bind_virq
        (HypercallOp::EventChannelOp, 3 | 4 | 9) => 4, // close, send, unmask
        (HypercallOp::EventChannelOp, 5) => 24,        // evtchn_status
        (HypercallOp::EventChannelOp, 6 | 8) => 8,     // alloc_unbound, bind_vcpu
        (HypercallOp::GrantTableOp, 0) => 32,          // gnttab_map_grant_ref
        (HypercallOp::GrantTableOp, 1) => 24,          // gnttab_unmap_grant_ref
        (HypercallOp::GrantTableOp, 2) => 24,          // gnttab_setup_table
        (HypercallOp::GrantTableOp, 6) => 16,          // gnttab_query_size
        (HypercallOp::SchedOp, 2) => 4,                // sched_shutdown
        (HypercallOp::ConsoleIo, 0) => return Some((2, args[1] as usize)), // (cmd, len, buf)
        _ => return None,
    };
    Some((1, size))
}

type Responder = Box<dyn FnMut(&mut Call) -> i64>;

/// The recording fake. Single-threaded (tests only).
pub(crate) struct RecordingHypervisor {
    calls: RefCell<Vec<Call>>,
    responder: RefCell<Responder>,
}

impl RecordingHypervisor {
    /// A fake that answers every call with `rc`.
    pub fn returning(rc: i64) -> Self {
        Self::answering(move |_| rc)
    }

    /// A fake whose answers (and output fields) come from `f`.
    pub fn answering(f: impl FnMut(&mut Call) -> i64 + 'static) -> Self {
        Self {
            calls: RefCell::new(Vec::new()),
            responder: RefCell::new(Box::new(f)),
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// The only call made; panics (failing the test) if there was not exactly one.
    pub fn single_call(&self) -> Call {
        let calls = self.calls();
        assert_eq!(
            calls.len(),
            1,
            "expected exactly one hypercall, got {calls:?}"
        );
        calls.into_iter().next().unwrap()
    }
}

impl Hypervisor for RecordingHypervisor {
    unsafe fn hypercall(&self, op: HypercallOp, args: [u64; 5]) -> i64 {
        let block = argument_block(op, &args);
        let mut call = Call {
            op,
            args,
            bytes: Vec::new(),
        };
        if let Some((index, len)) = block {
            let ptr = args[index] as *const u8;
            assert!(
                !ptr.is_null(),
                "{op:?} cmd {} passed a null argument block",
                args[0]
            );
            // SAFETY: trait contract: the caller passes a live argument block of the size the
            // header gives for this op/command, valid until we return.
            call.bytes = unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec();
        }
        let rc = (self.responder.borrow_mut())(&mut call);
        // Only argument structures (index 1) have output fields; a console buffer is input
        // only and may come from a shared borrow, so it is never written.
        if let Some((1, len)) = block {
            // SAFETY: as above; writing back models Xen filling the output fields.
            unsafe { (args[1] as *mut u8).copy_from(call.bytes.as_ptr(), len) };
        }
        self.calls.borrow_mut().push(call);
        rc
    }
}

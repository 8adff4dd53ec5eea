//! Hypercalls: the [`Hypervisor`] trait every typed operation goes through, the real
//! implementation over the hypercall page ([`HypercallPage`]), and its installation.
//!
//! Register convention (x86_64, HVM/PVH): the hypercall page holds one 32-byte stub per
//! hypercall number (`mov $nr, %eax; vmcall|vmmcall; ret`, written by Xen); arguments go in
//! RDI, RSI, RDX, R10, R8 and the result comes back in RAX, `-errno` on failure. Debug builds
//! of Xen scribble over argument registers a call does not use, so all five are treated as
//! clobbered.
//!
//! Every typed operation in this crate calls [`Hypervisor::hypercall`] with numbers and
//! pointers to `#[repr(C)]` argument structures; host tests swap in a recording fake and
//! check the marshalling byte for byte.

#[cfg(test)]
pub(crate) mod fake;
mod page;

#[cfg(target_arch = "x86_64")]
pub use page::NativeMsr;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use page::builtin_page_address;
pub use page::{HypercallPage, InstallError, MsrWriter};

/// Hypercall numbers (`__HYPERVISOR_*` in `xen/include/public/xen.h`) this crate uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum HypercallOp {
    /// `__HYPERVISOR_memory_op`.
    MemoryOp = 12,
    /// `__HYPERVISOR_xen_version`.
    XenVersion = 17,
    /// `__HYPERVISOR_console_io`.
    ConsoleIo = 18,
    /// `__HYPERVISOR_grant_table_op`.
    GrantTableOp = 20,
    /// `__HYPERVISOR_vcpu_op`.
    VcpuOp = 24,
    /// `__HYPERVISOR_sched_op`.
    SchedOp = 29,
    /// `__HYPERVISOR_event_channel_op`.
    EventChannelOp = 32,
    /// `__HYPERVISOR_hvm_op`.
    HvmOp = 34,
}

impl HypercallOp {
    /// The hypercall number; also the stub's index in the hypercall page.
    pub const fn number(self) -> u32 {
        self as u32
    }
}

/// Something hypercalls can be issued to.
///
/// The real one is [`HypercallPage`]; host tests use a recording fake. Implementations must
/// be usable from interrupt context (the event-channel upcall sends and unmasks through them),
/// so they must not block or allocate.
pub trait Hypervisor {
    /// Issues hypercall `op` with `args` in RDI, RSI, RDX, R10, R8 and returns RAX as Xen left
    /// it (`-errno` on failure; the meaning of other values depends on `op`).
    ///
    /// # Safety
    /// Every argument that `op` (and its sub-command) treats as a guest pointer must point to
    /// memory that is valid for the reads and writes Xen does for that operation, for the
    /// whole call, and the operation must not invalidate memory Rust still uses (e.g. by
    /// replacing a RAM page that holds live data with `XENMEM_add_to_physmap`).
    unsafe fn hypercall(&self, op: HypercallOp, args: [u64; 5]) -> i64;
}

impl<H: Hypervisor + ?Sized> Hypervisor for &H {
    unsafe fn hypercall(&self, op: HypercallOp, args: [u64; 5]) -> i64 {
        // SAFETY: forwarded verbatim; the caller upholds the contract for `op` and `args`.
        unsafe { (**self).hypercall(op, args) }
    }
}

/// Issues a hypercall whose arguments are a sub-command and a pointer to its argument block,
/// the shape of `memory_op`, `hvm_op`, `event_channel_op`, `sched_op` and `xen_version`.
///
/// # Safety
/// `arg` must be the argument structure Xen expects for `op`/`cmd` (right layout and size),
/// since Xen reads and writes it through the pointer.
pub(crate) unsafe fn call_with_struct<H: Hypervisor + ?Sized, T>(
    hv: &H,
    op: HypercallOp,
    cmd: u32,
    arg: &mut T,
) -> i64 {
    let ptr = core::ptr::from_mut(arg) as u64;
    // SAFETY: `arg` is a live, exclusively borrowed structure of the type the caller promised
    // for this op/cmd, valid for Xen's reads and writes until the call returns.
    unsafe { hv.hypercall(op, [u64::from(cmd), ptr, 0, 0, 0]) }
}

//! Running as a Xen guest (HVM or PVH): detection and bring-up at boot, in
//! the order the `xen` crate documents (its lib.rs):
//!
//! 1. detect Xen through CPUID; not Xen: nothing else here runs, and the
//!    xenstore service looks for the QEMU test platform instead;
//! 2. install the hypercall page (a page the `xen` crate reserves in our
//!    `.text`; Xen fills it through its guest-physical address);
//! 3. the PV console as the console's mirror ([`console`]), when the
//!    toolstack gave us one (PVH guests have no UART); its input once
//!    event channels work;
//! 4. map shared_info at a RAM frame we give up to Xen;
//! 5. event channels: mask every port, install the upcall vector, route
//!    upcalls to it (the per-vCPU LAPIC vector when CPUID offers it, EOI
//!    first; else `HVM_PARAM_CALLBACK_IRQ` of vector type, no EOI);
//! 6. the power-off hook (`SCHEDOP_shutdown`).
//!
//! The xenstore ring itself (`HVM_PARAM_STORE_PFN`/`STORE_EVTCHN`) is
//! attached later by [`crate::xenstore_service::init`] through [`XenGuest`].
//!
//! Not verified on real Xen here (no Xen on the build host, and its KVM
//! lacks Xen emulation): every step logs what it does and fails with the
//! `xen` crate's typed error, so a first boot on Xen says where it stopped.

pub mod console;

use core::fmt;
use core::ptr::NonNull;

use spin::Once;
use xen::cpuid::{self, NativeCpuid, XenInfo};
use xen::evtchn::{EventChannels, HandlerTable};
use xen::hvm::{self, CallbackVia};
use xen::hypercall::{self, HypercallPage, InstallError, NativeMsr};
use xen::sched::{self, ShutdownReason};
use xen::shared_info::{self, SharedInfo};
use xen::version::{self, feature};
use xen::{Gfn, VcpuId, XenError};

use crate::interrupts::{self, EoiMode, IrqError};
use crate::memory::{self, PhysAddr, VirtAddr};

/// How upcalls reach us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpcallRoute {
    /// `HVMOP_set_evtchn_upcall_vector` for vCPU 0: through the LAPIC.
    PerVcpuVector(u8),
    /// `HVM_PARAM_CALLBACK_IRQ`, vector type: injected directly.
    CallbackVector(u8),
}

/// The Xen guest environment, once brought up.
pub struct XenGuest {
    /// What CPUID said.
    pub info: XenInfo,
    /// Our vCPU's Xen id (for hypercalls and the upcall scan).
    pub vcpu: VcpuId,
    /// Hypercalls.
    pub hypervisor: &'static HypercallPage,
    /// Event channels over our shared_info page.
    pub channels: EventChannels<'static, HypercallPage>,
    /// How upcalls are routed.
    pub upcall: UpcallRoute,
}

/// Why the bring-up stopped.
#[derive(Debug)]
pub enum BringUpError {
    /// The hypercall page was not installed.
    HypercallPage(InstallError),
    /// A hypercall failed.
    Xen(XenError),
    /// No free frame for shared_info.
    NoFrame,
    /// No interrupt vector for the upcall.
    Irq(IrqError),
    /// Xen offers neither per-vCPU upcall vectors nor callback vectors.
    NoUpcallMethod,
}

impl fmt::Display for BringUpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HypercallPage(e) => write!(f, "{e}"),
            Self::Xen(e) => write!(f, "{e}"),
            Self::NoFrame => write!(f, "no free frame for shared_info"),
            Self::Irq(e) => write!(f, "{e}"),
            Self::NoUpcallMethod => write!(
                f,
                "Xen offers no upcall vector (neither CPUID's per-vCPU vector nor \
                 XENFEAT_hvm_callback_vector)"
            ),
        }
    }
}

impl From<XenError> for BringUpError {
    fn from(e: XenError) -> Self {
        Self::Xen(e)
    }
}

static HYPERCALLS: Once<HypercallPage> = Once::new();
/// Per-port event handlers; lock-free (the upcall may interrupt a thread
/// registering a handler).
static HANDLERS: HandlerTable = HandlerTable::new();
static GUEST: Once<XenGuest> = Once::new();

/// The Xen guest environment, if the kernel runs on Xen and bring-up
/// succeeded.
pub fn guest() -> Option<&'static XenGuest> {
    GUEST.get()
}

/// Detects Xen and brings it up. Called once by boot, after memory and the
/// interrupt controllers, before threads. Never fails the boot: off Xen it
/// logs and returns; a failed step is logged as an error.
pub(crate) fn init() {
    let info = match cpuid::detect(&NativeCpuid) {
        Ok(info) => info,
        Err(why) => {
            log::info!("xen: not running on Xen ({})", describe(why));
            return;
        }
    };
    log::info!(
        "xen: Xen {}.{} (CPUID base {:#x}, {} hypercall page(s) via MSR {:#x}, HVM leaf {:?})",
        info.version.major,
        info.version.minor,
        info.base,
        info.hypercall_pages,
        info.hypercall_msr,
        info.hvm
    );
    match bring_up(info) {
        Ok(guest) => {
            log::info!(
                "xen: ready: vCPU {}, upcalls {:?}",
                guest.vcpu.0,
                guest.upcall
            );
            GUEST.call_once(|| guest);
        }
        Err(e) => log::error!("xen: bring-up failed, continuing without Xen services: {e}"),
    }
}

fn describe(why: cpuid::DetectError) -> alloc::string::String {
    use cpuid::DetectError::*;
    match why {
        NoHypervisor => "no hypervisor bit in CPUID".into(),
        NotXen { signature } => alloc::format!(
            "hypervisor signature {:?}",
            core::str::from_utf8(&signature).unwrap_or("(not text)")
        ),
        TooFewLeaves { base, max_leaf } => {
            alloc::format!(
                "Xen leaves at {base:#x} end at {max_leaf:#x}, before the hypercall leaf"
            )
        }
        NoHypercallPage { base } => alloc::format!("Xen at {base:#x} offers no hypercall page"),
    }
}

fn bring_up(info: XenInfo) -> Result<XenGuest, BringUpError> {
    // 2. The hypercall page. The kernel image is identity mapped, so the
    // page's virtual address is its guest-physical address.
    let virt = hypercall::builtin_page_address();
    let phys = virt.as_ptr() as u64;
    // SAFETY: `builtin_page_address` is a 4 KiB page of our `.text`,
    // mapped read+execute for the kernel's life, reserved for exactly this
    // (the `xen` crate's contract); `info` comes from `detect` just now.
    let page = unsafe { HypercallPage::install(&info, &mut NativeMsr, virt, phys) }
        .map_err(BringUpError::HypercallPage)?;
    let hv: &'static HypercallPage = HYPERCALLS.call_once(|| page);
    log::info!("xen: hypercall page installed at {phys:#x}");

    // 3. The PV console, for the log (optional: HVM guests use COM1).
    console::attach(hv);

    // 4. shared_info at a RAM frame we give up to Xen (Linux HVM does the
    // same): the frame allocator hands it out once and never again.
    let frame = memory::alloc_frame().ok_or(BringUpError::NoFrame)?;
    // SAFETY: `frame` is fresh from the allocator, ours, and never freed:
    // no Rust object lives in it.
    unsafe { shared_info::map_shared_info(hv, Gfn::containing(frame.as_u64())) }?;
    let virt = memory::phys_to_virt(PhysAddr::new(frame.as_u64())).ok_or(BringUpError::NoFrame)?;
    // SAFETY: Xen placed shared_info at `frame` (the call above succeeded);
    // RAM is identity mapped write-back for the kernel's life, and the
    // frame is ours alone (allocated above, never freed).
    let shared: &'static SharedInfo = unsafe {
        SharedInfo::from_ptr(NonNull::new(virt.as_mut_ptr()).ok_or(BringUpError::NoFrame)?)
    };
    log::info!("xen: shared_info at {frame:?}");

    // 5. Event channels: nothing may raise the upcall before we route it.
    let channels = EventChannels::new(hv, shared, &HANDLERS);
    channels.mask_all();
    let vcpu = info.hvm.and_then(|h| h.vcpu_id).unwrap_or(VcpuId::BOOT);
    let vector = interrupts::allocate_vector().map_err(BringUpError::Irq)?;
    let upcall = if info.has_upcall_vector() {
        UpcallRoute::PerVcpuVector(vector)
    } else if version::has_feature(hv, feature::HVM_CALLBACK_VECTOR)? {
        UpcallRoute::CallbackVector(vector)
    } else {
        interrupts::free_vector(vector);
        return Err(BringUpError::NoUpcallMethod);
    };
    let eoi = match upcall {
        UpcallRoute::PerVcpuVector(_) => EoiMode::BeforeHandlers,
        UpcallRoute::CallbackVector(_) => EoiMode::None,
    };
    interrupts::set_eoi_mode(vector, eoi).map_err(BringUpError::Irq)?;
    // The handler only scans and dispatches: port handlers only wake.
    let registration = interrupts::register_vector(vector, move || {
        channels.handle_upcall(vcpu);
    })
    .map_err(BringUpError::Irq)?;
    let routed = match upcall {
        UpcallRoute::PerVcpuVector(v) => hvm::set_evtchn_upcall_vector(hv, vcpu, v),
        UpcallRoute::CallbackVector(v) => hvm::set_callback_via(hv, CallbackVia::Vector(v)),
    };
    if let Err(e) = routed {
        interrupts::unregister(registration);
        interrupts::free_vector(vector);
        return Err(e.into());
    }
    if let UpcallRoute::PerVcpuVector(_) = upcall {
        // libxl offers the PV control path (`xl shutdown` writing
        // control/shutdown) to an HVM guest only if HVM_PARAM_CALLBACK_IRQ
        // is non-zero; with per-vCPU vectors it is otherwise unused (Xen
        // prefers the vector), so say "GSI 1" as Linux does.
        if let Err(e) = hvm::set_callback_via(hv, CallbackVia::Gsi(1)) {
            log::warn!("xen: cannot advertise PV drivers through CALLBACK_IRQ: {e}");
        }
    }
    // Discarding the registration (it has no Drop) keeps the handler for
    // the kernel's life.
    let _ = registration;
    // The PV console's input, now that its event can arrive.
    console::enable_input(&channels);

    // 6. Power off through Xen when there is no isa-debug-exit.
    crate::exit::set_power_off_hook(power_off);

    Ok(XenGuest {
        info,
        vcpu,
        hypervisor: hv,
        channels,
        upcall,
    })
}

/// Re-establishes what a new host does not carry over after a suspend that
/// Xen reports as resumed (`SCHEDOP_shutdown(suspend)` returned 0), in the
/// order of Linux's `xen_hvm_post_suspend`: shared_info placed again at its
/// frame, every port masked, then the upcall routed again. Thread context,
/// interrupts off (see `guest::power`), before anything waits for an event.
pub fn restore_after_resume(guest: &XenGuest) -> Result<(), XenError> {
    let hv = guest.hypervisor;
    // RAM is identity mapped: the page's address is its frame's.
    let shared = core::ptr::from_ref(guest.channels.shared_info()) as u64;
    // SAFETY: the same frame as at bring-up, given to Xen for good.
    unsafe { shared_info::map_shared_info(hv, Gfn::containing(shared)) }?;
    // The new domain's ports start unmasked, and none of ours exist there:
    // mask them all, as Linux's `xen_irq_resume` does; each user attaches
    // (and so unmasks) its port again.
    guest.channels.mask_all();
    // First: the lines logged below go to the console's new channel.
    console::restore_after_resume(hv, &guest.channels);
    match guest.upcall {
        UpcallRoute::PerVcpuVector(v) => {
            hvm::set_evtchn_upcall_vector(hv, guest.vcpu, v)?;
            if let Err(e) = hvm::set_callback_via(hv, CallbackVia::Gsi(1)) {
                log::warn!("xen: cannot advertise PV drivers through CALLBACK_IRQ: {e}");
            }
        }
        UpcallRoute::CallbackVector(v) => hvm::set_callback_via(hv, CallbackVia::Vector(v))?,
    }
    log::info!("xen: shared_info and upcall restored after resume");
    Ok(())
}

/// Maps a guest frame the toolstack set up for us (xenstore or console
/// ring: a "special page", often outside the RAM map) write-back.
///
/// # Safety
/// `gfn` must be a page the toolstack set up for us (from an HVM param such
/// as `HVM_PARAM_STORE_PFN`), not RAM the kernel allocates.
pub(crate) unsafe fn map_special_page(gfn: Gfn) -> Result<VirtAddr, memory::MapError> {
    // SAFETY: a special page holds no Rust object (see `# Safety`).
    unsafe { memory::map_shared_memory(gfn.addr(), xen::PAGE_SIZE) }
        .map(|region| VirtAddr::new(region.as_ptr() as u64))
}

fn power_off(code: crate::ExitCode) {
    let Some(hv) = HYPERCALLS.get() else { return };
    // The last lines (a test's result, "powering off") reach dom0's log.
    console::flush(hv);
    let reason = match code {
        crate::ExitCode::Success => ShutdownReason::Poweroff,
        crate::ExitCode::Failure => ShutdownReason::Crash,
    };
    if let Err(e) = sched::shutdown(hv, reason) {
        crate::serial::write_fmt(format_args!(
            "xen: SCHEDOP_shutdown({reason:?}) refused: {e}\n"
        ));
    }
}

//! The local APIC (xAPIC, memory mapped): enable, EOI, self-IPIs and the
//! periodic timer that drives the scheduler tick.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use spin::Once;
use x86_64::registers::model_specific::Msr;

use crate::memory::MmioRegion;
use crate::spinlock::SpinLock;

/// Vector of the local APIC timer (the tick).
pub const TIMER_VECTOR: u8 = 0xf0;
/// Vector of local APIC spurious interrupts (never EOI'd).
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const REG_ID: usize = 0x20;
const REG_VERSION: usize = 0x30;
const REG_TPR: usize = 0x80;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const REG_LVT_TIMER: usize = 0x320;
const REG_LVT_LINT0: usize = 0x350;
const REG_LVT_LINT1: usize = 0x360;
const REG_LVT_ERROR: usize = 0x370;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const ICR_PENDING: u32 = 1 << 12;
const ICR_SELF: u32 = 1 << 18;

static LAPIC: Once<MmioRegion> = Once::new();
static TIMER_HANDLER: Once<fn()> = Once::new();
/// Serialises ICR writes (a two-step, wait-for-idle protocol).
static ICR_LOCK: SpinLock<()> = SpinLock::new(());
static TIMER_COUNTS_PER_MS: AtomicU64 = AtomicU64::new(0);
/// The tick's count, re-armed on each tick (0: the timer is not started).
static TIMER_INITIAL: AtomicU32 = AtomicU32::new(0);

fn lapic() -> &'static MmioRegion {
    LAPIC.get().expect("local APIC initialised at boot")
}

/// This CPU's local APIC id.
pub fn id() -> u8 {
    (lapic().read32(REG_ID) >> 24) as u8
}

/// Signals end of interrupt to the local APIC (and through it, for
/// level-triggered lines, to the IOAPIC).
pub(super) fn eoi() {
    lapic().write32(REG_EOI, 0);
}

pub(super) fn init() {
    let base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU with an APIC (all of
    // them); reading it has no side effect.
    let base = unsafe { base_msr.read() };
    let phys = crate::acpi::interrupt_model().map_or(base & 0xf_ffff_f000, |m| m.local_apic);
    // SAFETY: the local APIC's registers (from ACPI or the MSR); this
    // module is their only user.
    let region = unsafe { crate::memory::map_mmio(phys, 4096) }
        .unwrap_or_else(|e| panic!("cannot map the local APIC at {phys:#x}: {e}"));
    LAPIC.call_once(|| region);
    let apic = lapic();
    apic.write32(REG_TPR, 0); // accept every priority
    apic.write32(REG_LVT_LINT0, LVT_MASKED);
    apic.write32(REG_LVT_LINT1, LVT_MASKED);
    apic.write32(REG_LVT_ERROR, LVT_MASKED);
    apic.write32(REG_LVT_TIMER, LVT_MASKED);
    apic.write32(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR)); // software enable
    log::info!(
        "local APIC id {} version {:#x} at {phys:#x}",
        id(),
        apic.read32(REG_VERSION) & 0xff
    );
}

/// Calibrates the timer against the TSC clock and starts a tick at `hz`,
/// calling `handler` on each tick (in interrupt context).
///
/// The tick is a one-shot timer re-armed by each tick, not the periodic
/// mode: a periodic virtual timer whose vCPU is starved (a capped or busy
/// Xen guest) has its missed ticks delivered back to back when the vCPU
/// runs, and a guest that spends more than the tick period on each of them
/// never catches up (seen on the real-Xen bed: stuck for good right after
/// this function, under `cap = 5`). Re-arming keeps at most one tick
/// pending; nothing counts ticks for time (the clock is the TSC).
pub(crate) fn start_timer(hz: u64, handler: fn()) {
    TIMER_HANDLER.call_once(|| handler);
    let apic = lapic();
    apic.write32(REG_TIMER_DIVIDE, 0x3); // divide by 16
    apic.write32(REG_LVT_TIMER, LVT_MASKED);
    apic.write32(REG_TIMER_INIT, u32::MAX);
    crate::time::spin_for(Duration::from_millis(10));
    let counted = u64::from(u32::MAX - apic.read32(REG_TIMER_CURRENT));
    let per_ms = (counted / 10).max(1);
    TIMER_COUNTS_PER_MS.store(per_ms, Ordering::Relaxed);
    let initial = (per_ms * 1000 / hz).clamp(1, u64::from(u32::MAX)) as u32;
    TIMER_INITIAL.store(initial, Ordering::Relaxed);
    // One-shot mode (bits 17-18 clear), re-armed in `on_timer`.
    apic.write32(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
    apic.write32(REG_TIMER_INIT, initial);
    log::info!(
        "local APIC timer: {} counts/ms (divide 16), period {initial} counts",
        per_ms
    );
}

pub(super) fn on_timer() {
    // Re-arm first, so the tick's period does not include the handler.
    let initial = TIMER_INITIAL.load(Ordering::Relaxed);
    if initial != 0 {
        lapic().write32(REG_TIMER_INIT, initial);
    }
    if let Some(handler) = TIMER_HANDLER.get() {
        handler();
    }
}

/// Sends `vector` to this CPU.
pub(super) fn send_self_ipi(vector: u8) {
    let _icr = ICR_LOCK.lock();
    let apic = lapic();
    while apic.read32(REG_ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
    apic.write32(REG_ICR_HIGH, 0);
    apic.write32(REG_ICR_LOW, ICR_SELF | u32::from(vector));
}

//! Time: a monotonic microsecond clock from the TSC, and the
//! scheduler tick from the local APIC timer.
//!
//! The TSC frequency comes from the Xen CPUID leaf when running on Xen (PVH
//! has no PIT), else it is measured against the PIT (channel 2, 10 ms).
//! The APIC timer is then calibrated against the TSC.

use core::ops::{Add, Sub};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use crate::arch::cpu::{cpuid, inb, outb, rdtsc};

/// Scheduler tick rate: sleeps and timeouts have this granularity.
pub const TICK_HZ: u64 = 1000;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// `(1e6 << 32) / tsc_hz`: TSC cycles to microseconds as a multiply.
static US_PER_CYCLE_FP32: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

/// A point on the monotonic clock: microseconds since the clock started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// Now. Before calibration (very early boot) this is always zero.
    pub fn now() -> Self {
        let scale = US_PER_CYCLE_FP32.load(Ordering::Relaxed);
        if scale == 0 {
            return Self(0);
        }
        let cycles = rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
        Self(((u128::from(cycles) * u128::from(scale)) >> 32) as u64)
    }

    /// An instant `micros` microseconds after the clock started.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// Microseconds since the clock started.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time since this instant (zero if it is in the future).
    pub fn elapsed(self) -> Duration {
        Self::now().saturating_duration_since(self)
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }
}

impl Sub for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Shorthand for [`Instant::now`].
pub fn now() -> Instant {
    Instant::now()
}

/// Time since boot.
pub fn uptime() -> Duration {
    Duration::from_micros(Instant::now().as_micros())
}

/// TSC frequency in Hz (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Timer interrupts since the tick started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Busy-waits for `d` (for drivers' short hardware delays; threads should
/// use [`crate::thread::sleep`]).
pub fn spin_for(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        core::hint::spin_loop();
    }
}

/// TSC frequency from the Xen CPUID leaves (base + 3, sub-leaf 0: ECX is
/// the guest TSC frequency in kHz), if running on Xen.
fn xen_tsc_hz() -> Option<u64> {
    (0x4000_0000..0x4001_0000u32)
        .step_by(0x100)
        .find_map(|base| {
            let sig = cpuid(base, 0);
            let name = [sig.ebx, sig.ecx, sig.edx];
            let is_xen = name == [0x566e_6558, 0x65584d4d, 0x4d4d566e]; // "XenVMMXenVMM"
            (is_xen && sig.eax >= base + 3)
                .then(|| u64::from(cpuid(base + 3, 0).ecx) * 1000)
                .filter(|&hz| hz != 0)
        })
}

/// PIT measurements taken; the lowest wins (see [`pit_tsc_hz`]).
const PIT_SAMPLES: usize = 5;

/// The TSC's frequency measured against the PIT: the lowest of
/// [`PIT_SAMPLES`] measurements. A measurement can only come out high: when
/// the host deschedules the emulator between the PIT's expiry and our
/// noticing it, the TSC counts on (seen under load: 5.4 and 15.6 GHz for a
/// 2.2 GHz TSC, which made every timed wait 2.5 to 7 times too long).
/// Returns `None` if the PIT does not behave (absent, as on Xen PVH).
fn pit_tsc_hz() -> Option<u64> {
    let mut lowest: Option<u64> = None;
    for _ in 0..PIT_SAMPLES {
        let hz = pit_tsc_hz_once()?;
        lowest = Some(lowest.map_or(hz, |l| l.min(hz)));
    }
    lowest
}

/// Measures the TSC against PIT channel 2 counting down 10 ms, once.
fn pit_tsc_hz_once() -> Option<u64> {
    const PIT_HZ: u64 = 1_193_182;
    const LATCH: u64 = PIT_HZ / 100; // 10 ms
    // Gate on, speaker off; channel 2, lobyte/hibyte, mode 0 (one-shot).
    // SAFETY: PIT channel 2 and its gate in port 0x61 are used by nothing
    // else (the PIT's IRQ 0 is masked; channel 2 only drives the speaker).
    unsafe {
        outb(0x61, (inb(0x61) & !0x02) | 0x01);
        outb(0x43, 0xb0);
        outb(0x42, (LATCH & 0xff) as u8);
        outb(0x42, (LATCH >> 8) as u8);
    }
    let start = rdtsc();
    let mut polls = 0u64;
    // SAFETY: reads channel 2's output bit, as above.
    while unsafe { inb(0x61) } & 0x20 == 0 {
        polls += 1;
        if polls > 50_000_000 {
            return None;
        }
    }
    let cycles = rdtsc() - start;
    let hz = cycles * 100;
    // A PIT that is absent reads 0xff: "done" at once, giving nonsense.
    (polls > 0 && (50_000_000..=20_000_000_000).contains(&hz)).then_some(hz)
}

/// Calibrates the TSC; afterwards [`Instant::now`] runs.
pub(crate) fn init() {
    let (hz, source) = match xen_tsc_hz() {
        Some(hz) => (hz, "Xen CPUID leaf"),
        None => match pit_tsc_hz() {
            Some(hz) => (hz, "PIT"),
            None => {
                log::error!("no TSC frequency source (no Xen leaf, no PIT); assuming 1 GHz");
                (1_000_000_000, "assumed")
            }
        },
    };
    TSC_HZ.store(hz, Ordering::Relaxed);
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
    US_PER_CYCLE_FP32.store((1_000_000u64 << 32) / hz, Ordering::Relaxed);
    log::info!(
        "clock: TSC {}.{:03} MHz (from {source})",
        hz / 1_000_000,
        hz / 1000 % 1000
    );
}

/// The scheduler's per-tick work (time slices, sleep deadlines), given the
/// tick's time; installed by the scheduler ([`set_scheduler_tick`]).
static SCHEDULER_TICK: spin::Once<fn(Instant)> = spin::Once::new();

/// Installs the scheduler's per-tick work, run on every tick before the
/// [`add_tick_handler`] handlers (once, at boot; later calls are ignored).
pub(crate) fn set_scheduler_tick(hook: fn(Instant)) {
    SCHEDULER_TICK.call_once(|| hook);
}

/// A function run on every tick, in interrupt context.
pub type TickHandler = fn();

const MAX_TICK_HANDLERS: usize = 8;
/// Extra per-tick handlers. Taken in the timer interrupt.
static TICK_HANDLERS: crate::spinlock::SpinLock<[Option<TickHandler>; MAX_TICK_HANDLERS]> =
    crate::spinlock::SpinLock::new([None; MAX_TICK_HANDLERS]);

/// Runs `handler` on every timer tick in interrupt context (it must be
/// short, must not sleep, may wake threads). Returns `false` if all slots
/// are taken. Handlers can be removed with [`remove_tick_handler`].
pub fn add_tick_handler(handler: TickHandler) -> bool {
    let mut slots = TICK_HANDLERS.lock();
    match slots.iter_mut().find(|s| s.is_none()) {
        Some(slot) => {
            *slot = Some(handler);
            true
        }
        None => false,
    }
}

/// Removes a handler added by [`add_tick_handler`]; returns whether it was
/// registered.
pub fn remove_tick_handler(handler: TickHandler) -> bool {
    let mut slots = TICK_HANDLERS.lock();
    match slots
        .iter_mut()
        .find(|s| s.is_some_and(|h| core::ptr::fn_addr_eq(h, handler)))
    {
        Some(slot) => {
            *slot = None;
            true
        }
        None => false,
    }
}

/// The timer interrupt's work: counts the tick, runs the scheduler's tick
/// and the extra handlers. Boot hands it to the local APIC timer.
pub(crate) fn on_tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    if let Some(scheduler_tick) = SCHEDULER_TICK.get() {
        scheduler_tick(Instant::now());
    }
    let handlers = *TICK_HANDLERS.lock();
    for handler in handlers.iter().flatten() {
        handler();
    }
}

//! Time: what the kernel guarantees, and only that. The clock (the TSC) is
//! monotonic with microsecond resolution, ticks keep coming, a sleep lasts
//! at least its duration, and a tick handler runs once per tick. Nothing
//! here counts ticks against elapsed time: under emulation timer interrupts
//! arrive late and merged, and the clock and sleeps do not depend on them.

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use kernel::thread;
use kernel::time::{self, Instant};

ktests::config!(timeout_secs = 30);
ktests::main!(
    timer_ticks_advance,
    clock_is_monotonic_with_microsecond_resolution,
    sleep_lasts_at_least_its_duration,
    tick_handler_runs_every_tick,
);

/// Far beyond any delay an emulator adds: a wait this long means "never".
const NEVER: Duration = Duration::from_secs(10);

fn timer_ticks_advance() {
    let start = time::ticks();
    let t0 = Instant::now();
    while time::ticks() < start + 20 {
        assert!(t0.elapsed() < NEVER, "ticks stuck at {}", time::ticks());
        core::hint::spin_loop();
    }
}

fn clock_is_monotonic_with_microsecond_resolution() {
    let mut last = Instant::now();
    let mut smallest_step = u64::MAX;
    for _ in 0..10_000 {
        let now = Instant::now();
        assert!(now >= last, "clock went backwards: {now:?} < {last:?}");
        let step = now.as_micros() - last.as_micros();
        if step > 0 {
            smallest_step = smallest_step.min(step);
        }
        last = now;
    }
    // A tick-based clock could only step by 1000 us.
    assert!(
        smallest_step < 100,
        "clock steps of {smallest_step} us: not microsecond resolution"
    );
}

fn sleep_lasts_at_least_its_duration() {
    for ms in [1u64, 10, 50] {
        let start = Instant::now();
        thread::sleep(Duration::from_millis(ms));
        let slept = start.elapsed();
        assert!(
            slept >= Duration::from_millis(ms),
            "sleep({ms} ms) returned after {slept:?}"
        );
        // Only a bound on "it ends": an emulator on a busy host may deliver
        // timer interrupts late and merged, so no tighter one is promised.
        assert!(
            slept < Duration::from_millis(ms) + NEVER,
            "sleep({ms} ms) took {slept:?}"
        );
    }
}

static HOOK_TICKS: AtomicU64 = AtomicU64::new(0);

fn count_tick() {
    HOOK_TICKS.fetch_add(1, Ordering::SeqCst);
}

fn tick_handler_runs_every_tick() {
    let before_add = time::ticks();
    assert!(time::add_tick_handler(count_tick));
    let after_add = time::ticks();
    // Wait for 20 ticks (not a fixed time: a loaded TCG host merges ticks).
    let deadline = Instant::now() + NEVER;
    while time::ticks() < after_add + 20 {
        assert!(Instant::now() < deadline, "ticks stopped");
        thread::sleep(Duration::from_millis(1));
    }
    let before_remove = time::ticks();
    assert!(time::remove_tick_handler(count_tick));
    let after_remove = time::ticks();
    let seen = HOOK_TICKS.load(Ordering::SeqCst);
    // Once per tick: at least every tick fully inside the registration,
    // at most every tick that overlapped it.
    assert!(
        (before_remove - after_add..=after_remove - before_add).contains(&seen),
        "handler ran {seen} times; ticks while registered: {}..={}",
        before_remove - after_add,
        after_remove - before_add
    );
    thread::sleep(Duration::from_millis(5));
    assert_eq!(
        HOOK_TICKS.load(Ordering::SeqCst),
        seen,
        "removed handler still runs"
    );
}

//! No thread and no heap left behind per period of a guest service, against
//! the REAL xenstored: 1000 periods of 1 ms, then 1000 periods' time with a
//! handler that never returns. Issue 10 found each period whose handler
//! overran leaking a thread with its stack. One test in this binary: it
//! counts the whole process's heap.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use support::{Env, eventually, fixed_info};
use xenbus::services::{DataConfig, DataPublisher, GuestInfo, ServiceState, SystemInfo};
use xenstore::StdPlatform;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Log lines straight to the process's stderr: the test harness's capture
/// of `eprintln!` keeps them in a growing buffer, which would count as heap.
struct RawStderr;

impl log::Log for RawStderr {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "[{}] {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

static LOGGER: RawStderr = RawStderr;

/// The process's threads now.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// `data/` figures whose `stop_at`-th call waits until released; every
/// call changes `uptime`, so every period writes to the store.
#[derive(Default)]
struct Checkpoints {
    calls: AtomicUsize,
    /// (the call to hold, whether it is held now)
    at: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Checkpoints {
    /// Holds call `n` (and every later one) until `release` or the next
    /// `hold`, which lets the held call go on.
    fn hold(&self, n: usize) {
        *self.at.lock().unwrap() = (n, false);
        self.changed.notify_all();
    }

    /// Waits until call `n` is held. Only a guard against hanging: 1000
    /// periods take a few seconds.
    fn wait_held(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut at = self.at.lock().unwrap();
        while *at != (n, true) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "call {n} never came");
            at = self.changed.wait_timeout(at, left).unwrap().0;
        }
    }

    fn release(&self) {
        *self.at.lock().unwrap() = (usize::MAX, false);
        self.changed.notify_all();
    }
}

impl SystemInfo for Checkpoints {
    fn guest_info(&self) -> GuestInfo {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let mut at = self.at.lock().unwrap();
        while call >= at.0 {
            // Said again after each wake-up: `hold` resets it.
            at.1 = true;
            self.changed.notify_all();
            at = self.changed.wait(at).unwrap();
        }
        drop(at);
        GuestInfo {
            // Same width all along: the cached values keep their size.
            uptime_secs: 1_000_000 + call as u64,
            ..fixed_info()
        }
    }
}

/// Periods between the measurements.
const PERIODS: isize = 1000;

#[test]
fn a_thousand_periods_leave_no_thread_and_no_heap_behind() {
    log::set_logger(&LOGGER).expect("first logger");
    log::set_max_level(log::LevelFilter::Debug);
    let env = Env::start();
    let info = Arc::new(Checkpoints::default());
    let config = DataConfig {
        period: Duration::from_millis(1),
        handler_timeout: Duration::from_millis(1),
    };
    // Warm up (the client's buffers; a timeout, so that the status holds
    // a `last_error` at both measurements), then measure at the same quiet
    // point of a period: its handler held inside `guest_info` and the
    // service thread done recording that it timed out.
    let shared: Arc<dyn SystemInfo> = info.clone();
    info.hold(100);
    let data = DataPublisher::start(Arc::new(StdPlatform), env.guest.clone(), shared, config)
        .expect("the data/ publisher starts");
    let settle = |call| {
        info.hold(call);
        info.wait_held(call);
        eventually("the held handler timed out", || {
            data.status().state == ServiceState::HandlerOverdue
        });
    };
    settle(100);
    let (threads0, heap0) = (threads(), LIVE.load(Ordering::SeqCst));
    settle(1100);
    let (threads1, heap1) = (threads(), LIVE.load(Ordering::SeqCst));
    assert_eq!(threads1, threads0, "threads after 1000 periods");
    // A leak per period would add at least 1000 allocations (8 bytes or
    // more each); the client's transient buffers (a message or two) may be
    // live at one measurement and not the other.
    assert!(
        heap1 - heap0 < PERIODS,
        "heap grew by {} bytes in 1000 periods",
        heap1 - heap0
    );

    // The handler held now never returns: 1000 periods' time passes with it
    // stuck (and timed out); no period may start another thread.
    let (threads2, heap2) = (threads(), LIVE.load(Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(2000)); // 1000 periods + timeouts
    let (threads3, heap3) = (threads(), LIVE.load(Ordering::SeqCst));
    assert_eq!(threads3, threads2, "threads while a handler is stuck");
    assert!(
        heap3 - heap2 < PERIODS,
        "heap grew by {} bytes while a handler was stuck",
        heap3 - heap2
    );
    assert_eq!(
        info.calls.load(Ordering::SeqCst),
        1100,
        "a refresh started beside the stuck one"
    );

    // The stuck handler returns: the publisher goes on, and stops cleanly
    // (the handler may outlive `stop`'s wait of one timeout: abandoned).
    info.release();
    eventually("refreshes resume", || {
        info.calls.load(Ordering::SeqCst) > 1101
    });
    drop(data);
    eventually("the threads let go", || Arc::strong_count(&info) == 1);
}

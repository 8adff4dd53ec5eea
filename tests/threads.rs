//! Threads: many threads contending on the sleepable mutex get exact totals,
//! time slices preempt busy threads, and finished threads are reaped.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use kernel::memory::free_frames;
use kernel::sync::Mutex;
use kernel::thread::{self, ThreadState};
use kernel::time::Instant;

ktests::config!(timeout_secs = 60);
ktests::main!(
    fifty_threads_increment_under_the_mutex_exactly,
    busy_threads_are_preempted_round_robin,
    finished_threads_are_reaped,
    thread_ids_are_distinct_and_current,
);

fn fifty_threads_increment_under_the_mutex_exactly() {
    static COUNTER: Mutex<u64> = Mutex::new(0);
    const THREADS: u64 = 50;
    const ROUNDS: u64 = 200;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            thread::spawn_joinable("incrementer", || {
                for i in 0..ROUNDS {
                    let mut c = COUNTER.lock();
                    let seen = *c;
                    if i % 16 == 0 {
                        // Hold the mutex across a switch: others must sleep on it.
                        thread::yield_now();
                    }
                    *c = seen + 1;
                }
            })
        })
        .collect();
    for h in &handles {
        assert!(
            h.join_timeout(Duration::from_secs(30)),
            "thread {} stuck",
            h.id()
        );
    }
    assert_eq!(*COUNTER.lock(), THREADS * ROUNDS);
}

fn busy_threads_are_preempted_round_robin() {
    static STOP: AtomicBool = AtomicBool::new(false);
    static SPINS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
    let handles: Vec<_> = (0..2)
        .map(|i| {
            thread::spawn_joinable("spinner", move || {
                // Never yields: only the timer can take the CPU away.
                while !STOP.load(Ordering::Relaxed) {
                    SPINS[i].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    STOP.store(true, Ordering::Relaxed);
    for h in &handles {
        assert!(h.join_timeout(Duration::from_secs(10)));
    }
    let (a, b) = (
        SPINS[0].load(Ordering::Relaxed),
        SPINS[1].load(Ordering::Relaxed),
    );
    assert!(
        a > 0 && b > 0,
        "a busy thread starved the other: {a} vs {b}"
    );
}

fn finished_threads_are_reaped() {
    // Warm up (heap growth for thread bookkeeping), then measure.
    thread::spawn_joinable("warmup", || {}).join();
    thread::sleep(Duration::from_millis(5));
    let frames = free_frames();
    let threads = thread::list().len();
    for _ in 0..100 {
        thread::spawn_joinable("short-lived", || {}).join();
    }
    thread::sleep(Duration::from_millis(5));
    assert_eq!(thread::list().len(), threads, "dead threads still listed");
    let leaked = frames.saturating_sub(free_frames());
    // Stacks are 16 frames each: 100 leaked stacks would be 1600.
    assert!(
        leaked < 64,
        "{leaked} frames not returned after 100 threads"
    );
}

fn thread_ids_are_distinct_and_current() {
    static SEEN: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    let main = thread::current_id();
    let handles: Vec<_> = (0..5)
        .map(|_| {
            thread::spawn_joinable("id", || {
                SEEN.lock().push(thread::current_id().as_u64());
                assert_eq!(thread::current().state(), ThreadState::Running);
            })
        })
        .collect();
    let ids: Vec<u64> = handles.iter().map(|h| h.id().as_u64()).collect();
    let start = Instant::now();
    for h in &handles {
        h.join();
    }
    assert!(start.elapsed() < Duration::from_secs(10));
    let mut seen = SEEN.lock().clone();
    seen.sort_unstable();
    let mut expected = ids.clone();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(seen, expected, "current_id() differs from the spawned ids");
    assert!(!ids.contains(&main.as_u64()));
    assert_eq!(thread::current_id(), main);
}

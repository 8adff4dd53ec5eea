//! Wait queues, the sx/RW lock and completions.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use kernel::sync::{Completion, Mutex, RwLock, SxLock, WaitQueue};
use kernel::thread;
use kernel::time::{self, Instant};

ktests::config!(timeout_secs = 60);
ktests::main!(
    thread_on_wait_queue_is_woken_by_the_timer_interrupt,
    wait_until_times_out_when_nobody_wakes,
    wake_one_wakes_exactly_one,
    rwlock_lets_readers_share,
    rwlock_writer_waits_until_readers_leave,
    rwlock_waiting_writer_blocks_new_readers,
    sx_lock_held_shared_across_calls,
    completion_wakes_waiters_and_stays_complete,
    mutex_try_lock_fails_while_held,
);

const LONG: Duration = Duration::from_secs(10);

static TIMER_WQ: WaitQueue = WaitQueue::new();
static FIRE_AT_TICK: AtomicU64 = AtomicU64::new(u64::MAX);
static FIRED: AtomicBool = AtomicBool::new(false);

fn wake_from_tick() {
    if !FIRED.load(Ordering::SeqCst) && time::ticks() >= FIRE_AT_TICK.load(Ordering::SeqCst) {
        FIRED.store(true, Ordering::SeqCst);
        TIMER_WQ.wake_all();
    }
}

fn thread_on_wait_queue_is_woken_by_the_timer_interrupt() {
    FIRE_AT_TICK.store(time::ticks() + 20, Ordering::SeqCst);
    assert!(time::add_tick_handler(wake_from_tick));
    let waiter = thread::spawn_joinable("waiter", || {
        // No timeout: only the interrupt handler can end this wait.
        TIMER_WQ.wait(|| FIRED.load(Ordering::SeqCst));
    });
    assert!(
        waiter.join_timeout(LONG),
        "waiter never woken by the timer handler"
    );
    assert!(FIRED.load(Ordering::SeqCst));
    assert!(time::remove_tick_handler(wake_from_tick));
}

fn wait_until_times_out_when_nobody_wakes() {
    let wq = WaitQueue::new();
    let start = Instant::now();
    let woke = wq.wait_until(|| false, Some(Duration::from_millis(30)));
    let waited = start.elapsed();
    assert!(!woke);
    assert!(
        waited >= Duration::from_millis(30),
        "returned early after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(530),
        "returned late after {waited:?}"
    );
    assert!(wq.is_empty(), "timed-out waiter left on the queue");
}

fn wake_one_wakes_exactly_one() {
    static WQ: WaitQueue = WaitQueue::new();
    static TOKENS: AtomicUsize = AtomicUsize::new(0);
    static DONE: AtomicUsize = AtomicUsize::new(0);
    let take = || {
        TOKENS
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| t.checked_sub(1))
            .is_ok()
    };
    let handles: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn_joinable("taker", move || {
                WQ.wait(take);
                DONE.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    while WQ.len() < 3 {
        thread::sleep(Duration::from_millis(1));
    }
    TOKENS.fetch_add(1, Ordering::SeqCst);
    assert!(WQ.wake_one());
    thread::sleep(Duration::from_millis(20));
    assert_eq!(DONE.load(Ordering::SeqCst), 1);
    assert_eq!(WQ.len(), 2);
    TOKENS.fetch_add(2, Ordering::SeqCst);
    assert_eq!(WQ.wake_all(), 2);
    for h in &handles {
        assert!(h.join_timeout(LONG));
    }
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LONG, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

fn rwlock_lets_readers_share() {
    static LOCK: RwLock<u32> = RwLock::new(7);
    static INSIDE: AtomicUsize = AtomicUsize::new(0);
    static MAX_INSIDE: AtomicUsize = AtomicUsize::new(0);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn_joinable("reader", || {
                let value = LOCK.read();
                let n = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
                MAX_INSIDE.fetch_max(n, Ordering::SeqCst);
                // Stay until all three are inside together.
                wait_for("all readers inside", || {
                    MAX_INSIDE.load(Ordering::SeqCst) == 3
                });
                assert_eq!(*value, 7);
                INSIDE.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for h in &handles {
        assert!(h.join_timeout(LONG), "readers did not share the lock");
    }
    assert_eq!(MAX_INSIDE.load(Ordering::SeqCst), 3);
}

fn rwlock_writer_waits_until_readers_leave() {
    static LOCK: RwLock<u32> = RwLock::new(0);
    static READERS_LEFT: AtomicBool = AtomicBool::new(false);
    let guard = LOCK.read();
    let writer = thread::spawn_joinable("writer", || {
        let mut v = LOCK.write();
        assert!(
            READERS_LEFT.load(Ordering::SeqCst),
            "writer entered while a reader held it"
        );
        *v += 1;
    });
    wait_for("the writer to wait", || LOCK.sx().writers_waiting() == 1);
    thread::sleep(Duration::from_millis(20));
    assert!(!writer.is_finished(), "writer did not wait for the reader");
    READERS_LEFT.store(true, Ordering::SeqCst);
    drop(guard);
    assert!(
        writer.join_timeout(LONG),
        "writer not woken when the reader left"
    );
    assert_eq!(*LOCK.read(), 1);
}

fn rwlock_waiting_writer_blocks_new_readers() {
    static LOCK: RwLock<Vec<&str>> = RwLock::new(Vec::new());
    let first_reader = LOCK.read();
    let writer = thread::spawn_joinable("writer", || LOCK.write().push("writer"));
    wait_for("the writer to wait", || LOCK.sx().writers_waiting() == 1);
    assert!(
        LOCK.try_read().is_none(),
        "a new reader got in past a waiting writer"
    );
    let late_reader = thread::spawn_joinable("late-reader", || {
        let log = LOCK.read();
        assert_eq!(
            log.as_slice(),
            ["writer"],
            "late reader ran before the writer"
        );
    });
    thread::sleep(Duration::from_millis(20));
    assert!(
        !late_reader.is_finished(),
        "late reader did not wait behind the writer"
    );
    drop(first_reader);
    assert!(writer.join_timeout(LONG));
    assert!(late_reader.join_timeout(LONG));
}

fn sx_lock_held_shared_across_calls() {
    // A transaction object keeps the lock shared for its whole life.
    struct Transaction<'a>(&'a SxLock);
    impl<'a> Transaction<'a> {
        fn start(lock: &'a SxLock) -> Self {
            lock.lock_shared();
            Transaction(lock)
        }
        fn end(self) {
            self.0.unlock_shared();
        }
    }
    static SUSPEND: SxLock = SxLock::new();
    let t1 = Transaction::start(&SUSPEND);
    let t2 = Transaction::start(&SUSPEND);
    assert_eq!(SUSPEND.shared_holders(), 2);
    assert!(!SUSPEND.try_lock_exclusive());
    let suspender = thread::spawn_joinable("suspend", || {
        SUSPEND.lock_exclusive();
        SUSPEND.unlock_exclusive();
    });
    wait_for("suspend to wait", || SUSPEND.writers_waiting() == 1);
    t1.end();
    thread::sleep(Duration::from_millis(10));
    assert!(
        !suspender.is_finished(),
        "suspend ran with a transaction open"
    );
    t2.end();
    assert!(suspender.join_timeout(LONG));
    assert_eq!(SUSPEND.shared_holders(), 0);
    assert!(!SUSPEND.is_held_exclusive());
}

fn completion_wakes_waiters_and_stays_complete() {
    let done = Arc::new(Completion::new());
    assert!(!done.wait_timeout(Duration::from_millis(10)));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let done = done.clone();
            thread::spawn_joinable("waiter", move || done.wait())
        })
        .collect();
    thread::sleep(Duration::from_millis(10));
    let signaller = done.clone();
    thread::spawn("signaller", move || signaller.complete());
    for w in &waiters {
        assert!(w.join_timeout(LONG), "waiter missed the completion");
    }
    assert!(done.is_complete());
    assert!(
        done.wait_timeout(Duration::from_millis(0)),
        "completion did not stay complete"
    );
}

fn mutex_try_lock_fails_while_held() {
    let m = Mutex::new(1);
    let g = m.lock();
    assert!(m.try_lock().is_none());
    assert!(
        m.is_locked(),
        "a failed try_lock released the holder's lock"
    );
    drop(g);
    assert!(!m.is_locked());
    assert_eq!(*m.try_lock().expect("free again"), 1);
}

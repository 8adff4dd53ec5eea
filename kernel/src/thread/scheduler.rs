//! The run state and the context-switch protocol.
//!
//! All scheduling state is in [`RunState`] under [`SCHED`]'s raw spin lock,
//! always taken with interrupts disabled. A switch keeps the lock held
//! across `context::switch`; the thread switched *to* releases it in
//! [`finish_switch`] (as in xv6), after marking the previous thread off the
//! CPU. That is what makes a thread that is put back on the run queue (or
//! woken) safe to pick up only once its registers are saved.
//!
//! One CPU today: "current" and the idle thread are single globals. The
//! protocol itself (on_cpu, the held lock) is what SMP needs; per-CPU
//! current/idle and a wake-up IPI are what it would add.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{
    BlockTicket, IDLE_THREAD_ID, MAIN_THREAD_ID, Thread, ThreadInfo, ThreadState, context,
};
use crate::arch::cpu::{self, irq_restore, irq_save};
use crate::spinlock::RawSpinLock;
use crate::time::{Instant, TICK_HZ};

/// Ticks a thread runs before a ready peer preempts it (10 ms).
const TIME_SLICE_TICKS: u32 = (TICK_HZ / 100) as u32;

struct RunState {
    /// The thread on the CPU.
    current: Option<Arc<Thread>>,
    /// Runs when nothing else is ready; never on `ready`.
    idle: Option<Arc<Thread>>,
    /// Ready threads, in round-robin order.
    ready: VecDeque<Arc<Thread>>,
    /// Timed sleeps: (deadline us, thread id, block seq) -> thread.
    sleepers: BTreeMap<(u64, u64, u64), Arc<Thread>>,
    /// Every live thread, by id.
    all: BTreeMap<u64, Arc<Thread>>,
    /// The thread just switched away from, finished by `finish_switch`.
    prev: Option<Arc<Thread>>,
    /// Ticks left in the current slice.
    slice_left: u32,
}

/// The scheduler lock and the state it guards. Lock order: after wait-queue
/// locks, before stack slots, heap, page tables and frames.
struct Sched {
    lock: RawSpinLock,
    state: UnsafeCell<RunState>,
}

// SAFETY: `state` is only reached through `SchedGuard`, which holds `lock`.
unsafe impl Sync for Sched {}

static SCHED: Sched = Sched {
    lock: RawSpinLock::new(),
    state: UnsafeCell::new(RunState {
        current: None,
        idle: None,
        ready: VecDeque::new(),
        sleepers: BTreeMap::new(),
        all: BTreeMap::new(),
        prev: None,
        slice_left: TIME_SLICE_TICKS,
    }),
};

/// Id of the thread on the CPU, readable without the lock.
static CURRENT_ID: AtomicU64 = AtomicU64::new(MAIN_THREAD_ID);
static NEXT_ID: AtomicU64 = AtomicU64::new(MAIN_THREAD_ID + 1);
/// Set when a thread became ready that should run before the current one
/// continues (checked on the way out of every interrupt).
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicBool = AtomicBool::new(false);

/// Proof that `SCHED.lock` is held (with interrupts disabled).
struct SchedGuard(());

impl SchedGuard {
    fn lock() -> Self {
        debug_assert!(
            !cpu::irqs_enabled(),
            "scheduler lock taken with interrupts on"
        );
        SCHED.lock.lock();
        SchedGuard(())
    }
}

impl Deref for SchedGuard {
    type Target = RunState;
    fn deref(&self) -> &RunState {
        // SAFETY: this guard proves the lock is held.
        unsafe { &*SCHED.state.get() }
    }
}

impl DerefMut for SchedGuard {
    fn deref_mut(&mut self) -> &mut RunState {
        // SAFETY: this guard proves the lock is held.
        unsafe { &mut *SCHED.state.get() }
    }
}

impl Drop for SchedGuard {
    fn drop(&mut self) {
        // SAFETY: a guard exists only while this CPU holds the lock.
        unsafe { SCHED.lock.unlock() };
    }
}

pub(super) fn next_thread_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

pub(super) fn current_id() -> u64 {
    CURRENT_ID.load(Ordering::Relaxed)
}

pub(super) fn started() -> bool {
    STARTED.load(Ordering::Relaxed)
}

fn with_sched<R>(f: impl FnOnce(&mut SchedGuard) -> R) -> R {
    let irq = irq_save();
    let r = f(&mut SchedGuard::lock());
    irq_restore(irq);
    r
}

pub(super) fn current() -> Arc<Thread> {
    with_sched(|s| s.current.clone()).expect("the scheduler has a current thread")
}

pub(super) fn list() -> Vec<ThreadInfo> {
    with_sched(|s| {
        s.all
            .values()
            .map(|t| ThreadInfo {
                id: t.id,
                name: t.name.clone(),
                state: t.state(),
            })
            .collect()
    })
}

pub(super) fn init() {
    let main = Arc::new(Thread::new(MAIN_THREAD_ID, "main", None));
    main.set_state(ThreadState::Running);
    main.on_cpu.store(true, Ordering::Relaxed);
    // Interrupt handlers run on the interrupted thread's stack, very often
    // the idle thread's: it gets the default size like everyone else.
    let idle = super::Builder::new("idle")
        .create(
            IDLE_THREAD_ID,
            alloc::boxed::Box::new(|| {
                loop {
                    // An interrupt that readies a thread preempts us on its way out.
                    cpu::enable_irqs_and_halt();
                }
            }),
        )
        .expect("idle thread");
    with_sched(|s| {
        s.all.insert(MAIN_THREAD_ID, main.clone());
        s.all.insert(IDLE_THREAD_ID, idle.clone());
        s.current = Some(main);
        s.idle = Some(idle);
    });
    STARTED.store(true, Ordering::SeqCst);
}

/// Puts a new thread on the run queue.
pub(super) fn add(thread: Arc<Thread>) {
    with_sched(|s| {
        thread.set_state(ThreadState::Ready);
        s.all.insert(thread.id.as_u64(), thread.clone());
        s.ready.push_back(thread);
    });
}

/// Switches from the current thread to the next ready one (or idle). The
/// caller has already set the current thread's state (and queued it if it
/// stays runnable). Consumes the lock; returns, with interrupts still
/// disabled, when this thread is switched back to.
fn switch_away(mut s: SchedGuard) {
    s.slice_left = TIME_SLICE_TICKS;
    let next = match s.ready.pop_front() {
        Some(next) => next,
        None => s.idle.clone().expect("idle thread exists"),
    };
    let prev = s.current.take().expect("a current thread");
    if Arc::ptr_eq(&prev, &next) {
        next.set_state(ThreadState::Running);
        s.current = Some(next);
        return;
    }
    if prev.id.as_u64() == IDLE_THREAD_ID {
        prev.set_state(ThreadState::Ready); // always runnable, never queued
    }
    next.set_state(ThreadState::Running);
    next.on_cpu.store(true, Ordering::Relaxed);
    CURRENT_ID.store(next.id.as_u64(), Ordering::Relaxed);
    let save_rsp = prev.saved_rsp.as_ptr();
    let load_rsp = next.saved_rsp.load(Ordering::Relaxed);
    s.current = Some(next);
    // `prev` stays alive through `s.prev` (a dead thread's stack must
    // outlive this switch); no Arc may stay on this stack across the switch,
    // or a dead thread would never be freed.
    s.prev = Some(prev);
    core::mem::forget(s);
    // SAFETY: interrupts are off; `save_rsp` points into `prev`, kept alive
    // by `RunState::prev` until the next thread has finished the switch;
    // `load_rsp` was saved by `switch` or built by `initial_stack`.
    unsafe { context::switch(save_rsp, load_rsp) };
    finish_switch();
}

/// Completes a switch on the thread switched to: the previous thread is now
/// off the CPU (its registers are saved), a dead one is reaped, and the
/// scheduler lock (held since `switch_away`) is released.
pub(super) fn finish_switch() {
    let reaped = {
        // The lock was taken by the thread that switched to us.
        let mut s = SchedGuard(());
        let prev = s.prev.take();
        match prev {
            Some(prev) if prev.state() == ThreadState::Dead => {
                prev.on_cpu.store(false, Ordering::Relaxed);
                s.all.remove(&prev.id.as_u64());
                Some(prev)
            }
            Some(prev) => {
                prev.on_cpu.store(false, Ordering::Relaxed);
                None
            }
            None => None,
        }
    };
    // Free the dead thread's stack outside the scheduler lock.
    if let Some(dead) = reaped {
        let stack = dead.stack.lock().take();
        drop(stack);
    }
}

pub(super) fn yield_now() {
    let irq = irq_save();
    let mut s = SchedGuard::lock();
    let me = s.current.clone().expect("a current thread");
    if s.ready.is_empty() {
        drop(s);
    } else {
        if me.id.as_u64() != IDLE_THREAD_ID {
            me.set_state(ThreadState::Ready);
            s.ready.push_back(me);
        } else {
            drop(me);
        }
        switch_away(s);
    }
    irq_restore(irq);
}

/// Called on the way out of an interrupt (interrupts disabled, handler
/// done, EOI sent): switches if a woken thread or an expired slice asks.
pub(crate) fn preempt_if_needed() {
    if !NEED_RESCHED.swap(false, Ordering::Relaxed) || !started() {
        return;
    }
    let mut s = SchedGuard::lock();
    if s.ready.is_empty() {
        return;
    }
    let me = s.current.clone().expect("a current thread");
    if me.id.as_u64() != IDLE_THREAD_ID && me.state() == ThreadState::Running {
        me.set_state(ThreadState::Ready);
        s.ready.push_back(me);
    } else {
        drop(me);
    }
    switch_away(s);
}

pub(super) fn exit_current() -> ! {
    let me = current();
    log::debug!("thread {} ({}) exits", me.id, me.name);
    me.exited.complete();
    drop(me);
    let _irq = irq_save();
    let s = SchedGuard::lock();
    s.current
        .as_ref()
        .expect("a current thread")
        .set_state(ThreadState::Dead);
    switch_away(s);
    unreachable!("a dead thread was scheduled again");
}

pub(super) fn prepare_block(deadline: Option<Instant>) -> BlockTicket {
    debug_assert!(!cpu::irqs_enabled());
    let mut s = SchedGuard::lock();
    let me = s.current.clone().expect("a current thread");
    let seq = me.block_seq.fetch_add(1, Ordering::Relaxed) + 1;
    me.set_state(ThreadState::Blocked);
    if let Some(deadline) = deadline {
        s.sleepers
            .insert((deadline.as_micros(), me.id.as_u64(), seq), me.clone());
    }
    BlockTicket {
        thread: me,
        seq,
        deadline,
    }
}

pub(super) fn block(ticket: BlockTicket) {
    debug_assert!(!cpu::irqs_enabled());
    let BlockTicket {
        thread,
        seq,
        deadline,
    } = ticket;
    let id = thread.id;
    drop(thread); // no Arc on the stack across the switch
    let s = SchedGuard::lock();
    let still_blocked = s
        .current
        .as_ref()
        .is_some_and(|t| t.state() == ThreadState::Blocked);
    if still_blocked {
        switch_away(s);
    } else {
        drop(s);
    }
    if let Some(deadline) = deadline {
        SchedGuard::lock()
            .sleepers
            .remove(&(deadline.as_micros(), id.as_u64(), seq));
    }
}

fn wake_locked(s: &mut SchedGuard, thread: &Arc<Thread>, seq: u64) -> bool {
    if thread.block_seq.load(Ordering::Relaxed) != seq || thread.state() != ThreadState::Blocked {
        return false;
    }
    if thread.on_cpu.load(Ordering::Relaxed) {
        // Still on its CPU between prepare_block and block: cancel the sleep.
        thread.set_state(ThreadState::Running);
    } else {
        thread.set_state(ThreadState::Ready);
        let idle = s
            .current
            .as_ref()
            .is_some_and(|c| c.id.as_u64() == IDLE_THREAD_ID);
        if crate::interrupts::in_interrupt() {
            // Woken by a device: run it as soon as the interrupt returns, ahead
            // of the queue (low event latency; it blocks again soon after).
            s.ready.push_front(thread.clone());
            NEED_RESCHED.store(true, Ordering::Relaxed);
        } else {
            s.ready.push_back(thread.clone());
            if idle {
                NEED_RESCHED.store(true, Ordering::Relaxed);
            }
        }
    }
    true
}

pub(super) fn wake(thread: &Arc<Thread>, seq: u64) -> bool {
    with_sched(|s| wake_locked(s, thread, seq))
}

/// Timer tick (interrupt context): wakes expired sleepers, ends slices.
pub(crate) fn on_tick(now: Instant) {
    if !started() {
        return;
    }
    let mut s = SchedGuard::lock();
    while let Some(entry) = s.sleepers.first_entry() {
        if entry.key().0 > now.as_micros() {
            break;
        }
        let ((_, _, seq), thread) = entry.remove_entry();
        wake_locked(&mut s, &thread, seq);
    }
    s.slice_left = s.slice_left.saturating_sub(1);
    if s.slice_left == 0 && !s.ready.is_empty() {
        NEED_RESCHED.store(true, Ordering::Relaxed);
    }
}

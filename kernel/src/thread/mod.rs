//! Kernel threads: each with its own guarded stack, scheduled preemptively
//! round-robin (a 10 ms slice from the timer tick), sleeping in wait queues
//! or for a duration.
//!
//! The public API is [`spawn`]/[`Builder`], [`yield_now`], [`sleep`],
//! [`current_id`] and [`JoinHandle`]. The blocking protocol
//! ([`prepare_block`], [`block`], [`wake`]) is for the primitives that
//! sleep: [`WaitQueue`], built on it here, and [`Completion`] on that (a
//! thread's join waits on one); `crate::sync`'s mutex and reader/writer
//! lock build on `WaitQueue` one layer up, and re-export both.

mod completion;
mod context;
mod scheduler;
mod wait_queue;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use core::time::Duration;

use crate::memory::stacks::KernelStack;
use crate::spinlock::SpinLock;
use crate::time::Instant;

pub use completion::Completion;
pub use wait_queue::WaitQueue;

/// Id of the boot thread, which runs the kernel's main function (on the
/// boot stack, whose guard page memory knows by this id).
pub const MAIN_THREAD_ID: u64 = crate::memory::stacks::BOOT_STACK_THREAD_ID;
/// Id of the idle thread.
pub const IDLE_THREAD_ID: u64 = 0;
/// Default stack size of spawned threads.
pub const DEFAULT_STACK_SIZE: u64 = 64 * 1024;

/// A thread's unique id (never reused while the kernel runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThreadId(u64);

impl ThreadId {
    /// The raw number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Scheduling state; changed only with the scheduler lock held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ThreadState {
    /// On the run queue.
    Ready = 0,
    /// On a CPU.
    Running = 1,
    /// Asleep (wait queue or timed sleep) until woken.
    Blocked = 2,
    /// Finished; its stack is freed once switched away from.
    Dead = 3,
}

/// A kernel thread's control block.
pub struct Thread {
    id: ThreadId,
    name: String,
    /// A `ThreadState`; written with the scheduler lock held.
    state: AtomicU8,
    /// Incremented by each `prepare_block`: identifies one sleep, so a stale
    /// wake-up aimed at an earlier sleep is ignored. Scheduler lock.
    block_seq: AtomicU64,
    /// Whether its registers are live on a CPU (set from when it is switched
    /// to until the next thread has finished switching away from it).
    /// Scheduler lock.
    on_cpu: AtomicBool,
    /// Stack pointer saved by the context switch while switched out.
    saved_rsp: AtomicU64,
    /// The stack (none for the boot thread, which uses the boot stack).
    /// Taken and dropped once the thread is dead and switched away from.
    stack: SpinLock<Option<KernelStack>>,
    /// The function to run; taken when the thread starts.
    entry: SpinLock<Option<Box<dyn FnOnce() + Send>>>,
    /// Completed when the function has returned.
    exited: Arc<Completion>,
}

impl Thread {
    fn new(id: u64, name: &str, stack: Option<KernelStack>) -> Self {
        Self {
            id: ThreadId(id),
            name: String::from(name),
            state: AtomicU8::new(ThreadState::Ready as u8),
            block_seq: AtomicU64::new(0),
            on_cpu: AtomicBool::new(false),
            saved_rsp: AtomicU64::new(0),
            stack: SpinLock::new(stack),
            entry: SpinLock::new(None),
            exited: Arc::new(Completion::new()),
        }
    }

    /// Its id.
    pub fn id(&self) -> ThreadId {
        self.id
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its scheduling state (a snapshot).
    pub fn state(&self) -> ThreadState {
        match self.state.load(Ordering::Relaxed) {
            0 => ThreadState::Ready,
            1 => ThreadState::Running,
            2 => ThreadState::Blocked,
            _ => ThreadState::Dead,
        }
    }

    fn set_state(&self, state: ThreadState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }
}

/// Why a thread could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// No memory (or stack slot) for its stack.
    NoStack(crate::memory::MapError),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStack(e) => write!(f, "cannot allocate a thread stack: {e}"),
        }
    }
}

/// Waits for a spawned thread to finish.
pub struct JoinHandle {
    id: ThreadId,
    exited: Arc<Completion>,
}

impl JoinHandle {
    /// The thread's id.
    pub fn id(&self) -> ThreadId {
        self.id
    }

    /// Sleeps until the thread's function has returned.
    pub fn join(&self) {
        self.exited.wait();
    }

    /// Sleeps until the thread's function has returned or `timeout` passes;
    /// returns whether it finished.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.exited.wait_timeout(timeout)
    }

    /// Whether the thread's function has returned.
    pub fn is_finished(&self) -> bool {
        self.exited.is_complete()
    }
}

/// Thread options before spawning.
pub struct Builder {
    name: String,
    stack_size: u64,
}

impl Builder {
    /// A thread named `name` with the default stack size.
    pub fn new(name: &str) -> Self {
        Self {
            name: String::from(name),
            stack_size: DEFAULT_STACK_SIZE,
        }
    }

    /// Sets the stack size (rounded up to pages, at most just under 1 MiB).
    pub fn stack_size(mut self, bytes: u64) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Creates the thread and puts it on the run queue; it runs `f` and
    /// exits when `f` returns.
    pub fn spawn(self, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle, SpawnError> {
        let thread = self.create(scheduler::next_thread_id(), Box::new(f))?;
        let handle = JoinHandle {
            id: thread.id,
            exited: thread.exited.clone(),
        };
        scheduler::add(thread);
        Ok(handle)
    }

    fn create(self, id: u64, f: Box<dyn FnOnce() + Send>) -> Result<Arc<Thread>, SpawnError> {
        let stack = KernelStack::new(self.stack_size, id).map_err(SpawnError::NoStack)?;
        // SAFETY: a freshly mapped stack, used by nobody yet; its top is
        // page aligned.
        let rsp = unsafe { context::initial_stack(stack.top()) };
        let thread = Thread::new(id, &self.name, Some(stack));
        thread.saved_rsp.store(rsp, Ordering::Relaxed);
        *thread.entry.lock() = Some(f);
        Ok(Arc::new(thread))
    }
}

/// Spawns a thread running `f` (like `std::thread::spawn`). Panics if its
/// stack cannot be allocated; use [`Builder::spawn`] to handle that.
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> ThreadId {
    match Builder::new(name).spawn(f) {
        Ok(handle) => handle.id(),
        Err(e) => panic!("spawn({name:?}): {e}"),
    }
}

/// Spawns a thread and returns a handle to join it. Panics like [`spawn`].
pub fn spawn_joinable(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle {
    match Builder::new(name).spawn(f) {
        Ok(handle) => handle,
        Err(e) => panic!("spawn({name:?}): {e}"),
    }
}

/// The calling thread's id (cheap: no lock).
pub fn current_id() -> ThreadId {
    ThreadId(scheduler::current_id())
}

/// The calling thread's id for fault reports (never blocks).
pub(crate) fn current_id_for_report() -> u64 {
    scheduler::current_id()
}

/// The calling thread.
pub fn current() -> Arc<Thread> {
    scheduler::current()
}

/// Gives the CPU to the next ready thread, if any; returns when this
/// thread is scheduled again.
pub fn yield_now() {
    scheduler::yield_now();
}

/// Sleeps for at least `d` (rounded up to the next timer tick). Thread
/// context only.
pub fn sleep(d: Duration) {
    sleep_until(Instant::now() + d);
}

/// Sleeps until `deadline` has passed. Thread context only.
pub fn sleep_until(deadline: Instant) {
    assert_may_sleep("thread::sleep");
    while Instant::now() < deadline {
        let irq = crate::arch::cpu::irq_save();
        let ticket = prepare_block(Some(deadline));
        block(ticket);
        crate::arch::cpu::irq_restore(irq);
    }
}

/// A snapshot of one thread, for diagnostics (`ps`).
#[derive(Clone, Debug)]
pub struct ThreadInfo {
    /// Id.
    pub id: ThreadId,
    /// Name.
    pub name: String,
    /// State at the time of the snapshot.
    pub state: ThreadState,
}

/// All live threads, by id.
pub fn list() -> alloc::vec::Vec<ThreadInfo> {
    scheduler::list()
}

/// Panics unless the caller may sleep: thread context, interrupts enabled
/// (so no spin lock is held), scheduler running. Sleeping elsewhere would
/// deadlock or corrupt state; this turns that bug into a clear report.
pub fn assert_may_sleep(what: &str) {
    assert!(
        !crate::interrupts::in_interrupt(),
        "{what} called from an interrupt handler (it may sleep)"
    );
    assert!(
        crate::arch::cpu::irqs_enabled(),
        "{what} called with interrupts disabled (a spin lock held?): it may sleep"
    );
    assert!(
        scheduler::started(),
        "{what} called before the scheduler runs"
    );
}

/// One sleep in progress: from [`prepare_block`] to [`block`].
pub struct BlockTicket {
    thread: Arc<Thread>,
    seq: u64,
    deadline: Option<Instant>,
}

impl BlockTicket {
    /// The sleeping thread.
    pub fn thread(&self) -> &Arc<Thread> {
        &self.thread
    }

    /// The sleep's sequence number, to pass to [`wake`].
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// Marks the current thread blocked (and, with a deadline, arms its
/// timeout) without switching away yet, so the caller can publish the
/// ticket (e.g. on a wait queue) before calling [`block`]. Interrupts must
/// be disabled from here until `block` returns.
pub fn prepare_block(deadline: Option<Instant>) -> BlockTicket {
    scheduler::prepare_block(deadline)
}

/// Switches away until the ticket's sleep is woken (by [`wake`] or its
/// deadline); returns at once if that already happened. Interrupts must be
/// disabled (and stay disabled on return).
pub fn block(ticket: BlockTicket) {
    scheduler::block(ticket);
}

/// Wakes `thread` if it is still in the sleep numbered `seq`; returns
/// whether this call woke it. Any context, including interrupt handlers.
pub fn wake(thread: &Arc<Thread>, seq: u64) -> bool {
    scheduler::wake(thread, seq)
}

/// Where every spawned thread starts (called by the trampoline).
extern "C" fn thread_start() -> ! {
    scheduler::finish_switch();
    x86_64::instructions::interrupts::enable();
    let entry = current().entry.lock().take();
    if let Some(f) = entry {
        f();
    }
    scheduler::exit_current()
}

/// Makes the boot context the `main` thread and starts the idle thread.
/// Called once by boot, before interrupts are enabled.
pub(crate) fn init() {
    scheduler::init();
    crate::time::set_scheduler_tick(scheduler::on_tick);
    crate::interrupts::set_preempt_hook(scheduler::preempt_if_needed);
}

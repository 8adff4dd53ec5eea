//! Shared/exclusive sleeping locks, after FreeBSD's `sx(9)`: many holders in
//! shared mode or one in exclusive mode, sleeping while held is allowed, and
//! a waiting writer blocks new readers (writers cannot starve).
//!
//! [`SxLock`] is the bare lock with raw lock/unlock calls, for holds that
//! span calls (the XenStore suspend lock is held shared for a transaction's
//! whole life). [`RwLock<T>`] wraps data with guards.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

use super::WaitQueue;
use crate::spinlock::SpinLock;

#[derive(Default)]
struct SxState {
    /// Holders in shared mode.
    readers: usize,
    /// Whether a thread holds it exclusively.
    writer: bool,
    /// Writers asleep (or about to sleep) waiting for exclusive mode; while
    /// non-zero, new shared lockers wait.
    writers_waiting: usize,
}

/// A shared/exclusive lock without data.
///
/// Not recursive: a thread holding it shared that asks for it shared again
/// deadlocks if a writer is waiting in between; asking for exclusive while
/// holding it either way deadlocks. Lock order: `state` is taken inside the
/// wait queues' locks (from their condition closures) and is a leaf.
pub struct SxLock {
    state: SpinLock<SxState>,
    /// Shared lockers waiting for the writer (and waiting writers) to go.
    readers_wq: WaitQueue,
    /// Exclusive lockers waiting for everyone else to leave.
    writers_wq: WaitQueue,
}

impl SxLock {
    /// A new, free lock.
    pub const fn new() -> Self {
        Self {
            state: SpinLock::new(SxState {
                readers: 0,
                writer: false,
                writers_waiting: 0,
            }),
            readers_wq: WaitQueue::new(),
            writers_wq: WaitQueue::new(),
        }
    }

    /// Takes the lock shared if no writer holds it or waits for it.
    pub fn try_lock_shared(&self) -> bool {
        let mut s = self.state.lock();
        if !s.writer && s.writers_waiting == 0 {
            s.readers += 1;
            true
        } else {
            false
        }
    }

    /// Takes the lock shared, sleeping while a writer holds it or waits for
    /// it. Release with [`Self::unlock_shared`] (from any thread).
    pub fn lock_shared(&self) {
        self.readers_wq.wait(|| self.try_lock_shared());
    }

    /// Releases one shared hold. Panics if the lock is not held shared: that
    /// is a caller bug which would otherwise corrupt the lock.
    pub fn unlock_shared(&self) {
        let wake_writer = {
            let mut s = self.state.lock();
            assert!(s.readers > 0, "SxLock::unlock_shared: not held shared");
            s.readers -= 1;
            s.readers == 0 && s.writers_waiting > 0
        };
        if wake_writer {
            self.writers_wq.wake_one();
        }
    }

    fn try_take_exclusive(&self, registered_waiter: bool) -> bool {
        let mut s = self.state.lock();
        if !s.writer && s.readers == 0 {
            s.writer = true;
            if registered_waiter {
                s.writers_waiting -= 1;
            }
            true
        } else {
            false
        }
    }

    /// Takes the lock exclusively if nobody holds it.
    pub fn try_lock_exclusive(&self) -> bool {
        self.try_take_exclusive(false)
    }

    /// Takes the lock exclusively, sleeping until all holders leave. From
    /// the moment it starts waiting, new shared lockers wait behind it.
    /// Release with [`Self::unlock_exclusive`].
    pub fn lock_exclusive(&self) {
        if self.try_take_exclusive(false) {
            return;
        }
        self.state.lock().writers_waiting += 1;
        self.writers_wq.wait(|| self.try_take_exclusive(true));
    }

    /// Releases the exclusive hold, handing the lock to the next waiting
    /// writer if there is one, else to all waiting readers. Panics if the
    /// lock is not held exclusively (a caller bug).
    pub fn unlock_exclusive(&self) {
        let writers_waiting = {
            let mut s = self.state.lock();
            assert!(s.writer, "SxLock::unlock_exclusive: not held exclusively");
            s.writer = false;
            s.writers_waiting > 0
        };
        if writers_waiting {
            self.writers_wq.wake_one();
        } else {
            self.readers_wq.wake_all();
        }
    }

    /// Current shared holders (a snapshot, for diagnostics and tests).
    pub fn shared_holders(&self) -> usize {
        self.state.lock().readers
    }

    /// Whether a thread holds it exclusively (a snapshot).
    pub fn is_held_exclusive(&self) -> bool {
        self.state.lock().writer
    }

    /// Writers waiting for exclusive mode (a snapshot).
    pub fn writers_waiting(&self) -> usize {
        self.state.lock().writers_waiting
    }
}

impl Default for SxLock {
    fn default() -> Self {
        Self::new()
    }
}

/// A reader/writer lock protecting a `T`, built on [`SxLock`].
pub struct RwLock<T: ?Sized> {
    lock: SxLock,
    data: UnsafeCell<T>,
}

// SAFETY: readers get `&T` concurrently (hence `T: Sync`), writers get
// exclusive `&mut T` (hence `T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}
// SAFETY: the lock owns its `T`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}

/// Shared access to an [`RwLock`]'s data.
pub struct RwLockReadGuard<'a, T: ?Sized> {
    rw: &'a RwLock<T>,
}

/// Exclusive access to an [`RwLock`]'s data.
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    rw: &'a RwLock<T>,
}

impl<T> RwLock<T> {
    /// A new, free lock holding `value`.
    pub const fn new(value: T) -> Self {
        Self {
            lock: SxLock::new(),
            data: UnsafeCell::new(value),
        }
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Shared access, sleeping while a writer holds or waits for the lock.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.lock.lock_shared();
        RwLockReadGuard { rw: self }
    }

    /// Exclusive access, sleeping until readers and writers leave.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.lock.lock_exclusive();
        RwLockWriteGuard { rw: self }
    }

    /// Shared access if available without sleeping.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.lock
            .try_lock_shared()
            .then(|| RwLockReadGuard { rw: self })
    }

    /// Exclusive access if available without sleeping.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.lock
            .try_lock_exclusive()
            .then(|| RwLockWriteGuard { rw: self })
    }

    /// The underlying lock, for its diagnostics.
    pub fn sx(&self) -> &SxLock {
        &self.lock
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a shared hold excludes writers, so no `&mut T` exists.
        unsafe { &*self.rw.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.rw.lock.unlock_shared();
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: an exclusive hold excludes every other access.
        unsafe { &*self.rw.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: an exclusive hold excludes every other access.
        unsafe { &mut *self.rw.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.rw.lock.unlock_exclusive();
    }
}

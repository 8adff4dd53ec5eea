//! A sleeping mutex: contended lockers sleep on a [`WaitQueue`] instead of
//! spinning, so it may be held across blocking operations (I/O, sleeps).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::WaitQueue;
use crate::thread;

/// A sleepable mutual-exclusion lock protecting a `T`. Not recursive:
/// locking it again from the thread that holds it panics (it would
/// deadlock). Not fair: a woken waiter competes with newcomers.
pub struct Mutex<T: ?Sized> {
    locked: AtomicBool,
    /// Thread id of the holder (0 when free), for the recursion check and
    /// for diagnostics.
    owner: AtomicU64,
    /// Threads waiting for `locked` to clear.
    waiters: WaitQueue,
    data: UnsafeCell<T>,
}

// SAFETY: the lock gives one thread at a time access to `data`.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: the mutex owns its `T`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

/// Access to a [`Mutex`]'s data; unlocks on drop.
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// Unlock wakes a waiter and the owner check is per thread: stay on the
    /// thread that locked.
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            owner: AtomicU64::new(0),
            waiters: WaitQueue::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    fn try_acquire(&self) -> bool {
        let taken = self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if taken {
            self.owner
                .store(thread::current_id().as_u64(), Ordering::Relaxed);
        }
        taken
    }

    /// Takes the lock, sleeping while another thread holds it. Thread
    /// context only (see [`super`]). Panics if this thread already holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if !self.try_acquire() {
            let me = thread::current_id().as_u64();
            assert!(
                self.owner.load(Ordering::Relaxed) != me,
                "Mutex::lock: thread {me} already holds this mutex (deadlock)"
            );
            self.waiters.wait(|| self.try_acquire());
        }
        MutexGuard {
            mutex: self,
            _not_send: core::marker::PhantomData,
        }
    }

    /// Takes the lock if it is free, without sleeping (any context).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        // `then`, not `then_some`: a guard built eagerly would unlock on drop.
        self.try_acquire().then(|| MutexGuard {
            mutex: self,
            _not_send: core::marker::PhantomData,
        })
    }

    /// Whether some thread holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    /// Mutable access without locking: `&mut self` proves exclusivity.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.owner.store(0, Ordering::Relaxed);
        // Release before waking: the woken thread re-checks `try_acquire`.
        self.mutex.locked.store(false, Ordering::Release);
        self.mutex.waiters.wake_one();
    }
}

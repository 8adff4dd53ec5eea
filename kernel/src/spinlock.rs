//! Spin locks. [`SpinLock`] disables interrupts on this CPU while held, so
//! an interrupt handler taking the same lock can never deadlock against the
//! thread it interrupted; on SMP the atomic flag excludes the other CPUs.
//! Hold them for a few hundred instructions at most and never sleep under
//! one.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::arch::cpu::{IrqState, irq_restore, irq_save};

/// A bare test-and-test-and-set lock: no data, no interrupt handling. The
/// building block for [`SpinLock`] and for the scheduler, which must hand a
/// held lock across a context switch.
pub struct RawSpinLock {
    locked: AtomicBool,
}

impl RawSpinLock {
    /// A new, unlocked lock.
    pub const fn new() -> Self {
        Self {
            locked: AtomicBool::new(false),
        }
    }

    /// Spins until the lock is taken. The caller must already have
    /// interrupts disabled if an interrupt handler may take the same lock.
    pub fn lock(&self) {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> bool {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The caller must hold the lock (this is not checked): releasing
    /// someone else's lock breaks the mutual exclusion their data relies on.
    pub unsafe fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// Whether the lock is held by anyone (for assertions only).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}

impl Default for RawSpinLock {
    fn default() -> Self {
        Self::new()
    }
}

/// [`SpinLock`]s held now. The kernel runs on one CPU and a held spin lock
/// keeps interrupts off, so nothing else runs between a lock and its
/// unlock: one count serves. The logger reads it (see [`held`]).
static HELD: AtomicUsize = AtomicUsize::new(0);

/// How many [`SpinLock`]s this CPU holds now. The logger uses it to count
/// lines written under one (interrupts off for the whole serial write:
/// they must be logged after the guard is dropped).
pub fn held() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// An IRQ-safe spin lock protecting a `T`.
pub struct SpinLock<T: ?Sized> {
    raw: RawSpinLock,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `data` to one holder at a time, so
// sharing the lock between threads only moves `T` between them.
unsafe impl<T: ?Sized + Send> Sync for SpinLock<T> {}
// SAFETY: as above; the lock owns its `T`.
unsafe impl<T: ?Sized + Send> Send for SpinLock<T> {}

/// Access to a [`SpinLock`]'s data; interrupts stay disabled until it drops.
pub struct SpinLockGuard<'a, T: ?Sized> {
    lock: &'a SpinLock<T>,
    irq: IrqState,
    /// A guard must be dropped on the CPU that took it (interrupt state is
    /// per CPU): not `Send`.
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl<T> SpinLock<T> {
    /// A new, unlocked lock holding `value`.
    pub const fn new(value: T) -> Self {
        Self {
            raw: RawSpinLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> SpinLock<T> {
    /// Disables interrupts, then spins until the lock is taken.
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        let irq = irq_save();
        self.raw.lock();
        HELD.fetch_add(1, Ordering::Relaxed);
        SpinLockGuard {
            lock: self,
            irq,
            _not_send: core::marker::PhantomData,
        }
    }

    /// Takes the lock if it is free (interrupts disabled while held).
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        let irq = irq_save();
        if self.raw.try_lock() {
            HELD.fetch_add(1, Ordering::Relaxed);
            Some(SpinLockGuard {
                lock: self,
                irq,
                _not_send: core::marker::PhantomData,
            })
        } else {
            irq_restore(irq);
            None
        }
    }

    /// Mutable access without locking: `&mut self` proves exclusivity.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: ?Sized> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard's existence means this CPU holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard's existence means this CPU holds the lock.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the guard's existence means this CPU holds the lock.
        unsafe { self.lock.raw.unlock() };
        irq_restore(self.irq);
    }
}

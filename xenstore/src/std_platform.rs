//! The host platform (feature `std`): std threads, mutexes and condition
//! variables.

use std::boxed::Box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::platform::{Lock, Platform, SpawnError, WaitQueue};

/// [`Platform`] on std. A zero-sized handle; all clients share the process's
/// threads and clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdPlatform;

/// A std mutex that shrugs off poisoning: a panicking test thread must not
/// turn every later lock into a second panic.
pub struct StdLock<T>(Mutex<T>);

fn relock<'a, T>(r: std::sync::LockResult<MutexGuard<'a, T>>) -> MutexGuard<'a, T> {
    r.unwrap_or_else(PoisonError::into_inner)
}

impl<T: Send> Lock<T> for StdLock<T> {
    fn new(value: T) -> Self {
        StdLock(Mutex::new(value))
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut relock(self.0.lock()))
    }
}

/// A wait queue from a mutex and a condition variable. Conditions are
/// evaluated with the mutex held and `wake_all` passes through it before
/// notifying, so a wake-up cannot fall between a waiter's check and its
/// sleep (std's condition variable also counts notifications, so one sent
/// just as the waiter goes to sleep is not lost).
pub struct StdWaitQueue {
    mutex: Mutex<()>,
    cond: Condvar,
}

impl WaitQueue for StdWaitQueue {
    fn new() -> Self {
        StdWaitQueue {
            mutex: Mutex::new(()),
            cond: Condvar::new(),
        }
    }

    fn wait_until(&self, cond: &mut dyn FnMut() -> bool, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut guard = relock(self.mutex.lock());
        loop {
            if cond() {
                return true;
            }
            guard = match deadline {
                None => relock(self.cond.wait(guard)),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    match self.cond.wait_timeout(guard, deadline - now) {
                        Ok((g, _)) => g,
                        Err(poisoned) => poisoned.into_inner().0,
                    }
                }
            };
        }
    }

    fn wake_all(&self) {
        // Taking the mutex orders this wake after any waiter's check of its
        // condition (it is either still before its check, or asleep).
        // Notifying after releasing it spares the woken thread from
        // blocking on the mutex straight away.
        drop(relock(self.mutex.lock()));
        self.cond.notify_all();
    }
}

static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);

std::thread_local! {
    static THREAD_ID: u64 = NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed);
}

impl Platform for StdPlatform {
    type Lock<T: Send> = StdLock<T>;
    type WaitQueue = StdWaitQueue;

    fn spawn(
        &self,
        name: &'static str,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> Result<(), SpawnError> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(body)
            .map(drop)
            .map_err(|_| SpawnError)
    }

    fn current_thread_id(&self) -> u64 {
        THREAD_ID.with(|id| *id)
    }

    fn now_us(&self) -> u64 {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::SuspendLock;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn wait_queue_times_out_and_wakes() {
        let q = Arc::new(StdWaitQueue::new());
        assert!(!q.wait_until(&mut || false, Some(Duration::from_millis(5))));
        let flag = Arc::new(AtomicBool::new(false));
        let (q2, f2) = (Arc::clone(&q), Arc::clone(&flag));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            f2.store(true, Ordering::SeqCst);
            q2.wake_all();
        });
        assert!(q.wait_until(&mut || flag.load(Ordering::SeqCst), None));
        t.join().unwrap();
    }

    #[test]
    fn suspend_lock_writer_waits_for_readers_and_blocks_new_ones() {
        let lock = Arc::new(SuspendLock::<StdPlatform>::new());
        lock.lock_shared();
        lock.lock_shared();
        let got_exclusive = Arc::new(AtomicBool::new(false));
        let (l, g) = (Arc::clone(&lock), Arc::clone(&got_exclusive));
        let writer = std::thread::spawn(move || {
            l.lock_exclusive();
            g.store(true, Ordering::SeqCst);
        });
        while !lock.exclusive_pending() {
            std::thread::yield_now();
        }
        // A new reader now blocks behind the waiting writer.
        let new_reader_in = Arc::new(AtomicBool::new(false));
        let (l, r) = (Arc::clone(&lock), Arc::clone(&new_reader_in));
        let reader = std::thread::spawn(move || {
            l.lock_shared();
            r.store(true, Ordering::SeqCst);
            l.unlock_shared();
        });
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            !got_exclusive.load(Ordering::SeqCst),
            "writer must wait for readers"
        );
        assert!(
            !new_reader_in.load(Ordering::SeqCst),
            "new reader must wait for the writer"
        );
        lock.unlock_shared();
        lock.unlock_shared();
        writer.join().unwrap();
        assert!(got_exclusive.load(Ordering::SeqCst));
        std::thread::sleep(Duration::from_millis(10));
        assert!(
            !new_reader_in.load(Ordering::SeqCst),
            "still excluded while the writer holds it"
        );
        lock.unlock_exclusive();
        reader.join().unwrap();
        assert!(new_reader_in.load(Ordering::SeqCst));
    }
}

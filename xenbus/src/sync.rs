//! Blocking helpers built from the platform's short-hold [`Lock`] and
//! [`WaitQueue`] (the only primitives the kernel supplies): a FIFO
//! mailbox for the bus worker and a one-shot completion.
//!
//! Each helper's lock is a leaf: it is never held while another lock is
//! taken, a callback runs or a wait queue is woken.

use alloc::collections::VecDeque;
use core::time::Duration;

use xenstore::{Lock, Platform, WaitQueue};

struct MailboxState<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// A FIFO of work items for one consumer thread.
pub(crate) struct Mailbox<P: Platform, T: Send> {
    /// Guards the items and the closed flag.
    state: P::Lock<MailboxState<T>>,
    queue: P::WaitQueue,
}

impl<P: Platform, T: Send> Mailbox<P, T> {
    pub(crate) fn new() -> Self {
        Mailbox {
            state: Lock::new(MailboxState {
                items: VecDeque::new(),
                closed: false,
            }),
            queue: WaitQueue::new(),
        }
    }

    /// Appends `item`. Returns it back if the mailbox is closed.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let refused = self.state.with(|s| {
            if s.closed {
                Some(item)
            } else {
                s.items.push_back(item);
                None
            }
        });
        match refused {
            Some(item) => Err(item),
            None => {
                self.queue.wake_all();
                Ok(())
            }
        }
    }

    /// Takes the oldest item, sleeping while there is none. `None` once the
    /// mailbox is closed and drained.
    pub(crate) fn pop(&self) -> Option<T> {
        let mut taken = None;
        let mut ready = || {
            self.state.with(|s| match s.items.pop_front() {
                Some(item) => {
                    taken = Some(item);
                    true
                }
                None => s.closed,
            })
        };
        self.queue.wait_until(&mut ready, None);
        taken
    }

    /// How many items are queued.
    pub(crate) fn len(&self) -> usize {
        self.state.with(|s| s.items.len())
    }

    /// Refuses new items; the consumer drains what is queued, then stops.
    pub(crate) fn close(&self) {
        self.state.with(|s| s.closed = true);
        self.queue.wake_all();
    }
}

/// A value handed from one thread to another, once.
pub(crate) struct Completion<P: Platform, T: Send> {
    /// Guards the value.
    slot: P::Lock<Option<T>>,
    queue: P::WaitQueue,
}

impl<P: Platform, T: Send> Completion<P, T> {
    pub(crate) fn new() -> Self {
        Completion {
            slot: Lock::new(None),
            queue: WaitQueue::new(),
        }
    }

    /// Hands over `value` and wakes the waiter.
    pub(crate) fn complete(&self, value: T) {
        self.slot.with(|s| *s = Some(value));
        self.queue.wake_all();
    }

    /// Waits up to `timeout` (`None`: for ever) for the value.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Option<T> {
        let mut value = None;
        let mut ready = || {
            self.slot.with(|s| {
                value = s.take();
                value.is_some()
            })
        };
        self.queue.wait_until(&mut ready, timeout);
        value
    }
}

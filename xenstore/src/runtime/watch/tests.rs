//! The watch queues and thread on their own (no connection needed): the
//! overflow policy, ordering, and the unwatch guarantee.

use super::*;
use crate::StdPlatform;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

struct Fixture {
    watches: Arc<Watches<StdPlatform>>,
    thread: Option<JoinHandle<()>>,
}

impl Fixture {
    fn new(limit: usize) -> Fixture {
        let watches = Arc::new(Watches::<StdPlatform>::new(limit));
        let w = Arc::clone(&watches);
        let thread = std::thread::spawn(move || w.run(&StdPlatform));
        Fixture {
            watches,
            thread: Some(thread),
        }
    }

    fn send(&self, id: WatchId, paths: &[&str]) {
        self.watches
            .enqueue(paths.iter().map(|p| (id, String::from(*p))));
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.watches.close();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// A callback that reports each event on `entered` and then waits for one
/// permit on `permits` before returning.
fn gated() -> (Callback, Receiver<WatchEvent>, Sender<()>) {
    let (entered_tx, entered) = channel();
    let (permit, permits) = channel::<()>();
    let permits = Mutex::new(permits);
    let callback: Callback = Box::new(move |e: &WatchEvent| {
        entered_tx.send(e.clone()).unwrap();
        let _ = permits.lock().unwrap().recv();
    });
    (callback, entered, permit)
}

fn changed(path: &str) -> WatchEvent {
    WatchEvent::Changed { path: path.into() }
}

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn overflow_is_reported_where_it_happened_and_never_silently() {
    let f = Fixture::new(3);
    let (callback, entered, permit) = gated();
    let (id, token) = f.watches.add("/w", callback);
    assert_eq!(token, "1");
    f.send(id, &["e0"]);
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), changed("e0"));
    // The callback is blocked on e0: e1..e3 fill the queue, e4 overflows.
    f.send(id, &["e1", "e2", "e3", "e4"]);
    permit.send(()).unwrap();
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), changed("e1"));
    // Now two are queued: e5 fits (closing the marker), e6 and e7 overflow again.
    f.send(id, &["e5", "e6", "e7"]);
    for _ in 0..6 {
        permit.send(()).unwrap();
    }
    let rest: Vec<WatchEvent> = (0..5)
        .map(|_| entered.recv_timeout(WAIT).unwrap())
        .collect();
    assert_eq!(
        rest,
        [
            changed("e2"),
            changed("e3"),
            WatchEvent::Overflow { missed: 1 },
            changed("e5"),
            WatchEvent::Overflow { missed: 2 }
        ]
    );
    assert_eq!(f.watches.stats().overflowed, 3);
    // Normal service resumes.
    f.send(id, &["e8"]);
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), changed("e8"));
    permit.send(()).unwrap();
}

#[test]
fn events_of_several_watches_keep_arrival_order() {
    let f = Fixture::new(100);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let s = Arc::clone(&seen);
        let (id, _) = f.watches.add(
            name,
            Box::new(move |e: &WatchEvent| s.lock().unwrap().push((name, e.clone()))),
        );
        ids.push(id);
    }
    for i in 0..50 {
        f.send(ids[i % 2], &[&i.to_string()]);
    }
    let deadline = std::time::Instant::now() + WAIT;
    while seen.lock().unwrap().len() < 50 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let seen = seen.lock().unwrap();
    let expected: Vec<_> = (0..50)
        .map(|i| (["a", "b"][i % 2], changed(&i.to_string())))
        .collect();
    assert_eq!(*seen, expected);
}

#[test]
fn unwatch_waits_for_the_running_callback_and_purges_the_queue() {
    let f = Fixture::new(100);
    let (callback, entered, permit) = gated();
    let (id, _) = f.watches.add("/w", callback);
    f.send(id, &["first", "queued1", "queued2"]);
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), changed("first"));
    // Remove while the callback runs: the queued events are purged at once...
    let removed = f.watches.remove(id).unwrap();
    assert!(
        removed.2.is_none(),
        "the running callback stays with the watch thread"
    );
    // ...and waiting returns only once the callback has finished.
    let (done_tx, done) = channel();
    let w = Arc::clone(&f.watches);
    let waiter = std::thread::spawn(move || {
        w.wait_idle(id, StdPlatform.current_thread_id());
        done_tx.send(()).unwrap();
    });
    assert!(
        done.recv_timeout(Duration::from_millis(100)).is_err(),
        "returned while the callback ran"
    );
    permit.send(()).unwrap();
    done.recv_timeout(WAIT).unwrap();
    waiter.join().unwrap();
    // Events for the removed watch are dropped and counted.
    f.send(id, &["late"]);
    assert!(
        entered.recv_timeout(Duration::from_millis(100)).is_err(),
        "no callback after unwatch"
    );
    assert_eq!(f.watches.stats().after_unwatch, 1);
}

#[test]
fn a_callback_may_remove_its_own_watch() {
    let f = Fixture::new(100);
    let dropped = Arc::new(Mutex::new(false));
    struct SetOnDrop(Arc<Mutex<bool>>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = true;
        }
    }
    let guard = SetOnDrop(Arc::clone(&dropped));
    let (calls_tx, calls) = channel();
    let w = Arc::clone(&f.watches);
    let my_id = Arc::new(Mutex::new(0));
    let id_cell = Arc::clone(&my_id);
    let (id, _) = f.watches.add(
        "/w",
        Box::new(move |e: &WatchEvent| {
            let _keep = &guard;
            let id = *id_cell.lock().unwrap();
            w.remove(id);
            // Must not wait for itself.
            w.wait_idle(id, StdPlatform.current_thread_id());
            calls_tx.send(e.clone()).unwrap();
        }),
    );
    *my_id.lock().unwrap() = id;
    f.send(id, &["one", "two"]);
    assert_eq!(calls.recv_timeout(WAIT).unwrap(), changed("one"));
    assert!(
        calls.recv_timeout(Duration::from_millis(100)).is_err(),
        "no second call"
    );
    let deadline = std::time::Instant::now() + WAIT;
    while !*dropped.lock().unwrap() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        *dropped.lock().unwrap(),
        "the callback is dropped after it returns"
    );
}

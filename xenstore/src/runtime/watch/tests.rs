//! The watch queues and thread on their own (no connection needed): the
//! overflow policy, ordering, and the unwatch guarantee.

use super::*;
use crate::StdPlatform;
use crate::platform::SpawnError;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Fixture {
    watches: Arc<Watches<StdPlatform>>,
}

fn policy(limit: usize) -> WatchPolicy {
    WatchPolicy {
        limit,
        threads: 16,
        stall_timeout: Duration::from_millis(300),
    }
}

impl Fixture {
    fn new(limit: usize) -> Fixture {
        Fixture::with(policy(limit))
    }

    fn with(policy: WatchPolicy) -> Fixture {
        let watches = Arc::new_cyclic(|this: &std::sync::Weak<Watches<StdPlatform>>| {
            let this = this.clone();
            let spawner: Spawner = Box::new(move || {
                let w = this.upgrade().ok_or(SpawnError)?;
                std::thread::spawn(move || w.run(&StdPlatform));
                Ok(())
            });
            Watches::new(policy, spawner)
        });
        watches.ensure_thread().unwrap();
        Fixture { watches }
    }

    fn send(&self, id: WatchId, paths: &[&str]) {
        self.watches
            .enqueue(paths.iter().map(|p| (id, String::from(*p))));
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.watches.close();
        let deadline = std::time::Instant::now() + WAIT;
        while self.watches.stats().threads > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if !std::thread::panicking() {
            assert_eq!(self.watches.stats().threads, 0, "callback threads ended");
        }
    }
}

/// A callback that reports each event on `entered` and then waits for one
/// permit on `permits` before returning (or returns at once once the permit
/// sender is gone). It must not panic: a test's receivers may be dropped
/// before the fixture ends the callback threads.
fn gated() -> (Callback, Receiver<WatchEvent>, Sender<()>) {
    let (entered_tx, entered) = channel();
    let (permit, permits) = channel::<()>();
    let permits = Mutex::new(permits);
    let callback: Callback = Box::new(move |e: &WatchEvent| {
        let _ = entered_tx.send(e.clone());
        let _ = permits.lock().unwrap().recv();
    });
    (callback, entered, permit)
}

/// A watch whose gated callback is blocked in its first event, `e0`, with
/// `queued` behind it.
fn blocked_in_e0(f: &Fixture, queued: &[&str]) -> (WatchId, Receiver<WatchEvent>, Sender<()>) {
    let (callback, entered, permit) = gated();
    let (id, _) = f.watches.add("/w", callback);
    f.send(id, &["e0"]);
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), changed("e0"));
    f.send(id, queued);
    (id, entered, permit)
}

/// Lets the blocked callback return and collects the next `n` events it
/// enters (permitting those to return too).
fn release_and_collect(
    entered: &Receiver<WatchEvent>,
    permit: &Sender<()>,
    n: usize,
) -> Vec<WatchEvent> {
    for _ in 0..=n {
        permit.send(()).unwrap();
    }
    (0..n)
        .map(|_| entered.recv_timeout(WAIT).unwrap())
        .collect()
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

/// Polls `cond` until it holds or [`WAIT`] passes.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn each_watch_sees_its_events_in_order() {
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
    eventually("50 events", || seen.lock().unwrap().len() == 50);
    let seen = seen.lock().unwrap();
    for (k, name) in ["a", "b"].into_iter().enumerate() {
        let got: Vec<_> = seen
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, e)| e.clone())
            .collect();
        let expected: Vec<_> = (0..50)
            .filter(|i| i % 2 == k)
            .map(|i| changed(&i.to_string()))
            .collect();
        assert_eq!(got, expected, "watch {name}");
    }
}

#[test]
fn a_blocked_callback_does_not_hold_back_another_watch() {
    let f = Fixture::new(100);
    let (blocked, entered, permit) = gated();
    let (a, _) = f.watches.add("/a", blocked);
    let (seen_tx, seen) = channel();
    let (b, _) = f.watches.add(
        "/b",
        Box::new(move |e: &WatchEvent| {
            let _ = seen_tx.send(e.clone());
        }),
    );
    f.send(a, &["a0", "a1"]);
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), changed("a0"));
    // /a's callback is stuck in a0; /b's events go through meanwhile.
    f.send(b, &["b0", "b1"]);
    assert_eq!(seen.recv_timeout(WAIT).unwrap(), changed("b0"));
    assert_eq!(seen.recv_timeout(WAIT).unwrap(), changed("b1"));
    assert!(f.watches.stats().threads >= 2);
    permit.send(()).unwrap();
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), changed("a1"));
    permit.send(()).unwrap();
    // The thread started for the second watch ends once idle.
    eventually("one thread left", || f.watches.stats().threads == 1);
}

#[test]
fn a_callback_may_remove_another_watch_whose_callback_runs() {
    let f = Fixture::new(100);
    let (blocked, entered, permit) = gated();
    let (victim, _) = f.watches.add("/victim", blocked);
    let w = Arc::clone(&f.watches);
    let (removed_tx, removed) = channel();
    let (remover, _) = f.watches.add(
        "/remover",
        Box::new(move |_: &WatchEvent| {
            w.remove(victim);
            w.wait_idle(victim, StdPlatform.current_thread_id());
            let _ = removed_tx.send(());
        }),
    );
    f.send(victim, &["v0", "v1"]);
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), changed("v0"));
    f.send(remover, &["go"]);
    // The remover waits for the victim's running callback...
    assert!(removed.recv_timeout(Duration::from_millis(100)).is_err());
    permit.send(()).unwrap();
    // ...then returns, and the victim's queued v1 is never delivered.
    removed.recv_timeout(WAIT).unwrap();
    assert!(entered.recv_timeout(Duration::from_millis(100)).is_err());
}

#[test]
fn the_reader_reads_only_what_every_queue_can_take() {
    let f = Fixture::new(10);
    let (blocked, entered, permit) = gated();
    let (id, _) = f.watches.add("/w", blocked);
    assert_eq!(
        f.watches.read_budget(4096, &mut || false).0,
        10 * 19 - 1,
        "an empty queue of 10"
    );
    f.send(id, &["e0"]);
    entered.recv_timeout(WAIT).unwrap();
    f.send(id, &["1", "2", "3", "4", "5", "6", "7"]);
    // Room for 3 events: 3 * 19 - 1 bytes hold at most 3 events, even if
    // the first of them was partly read before.
    assert_eq!(f.watches.read_budget(4096, &mut || false).0, 56);
    assert_eq!(f.watches.read_budget(40, &mut || false).0, 40);
    drop(permit);
}

#[test]
fn the_reader_waits_while_a_queue_is_full_until_it_drains_to_half() {
    let f = Fixture::with(WatchPolicy {
        stall_timeout: Duration::from_secs(60),
        ..policy(4)
    });
    let (_, _entered, permit) = blocked_in_e0(&f, &["e1", "e2", "e3", "e4"]);
    let (budget_tx, budget) = channel();
    let w = Arc::clone(&f.watches);
    let reader = std::thread::spawn(move || {
        budget_tx
            .send(w.read_budget(4096, &mut || false).0)
            .unwrap();
    });
    assert!(
        budget.recv_timeout(Duration::from_millis(200)).is_err(),
        "read with a full queue"
    );
    // e0 and e1 done: e2 runs, e3 and e4 queued: half of 4.
    permit.send(()).unwrap();
    permit.send(()).unwrap();
    assert_eq!(budget.recv_timeout(WAIT).unwrap(), 2 * 19 - 1);
    reader.join().unwrap();
    assert_eq!(f.watches.stats().overflowed, 0);
    drop(permit);
}

#[test]
fn the_reader_does_not_wait_while_a_reply_is_awaited() {
    let f = Fixture::with(WatchPolicy {
        stall_timeout: Duration::from_secs(60),
        ..policy(2)
    });
    let (id, entered, permit) = blocked_in_e0(&f, &["e1", "e2"]);
    let awaited = Arc::new(AtomicBool::new(false));
    let (budget_tx, budget) = channel();
    let (w, a) = (Arc::clone(&f.watches), Arc::clone(&awaited));
    let reader = std::thread::spawn(move || {
        let mut must_read = || a.load(Ordering::SeqCst);
        budget_tx
            .send(w.read_budget(4096, &mut must_read).0)
            .unwrap();
    });
    assert!(budget.recv_timeout(Duration::from_millis(200)).is_err());
    // A request is sent: the reader is woken and reads everything.
    awaited.store(true, Ordering::SeqCst);
    f.watches.wake_reader();
    assert_eq!(budget.recv_timeout(WAIT).unwrap(), 4096);
    reader.join().unwrap();
    // What it reads beyond the bound is dropped and announced.
    f.send(id, &["e3", "e4"]);
    let rest = release_and_collect(&entered, &permit, 3);
    assert_eq!(
        rest,
        [
            changed("e1"),
            changed("e2"),
            WatchEvent::Overflow { missed: 2 }
        ]
    );
}

#[test]
fn a_stuck_callback_stops_holding_the_reader_after_the_stall_timeout() {
    let f = Fixture::new(2);
    let (id, entered, permit) = blocked_in_e0(&f, &["e1", "e2"]);
    // No progress for the stall timeout (300 ms): reading goes on.
    assert_eq!(f.watches.read_budget(4096, &mut || false).0, 4096);
    assert_eq!(f.watches.stats().stalls, 1);
    f.send(id, &["e3", "e4", "e5"]);
    assert_eq!(
        f.watches.read_budget(4096, &mut || false).0,
        4096,
        "still stalled"
    );
    let rest = release_and_collect(&entered, &permit, 3);
    assert_eq!(
        rest,
        [
            changed("e1"),
            changed("e2"),
            WatchEvent::Overflow { missed: 3 }
        ]
    );
    // Caught up: the watch holds reading back again when full.
    eventually("queue drained", || {
        f.watches.read_budget(4096, &mut || false).0 == 2 * 19 - 1
    });
    assert_eq!(f.watches.stats().stalls, 1);
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
            let _ = calls_tx.send(e.clone());
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

#[test]
fn the_budget_follows_the_fullest_watch_that_is_not_stalled() {
    let f = Fixture::new(2);
    let (stuck, entered, permit) = blocked_in_e0(&f, &["e1", "e2"]);
    let (idle, _) = f.watches.add("/idle", Box::new(|_: &WatchEvent| {}));
    // `stuck` is full; after the stall timeout only `idle` (empty) counts.
    assert_eq!(f.watches.read_budget(4096, &mut || false).0, 2 * 19 - 1);
    assert_eq!(f.watches.stats().stalls, 1);
    // No watch holds reading back once `idle` is gone.
    f.watches.remove(idle);
    assert_eq!(f.watches.read_budget(4096, &mut || false).0, 4096);
    // `stuck` drains: it counts again, empty.
    let rest = release_and_collect(&entered, &permit, 2);
    assert_eq!(rest, [changed("e1"), changed("e2")]);
    eventually("the drained watch counts again", || {
        f.watches.read_budget(4096, &mut || false).0 == 2 * 19 - 1
    });
    f.watches.remove(stuck);
    assert_eq!(f.watches.read_budget(4096, &mut || false).0, 4096);
}

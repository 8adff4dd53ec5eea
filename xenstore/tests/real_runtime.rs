//! The runtime's promises, checked against the REAL xenstored: many
//! requests in flight from many threads, watch ordering and the overflow
//! policy, the unwatch guarantee, suspend/resume, and typed errors.

// The package is xenstore-client; its code and its users' code in this
// repository call it `xenstore`.
extern crate xenstore_client as xenstore;

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::eventually;
use support::real::{ring_client, socket_client, start_testbed};
use xenstore::{Client, Config, StdPlatform, Store, WatchEvent};

const WAIT: Duration = Duration::from_secs(20);

/// Each thread writes, reads back, lists and removes its own nodes.
fn mixed_requests(xs: &Client<StdPlatform>, base: &str, threads: usize, rounds: usize) {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let xs = xs.clone();
            let dir = format!("{base}/t{t}");
            std::thread::spawn(move || {
                for i in 0..rounds {
                    let k = (i / 4) % 16;
                    let node = format!("{dir}/n{k}");
                    match i % 4 {
                        0 => xs.write_display(&node, i).unwrap(),
                        1 => assert_eq!(xs.read_parsed::<usize>(&node).unwrap(), i - 1, "{node}"),
                        2 => assert!(xs.directory(&dir).unwrap().contains(&format!("n{k}"))),
                        _ => {
                            xs.rm(&node).unwrap();
                            assert!(!xs.exists(&node).unwrap());
                        }
                    }
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
}

#[test]
fn eight_threads_mixed_requests_on_one_socket_client() {
    let tb = start_testbed();
    let xs = socket_client(&tb, Config::default());
    mixed_requests(&xs, "/mt", 8, 1000);
    // Five requests per four rounds (the last round removes, then checks).
    assert_eq!(
        xs.stats().core.replies,
        8 * 1000 / 4 * 5,
        "one reply per request"
    );
}

#[test]
fn eight_threads_mixed_requests_on_one_guest_ring() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let xs = ring_client(dom, Config::default());
    mixed_requests(&xs, "data", 8, 1000);
}

/// Every write names a distinct node: the 4.17 daemon drops an event for an
/// unprivileged domain that is identical (same path and token) to one still
/// queued for it ("dropping duplicate watch" in its trace), which a guest
/// reading slowly on a loaded machine would see as loss that is not ours.
#[test]
fn ten_thousand_watched_writes_arrive_in_order_on_both_transports() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let config = Config {
        watch_queue_limit: 20_000,
        ..Config::default()
    };
    let host = socket_client(&tb, config.clone());
    let guest = ring_client(dom, config);
    let mut seen = Vec::new();
    for xs in [&host, &guest] {
        let events = Arc::new(Mutex::new(Vec::new()));
        let e = Arc::clone(&events);
        let w = xs
            .watch("/local/domain/1/data", move |ev| {
                e.lock().unwrap().push(ev.clone())
            })
            .unwrap();
        seen.push((w, events));
    }
    let expected: Vec<WatchEvent> = std::iter::once("/local/domain/1/data".to_string())
        .chain((0..10_000).map(|i| format!("/local/domain/1/data/w{i}")))
        .map(|path| WatchEvent::Changed { path })
        .collect();
    // The initial events first, so the writes' events follow them.
    for (_, events) in &seen {
        eventually("initial event", || !events.lock().unwrap().is_empty());
    }
    for i in 0..10_000 {
        host.write_display(&format!("/local/domain/1/data/w{i}"), i)
            .unwrap();
    }
    for ((_, events), xs) in seen.iter().zip([&host, &guest]) {
        let deadline = std::time::Instant::now() + WAIT;
        while events.lock().unwrap().len() < expected.len() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for 10,001 events: have {}; {:?}",
                events.lock().unwrap().len(),
                xs.stats()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            *events.lock().unwrap(),
            expected,
            "none lost, none added, in order"
        );
    }
    assert_eq!(
        host.stats().watch_events_overflowed + guest.stats().watch_events_overflowed,
        0
    );
}

/// Flow control: a callback far slower than the writer, with a queue of 16,
/// loses nothing on either transport. The watching clients make no request
/// meanwhile, so their readers stop reading while the queue is full and the
/// events wait in the ring (or socket) and in the daemon.
#[test]
fn a_slow_callback_loses_nothing_while_no_reply_is_awaited() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let config = Config {
        watch_queue_limit: 16,
        ..Config::default()
    };
    let writer = socket_client(&tb, Config::default());
    let watchers = [socket_client(&tb, config.clone()), ring_client(dom, config)];
    const WRITES: usize = 2000;
    let mut seen = Vec::new();
    for xs in &watchers {
        let events = Arc::new(Mutex::new(Vec::new()));
        let e = Arc::clone(&events);
        let w = xs
            .watch("/local/domain/1/data", move |ev| {
                e.lock().unwrap().push(ev.clone());
                std::thread::sleep(Duration::from_micros(200));
            })
            .unwrap();
        eventually("initial event", || !events.lock().unwrap().is_empty());
        seen.push((w, events));
    }
    for i in 0..WRITES {
        writer
            .write_display(&format!("/local/domain/1/data/s{i}"), i)
            .unwrap();
    }
    let expected: Vec<WatchEvent> = std::iter::once("/local/domain/1/data".to_string())
        .chain((0..WRITES).map(|i| format!("/local/domain/1/data/s{i}")))
        .map(|path| WatchEvent::Changed { path })
        .collect();
    for ((_, events), xs) in seen.iter().zip(&watchers) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while events.lock().unwrap().len() < expected.len() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out: {} of {} events; {:?}",
                events.lock().unwrap().len(),
                expected.len(),
                xs.stats()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*events.lock().unwrap(), expected, "none lost, in order");
        assert_eq!(xs.stats().watch_events_overflowed, 0);
        assert_eq!(xs.stats().watch_stalls, 0);
    }
}

#[test]
fn a_slow_callback_gets_an_overflow_marker_counting_exactly_what_was_dropped() {
    let tb = start_testbed();
    let xs = socket_client(
        &tb,
        Config {
            watch_queue_limit: 10,
            ..Config::default()
        },
    );
    let (entered_tx, entered) = channel();
    let release = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&release);
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = Arc::clone(&events);
    let _w = xs
        .watch("/slow", move |e| {
            ev.lock().unwrap().push(e.clone());
            let _ = entered_tx.send(());
            while !r.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    entered.recv_timeout(WAIT).unwrap(); // blocked in the initial event
    for i in 0..100 {
        xs.write_display(&format!("/slow/n{i}"), i).unwrap();
    }
    eventually("90 events dropped", || {
        xs.stats().watch_events_overflowed == 90
    });
    release.store(true, Ordering::SeqCst);
    eventually("all delivered", || events.lock().unwrap().len() == 12);
    let events = events.lock().unwrap();
    let changed: Vec<_> = events[1..11]
        .iter()
        .map(|e| e.path().unwrap().to_string())
        .collect();
    let first_ten: Vec<_> = (0..10).map(|i| format!("/slow/n{i}")).collect();
    assert_eq!(changed, first_ten);
    assert_eq!(events[11], WatchEvent::Overflow { missed: 90 });
}

/// `xs` watches `path` (the absolute `abs`); `writer` makes 50 changes while
/// the callback is stuck in the initial event, then `unwatch` runs.
fn unwatch_with_events_queued(
    xs: &Client<StdPlatform>,
    writer: &Client<StdPlatform>,
    path: &str,
    abs: &str,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (entered_tx, entered) = channel();
    let (c, release) = (Arc::clone(&calls), Arc::new(AtomicBool::new(false)));
    let r = Arc::clone(&release);
    let w = xs
        .watch(path, move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            let _ = entered_tx.send(());
            while !r.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    entered.recv_timeout(WAIT).unwrap();
    let seen = xs.stats().core.watch_events;
    for i in 0..50 {
        writer.write_display(&format!("{abs}/n{i}"), i).unwrap();
    }
    eventually("events queued", || {
        xs.stats().core.watch_events >= seen + 50
    });
    // Let the running callback finish a little later, while unwatch waits.
    let r = Arc::clone(&release);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        r.store(true, Ordering::SeqCst);
    });
    w.unwatch().unwrap();
    let after = calls.load(Ordering::SeqCst);
    assert_eq!(after, 1, "the queued events were discarded");
    writer.write(&format!("{abs}/more"), "x").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        after,
        "no callback after unwatch returned"
    );
    releaser.join().unwrap();
}

#[test]
fn unwatch_while_events_are_queued_delivers_none_after_it_returns() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let host = socket_client(&tb, Config::default());
    let guest = ring_client(dom, Config::default());
    unwatch_with_events_queued(&host, &host, "/uw", "/uw");
    unwatch_with_events_queued(&guest, &host, "data/uw", "/local/domain/1/data/uw");
}

#[test]
fn a_callback_may_make_requests_and_remove_its_own_watch() {
    let tb = start_testbed();
    let xs = socket_client(&tb, Config::default());
    xs.write("/cb/value", "42").unwrap();
    let (tx, rx) = channel();
    let inner = xs.clone();
    let handle: Arc<Mutex<Option<xenstore::Watch<StdPlatform>>>> = Arc::default();
    let h = Arc::clone(&handle);
    let w = xs
        .watch("/cb/trigger", move |_| {
            let v = inner.read_string("/cb/value").unwrap();
            // The handle is stored only after the initial event was reported.
            if let Some(w) = h.lock().unwrap().take() {
                w.unwatch().unwrap();
            }
            tx.send(v).unwrap();
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "42"); // initial event
    *handle.lock().unwrap() = Some(w);
    xs.write("/cb/trigger", "go").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "42");
    xs.write("/cb/trigger", "again").unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "removed from its own callback"
    );
}

/// `xs` works under `dir` (as it names it; `abs` is the same absolute, for
/// the CLI). Watch events name paths as the watch did.
fn suspend_scenario(tb: &testbed::Testbed, xs: &Client<StdPlatform>, dir: &str, abs: &str) {
    let p = |s: &str| format!("{dir}/{s}");
    let (fired_tx, fired) = channel();
    let _w = xs
        .watch(dir, move |e| fired_tx.send(e.clone()).unwrap())
        .unwrap();
    assert_eq!(fired.recv_timeout(WAIT).unwrap().path(), Some(dir));
    let open = xs.transaction_start().unwrap();
    open.write(&p("in-tx"), "1").unwrap();
    let suspended = Arc::new(AtomicBool::new(false));
    let (x, s) = (xs.clone(), Arc::clone(&suspended));
    let suspender = std::thread::spawn(move || {
        x.suspend().unwrap();
        s.store(true, Ordering::SeqCst);
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !suspended.load(Ordering::SeqCst),
        "suspend waits for the open transaction"
    );
    // A new transaction waits behind the pending suspend, then behind the suspension.
    let started = Arc::new(AtomicBool::new(false));
    let (x, s) = (xs.clone(), Arc::clone(&started));
    let newcomer = std::thread::spawn(move || {
        let t = x.transaction_start().unwrap();
        s.store(true, Ordering::SeqCst);
        t.commit().unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!started.load(Ordering::SeqCst));
    open.commit().unwrap();
    suspender.join().unwrap();
    assert!(suspended.load(Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !started.load(Ordering::SeqCst),
        "no transaction starts while suspended"
    );
    // Plain requests wait too.
    let (x, (read_tx, read)) = (xs.clone(), channel());
    let in_tx = p("in-tx");
    let reader = std::thread::spawn(move || read_tx.send(x.read_string(&in_tx).unwrap()).unwrap());
    assert!(read.recv_timeout(Duration::from_millis(100)).is_err());
    xs.resume().unwrap();
    assert_eq!(read.recv_timeout(WAIT).unwrap(), "1");
    newcomer.join().unwrap();
    reader.join().unwrap();
    assert!(started.load(Ordering::SeqCst));
    // The daemon kept the watch (no migration here): it still fires.
    assert_eq!(
        fired.recv_timeout(WAIT).unwrap().path(),
        Some(p("in-tx").as_str()),
        "the commit's event"
    );
    tb.cli("write", &[&format!("{abs}/after"), "x"])
        .unwrap()
        .into_stdout()
        .unwrap();
    assert_eq!(
        fired.recv_timeout(WAIT).unwrap().path(),
        Some(p("after").as_str())
    );
}

#[test]
fn suspend_waits_for_a_transaction_blocks_new_ones_and_resume_rearms_watches() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let host = socket_client(&tb, Config::default());
    suspend_scenario(&tb, &host, "/s", "/s");
    let guest = ring_client(dom, Config::default());
    suspend_scenario(&tb, &guest, "data/s", "/local/domain/1/data/s");
}

fn signal_daemon(tb: &testbed::Testbed, signal: &str) {
    let pid = tb.daemon_pid().expect("the daemon runs");
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A suspend that comes while `read_many` holds a window of requests in
/// flight: the suspend waits for those requests (as for any), so
/// `read_many` must end them before it waits at the suspend's gate, or each
/// waits for the other for ever. The daemon is stopped (SIGSTOP) while the
/// window is in flight and the suspend begins, so the window is certainly
/// held when the gate closes.
#[test]
fn suspend_during_read_many_ends_its_window_then_read_many_goes_on() {
    const PATHS: usize = 50_000;
    let tb = start_testbed();
    let xs = socket_client(&tb, Config::default());
    xs.write("/rm/v", "v").unwrap();
    let (done_tx, done) = channel();
    let c = xs.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(c.read_many(&vec!["/rm/v"; PATHS]));
    });
    eventually("read_many under way", || xs.stats().core.replies > 1_000);
    signal_daemon(&tb, "STOP");
    let replies = xs.stats().core.replies;
    assert!(replies < 1 + PATHS as u64, "read_many was still under way");

    let (suspended_tx, suspended) = channel();
    let c = xs.clone();
    std::thread::spawn(move || {
        let _ = suspended_tx.send(c.suspend());
    });
    // Give the suspend time to close its gate while the window is held (if
    // it takes longer, it lands later in read_many: the same case).
    std::thread::sleep(Duration::from_millis(100));
    signal_daemon(&tb, "CONT");
    suspended
        .recv_timeout(Duration::from_secs(120))
        .expect("the suspend never ended: read_many held requests at the gate")
        .unwrap();
    xs.resume_cancelled().unwrap();
    let results = done
        .recv_timeout(Duration::from_secs(120))
        .expect("read_many never ended after the resume");
    assert_eq!(results.len(), PATHS);
    assert!(results.iter().all(|r| r.as_deref() == Ok(&b"v"[..])));
}

/// A cancelled suspend (`xl save -c`): the guest never left, so nothing is
/// lost. The watch's callback is blocked and its queue full, so flow control
/// leaves events unread in the ring across the suspend; all arrive after,
/// in order, and the watch is not registered again (no second initial
/// event).
#[test]
fn a_cancelled_suspend_keeps_unread_events_and_watches() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let guest = ring_client(
        dom,
        Config {
            watch_queue_limit: 4,
            watch_stall_timeout: Duration::from_secs(600),
            ..Config::default()
        },
    );
    let writer = socket_client(&tb, Config::default());
    let release = Arc::new(AtomicBool::new(false));
    let events = Arc::new(Mutex::new(Vec::new()));
    let (r, e) = (Arc::clone(&release), Arc::clone(&events));
    let _w = guest
        .watch("data/c", move |ev| {
            e.lock().unwrap().push(ev.clone());
            while !r.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    eventually("initial event", || events.lock().unwrap().len() == 1);
    const WRITES: usize = 40;
    for i in 0..WRITES {
        writer
            .write_display(&format!("/local/domain/1/data/c/n{i}"), i)
            .unwrap();
    }
    guest.suspend().unwrap();
    guest.resume_cancelled().unwrap();
    release.store(true, Ordering::SeqCst);
    let expected: Vec<WatchEvent> = std::iter::once("data/c".to_string())
        .chain((0..WRITES).map(|i| format!("data/c/n{i}")))
        .map(|path| WatchEvent::Changed { path })
        .collect();
    eventually("every event", || {
        events.lock().unwrap().len() >= expected.len()
    });
    // Requests work, and nothing more arrives (no re-registration).
    assert_eq!(guest.read_string("data/c/n0").unwrap(), "0");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(*events.lock().unwrap(), expected);
    assert_eq!(guest.stats().watch_events_overflowed, 0);
}

#[test]
fn resume_after_a_migration_to_a_fresh_daemon_registers_watches_again() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let guest = ring_client(Arc::clone(&dom), Config::default());
    let (fired_tx, fired) = channel();
    let _w = guest
        .watch("control", move |e| fired_tx.send(e.clone()).unwrap())
        .unwrap();
    assert_eq!(fired.recv_timeout(WAIT).unwrap().path(), Some("control"));
    guest.write("data/before", "1").unwrap();
    guest.suspend().unwrap();
    // The domain moves to a new daemon: empty store, same page, no watches.
    tb.restart_daemon().unwrap();
    guest.resume().unwrap();
    // Registered again: the new daemon's initial event...
    assert_eq!(fired.recv_timeout(WAIT).unwrap().path(), Some("control"));
    assert!(!guest.exists("data/before").unwrap(), "a fresh store");
    // ...and it fires for the toolstack's writes.
    tb.cli("write", &["/local/domain/1/control/shutdown", "poweroff"])
        .unwrap()
        .into_stdout()
        .unwrap();
    assert_eq!(
        fired.recv_timeout(WAIT).unwrap().path(),
        Some("control/shutdown")
    );
    assert_eq!(guest.read_string("control/shutdown").unwrap(), "poweroff");
}

/// A transaction held open past the grace does not hold the suspend up
/// (the toolstack would give up on the guest); after a cancelled suspend
/// (a checkpoint: same daemon) it goes on and commits.
#[test]
fn a_transaction_held_open_does_not_stop_a_suspend_and_commits_after_a_checkpoint() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let guest = ring_client(
        dom,
        Config {
            suspend_transaction_grace: Some(Duration::from_millis(200)),
            ..Config::default()
        },
    );
    let (fired_tx, fired) = channel();
    let _w = guest
        .watch("data/h", move |e| fired_tx.send(e.clone()).unwrap())
        .unwrap();
    assert_eq!(fired.recv_timeout(WAIT).unwrap().path(), Some("data/h"));
    let held = guest.transaction_start().unwrap();
    held.write("data/h/held", "1").unwrap();
    // Returns although the transaction is still open (it would wait for
    // ever without the grace: this thread holds it).
    guest.suspend().unwrap();
    // Requests in the held transaction wait for the resume like any other.
    let (done_tx, done) = channel();
    let writer = std::thread::spawn(move || {
        held.write("data/h/held2", "2").unwrap();
        done_tx.send(held.commit()).unwrap();
    });
    assert!(done.recv_timeout(Duration::from_millis(100)).is_err());
    guest.resume_cancelled().unwrap();
    done.recv_timeout(WAIT)
        .unwrap()
        .expect("the held transaction commits after a checkpoint");
    writer.join().unwrap();
    assert_eq!(guest.read_string("data/h/held").unwrap(), "1");
    assert_eq!(guest.read_string("data/h/held2").unwrap(), "2");
    // The watch was kept and fires for the commit.
    let mut paths = Vec::new();
    while paths.len() < 2 {
        paths.push(
            fired
                .recv_timeout(WAIT)
                .unwrap()
                .path()
                .unwrap()
                .to_string(),
        );
    }
    paths.sort();
    assert_eq!(paths, ["data/h/held", "data/h/held2"]);
}

/// A real resume (the daemon replaced, as after `xl restore`): a
/// transaction of the old connection ends with EAGAIN (its id means
/// nothing to the new daemon), without being sent, and `transaction()`
/// runs the body again on the new connection, where it commits.
#[test]
fn a_transaction_open_across_a_real_resume_ends_with_eagain_and_the_retry_commits() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let guest = ring_client(
        Arc::clone(&dom),
        Config {
            suspend_transaction_grace: Some(Duration::from_millis(200)),
            ..Config::default()
        },
    );
    // A plain held transaction...
    let held = guest.transaction_start().unwrap();
    held.write("data/r/held", "old").unwrap();
    // ...and one run by the retry helper, whose first attempt is held open
    // across the suspend.
    let (opened_tx, opened) = channel();
    let (release_tx, release) = channel::<()>();
    let attempts = Arc::new(AtomicUsize::new(0));
    let (x, a) = (guest.clone(), Arc::clone(&attempts));
    let helper = std::thread::spawn(move || {
        x.transaction(|t| {
            let n = a.fetch_add(1, Ordering::SeqCst) + 1;
            t.write("data/r/helper", n.to_string())?;
            if n == 1 {
                opened_tx.send(()).unwrap();
                release.recv().unwrap();
            }
            Ok(n)
        })
    });
    opened.recv_timeout(WAIT).unwrap();
    guest.suspend().unwrap();
    tb.restart_daemon().unwrap();
    guest.resume().unwrap();
    release_tx.send(()).unwrap();
    assert_eq!(
        helper.join().unwrap().unwrap(),
        2,
        "committed on the second attempt"
    );
    assert_eq!(guest.read_string("data/r/helper").unwrap(), "2");
    assert!(held.read("data/r/held").unwrap_err().is_eagain());
    assert!(held.commit().unwrap_err().is_eagain());
    assert!(
        !guest.exists("data/r/held").unwrap(),
        "nothing of it applied"
    );
    // New transactions work, and the old one's end sent nothing that could
    // hit one of them.
    guest
        .transaction(|t| t.write("data/r/after", "new"))
        .unwrap();
    assert_eq!(guest.read_string("data/r/after").unwrap(), "new");
    let aborted = guest.transaction_start().unwrap();
    drop(aborted);
    assert_eq!(guest.stats().core.late_replies, 0);
}

/// What each request ends with across a real resume: one in flight when
/// the suspend begins gets its reply first (the suspend waits for it); one
/// made while suspended waits at the gate and goes to the new daemon, so a
/// relative path names the new home; every watch is registered again and
/// fires again at least once.
#[test]
fn across_a_real_resume_requests_end_and_every_watch_fires_again() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let guest = ring_client(Arc::clone(&dom), Config::default());
    let names = ["data/w0", "data/w1", "control"];
    let (fired_tx, fired) = channel();
    let _watches: Vec<_> = names
        .iter()
        .map(|name| {
            let tx = fired_tx.clone();
            guest
                .watch(name, move |e| tx.send(e.clone()).unwrap())
                .unwrap()
        })
        .collect();
    let initial = |n: usize| {
        let mut got: Vec<String> = (0..n)
            .map(|_| {
                fired
                    .recv_timeout(WAIT)
                    .unwrap()
                    .path()
                    .unwrap()
                    .to_string()
            })
            .collect();
        got.sort();
        got
    };
    assert_eq!(initial(3), ["control", "data/w0", "data/w1"]);
    guest.write("data/w0/old", "old daemon").unwrap();
    assert_eq!(initial(1), ["data/w0/old"]);
    // Busy: readers keep requests in flight through the suspend.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (x, stop) = (guest.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut outcomes = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    // Each ends: the old daemon's answer, or the new one's.
                    match x.read_string("name") {
                        Ok(_) | Err(xenstore::XsError::Enoent(_)) => outcomes += 1,
                        Err(e) => panic!("a read across the resume failed: {e}"),
                    }
                }
                outcomes
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    guest.suspend().unwrap();
    let (x, (read_tx, read)) = (guest.clone(), channel());
    let gated = std::thread::spawn(move || read_tx.send(x.exists("data/w0/old")).unwrap());
    tb.restart_daemon().unwrap();
    guest.resume().unwrap();
    assert!(
        !read.recv_timeout(WAIT).unwrap().unwrap(),
        "the waiting request went to the new daemon"
    );
    gated.join().unwrap();
    assert_eq!(
        initial(3),
        ["control", "data/w0", "data/w1"],
        "each fires again"
    );
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    tb.cli("write", &["/local/domain/1/data/w1/new", "x"])
        .unwrap()
        .into_stdout()
        .unwrap();
    assert_eq!(initial(1), ["data/w1/new"]);
}

#[test]
fn requesters_hand_reading_over_to_the_receive_thread_when_a_watch_appears() {
    let tb = start_testbed();
    let xs = socket_client(&tb, Config::default());
    xs.write("/h/v", "1").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (xs, stop) = (xs.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    assert_eq!(xs.read("/h/v").unwrap(), b"1");
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    // The first watch starts the receive thread while requesters are reading.
    let (tx, rx) = channel();
    let w = xs
        .watch("/h", move |e| tx.send(e.clone()).unwrap())
        .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().path(), Some("/h"));
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    let total: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(total > 0);
    xs.write("/h/v", "1").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().path(), Some("/h/v"));
    w.unwatch().unwrap();
}

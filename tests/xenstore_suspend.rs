//! Suspend and resume of the kernel's xenstore client against the real
//! daemon: suspend waits for a transaction a thread holds open and holds
//! off new requests until resume; resume re-registers every watch, proved
//! by a host write firing it afterwards, both with the same daemon and
//! after a "migration" (the host replaces the daemon by a fresh one with an
//! empty store on the same ring, as a toolstack does on the destination).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use core::time::Duration;

use ::xenstore::Store;
use kernel::sync::Completion;
use kernel::thread;
use ktests::support::{Recorder, abs, client, host};

ktests::config!(timeout_secs = 90, needs = "xenstore");
ktests::main!(
    suspend_waits_for_an_open_transaction_and_holds_off_new_work,
    resume_re_registers_watches_with_the_same_daemon,
    resume_after_migration_to_a_fresh_daemon_restores_watches,
);

const WAIT: Duration = Duration::from_secs(20);
/// Long enough for a blocked thread to have run had it not been blocked.
const SETTLE: Duration = Duration::from_millis(300);

fn suspend_waits_for_an_open_transaction_and_holds_off_new_work() {
    let xs = client();
    let opened = Arc::new(Completion::new());
    let release = Arc::new(Completion::new());
    let holder = {
        let (xs, opened, release) = (xs.clone(), opened.clone(), release.clone());
        thread::spawn_joinable("tx-holder", move || {
            let t = xs.transaction_start().expect("transaction starts");
            t.write("data/susp/held", "committed after suspend began")
                .unwrap();
            opened.complete();
            release.wait();
            t.commit().expect("the held transaction commits");
        })
    };
    assert!(opened.wait_timeout(WAIT), "transaction did not open");

    let suspended = Arc::new(Completion::new());
    let suspender = {
        let (xs, suspended) = (xs.clone(), suspended.clone());
        thread::spawn_joinable("suspender", move || {
            xs.suspend().expect("suspend");
            suspended.complete();
        })
    };
    thread::sleep(SETTLE);
    assert!(
        !suspended.is_complete(),
        "suspend returned while a transaction was open"
    );

    // A new transaction now waits behind the pending suspend...
    let new_tx = Arc::new(Completion::new());
    let starter = {
        let (xs, new_tx) = (xs.clone(), new_tx.clone());
        thread::spawn_joinable("tx-starter", move || {
            let t = xs.transaction_start().expect("transaction after resume");
            t.commit().unwrap();
            new_tx.complete();
        })
    };
    thread::sleep(SETTLE);
    assert!(
        !new_tx.is_complete(),
        "a transaction started during suspend"
    );

    // ...the open one may still finish, which lets suspend complete...
    release.complete();
    holder.join();
    assert!(
        suspended.wait_timeout(WAIT),
        "suspend did not complete once the transaction ended"
    );
    suspender.join();

    // ...and until resume, plain requests wait too.
    let read_done = Arc::new(Completion::new());
    let reader = {
        let (xs, read_done) = (xs.clone(), read_done.clone());
        thread::spawn_joinable("reader", move || {
            assert_eq!(xs.read_string("name").unwrap(), "guest1");
            read_done.complete();
        })
    };
    thread::sleep(SETTLE);
    assert!(!new_tx.is_complete(), "a transaction ran while suspended");
    assert!(!read_done.is_complete(), "a request ran while suspended");

    xs.resume().expect("resume");
    assert!(
        new_tx.wait_timeout(WAIT),
        "the waiting transaction did not run after resume"
    );
    assert!(
        read_done.wait_timeout(WAIT),
        "the waiting read did not run after resume"
    );
    starter.join();
    reader.join();
    assert_eq!(
        xs.read_string("data/susp/held").unwrap(),
        "committed after suspend began"
    );
}

fn resume_re_registers_watches_with_the_same_daemon() {
    let xs = client();
    let events = Recorder::new();
    let watch = xs.watch("data/same", events.callback()).unwrap();
    events.expect_path("data/same", WAIT);
    xs.suspend().unwrap();
    // The daemon kept the watch: re-registering it is answered EEXIST,
    // which resume accepts.
    xs.resume().expect("resume with the same daemon");
    events.clear();
    host("xenstore-write", &[&abs("data/same/after"), "1"]);
    events.expect_path("data/same/after", WAIT);
    watch.unwatch().unwrap();
}

fn resume_after_migration_to_a_fresh_daemon_restores_watches() {
    let xs = client();
    xs.write("data/mig/before", "old daemon").unwrap();
    let events = Recorder::new();
    let watch = xs.watch("data/mig", events.callback()).unwrap();
    events.expect_path("data/mig", WAIT);

    xs.suspend().unwrap();
    // The toolstack side of a migration: a fresh daemon (empty store, the
    // domain introduced again with its home) on the same ring.
    let pid = host("restart-daemon", &[]);
    log::info!("daemon replaced (new pid {pid:?})");
    events.clear();
    xs.resume().expect("resume on the fresh daemon");

    // The new daemon did not know our watch: re-registering it made it
    // fire its initial event again...
    events.expect_path("data/mig", WAIT);
    // ...and it fires for the host's writes.
    host("xenstore-write", &[&abs("data/mig/after"), "new daemon"]);
    events.expect_path("data/mig/after", WAIT);
    assert_eq!(xs.read_string("data/mig/after").unwrap(), "new daemon");
    // The fresh store has the toolstack's nodes, not the old daemon's data.
    assert_eq!(xs.read_string("domid").unwrap(), "1");
    assert!(!xs.exists("data/mig/before").unwrap());
    // Transactions work on the new daemon too.
    xs.transaction(|t| t.write("data/mig/tx", "ok")).unwrap();
    watch.unwatch().unwrap();
}

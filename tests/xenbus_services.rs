//! The guest services in the kernel against the real xenstored (the
//! `xenbus` fixture): the `data/` pool read back with the real CLI, the
//! `vm-data/` pool written by the host, no thread left per request, suspend
//! waiting for a transaction while a second request is deferred, and a
//! migration to a fresh daemon after which watches and state are back.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use ::xenstore::Store;
use kernel::guest::KernelInfo;
use kernel::thread;
use ktests::support::bus::{WAIT, guest, host_sees_front_state, wait_for_our_state, wait_until};
use ktests::support::{Recorder, abs, client, host};
use xenbus::XenbusState;
use xenbus::services::{ServiceState, SystemInfo};

ktests::config!(timeout_secs = 120, needs = "xenbus");
ktests::main!(
    the_data_pool_is_published_and_read_back_on_the_host,
    vm_data_written_on_the_host_is_seen_by_the_guest,
    finished_handler_threads_are_reaped,
    suspend_waits_for_a_transaction_and_a_second_request_is_deferred_then_handled,
    migration_restores_watches_and_republishes_state,
    nothing_was_logged_under_a_spin_lock,
);

/// Long enough for a blocked suspend to have moved on had it not waited.
const SETTLE: Duration = Duration::from_millis(300);

fn host_read(relative: &str) -> String {
    host("xenstore-read", &[&abs(relative)]).concat()
}

fn the_data_pool_is_published_and_read_back_on_the_host() {
    let guest = guest();
    wait_until("a first data/ refresh", WAIT, || {
        guest.data().status().handled >= 1
    });
    let info = KernelInfo.guest_info();
    assert_eq!(host_read("data/os_name"), info.os_name);
    assert_eq!(host_read("data/os_distro"), "xenstore-rs");
    assert_eq!(host_read("data/os_majorver"), info.os_majorver);
    assert_eq!(host_read("data/os_minorver"), info.os_minorver);
    assert_eq!(host_read("data/os_uname"), KernelInfo::uname());
    assert_eq!(
        host_read("data/meminfo_total"),
        format!("{}", info.meminfo_total_kib)
    );
    assert!(
        info.meminfo_total_kib > 100 * 1024,
        "128 MiB guest: {info:?}"
    );
    let free: u64 = host_read("data/meminfo_free").parse().expect("a number");
    assert!(free > 0 && free <= info.meminfo_total_kib);
    let _: u64 = host_read("data/uptime").parse().expect("a number");
    // A refresh rewrites what changed: uptime moves on.
    thread::sleep(Duration::from_millis(1100));
    let before = host_read("data/updated");
    let handled = guest.data().status().handled;
    guest.data().refresh();
    wait_until("a second refresh", WAIT, || {
        guest.data().status().handled > handled
    });
    assert_ne!(host_read("data/updated"), before);
    assert!(host_read("data/uptime").parse::<u64>().unwrap() >= 1);
}

fn vm_data_written_on_the_host_is_seen_by_the_guest() {
    let pool = guest().vm_data();
    let seen = pool.generation();
    host(
        "xenstore-write",
        &[&abs("vm-data/greeting"), "hello from the host"],
    );
    host("xenstore-write", &[&abs("vm-data/app/mode"), "blue"]);
    wait_until("vm-data/ keys in the guest's pool", WAIT, || {
        pool.get("app/mode").is_some() && pool.get("greeting").is_some()
    });
    assert!(pool.generation() > seen);
    assert_eq!(
        pool.get("greeting").as_deref(),
        Some(&b"hello from the host"[..])
    );
    assert_eq!(pool.get("app/mode").as_deref(), Some(&b"blue"[..]));
    host("xenstore-rm", &[&abs("vm-data/greeting")]);
    wait_until("vm-data/greeting gone from the pool", WAIT, || {
        pool.get("greeting").is_none()
    });
}

fn finished_handler_threads_are_reaped() {
    let data = guest().data();
    let threads_before = thread::list().len();
    let handled = data.status().handled;
    const REQUESTS: u64 = 25;
    for i in 1..=REQUESTS {
        data.refresh();
        wait_until("a refresh handled", WAIT, || {
            data.status().handled >= handled + i
        });
    }
    // No thread per request: the service's handler thread runs them all.
    wait_until("handler threads reaped", WAIT, || {
        thread::list().len() <= threads_before
    });
    assert_eq!(data.status().timed_out, 0);
}

fn suspend_waits_for_a_transaction_and_a_second_request_is_deferred_then_handled() {
    let guest = guest();
    let power = kernel::guest::power().expect("started");
    let control = guest.control();
    let (status0, started0) = (control.status(), power.suspends_started());
    // The host toolstack answers this suspend as a checkpoint: same store.
    host("suspend-mode", &["checkpoint"]);

    let xs = client();
    let held = xs.transaction_start().expect("a transaction opens");
    held.write("data/held", "written before the suspend")
        .unwrap();
    host("shutdown-request", &["suspend"]);
    wait_until("the control handler running", WAIT, || {
        control.status().state == ServiceState::HandlerRunning
    });
    thread::sleep(SETTLE);
    assert_eq!(
        power.suspends_started(),
        started0,
        "suspended with a transaction open"
    );
    assert_eq!(control.status().state, ServiceState::HandlerRunning);

    // A second request while the first is being handled: deferred, so
    // neither acknowledged (the node keeps it) nor acted on.
    host("shutdown-request", &["suspend"]);
    thread::sleep(SETTLE);
    assert_eq!(host_read("control/shutdown"), "suspend");
    assert_eq!(power.suspends_started(), started0);
    assert_eq!(
        control.status().deferred,
        status0.deferred,
        "not taken up yet"
    );

    // The open transaction ends; the suspend goes on, then the deferred one.
    held.commit().expect("the held transaction commits");
    wait_until("both suspends handled", WAIT, || {
        let s = control.status();
        s.handled == status0.handled + 2 && s.state == ServiceState::Ready
    });
    assert_eq!(power.suspends_started(), started0 + 2);
    assert_eq!(
        power.suspends_resumed(),
        0,
        "checkpoints are cancelled suspends"
    );
    let status = control.status();
    assert_eq!(
        (status.failed, status.timed_out, status.deferred),
        (status0.failed, status0.timed_out, status0.deferred + 1)
    );
    assert_eq!(status.last_request.as_deref(), Some("suspend"));
    // Acknowledged as Linux does: the node is cleared.
    assert_eq!(host_read("control/shutdown"), "");
    assert_eq!(
        xs.read_string("data/held").unwrap(),
        "written before the suspend"
    );
}

fn migration_restores_watches_and_republishes_state() {
    let guest = guest();
    let power = kernel::guest::power().expect("started");
    let xs = client();
    for (class, id) in [("vbd", "768"), ("vif", "0"), ("vif", "1")] {
        wait_for_our_state(&format!("device/{class}/{id}"), XenbusState::Connected);
    }
    xs.write("data/mig/before", "old daemon").unwrap();
    let events = Recorder::new();
    let watch = xs.watch("data/mig", events.callback()).unwrap();
    events.expect_path("data/mig", WAIT);
    let (resumed0, handled0) = (power.suspends_resumed(), guest.control().status().handled);

    host("suspend-mode", &["migrate"]);
    host("shutdown-request", &["suspend"]);
    wait_until("the suspend handled after the migration", WAIT, || {
        guest.control().status().handled > handled0
    });
    assert_eq!(power.suspends_resumed(), resumed0 + 1);
    assert_eq!(guest.control().status().last_error, None);
    // A fresh store: the old daemon's nodes are gone.
    assert!(!xs.exists("data/mig/before").unwrap());

    // Watches restored: ours fires for a host write on the new daemon...
    events.clear();
    host("xenstore-write", &[&abs("data/mig/after"), "new daemon"]);
    events.expect_path("data/mig/after", WAIT);
    // ...and so does the vm-data/ pool's.
    host("xenstore-write", &[&abs("vm-data/after-migration"), "yes"]);
    let pool = guest.vm_data();
    wait_until("vm-data/ written after the migration", WAIT, || {
        pool.get("after-migration").is_some()
    });

    // State republished on the new daemon: the data/ pool, the control
    // features, and every device back to Connected with its new backend.
    wait_until("data/ republished", WAIT, || {
        host("xenstore-read", &[&abs("data/os_name")]).concat() == KernelInfo.guest_info().os_name
    });
    for feature in ["feature-poweroff", "feature-reboot", "feature-suspend"] {
        assert_eq!(host_read(&format!("control/{feature}")), "1", "{feature}");
    }
    for (class, id) in [("vbd", "768"), ("vif", "0"), ("vif", "1")] {
        wait_for_our_state(&format!("device/{class}/{id}"), XenbusState::Connected);
        host_sees_front_state(class, id, XenbusState::Connected);
    }
    watch.unwatch().unwrap();
}

/// Last, after the services, suspend and migration ran: no log line of
/// the xenstore client, the bus or the services was written with a spin
/// lock held (their locks are the kernel's spin locks, and wait-queue
/// conditions run under one).
fn nothing_was_logged_under_a_spin_lock() {
    let (count, first) = kernel::logger::under_spin_locks();
    assert_eq!(
        count, 0,
        "lines logged under a spin lock; the first: {first:?}"
    );
}

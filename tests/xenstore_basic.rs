//! The kernel's xenstore service against the real xenstored, through the
//! QEMU test platform (ivshmem-doorbell: its BAR2 is the domain's ring, its
//! doorbell and MSI-X interrupt the event channel): attach, identity, the
//! guest's own tree, permissions, and a watch fired by the host's real
//! `xenstore-write`.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use core::time::Duration;

use kernel::xenstore_service::{self, PlatformKind};
use ktests::support::{Recorder, abs, client, host};
use xenstore::{Store, XsError};

ktests::config!(timeout_secs = 90, needs = "xenstore");
ktests::main!(
    attaches_on_the_qemu_test_platform_as_domain_1,
    reads_the_nodes_the_toolstack_wrote,
    writes_reads_lists_and_removes_in_its_own_tree,
    is_refused_outside_its_own_tree,
    host_xenstore_write_fires_the_guest_watch,
    replies_are_announced_by_msix_interrupts,
);

const WAIT: Duration = Duration::from_secs(20);

fn attaches_on_the_qemu_test_platform_as_domain_1() {
    let info = xenstore_service::init().expect("xenstore service starts");
    assert_eq!(info.platform, PlatformKind::QemuTest);
    assert_eq!(info.domid, ::xenstore::DomId(1), "domid node");
    assert_eq!(info.home, "/local/domain/1", "GET_DOMAIN_PATH");
    // init is idempotent and the service hands out working clients.
    assert_eq!(
        xenstore_service::init().expect("second init").home,
        info.home
    );
    assert_eq!(client().read_string("domid").unwrap(), "1");
}

fn reads_the_nodes_the_toolstack_wrote() {
    let xs = client();
    assert_eq!(xs.read_string("name").unwrap(), "guest1");
    assert_eq!(xs.read_string("/local/domain/1/name").unwrap(), "guest1");
    assert_eq!(xs.read_parsed::<u32>("store/port").unwrap(), 1);
    let home = xs
        .directory(&ktests::support::home())
        .expect("list the home");
    for child in ["domid", "name", "control", "data", "device", "store"] {
        assert!(
            home.iter().any(|c| c == child),
            "{child} missing from {home:?}"
        );
    }
    assert!(matches!(xs.read("no-such-node"), Err(XsError::Enoent(_))));
    assert_eq!(xs.read_optional("no-such-node").unwrap(), None);
}

fn writes_reads_lists_and_removes_in_its_own_tree() {
    let xs = client();
    xs.write("data/basic/a", "1").unwrap();
    xs.write_display("data/basic/b", 42).unwrap();
    xs.write("data/basic/bin", [0u8, 0xff, b'\n']).unwrap();
    xs.mkdir("data/basic/empty").unwrap();
    assert_eq!(xs.read_string("data/basic/a").unwrap(), "1");
    assert_eq!(xs.read_parsed::<u32>("data/basic/b").unwrap(), 42);
    assert_eq!(xs.read("data/basic/bin").unwrap(), vec![0u8, 0xff, b'\n']);
    assert_eq!(xs.read("data/basic/empty").unwrap(), b"");
    let mut names = xs.directory("data/basic").unwrap();
    names.sort();
    assert_eq!(names, ["a", "b", "bin", "empty"]);
    // The host sees what we wrote, through the real CLI.
    assert_eq!(host("xenstore-read", &[&abs("data/basic/b")]), ["42"]);
    xs.rm("data/basic/a").unwrap();
    assert!(!xs.exists("data/basic/a").unwrap());
    assert_eq!(xs.directory("data/basic").unwrap().len(), 3);
    xs.rm_tree("data/basic").unwrap();
    assert!(!xs.exists("data/basic").unwrap());
    // Removing what is not there is fine; its missing parent is not.
    xs.rm("data/basic").unwrap();
    assert!(matches!(
        xs.rm("data/nothing/below"),
        Err(XsError::Enoent(_))
    ));
}

fn is_refused_outside_its_own_tree() {
    let xs = client();
    // Writing outside the home: EACCES, and nothing was created.
    let e = xs.write("/local/domain/0/intruder", "x").unwrap_err();
    assert!(matches!(e, XsError::Eacces(_)), "write outside home: {e:?}");
    let e = xs.write("/tool/intruder", "x").unwrap_err();
    assert!(matches!(e, XsError::Eacces(_)), "write at the root: {e:?}");
    // A node dom0 keeps to itself is unreadable for us.
    host("xenstore-write", &["/tool/secret", "s3cret"]);
    host("xenstore-chmod", &["/tool/secret", "n0"]);
    let e = xs.read("/tool/secret").unwrap_err();
    assert!(
        matches!(e, XsError::Eacces(_)),
        "read of a dom0-only node: {e:?}"
    );
    // Our home is laid out as xl does: the home itself and the toolstack's
    // nodes are dom0's, read-only for us; data/ and friends are ours.
    let e = xs.write("domid", "7").unwrap_err();
    assert!(matches!(e, XsError::Eacces(_)), "write of domid: {e:?}");
    assert_eq!(xs.read_string("domid").unwrap(), "1");
    let e = xs.write("scratch", "x").unwrap_err();
    assert!(
        matches!(e, XsError::Eacces(_)),
        "new node in the home itself: {e:?}"
    );
    xs.write("data/scratch", "x").unwrap();
    xs.write("control/shutdown", "").unwrap();
}

fn host_xenstore_write_fires_the_guest_watch() {
    let xs = client();
    let events = Recorder::new();
    let watch = xs.watch("data/from-host", events.callback()).unwrap();
    // The daemon fires every new watch once.
    events.expect_path("data/from-host", WAIT);
    events.clear();
    host(
        "xenstore-write",
        &[&abs("data/from-host/greeting"), "hello guest"],
    );
    events.expect_path("data/from-host/greeting", WAIT);
    assert_eq!(
        xs.read_string("data/from-host/greeting").unwrap(),
        "hello guest"
    );
    // After unwatch, host writes reach no callback.
    watch.unwatch().unwrap();
    events.clear();
    host(
        "xenstore-write",
        &[&abs("data/from-host/greeting"), "again"],
    );
    // A round trip through the daemon after the write: any event it sent
    // for that write would have been delivered before this reply.
    assert_eq!(xs.read_string("data/from-host/greeting").unwrap(), "again");
    kernel::thread::sleep(Duration::from_millis(100));
    assert!(
        events.is_empty(),
        "events after unwatch: {:?}",
        events.events()
    );
}

fn replies_are_announced_by_msix_interrupts() {
    let xs = client();
    let before = xenstore_service::events_taken();
    let mut value = String::new();
    for i in 0..20 {
        xs.write_display("data/irq", i).unwrap();
        value = xs.read_string("data/irq").unwrap();
    }
    assert_eq!(value, "19");
    let taken = xenstore_service::events_taken() - before;
    // The daemon's notify after each reply arrives as an MSI-X interrupt,
    // counted by the handler (two notifies close together may merge into
    // one interrupt, and a reply already there when the receive thread
    // looks needs none; nothing polls, so far fewer would mean replies
    // found only by chance).
    assert!(taken >= 20, "only {taken} ring interrupts for 40 requests");
}

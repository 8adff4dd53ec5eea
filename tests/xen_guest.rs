//! The kernel's xenstore client under the real Xen 4.17 hypervisor: this
//! image runs as a PVH domU that `realxen test` creates with `xl` (role
//! `xen`: `bootimage test` skips it). Its ring and event channel come from
//! the HVM params; the other end is dom0's real xenstored. Its output and
//! the host link (`host(...)`, answered by the realxen runner with dom0's
//! real `xenstore-*` tools) go over the PV console; it ends with
//! SCHEDOP_shutdown: poweroff when every test passed, crash on a panic.
//!
//! No domain id is written down here: the guest learns its own from the
//! store, and dom0 is asked about the guest's home by absolute path.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use core::time::Duration;

use kernel::xenstore_service::{self, PlatformKind};
use ktests::support::{Recorder, abs, client, host};
use xenstore::{Store, XsError};

ktests::config!(role = "xen", timeout_secs = 600);
ktests::main!(
    attaches_to_xenstored_through_the_hvm_params,
    writes_reads_lists_and_removes_in_its_own_tree,
    transactions_commit_whole_or_not_at_all,
    its_own_write_fires_its_watch,
    a_dom0_xenstore_write_fires_the_guest_watch,
    dom0_lists_data_and_vm_data_with_xenstore_ls,
);

/// A "never" bound for one event on this bed (~100 round trips a second
/// for a guest under TCG, far slower when the host is busy).
const WAIT: Duration = Duration::from_secs(120);

fn attaches_to_xenstored_through_the_hvm_params() {
    let info = xenstore_service::init().expect("xenstore service starts");
    assert_eq!(info.platform, PlatformKind::Xen);
    assert_ne!(info.domid, ::xenstore::DomId::DOM0, "a domU, not dom0");
    assert_eq!(info.home, format!("/local/domain/{}", info.domid.0));
    let xs = client();
    assert_eq!(xs.read_string("domid").unwrap(), info.domid.0.to_string());
    // dom0 agrees, through its real xenstore-read and the PV console link.
    assert_eq!(
        host("xenstore-read", &[&abs("domid")]),
        [info.domid.0.to_string()]
    );
    // What xl gave us: the store's own port and ring are in our home.
    assert!(xs.read_parsed::<u32>("store/port").unwrap() > 0);
    assert!(matches!(xs.read("no-such-node"), Err(XsError::Enoent(_))));
}

fn writes_reads_lists_and_removes_in_its_own_tree() {
    let xs = client();
    xs.write("data/ktest/a", "1").unwrap();
    xs.write_display("data/ktest/b", 42).unwrap();
    xs.write("data/ktest/bin", [0u8, 0xff, b'\n']).unwrap();
    xs.mkdir("data/ktest/empty").unwrap();
    assert_eq!(xs.read_string("data/ktest/a").unwrap(), "1");
    assert_eq!(xs.read_parsed::<u32>("data/ktest/b").unwrap(), 42);
    assert_eq!(xs.read("data/ktest/bin").unwrap(), [0u8, 0xff, b'\n']);
    assert_eq!(xs.read("data/ktest/empty").unwrap(), b"");
    let mut names = xs.directory("data/ktest").unwrap();
    names.sort();
    assert_eq!(names, ["a", "b", "bin", "empty"]);
    assert_eq!(host("xenstore-read", &[&abs("data/ktest/b")]), ["42"]);
    xs.rm("data/ktest/a").unwrap();
    assert!(!xs.exists("data/ktest/a").unwrap());
    xs.rm_tree("data/ktest").unwrap();
    assert!(!xs.exists("data/ktest").unwrap());
    // Outside its tree the guest is refused by the real daemon's permissions.
    let e = xs.write("/local/domain/0/ktest-intruder", "x").unwrap_err();
    assert!(matches!(e, XsError::Eacces(_)), "{e:?}");
}

fn transactions_commit_whole_or_not_at_all() {
    let xs = client();
    xs.transaction(|t| {
        t.write("data/tx/first", "1")?;
        t.write("data/tx/second", "2")
    })
    .unwrap();
    assert_eq!(xs.read_string("data/tx/first").unwrap(), "1");
    assert_eq!(host("xenstore-read", &[&abs("data/tx/second")]), ["2"]);

    ktests::support::assert_aborted_transactions_apply_nothing(&xs);
    xs.rm_tree("data/tx").unwrap();
}

fn its_own_write_fires_its_watch() {
    let xs = client();
    let events = Recorder::new();
    let watch = xs.watch("data/own", events.callback()).unwrap();
    // The daemon fires every new watch once.
    events.expect_path("data/own", WAIT);
    xs.write("data/own/x", "1").unwrap();
    events.expect_path("data/own/x", WAIT);
    watch.unwatch().unwrap();
    xs.rm_tree("data/own").unwrap();
}

fn a_dom0_xenstore_write_fires_the_guest_watch() {
    let xs = client();
    let events = Recorder::new();
    let watch = xs.watch("data/from-dom0", events.callback()).unwrap();
    events.expect_path("data/from-dom0", WAIT);
    host(
        "xenstore-write",
        &[&abs("data/from-dom0/greeting"), "hello guest"],
    );
    events.expect_path("data/from-dom0/greeting", WAIT);
    assert_eq!(
        xs.read_string("data/from-dom0/greeting").unwrap(),
        "hello guest"
    );
    watch.unwatch().unwrap();
    xs.rm_tree("data/from-dom0").unwrap();
}

fn dom0_lists_data_and_vm_data_with_xenstore_ls() {
    let xs = client();
    xs.write("data/ls-probe", "green").unwrap();
    // vm-data/ is the toolstack's to write; the guest reads it.
    host("xenstore-write", &[&abs("vm-data/ls-probe"), "blue"]);
    assert_eq!(xs.read_string("vm-data/ls-probe").unwrap(), "blue");
    let data: String = host("xenstore-ls", &[&abs("data")]).concat();
    assert!(
        data.lines().any(|l| l.trim() == "ls-probe = \"green\""),
        "xenstore-ls data:\n{data}"
    );
    let vm_data: String = host("xenstore-ls", &[&abs("vm-data")]).concat();
    assert!(
        vm_data.lines().any(|l| l.trim() == "ls-probe = \"blue\""),
        "xenstore-ls vm-data:\n{vm_data}"
    );
    xs.rm("data/ls-probe").unwrap();
}

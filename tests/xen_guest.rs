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

use ::xenstore::{Store, XsError};
use alloc::vec;
use kernel::time::Instant;
use kernel::vchan::{Vchan, VchanError};
use kernel::xenstore_service::{self, PlatformKind};
use ktests::support::crc32::Crc32;
use ktests::support::{Recorder, abs, client, host};
use xen::DomId;
use xen::io::vchan::Liveness;

ktests::config!(role = "xen", timeout_secs = 600);
ktests::main!(
    attaches_to_xenstored_through_the_hvm_params,
    writes_reads_lists_and_removes_in_its_own_tree,
    transactions_commit_whole_or_not_at_all,
    its_own_write_fires_its_watch,
    a_dom0_xenstore_write_fires_the_guest_watch,
    dom0_lists_data_and_vm_data_with_xenstore_ls,
    vchan_server_receives_from_dom0_vchan_socket_proxy,
    vchan_server_sends_to_dom0_vchan_socket_proxy,
    vchan_client_receives_from_dom0_vchan_socket_proxy_server,
    vchan_client_sends_to_dom0_vchan_socket_proxy_server,
    vchan_a_dom0_proxy_killed_mid_transfer_is_reported,
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

/// Bytes each vchan test moves: a few MiB, enough to wrap every ring many
/// times, few enough for this bed (TCG, shared cores).
const VCHAN_BYTES: usize = 4 << 20;

fn vchan_path(name: &str) -> String {
    abs(&format!("data/vchan-{name}"))
}

/// Reads exactly `len` bytes (dom0's proxy never signals the end of its
/// input); returns their sum and logs the throughput (a benchmark line,
/// not an assertion). A failure report carries the proxy's state.
fn receive(v: &Vchan, len: usize, what: &str, proxy: &str) -> Crc32 {
    let start = Instant::now();
    let mut sum = Crc32::new();
    let mut buf = vec![0u8; 64 << 10];
    while (sum.len() as usize) < len {
        let want = buf.len().min(len - sum.len() as usize);
        let n = match v.read(&mut buf[..want], Some(WAIT)) {
            Ok(0) => panic!(
                "end of stream after {} bytes; dom0's proxy: {:?}",
                sum.len(),
                host("vchan-status", &[proxy])
            ),
            Ok(n) => n,
            Err(e) => panic!(
                "vchan read after {} bytes: {e}; dom0's proxy: {:?}",
                sum.len(),
                host("vchan-status", &[proxy])
            ),
        };
        sum.update(&buf[..n]);
    }
    log_rate(what, v, sum.len(), start);
    sum
}

/// Writes `data`, then waits until the peer consumed it all.
fn send(v: &Vchan, data: &[u8], what: &str) {
    let start = Instant::now();
    for chunk in data.chunks(5000) {
        v.write_all(chunk, Some(WAIT)).expect("vchan write");
    }
    v.flush(Some(WAIT)).expect("dom0 reads everything");
    log_rate(what, v, data.len() as u64, start);
}

fn log_rate(what: &str, v: &Vchan, bytes: u64, start: Instant) {
    let us = start.elapsed().as_micros().max(1) as u64;
    let kib_per_s = bytes * 1_000_000 / 1024 / us;
    let (left, right) = v.ring_sizes();
    log::info!("bench: {what}_kib_per_s={kib_per_s} ({bytes} bytes, rings {left}/{right})");
}

/// The same bytes every run: a failure names a reproducible stream.
fn pattern(len: usize) -> alloc::vec::Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn crc_of(data: &[u8]) -> String {
    let mut sum = Crc32::new();
    sum.update(data);
    sum.hex()
}

fn vchan_server_receives_from_dom0_vchan_socket_proxy() {
    assert_eq!(
        crc_of(b"123456789"),
        "cbf43926",
        "the sum is busybox's crc32"
    );
    let domid = client().read_string("domid").unwrap();
    let path = vchan_path("in");
    let bulk = kernel::vchan::BULK_RING_BYTES;
    let v = Vchan::server(DomId::DOM0, &path, bulk, bulk).expect("vchan server");
    assert_eq!(v.ring_sizes(), (bulk, bulk), "granted pages of their own");
    // dom0 sends random bytes from a file through its unmodified proxy.
    let size = VCHAN_BYTES.to_string();
    let sent = host("vchan-send", &["in", &domid, &path, &size]);
    v.wait_connected(Some(WAIT)).expect("dom0's proxy connects");
    let got = receive(&v, VCHAN_BYTES, "vchan_dom0_to_guest_server", "in");
    assert_eq!([got.hex()], sent.as_slice(), "crc32 of what dom0 sent");
    v.close();
    assert_eq!(host("vchan-wait", &["in"]), ["0"], "the proxy exits 0");
    assert!(
        matches!(
            client().read(&format!("{path}/ring-ref")),
            Err(XsError::Enoent(_))
        ),
        "closing the server removes its keys"
    );
}

fn vchan_server_sends_to_dom0_vchan_socket_proxy() {
    let domid = client().read_string("domid").unwrap();
    let path = vchan_path("out");
    let v = Vchan::server(DomId::DOM0, &path, 0, 0).expect("vchan server");
    assert_eq!(v.ring_sizes(), (1024, 2048), "libxenvchan's in-page rings");
    host("vchan-recv", &["out", &domid, &path, "client"]);
    v.wait_connected(Some(WAIT)).expect("dom0's proxy connects");
    // 1 MiB: the 2 KiB ring makes this direction the slow one on this bed.
    let data = pattern(VCHAN_BYTES / 4);
    send(&v, &data, "vchan_guest_server_to_dom0");
    // The proxy sees the close, writes out what it has and exits.
    v.close();
    assert_eq!(
        host("vchan-wait", &["out"]),
        [
            "0".to_string(),
            crc_of(&data),
            (VCHAN_BYTES / 4).to_string()
        ],
        "proxy status, crc32 and size of what dom0 received"
    );
}

fn vchan_client_receives_from_dom0_vchan_socket_proxy_server() {
    let domid = client().read_string("domid").unwrap();
    let path = format!("/local/domain/0/data/vchan-ktest-{domid}-in");
    // dom0's proxy offers random bytes as a libxenvchan server (in-page
    // rings); the reply comes once its keys are written.
    let size = VCHAN_BYTES.to_string();
    let sent = host("vchan-serve", &["serve", &domid, &path, &size]);
    let v = Vchan::client(DomId::DOM0, &path).expect("vchan client connects");
    assert_eq!(v.ring_sizes(), (1024, 2048));
    let got = receive(
        &v,
        VCHAN_BYTES,
        "vchan_dom0_server_to_guest_client",
        "serve",
    );
    assert_eq!([got.hex()], sent.as_slice(), "crc32 of what dom0 served");
    v.close();
    assert_eq!(host("vchan-wait", &["serve"]), ["0"], "the proxy exits 0");
}

fn vchan_client_sends_to_dom0_vchan_socket_proxy_server() {
    let domid = client().read_string("domid").unwrap();
    let path = format!("/local/domain/0/data/vchan-ktest-{domid}-out");
    host("vchan-recv", &["sink", &domid, &path, "server"]);
    let v = Vchan::client(DomId::DOM0, &path).expect("vchan client connects");
    let data = pattern(VCHAN_BYTES / 4);
    send(&v, &data, "vchan_guest_client_to_dom0_server");
    v.close();
    assert_eq!(
        host("vchan-wait", &["sink"]),
        [
            "0".to_string(),
            crc_of(&data),
            (VCHAN_BYTES / 4).to_string()
        ],
        "proxy status, crc32 and size of what dom0 received"
    );
}

fn vchan_a_dom0_proxy_killed_mid_transfer_is_reported() {
    let domid = client().read_string("domid").unwrap();
    let path = vchan_path("killed");
    let v = Vchan::server(DomId::DOM0, &path, 0, 0).expect("vchan server");
    host("vchan-recv", &["killed", &domid, &path, "client"]);
    v.wait_connected(Some(WAIT)).expect("dom0's proxy connects");
    let data = pattern(64 << 10);
    v.write_all(&data, Some(WAIT))
        .expect("the first 64 KiB cross");
    v.flush(Some(WAIT)).expect("dom0 reads them");
    host("vchan-kill", &["killed"]);
    // Linux's gntdev clears the dead client's liveness byte and signals:
    // the writer is told, instead of waiting for room forever.
    let err = loop {
        if let Err(e) = v.write_all(&data, Some(WAIT)) {
            break e;
        }
    };
    assert!(matches!(err, VchanError::PeerClosed), "{err}");
    assert_eq!(v.peer(), Liveness::Gone);
    let mut buf = [0u8; 16];
    assert_eq!(v.read(&mut buf, Some(WAIT)).unwrap(), 0, "end of stream");
    assert_eq!(v.try_read(&mut buf).unwrap(), 0);
    v.close();
}

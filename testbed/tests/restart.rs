//! restart_daemon: the "migration" of issue 5. A fresh daemon on the same
//! socket, the same domains re-introduced with the same pages.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use testbed::Testbed;
use testbed::wire::ty;

const T: Duration = Duration::from_secs(10);

#[test]
fn a_restarted_daemon_serves_the_same_domains_on_the_same_pages() {
    let tb = Testbed::start().unwrap();
    let dom1 = tb.introduce_domain(1).unwrap();
    let dom2 = tb.introduce_domain(2).unwrap();
    assert_eq!(
        dom1.request(ty::WRITE, b"data/before\0x", T)
            .unwrap()
            .text(),
        "OK"
    );
    let socket = tb.socket_path();
    let old_pid = tb.daemon_pid().unwrap();

    tb.restart_daemon().unwrap();

    assert_ne!(tb.daemon_pid().unwrap(), old_pid, "a new process");
    assert_eq!(tb.socket_path(), socket, "same socket");
    // The store is fresh: the old node is gone, the home is back.
    let gone = dom1.request(ty::READ, b"data/before\0", T).unwrap();
    assert_eq!(gone.error().as_deref(), Some("ENOENT"));
    for (dom, id) in [(&dom1, "1"), (&dom2, "2")] {
        // Same Domain handle, same page, same event channel: still served,
        // with the ring indexes carried over from the first daemon.
        assert_eq!(dom.request(ty::READ, b"domid\0", T).unwrap().text(), id);
        assert_eq!(
            dom.request(ty::WRITE, b"data/after\0y", T).unwrap().text(),
            "OK"
        );
    }
    // And the host side works against the new daemon.
    let out = tb.cli("read", &["/local/domain/2/data/after"]).unwrap();
    assert_eq!(out.into_stdout().unwrap(), "y\n");
}

#[test]
fn restart_recovers_from_a_dead_daemon() {
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(3).unwrap();
    let pid = tb.daemon_pid().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let deadline = std::time::Instant::now() + T;
    while tb.check_daemon().is_ok() {
        assert!(std::time::Instant::now() < deadline, "death not noticed");
        std::thread::sleep(Duration::from_millis(10));
    }
    tb.restart_daemon().unwrap();
    tb.check_daemon().unwrap();
    assert_eq!(dom.request(ty::READ, b"domid\0", T).unwrap().text(), "3");
}

//! Every client operation against the REAL Xen xenstored (run by the
//! testbed), over both transports: its unix socket as dom0 (privileged), and
//! a domain's ring page as guest 1 (unprivileged).

// The package is xenstore-client; its code and its users' code in this
// repository call it `xenstore`.
extern crate xenstore_client as xenstore;

mod support;

use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::Duration;

use support::real::{ring_client, socket_client, start_testbed};
use testbed::Testbed;
use xenstore::{
    Access, Client, Config, DomId, Permissions, Request, StdPlatform, Store, WatchEvent, XsError,
};

const WAIT: Duration = Duration::from_secs(10);

/// A client of each kind on one daemon: (dom0 over the socket, its scratch
/// directory) and (guest 1 over its ring, its scratch directory).
struct Both {
    tb: Testbed,
    host: Client<StdPlatform>,
    guest: Client<StdPlatform>,
}

impl Both {
    fn start() -> Both {
        let tb = start_testbed();
        let dom = Arc::new(tb.introduce_domain(1).unwrap());
        let host = socket_client(&tb, Config::default());
        let guest = ring_client(dom, Config::default());
        Both { tb, host, guest }
    }

    /// (client, its domid, a directory it may write, absolute).
    fn each(&self) -> [(&Client<StdPlatform>, DomId, &'static str); 2] {
        [
            (&self.host, DomId(0), "/test"),
            (&self.guest, DomId(1), "/local/domain/1/data/test"),
        ]
    }
}

/// Node operations: read (bytes, string, typed), write (bytes, Display),
/// mkdir, directory, exists, read_optional, rm, rm_tree, and each one's
/// result checked through another operation.
fn node_operations(xs: &Client<StdPlatform>, base: &str) {
    let p = |s: &str| format!("{base}/{s}");
    xs.write(&p("a"), "hello").unwrap();
    assert_eq!(xs.read(&p("a")).unwrap(), b"hello");
    assert_eq!(xs.read_string(&p("a")).unwrap(), "hello");
    xs.write_display(&p("n"), 42).unwrap();
    assert_eq!(xs.read_parsed::<u32>(&p("n")).unwrap(), 42);
    assert!(matches!(
        xs.read_parsed::<u32>(&p("a")),
        Err(XsError::Parse { .. })
    ));
    xs.write(&p("empty"), "").unwrap();
    assert_eq!(xs.read(&p("empty")).unwrap(), b"");
    xs.mkdir(&p("d/e")).unwrap();
    assert_eq!(xs.read(&p("d/e")).unwrap(), b"", "mkdir makes empty nodes");
    let mut names = xs.directory(base).unwrap();
    names.sort();
    assert_eq!(names, ["a", "d", "empty", "n"]);
    assert!(xs.directory(&p("d/e")).unwrap().is_empty());
    assert!(xs.exists(&p("d/e")).unwrap());
    assert!(!xs.exists(&p("nope")).unwrap());
    assert!(matches!(xs.read(&p("nope")), Err(XsError::Enoent(_))));
    assert_eq!(xs.read_optional(&p("nope")).unwrap(), None);
    assert_eq!(xs.read_optional(&p("a")).unwrap(), Some(b"hello".to_vec()));
    xs.rm(&p("a")).unwrap();
    assert!(!xs.exists(&p("a")).unwrap());
    xs.write(&p("d/e/f/g"), "deep").unwrap();
    xs.rm_tree(&p("d")).unwrap();
    assert!(!xs.exists(&p("d")).unwrap());
    // Removing what is not there is fine while its parent exists (the
    // daemon's rule); under a missing parent it is ENOENT, typed.
    xs.rm(&p("d")).unwrap();
    assert!(matches!(xs.rm(&p("d/e")), Err(XsError::Enoent(_))));
}

#[test]
fn node_operations_over_both_transports() {
    let both = Both::start();
    for (xs, _, base) in both.each() {
        node_operations(xs, base);
    }
    // A guest's relative paths are under its home.
    both.guest.write("data/rel", "r").unwrap();
    assert_eq!(both.host.read("/local/domain/1/data/rel").unwrap(), b"r");
    assert_eq!(both.guest.read("domid").unwrap(), b"1");
}

#[test]
fn gather_and_read_many_over_both_transports() {
    let both = Both::start();
    for (xs, _, base) in both.each() {
        let (a, b, missing) = (
            format!("{base}/a"),
            format!("{base}/b"),
            format!("{base}/missing"),
        );
        xs.write(&a, "1").unwrap();
        xs.write(&b, "2").unwrap();
        assert_eq!(
            xs.gather(&[&a, &b]).unwrap(),
            [b"1".to_vec(), b"2".to_vec()]
        );
        assert!(matches!(
            xs.gather(&[&a, &missing]),
            Err(XsError::Enoent(_))
        ));
        // read_many: one result per path, in order, errors in place.
        let paths: Vec<&str> = (0..40)
            .map(|i| [a.as_str(), missing.as_str(), b.as_str()][i % 3])
            .collect();
        let got = xs.read_many(&paths);
        assert_eq!(got.len(), 40);
        for (i, r) in got.iter().enumerate() {
            match i % 3 {
                0 => assert_eq!(r.as_deref().unwrap(), b"1"),
                1 => assert!(matches!(r, Err(XsError::Enoent(_))), "{r:?}"),
                _ => assert_eq!(r.as_deref().unwrap(), b"2"),
            }
        }
    }
}

#[test]
fn transactions_commit_abort_and_helper_over_both_transports() {
    let both = Both::start();
    for (xs, _, base) in both.each() {
        let node = format!("{base}/tx");
        xs.write(&node, "0").unwrap();
        // Commit: invisible outside until committed.
        let t = xs.transaction_start().unwrap();
        assert_ne!(t.id(), 0);
        t.write(&node, "1").unwrap();
        assert_eq!(t.read(&node).unwrap(), b"1");
        assert_eq!(xs.read(&node).unwrap(), b"0", "isolated until commit");
        t.commit().unwrap();
        assert_eq!(xs.read(&node).unwrap(), b"1");
        // Abort: nothing happened.
        let t = xs.transaction_start().unwrap();
        t.write(&node, "2").unwrap();
        t.mkdir(&format!("{base}/tx-dir")).unwrap();
        t.abort().unwrap();
        assert_eq!(xs.read(&node).unwrap(), b"1");
        assert!(!xs.exists(&format!("{base}/tx-dir")).unwrap());
        // The helper: the body's value is returned once committed.
        let n = xs
            .transaction(|t| {
                let n: u32 = t.read_parsed(&node)?;
                t.write_display(&node, n + 10)?;
                Ok(n + 10)
            })
            .unwrap();
        assert_eq!(n, 11);
        assert_eq!(xs.read_string(&node).unwrap(), "11");
        // An error from the body aborts and is returned as is.
        let err = xs
            .transaction(|t| {
                t.write(&node, "never")?;
                t.read(&format!("{base}/missing"))
            })
            .unwrap_err();
        assert!(matches!(err, XsError::Enoent(_)), "{err:?}");
        assert_eq!(xs.read_string(&node).unwrap(), "11");
    }
}

#[test]
fn permissions_and_domain_paths_over_both_transports() {
    let both = Both::start();
    for (xs, me, base) in both.each() {
        let node = format!("{base}/perm");
        xs.write(&node, "x").unwrap();
        assert_eq!(xs.get_permissions(&node).unwrap().owner, me);
        let wanted = Permissions::new(me, Access::Read).grant(0, Access::Both);
        xs.set_permissions(&node, &wanted).unwrap();
        assert_eq!(xs.get_permissions(&node).unwrap(), wanted);
        assert_eq!(xs.get_domain_path(DomId(1)).unwrap(), "/local/domain/1");
        assert_eq!(xs.get_domain_path(DomId(7)).unwrap(), "/local/domain/7");
    }
    // Permissions really apply: the guest reads dom0's node once granted.
    both.host.write("/shared", "s").unwrap();
    assert!(matches!(
        both.guest.read("/shared"),
        Err(XsError::Eacces(_))
    ));
    both.host
        .set_permissions(
            "/shared",
            &Permissions::new(0, Access::None).grant(1, Access::Read),
        )
        .unwrap();
    assert_eq!(both.guest.read("/shared").unwrap(), b"s");
    assert!(matches!(
        both.guest.write("/shared", "no"),
        Err(XsError::Eacces(_))
    ));
}

#[test]
fn reset_watches_drops_the_daemons_watches_over_both_transports() {
    let both = Both::start();
    for (xs, _, base) in both.each() {
        // A watch the daemon holds for this connection but the client does
        // not know (as a previous kernel on the same ring would leave).
        let stale = Request::Watch {
            path: base,
            token: "stale",
        };
        xs.raw_request(&stale).unwrap();
        assert!(matches!(xs.raw_request(&stale), Err(XsError::Eexist(_))));
        xs.reset_watches().unwrap();
        // Gone: registering it again is no longer a duplicate.
        xs.raw_request(&stale).unwrap();
        xs.reset_watches().unwrap();
        // With a watch of its own registered, the client refuses.
        let w = xs.watch(base, |_| {}).unwrap();
        assert!(matches!(xs.reset_watches(), Err(XsError::InvalidState(_))));
        w.unwatch().unwrap();
    }
}

#[test]
fn watches_fire_on_both_transports() {
    let both = Both::start();
    for (xs, _, _) in both.each() {
        let (tx, rx) = channel();
        let w = xs
            .watch("/local/domain/1/data", move |e| tx.send(e.clone()).unwrap())
            .unwrap();
        // The initial event on registration.
        let first = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(
            first,
            WatchEvent::Changed {
                path: "/local/domain/1/data".into()
            }
        );
        // One event per change, for children too, and none more.
        both.host.write("/local/domain/1/data/x", "1").unwrap();
        both.host.write("/local/domain/1/data/x/y", "2").unwrap();
        let got: Vec<_> = (0..2).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
        assert_eq!(
            got.iter().map(|e| e.path().unwrap()).collect::<Vec<_>>(),
            ["/local/domain/1/data/x", "/local/domain/1/data/x/y"]
        );
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        w.unwatch().unwrap();
        both.host.write("/local/domain/1/data/x", "2").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    }
}

/// A transaction whose node the real `xenstore-write` changes meanwhile:
/// the commit says EAGAIN; the helper retries the body and succeeds.
#[test]
fn transaction_conflicting_with_the_cli_gets_eagain_and_the_helper_retries() {
    let both = Both::start();
    for (xs, _, base) in both.each() {
        let node = format!("{base}/v");
        xs.write(&node, "0").unwrap();
        let cli_write = |value: &str| {
            both.tb
                .cli("write", &[&node, value])
                .unwrap()
                .into_stdout()
                .unwrap();
        };
        let t = xs.transaction_start().unwrap();
        let v: u32 = t.read_parsed(&node).unwrap();
        cli_write("50");
        t.write_display(&node, v + 1).unwrap();
        assert!(matches!(t.commit(), Err(XsError::Eagain(_))));
        assert_eq!(xs.read_string(&node).unwrap(), "50", "the CLI's write won");

        let mut attempts = 0;
        xs.transaction(|t| {
            attempts += 1;
            let v: u32 = t.read_parsed(&node)?;
            if attempts == 1 {
                cli_write("100");
            }
            t.write_display(&node, v + 1)
        })
        .unwrap();
        assert_eq!(attempts, 2, "one conflict, one retry");
        assert_eq!(xs.read_string(&node).unwrap(), "101");
    }
}

/// The helper's retry bound: a body that conflicts on every attempt is run
/// exactly `Config::transaction_attempts` times, and the last EAGAIN comes
/// back (nothing applied).
#[test]
fn transaction_helper_gives_up_after_its_attempt_bound_with_the_last_eagain() {
    let tb = start_testbed();
    let config = Config {
        transaction_attempts: 3,
        ..Config::default()
    };
    let xs = socket_client(&tb, config);
    let other = socket_client(&tb, Config::default());
    xs.write("/bound/v", "0").unwrap();
    let mut attempts = 0;
    let result = xs.transaction(|t| {
        attempts += 1;
        let v: u32 = t.read_parsed("/bound/v")?;
        // A conflicting write on another connection, every time.
        other.write_display("/bound/v", 100 + attempts).unwrap();
        t.write_display("/bound/v", v + 1)
    });
    assert!(matches!(result, Err(XsError::Eagain(_))), "{result:?}");
    assert_eq!(attempts, 3);
    assert_eq!(
        xs.read_string("/bound/v").unwrap(),
        "103",
        "no attempt applied"
    );
}

/// Four threads incrementing one counter in transactions, each on its own
/// connection and all on one shared client: commits that lose a race get
/// EAGAIN and the helper runs them again until they win, so every
/// increment lands and none comes back as an error. (Without back-off the
/// same thread could lose 16 races in a row and the helper gave up.)
#[test]
fn transactions_contending_for_one_node_all_commit() {
    const THREADS: u32 = 4;
    const INCREMENTS: u32 = 50;
    let tb = start_testbed();
    let shared = socket_client(&tb, Config::default());
    shared.write("/contended/v", "0").unwrap();
    let clients: Vec<_> = (0..THREADS)
        .map(|i| {
            if i % 2 == 0 {
                shared.clone()
            } else {
                socket_client(&tb, Config::default())
            }
        })
        .collect();
    let workers: Vec<_> = clients
        .into_iter()
        .map(|xs| {
            std::thread::spawn(move || {
                for _ in 0..INCREMENTS {
                    xs.transaction(|t| {
                        let n: u32 = t.read_parsed("/contended/v")?;
                        t.write_display("/contended/v", n + 1)
                    })?;
                }
                Ok::<(), XsError>(())
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap().expect("every transaction commits");
    }
    let total: u32 = shared.read_parsed("/contended/v").unwrap();
    assert_eq!(total, THREADS * INCREMENTS);
}

/// A listing too long for one reply: the daemon answers E2BIG to a plain
/// DIRECTORY, and `directory()` pages it with DIRECTORY_PART. The guest
/// reads a dom0 directory made readable to it (its own could not grow so
/// large: the node-size quota caps a guest's directory first).
#[test]
fn large_directory_is_paged_over_both_transports() {
    let both = Both::start();
    let names: Vec<String> = (0..400)
        .map(|i| format!("child-with-a-long-name-{i:04}"))
        .collect();
    both.host.write("/big", "").unwrap();
    both.host
        .set_permissions("/big", &Permissions::new(0, Access::Read))
        .unwrap();
    both.host
        .transaction(|t| {
            names
                .iter()
                .try_for_each(|n| t.write(&format!("/big/{n}"), ""))
        })
        .unwrap();
    for (xs, _, _) in both.each() {
        assert!(matches!(
            xs.raw_request(&Request::Directory("/big")),
            Err(XsError::E2big(_))
        ));
        let mut got = xs.directory("/big").unwrap();
        got.sort();
        assert_eq!(got, names);
    }
}

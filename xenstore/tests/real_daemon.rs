//! Our client against the REAL Xen xenstored (run by the testbed): over its
//! unix socket as dom0, and over a domain's ring page as guest 1.

mod support;

use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::Duration;

use support::real::{ring_client, socket_client, start_testbed};
use xenstore::{
    Access, Client, Config, Permissions, Request, StdPlatform, Store, WatchEvent, XsError,
};

const WAIT: Duration = Duration::from_secs(10);

fn exercise_basic_operations(xs: &Client<StdPlatform>, base: &str) {
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
    xs.mkdir(&p("d/e")).unwrap();
    let mut names = xs.directory(base).unwrap();
    names.sort();
    assert_eq!(names, ["a", "d", "n"]);
    assert!(xs.exists(&p("d/e")).unwrap());
    assert!(!xs.exists(&p("nope")).unwrap());
    assert!(matches!(xs.read(&p("nope")), Err(XsError::Enoent(_))));
    assert_eq!(xs.read_optional(&p("nope")).unwrap(), None);
    let all = xs.gather(&[&p("a"), &p("n")]).unwrap();
    assert_eq!(all, [b"hello".to_vec(), b"42".to_vec()]);
    xs.rm(&p("a")).unwrap();
    assert!(!xs.exists(&p("a")).unwrap());
    xs.rm_tree(&p("d")).unwrap();
    assert!(!xs.exists(&p("d")).unwrap());
}

#[test]
fn socket_client_basic_operations() {
    let tb = start_testbed();
    let xs = socket_client(&tb, Config::default());
    exercise_basic_operations(&xs, "/test");
    assert_eq!(xs.get_domain_path(3).unwrap(), "/local/domain/3");
}

#[test]
fn ring_client_basic_operations_and_access_control() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let xs = ring_client(Arc::clone(&dom), Config::default());
    exercise_basic_operations(&xs, "/local/domain/1/data");
    // Relative paths are under the guest's home.
    xs.write("data/rel", "r").unwrap();
    assert_eq!(xs.read("/local/domain/1/data/rel").unwrap(), b"r");
    // Outside its home the guest may not write.
    assert!(matches!(
        xs.write("/local/domain/0/x", "no"),
        Err(XsError::Eacces(_))
    ));
    let perms = xs.get_permissions("data/rel").unwrap();
    assert_eq!(perms.owner, 1);
    xs.set_permissions("data/rel", &Permissions::new(1, Access::Read))
        .unwrap();
    assert_eq!(xs.get_permissions("data/rel").unwrap().others, Access::Read);
}

#[test]
fn watches_fire_on_both_transports() {
    let tb = start_testbed();
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    let host = socket_client(&tb, Config::default());
    let guest = ring_client(Arc::clone(&dom), Config::default());
    for xs in [&host, &guest] {
        let (tx, rx) = channel();
        let w = xs
            .watch("/local/domain/1/data", move |e| tx.send(e.clone()).unwrap())
            .unwrap();
        let first = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(
            first,
            WatchEvent::Changed {
                path: "/local/domain/1/data".into()
            }
        );
        host.write("/local/domain/1/data/x", "1").unwrap();
        let ev = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(ev.path(), Some("/local/domain/1/data/x"));
        w.unwatch().unwrap();
        host.write("/local/domain/1/data/x", "2").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    }
}

#[test]
fn transaction_conflict_is_retried() {
    let tb = start_testbed();
    let xs = socket_client(&tb, Config::default());
    xs.write("/t/v", "0").unwrap();
    let mut attempts = 0;
    xs.transaction(|t| {
        attempts += 1;
        let v: u32 = t.read_parsed("/t/v")?;
        if attempts == 1 {
            // A concurrent writer (the real CLI) changes it under us.
            tb.cli("write", &["/t/v", "100"])
                .unwrap()
                .into_stdout()
                .unwrap();
        }
        t.write_display("/t/v", v + 1)
    })
    .unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(xs.read_string("/t/v").unwrap(), "101");
}

#[test]
fn large_directory_is_paged() {
    let tb = start_testbed();
    let xs = socket_client(&tb, Config::default());
    let names: Vec<String> = (0..400)
        .map(|i| format!("child-with-a-long-name-{i:04}"))
        .collect();
    xs.transaction(|t| {
        names
            .iter()
            .try_for_each(|n| t.write(&format!("/big/{n}"), ""))
    })
    .unwrap();
    // One reply cannot hold the listing: the plain request fails...
    assert!(matches!(
        xs.raw_request(&Request::Directory("/big")),
        Err(XsError::E2big(_))
    ));
    // ...and directory() pages it with DIRECTORY_PART.
    let mut got = xs.directory("/big").unwrap();
    got.sort();
    assert_eq!(got, names);
}

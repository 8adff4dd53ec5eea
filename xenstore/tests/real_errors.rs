//! Errors against the REAL xenstored: each daemon error surfaces as its
//! typed variant over both transports; bad paths and oversized payloads are
//! refused before sending; and the daemon's quotas, set low on purpose,
//! surface as what the 4.17 daemon really answers. It never sends EQUOTA
//! (that is oxenstored): past the nodes and transactions quotas it answers
//! ENOSPC, past the watches quota E2BIG (testbed/README.md).

// The package is xenstore-client; its code and its users' code in this
// repository call it `xenstore`.
extern crate xenstore_client as xenstore;

mod support;

use std::sync::Arc;

use support::real::{ring_client, socket_client, start_testbed, start_testbed_with};
use testbed::{Options, Quota, Testbed};
use xenstore::{Client, Config, PathError, Request, StdPlatform, Store, XsError};

fn guest(tb: &Testbed) -> Client<StdPlatform> {
    let dom = Arc::new(tb.introduce_domain(1).unwrap());
    ring_client(dom, Config::default())
}

#[test]
fn daemon_errors_surface_typed_over_both_transports() {
    let tb = start_testbed();
    let host = socket_client(&tb, Config::default());
    let guest = guest(&tb);
    host.write("/dom0-only", "x").unwrap();
    for (xs, base) in [(&host, "/h"), (&guest, "data")] {
        // ENOENT, with the operation and path in its context.
        match xs.read(&format!("{base}/no/such")) {
            Err(XsError::Enoent(ctx)) => {
                assert_eq!(
                    ctx.path.as_deref(),
                    Some(format!("{base}/no/such").as_str())
                )
            }
            other => panic!("expected ENOENT, got {other:?}"),
        }
        // EEXIST: the same watch token twice.
        let watch = Request::Watch {
            path: "/e",
            token: "dup",
        };
        xs.raw_request(&watch).unwrap();
        assert!(matches!(xs.raw_request(&watch), Err(XsError::Eexist(_))));
    }
    // EINVAL: the daemon refuses to remove the root (a guest is refused
    // earlier, for lack of permission on it).
    assert!(matches!(host.rm("/"), Err(XsError::Einval(_))));
    assert!(matches!(guest.rm("/"), Err(XsError::Eacces(_))));
    // EACCES: a guest outside its own tree, writing or reading.
    assert!(matches!(
        guest.write("/local/domain/0/x", "1"),
        Err(XsError::Eacces(_))
    ));
    assert!(matches!(guest.read("/dom0-only"), Err(XsError::Eacces(_))));
    assert!(matches!(guest.rm("/dom0-only"), Err(XsError::Eacces(_))));
}

#[test]
fn bad_paths_and_oversized_payloads_are_refused_before_sending() {
    let tb = start_testbed();
    let host = socket_client(&tb, Config::default());
    let guest = guest(&tb);
    for xs in [&host, &guest] {
        let replies = xs.stats().core.replies;
        for (path, reason) in [
            ("/a//b", PathError::DoubleSlash),
            ("/a/", PathError::TrailingSlash),
            ("", PathError::Empty),
            ("/a b", PathError::BadChar(b' ')),
        ] {
            match xs.write(path, "x") {
                Err(XsError::InvalidPath { reason: r, .. }) => assert_eq!(r, reason, "{path:?}"),
                other => panic!("{path:?}: expected InvalidPath, got {other:?}"),
            }
        }
        assert!(matches!(
            xs.read("@releaseDomain"),
            Err(XsError::InvalidPath {
                reason: PathError::SpecialNotAllowed,
                ..
            })
        ));
        // Over XENSTORE_PAYLOAD_MAX (4096) with the path and its NUL.
        match xs.write("/big", vec![b'x'; 5000]) {
            Err(XsError::PayloadTooLarge { len, .. }) => assert_eq!(len, "/big".len() + 1 + 5000),
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        assert_eq!(xs.stats().core.replies, replies, "nothing was sent");
    }
    // The limit is exact: dom0 (no node-size quota) may write a payload of
    // exactly 4096 bytes, not one more.
    let fits = 4096 - "/big".len() - 1;
    host.write("/big", vec![b'y'; fits]).unwrap();
    assert_eq!(host.read("/big").unwrap().len(), fits);
    assert!(matches!(
        host.write("/big", vec![b'y'; fits + 1]),
        Err(XsError::PayloadTooLarge { len: 4097, .. })
    ));
}

/// A relative path our client accepts (under 2048 bytes) but over the
/// daemon's path-max quota, set low: the daemon's EINVAL, typed.
#[test]
fn a_path_over_the_daemons_path_max_quota_is_its_einval() {
    let tb = start_testbed_with(Options::new().quota(Quota::PathMax(64)));
    let guest = guest(&tb);
    let long = format!("data/{}", "p".repeat(100));
    assert!(matches!(guest.write(&long, "x"), Err(XsError::Einval(_))));
    guest.write("data/short", "x").unwrap();
}

/// Quotas apply to unprivileged domains: the guest on its ring.
#[test]
fn quotas_set_low_surface_as_the_errors_the_4_17_daemon_sends() {
    let tb = start_testbed_with(
        Options::new()
            .quota(Quota::Nodes(30))
            .quota(Quota::Watches(3))
            .quota(Quota::Transactions(3)),
    );
    let guest = guest(&tb);

    // Nodes: ENOSPC once the domain owns its quota of nodes.
    let mut written = 0;
    let err = loop {
        match guest.write(&format!("data/n{written}"), "x") {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written <= 30, "no nodes quota hit");
    };
    assert!(matches!(err, XsError::Enospc(_)), "{err:?}");
    assert!(written > 0);
    // Freeing nodes makes room again.
    guest.rm("data/n0").unwrap();
    guest.write("data/again", "x").unwrap();

    // Watches: E2BIG (the daemon allows one more than the quota).
    let mut watches = Vec::new();
    let err = loop {
        match guest.watch(&format!("data/w{}", watches.len()), |_| {}) {
            Ok(w) => watches.push(w),
            Err(e) => break e,
        }
        assert!(watches.len() <= 4, "no watches quota hit");
    };
    assert!(matches!(err, XsError::E2big(_)), "{err:?}");
    assert!(watches.len() >= 3);
    // The refused watch left nothing behind: one removed, one fits again.
    watches.pop().unwrap().unwatch().unwrap();
    watches.push(guest.watch("data/w-again", |_| {}).unwrap());

    // Transactions: ENOSPC (the daemon allows one more than the quota).
    let mut open = Vec::new();
    let err = loop {
        match guest.transaction_start() {
            Ok(t) => open.push(t),
            Err(e) => break e,
        }
        assert!(open.len() <= 4, "no transactions quota hit");
    };
    assert!(matches!(err, XsError::Enospc(_)), "{err:?}");
    assert!(open.len() >= 3);
    open.pop().unwrap().abort().unwrap();
    open.push(guest.transaction_start().unwrap());
    // None of these is EQUOTA: the C daemon has no such answer.
    for t in open {
        t.abort().unwrap();
    }
}

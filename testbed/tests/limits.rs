//! The daemon's quotas and write-rate limiter as the testbed configures
//! them (numbers and reasoning in testbed/README.md). These assert which
//! error each limit produces, so tests elsewhere can trigger them on
//! purpose; none of them measures speed.

use std::time::Duration;

use testbed::wire::{nul_join, ty};
use testbed::{Domain, Options, Quota, Testbed};

const T: Duration = Duration::from_secs(10);

fn write(dom: &Domain, path: &str, value: &str) -> String {
    let mut payload = nul_join(&[path]);
    payload.extend_from_slice(value.as_bytes());
    let reply = dom.request(ty::WRITE, &payload, T).unwrap();
    reply.error().unwrap_or_else(|| reply.text())
}

fn owned_nodes(tb: &Testbed, domid: u32) -> u32 {
    let report = tb.control(&["quota", &domid.to_string()]).unwrap();
    report
        .lines()
        .find_map(|l| l.strip_prefix("nodes"))
        .and_then(|l| l.trim_start_matches([' ', ':']).trim().parse().ok())
        .unwrap_or_else(|| panic!("no node count in {report:?}"))
}

#[test]
fn the_node_quota_given_at_start_answers_enospc_at_the_limit() {
    let tb = Testbed::with_options(Options::new().quota(Quota::Nodes(20))).unwrap();
    let dom = tb.introduce_domain(1).unwrap();
    let mut created = owned_nodes(&tb, 1);
    while created < 20 {
        assert_eq!(write(&dom, &format!("data/n{created}"), "v"), "OK");
        created += 1;
    }
    // 4.17 says ENOSPC (not EQUOTA) for this quota.
    assert_eq!(write(&dom, "data/one-too-many", "v"), "ENOSPC");
    // Changing it at run time applies at once.
    tb.set_quota(Quota::Nodes(21)).unwrap();
    assert_eq!(write(&dom, "data/one-too-many", "v"), "OK");
    // dom0 is not limited.
    tb.cli("write", &["/local/domain/1/data/by-dom0", "v"])
        .unwrap()
        .into_stdout()
        .unwrap();
}

#[test]
fn the_other_quotas_answer_as_the_4_17_daemon_does() {
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(1).unwrap();

    // Watches: E2BIG once more than the quota are registered (the daemon
    // allows quota + 1).
    tb.set_quota(Quota::Watches(2)).unwrap();
    for i in 0..3 {
        let reply = dom
            .request(ty::WATCH, format!("data\0w{i}\0").as_bytes(), T)
            .unwrap();
        assert_eq!(reply.text(), "OK", "watch {i}");
    }
    let reply = dom.request(ty::WATCH, b"data\0w3\0", T).unwrap();
    assert_eq!(reply.error().as_deref(), Some("E2BIG"));

    // Transactions: ENOSPC, again after quota + 1.
    tb.set_quota(Quota::Transactions(1)).unwrap();
    for _ in 0..2 {
        let reply = dom.request(ty::TRANSACTION_START, b"\0", T).unwrap();
        assert!(reply.error().is_none(), "{}", reply.text());
    }
    let reply = dom.request(ty::TRANSACTION_START, b"\0", T).unwrap();
    assert_eq!(reply.error().as_deref(), Some("ENOSPC"));

    // Node size (path + value + permissions): ENOSPC for a guest...
    tb.set_quota(Quota::NodeSize(100)).unwrap();
    assert_eq!(write(&dom, "data/big", &"x".repeat(200)), "ENOSPC");
    assert_eq!(write(&dom, "data/small", "x"), "OK");
}

#[test]
fn a_directory_fills_up_at_the_node_size_limit() {
    // The children's names count towards their parent's size, so with the
    // default node-size (2048) a guest cannot create ~400 short-named
    // nodes in one directory: plan write-heavy tests across directories.
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(1).unwrap();
    let mut n = 0;
    let error = loop {
        let reply = write(&dom, &format!("data/n{n}"), "v");
        if reply != "OK" {
            break reply;
        }
        n += 1;
        assert!(n < 1000, "no limit reached");
    };
    assert_eq!(error, "ENOSPC");
    // Names "n0".."n424" plus their NULs fill about 2 KiB.
    let names: usize = (0..n).map(|i| format!("n{i}").len() + 1).sum();
    assert!(
        (1900..=2048).contains(&names),
        "{n} children, {names} bytes"
    );
}

/// The write-rate limiter ("wrl") is only armed while some transaction is
/// open anywhere; then a guest's writes beyond a burst of 10 put it in
/// debt and the daemon logs it (and stops reading its ring for a while).
#[test]
fn the_write_rate_limit_engages_only_while_a_transaction_is_open() {
    let affected = "write rate limit: domain 1 is affected";
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(1).unwrap();
    for i in 0..30 {
        assert_eq!(write(&dom, &format!("data/a{i}"), "v"), "OK");
    }
    let syslog = std::fs::read_to_string(tb.syslog_path()).unwrap_or_default();
    assert!(!syslog.contains(affected), "{syslog}");

    let mut xs = tb.connect().unwrap();
    let _tx = xs.request(ty::TRANSACTION_START, b"\0").unwrap();
    for i in 0..30 {
        assert_eq!(write(&dom, &format!("data/b{i}"), "v"), "OK");
    }
    let syslog = std::fs::read_to_string(tb.syslog_path()).unwrap_or_default();
    assert!(syslog.contains(affected), "{syslog}");
}

//! A domain introduced by the testbed, seen from the guest side: its ring
//! is served by the real daemon through the fake event channel, and the
//! daemon enforces the domain's permissions.

use std::time::Duration;

use testbed::page::offset;
use testbed::wire::{Message, nul_join, ty};
use testbed::{DomainConfig, DomainState, HomeLayout, Testbed};

const T: Duration = Duration::from_secs(10);

fn write_payload(path: &str, value: &str) -> Vec<u8> {
    let mut payload = nul_join(&[path]);
    payload.extend_from_slice(value.as_bytes());
    payload
}

#[test]
fn the_daemon_answers_a_request_on_the_ring_and_kicks_the_guest() {
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(1).unwrap();
    let page = dom.page();
    // A fresh ring as the 4.17 daemon leaves it.
    assert_eq!(page.read_u32(offset::CONNECTION).unwrap(), 0, "CONNECTED");
    dom.take_event().unwrap(); // forget the kick (if any) from introduction

    // Play the guest by hand: request bytes, producer index, kick.
    let request = Message::new(ty::GET_DOMAIN_PATH, 42, b"1\0").encode();
    let prod = page.read_u32(offset::REQ_PROD).unwrap();
    page.write_bytes(offset::REQ + (prod as usize % offset::RING_SIZE), &request)
        .unwrap();
    page.write_u32(offset::REQ_PROD, prod + request.len() as u32)
        .unwrap();
    dom.notify().unwrap();

    // The daemon must kick us back (event channel), then the reply is there.
    assert!(dom.wait_event(T).unwrap(), "no event from the daemon");
    let expected = Message::new(ty::GET_DOMAIN_PATH, 42, b"/local/domain/1\0").encode();
    let deadline = std::time::Instant::now() + T;
    while (page.read_u32(offset::RSP_PROD).unwrap() as usize) < expected.len() {
        assert!(std::time::Instant::now() < deadline, "no reply in the ring");
        dom.wait_event(Duration::from_millis(100)).unwrap();
    }
    let mut reply = vec![0u8; expected.len()];
    page.read_bytes(offset::RSP, &mut reply).unwrap();
    assert_eq!(reply, expected);
    assert_eq!(
        page.read_u32(offset::REQ_CONS).unwrap(),
        prod + request.len() as u32
    );
}

#[test]
fn the_home_is_set_up_as_a_toolstack_does() {
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(7).unwrap();
    let read = |path: &str| dom.request(ty::READ, &nul_join(&[path]), T).unwrap().text();
    assert_eq!(read("domid"), "7");
    assert_eq!(read("name"), "guest7");
    assert_eq!(read("store/port"), "1");
    assert_eq!(read("control/platform-feature-xs_reset_watches"), "1");
    let listing = dom.request(ty::DIRECTORY, b"/local/domain/7\0", T).unwrap();
    for child in ["domid", "name", "device", "control", "data", "store"] {
        assert!(
            listing
                .payload
                .split(|&b| b == 0)
                .any(|c| c == child.as_bytes()),
            "home lacks {child}: {}",
            listing.text()
        );
    }
    // Owned by the domain (OwnedByDomain layout), readable by nobody else.
    let perms = tb
        .cli("ls", &["-p", "/local/domain/7"])
        .unwrap()
        .into_stdout()
        .unwrap();
    assert!(perms.contains("domid = \"7\""), "{perms}");
    let home_perms = dom.request(ty::GET_PERMS, b"/local/domain/7\0", T).unwrap();
    assert_eq!(home_perms.text(), "n7");
}

#[test]
fn the_guest_writes_its_tree_and_gets_eacces_outside_it() {
    let tb = Testbed::start().unwrap();
    let _other = tb.introduce_domain(2).unwrap();
    let dom = tb.introduce_domain(1).unwrap();
    let write = |path: &str| {
        dom.request(ty::WRITE, &write_payload(path, "v"), T)
            .unwrap()
    };

    assert_eq!(write("data/mine").text(), "OK");
    assert_eq!(write("/local/domain/1/anywhere/in/home").text(), "OK");
    // The host sees it through the real CLI.
    let seen = tb.cli("read", &["/local/domain/1/data/mine"]).unwrap();
    assert_eq!(seen.into_stdout().unwrap(), "v\n");

    for outside in ["/tool/evil", "/local/domain/2/data/x", "/local/domain/evil"] {
        let reply = write(outside);
        assert_eq!(reply.error().as_deref(), Some("EACCES"), "write {outside}");
    }
    // The toolstack's own nodes are read-only for the guest.
    assert_eq!(write("domid").error().as_deref(), Some("EACCES"));
    // And another domain's tree is not readable either.
    let peek = dom.request(ty::READ, b"/local/domain/2/name\0", T).unwrap();
    assert_eq!(peek.error().as_deref(), Some("EACCES"));
}

#[test]
fn the_xl_layout_keeps_the_home_itself_read_only() {
    let tb = Testbed::start().unwrap();
    let mut config = DomainConfig::new(4);
    config.home = HomeLayout::Xl;
    let dom = tb.introduce_domain_with(config).unwrap();
    let write = |path: &str| {
        dom.request(ty::WRITE, &write_payload(path, "v"), T)
            .unwrap()
    };
    assert_eq!(write("newnode").error().as_deref(), Some("EACCES"));
    assert_eq!(write("device/vif").error().as_deref(), Some("EACCES"));
    assert_eq!(write("data/ok").text(), "OK");
    assert_eq!(write("control/shutdown").text(), "OK");
    // As libxl: the guest advertises what it handles in nodes it may write,
    // and nothing else under control/.
    for feature in [
        "feature-poweroff",
        "feature-reboot",
        "feature-suspend",
        "sysrq",
    ] {
        assert_eq!(
            write(&format!("control/{feature}")).text(),
            "OK",
            "{feature}"
        );
    }
    assert_eq!(
        write("control/feature-other").error().as_deref(),
        Some("EACCES")
    );
    let home = dom.request(ty::GET_PERMS, b"/local/domain/4\0", T).unwrap();
    assert_eq!(home.text(), "n0\0r4");
}

#[test]
fn a_host_write_fires_the_guests_watch() {
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(1).unwrap();
    let ok = dom
        .request(ty::WATCH, b"control/shutdown\0tok\0", T)
        .unwrap();
    assert_eq!(ok.text(), "OK");
    // Registration fires once at once...
    let first = dom.next_watch_event(T).unwrap();
    assert_eq!(first.payload, b"control/shutdown\0tok\0");
    // ...and a real xenstore-write from the host fires it again.
    tb.cli("write", &["/local/domain/1/control/shutdown", "poweroff"])
        .unwrap()
        .into_stdout()
        .unwrap();
    let fired = dom.next_watch_event(T).unwrap();
    assert_eq!(fired.ty, ty::WATCH_EVENT);
    assert_eq!((fired.req_id, fired.tx_id), (0, 0));
    assert_eq!(fired.payload, b"control/shutdown\0tok\0");
    let value = dom.request(ty::READ, b"control/shutdown\0", T).unwrap();
    assert_eq!(value.text(), "poweroff");
}

#[test]
fn a_guest_that_corrupts_its_ring_does_not_take_the_daemon_down() {
    let tb = Testbed::start().unwrap();
    let bad = tb.introduce_domain(1).unwrap();
    let good = tb.introduce_domain(2).unwrap();
    // A producer index 5000 bytes ahead of the consumer: impossible.
    let cons = bad.page().read_u32(offset::REQ_CONS).unwrap();
    bad.page()
        .write_u32(offset::REQ_PROD, cons.wrapping_add(5000))
        .unwrap();
    bad.notify().unwrap();
    // The daemon carries on serving the others.
    let reply = good.request(ty::READ, b"domid\0", T).unwrap();
    assert_eq!(reply.text(), "2");
    tb.check_daemon().unwrap();
    tb.cli("ls", &["/"]).unwrap().into_stdout().unwrap();
}

fn introduced(xs: &mut testbed::wire::SocketClient, domid: u32) -> bool {
    let reply = xs
        .request(ty::IS_DOMAIN_INTRODUCED, format!("{domid}\0").as_bytes())
        .unwrap();
    reply == b"T\0"
}

#[test]
fn a_dying_or_destroyed_domain_is_released_by_the_daemon() {
    let tb = Testbed::start().unwrap();
    let _doms: Vec<_> = (5..7).map(|d| tb.introduce_domain(d).unwrap()).collect();
    let mut xs = tb.connect().unwrap();
    for (domid, state) in [(5, DomainState::Dying), (6, DomainState::Gone)] {
        assert!(introduced(&mut xs, domid));
        tb.set_domain_state(domid, state).unwrap();
        let deadline = std::time::Instant::now() + T;
        while introduced(&mut xs, domid) {
            assert!(
                std::time::Instant::now() < deadline,
                "domain {domid} ({state:?}) never released"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Its nodes went with it (4.17 deletes a dead domain's nodes).
        let name = format!("/local/domain/{domid}/name");
        let home = tb.cli("read", &[&name]).unwrap();
        assert!(!home.status.success(), "{home:?}");
    }
}

#[test]
fn a_crashed_domain_fires_release_domain_but_stays_introduced() {
    use std::io::{BufRead, BufReader};
    let tb = Testbed::start().unwrap();
    let _dom = tb.introduce_domain(5).unwrap();
    let mut watch = tb
        .cli_command("watch")
        .args(["-n", "2", "@releaseDomain"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // The initial event: the watch is in place.
    assert_eq!(lines.next().unwrap().unwrap(), "@releaseDomain");
    tb.set_domain_state(5, DomainState::Crashed).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "@releaseDomain");
    assert!(watch.wait().unwrap().success());
    let mut xs = tb.connect().unwrap();
    assert!(
        introduced(&mut xs, 5),
        "a toolstack destroys it, not xenstored"
    );
}

#[test]
fn introducing_twice_or_a_reserved_domid_is_refused() {
    let tb = Testbed::start().unwrap();
    let _dom = tb.introduce_domain(1).unwrap();
    assert!(tb.introduce_domain(1).is_err());
    assert!(tb.introduce_domain(0).is_err());
    assert!(tb.introduce_domain(0x7ff0).is_err());
}

#[test]
fn the_testbed_can_kick_either_end_of_a_domains_event_channel() {
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(1).unwrap();
    dom.take_event().unwrap();
    // notify_guest: the guest sees an event as if the daemon had notified.
    tb.notify_guest(1).unwrap();
    assert!(dom.wait_event(T).unwrap());

    // notify_daemon: a request parked in the ring without the guest's own
    // kick gets served. (xenstored scans every ring whenever anything wakes
    // it, so this cannot prove the kick was the only trigger.)
    let page = dom.page();
    let request = Message::new(ty::READ, 5, b"domid\0").encode();
    let reply = Message::new(ty::READ, 5, b"1").encode();
    let prod = page.read_u32(offset::REQ_PROD).unwrap();
    let rsp = page.read_u32(offset::RSP_PROD).unwrap();
    page.write_bytes(offset::REQ + (prod as usize % offset::RING_SIZE), &request)
        .unwrap();
    page.write_u32(offset::REQ_PROD, prod + request.len() as u32)
        .unwrap();
    tb.notify_daemon(1).unwrap();
    let deadline = std::time::Instant::now() + T;
    while page.read_u32(offset::RSP_PROD).unwrap() < rsp + reply.len() as u32 {
        assert!(
            std::time::Instant::now() < deadline,
            "parked request not served"
        );
        dom.wait_event(Duration::from_millis(100)).unwrap();
    }
    assert!(tb.notify_guest(9).is_err(), "domain 9 was never introduced");
}

//! Faults against the REAL xenstored (run by the testbed): a daemon killed
//! for real (SIGKILL), and the ring reconnection that the 4.17 daemon does
//! not offer. The daemon's death is what makes each outcome certain: no
//! reply can come, so every assertion is about *which* typed error ends a
//! request, never about how fast.

// The package is xenstore-client; its code and its users' code in this
// repository call it `xenstore`.
extern crate xenstore_client as xenstore;

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::Duration;

use support::real::{ring_client, socket_client, start_testbed};
use testbed::Testbed;
use xenstore::ring::{FEATURE_RECONNECTION, RING_SIZE};
use xenstore::wire::{Header, MsgType};
use xenstore::{Config, ProtocolViolation, Store, TransportError, XsError};

/// Page offsets (docs/misc/xenstore-ring.txt).
const RSP: usize = 1024;
const RSP_PROD: usize = 2060;
const SERVER_FEATURES: usize = 2064;
const CONNECTION: usize = 2068;

/// Longer than any request here could take with a live daemon: only a
/// hang reaches it (it would have hung for ever before the deadlines).
const HANG: Duration = Duration::from_secs(120);

fn kill_daemon(tb: &Testbed) {
    let pid = tb.daemon_pid().expect("the daemon runs");
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -KILL {pid} failed");
}

/// Runs `f` on a thread; panics if it has not returned within [`HANG`].
fn ends<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what}: never ended"))
}

fn with_deadline(timeout: Duration) -> Config {
    Config {
        request_timeout: Some(timeout),
        ..Config::default()
    }
}

/// The kernel's case: a guest on its ring, the daemon killed. A read ends
/// with `Timeout`; a write larger than the ring's free space cannot be
/// sent whole, so it fails the connection with `SendTimedOut` (a message
/// cannot be taken back half-written), and later calls fail at once.
#[test]
fn killed_daemon_ends_ring_requests_and_a_large_write_at_the_deadline() {
    let tb = start_testbed();
    let domain = Arc::new(tb.introduce_domain(1).unwrap());
    // Long enough for the first read to succeed under load.
    let xs = ring_client(domain, with_deadline(Duration::from_secs(2)));
    assert_eq!(xs.read_string("domid").unwrap(), "1");
    kill_daemon(&tb);

    let c = xs.clone();
    match ends("a read", move || c.read("domid")) {
        Err(XsError::Timeout(ctx)) => assert_eq!(ctx.op, MsgType::Read),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let c = xs.clone();
    let big = vec![b'x'; 3000];
    match ends("a write larger than the ring", move || {
        c.write("data/big", big)
    }) {
        Err(XsError::Disconnected(TransportError::SendTimedOut { sent, len })) => {
            assert!(sent < len, "{sent} of {len} bytes");
            assert!(len > RING_SIZE as usize);
        }
        other => panic!("expected the send to time out, got {other:?}"),
    }
    assert!(matches!(
        xs.read("domid"),
        Err(XsError::Disconnected(TransportError::SendTimedOut { .. }))
    ));
}

/// On the daemon's socket a killed daemon closes the connection: the
/// request in flight and every later one fail with `Closed`.
#[test]
fn killed_daemon_closes_the_socket_for_every_request() {
    let tb = start_testbed();
    let xs = socket_client(&tb, Config::default());
    xs.write("/faults/x", "1").unwrap();
    kill_daemon(&tb);
    let c = xs.clone();
    assert_eq!(
        ends("a read", move || c.read("/faults/x")).unwrap_err(),
        XsError::Disconnected(TransportError::Closed)
    );
    assert_eq!(
        xs.read("/faults/x").unwrap_err(),
        XsError::Disconnected(TransportError::Closed)
    );
}

/// Xen 4.17's C daemon does not offer ring reconnection (server_features
/// is 0), so the client must not ask for it (the daemon would never answer
/// and the field would stay set). After a framing error on that ring, a
/// fresh client falls back to discarding stale responses and works.
#[test]
fn real_daemon_without_reconnection_is_never_asked_for_it() {
    let tb = start_testbed();
    let domain = Arc::new(tb.introduce_domain(1).unwrap());
    let page = domain.page();
    assert_eq!(
        page.read_u32(SERVER_FEATURES).unwrap() & FEATURE_RECONNECTION,
        0,
        "the premise: {} offers no reconnection",
        tb.xenstored()
    );
    let xs = ring_client(Arc::clone(&domain), with_deadline(Duration::from_secs(30)));
    assert_eq!(xs.read_string("domid").unwrap(), "1");
    assert_eq!(
        page.read_u32(CONNECTION).unwrap(),
        0,
        "no reconnection asked"
    );

    // Play a hostile daemon once: a header announcing 5000 bytes.
    let header = Header {
        ty: MsgType::Read as u32,
        req_id: 0x7fff_0000,
        tx_id: 0,
        len: 5000,
    }
    .encode();
    let prod = page.read_u32(RSP_PROD).unwrap();
    for (i, byte) in header.iter().enumerate() {
        let at = prod.wrapping_add(i as u32) % RING_SIZE;
        page.write_bytes(RSP + at as usize, &[*byte]).unwrap();
    }
    page.write_u32(RSP_PROD, prod.wrapping_add(header.len() as u32))
        .unwrap();
    tb.notify_guest(1).unwrap();
    let broken = TransportError::Framing(ProtocolViolation::PayloadTooLong { len: 5000 });
    let c = xs.clone();
    ends("the client noticing", move || {
        while c.failure().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    assert_eq!(xs.failure(), Some(broken.clone()));
    assert_eq!(xs.read("domid").unwrap_err(), XsError::Disconnected(broken));
    drop(xs);

    let fresh = ring_client(Arc::clone(&domain), with_deadline(Duration::from_secs(30)));
    assert_eq!(fresh.read_string("domid").unwrap(), "1");
    assert_eq!(
        page.read_u32(CONNECTION).unwrap(),
        0,
        "no reconnection asked"
    );
}

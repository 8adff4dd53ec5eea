//! Ring transport tests over an in-memory page, single-threaded: the peer
//! (the daemon's side) runs whenever the transport would sleep.

use super::*;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::AtomicUsize;
use std::sync::Mutex;

/// The daemon's side of the page, written by hand.
struct Peer {
    page: RingPage,
}

impl Peer {
    /// Consumes up to `max` request bytes.
    fn take_requests(&self, max: usize) -> Vec<u8> {
        let (cons, prod) = (self.page.req_cons(), self.page.req_prod());
        let mut out = Vec::new();
        let mut at = cons;
        while out.len() < max {
            let (off, n) = input_chunk(at, prod);
            let n = n.min(max - out.len());
            if n == 0 {
                break;
            }
            let mut chunk = alloc::vec![0; n];
            self.page.read_req(off, &mut chunk);
            out.extend(chunk);
            at = at.wrapping_add(n as u32);
        }
        self.page.set_req_cons(at);
        out
    }

    /// Produces as much of `data` as fits; returns how much.
    fn put_responses(&self, data: &[u8]) -> usize {
        let (cons, mut prod) = (self.page.rsp_cons(), self.page.rsp_prod());
        let mut done = 0;
        while done < data.len() {
            let (off, room) = output_chunk(cons, prod);
            let n = room.min(data.len() - done);
            if n == 0 {
                break;
            }
            self.page.write_rsp(off, &data[done..done + n]);
            done += n;
            prod = prod.wrapping_add(n as u32);
        }
        self.page.set_rsp_prod(prod);
        done
    }
}

type Step = Box<dyn FnMut() + Send>;

/// Events for a single-threaded test: waiting runs the peer's next step.
struct StepEvents {
    step: Mutex<Option<Step>>,
    notifies: AtomicUsize,
    sleeps: AtomicUsize,
}

impl StepEvents {
    fn new() -> StepEvents {
        StepEvents {
            step: Mutex::new(None),
            notifies: AtomicUsize::new(0),
            sleeps: AtomicUsize::new(0),
        }
    }
}

impl RingEvents for StepEvents {
    fn notify(&self) {
        self.notifies.fetch_add(1, Ordering::SeqCst);
    }

    fn wait_until(&self, ready: &mut dyn FnMut() -> bool, timeout: Option<Duration>) -> bool {
        for _ in 0..100 {
            if ready() {
                return true;
            }
            self.sleeps.fetch_add(1, Ordering::SeqCst);
            match self.step.lock().unwrap().as_mut() {
                Some(step) => step(),
                None if timeout.is_some() => return false,
                None => panic!("the transport would sleep forever"),
            }
        }
        panic!("the peer made no progress in 100 steps");
    }

    fn wake_all(&self) {}
}

fn setup(start: u32) -> (RingTransport<StepEvents>, Arc<Peer>) {
    let local = LocalPage::new();
    let peer = Arc::new(Peer {
        page: RingPage::local(&local),
    });
    for set in [
        RingPage::set_req_cons,
        RingPage::set_req_prod,
        RingPage::set_rsp_cons,
        RingPage::set_rsp_prod,
    ] {
        set(&peer.page, start);
    }
    (
        RingTransport::new(RingPage::local(&local), StepEvents::new()),
        peer,
    )
}

/// A send with no deadline.
fn no_limit() -> Option<Duration> {
    None
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn message_wraps_around_the_ring_and_the_index_space() {
    // Indexes 10 short of u32::MAX: the ring offset wraps at 1023 -> 0 and the
    // u32 index wraps at u32::MAX -> 0 within the same message.
    let start = u32::MAX - 9;
    let (t, peer) = setup(start);
    let msg = pattern(100);
    t.send(&msg, &no_limit).unwrap();
    assert_eq!(t.page().req_prod(), start.wrapping_add(100));
    assert_eq!(peer.take_requests(1000), msg);
    assert_eq!(peer.put_responses(&msg), 100);
    let mut buf = [0u8; 512];
    assert_eq!(
        t.recv(&mut buf, None).unwrap(),
        100,
        "both chunks in one call"
    );
    assert_eq!(&buf[..100], &msg[..]);
    assert_eq!(t.page().rsp_cons(), start.wrapping_add(100));
    assert!(t.events().notifies.load(Ordering::SeqCst) >= 2);
}

#[test]
fn partial_reads_return_the_rest_later() {
    let (t, peer) = setup(1000);
    let data = pattern(700);
    peer.put_responses(&data);
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < data.len() {
        let n = t.recv(&mut buf, None).unwrap();
        assert!(n > 0 && n <= 64);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data);
}

#[test]
fn full_ring_makes_the_sender_wait_for_the_peer() {
    let (t, peer) = setup(u32::MAX - 300);
    let msg = pattern(3000);
    let received = Arc::new(Mutex::new(Vec::new()));
    let (p, r) = (Arc::clone(&peer), Arc::clone(&received));
    // The peer drains 500 bytes each time the sender has to wait.
    *t.events().step.lock().unwrap() = Some(Box::new(move || {
        r.lock().unwrap().extend(p.take_requests(500))
    }));
    t.send(&msg, &no_limit).unwrap();
    received
        .lock()
        .unwrap()
        .extend(peer.take_requests(usize::MAX));
    assert_eq!(*received.lock().unwrap(), msg);
    assert!(
        t.events().sleeps.load(Ordering::SeqCst) >= 2,
        "the ring filled at least twice"
    );
}

#[test]
fn long_response_stream_is_received_across_many_ring_fills() {
    let (t, peer) = setup(u32::MAX - 1);
    let data = pattern(5000);
    let sent = Arc::new(AtomicUsize::new(0));
    let (p, s, d) = (Arc::clone(&peer), Arc::clone(&sent), data.clone());
    *t.events().step.lock().unwrap() = Some(Box::new(move || {
        let at = s.load(Ordering::SeqCst);
        s.fetch_add(p.put_responses(&d[at..]), Ordering::SeqCst);
    }));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < data.len() {
        let n = t.recv(&mut buf, None).unwrap();
        assert!(n <= RING_SIZE as usize);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data);
}

#[test]
fn bad_response_indexes_are_reported_and_not_trusted() {
    let (t, peer) = setup(0);
    peer.page.set_rsp_prod(2000);
    let mut buf = [0u8; 16];
    let err = t.recv(&mut buf, None).unwrap_err();
    assert_eq!(
        err,
        TransportError::BadRingIndexes {
            ring: RingSide::Response,
            cons: 0,
            prod: 2000
        }
    );
    assert_eq!(
        t.page().rsp_cons(),
        0,
        "the consumer index is not moved by bad input"
    );
    // A producer behind the consumer is a gap of nearly 4 GiB: also bad.
    peer.page.set_rsp_prod(0);
    peer.page.set_rsp_cons(5);
    assert!(matches!(
        t.recv(&mut buf, None),
        Err(TransportError::BadRingIndexes { .. })
    ));
}

#[test]
fn bad_request_indexes_are_reported_and_nothing_is_written() {
    let (t, peer) = setup(100);
    peer.page.set_req_cons(100 + 5000);
    let err = t.send(b"hello", &no_limit).unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::BadRingIndexes {
                ring: RingSide::Request,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(t.page().req_prod(), 100);
}

#[test]
fn daemon_error_field_is_reported_only_when_advertised() {
    let (t, peer) = setup(0);
    peer.page.set_error(2);
    // Without FEATURE_ERROR the field means nothing.
    t.send(b"x", &no_limit).unwrap();
    peer.page.set_server_features(FEATURE_ERROR);
    assert_eq!(
        t.send(b"x", &no_limit).unwrap_err(),
        TransportError::PeerReported { code: 2 }
    );
}

#[test]
fn stale_responses_are_discarded_when_connecting_and_resuming() {
    let local = LocalPage::new();
    let peer = Peer {
        page: RingPage::local(&local),
    };
    peer.put_responses(b"stale");
    let t = RingTransport::new(RingPage::local(&local), StepEvents::new());
    assert_eq!(t.page().rsp_cons(), 5);
    assert!(!t.resume().unwrap(), "nothing to discard");
    peer.put_responses(b"older");
    assert!(t.resume().unwrap());
    assert_eq!(t.page().rsp_cons(), 10);
}

#[test]
fn timeout_and_shutdown() {
    let (t, _peer) = setup(0);
    let mut buf = [0u8; 8];
    assert_eq!(
        t.recv(&mut buf, Some(Duration::from_millis(1))),
        Err(TransportError::TimedOut)
    );
    t.shutdown();
    assert_eq!(t.recv(&mut buf, None), Err(TransportError::Closed));
    assert_eq!(t.send(b"x", &no_limit), Err(TransportError::Closed));
}

#[test]
fn send_gives_up_at_the_deadline_when_the_daemon_takes_nothing() {
    // A daemon that stopped reading: the ring fills and stays full.
    let (t, peer) = setup(0);
    let deadline_passed = || Some(Duration::ZERO);
    assert_eq!(
        t.send(&pattern(1500), &deadline_passed),
        Err(TransportError::SendTimedOut {
            sent: 1024,
            len: 1500
        })
    );
    assert_eq!(peer.page.req_prod(), 1024, "what fitted was handed over");
}

#[test]
fn daemon_error_field_ends_a_wait_for_data_or_room() {
    // The daemon flags an error and stops: no data will come, no room free.
    let (t, peer) = setup(0);
    peer.page.set_server_features(FEATURE_ERROR);
    let p = Arc::clone(&peer);
    *t.events().step.lock().unwrap() = Some(Box::new(move || p.page.set_error(3)));
    let mut buf = [0u8; 8];
    assert_eq!(
        t.recv(&mut buf, None),
        Err(TransportError::PeerReported { code: 3 })
    );
    let (t, peer) = setup(0);
    peer.page.set_server_features(FEATURE_ERROR);
    let p = Arc::clone(&peer);
    *t.events().step.lock().unwrap() = Some(Box::new(move || p.page.set_error(1)));
    assert_eq!(
        t.send(&pattern(2000), &no_limit),
        Err(TransportError::PeerReported { code: 1 })
    );
}

/// A MOCK daemon's side of the reconnection handshake
/// (docs/misc/xenstore-ring.txt): on `connection == RECONNECT` it empties
/// both rings (indexes to `reset_to`) and sets `connection` back.
fn mock_reconnecting_peer(peer: &Arc<Peer>, reset_to: u32) -> Step {
    let p = Arc::clone(peer);
    Box::new(move || {
        if p.page.connection() == RECONNECT {
            for set in [
                RingPage::set_req_cons,
                RingPage::set_req_prod,
                RingPage::set_rsp_cons,
                RingPage::set_rsp_prod,
            ] {
                set(&p.page, reset_to);
            }
            p.page.set_connection(CONNECTED);
        }
    })
}

#[test]
fn mock_peer_offering_reconnection_gets_the_handshake_on_connect() {
    let local = LocalPage::new();
    let peer = Arc::new(Peer {
        page: RingPage::local(&local),
    });
    peer.page.set_server_features(FEATURE_RECONNECTION);
    // Half a message left from before: without the handshake the client
    // would have to guess where the next one starts.
    peer.put_responses(b"half a repl");
    let events = StepEvents::new();
    *events.step.lock().unwrap() = Some(mock_reconnecting_peer(&peer, 0));
    let t = RingTransport::connect(RingPage::local(&local), events, None).unwrap();
    assert_eq!(t.page().connection(), CONNECTED);
    assert_eq!((t.page().rsp_cons(), t.page().rsp_prod()), (0, 0));
    assert!(
        t.events().notifies.load(Ordering::SeqCst) >= 1,
        "the daemon was signalled"
    );
    t.send(b"fresh", &no_limit).unwrap();
    assert_eq!(peer.take_requests(100), b"fresh");
}

#[test]
fn mock_peer_already_reconnecting_is_waited_for() {
    // Someone else (a dom0less toolstack) started the handshake.
    let local = LocalPage::new();
    let peer = Arc::new(Peer {
        page: RingPage::local(&local),
    });
    peer.page.set_connection(RECONNECT);
    let events = StepEvents::new();
    *events.step.lock().unwrap() = Some(mock_reconnecting_peer(&peer, 0));
    let t = RingTransport::connect(RingPage::local(&local), events, None).unwrap();
    assert_eq!(t.page().connection(), CONNECTED);
}

#[test]
fn mock_peer_that_never_completes_the_handshake_times_out() {
    let local = LocalPage::new();
    let page = RingPage::local(&local);
    page.set_server_features(FEATURE_RECONNECTION);
    let err = RingTransport::connect(page, StepEvents::new(), Some(Duration::from_millis(1)))
        .err()
        .expect("no handshake without the daemon");
    assert_eq!(err, TransportError::TimedOut);
}

#[test]
fn without_the_feature_connect_does_not_touch_the_connection_field() {
    let local = LocalPage::new();
    let peer = Peer {
        page: RingPage::local(&local),
    };
    peer.put_responses(b"stale");
    let t = RingTransport::connect(RingPage::local(&local), StepEvents::new(), None).unwrap();
    assert_eq!(t.page().connection(), CONNECTED);
    assert_eq!(t.page().rsp_cons(), 5, "stale responses discarded instead");
    assert_eq!(t.events().notifies.load(Ordering::SeqCst), 0);
}

#[test]
fn a_paused_ring_is_not_read_until_unpaused() {
    let (t, peer) = setup(0);
    peer.put_responses(b"reply");
    t.pause();
    let mut buf = [0u8; 8];
    // Data is there, but the page is off limits: the read waits (here: its
    // timeout) and consumes nothing.
    assert_eq!(
        t.recv(&mut buf, Some(Duration::from_millis(1))),
        Err(TransportError::TimedOut)
    );
    assert_eq!(t.page().rsp_cons(), 0);
    t.unpause();
    assert_eq!(t.recv(&mut buf, None), Ok(5));
    assert_eq!(&buf[..5], b"reply");
    assert_eq!(t.page().rsp_cons(), 5);
}

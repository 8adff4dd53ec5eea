//! Hostile-peer tests, through the whole runtime on the host platform.
//!
//! Every peer here is a MOCK: it misbehaves in ways the real xenstored never
//! does (that is why a mock is used). Each test checks the client gives a
//! clear typed error or drops and counts the message, does not panic, and
//! stays usable where the protocol allows.

// The package is xenstore-client; its code and its users' code in this
// repository call it `xenstore`.
extern crate xenstore_client as xenstore;

mod support;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Act, ManualClock, RingMock, SocketMock, benign, eventually, msg};
use xenstore::ring::{CONNECTED, FEATURE_ERROR, FEATURE_RECONNECTION};
use xenstore::wire::{Header, MsgType};
use xenstore::{
    Config, ProtocolViolation, ReceiveMode, RingSide, Store, TransportError, WatchEvent, XsError,
};

const READ: u32 = MsgType::Read as u32;
const ERROR: u32 = MsgType::Error as u32;
const WATCH_EVENT: u32 = MsgType::WatchEvent as u32;

/// The real daemon never answers with a req_id nobody used.
#[test]
fn mock_reply_with_unknown_req_id_is_dropped_and_counted() {
    let mock = SocketMock::start(Config::default(), |req| {
        let mut out = msg(READ, req.header.req_id.wrapping_add(1000), 0, b"stray");
        out.extend(benign(req));
        Act::Send(out)
    });
    assert_eq!(mock.client.read("/a").unwrap(), b"value-of:/a");
    assert_eq!(mock.client.read("/b").unwrap(), b"value-of:/b");
    assert_eq!(mock.client.stats().core.unknown_req_id, 2);
}

/// The real daemon only sends events for tokens we registered.
#[test]
fn mock_watch_event_for_unknown_token_is_dropped_and_counted() {
    let mock = SocketMock::start(Config::default(), |req| {
        let mut out = benign(req);
        if req.ty() == Some(MsgType::Watch) {
            // The initial event for the real token, then one for a token nobody has.
            let token =
                String::from_utf8_lossy(req.body.split(|&b| b == 0).nth(1).unwrap()).into_owned();
            out.extend(msg(
                WATCH_EVENT,
                0,
                0,
                format!("{}\0{token}\0", req.arg0()).as_bytes(),
            ));
            out.extend(msg(WATCH_EVENT, 0, 0, b"/elsewhere\0no-such-token\0"));
        }
        Act::Send(out)
    });
    let (tx, rx) = channel();
    let watch = mock
        .client
        .watch("/w", move |e| tx.send(e.clone()).unwrap())
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        WatchEvent::Changed { path: "/w".into() }
    );
    eventually("the stray event is counted", || {
        mock.client.stats().core.unknown_watch_token == 1
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "the stray event reached no callback"
    );
    assert_eq!(mock.client.read("/still").unwrap(), b"value-of:/still");
    watch.unwatch().unwrap();
}

/// The real daemon never sends a payload over 4096 bytes. A peer that
/// announces one cannot be trusted to send that many bytes (this one sends
/// five): skipping them would swallow later replies. Every waiter fails at
/// once and nothing more is parsed.
#[test]
fn mock_reply_over_4096_bytes_breaks_the_connection_for_every_waiter() {
    let (held_tx, held) = channel();
    let held_tx = Mutex::new(held_tx);
    let mock = SocketMock::start(Config::default(), move |req| match req.arg0().as_str() {
        "/held" => {
            held_tx.lock().unwrap().send(()).unwrap();
            Act::Nothing
        }
        "/hostile" => {
            let mut out = Header {
                ty: READ,
                req_id: req.header.req_id,
                tx_id: 0,
                len: 5000,
            }
            .encode()
            .to_vec();
            out.extend(b"short");
            // A well-formed reply a skipping parser would take as "body".
            out.extend(msg(READ, req.header.req_id, 0, b"late"));
            Act::Send(out)
        }
        _ => Act::Send(benign(req)),
    });
    let (done_tx, done) = channel();
    for _ in 0..2 {
        let (client, done_tx) = (mock.client.clone(), done_tx.clone());
        std::thread::spawn(move || done_tx.send(client.read("/held")).unwrap());
        held.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    let broken =
        XsError::Disconnected(TransportError::Framing(ProtocolViolation::PayloadTooLong {
            len: 5000,
        }));
    assert_eq!(mock.client.read("/hostile").unwrap_err(), broken);
    for _ in 0..2 {
        let waiter = done
            .recv_timeout(Duration::from_secs(10))
            .expect("a waiter was left hanging");
        assert_eq!(waiter.unwrap_err(), broken);
    }
    assert_eq!(mock.client.read("/next").unwrap_err(), broken);
    let stats = mock.client.stats();
    assert_eq!((stats.core.oversized, stats.transport_failures), (1, 1));
}

/// The real daemon always sends whole messages. A header whose body never
/// comes is noticed by the reader after the request timeout; the
/// connection is then failed, so the next reply cannot complete that body.
#[test]
fn mock_header_without_its_body_breaks_the_connection_after_the_deadline() {
    let config = Config {
        request_timeout: Some(Duration::from_millis(200)),
        receive_mode: ReceiveMode::Dedicated,
        ..Config::default()
    };
    let mock = SocketMock::start(config, |req| {
        if req.arg0() == "/cut" {
            // A header announcing 10 bytes, then 3 of them.
            let mut out = msg(READ, req.header.req_id, 0, b"0123456789");
            out.truncate(16 + 3);
            Act::Send(out)
        } else {
            Act::Send(benign(req))
        }
    });
    let truncated = TransportError::Framing(ProtocolViolation::TruncatedMessage {
        received: 19,
        expected: 26,
    });
    // Its own deadline and the stall limit are the same: either is fine.
    match mock.client.read("/cut").unwrap_err() {
        XsError::Timeout(_) => {}
        XsError::Disconnected(cause) => assert_eq!(cause, truncated),
        other => panic!("expected a timeout or the framing error, got {other:?}"),
    }
    eventually("the receive thread gives up on the message", || {
        mock.client.failure().is_some()
    });
    assert_eq!(mock.client.failure(), Some(truncated.clone()));
    assert_eq!(
        mock.client.read("/next").unwrap_err(),
        XsError::Disconnected(truncated)
    );
}

/// The real daemon always terminates its error strings and acknowledgements.
#[test]
fn mock_reply_without_its_nul_is_a_typed_error_for_that_request() {
    let mock = SocketMock::start(Config::default(), |req| match req.ty() {
        Some(MsgType::Read) if req.arg0() == "/err" => {
            Act::Send(msg(ERROR, req.header.req_id, 0, b"ENOENT"))
        }
        Some(MsgType::Write) => Act::Send(msg(req.header.ty, req.header.req_id, 0, b"OK")),
        _ => Act::Send(benign(req)),
    });
    let missing_nul = |e: XsError| {
        matches!(
            e,
            XsError::Protocol {
                violation: ProtocolViolation::MissingNul,
                ..
            }
        )
    };
    assert!(missing_nul(mock.client.read("/err").unwrap_err()));
    assert!(missing_nul(mock.client.write("/x", "1").unwrap_err()));
    assert_eq!(mock.client.read("/ok").unwrap(), b"value-of:/ok");
    assert_eq!(mock.client.stats().core.malformed, 2);
}

/// The real daemon answers requests in order; the protocol allows any order.
#[test]
fn mock_out_of_order_replies_reach_their_requesters() {
    // Hold replies back until four requests are in, then answer newest first.
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&held);
    let mock = SocketMock::start(Config::default(), move |req| {
        let mut held = h.lock().unwrap();
        held.push(benign(req));
        if held.len() < 4 {
            return Act::Nothing;
        }
        Act::Send(held.drain(..).rev().flatten().collect())
    });
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let client = mock.client.clone();
            std::thread::spawn(move || client.read(&format!("/n{i}")))
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(
            t.join().unwrap().unwrap(),
            format!("value-of:/n{i}").into_bytes()
        );
    }
}

/// The real daemon does not go silent; a timeout is the client's defence.
#[test]
fn mock_silent_peer_times_out_and_late_transaction_is_aborted() {
    let starts = Arc::new(AtomicU32::new(0));
    let (ends_tx, ends) = channel();
    let (s, e) = (Arc::clone(&starts), Mutex::new(ends_tx));
    let held = Arc::new(Mutex::new(None));
    let h = Arc::clone(&held);
    // Every request shares this timeout, and only the unanswered one may
    // reach it: far above any delay of a live read on a loaded machine.
    let config = Config {
        request_timeout: Some(Duration::from_secs(2)),
        ..Config::default()
    };
    let mock = SocketMock::start(config, move |req| match req.ty() {
        // The first TRANSACTION_START is answered only with the next request.
        Some(MsgType::TransactionStart) if s.fetch_add(1, Ordering::SeqCst) == 0 => {
            *h.lock().unwrap() = Some(msg(req.header.ty, req.header.req_id, 0, b"42\0"));
            Act::Nothing
        }
        Some(MsgType::TransactionEnd) => {
            e.lock()
                .unwrap()
                .send((req.header.tx_id, req.arg0()))
                .unwrap();
            Act::Send(benign(req))
        }
        _ => {
            let mut out = h.lock().unwrap().take().unwrap_or_default();
            out.extend(benign(req));
            Act::Send(out)
        }
    });
    match mock.client.transaction_start() {
        Err(XsError::Timeout(ctx)) => assert_eq!(ctx.op, MsgType::TransactionStart),
        Err(other) => panic!("expected a timeout, got {other:?}"),
        Ok(_) => panic!("expected a timeout, got a transaction"),
    }
    // The late reply arrives with this read's; the transaction it started is aborted.
    assert_eq!(mock.client.read("/x").unwrap(), b"value-of:/x");
    assert_eq!(mock.client.stats().core.late_replies, 1);
    mock.client.read("/y").unwrap(); // carries the deferred abort
    assert_eq!(
        ends.recv_timeout(Duration::from_secs(5)).unwrap(),
        (42, "F".to_string())
    );
}

/// The real daemon keeps its connection open.
#[test]
fn mock_peer_closing_fails_requests_in_flight_and_later_calls_fast() {
    let mock = SocketMock::start(Config::default(), |req| {
        if req.arg0() == "/close" {
            Act::Close
        } else {
            Act::Send(benign(req))
        }
    });
    assert!(mock.client.read("/a").is_ok());
    assert_eq!(
        mock.client.read("/close").unwrap_err(),
        XsError::Disconnected(TransportError::Closed)
    );
    assert_eq!(
        mock.client.read("/b").unwrap_err(),
        XsError::Disconnected(TransportError::Closed)
    );
    assert_eq!(mock.client.failure(), Some(TransportError::Closed));
}

/// The real daemon never corrupts the ring indexes.
#[test]
fn mock_ring_bad_indexes_fail_the_connection_with_a_typed_error() {
    let (got_tx, got) = channel();
    let got_tx = Mutex::new(got_tx);
    let mock = RingMock::start(Config::default(), move |req| {
        if req.arg0() == "/hang" {
            got_tx.lock().unwrap().send(()).unwrap();
            Act::Nothing
        } else {
            Act::Send(benign(req))
        }
    });
    assert_eq!(mock.client.read("/a").unwrap(), b"value-of:/a");
    let client = mock.client.clone();
    let waiter = std::thread::spawn(move || client.read("/hang"));
    got.recv_timeout(Duration::from_secs(5)).unwrap();
    // The hostile daemon claims 5000 bytes in a 1024-byte ring.
    let cons = mock.page.rsp_cons();
    mock.page.set_rsp_prod(cons.wrapping_add(5000));
    mock.client_signal.raise();
    let expected = TransportError::BadRingIndexes {
        ring: RingSide::Response,
        cons,
        prod: cons.wrapping_add(5000),
    };
    assert_eq!(
        waiter.join().unwrap().unwrap_err(),
        XsError::Disconnected(expected.clone())
    );
    assert_eq!(
        mock.page.rsp_cons(),
        cons,
        "nothing was consumed from a corrupt ring"
    );
    assert_eq!(
        mock.client.read("/b").unwrap_err(),
        XsError::Disconnected(expected)
    );
    assert_eq!(mock.client.stats().transport_failures, 1);
}

/// Unknown req_id and unknown token, then an oversized reply, all through
/// the ring: the stray messages are dropped and counted, the oversized one
/// (9000 bytes, more than a ring fill) breaks the connection.
#[test]
fn mock_ring_stray_messages_are_dropped_and_an_oversized_one_breaks_the_connection() {
    let mock = RingMock::start(Config::default(), move |req| {
        if req.arg0() != "/hostile" {
            return Act::Send(benign(req));
        }
        let id = req.header.req_id;
        let mut out = msg(READ, id.wrapping_add(77), 0, b"stray");
        out.extend(msg(WATCH_EVENT, 0, 0, b"/p\0nobody\0"));
        out.extend(msg(READ, id, 0, &vec![b'z'; 9000]));
        Act::Send(out)
    });
    let broken =
        XsError::Disconnected(TransportError::Framing(ProtocolViolation::PayloadTooLong {
            len: 9000,
        }));
    assert_eq!(mock.client.read("/hostile").unwrap_err(), broken);
    assert_eq!(mock.client.read("/after").unwrap_err(), broken);
    let s = mock.client.stats().core;
    assert_eq!(
        (s.unknown_req_id, s.unknown_watch_token, s.oversized),
        (1, 1, 1)
    );
}

/// The real daemon (4.17) offers no ring reconnection; this MOCK does, and
/// is hostile once: a 9000-byte reply, whose body (with fake headers in
/// it) it keeps pushing into the ring. The client that saw the header
/// fails; a new client over the same page asks for a reconnection, and so
/// starts on a packet boundary: without it, the rest of that body would
/// be parsed as replies.
#[test]
fn mock_ring_reconnection_gives_a_new_client_a_clean_ring_after_a_framing_error() {
    let mock = RingMock::start_with_features(FEATURE_RECONNECTION, Config::default(), |req| {
        if req.arg0() != "/hostile" {
            return Act::Send(benign(req));
        }
        let mut body = Vec::new();
        while body.len() < 9000 {
            body.extend(msg(READ, 1, 0, b"fake"));
        }
        body.truncate(9000);
        Act::Send(msg(READ, req.header.req_id, 0, &body))
    });
    let broken =
        XsError::Disconnected(TransportError::Framing(ProtocolViolation::PayloadTooLong {
            len: 9000,
        }));
    assert_eq!(mock.client.read("/hostile").unwrap_err(), broken);
    assert_eq!(mock.page.connection(), CONNECTED, "nothing asked yet");
    let fresh = mock.new_client(Config::default()).unwrap();
    assert_eq!(mock.page.connection(), CONNECTED, "the mock completed it");
    for i in 0..5 {
        let key = format!("/after{i}");
        assert_eq!(
            fresh.read(&key).unwrap(),
            format!("value-of:{key}").into_bytes()
        );
    }
    assert_eq!(
        fresh.stats().core.unknown_req_id,
        0,
        "no stale bytes parsed"
    );
}

/// The real daemon (4.17) does not advertise the error field. One that
/// does, sets it and signals, without sending anything, must end the wait
/// of every requester.
#[test]
fn mock_ring_error_flag_is_noticed_while_waiting_without_data() {
    let (got_tx, got) = channel();
    let got_tx = Mutex::new(got_tx);
    let mock = RingMock::start(Config::default(), move |req| {
        if req.arg0() == "/hang" {
            got_tx.lock().unwrap().send(()).unwrap();
            Act::Nothing
        } else {
            Act::Send(benign(req))
        }
    });
    mock.page.set_server_features(FEATURE_ERROR);
    assert_eq!(mock.client.read("/a").unwrap(), b"value-of:/a");
    let (done_tx, done) = channel();
    let client = mock.client.clone();
    std::thread::spawn(move || done_tx.send(client.read("/hang")).unwrap());
    got.recv_timeout(Duration::from_secs(10)).unwrap();
    mock.page.set_error(1);
    mock.client_signal.raise();
    let flagged = XsError::Disconnected(TransportError::PeerReported { code: 1 });
    let waiter = done
        .recv_timeout(Duration::from_secs(10))
        .expect("the waiter did not notice the error flag");
    assert_eq!(waiter.unwrap_err(), flagged);
    assert_eq!(mock.client.read("/b").unwrap_err(), flagged);
}

/// As above, but the peer sets the flag without signalling: the requester
/// notices when its deadline passes, and reports the flag, not a timeout.
#[test]
fn mock_ring_error_flag_without_an_event_is_reported_at_the_deadline() {
    let config = Config {
        // Long enough that the mock has surely set the flag by then, and
        // that the first read succeeds under load.
        request_timeout: Some(Duration::from_secs(2)),
        ..Config::default()
    };
    // The mock's own view of the page, to flag the error from its script
    // once it has taken the request (so the request was sent fine).
    let page = Arc::new(std::sync::OnceLock::<xenstore::ring::RingPage>::new());
    let p = Arc::clone(&page);
    let mock = RingMock::start(config, move |req| {
        if req.arg0() == "/hang" {
            p.get().expect("set before any /hang").set_error(3);
            Act::Nothing
        } else {
            Act::Send(benign(req))
        }
    });
    assert!(
        page.set(xenstore::ring::RingPage::local(&mock.local))
            .is_ok()
    );
    mock.page.set_server_features(FEATURE_ERROR);
    assert_eq!(mock.client.read("/a").unwrap(), b"value-of:/a");
    assert_eq!(
        mock.client.read("/hang").unwrap_err(),
        XsError::Disconnected(TransportError::PeerReported { code: 3 })
    );
}

/// The real daemon answers every request; with one left unanswered, the
/// requester times out and the others, which were relying on it to read
/// their replies, carry on.
///
/// Made to happen every time: /hang is sent first and so is the reader;
/// the mock holds the workers' first reads until /hang has timed out, so
/// they all wait on it then. The clock is the test's ([`ManualClock`]):
/// /hang's deadline passes when the test moves the clock, and no worker's
/// ever does, so a slow machine cannot time a worker out (with real time,
/// whole-machine stalls of 3 s and more under load did), and a worker left
/// without a reader waits for ever: the bound on the workers' end turns
/// that hang into a failure.
#[test]
fn mock_unanswered_request_times_out_without_stranding_the_others() {
    const HANG_BOUND: Duration = Duration::from_secs(120);
    let clock = ManualClock;
    let config = Config {
        request_timeout: Some(Duration::from_secs(3)),
        ..Config::default()
    };
    let (seen, arrived) = channel();
    let seen = Mutex::new(seen);
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let mock = {
        let gate = Arc::clone(&gate);
        SocketMock::start_on(clock, config, move |req| {
            let _ = seen.lock().unwrap().send(req.arg0());
            if req.arg0() == "/hang" {
                return Act::Nothing;
            }
            // Later requests wait in the socket meanwhile.
            let (open, opened) = &*gate;
            drop(opened.wait_while(open.lock().unwrap(), |open| !*open));
            Act::Send(benign(req))
        })
    };
    let hung = {
        let client = mock.client.clone();
        std::thread::spawn(move || client.read("/hang"))
    };
    assert_eq!(arrived.recv_timeout(HANG_BOUND).unwrap(), "/hang");
    // /hang's deadline is 3 s; the workers' are 4 s or later, and the
    // clock stops at 3 s.
    clock.advance(Duration::from_secs(1));
    let reads = Arc::new(AtomicUsize::new(0));
    let (finished, worker_done) = channel();
    for i in 0..3 {
        let (client, reads, finished) = (mock.client.clone(), reads.clone(), finished.clone());
        std::thread::spawn(move || {
            let want = format!("value-of:/w{i}").into_bytes();
            let result = (0..100).try_for_each(|_| match client.read(&format!("/w{i}")) {
                Ok(value) if value == want => {
                    reads.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
                other => Err(format!("read /w{i}: {other:?}")),
            });
            let _ = finished.send(result);
        });
    }
    // A worker's read is held in the mock: it waits on /hang to read.
    assert!(arrived.recv_timeout(HANG_BOUND).unwrap().starts_with("/w"));
    clock.advance(Duration::from_secs(2));
    assert!(matches!(hung.join().unwrap(), Err(XsError::Timeout(_))));
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    for _ in 0..3 {
        let result = worker_done.recv_timeout(HANG_BOUND).unwrap_or_else(|_| {
            panic!(
                "reads stranded after /hang timed out: {} of 300 done",
                reads.load(Ordering::SeqCst)
            )
        });
        result.unwrap();
    }
    assert_eq!(mock.client.read("/after").unwrap(), b"value-of:/after");
}

/// The real daemon never lists a child with an empty name. Taken as a
/// child, `""` joins back to its parent, so `rm_tree` would list the same
/// node for ever.
#[test]
fn mock_directory_listing_an_empty_name_is_a_protocol_error_and_rm_tree_ends() {
    let mock = SocketMock::start(Config::default(), |req| match req.ty() {
        Some(MsgType::Directory) => Act::Send(msg(req.header.ty, req.header.req_id, 0, b"\0")),
        _ => Act::Send(benign(req)),
    });
    let malformed = |e: &XsError| {
        matches!(
            e,
            XsError::Protocol {
                violation: ProtocolViolation::MalformedBody {
                    ty: MsgType::Directory,
                    ..
                },
                ..
            }
        )
    };
    let err = mock.client.directory("/x").unwrap_err();
    assert!(malformed(&err), "{err:?}");
    let (done_tx, done) = channel();
    let client = mock.client.clone();
    std::thread::spawn(move || done_tx.send(client.rm_tree("/x")).unwrap());
    let result = done
        .recv_timeout(Duration::from_secs(10))
        .expect("rm_tree ended");
    assert!(malformed(&result.unwrap_err()));
    assert_eq!(mock.client.read("/after").unwrap(), b"value-of:/after");
}

/// The real daemon ends a paged listing within the size of one node. A peer
/// that never sends the last page (each page one more name) must not make
/// the client page and allocate for ever.
#[test]
fn mock_directory_pages_that_never_end_are_a_protocol_error() {
    let mock = SocketMock::start(Config::default(), |req| match req.ty() {
        Some(MsgType::Directory) => Act::Send(msg(ERROR, req.header.req_id, 0, b"E2BIG\0")),
        Some(MsgType::DirectoryPart) => {
            // Generation "1", then 4000 bytes of one name, never the end marker.
            let mut body = b"1\0".to_vec();
            body.extend(std::iter::repeat_n(b'n', 4000));
            body.push(0);
            Act::Send(msg(req.header.ty, req.header.req_id, 0, &body))
        }
        _ => Act::Send(benign(req)),
    });
    let (done_tx, done) = channel();
    let client = mock.client.clone();
    std::thread::spawn(move || done_tx.send(client.directory("/big")).unwrap());
    let result = done
        .recv_timeout(Duration::from_secs(60))
        .expect("the listing ended");
    assert!(
        matches!(
            result,
            Err(XsError::Protocol {
                violation: ProtocolViolation::MalformedBody {
                    ty: MsgType::DirectoryPart,
                    ..
                },
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(mock.client.read("/after").unwrap(), b"value-of:/after");
}

//! Unit tests driving the core directly: framing of every request type,
//! reply matching, watch routing, transactions, and what a bad peer sends.

use super::*;
use crate::perms::{Access, DomId, Grant};
use alloc::vec;

fn msg(ty: MsgType, req_id: u32, tx_id: u32, body: &[u8]) -> Vec<u8> {
    raw(ty as u32, req_id, tx_id, body)
}

fn raw(ty: u32, req_id: u32, tx_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Header {
        ty,
        req_id,
        tx_id,
        len: body.len() as u32,
    }
    .encode()
    .to_vec();
    out.extend_from_slice(body);
    out
}

fn feed_all<W>(core: &mut Core<W>, bytes: &[u8]) -> Vec<Event<W>> {
    let mut events = Vec::new();
    core.feed(bytes, &mut |e| events.push(e));
    events
}

/// Encodes `req` and returns (req_id, header, payload).
fn encode(core: &mut Core<u32>, req: Request<'_>, tx: u32) -> (u32, Header, Vec<u8>) {
    let mut out = Vec::new();
    let id = core.encode(&req, tx, 0, &mut out).expect("encodes");
    let header = Header::decode(out[..16].try_into().unwrap());
    assert_eq!(header.req_id, id);
    assert_eq!(header.len as usize, out.len() - 16);
    (id, header, out[16..].to_vec())
}

#[test]
fn every_request_type_encodes_per_xs_wire_h() {
    let grants = [
        Grant {
            domid: DomId(1),
            access: Access::None,
        },
        Grant {
            domid: DomId(0),
            access: Access::Read,
        },
    ];
    let cases: Vec<(Request<'_>, MsgType, &[u8])> = vec![
        (
            Request::Control {
                args: &["log", "on"],
            },
            MsgType::Control,
            b"log\0on\0",
        ),
        (Request::Directory("/a"), MsgType::Directory, b"/a\0"),
        (
            Request::DirectoryPart {
                path: "/a",
                offset: 4000,
            },
            MsgType::DirectoryPart,
            b"/a\x004000\0",
        ),
        (Request::Read("/a/b"), MsgType::Read, b"/a/b\0"),
        (Request::GetPerms("/a"), MsgType::GetPerms, b"/a\0"),
        (
            Request::Watch {
                path: "@releaseDomain",
                token: "7F",
            },
            MsgType::Watch,
            b"@releaseDomain\x007F\0",
        ),
        (
            Request::Unwatch {
                path: "/a",
                token: "7F",
            },
            MsgType::Unwatch,
            b"/a\x007F\0",
        ),
        (Request::TransactionStart, MsgType::TransactionStart, b"\0"),
        (
            Request::Introduce {
                domid: DomId(3),
                mfn: -5,
                port: 9,
            },
            MsgType::Introduce,
            b"3\0-5\x009\0",
        ),
        (Request::Release(DomId(3)), MsgType::Release, b"3\0"),
        (
            Request::GetDomainPath(DomId(12)),
            MsgType::GetDomainPath,
            b"12\0",
        ),
        (
            Request::Write {
                path: "/a",
                value: b"v\0al",
            },
            MsgType::Write,
            b"/a\0v\0al",
        ),
        (
            Request::Write {
                path: "/a",
                value: b"",
            },
            MsgType::Write,
            b"/a\0",
        ),
        (Request::Mkdir("/a"), MsgType::Mkdir, b"/a\0"),
        (Request::Rm("/a"), MsgType::Rm, b"/a\0"),
        (
            Request::SetPerms {
                path: "/a",
                perms: &grants,
            },
            MsgType::SetPerms,
            b"/a\0n1\0r0\0",
        ),
        (
            Request::IsDomainIntroduced(DomId(4)),
            MsgType::IsDomainIntroduced,
            b"4\0",
        ),
        (Request::Resume(DomId(4)), MsgType::Resume, b"4\0"),
        (
            Request::SetTarget {
                domid: DomId(5),
                target: DomId(6),
            },
            MsgType::SetTarget,
            b"5\x006\0",
        ),
        (Request::ResetWatches, MsgType::ResetWatches, b"\0"),
    ];
    let mut core = Core::new();
    for (req, ty, payload) in cases {
        let (_, header, body) = encode(&mut core, req, 0);
        assert_eq!(header.ty, ty as u32, "{req:?}");
        assert_eq!(header.tx_id, 0);
        assert_eq!(body, payload, "{req:?}");
    }
    // TRANSACTION_END needs an open transaction: T commits, F aborts.
    core.transactions.insert(9);
    let (_, h, body) = encode(&mut core, Request::TransactionEnd { commit: true }, 9);
    assert_eq!(
        (h.ty, h.tx_id, body.as_slice()),
        (MsgType::TransactionEnd as u32, 9, &b"T\0"[..])
    );
    let (_, _, body) = encode(&mut core, Request::TransactionEnd { commit: false }, 9);
    assert_eq!(body, b"F\0");
}

#[test]
fn limits_are_checked_before_anything_is_recorded() {
    let mut core: Core<u32> = Core::new();
    let mut out = Vec::new();
    let big = vec![b'x'; 4096];
    let err = core
        .encode(
            &Request::Write {
                path: "/a",
                value: &big,
            },
            0,
            1,
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(err, XsError::PayloadTooLarge { len: 4099, .. }),
        "{err:?}"
    );
    // Exactly at the limit is fine.
    let ok = vec![b'x'; 4096 - 3];
    core.encode(
        &Request::Write {
            path: "/a",
            value: &ok,
        },
        0,
        2,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 16 + 4096);
    out.clear();
    let err = core
        .encode(&Request::Read("/a//b"), 0, 3, &mut out)
        .unwrap_err();
    assert!(matches!(err, XsError::InvalidPath { .. }));
    let err = core
        .encode(&Request::Read("/a"), 77, 4, &mut out)
        .unwrap_err();
    assert_eq!(err, XsError::NoSuchTransaction { tx_id: 77 });
    assert!(out.is_empty());
    assert_eq!(core.in_flight(), 1);
}

#[test]
fn replies_match_requests_in_any_order() {
    let mut core = Core::new();
    let mut out = Vec::new();
    let a = core.encode(&Request::Read("/a"), 0, "a", &mut out).unwrap();
    let b = core.encode(&Request::Read("/b"), 0, "b", &mut out).unwrap();
    let c = core
        .encode(
            &Request::Write {
                path: "/c",
                value: b"1",
            },
            0,
            "c",
            &mut out,
        )
        .unwrap();
    assert_eq!(core.in_flight(), 3);
    let mut stream = msg(MsgType::Write, c, 0, b"OK\0");
    stream.extend(msg(MsgType::Read, a, 0, b"va"));
    stream.extend(msg(MsgType::Error, b, 0, b"ENOENT\0"));
    let events = feed_all(&mut core, &stream);
    assert_eq!(
        events,
        vec![
            Event::Reply {
                waiter: "c",
                result: Ok(b"OK\0".to_vec())
            },
            Event::Reply {
                waiter: "a",
                result: Ok(b"va".to_vec())
            },
            Event::Reply {
                waiter: "b",
                result: Err(ReplyError::Daemon(ErrorCode::Enoent))
            },
        ]
    );
    assert_eq!(core.in_flight(), 0);
    assert_eq!(core.stats().replies, 3);
}

#[test]
fn request_ids_skip_zero_and_ids_in_flight_after_wrapping() {
    let mut core: Core<u32> = Core::new();
    let mut out = Vec::new();
    core.next_req_id = u32::MAX - 1;
    let a = core.encode(&Request::Read("/a"), 0, 1, &mut out).unwrap();
    assert_eq!(a, u32::MAX);
    let b = core.encode(&Request::Read("/a"), 0, 2, &mut out).unwrap();
    assert_eq!(b, 1, "0 is the id of watch events");
    // Wrap again onto an id still in flight: it is skipped.
    core.next_req_id = u32::MAX - 1;
    let c = core.encode(&Request::Read("/a"), 0, 3, &mut out).unwrap();
    assert_eq!(c, 2);
}

#[test]
fn watch_events_are_routed_by_token() {
    let mut core: Core<u32> = Core::new();
    assert!(core.register_watch("A1", 1));
    assert!(core.register_watch("B2", 2));
    assert!(!core.register_watch("A1", 3), "a token is registered once");
    let mut stream = msg(MsgType::WatchEvent, 0, 0, b"/x/y\0B2\0");
    stream.extend(msg(MsgType::WatchEvent, 0, 0, b"/x\0A1\0"));
    stream.extend(msg(MsgType::WatchEvent, 0, 0, b"/x\0ZZ\0"));
    let events = feed_all(&mut core, &stream);
    assert_eq!(
        events[0],
        Event::Watch {
            watch: 2,
            path: "/x/y".into()
        }
    );
    assert_eq!(
        events[1],
        Event::Watch {
            watch: 1,
            path: "/x".into()
        }
    );
    assert_eq!(
        events[2],
        Event::Dropped(Dropped::UnknownToken { token: "ZZ".into() })
    );
    assert_eq!(core.unregister_watch("A1"), Some(1));
    let events = feed_all(&mut core, &msg(MsgType::WatchEvent, 0, 0, b"/x\0A1\0"));
    assert!(matches!(
        events[0],
        Event::Dropped(Dropped::UnknownToken { .. })
    ));
    let s = core.stats();
    assert_eq!((s.watch_events, s.unknown_watch_token), (2, 2));
}

#[test]
fn transactions_are_tracked_from_start_reply_to_end_reply() {
    let mut core: Core<u32> = Core::new();
    let (start, _, _) = encode(&mut core, Request::TransactionStart, 0);
    feed_all(&mut core, &msg(MsgType::TransactionStart, start, 0, b"5\0"));
    assert!(core.is_open_transaction(5));
    let (read, h, _) = encode(&mut core, Request::Read("/a"), 5);
    assert_eq!(h.tx_id, 5);
    feed_all(&mut core, &msg(MsgType::Read, read, 5, b"v"));
    let (w, h, _) = encode(
        &mut core,
        Request::Watch {
            path: "/a",
            token: "T",
        },
        5,
    );
    assert_eq!(h.tx_id, 0, "watches never carry a transaction");
    feed_all(&mut core, &msg(MsgType::Watch, w, 0, b"OK\0"));
    // EAGAIN on commit still ends the transaction.
    let (end, _, _) = encode(&mut core, Request::TransactionEnd { commit: true }, 5);
    let events = feed_all(&mut core, &msg(MsgType::Error, end, 5, b"EAGAIN\0"));
    assert_eq!(
        events,
        vec![Event::Reply {
            waiter: 0,
            result: Err(ReplyError::Daemon(ErrorCode::Eagain))
        }]
    );
    assert!(!core.is_open_transaction(5));
    assert_eq!(core.open_transactions(), 0);
}

#[test]
fn every_error_string_reaches_the_requester_typed() {
    let mut core: Core<u32> = Core::new();
    // Every code of the table, by its wire string (error/mod.rs's tests
    // check the table against xs_wire.h), and one no header lists.
    let codes = ErrorCode::known()
        .map(|code| (String::from(code.as_str()), code))
        .chain([("EWHATEVER".into(), ErrorCode::Unknown("EWHATEVER".into()))]);
    for (s, code) in codes {
        let (id, _, _) = encode(&mut core, Request::Read("/a"), 0);
        let mut body = s.as_bytes().to_vec();
        body.push(0);
        let events = feed_all(&mut core, &msg(MsgType::Error, id, 0, &body));
        assert_eq!(
            events,
            vec![Event::Reply {
                waiter: 0,
                result: Err(ReplyError::Daemon(code))
            }],
            "{s}"
        );
    }
}

#[test]
fn malformed_replies_fail_their_request_and_are_counted() {
    let mut core: Core<u32> = Core::new();
    let protocol = |v| {
        vec![Event::Reply {
            waiter: 0,
            result: Err(ReplyError::Protocol(v)),
        }]
    };
    // An ERROR without its NUL.
    let (id, _, _) = encode(&mut core, Request::Read("/a"), 0);
    assert_eq!(
        feed_all(&mut core, &msg(MsgType::Error, id, 0, b"ENOENT")),
        protocol(ProtocolViolation::MissingNul)
    );
    // An acknowledgement without its NUL.
    let (id, _, _) = encode(&mut core, Request::Mkdir("/a"), 0);
    assert_eq!(
        feed_all(&mut core, &msg(MsgType::Mkdir, id, 0, b"OK")),
        protocol(ProtocolViolation::MissingNul)
    );
    // A reply of the wrong type.
    let (id, _, _) = encode(&mut core, Request::Read("/a"), 0);
    assert_eq!(
        feed_all(&mut core, &raw(999, id, 0, b"x")),
        protocol(ProtocolViolation::UnexpectedReplyType {
            expected: MsgType::Read,
            got: 999
        })
    );
    // A transaction id that is not a number: no transaction recorded.
    let (id, _, _) = encode(&mut core, Request::TransactionStart, 0);
    let events = feed_all(&mut core, &msg(MsgType::TransactionStart, id, 0, b"x\0"));
    assert!(matches!(
        &events[0],
        Event::Reply {
            result: Err(ReplyError::Protocol(_)),
            ..
        }
    ));
    assert_eq!(core.open_transactions(), 0);
    let s = core.stats();
    assert_eq!((s.malformed, s.unexpected_type), (3, 1));
}

#[test]
fn oversized_header_breaks_the_stream_and_nothing_after_it_is_parsed() {
    let mut core: Core<u32> = Core::new();
    let (a, _, _) = encode(&mut core, Request::Read("/a"), 0);
    let (b, _, _) = encode(&mut core, Request::Read("/b"), 0);
    // A header announcing 5000 bytes, then a short body and b's reply: a
    // client skipping 5000 bytes would swallow b's reply as "body".
    let mut stream = Header {
        ty: MsgType::Read as u32,
        req_id: a,
        tx_id: 0,
        len: 5000,
    }
    .encode()
    .to_vec();
    stream.extend(b"short");
    stream.extend(msg(MsgType::Read, b, 0, b"fine"));
    for piece in [1, 7, 333, stream.len()] {
        let mut core: Core<u32> = Core::new();
        encode(&mut core, Request::Read("/a"), 0);
        encode(&mut core, Request::Read("/b"), 0);
        let mut events = Vec::new();
        for chunk in stream.chunks(piece) {
            core.feed(chunk, &mut |e| events.push(e));
        }
        assert_eq!(
            events,
            vec![Event::Broken(ProtocolViolation::PayloadTooLong {
                len: 5000
            })],
            "piece size {piece}"
        );
        assert_eq!(core.partial_message(), None);
    }
    let events = feed_all(&mut core, &stream);
    assert_eq!(events.len(), 1);
    assert_eq!(core.stats().oversized, 1);
    assert_eq!(core.in_flight(), 2, "the waiters are the runtime's to fail");
    // A reset connection parses again from a packet boundary.
    assert_eq!(core.reset_connection().len(), 2);
    let (c, _, _) = encode(&mut core, Request::Read("/c"), 0);
    assert_eq!(
        feed_all(&mut core, &msg(MsgType::Read, c, 0, b"again")),
        vec![Event::Reply {
            waiter: 0,
            result: Ok(b"again".to_vec())
        }]
    );
}

#[test]
fn oversized_watch_event_breaks_the_stream_too() {
    let mut core: Core<u32> = Core::new();
    let events = feed_all(&mut core, &msg(MsgType::WatchEvent, 0, 0, &vec![0; 4097]));
    assert_eq!(
        events,
        vec![Event::Broken(ProtocolViolation::PayloadTooLong {
            len: 4097
        })]
    );
}

#[test]
fn unknown_req_ids_and_stray_messages_are_dropped_and_counted() {
    let mut core: Core<u32> = Core::new();
    let mut stream = msg(MsgType::Read, 42, 0, b"who asked?");
    stream.extend(msg(MsgType::WatchEvent, 0, 0, b"/no-nul"));
    stream.extend(msg(MsgType::WatchEvent, 0, 0, b"/only-path\0"));
    let events = feed_all(&mut core, &stream);
    assert!(
        matches!(events[0], Event::Dropped(Dropped::UnknownReqId { header }) if header.req_id == 42)
    );
    assert_eq!(events[1], Event::Dropped(Dropped::MalformedWatchEvent));
    assert_eq!(events[2], Event::Dropped(Dropped::MalformedWatchEvent));
    let s = core.stats();
    assert_eq!(
        (s.unknown_req_id, s.malformed, s.oversized, s.replies),
        (1, 2, 0, 0)
    );
}

#[test]
fn abandoned_requests_get_late_replies() {
    let mut core: Core<u32> = Core::new();
    let (id, _, _) = encode(&mut core, Request::TransactionStart, 0);
    assert_eq!(core.abandon(id), Some(0));
    assert_eq!(core.abandon(id), None);
    let events = feed_all(&mut core, &msg(MsgType::TransactionStart, id, 0, b"3\0"));
    assert_eq!(
        events,
        vec![Event::LateReply {
            ty: MsgType::TransactionStart,
            result: Ok(b"3\0".to_vec())
        }]
    );
    // The late transaction is known, so the runtime can end it.
    assert!(core.is_open_transaction(3));
    assert_eq!(core.stats().late_replies, 1);
}

#[test]
fn the_oldest_waiter_is_the_one_whose_reply_comes_next() {
    let mut core: Core<u32> = Core::new();
    let mut ids = Vec::new();
    for (waiter, path) in [(10, "/a"), (11, "/b"), (12, "/c"), (13, "/d")] {
        let mut out = Vec::new();
        ids.push(
            core.encode(&Request::Read(path), 0, waiter, &mut out)
                .unwrap(),
        );
    }
    assert_eq!(core.oldest_waiter(), Some(&10));
    // Answered in order, the next waiter is always the oldest left...
    feed_all(&mut core, &msg(MsgType::Read, ids[0], 0, b"a"));
    assert_eq!(core.oldest_waiter(), Some(&11));
    // ...and an answer out of order (the daemon never sends one, but the
    // table must not care) leaves the order of the others as it was.
    feed_all(&mut core, &msg(MsgType::Read, ids[2], 0, b"c"));
    assert_eq!(core.oldest_waiter(), Some(&11));
    feed_all(&mut core, &msg(MsgType::Read, ids[1], 0, b"b"));
    assert_eq!(core.oldest_waiter(), Some(&13));
}

#[test]
fn reset_connection_returns_waiters_and_forgets_partial_input() {
    let mut core: Core<u32> = Core::new();
    let mut out = Vec::new();
    core.encode(&Request::Read("/a"), 0, 10, &mut out).unwrap();
    core.encode(&Request::Read("/b"), 0, 11, &mut out).unwrap();
    assert_eq!(core.oldest_waiter(), Some(&10));
    core.feed(&[1, 2, 3], &mut |_| panic!("no event from 3 bytes"));
    let mut waiters = core.reset_connection();
    waiters.sort();
    assert_eq!(waiters, [10, 11]);
    assert_eq!(core.oldest_waiter(), None);
    // A fresh stream parses from its first byte.
    let (id, _, _) = encode(&mut core, Request::Read("/a"), 0);
    assert_eq!(
        feed_all(&mut core, &msg(MsgType::Read, id, 0, b"v")).len(),
        1
    );
}

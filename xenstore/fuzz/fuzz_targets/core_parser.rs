//! Fuzzes the protocol core's receive side: whatever bytes a peer sends,
//! cut into whatever pieces, the core must not panic, and the events and
//! counters it reports must be the same as for the stream fed at once (the
//! parser never loses its place). Every reply body it hands on is also run
//! through the decoder of its type.
//!
//! Input layout: byte 0 seeds the piece sizes; the rest is the byte stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenstore::protocol::{Core, CoreStats, Event};
use xenstore::request::Request;
use xenstore::wire::MsgType;
use xenstore::{Access, DomId, Grant, reply};

/// A core with requests 1..=12 of assorted types in flight (request ids are
/// allocated from 1, so the fuzzer can hit them), one transaction open (id
/// from a TRANSACTION_START reply it may or may not send) and two watches.
fn core_in_flight() -> Core<MsgType> {
    let mut core = Core::new();
    let perms = [Grant {
        domid: DomId(1),
        access: Access::Read,
    }];
    let requests = [
        Request::Read("/a"),
        Request::Write {
            path: "/a",
            value: b"v",
        },
        Request::Directory("/a"),
        Request::DirectoryPart {
            path: "/a",
            offset: 0,
        },
        Request::GetPerms("/a"),
        Request::SetPerms {
            path: "/a",
            perms: &perms,
        },
        Request::TransactionStart,
        Request::GetDomainPath(DomId(1)),
        Request::Watch {
            path: "/a",
            token: "A",
        },
        Request::Rm("/a"),
        Request::IsDomainIntroduced(DomId(1)),
        Request::ResetWatches,
    ];
    let mut out = Vec::new();
    for req in requests {
        core.encode(&req, 0, req.msg_type(), &mut out)
            .expect("valid request");
    }
    // Request 10 (RM) gives up: its reply, if any, is a late one. (An RM,
    // so that every reply shape with a decoder stays live and checked.)
    core.abandon(10);
    core.register_watch("A", 1);
    core.register_watch("B", 2);
    core
}

fn decode(ty: MsgType, body: &[u8]) {
    // Only shapes `reply::check` accepted reach here; decoding must agree.
    let ok = match ty {
        MsgType::Directory => reply::directory(body).is_ok(),
        MsgType::DirectoryPart => reply::directory_page(body).is_ok(),
        MsgType::GetPerms => reply::permissions(body).is_ok(),
        MsgType::TransactionStart => reply::transaction_id(body).is_ok(),
        MsgType::GetDomainPath => reply::single_string(ty, body).is_ok(),
        MsgType::IsDomainIntroduced => reply::boolean(ty, body).is_ok(),
        MsgType::Read => true,
        _ => reply::ok(ty, body).is_ok(),
    };
    assert!(
        ok,
        "a {ty} reply passed the core's check but not its decoder: {body:?}"
    );
}

fn run(stream: &[u8], mut piece: impl FnMut() -> usize) -> (Vec<Event<MsgType>>, CoreStats, usize) {
    let mut core = core_in_flight();
    let mut events = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = piece().clamp(1, rest.len());
        core.feed(&rest[..n], &mut |e| events.push(e));
        rest = &rest[n..];
    }
    for e in &events {
        if let Event::Reply {
            waiter,
            result: Ok(body),
        } = e
        {
            decode(*waiter, body);
        }
    }
    let open = core.open_transactions();
    (events, core.stats(), open)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = run(stream, || usize::MAX);
    // Piece sizes from a small generator seeded by the first byte: 1..=64.
    let mut state = u32::from(seed) | 1;
    let pieces = run(stream, || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 64) as usize + 1
    });
    assert_eq!(
        whole, pieces,
        "cutting the stream differently changed what the core saw"
    );
    let bytewise = run(stream, || 1);
    assert_eq!(
        whole, bytewise,
        "feeding byte by byte changed what the core saw"
    );
    // Every message is counted once: as a reply, a routed event, or a drop.
    let (events, stats, _) = whole;
    let dropped = events
        .iter()
        .filter(|e| matches!(e, Event::Dropped(_)))
        .count() as u64;
    let counted_drops = stats.unknown_req_id + stats.unknown_watch_token + stats.malformed
        - malformed_replies(&events);
    // An over-long header ends the stream: reported once, nothing after it.
    let broken = events
        .iter()
        .position(|e| matches!(e, Event::Broken(_)));
    assert_eq!(broken.is_some() as u64, stats.oversized);
    if let Some(at) = broken {
        assert_eq!(at + 1, events.len(), "an event after the stream broke");
    }
    assert_eq!(
        dropped, counted_drops,
        "a dropped message was not counted, or counted twice"
    );
});

/// Malformed replies are counted in `malformed` but reported to their
/// requester (not as drops).
fn malformed_replies(events: &[Event<MsgType>]) -> u64 {
    use xenstore::ProtocolViolation as V;
    use xenstore::protocol::ReplyError as R;
    events
        .iter()
        .filter(|e| {
            let result = match e {
                Event::Reply { result, .. } | Event::LateReply { result, .. } => result,
                _ => return false,
            };
            matches!(
                result,
                Err(R::Protocol(
                    V::MissingNul | V::MalformedBody { .. }
                ))
            )
        })
        .count() as u64
}

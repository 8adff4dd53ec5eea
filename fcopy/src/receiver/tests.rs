use alloc::string::String;

use super::*;
use crate::wire::Flags;

fn start(name: &str, size: u64) -> Request<'_> {
    Request::Start(Start {
        dir: b"/",
        name: name.as_bytes(),
        size,
        flags: Flags::default(),
    })
}

fn status(rx: &mut Receiver, store: &mut FileStore, request: &Request<'_>) -> Status {
    rx.handle(store, request).0.status
}

#[test]
fn start_writes_complete_publishes_the_file_whole() {
    let mut store = FileStore::new(1 << 20);
    let mut rx = Receiver::new();
    assert_eq!(status(&mut rx, &mut store, &start("f", 6)), Status::Ok);
    // Out of order is fine; the store sees nothing until complete.
    let (r, _) = rx.handle(
        &mut store,
        &Request::Write {
            offset: 3,
            data: b"def",
        },
    );
    assert_eq!((r.status, r.value), (Status::Ok, 6));
    assert_eq!(store.get("/f"), None);
    assert_eq!(rx.in_flight(), Some(("/f", 6, 6)));
    rx.handle(
        &mut store,
        &Request::Write {
            offset: 0,
            data: b"abc",
        },
    );
    let (r, outcome) = rx.handle(&mut store, &Request::Complete);
    assert_eq!(r.status, Status::Ok);
    assert_eq!(outcome, Some(Outcome::Published(String::from("/f"), 6)));
    assert_eq!(store.get("/f"), Some(&b"abcdef"[..]));
    assert_eq!(rx.in_flight(), None);
}

#[test]
fn empty_files_arrive_too() {
    let mut store = FileStore::new(0);
    let mut rx = Receiver::new();
    assert_eq!(status(&mut rx, &mut store, &start("empty", 0)), Status::Ok);
    assert_eq!(status(&mut rx, &mut store, &Request::Complete), Status::Ok);
    assert_eq!(store.get("/empty"), Some(&b""[..]));
}

#[test]
fn each_refusal_has_its_status() {
    let mut store = FileStore::new(10);
    let mut rx = Receiver::new();
    assert_eq!(
        status(&mut rx, &mut store, &start("big", 11)),
        Status::OutOfSpace
    );
    assert_eq!(
        status(&mut rx, &mut store, &start("..", 1)),
        Status::BadName
    );
    assert_eq!(
        status(&mut rx, &mut store, &start("a\0", 1)),
        Status::BadName
    );
    let nested = Request::Start(Start {
        dir: b"/no/such",
        name: b"f",
        size: 1,
        flags: Flags::default(),
    });
    assert_eq!(status(&mut rx, &mut store, &nested), Status::NoSuchPath);
    for idle in [
        Request::Write {
            offset: 0,
            data: b"x",
        },
        Request::Complete,
        Request::Cancel,
    ] {
        assert_eq!(status(&mut rx, &mut store, &idle), Status::NoTransfer);
    }
    assert_eq!(status(&mut rx, &mut store, &start("f", 4)), Status::Ok);
    assert_eq!(status(&mut rx, &mut store, &start("g", 1)), Status::Busy);
    for (offset, data) in [(4u64, &b"x"[..]), (2, b"xyz"), (u64::MAX, b"x")] {
        let (r, _) = rx.handle(&mut store, &Request::Write { offset, data });
        assert_eq!(
            (r.status, r.value),
            (Status::OffsetOutOfRange, 4),
            "{offset}"
        );
    }
    rx.handle(
        &mut store,
        &Request::Write {
            offset: 0,
            data: b"ab",
        },
    );
    let (r, _) = rx.handle(&mut store, &Request::Complete);
    assert_eq!((r.status, r.value), (Status::Incomplete, 2));
    // Still under way: the rest, then complete.
    rx.handle(
        &mut store,
        &Request::Write {
            offset: 2,
            data: b"cd",
        },
    );
    assert_eq!(status(&mut rx, &mut store, &Request::Complete), Status::Ok);
    assert_eq!(status(&mut rx, &mut store, &start("f", 1)), Status::Exists);
}

#[test]
fn cancel_and_abort_leave_no_file_and_give_the_space_back() {
    let mut store = FileStore::new(10);
    let mut rx = Receiver::new();
    status(&mut rx, &mut store, &start("f", 8));
    rx.handle(
        &mut store,
        &Request::Write {
            offset: 0,
            data: b"half",
        },
    );
    assert_eq!(store.free(), 2);
    let (r, outcome) = rx.handle(&mut store, &Request::Cancel);
    assert_eq!(r.status, Status::Ok);
    assert_eq!(outcome, Some(Outcome::Dropped(String::from("/f"), 4)));
    assert_eq!((store.get("/f"), store.free()), (None, 10));
    // The sender vanishing: the connection's owner aborts.
    status(&mut rx, &mut store, &start("f", 8));
    assert_eq!(
        rx.abort(&mut store),
        Some(Outcome::Dropped(String::from("/f"), 0))
    );
    assert_eq!((store.get("/f"), store.free()), (None, 10));
    assert_eq!(rx.abort(&mut store), None);
}

use alloc::vec;
use alloc::vec::Vec;

use super::*;

fn frame(request: &Request<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(request, &mut out).unwrap();
    out
}

fn decode(frame: &[u8]) -> Result<Request<'_>, DecodeError> {
    let header = parse_header(frame)?;
    decode_request(header, &frame[HEADER_LEN..])
}

fn start() -> Request<'static> {
    Request::Start(Start {
        dir: b"/in",
        name: b"file.bin",
        size: 10 << 20,
        flags: Flags {
            overwrite: true,
            create_path: false,
        },
    })
}

#[test]
fn every_request_round_trips() {
    let data = [7u8; 100];
    for request in [
        start(),
        Request::Write {
            offset: 1 << 33,
            data: &data,
        },
        Request::Write {
            offset: 0,
            data: &[],
        },
        Request::Complete,
        Request::Cancel,
    ] {
        let bytes = frame(&request);
        assert_eq!(decode(&bytes), Ok(request));
    }
}

#[test]
fn replies_round_trip_and_unknown_codes_stay_typed() {
    for status in [
        Status::Ok,
        Status::OutOfSpace,
        Status::Malformed,
        Status::Other(999),
    ] {
        let reply = Reply {
            answers: Kind::Write,
            status,
            value: 12345,
        };
        assert_eq!(decode_reply(&encode_reply(&reply)), Ok(reply));
    }
    assert_eq!(Status::from_code(999), Status::Other(999));
}

#[test]
fn the_layout_is_the_documented_one() {
    let bytes = frame(&Request::Write {
        offset: 0x0102,
        data: b"ab",
    });
    assert_eq!(
        bytes,
        [
            b'F', b'C', 1, 2, 10, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, b'a', b'b'
        ]
    );
    let reply = encode_reply(&Reply {
        answers: Kind::Complete,
        status: Status::Exists,
        value: 5,
    });
    assert_eq!(
        reply,
        [
            b'F', b'C', 1, 0x81, 12, 0, 0, 0, 1, 0, 3, 0, 5, 0, 0, 0, 0, 0, 0, 0
        ]
    );
}

#[test]
fn short_frames_are_short_at_every_cut() {
    for request in [
        start(),
        Request::Write {
            offset: 3,
            data: b"xyz",
        },
        Request::Cancel,
    ] {
        let bytes = frame(&request);
        for cut in 0..bytes.len() {
            match decode(&bytes[..cut]) {
                Err(DecodeError::Short { need, have }) => assert!(have < need, "cut {cut}"),
                other => panic!("cut {cut} of {request:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn huge_lengths_are_refused_from_the_header_alone() {
    let mut bytes = frame(&Request::Cancel);
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(parse_header(&bytes), Err(DecodeError::TooLong(u32::MAX)));
    bytes[4..8].copy_from_slice(&((MAX_BODY + 1) as u32).to_le_bytes());
    bytes[3] = Kind::Write.code();
    assert_eq!(
        parse_header(&bytes),
        Err(DecodeError::TooLong(MAX_BODY as u32 + 1))
    );
    // A cancel with a body, a write without its offset.
    bytes[4..8].copy_from_slice(&4u32.to_le_bytes());
    bytes[3] = Kind::Cancel.code();
    assert_eq!(
        parse_header(&bytes),
        Err(DecodeError::BadLength {
            kind: Kind::Cancel,
            len: 4
        })
    );
    bytes[3] = Kind::Write.code();
    assert!(matches!(
        parse_header(&bytes),
        Err(DecodeError::BadLength { .. })
    ));
}

#[test]
fn bad_magic_version_kind_and_direction_are_typed() {
    let good = frame(&Request::Complete);
    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(parse_header(&b), Err(DecodeError::BadMagic([b'X', b'C'])));
    let mut b = good.clone();
    b[2] = 2;
    assert_eq!(parse_header(&b), Err(DecodeError::BadVersion(2)));
    let mut b = good.clone();
    b[3] = 0x55;
    assert_eq!(parse_header(&b), Err(DecodeError::UnknownKind(0x55)));
    let reply = encode_reply(&Reply {
        answers: Kind::Start,
        status: Status::Ok,
        value: 0,
    });
    assert_eq!(
        decode(&reply),
        Err(DecodeError::WrongDirection(Kind::Status))
    );
    assert_eq!(
        decode_reply(&good),
        Err(DecodeError::WrongDirection(Kind::Complete))
    );
}

#[test]
fn start_string_lengths_must_add_up_and_stay_in_bounds() {
    let mut bytes = frame(&start());
    // The name claims one byte more than the body holds.
    bytes[HEADER_LEN + 14] += 1;
    assert_eq!(decode(&bytes), Err(DecodeError::BadStringLength));
    let mut bytes = frame(&start());
    bytes[HEADER_LEN + 12..HEADER_LEN + 14].copy_from_slice(&u16::MAX.to_le_bytes());
    assert_eq!(decode(&bytes), Err(DecodeError::BadStringLength));
    let mut bytes = frame(&start());
    bytes[HEADER_LEN + 8] = 0x80;
    assert_eq!(decode(&bytes), Err(DecodeError::UnknownFlags(0x80)));
    let long = vec![b'a'; MAX_NAME + 1];
    let mut out = Vec::new();
    let too_long = Request::Start(Start {
        dir: b"/",
        name: &long,
        size: 0,
        flags: Flags::default(),
    });
    assert_eq!(
        encode_request(&too_long, &mut out),
        Err(EncodeError::NameTooLong(MAX_NAME + 1))
    );
    assert_eq!(
        write_prefix(0, MAX_CHUNK + 1),
        Err(EncodeError::ChunkTooLong(MAX_CHUNK + 1))
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let valid = frame(&start());
    for round in 0..20_000 {
        let len = (next() % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Half the time a valid header prefix, so the body checks run too.
        if round % 2 == 0 && bytes.len() >= 4 {
            bytes[..4].copy_from_slice(&valid[..4]);
        }
        let _ = decode(&bytes);
        let _ = decode_reply(&bytes);
    }
}

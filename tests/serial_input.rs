//! Serial input: bytes the runner feeds to COM1 arrive through the receive
//! interrupt and are read as lines (CRLF and LF endings) and raw bytes.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::time::Duration;

use kernel::serial::{self, ReadLineError};
use kernel::time::Instant;

ktests::config!(timeout_secs = 30, stdin = "hello kernel\r\nsecond line\nXY");
ktests::main!(
    lines_arrive_through_the_receive_interrupt,
    bytes_then_timeout_when_input_stops,
);

fn lines_arrive_through_the_receive_interrupt() {
    let mut line = Vec::new();
    let n = serial::read_line(&mut line, 80, Some(Duration::from_secs(10))).expect("first line");
    assert_eq!(&line[..n], b"hello kernel");
    serial::read_line(&mut line, 80, Some(Duration::from_secs(10))).expect("second line");
    assert_eq!(line, b"second line");
}

fn bytes_then_timeout_when_input_stops() {
    assert_eq!(serial::read_byte(Some(Duration::from_secs(10))), Some(b'X'));
    assert_eq!(serial::read_byte(Some(Duration::from_secs(10))), Some(b'Y'));
    let start = Instant::now();
    assert_eq!(serial::read_byte(Some(Duration::from_millis(50))), None);
    assert!(start.elapsed() >= Duration::from_millis(50));
    let mut line = Vec::new();
    assert_eq!(
        serial::read_line(&mut line, 80, Some(Duration::from_millis(20))),
        Err(ReadLineError::Timeout)
    );
    assert_eq!(serial::rx_dropped(), 0);
}

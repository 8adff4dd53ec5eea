//! The file copy service's throughput against the raw vchan's, on real
//! Xen, in one boot (`realxen bench fcopy`, run by `./run-bench.sh`): in
//! each of [`ROUNDS`] rounds, a fresh 16 MiB file of random bytes from
//! dom0, first raw through dom0's `vchan-socket-proxy` into a vchan of
//! ours, then the same file through `xen-fcopy` into the file copy service.
//! Benchmark lines only (`bench: key=value`, one per round); the test
//! asserts that both copies are byte-exact, never a speed.
//!
//! Each rate is timed where the transfer is: the raw one in the guest,
//! from the proxy's connection to the last byte read; the file copy by
//! `xen-fcopy`, from its start frame to the answer to complete.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec;
use core::time::Duration;

use ::xenstore::Store;
use kernel::time::Instant;
use kernel::vchan::{BULK_RING_BYTES, Vchan};
use ktests::support::{abs, client, host};
use xen::DomId;

ktests::config!(role = "xen", timeout_secs = 1800);
ktests::main!(file_copy_and_raw_vchan_move_16_mib);

const BYTES: usize = 16 << 20;
/// The bench's minimum for a median.
const ROUNDS: usize = 5;
/// A "never" bound for one wait on this bed.
const WAIT: Duration = Duration::from_secs(300);

/// `bytes` in `us` microseconds as MiB/s with three decimals.
fn mib_per_s(bytes: u64, us: u64) -> String {
    let milli = bytes * 1_000_000 / us.max(1) * 1000 / (1 << 20);
    alloc::format!("{}.{:03}", milli / 1000, milli % 1000)
}

fn file_copy_and_raw_vchan_move_16_mib() {
    client(); // the file copy service runs on the xenstore service
    let config = kernel::fcopy::Config {
        cap: (BYTES as u64) + (1 << 20),
        idle: Duration::from_secs(60),
    };
    kernel::fcopy::start(config).expect("the file copy service starts");
    for round in 0..ROUNDS {
        one_round(round);
    }
}

/// One round: the raw copy, then the file copy, of one fresh file.
fn one_round(round: usize) {
    let domid = client().read_string("domid").unwrap();
    let path = abs(&alloc::format!("data/vchan-bench{round}"));
    let v =
        Vchan::server(DomId::DOM0, &path, BULK_RING_BYTES, BULK_RING_BYTES).expect("vchan server");
    // dom0 writes BYTES random bytes to /tmp/vc-bench.in and sends them.
    let sent = host("vchan-send", &["bench", &domid, &path, &BYTES.to_string()]);
    v.wait_connected(Some(WAIT)).expect("dom0's proxy connects");
    // Into memory as the file copy stages it; summed afterwards, so the
    // sum's cost is in neither rate.
    let mut data = vec![0u8; BYTES];
    let start = Instant::now();
    let mut got = 0;
    while got < BYTES {
        let end = BYTES.min(got + (64 << 10));
        let n = v.read(&mut data[got..end], Some(WAIT)).expect("vchan read");
        assert!(n > 0, "end of stream after {got} bytes");
        got += n;
    }
    let raw_us = start.elapsed().as_micros() as u64;
    assert_eq!(
        [fcopy::crc32::of(&data).hex()],
        sent.as_slice(),
        "the raw copy is byte-exact"
    );
    v.close();
    assert_eq!(host("vchan-wait", &["bench"]), ["0"], "the proxy exits 0");
    drop(data);

    // Longer than `host`'s default wait: 16 MiB at 1-3 MiB/s, shared cores.
    let args: [&[u8]; 2] = [domid.as_bytes(), b"/tmp/vc-bench.in"];
    let rate = kernel::hostlink::request_timeout("fcopy-send", &args, Duration::from_secs(600))
        .expect("dom0's xen-fcopy sends the file");
    let rate: alloc::vec::Vec<String> = rate
        .into_iter()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .collect();
    let copied = kernel::fcopy::read("/vc-bench.in", |data| fcopy::crc32::of(data).hex())
        .expect("the file arrived");
    assert_eq!([copied], sent.as_slice(), "the file copy is byte-exact");
    kernel::fcopy::remove("/vc-bench.in").expect("the copy is removed for the next round");
    log::info!(
        "bench: vchan_mib_per_s={} fcopy_mib_per_s={} bytes={BYTES}",
        mib_per_s(BYTES as u64, raw_us),
        rate.first().map_or("?", String::as_str)
    );
}

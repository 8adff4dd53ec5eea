//! Benchmark image (role "bench": run by `bootimage bench`, not by the test
//! suite). Prints `bench: key=value` lines, one per sample: each figure is
//! sampled [`SAMPLES`] times, alternating with the others, and `bootimage
//! bench` prints each figure's median with its min, max and spread:
//!
//! - `guest_read_1t`, `guest_read_4t`: READs per second of one node by 1 and
//!   by 4 kernel threads sharing the service's client, over the ring to the
//!   real xenstored (each thread waits for its reply before the next
//!   request; with 4 threads up to 4 are in flight).
//! - `guest_watch_latency_p50_us`, `_p99_us`: from a host write to the
//!   guest's watch callback, estimated as half the round trip the host
//!   times on its own clock (host and guest share no clock): the host
//!   writes `data/bench/lat` = i over a dom0 socket; the guest's callback, at its
//!   i-th change event, writes `data/bench/ack` = i (no read first); the host's
//!   watch on `data/bench/ack` sees i. The legs are alike (a write reaches the
//!   daemon, which fires a watch whose event crosses to the other side), but
//!   the host's leg ends in a socket read on the host while the guest's ends
//!   in an MSI-X interrupt and two thread wake-ups in QEMU: the host's leg is
//!   the shorter, so half the round trip errs low, by half the difference.
//!   The full round trip is printed too
//!   (`guest_watch_rtt_*`).
//! - `guest_serial_rtt_us`: a no-op request to the host agent over COM1 (the
//!   control channel's own cost, for context).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use ::xenstore::Store;
use kernel::thread;
use kernel::time::Instant;
use ktests::support::bench::{report, watch_round_trips};
use ktests::support::{client, host};

ktests::config!(timeout_secs = 300, needs = "xenstore", role = "bench");
ktests::main!(read_throughput, watch_latency, serial_round_trip);

/// Samples of every figure (the bench's minimum for a median).
const SAMPLES: usize = 5;
/// How long each throughput sample lasts.
const RUN: Duration = Duration::from_secs(1);
/// Watch round trips the host times per sample (p50 and p99 of these).
const ROUND_TRIPS_PER_SAMPLE: u64 = 200;

/// Reads per second by `threads` threads for [`RUN`].
fn reads_per_second(threads: usize) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (stop, total) = (stop.clone(), total.clone());
            thread::spawn_joinable(&format!("reader-{i}"), move || {
                let xs = client();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = xs.read("name").expect("read");
                    assert_eq!(name, b"guest1");
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join();
    }
    let elapsed = start.elapsed().as_micros().max(1) as u64;
    total.load(Ordering::Relaxed) * 1_000_000 / elapsed
}

fn read_throughput() {
    client(); // attach before timing
    for _ in 0..SAMPLES {
        report("guest_read_1t", reads_per_second(1));
        report("guest_read_4t", reads_per_second(4));
    }
}

fn watch_latency() {
    for _ in 0..SAMPLES {
        watch_latency_sample();
    }
}

/// One sample: [`ROUND_TRIPS_PER_SAMPLE`] round trips timed by the host.
fn watch_latency_sample() {
    let (p50, p99) = watch_round_trips(
        &client(),
        "data/bench/lat",
        "data/bench/ack",
        ROUND_TRIPS_PER_SAMPLE,
    );
    report("guest_watch_latency_p50_us", p50 / 2);
    report("guest_watch_latency_p99_us", p99 / 2);
    report("guest_watch_rtt_p50_us", p50);
    report("guest_watch_rtt_p99_us", p99);
}

fn serial_round_trip() {
    const ROUNDS: u64 = 20;
    for _ in 0..SAMPLES {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            host("nop", &[]);
        }
        report(
            "guest_serial_rtt_us",
            start.elapsed().as_micros() as u64 / ROUNDS,
        );
    }
}

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
use ktests::support::{abs, client, host};

ktests::config!(timeout_secs = 300, needs = "xenstore", role = "bench");
ktests::main!(read_throughput, watch_latency, serial_round_trip);

/// Samples of every figure (the bench's minimum for a median).
const SAMPLES: usize = 5;
/// How long each throughput sample lasts.
const RUN: Duration = Duration::from_secs(1);
/// Watch round trips the host times per sample (p50 and p99 of these).
const ROUND_TRIPS_PER_SAMPLE: u64 = 200;

fn report(key: &str, value: impl core::fmt::Display) {
    kernel::println!("bench: {key}={value}");
}

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

/// One sample: a fresh watch (its initial event is its first), then
/// [`ROUND_TRIPS_PER_SAMPLE`] round trips timed by the host.
fn watch_latency_sample() {
    let xs = client();
    let echo = xs.clone();
    // Events seen; the first is the daemon's initial event for the watch,
    // then one per host write (the host waits for each acknowledgement).
    let mut seen: u64 = 0;
    let watch = xs
        .watch("data/bench/lat", move |event| {
            if event.path() != Some("data/bench/lat") {
                return;
            }
            if seen > 0 {
                echo.write_display("data/bench/ack", seen - 1)
                    .expect("acknowledge");
            }
            seen += 1;
        })
        .unwrap();
    let count = format!("{ROUND_TRIPS_PER_SAMPLE}");
    let rtt = host(
        "latency",
        &[&abs("data/bench/lat"), &abs("data/bench/ack"), &count],
    );
    let p50: u64 = rtt[0].parse().unwrap();
    let p99: u64 = rtt[1].parse().unwrap();
    watch.unwatch().unwrap();
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

//! Benchmark image (role "bench": run by `bootimage bench`, not by the test
//! suite): how the kernel's costs grow with the size of what it handles, on
//! the fast bed (the real xenstored, its quotas raised for the run: see
//! [`QUOTAS`]). For each size it prints time per operation (a median of 5
//! samples) and the kernel heap's high-water mark above its level before
//! (exact):
//!
//! - `scaling_watches_N_*`, N watches registered (10, 1,000, 10,000): the
//!   time to register and to remove one, and the watch round trip of one
//!   more watch, timed by the host. The round trip must not grow with N.
//!   `scaling_dom0_watches_N_round_trip_p50_us` is the control: the same
//!   round trip while dom0, not the guest, holds the N watches. xenstored
//!   compares every write with every watch of every connection, so what
//!   grows in both grows in the daemon; what grows only in the first is
//!   ours.
//! - `scaling_directory_N_*`, a directory of N children (10, 1,000,
//!   10,000; dom0 writes them): the time of one `directory()` and the heap
//!   it takes next to the size of its answer. Memory must stay linear in
//!   the answer (no quadratic copies). Past 4 KiB the answer comes in
//!   DIRECTORY_PART pages, one request each.
//! - `scaling_devices_N_*`, N xenbus devices hot-added by the host's
//!   toolstack (1, 50, 200): the time per device from the first `xl
//!   device-attach`-like write to every device attached by its driver.
//!   Attach time per device must stay flat.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

use ::xenstore::Store;
use kernel::guest::KernelDevice;
use kernel::memory::heap;
use kernel::time::Instant;
use kernel::xenstore_service::KernelPlatform;
use ktests::support::bench::{report, report_exact, watch_round_trips};
use ktests::support::bus::{guest, wait_until};
use ktests::support::{abs, client, home, host};
use xenbus::{BusError, Driver, OtherendState};

ktests::config!(timeout_secs = 1800, needs = "xenbus", role = "bench");
ktests::main!(raise_quotas, watches, directory, devices);

/// The daemon's per-domain limits for the run (xenstored's defaults:
/// 128 watches, 1,000 nodes, 2.5 MiB of memory), raised so that 10,000
/// watches and 200 devices fit.
const QUOTAS: &[&str] = &["watches=20000", "nodes=50000", "memory=268435456"];
/// Samples of every timed figure.
const SAMPLES: usize = 5;
/// Round trips per latency sample.
const ROUND_TRIPS: u64 = 50;

fn raise_quotas() {
    for quota in QUOTAS {
        host("quota", &[quota]);
    }
    report_exact(
        "scaling_daemon_quotas",
        QUOTAS.join(","),
        "per-domain quotas set in xenstored for this run",
    );
}

/// Runs `op` with a fresh heap high-water mark; returns its result and the
/// bytes the heap peaked at above its use before.
fn with_heap_peak<T>(op: impl FnOnce() -> T) -> (T, u64) {
    let before = heap::reset_peak();
    let out = op();
    (out, heap::stats().peak.saturating_sub(before))
}

fn kib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1024.0)
}

/// Microseconds per operation of `count` operations that took `since`.
fn us_per_op(since: Instant, count: usize) -> u64 {
    since.elapsed().as_micros() as u64 / count.max(1) as u64
}

fn watches() {
    let xs = client();
    for n in [10usize, 1_000, 10_000] {
        let mut register = Vec::new();
        let mut remove = Vec::new();
        let mut peak = 0;
        for _ in 0..SAMPLES {
            let start = Instant::now();
            let (held, bytes) = with_heap_peak(|| {
                (0..n)
                    .map(|i| {
                        xs.watch(&format!("data/scale/w/{i}"), |_| {})
                            .unwrap_or_else(|e| panic!("watch {i} of {n}: {e}"))
                    })
                    .collect::<Vec<_>>()
            });
            register.push(us_per_op(start, n));
            peak = peak.max(bytes);
            let (p50, _) = watch_round_trips(&xs, "data/scale/lat", "data/scale/ack", ROUND_TRIPS);
            report(&format!("scaling_watches_{n}_round_trip_p50_us"), p50);
            let start = Instant::now();
            for w in held {
                w.unwatch().unwrap();
            }
            remove.push(us_per_op(start, n));
        }
        for (what, samples) in [("register", register), ("remove", remove)] {
            for us in samples {
                report(&format!("scaling_watches_{n}_{what}_us_per_watch"), us);
            }
        }
        for _ in 0..SAMPLES {
            host("hold-watches", &[&abs("data/scale/dom0w"), &format!("{n}")]);
            let (p50, _) = watch_round_trips(&xs, "data/scale/lat", "data/scale/ack", ROUND_TRIPS);
            report(&format!("scaling_dom0_watches_{n}_round_trip_p50_us"), p50);
            host("drop-watches", &[]);
        }
        report_exact(
            &format!("scaling_watches_{n}_heap_peak_kib"),
            kib(peak),
            "heap high-water mark while registering them, above the level before",
        );
    }
}

fn directory() {
    let xs = client();
    for n in [10usize, 1_000, 10_000] {
        // dom0 owns the directory (its children do not count against our
        // node quota) and lets us read it. Each size has its own, never
        // removed: xenstored takes minutes to remove 10,000 nodes here.
        let dir = &format!("data/scale/dir{n}");
        host("xenstore-write", &[&abs(dir), ""]);
        let perms = format!("r{}", home().rsplit('/').next().unwrap_or_default());
        host("xenstore-chmod", &[&abs(dir), "n0", &perms]);
        host("flood", &[&abs(dir), &format!("{n}")]);
        let calls = (10_000 / n).clamp(1, 100);
        let mut answer_bytes = 0;
        let mut peak = 0;
        for _ in 0..SAMPLES {
            let start = Instant::now();
            for _ in 0..calls {
                let (names, bytes) = with_heap_peak(|| xs.directory(dir).expect("directory"));
                assert_eq!(names.len(), n, "children of {dir}");
                answer_bytes = names.iter().map(|c| c.len() + 1).sum::<usize>();
                peak = peak.max(bytes);
            }
            report(
                &format!("scaling_directory_{n}_us_per_call"),
                us_per_op(start, calls),
            );
        }
        report_exact(
            &format!("scaling_directory_{n}_answer_kib"),
            kib(answer_bytes as u64),
            "the children's names, NUL-terminated, as the daemon sends them",
        );
        report_exact(
            &format!("scaling_directory_{n}_heap_peak_kib"),
            kib(peak),
            "heap high-water mark during one directory(), above the level before",
        );
    }
}

/// A driver that only counts its devices attached and detached.
#[derive(Default)]
struct CountingDriver {
    attached: AtomicUsize,
    detached: AtomicUsize,
}

impl Driver<KernelPlatform> for CountingDriver {
    fn probe(&self, _dev: &KernelDevice) -> Result<(), BusError> {
        Ok(())
    }

    fn attach(&self, _dev: &KernelDevice) -> Result<(), BusError> {
        self.attached.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn detach(&self, _dev: &KernelDevice) {
        self.detached.fetch_add(1, Ordering::Relaxed);
    }

    fn otherend_changed(&self, _dev: &KernelDevice, _state: &OtherendState) {}
}

fn devices() {
    const LIMIT: Duration = Duration::from_secs(300);
    let driver = Arc::new(CountingDriver::default());
    guest()
        .bus()
        .register_driver("vkbd", driver.clone())
        .unwrap();
    let mut first = 0;
    for n in [1usize, 50, 200] {
        let mut peak = 0;
        for _ in 0..SAMPLES {
            let (ids, count) = (format!("{first}"), format!("{n}"));
            let attached = driver.attached.load(Ordering::Relaxed);
            let start = Instant::now();
            let ((), bytes) = with_heap_peak(|| {
                host("devices-add", &["vkbd", &ids, &count, "auto"]);
                wait_until(&format!("{n} devices attached"), LIMIT, || {
                    driver.attached.load(Ordering::Relaxed) == attached + n
                });
            });
            report(
                &format!("scaling_devices_{n}_attach_us_per_device"),
                us_per_op(start, n),
            );
            peak = peak.max(bytes);
            let detached = driver.detached.load(Ordering::Relaxed);
            host("devices-remove", &["vkbd", &ids, &count]);
            wait_until(&format!("{n} devices detached"), LIMIT, || {
                driver.detached.load(Ordering::Relaxed) == detached + n
            });
            first += n;
        }
        report_exact(
            &format!("scaling_devices_{n}_heap_peak_kib"),
            kib(peak),
            "heap high-water mark while adding and attaching them, above the level before",
        );
    }
}

//! What the benchmark images (role "bench") share: the `bench:` line
//! format that `bootimage bench` summarises, and the watch round trip the
//! host times.

use alloc::format;
use alloc::string::String;

use ::xenstore::Store;
use kernel::xenstore_service::XsClient;

use super::{abs, host};

/// Prints one sample of figure `key`; `bootimage bench` prints the median
/// of a key's samples with their min, max and spread.
pub fn report(key: &str, value: impl core::fmt::Display) {
    kernel::println!("bench: {key}={value}");
}

/// Prints a figure that is exact, not sampled (a count, a high-water mark):
/// `bootimage bench` prints it as it is.
pub fn report_exact(key: &str, value: impl core::fmt::Display, about: &str) {
    kernel::println!("bench-exact: {key}={value}  # {about}");
}

/// Host-timed watch round trips, `count` of them: a fresh watch on `lat`
/// (its initial event is the first it sees), then the host writes `lat` =
/// i and the callback, at its i-th change event, writes `ack` = i (no read
/// first), which the host's own watch sees. Returns the host's p50 and p99
/// in microseconds. `lat` and `ack` are relative to the guest's home.
pub fn watch_round_trips(xs: &XsClient, lat: &str, ack: &str, count: u64) -> (u64, u64) {
    let echo = xs.clone();
    let ack_path = String::from(ack);
    let lat_path = String::from(lat);
    let mut seen: u64 = 0;
    let watch = xs
        .watch(lat, move |event| {
            if event.path() != Some(lat_path.as_str()) {
                return;
            }
            if seen > 0 {
                echo.write_display(&ack_path, seen - 1)
                    .expect("acknowledge");
            }
            seen += 1;
        })
        .unwrap();
    let count = format!("{count}");
    let rtt = host("latency", &[&abs(lat), &abs(ack), &count]);
    watch.unwatch().unwrap();
    (rtt[0].parse().unwrap(), rtt[1].parse().unwrap())
}

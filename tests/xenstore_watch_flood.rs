//! 10,000 host writes to a watched directory, as fast as a dom0 socket
//! client makes them, arrive in the guest's watch callback complete and in
//! order, or with gaps accounted for exactly as the xenstore crate's
//! per-watch bound policy documents: an event that does not fit the watch's
//! queue (`Config::watch_queue_limit`) is dropped and counted in one
//! `WatchEvent::Overflow { missed }` marker queued at that point, before the
//! next event that fits.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::time::Duration;

use ::xenstore::WatchEvent;
use kernel::sync::{SpinLock, WaitQueue};
use kernel::time::Instant;
use ktests::support::{abs, client, host};

ktests::config!(timeout_secs = 120, needs = "xenstore");
ktests::main!(
    ten_thousand_host_writes_arrive_in_order_none_lost,
    a_slow_callback_is_told_exactly_what_its_full_queue_dropped,
);

const WRITES: u64 = 10_000;

/// What the callback checked so far.
struct Tally {
    /// The watched directory (relative).
    node: &'static str,
    /// The daemon's initial event for the new watch arrived.
    initial: bool,
    /// The next write index expected.
    next: u64,
    /// Events delivered (change events for `flood/<i>`).
    delivered: u64,
    /// Events the watch queue dropped, from overflow markers.
    missed: u64,
    /// Overflow markers seen.
    markers: u64,
    /// Missed events announced by a marker and not yet accounted for by
    /// the gap before the next delivered event.
    pending_gap: u64,
    /// The first violation of the policy, if any.
    error: Option<String>,
    /// The first events, for the failure message.
    first: alloc::vec::Vec<WatchEvent>,
}

impl Tally {
    fn new(node: &'static str) -> Self {
        Tally {
            node,
            initial: false,
            next: 0,
            delivered: 0,
            missed: 0,
            markers: 0,
            pending_gap: 0,
            error: None,
            first: alloc::vec::Vec::new(),
        }
    }

    fn on_event(&mut self, event: &WatchEvent) {
        if self.first.len() < 8 {
            self.first.push(event.clone());
        }
        if self.error.is_some() {
            return;
        }
        match event {
            WatchEvent::Changed { path } if path == self.node && !self.initial => {
                self.initial = true
            }
            WatchEvent::Changed { path } => {
                let index = path
                    .strip_prefix(self.node)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .and_then(|i| i.parse::<u64>().ok());
                match index {
                    Some(i) if i == self.next + self.pending_gap => {
                        self.delivered += 1;
                        self.next = i + 1;
                        self.pending_gap = 0;
                    }
                    _ => {
                        self.error = Some(format!(
                            "event {path:?} after {} delivered, expected {}/{} (gap {} announced)",
                            self.delivered,
                            self.node,
                            self.next + self.pending_gap,
                            self.pending_gap
                        ))
                    }
                }
            }
            WatchEvent::Overflow { missed } => {
                self.markers += 1;
                self.missed += missed;
                self.pending_gap += missed;
            }
        }
    }

    fn accounted(&self) -> u64 {
        self.delivered + self.missed
    }
}

/// Floods `node` (a fresh directory) with [`WRITES`] host writes while a
/// watch on it runs `slow_down` in its callback; returns the tally once
/// every write is accounted for, after checking the policy held.
fn flood_and_tally(node: &'static str, slow_down: fn()) -> Tally {
    let xs = client();
    // The directory is dom0's (its 10,000 children count against no guest
    // quota), readable by us (events need read access).
    let dir = abs(node);
    host("xenstore-write", &[&dir, ""]);
    host("xenstore-chmod", &[&dir, "n0", "r1"]);
    let overflowed_before = xs.stats().watch_events_overflowed;

    let tally = Arc::new(SpinLock::new(Tally::new(node)));
    let progress = Arc::new(WaitQueue::new());
    let (t, p) = (tally.clone(), progress.clone());
    let watch = xs
        .watch(node, move |event| {
            t.lock().on_event(event);
            p.wake_all();
            slow_down();
        })
        .unwrap();
    let initial = progress.wait_until(|| tally.lock().initial, Some(Duration::from_secs(20)));
    assert!(initial, "no initial watch event");

    let start = Instant::now();
    let host_us: u64 = host("flood", &[&dir, &format!("{WRITES}")])[0]
        .parse()
        .unwrap();
    let done = progress.wait_until(
        || {
            let t = tally.lock();
            t.error.is_some() || t.accounted() >= WRITES
        },
        Some(Duration::from_secs(60)),
    );
    let elapsed = start.elapsed();
    watch.unwatch().unwrap();
    let t = core::mem::replace(&mut *tally.lock(), Tally::new(node));
    if let Some(e) = &t.error {
        panic!(
            "watch events out of order or lost: {e}; first events {:?}",
            t.first
        );
    }
    assert!(
        done,
        "only {} of {WRITES} events accounted for after 60 s ({} delivered, {} missed)",
        t.accounted(),
        t.delivered,
        t.missed
    );
    assert_eq!(t.accounted(), WRITES);
    assert_eq!(
        t.next + t.pending_gap,
        WRITES,
        "the last write was accounted for"
    );
    let stats = xs.stats();
    assert_eq!(
        stats.watch_events_overflowed - overflowed_before,
        t.missed,
        "the runtime's own count agrees"
    );
    assert_eq!(stats.core.unknown_watch_token + stats.core.malformed, 0);
    log::info!(
        "{WRITES} host writes in {} ms (host), all accounted in the guest after {elapsed:?}: \
         {} delivered, {} dropped at {} overflow markers",
        host_us / 1000,
        t.delivered,
        t.missed,
        t.markers
    );
    t
}

fn ten_thousand_host_writes_arrive_in_order_none_lost() {
    // A callback that keeps up: every event is delivered, in order.
    let t = flood_and_tally("flood", || {});
    assert_eq!((t.delivered, t.missed, t.markers), (WRITES, 0, 0));
}

fn a_slow_callback_is_told_exactly_what_its_full_queue_dropped() {
    // A callback far slower than the flood: its queue (1024 events) fills,
    // and what does not fit is dropped and announced by markers whose
    // counts close every gap exactly (checked event by event in Tally).
    let t = flood_and_tally("flood-slow", || {
        kernel::thread::sleep(Duration::from_millis(1))
    });
    assert!(
        t.markers >= 1 && t.missed > 0,
        "the queue never overflowed: {}",
        t.delivered
    );
    assert!(
        t.delivered >= 1024,
        "the queue's {} events were delivered",
        t.delivered
    );
}

//! The guest services' threads against the REAL xenstored: handlers never
//! overlap, even past their timeout; `stop` returns once the service's
//! threads have let go of it; and no thread or heap is left behind per
//! period. Issue 10 found two handlers running at once, a thread leaked by
//! every period whose handler overran, and `stop` returning early.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use support::{Env, eventually, fixed_info};
use xenbus::ServiceError;
use xenbus::services::{DataConfig, DataPublisher, GuestInfo, ServiceState, SystemInfo};
use xenstore::StdPlatform;

/// `data/` figures whose calls can be held at a gate, counting calls and
/// how many run at once.
#[derive(Default)]
struct GatedInfo {
    calls: AtomicUsize,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    /// Calls from this number on wait at the gate while it is closed.
    hold_from: Mutex<Option<usize>>,
    gate: Condvar,
}

impl GatedInfo {
    fn hold_from(&self, call: usize) {
        *self.hold_from.lock().unwrap() = Some(call);
    }

    fn release(&self) {
        *self.hold_from.lock().unwrap() = None;
        self.gate.notify_all();
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl SystemInfo for GatedInfo {
    fn guest_info(&self) -> GuestInfo {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        let mut held = self.hold_from.lock().unwrap();
        while held.is_some_and(|from| call >= from) {
            held = self.gate.wait(held).unwrap();
        }
        drop(held);
        self.running.fetch_sub(1, Ordering::SeqCst);
        GuestInfo {
            uptime_secs: call as u64, // a change to publish each period
            ..fixed_info()
        }
    }
}

fn publisher(env: &Env, info: &Arc<GatedInfo>, config: DataConfig) -> DataPublisher<StdPlatform> {
    let info: Arc<dyn SystemInfo> = info.clone();
    DataPublisher::start(Arc::new(StdPlatform), env.guest.clone(), info, config)
        .expect("the data/ publisher starts")
}

/// Before the fix, every period past the timeout started another handler
/// beside the stuck one.
#[test]
fn a_refresh_past_its_timeout_is_waited_for_never_run_beside_another() {
    let env = Env::start();
    let info = Arc::new(GatedInfo::default());
    info.hold_from(1);
    let data = publisher(
        &env,
        &info,
        // Only the held refresh may reach the timeout: a live one under a
        // CPU hog took more than 5 ms (5 stress rounds in 20 saw a second
        // time-out), never near 250 ms.
        DataConfig {
            period: Duration::from_millis(1),
            handler_timeout: Duration::from_millis(250),
        },
    );
    eventually("the first refresh timed out", || {
        data.status().timed_out == 1
    });
    assert_eq!(data.status().state, ServiceState::HandlerOverdue);
    assert!(matches!(
        data.status().last_error,
        Some(ServiceError::HandlerTimeout {
            service: "data",
            ..
        })
    ));
    // A hundred periods and a refresh request pass while it is stuck.
    data.refresh();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(info.calls(), 1, "a refresh started beside the stuck one");

    info.release();
    eventually("refreshes go on", || data.status().handled >= 3);
    assert_eq!(info.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(data.status().timed_out, 1);
}

/// Before the fix `stop` only asked the service thread to end, and
/// returned while it still held the service.
#[test]
fn stop_returns_once_the_service_threads_have_let_go_of_it() {
    let env = Env::start();
    let config = DataConfig {
        period: Duration::from_millis(1),
        handler_timeout: Duration::from_secs(30),
    };
    for round in 0..20 {
        let info = Arc::new(GatedInfo::default());
        let data = publisher(&env, &info, config);
        eventually("a refresh", || data.status().handled >= 1);
        drop(data);
        assert_eq!(
            Arc::strong_count(&info),
            1,
            "round {round}: a service thread still holds the service after stop"
        );
    }

    // A handler running at the stop is waited for (its timeout is far off).
    let info = Arc::new(GatedInfo::default());
    let data = publisher(&env, &info, config);
    info.hold_from(info.calls() + 1);
    eventually("a refresh held", || {
        info.running.load(Ordering::SeqCst) == 1
    });
    let releaser = {
        let info = Arc::clone(&info);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            info.release();
        })
    };
    drop(data);
    assert_eq!(
        info.running.load(Ordering::SeqCst),
        0,
        "stop left a handler running"
    );
    releaser.join().unwrap();
    assert_eq!(
        Arc::strong_count(&info),
        1,
        "a service thread still holds it"
    );
}

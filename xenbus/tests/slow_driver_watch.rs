//! A driver's own xenstore watch whose callback is stuck holds up nothing of
//! the bus or the services: `control/shutdown` (a service's watch) and the
//! other end's `state` (the bus's watch) are still followed, against the
//! REAL xenstored.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::{Env, HOME, RecordingDriver, RecordingPower, eventually};
use xenbus::{GuestConfig, OtherendState, XenbusState};

#[test]
fn a_stuck_driver_watch_delays_neither_control_shutdown_nor_other_end_states() {
    let env = Env::start();
    let power = Arc::new(RecordingPower::default());
    let guest = env.guest_services(power.clone(), GuestConfig::default());
    let backend = env.add_device("vif", "0");
    guest
        .bus()
        .register_driver("vif", Arc::new(RecordingDriver::default()))
        .unwrap();
    guest.bus().attach().unwrap();

    // The "driver" watches a node of its own; its callback blocks from the
    // initial event on, until released.
    let release = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let (r, e) = (Arc::clone(&release), Arc::clone(&entered));
    let stuck = env
        .guest
        .watch("data/driver-private", move |_| {
            e.store(true, Ordering::SeqCst);
            while !r.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    // Released on every way out, before `stuck` is dropped (a failed
    // assertion must fail the test, not hang it in unwatch).
    let _release_on_exit = ReleaseOnDrop(Arc::clone(&release));
    eventually("the driver's callback is stuck", || {
        entered.load(Ordering::SeqCst)
    });

    // The bus's watch on the backend's state still runs.
    backend.set_state(2);
    eventually("vif/0 bound", || {
        guest.bus().device("device/vif/0").is_some()
    });
    let dev = guest.bus().device("device/vif/0").unwrap();
    eventually("the other end's InitWait seen", || {
        dev.otherend_state() == Some(OtherendState::Known(XenbusState::InitWait))
    });
    // The control service's watch still runs.
    env.cli_write(&format!("{HOME}/control/shutdown"), "poweroff");
    eventually("poweroff handled", || power.calls() == ["poweroff"]);
    assert!(
        !release.load(Ordering::SeqCst),
        "all of it while the driver's callback was stuck"
    );
    release.store(true, Ordering::SeqCst);
    stuck.unwatch().unwrap();
}

struct ReleaseOnDrop(Arc<AtomicBool>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

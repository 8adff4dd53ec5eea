//! Suspend as migration happens: while the guest is suspended the host
//! replaces the daemon with a fresh one (empty store), re-introduces the
//! domain and recreates the guest's devices, as a toolstack restoring a
//! VM does. On resume the guest must restore its watches and republish
//! its state. Against the REAL xenstored.

mod support;

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Env, HOME, RecordingPower, eventually, fixed_info};
use xenbus::frontend::SampleFrontend;
use xenbus::{GuestConfig, SuspendOutcome, XenbusState};

/// The platform's suspend: tell the test we are suspended, wait until it
/// has moved us.
fn rendezvous(power: &RecordingPower) -> (Receiver<()>, Sender<()>) {
    let (suspended_tx, suspended_rx) = channel();
    let (moved_tx, moved_rx) = channel::<()>();
    let moved_rx = Mutex::new(moved_rx);
    *power.on_suspend.lock().unwrap() = Some(Box::new(move || {
        suspended_tx.send(()).unwrap();
        moved_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(20))
            .expect("the test moves the VM");
        Ok(SuspendOutcome::Resumed)
    }));
    (suspended_rx, moved_tx)
}

fn front_reaches(env: &Env, id: &str, state: XenbusState) {
    let want = state.raw().to_string();
    eventually(&format!("vif/{id} in {state}"), || {
        env.front_state("vif", id).as_deref() == Some(want.as_str())
    });
}

#[test]
fn migration_restores_watches_and_republishes_state() {
    let env = Env::start();
    let power = Arc::new(RecordingPower::default());
    let (suspended, moved) = rendezvous(&power);
    let guest = env.guest_services(power.clone(), GuestConfig::default());
    guest
        .bus()
        .register_driver("vif", Arc::new(SampleFrontend::new()))
        .unwrap();
    let backend = env.add_device("vif", "0");
    guest.bus().attach().unwrap();
    backend.set_state(XenbusState::InitWait.raw());
    backend.set_state(XenbusState::Connected.raw());
    front_reaches(&env, "0", XenbusState::Connected);
    eventually("data published", || {
        env.cli_read(&format!("{HOME}/data/os_name")).is_some()
    });

    // The toolstack asks for a suspend (xl save / migrate).
    env.cli_write(&format!("{HOME}/control/shutdown"), "suspend");
    suspended
        .recv_timeout(Duration::from_secs(10))
        .expect("guest suspends");
    // "Migrate": a fresh daemon knows nothing of the guest's nodes or
    // watches; the new host's toolstack recreates the VM's devices.
    env.tb.restart_daemon().expect("restart the daemon");
    env.reconnect_host();
    assert_eq!(
        env.cli_read(&format!("{HOME}/data/os_name")),
        None,
        "the store is new"
    );
    let backend = env.add_device("vif", "0");
    moved.send(()).unwrap();

    // Republished: the data pool and the control features...
    let os_name = fixed_info().os_name;
    eventually("data republished on the new daemon", || {
        env.cli_read(&format!("{HOME}/data/os_name")).as_deref() == Some(os_name.as_str())
    });
    eventually("features advertised again", || {
        env.cli_read(&format!("{HOME}/control/feature-suspend"))
            .as_deref()
            == Some("1")
    });
    // ...and the device: the frontend reconnects to the new backend.
    backend.set_state(XenbusState::InitWait.raw());
    front_reaches(&env, "0", XenbusState::Initialised);
    backend.set_state(XenbusState::Connected.raw());
    front_reaches(&env, "0", XenbusState::Connected);

    // Every watch works again: control, vm-data, hot-plug.
    env.cli_write(&format!("{HOME}/vm-data/after"), "migration");
    eventually("vm-data seen", || {
        guest.vm_data().get("after").as_deref() == Some(&b"migration"[..])
    });
    env.add_device("vif", "1");
    eventually("hot-added after resume", || {
        guest.bus().device("device/vif/1").is_some()
    });
    env.cli_write(&format!("{HOME}/control/shutdown"), "poweroff");
    eventually("poweroff after resume", || {
        power.calls() == ["suspend", "poweroff"]
    });
    let control = guest.control().status();
    assert_eq!((control.failed, control.timed_out), (0, 0), "{control:?}");
}

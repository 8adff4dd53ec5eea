//! `control/shutdown` against the REAL xenstored, the host writing with
//! the real `xenstore-write`: acknowledgement, the OS actions, deferral of
//! a second request, the handler timeout, garbage, suspend with an open
//! transaction.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{Env, HOME, RecordingDriver, RecordingPower, eventually};
use xenbus::services::{ServiceState, ServiceStatus};
use xenbus::{GuestConfig, ServiceError, SuspendOutcome};
use xenstore::Store;

const SHUTDOWN: &str = "/local/domain/1/control/shutdown";

fn short_timeout() -> GuestConfig {
    let mut config = GuestConfig::default();
    config.control.handler_timeout = Duration::from_millis(300);
    config
}

fn idle(status: &ServiceStatus) -> bool {
    status.state == ServiceState::Ready
}

#[test]
fn poweroff_and_reboot_from_the_host_are_acknowledged_and_done() {
    let env = Env::start();
    let power = Arc::new(RecordingPower::default());
    let guest = env.guest_services(power.clone(), GuestConfig::default());
    // Advertised as Linux does (no feature-halt: xenstore-paths has none).
    for feature in ["poweroff", "reboot", "suspend"] {
        let node = format!("{HOME}/control/feature-{feature}");
        assert_eq!(env.cli_read(&node).as_deref(), Some("1"), "{node}");
    }
    assert_eq!(env.cli_read(&format!("{HOME}/control/feature-halt")), None);

    env.cli_write(SHUTDOWN, "poweroff");
    eventually("poweroff done", || power.calls() == ["poweroff"]);
    assert_eq!(
        env.cli_read(SHUTDOWN).as_deref(),
        Some(""),
        "acknowledged by clearing"
    );

    env.cli_write(SHUTDOWN, "reboot");
    eventually("reboot done", || power.calls() == ["poweroff", "reboot"]);
    assert_eq!(env.cli_read(SHUTDOWN).as_deref(), Some(""));
    eventually("service idle", || idle(&guest.control().status()));
    let status = guest.control().status();
    assert_eq!((status.handled, status.failed, status.timed_out), (2, 0, 0));
    assert_eq!(status.last_request.as_deref(), Some("reboot"));
}

#[test]
fn a_second_request_while_one_is_handled_is_deferred_then_handled() {
    let env = Env::start();
    let power = Arc::new(RecordingPower::default());
    let guest = env.guest_services(power.clone(), GuestConfig::default());
    power.hold();
    env.cli_write(SHUTDOWN, "poweroff");
    eventually("poweroff handler running", || {
        power.calls() == ["poweroff"]
            && guest.control().status().state == ServiceState::HandlerRunning
    });

    env.cli_write(SHUTDOWN, "reboot");
    std::thread::sleep(Duration::from_millis(200));
    // Deferred: neither acknowledged nor acted on while the first runs.
    assert_eq!(power.calls(), ["poweroff"]);
    assert_eq!(env.cli_read(SHUTDOWN).as_deref(), Some("reboot"));
    assert_eq!(guest.control().status().deferred, 0, "not taken up yet");

    power.release();
    eventually("reboot handled after poweroff", || {
        power.calls() == ["poweroff", "reboot"]
    });
    assert_eq!(env.cli_read(SHUTDOWN).as_deref(), Some(""));
    eventually("service idle", || idle(&guest.control().status()));
    let status = guest.control().status();
    // Exactly one deferral: the watch events of the service's own
    // acknowledgements (clearing the node while busy) are not requests.
    assert_eq!((status.handled, status.deferred), (2, 1));
}

/// Issue 10: a handler that overran its timeout used to be left running
/// while the service took the next request, so two ran at once.
#[test]
fn a_handler_that_overruns_the_timeout_is_reported_and_waited_for() {
    let env = Env::start();
    let power = Arc::new(RecordingPower::default());
    let guest = env.guest_services(power.clone(), short_timeout());
    power.hold();
    env.cli_write(SHUTDOWN, "poweroff");
    eventually("timed out", || guest.control().status().timed_out == 1);
    let status = guest.control().status();
    assert_eq!(
        status.last_error,
        Some(ServiceError::HandlerTimeout {
            service: "control",
            request: "poweroff".into(),
            after: Duration::from_millis(300),
        })
    );
    assert_eq!(status.state, ServiceState::HandlerOverdue);

    // A request while the overdue handler runs: neither acknowledged nor
    // started (it would run alongside poweroff).
    env.cli_write(SHUTDOWN, "reboot");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(power.calls(), ["poweroff"], "two handlers at once");
    assert_eq!(env.cli_read(SHUTDOWN).as_deref(), Some("reboot"));
    assert_eq!(guest.control().status().state, ServiceState::HandlerOverdue);

    // Once the late handler returns, the waiting request is taken up; the
    // late result is not counted as handled.
    power.release();
    eventually("next request handled", || {
        power.calls() == ["poweroff", "reboot"]
    });
    eventually("counted", || guest.control().status().handled == 1);
    eventually("service idle", || idle(&guest.control().status()));
    let status = guest.control().status();
    assert_eq!((status.timed_out, status.deferred), (1, 1));
}

#[test]
fn garbage_commands_are_typed_errors_left_unacknowledged() {
    let env = Env::start();
    let power = Arc::new(RecordingPower::default());
    let guest = env.guest_services(power.clone(), GuestConfig::default());
    env.cli_write(SHUTDOWN, "dance");
    eventually("unknown command reported", || {
        guest.control().status().last_error
            == Some(ServiceError::UnknownCommand {
                service: "control",
                path: "control/shutdown".into(),
                value: "dance".into(),
            })
    });
    assert_eq!(
        env.cli_read(SHUTDOWN).as_deref(),
        Some("dance"),
        "left for the toolstack"
    );
    // Not UTF-8, and a near miss: typed errors too.
    env.host().write(SHUTDOWN, [0xff, 0xfe, b'x']).unwrap();
    eventually("binary command reported", || {
        matches!(&guest.control().status().last_error,
            Some(ServiceError::UnknownCommand { value, .. }) if value == "\u{fffd}\u{fffd}x")
    });
    env.cli_write(SHUTDOWN, "poweroff ");
    eventually("near miss reported", || {
        matches!(&guest.control().status().last_error,
            Some(ServiceError::UnknownCommand { value, .. }) if value == "poweroff ")
    });
    assert!(guest.control().status().failed >= 3);
    assert!(power.calls().is_empty());
    // The service still works.
    env.cli_write(SHUTDOWN, "halt");
    eventually("halt done", || power.calls() == ["halt"]);
    assert_eq!(env.cli_read(SHUTDOWN).as_deref(), Some(""));
}

#[test]
fn suspend_waits_for_an_open_transaction_to_end() {
    let env = Env::start();
    let power = Arc::new(RecordingPower::default());
    // Cancelled: the VM stays on this host and store.
    *power.on_suspend.lock().unwrap() = Some(Box::new(|| Ok(SuspendOutcome::Cancelled)));
    let guest = env.guest_services(power.clone(), GuestConfig::default());
    let backend = env.add_device("vif", "0");
    let driver = Arc::new(RecordingDriver::default());
    guest.bus().register_driver("vif", driver.clone()).unwrap();
    guest.bus().attach().unwrap();

    // A node nobody else touches, so the commit cannot conflict (the data
    // publisher writes under data/, and creating data/ changes the home).
    eventually("data published", || {
        env.cli_read(&format!("{HOME}/data/updated")).is_some()
    });
    env.guest.mkdir("tx-test").unwrap();
    let tx = env.guest.transaction_start().unwrap();
    tx.write("tx-test/in-transaction", "1").unwrap();
    env.cli_write(SHUTDOWN, "suspend");
    eventually("drivers suspended", || driver.saw("suspend device/vif/0"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !power.calls().contains(&"suspend"),
        "suspended under an open transaction"
    );

    tx.commit().unwrap();
    eventually("suspended once the transaction ended", || {
        power.calls() == ["suspend"]
    });
    eventually("service idle", || {
        let s = guest.control().status();
        idle(&s) && s.handled == 1
    });
    assert_eq!(
        env.host_read(&format!("{HOME}/tx-test/in-transaction"))
            .as_deref(),
        Some("1")
    );
    // A cancelled suspend does not resume drivers, but the other end is
    // followed again.
    assert!(!driver.saw("resume device/vif/0"));
    backend.set_state(2);
    eventually("other end followed again", || {
        driver.saw("otherend device/vif/0 InitWait (2)")
    });
}

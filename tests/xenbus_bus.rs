//! XenBus in the kernel against the real xenstored, the host playing the
//! toolstack and the backends (the `xenbus` fixture): the devices present
//! at boot, hot-plug, the frontend/backend handshake walked state by state,
//! a backend that never answers, one that jumps to Closed, and a driver
//! whose probe fails.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use kernel::thread;
use ktests::support::bus::{
    RecordingDriver, WAIT, backend_goes, bound_device, device_info, guest, host_sees_front_state,
    wait_for_our_state, wait_until,
};
use ktests::support::host;
use xenbus::{BusError, OtherendState, StateSet, XenbusState};

ktests::config!(timeout_secs = 120, needs = "xenbus");
ktests::main!(
    enumerates_three_devices_of_two_classes_present_at_boot,
    the_frontend_walks_the_handshake_with_the_host_playing_the_backend,
    a_backend_that_never_answers_times_out_with_a_clear_error,
    a_backend_jumping_to_closed_closes_the_frontend_and_fails_the_waiter,
    hot_add_probes_and_hot_remove_detaches,
    a_failing_probe_writes_the_error_node_and_the_bus_keeps_working,
);

use XenbusState::{Closed, Closing, Connected, InitWait, Initialised, Initialising};

fn enumerates_three_devices_of_two_classes_present_at_boot() {
    let bus = guest().bus();
    // start() returns once the devices present were probed and attached.
    let devices = bus.devices();
    let names: Vec<&str> = devices.iter().map(|d| d.nodename.as_str()).collect();
    assert_eq!(names, ["device/vbd/768", "device/vif/0", "device/vif/1"]);
    for d in &devices {
        assert_eq!(d.driver.as_deref(), Some(d.class.as_str()), "{d:?}");
        let otherend = d.otherend.as_ref().expect("other end read at probe");
        assert_eq!(otherend.id, ::xenbus::DomId::DOM0);
        assert!(
            otherend.path.starts_with("/local/domain/0/backend/"),
            "{otherend:?}"
        );
    }
    // The host plays their backends: every one reaches Connected, as the
    // guest sees it and as the host reads it.
    for (class, id) in [("vbd", "768"), ("vif", "0"), ("vif", "1")] {
        let nodename = alloc::format!("device/{class}/{id}");
        wait_for_our_state(&nodename, Connected);
        let info = device_info(&nodename).unwrap();
        assert_eq!(info.otherend_state, Some(OtherendState::Known(Connected)));
        host_sees_front_state(class, id, Connected);
    }
    assert!(bus.problems().0.is_empty(), "{:?}", bus.problems());
}

fn the_frontend_walks_the_handshake_with_the_host_playing_the_backend() {
    host("device-add", &["vif", "10", "manual"]);
    let dev = bound_device("device/vif/10");
    assert_eq!(dev.state(), Initialising);
    assert_eq!(
        dev.wait_for_otherend(StateSet::of(&[Initialising]), WAIT),
        Ok(Initialising)
    );

    backend_goes("vif", "10", InitWait);
    wait_for_our_state("device/vif/10", Initialised);
    host_sees_front_state("vif", "10", Initialised);

    backend_goes("vif", "10", Connected);
    assert_eq!(dev.wait_for_otherend(Connected.into(), WAIT), Ok(Connected));
    wait_for_our_state("device/vif/10", Connected);
    host_sees_front_state("vif", "10", Connected);

    // The backend goes away: the frontend closes.
    host("backend-rm", &["vif", "10"]);
    wait_for_our_state("device/vif/10", Closed);
    host_sees_front_state("vif", "10", Closed);
    assert_eq!(
        dev.wait_for_otherend(Connected.into(), WAIT),
        Err(BusError::OtherendGone {
            nodename: "device/vif/10".into(),
            otherend: "/local/domain/0/backend/vif/1/10".into(),
        })
    );
    // The daemon saw every step, in order: the toolstack's Initialising,
    // then ours: Initialised, Connected, Closing, Closed.
    let writes = host("traced-writes", &["device/vif/10/state"]);
    let expected = [Initialising, Initialised, Connected, Closing, Closed]
        .map(|s| alloc::format!("{}", s.raw()));
    assert_eq!(writes, expected);
    host("device-remove", &["vif", "10"]);
}

fn a_backend_that_never_answers_times_out_with_a_clear_error() {
    host("device-add", &["vif", "11", "manual"]);
    let dev = bound_device("device/vif/11");
    let waited = Duration::from_millis(1500);
    let err = dev
        .wait_for_otherend(StateSet::of(&[InitWait, Connected]), waited)
        .expect_err("the backend never moves");
    assert_eq!(
        err,
        BusError::Timeout {
            nodename: "device/vif/11".into(),
            wanted: StateSet::of(&[InitWait, Connected]),
            last: Some(Initialising),
            waited,
        }
    );
    let text = alloc::format!("{err}");
    assert_eq!(
        text,
        "device/vif/11: other end not InitWait|Connected after 1.5s (it is Initialising (1))"
    );
    // Nothing was given up on: we still wait in Initialising.
    assert_eq!(dev.state(), Initialising);
    host("device-remove", &["vif", "11"]);
}

fn a_backend_jumping_to_closed_closes_the_frontend_and_fails_the_waiter() {
    host("device-add", &["vif", "12", "manual"]);
    let dev = bound_device("device/vif/12");
    backend_goes("vif", "12", InitWait);
    wait_for_our_state("device/vif/12", Initialised);
    let waiter = {
        let dev = dev.clone();
        let result = Arc::new(kernel::sync::SpinLock::new(None));
        let slot = result.clone();
        let handle = thread::spawn_joinable("connect-waiter", move || {
            *slot.lock() = Some(dev.wait_for_otherend(Connected.into(), WAIT));
        });
        (handle, result)
    };
    thread::sleep(Duration::from_millis(100)); // let it wait
    backend_goes("vif", "12", Closed);
    assert!(waiter.0.join_timeout(WAIT), "the waiter was not woken");
    assert_eq!(
        waiter.1.lock().clone(),
        Some(Err(BusError::OtherendClosed {
            nodename: "device/vif/12".into(),
            state: Closed,
        }))
    );
    wait_for_our_state("device/vif/12", Closed);
    host_sees_front_state("vif", "12", Closed);
    host("device-remove", &["vif", "12"]);
}

fn hot_add_probes_and_hot_remove_detaches() {
    let driver = RecordingDriver::new(&[]);
    guest()
        .bus()
        .register_driver("vkbd", driver.clone())
        .unwrap();
    host("device-add", &["vkbd", "0", "auto"]);
    driver.expect("probe device/vkbd/0");
    driver.expect("attach device/vkbd/0");
    driver.expect("otherend device/vkbd/0 InitWait (2)");
    assert!(device_info("device/vkbd/0").is_some());

    host("device-remove", &["vkbd", "0"]);
    driver.expect("detach device/vkbd/0");
    wait_until("device/vkbd/0 forgotten", WAIT, || {
        device_info("device/vkbd/0").is_none()
    });
    let events = driver.events();
    let order: Vec<&String> = events
        .iter()
        .filter(|e| !e.starts_with("otherend"))
        .collect();
    assert_eq!(
        order,
        [
            "probe device/vkbd/0",
            "attach device/vkbd/0",
            "detach device/vkbd/0"
        ]
    );
    // The other devices were not disturbed.
    assert_eq!(
        device_info("device/vif/0").map(|d| d.state),
        Some(Connected)
    );
}

fn a_failing_probe_writes_the_error_node_and_the_bus_keeps_working() {
    let driver = RecordingDriver::new(&["0"]);
    guest()
        .bus()
        .register_driver("vusb", driver.clone())
        .unwrap();
    host("device-add", &["vusb", "0", "manual"]);
    driver.expect("probe device/vusb/0");
    wait_until("device/vusb/0 closed after its failed probe", WAIT, || {
        device_info("device/vusb/0").is_some_and(|d| d.state == Closed && d.driver.is_none())
    });
    // The toolstack reads why, with the real CLI, where Linux puts it.
    let error = host(
        "xenstore-read",
        &["/local/domain/1/error/device/vusb/0/error"],
    );
    assert_eq!(
        error,
        ["5 probe: device/vusb/0: driver: this test driver refuses the device"]
    );
    host_sees_front_state("vusb", "0", Closed);
    assert!(!driver.events().iter().any(|e| e.starts_with("attach")));

    // The bus goes on: a new device is probed and connects.
    host("device-add", &["vif", "13", "auto"]);
    bound_device("device/vif/13");
    wait_for_our_state("device/vif/13", Connected);
    host_sees_front_state("vif", "13", Connected);
    host("device-remove", &["vusb", "0"]);
    host("device-remove", &["vif", "13"]);
}

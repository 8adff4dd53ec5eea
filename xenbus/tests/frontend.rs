//! The sample frontend's handshake with a backend played by the host on
//! the REAL xenstored: the full walk, a backend that never answers, one
//! that jumps to Closed, one that disappears.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Backend, Env, HOME, eventually};
use xenbus::frontend::SampleFrontend;
use xenbus::{
    Bus, BusConfig, BusError, Device, DeviceResources, EvtchnPort, GrantRef, GrantedPage,
    ResourceError, StateSet, UnsupportedResources, XenbusState,
};
use xenstore::StdPlatform;

use XenbusState::*;

/// A bus with the sample frontend on `vif` and one device, attached.
fn frontend_with_device(env: &Env) -> (Bus<StdPlatform>, Backend, Device<StdPlatform>) {
    let backend = env.add_device("vif", "0");
    let resources = Arc::new(UnsupportedResources {
        platform: "host test platform",
    });
    let bus = Bus::new(
        &StdPlatform,
        env.guest.clone(),
        resources,
        BusConfig::default(),
    )
    .unwrap();
    bus.register_driver("vif", Arc::new(SampleFrontend::new()))
        .unwrap();
    bus.attach().unwrap();
    let dev = bus.device("device/vif/0").expect("device probed");
    (bus, backend, dev)
}

/// Waits until dom0 reads `state` in our frontend's node.
fn front_reaches(env: &Env, state: XenbusState) {
    let want = state.raw().to_string();
    eventually(&format!("frontend in {state}"), || {
        env.front_state("vif", "0").as_deref() == Some(want.as_str())
    });
}

#[test]
fn frontend_walks_the_handshake_with_a_host_backend() {
    let env = Env::start();
    let (_bus, backend, dev) = frontend_with_device(&env);
    front_reaches(&env, Initialising);
    assert_eq!(dev.otherend().unwrap().path, backend.path);

    // The backend finished its early set-up: the frontend publishes (no
    // data path here: no ring-ref, no event-channel) and is Initialised.
    backend.set_state(InitWait.raw());
    front_reaches(&env, Initialised);
    assert_eq!(
        env.host_read(&format!("{HOME}/device/vif/0/ring-ref")),
        None
    );
    assert_eq!(
        env.host_read(&format!("{HOME}/device/vif/0/event-channel")),
        None
    );

    backend.set_state(Connected.raw());
    front_reaches(&env, Connected);
    eventually("cached state Connected", || dev.state() == Connected);
    assert_eq!(
        dev.wait_for_otherend(Connected.into(), Duration::from_secs(5)),
        Ok(Connected)
    );

    // The backend goes away in order: the frontend closes too.
    backend.set_state(Closing.raw());
    front_reaches(&env, Closed);
    // The cached state follows the store write.
    eventually("cached state Closed", || dev.state() == Closed);
}

#[test]
fn a_backend_that_never_answers_times_out_with_a_clear_error() {
    let env = Env::start();
    let (_bus, _backend, dev) = frontend_with_device(&env);
    let wanted = StateSet::of(&[InitWait, Connected]);
    let err = dev
        .wait_for_otherend(wanted, Duration::from_millis(300))
        .unwrap_err();
    assert_eq!(
        err,
        BusError::Timeout {
            nodename: "device/vif/0".into(),
            wanted,
            last: Some(Initialising),
            waited: Duration::from_millis(300),
        }
    );
    assert_eq!(
        err.to_string(),
        "device/vif/0: other end not InitWait|Connected after 300ms (it is Initialising (1))"
    );
    // The frontend is still waiting for it, not broken.
    assert_eq!(env.front_state("vif", "0").as_deref(), Some("1"));
}

#[test]
fn a_backend_jumping_to_closed_closes_the_frontend_and_fails_waiters() {
    let env = Env::start();
    let (_bus, backend, dev) = frontend_with_device(&env);
    backend.set_state(InitWait.raw());
    front_reaches(&env, Initialised);

    let waiter = {
        let dev = dev.clone();
        std::thread::spawn(move || dev.wait_for_otherend(Connected.into(), Duration::from_secs(10)))
    };
    std::thread::sleep(Duration::from_millis(50));
    backend.set_state(Closed.raw());
    let result = waiter.join().unwrap();
    assert_eq!(
        result,
        Err(BusError::OtherendClosed {
            nodename: "device/vif/0".into(),
            state: Closed,
        })
    );
    front_reaches(&env, Closed);
}

#[test]
fn a_backend_that_disappears_closes_the_frontend() {
    let env = Env::start();
    let (_bus, backend, dev) = frontend_with_device(&env);
    backend.set_state(InitWait.raw());
    backend.set_state(Connected.raw());
    front_reaches(&env, Connected);

    env.cli_rm(&backend.path);
    front_reaches(&env, Closed);
    assert!(matches!(
        dev.wait_for_otherend(Connected.into(), Duration::from_secs(5)),
        Err(BusError::OtherendGone { otherend, .. }) if otherend == backend.path
    ));
}

/// A platform that grants (made-up references), recording what it is
/// asked: the path a frontend takes on real Xen.
#[derive(Default)]
struct GrantingPlatform {
    calls: Mutex<Vec<String>>,
}

impl DeviceResources for GrantingPlatform {
    fn grant_ring_page(&self, remote: u16) -> Result<GrantedPage, ResourceError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("grant to {remote}"));
        // SAFETY: a stand-in platform: nothing reads or frees the address.
        Ok(unsafe { GrantedPage::new(GrantRef(8), 0x1000) })
    }
    fn end_ring_grant(&self, page: GrantedPage) -> Result<(), ResourceError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("end grant {}", page.gref().0));
        Ok(())
    }
    fn alloc_unbound_evtchn(&self, remote: u16) -> Result<EvtchnPort, ResourceError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("evtchn for {remote}"));
        Ok(EvtchnPort(17))
    }
    fn close_evtchn(&self, port: EvtchnPort) -> Result<(), ResourceError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("close evtchn {}", port.0));
        Ok(())
    }
}

#[test]
fn frontend_publishes_its_ring_where_the_platform_grants() {
    let env = Env::start();
    let backend = env.add_device("vif", "0");
    let platform = Arc::new(GrantingPlatform::default());
    let bus = Bus::new(
        &StdPlatform,
        env.guest.clone(),
        platform.clone(),
        BusConfig::default(),
    )
    .unwrap();
    bus.register_driver("vif", Arc::new(SampleFrontend::new()))
        .unwrap();
    bus.attach().unwrap();
    backend.set_state(InitWait.raw());
    front_reaches(&env, Initialised);
    let front = format!("{HOME}/device/vif/0");
    assert_eq!(
        env.cli_read(&format!("{front}/ring-ref")).as_deref(),
        Some("8")
    );
    assert_eq!(
        env.cli_read(&format!("{front}/event-channel")).as_deref(),
        Some("17")
    );
    assert_eq!(
        *platform.calls.lock().unwrap(),
        ["grant to 0", "evtchn for 0"]
    );
    // Unplugged: everything goes back to the platform.
    env.cli_rm(&front);
    eventually("resources released", || {
        platform.calls.lock().unwrap().len() == 4
    });
    assert_eq!(
        platform.calls.lock().unwrap()[2..],
        ["close evtchn 17", "end grant 8"]
    );
}

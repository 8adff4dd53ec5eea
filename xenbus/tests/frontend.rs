//! The sample frontend's handshake with a backend played by the host on
//! the REAL xenstored: the full walk, a backend that never answers, one
//! that jumps to Closed, one that disappears.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Backend, Env, HOME, eventually};
use xenbus::frontend::{RingProtocol, SampleFrontend};
use xenbus::{
    Bus, BusConfig, BusError, Device, DeviceResources, DomId, GrantRef, GrantedPage, Port,
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
    fn grant_ring_page(&self, remote: DomId) -> Result<GrantedPage, ResourceError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("grant to {}", remote.0));
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
    fn alloc_unbound_evtchn(&self, remote: DomId) -> Result<Port, ResourceError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("evtchn for {}", remote.0));
        Ok(Port::new(17).expect("17 is a valid 2-level port"))
    }
    fn close_evtchn(&self, port: Port) -> Result<(), ResourceError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("close evtchn {}", port.get()));
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

/// A platform that grants references 8, 9, ... and port 17, recording
/// what it is asked; while `mapped` is set, ending a grant fails as it does
/// while the backend still maps the page.
#[derive(Default)]
struct RingPlatform {
    next_ref: Mutex<u32>,
    mapped: std::sync::atomic::AtomicBool,
    calls: Mutex<Vec<String>>,
}

impl RingPlatform {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

impl DeviceResources for RingPlatform {
    fn grant_ring_page(&self, remote: DomId) -> Result<GrantedPage, ResourceError> {
        let mut next = self.next_ref.lock().unwrap();
        let gref = 8 + *next;
        *next += 1;
        self.record(format!("grant {gref} to {}", remote.0));
        // SAFETY: this platform is the only maker of its GrantedPages, each
        // for a fresh reference; the addresses are never dereferenced.
        Ok(unsafe { GrantedPage::new(GrantRef(gref), 0x1000 * gref as usize) })
    }
    fn end_ring_grant(&self, page: GrantedPage) -> Result<(), ResourceError> {
        if self.mapped.load(std::sync::atomic::Ordering::SeqCst) {
            self.record(format!("end grant {}: still mapped", page.gref().0));
            return Err(ResourceError::StillMapped {
                what: "end a ring grant",
            });
        }
        self.record(format!("end grant {}", page.gref().0));
        Ok(())
    }
    fn alloc_unbound_evtchn(&self, remote: DomId) -> Result<Port, ResourceError> {
        self.record(format!("evtchn for {}", remote.0));
        Ok(Port::new(17).expect("17 is a valid 2-level port"))
    }
    fn close_evtchn(&self, port: Port) -> Result<(), ResourceError> {
        self.record(format!("close evtchn {}", port.get()));
        Ok(())
    }
}

/// A bus with a frontend speaking `protocol` on `class`, over `resources`,
/// and one device `class/id`, attached.
fn protocol_bus(
    env: &Env,
    class: &str,
    id: &str,
    protocol: RingProtocol,
    resources: Arc<dyn DeviceResources>,
) -> (Bus<StdPlatform>, Backend) {
    let backend = env.add_device(class, id);
    let bus = Bus::new(
        &StdPlatform,
        env.guest.clone(),
        resources,
        BusConfig::default(),
    )
    .unwrap();
    bus.register_driver(class, Arc::new(SampleFrontend::with_protocol(protocol)))
        .unwrap();
    bus.attach().unwrap();
    (bus, backend)
}

fn front_state_is(env: &Env, class: &str, id: &str, state: XenbusState) {
    let want = state.raw().to_string();
    eventually(&format!("{class}/{id} in {state}"), || {
        env.front_state(class, id).as_deref() == Some(want.as_str())
    });
}

#[test]
fn netif_frontend_publishes_both_rings_and_connects_without_waiting_for_the_backend() {
    let env = Env::start();
    let platform = Arc::new(RingPlatform::default());
    let (_bus, backend) = protocol_bus(&env, "vif", "0", RingProtocol::Netif, platform.clone());
    front_state_is(&env, "vif", "0", Initialising);
    backend.set_state(InitWait.raw());
    // Linux netback maps the rings only once the frontend is Connected:
    // netfront says Connected as soon as it published, and so do we.
    front_state_is(&env, "vif", "0", Connected);
    let front = format!("{HOME}/device/vif/0");
    assert_front_keys(
        &env,
        &front,
        &[
            ("tx-ring-ref", "8"),
            ("rx-ring-ref", "9"),
            ("event-channel", "17"),
            ("request-rx-copy", "1"),
            ("feature-rx-notify", "1"),
        ],
    );
    assert_eq!(env.cli_read(&format!("{front}/ring-ref")), None);
    assert_eq!(
        platform.calls(),
        ["grant 8 to 0", "grant 9 to 0", "evtchn for 0"]
    );
    backend.set_state(Closing.raw());
    front_state_is(&env, "vif", "0", Closed);
    eventually("resources released", || platform.calls().len() == 6);
    assert_eq!(
        platform.calls()[3..],
        ["close evtchn 17", "end grant 8", "end grant 9"]
    );
}

#[test]
fn blkif_frontend_publishes_its_ring_and_protocol_then_waits_for_the_backend() {
    let env = Env::start();
    let platform = Arc::new(RingPlatform::default());
    let (_bus, backend) = protocol_bus(&env, "vbd", "768", RingProtocol::Blkif, platform);
    backend.set_state(InitWait.raw());
    front_state_is(&env, "vbd", "768", Initialised);
    let front = format!("{HOME}/device/vbd/768");
    assert_front_keys(
        &env,
        &front,
        &[
            ("ring-ref", "8"),
            ("event-channel", "17"),
            ("protocol", "x86_64-abi"),
        ],
    );
    backend.set_state(Connected.raw());
    front_state_is(&env, "vbd", "768", Connected);
}

#[test]
fn netif_frontend_without_grants_says_so_and_walks_the_generic_handshake() {
    let env = Env::start();
    let resources = Arc::new(UnsupportedResources {
        platform: "host test platform",
    });
    let (_bus, backend) = protocol_bus(&env, "vif", "0", RingProtocol::Netif, resources);
    backend.set_state(InitWait.raw());
    // No rings to offer: Initialised, not Connected, and nothing published.
    front_state_is(&env, "vif", "0", Initialised);
    let front = format!("{HOME}/device/vif/0");
    for key in [
        "tx-ring-ref",
        "rx-ring-ref",
        "event-channel",
        "request-rx-copy",
    ] {
        assert_eq!(env.cli_read(&format!("{front}/{key}")), None, "{key}");
    }
    backend.set_state(Connected.raw());
    front_state_is(&env, "vif", "0", Connected);
}

#[test]
fn a_ring_the_backend_still_maps_is_kept_until_the_backend_closes() {
    let env = Env::start();
    let platform = Arc::new(RingPlatform::default());
    let (_bus, backend) = protocol_bus(&env, "vbd", "768", RingProtocol::Blkif, platform.clone());
    backend.set_state(InitWait.raw());
    front_state_is(&env, "vbd", "768", Initialised);
    backend.set_state(Connected.raw());
    front_state_is(&env, "vbd", "768", Connected);

    // The backend starts closing while it still maps the ring: the
    // frontend closes, but the grant cannot end yet.
    platform
        .mapped
        .store(true, std::sync::atomic::Ordering::SeqCst);
    backend.set_state(Closing.raw());
    front_state_is(&env, "vbd", "768", Closed);
    eventually("grant end tried", || {
        platform.calls().last().map(String::as_str) == Some("end grant 8: still mapped")
    });

    // It unmapped and says Closed: the kept page goes back now.
    platform
        .mapped
        .store(false, std::sync::atomic::Ordering::SeqCst);
    backend.set_state(Closed.raw());
    eventually("kept grant ended", || {
        platform.calls().last().map(String::as_str) == Some("end grant 8")
    });
    assert_eq!(
        platform.calls(),
        [
            "grant 8 to 0",
            "evtchn for 0",
            "close evtchn 17",
            "end grant 8: still mapped",
            "end grant 8"
        ]
    );
}

/// dom0 reads each `(key, value)` under the frontend's node `front`.
fn assert_front_keys(env: &Env, front: &str, keys: &[(&str, &str)]) {
    for (key, value) in keys {
        assert_eq!(
            env.cli_read(&format!("{front}/{key}")).as_deref(),
            Some(*value),
            "{key}"
        );
    }
}

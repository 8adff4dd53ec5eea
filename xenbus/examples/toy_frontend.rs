//! A toy frontend driver, written from scratch, that walks the XenBus
//! handshake with its backend to Connected: what a driver author writes
//! first. It runs here against the real xenstored (started by the
//! project's testbed, with this program's client as guest domain 1 on its
//! ring); the backend is a STAND-IN played by this program as dom0 over the
//! daemon's socket, labelled as such. The real-Xen bed shows the library's
//! own frontend doing the same with Linux's blkback and netback.
//!
//! ```sh
//! cargo run -p xenbus --example toy_frontend
//! ```
//!
//! In a guest kernel the bus is built the same way, on the kernel's
//! `Platform`, its xenstore client over the shared ring, and its grant
//! table and event channels as `DeviceResources`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use xenbus::{
    Bus, BusConfig, BusError, Device, Driver, OtherendState, UnsupportedResources, XenbusState,
};
// The xenstore-client package, named `xenstore` in this repository.
use xenstore::{Access, Client, Config, Permissions, StdPlatform, Store, XsError};

/// The device the toolstack (here: this program) gives guest 1.
const FRONT: &str = "/local/domain/1/device/toy/0";
const BACK: &str = "/local/domain/0/backend/toy/1/0";
/// A bound on every wait (the handshake takes milliseconds).
const PATIENCE: Duration = Duration::from_secs(30);

/// The driver: publish our detail once the backend is ready for it, then
/// follow the backend to Connected, and close when it closes.
struct ToyFrontend;

impl Driver<StdPlatform> for ToyFrontend {
    fn probe(&self, dev: &Device<StdPlatform>) -> Result<(), BusError> {
        println!(
            "frontend: probing {} (backend {:?})",
            dev.nodename(),
            dev.otherend()
        );
        Ok(())
    }

    fn otherend_changed(&self, dev: &Device<StdPlatform>, state: &OtherendState) {
        use XenbusState::*;
        println!("frontend: backend is {state:?}");
        let step = match state {
            // The backend is ready for our details: write them, then say so.
            OtherendState::Known(InitWait) if dev.state() == Initialising => dev
                .store()
                .write(&dev.path("toy-greeting"), "hello from the frontend")
                .map_err(|e| BusError::store("publishing the greeting", e))
                .and_then(|()| dev.switch_state(Initialised)),
            OtherendState::Known(Connected) => dev.switch_state(Connected),
            OtherendState::Known(Closing | Closed) | OtherendState::Gone => {
                dev.switch_state(Closed)
            }
            _ => Ok(()),
        };
        if let Err(e) = step {
            dev.dev_fatal(&e, "toy handshake");
        }
    }

    fn detach(&self, _dev: &Device<StdPlatform>) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The real daemon, domain 1 introduced, our client on its ring.
    let tb = testbed::Testbed::start()?;
    let domain = Arc::new(tb.introduce_domain(1)?);
    let guest = testbed::xs::ring_client(domain, Config::default())?;
    let dom0 = Client::connect(tb.socket_path())?;
    add_device(&dom0)?;

    // The guest side: a bus with our driver for class "toy".
    let resources = Arc::new(UnsupportedResources {
        platform: "example (no grant table)",
    });
    let bus = Bus::new(&StdPlatform, guest, resources, BusConfig::default())?;
    bus.register_driver("toy", Arc::new(ToyFrontend))?;
    bus.attach()?;

    // STAND-IN backend (dom0): ready for the frontend's details ...
    dom0.write(&format!("{BACK}/state"), "2")?; // InitWait
    wait_for(&dom0, &format!("{FRONT}/state"), "3")?; // Initialised
    println!(
        "backend (stand-in): frontend says {:?}",
        dom0.read_string(&format!("{FRONT}/toy-greeting"))?
    );
    // ... and connected.
    dom0.write(&format!("{BACK}/state"), "4")?;
    wait_for(&dom0, &format!("{FRONT}/state"), "4")?;
    println!("connected: frontend and backend both in state 4");

    // Teardown, backend first, as a toolstack's device removal does.
    dom0.write(&format!("{BACK}/state"), "5")?; // Closing
    wait_for(&dom0, &format!("{FRONT}/state"), "6")?; // Closed
    println!("closed");
    Ok(())
}

/// Creates the device as a toolstack does: both directories, linked, the
/// backend's readable by the guest, in one transaction.
fn add_device(dom0: &Client<StdPlatform>) -> Result<(), XsError> {
    dom0.transaction(|t| {
        let readable = Permissions::new(0, Access::None).grant(1, Access::Read);
        t.write(&format!("{BACK}/state"), "1")?;
        t.set_permissions(BACK, &readable)?;
        t.set_permissions(&format!("{BACK}/state"), &readable)?;
        t.write(&format!("{BACK}/frontend"), FRONT)?;
        t.write(&format!("{BACK}/frontend-id"), "1")?;
        t.write(&format!("{FRONT}/backend"), BACK)?;
        t.write(&format!("{FRONT}/backend-id"), "0")?;
        t.write(&format!("{FRONT}/state"), "1")
    })
}

/// Waits until `path` reads `want`, watching it.
fn wait_for(dom0: &Client<StdPlatform>, path: &str, want: &str) -> Result<(), XsError> {
    let (tx, changed) = std::sync::mpsc::channel();
    let _watch = dom0.watch(path, move |_| {
        let _ = tx.send(());
    })?;
    let deadline = Instant::now() + PATIENCE;
    while dom0.read_string(path).ok().as_deref() != Some(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        if changed.recv_timeout(left).is_err() {
            panic!("{path} never became {want}");
        }
    }
    Ok(())
}

//! Connecting our client to the REAL xenstored run by the testbed: as dom0
//! over its socket, and as a guest over a domain's ring page (the ring
//! adapter lives in `testbed::xs`, shared with the xenbus tests).

use std::sync::Arc;

use testbed::{Domain, Testbed};
use xenstore::{Client, Config, StdPlatform};

/// A testbed, printing which daemon runs (the run's output names it).
pub fn start_testbed() -> Testbed {
    let tb = Testbed::start().unwrap_or_else(|e| panic!("the real xenstored could not start: {e}"));
    eprintln!("xenstored: {:?}", tb.xenstored());
    tb
}

/// A privileged client on the testbed's socket.
pub fn socket_client(tb: &Testbed, config: Config) -> Client<StdPlatform> {
    Client::connect_with(tb.socket_path(), config).unwrap()
}

/// A guest client on `domain`'s ring, as the kernel will have it.
pub fn ring_client(domain: Arc<Domain>, config: Config) -> Client<StdPlatform> {
    testbed::xs::ring_client(domain, config)
        .unwrap_or_else(|e| panic!("guest ring client could not start: {e}"))
}

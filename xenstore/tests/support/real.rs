//! Connecting our client to the REAL xenstored run by the testbed: as dom0
//! over its socket, and as a guest over a domain's ring page (the ring
//! adapter lives in `testbed::xs`, shared with the xenbus tests).

use std::io::Write;
use std::sync::{Arc, Once};

use testbed::{Domain, Options, Testbed};
use xenstore::{Client, Config, StdPlatform};

/// A testbed. The first one of each test binary names the daemon binary and
/// its version in the run's output (written past libtest's capture, once).
pub fn start_testbed() -> Testbed {
    start_testbed_with(Options::new())
}

/// Like [`start_testbed`] with options (quotas, ...).
pub fn start_testbed_with(options: Options) -> Testbed {
    static NAMED: Once = Once::new();
    let tb = Testbed::with_options(options)
        .unwrap_or_else(|e| panic!("the real xenstored could not start: {e}"));
    NAMED.call_once(|| {
        let line = format!("real daemon under test: {}\n", tb.xenstored());
        let _ = std::io::stderr().write_all(line.as_bytes());
    });
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

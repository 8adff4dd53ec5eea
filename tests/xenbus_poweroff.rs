//! `control/shutdown = poweroff` from the host powers the guest off: the
//! kernel's control service acknowledges the request (clears the node, as
//! Linux does) and powers off. Observed by the host: the runner sees the
//! kernel's `@power poweroff` line and QEMU exit with the poweroff status
//! (`expect = "poweroff"`), and the `xenbus` fixture's check reads the
//! node back empty with the real CLI.

#![no_std]
#![no_main]

extern crate alloc;

use ktests::support::bus::{WAIT, guest};
use ktests::support::{abs, host};

ktests::config!(timeout_secs = 60, needs = "xenbus", expect = "poweroff");
ktests::main!(
    the_guest_advertises_what_it_handles,
    the_host_powers_the_guest_off_through_control_shutdown,
);

fn the_guest_advertises_what_it_handles() {
    guest();
    for feature in ["feature-poweroff", "feature-reboot", "feature-suspend"] {
        let path = abs(&alloc::format!("control/{feature}"));
        assert_eq!(host("xenstore-read", &[&path]), ["1"], "{feature}");
    }
}

fn the_host_powers_the_guest_off_through_control_shutdown() {
    let control = guest().control();
    host("shutdown-request", &["poweroff"]);
    // The machine ends in the handler; still being here afterwards fails.
    kernel::thread::sleep(WAIT);
    panic!(
        "still running after control/shutdown = poweroff: {:?}",
        control.status()
    );
}

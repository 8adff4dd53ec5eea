//! `control/shutdown = reboot` from the host reboots the guest: the
//! kernel's control service acknowledges the request (clears the node, as
//! Linux does) and resets the machine. QEMU runs with `-no-reboot`, which
//! turns the reset into an exit with status 0; a triple fault would look
//! the same, so the kernel first prints `@power reboot`. The runner wants
//! both (`expect = "reboot"`), and the `xenbus` fixture's check reads the
//! node back empty with the real CLI.

#![no_std]
#![no_main]

extern crate alloc;

use ktests::support::bus::{WAIT, guest};
use ktests::support::host;

ktests::config!(timeout_secs = 60, needs = "xenbus", expect = "reboot");
ktests::main!(the_host_reboots_the_guest_through_control_shutdown);

fn the_host_reboots_the_guest_through_control_shutdown() {
    let control = guest().control();
    host("shutdown-request", &["reboot"]);
    // The machine resets in the handler; still being here afterwards fails.
    kernel::thread::sleep(WAIT);
    panic!(
        "still running after control/shutdown = reboot: {:?}",
        control.status()
    );
}

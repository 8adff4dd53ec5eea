//! Runner self-test: a hanging image must be killed at its time limit and
//! reported as a failure (`expect = "timeout"`).

#![no_std]
#![no_main]

use core::time::Duration;

ktests::config!(timeout_secs = 3, expect = "timeout");
ktests::main!(hangs);

fn hangs() {
    loop {
        kernel::thread::sleep(Duration::from_secs(1));
    }
}

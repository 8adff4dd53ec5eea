//! A kernel stack overflow is caught: the guard page faults, the CPU cannot
//! push the page-fault frame on the full stack, and the double fault runs on
//! its own IST stack, which reports it naming the thread. The image passes
//! when that report reaches the fatal-exception hook.

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::arch::trap::vector;
use kernel::fault::{FaultReport, set_fatal_hook};
use kernel::thread;

ktests::config!(timeout_secs = 30);
ktests::main!(stack_overflow_is_reported_as_double_fault);

static OVERFLOW_THREAD: AtomicU64 = AtomicU64::new(u64::MAX);

fn on_fatal(report: &FaultReport<'_>) -> ! {
    let expected = OVERFLOW_THREAD.load(Ordering::SeqCst);
    let ok = report.frame.vector == vector::DOUBLE_FAULT
        && report
            .stack_overflow
            .is_some_and(|o| o.thread == Some(expected));
    if ok {
        ktests::pass_and_exit();
    }
    panic!(
        "expected a double fault on thread {expected}'s guard page, got vector {} ({:?})",
        report.frame.vector, report.stack_overflow
    );
}

#[inline(never)]
#[allow(unconditional_recursion)] // the point: recurse until the guard page
fn recurse(depth: u64) -> u64 {
    let buffer = core::hint::black_box([depth; 64]);
    recurse(depth + 1) + buffer[7]
}

fn stack_overflow_is_reported_as_double_fault() {
    set_fatal_hook(on_fatal);
    let handle = thread::spawn_joinable("overflow", || {
        OVERFLOW_THREAD.store(thread::current_id().as_u64(), Ordering::SeqCst);
        core::hint::black_box(recurse(0));
    });
    handle.join();
    panic!("the thread returned: no stack overflow was detected");
}

//! The demo kernel: boots, shows the boot log (memory map, timer, threads
//! running), then exits cleanly. The XenStore client will be started here.

#![no_std]
#![no_main]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use kernel::sync::Mutex;
use kernel::{BootInfo, ExitCode, thread, time};

kernel::entry_point!(main);

fn main(_boot: &'static BootInfo) -> ! {
    let start_ticks = time::ticks();
    thread::sleep(Duration::from_millis(50));
    log::info!(
        "timer running: {} ticks in 50 ms of sleep (uptime {:?})",
        time::ticks() - start_ticks,
        time::uptime()
    );

    static ROUNDS: AtomicU64 = AtomicU64::new(0);
    static LOG: Mutex<alloc::vec::Vec<&str>> = Mutex::new(alloc::vec::Vec::new());
    let workers: alloc::vec::Vec<_> = ["worker-a", "worker-b", "worker-c"]
        .into_iter()
        .map(|name| {
            thread::spawn_joinable(name, move || {
                for _ in 0..3 {
                    ROUNDS.fetch_add(1, Ordering::Relaxed);
                    LOG.lock().push(name);
                    thread::sleep(Duration::from_millis(5));
                }
                log::info!("{name} (thread {}) done", thread::current_id());
            })
        })
        .collect();
    for worker in &workers {
        worker.join();
    }
    log::info!(
        "threads running: {} rounds by {} workers, order {:?}",
        ROUNDS.load(Ordering::Relaxed),
        workers.len(),
        *LOG.lock()
    );
    for t in thread::list() {
        log::info!("  thread {} {:?} {:?}", t.id, t.name, t.state);
    }
    log::info!("demo done; powering off");
    kernel::exit(ExitCode::Success)
}

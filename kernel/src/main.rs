//! The demo kernel: boots, attaches to XenStore (on Xen, or on the QEMU test
//! platform that `./run-qemu.sh` sets up), shows who it is and its home in
//! the store, then waits for the toolstack's `control/shutdown` request and
//! powers off when it comes. Without any xenstore platform it shows its
//! threads and timer working and exits.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use ::xenstore::{Store, WatchEvent, XsError};
use kernel::sync::{Mutex, SpinLock, WaitQueue};
use kernel::xenstore::{self, XsClient};
use kernel::{BootInfo, ExitCode, thread, time};

kernel::entry_point!(main);

/// How deep the boot log lists the xenstore home.
const LISTING_DEPTH: usize = 3;
/// Longest value shown in the listing.
const LISTING_VALUE_MAX: usize = 60;

fn main(_boot: &'static BootInfo) -> ! {
    let start_ticks = time::ticks();
    thread::sleep(Duration::from_millis(50));
    log::info!(
        "timer running: {} ticks in 50 ms of sleep (uptime {:?})",
        time::ticks() - start_ticks,
        time::uptime()
    );
    match xenstore::init() {
        Ok(info) => {
            log::info!(
                "platform: {}; domain {}, home {}",
                info.platform,
                info.domid,
                info.home
            );
            match serve_control(&info.home) {
                Ok(command) => {
                    log::info!("control/shutdown = {command:?}: powering off");
                    kernel::exit(ExitCode::Success)
                }
                Err(e) => {
                    log::error!("xenstore demo failed: {e}");
                    kernel::exit(ExitCode::Failure)
                }
            }
        }
        Err(e) => {
            log::warn!("{e}");
            log::info!(
                "no xenstore here: boot with ./run-qemu.sh (adds the ivshmem-doorbell device \
                 and the real xenstored) or on Xen; showing threads instead"
            );
            threads_demo();
            measure_latencies();
            log::info!("demo done; powering off");
            kernel::exit(ExitCode::Success)
        }
    }
}

/// Lists the home, watches `control/shutdown` and waits for a request;
/// acknowledges it by clearing the node (as Linux does) and returns it.
fn serve_control(home: &str) -> Result<String, XsError> {
    let xs = xenstore::client().map_err(|_| XsError::InvalidState("service not attached"))?;
    log::info!("xenstore home {home}:");
    list_tree(&xs, home, 1);

    let request: Arc<SpinLock<Option<String>>> = Arc::new(SpinLock::new(None));
    let arrived = Arc::new(WaitQueue::new());
    let (slot, wake, client) = (request.clone(), arrived.clone(), xs.clone());
    let watch = xs.watch("control/shutdown", move |event: &WatchEvent| {
        if event.path() != Some("control/shutdown") {
            return;
        }
        // Read and clear in one transaction: the request is taken once.
        let taken = client.transaction(|t| {
            let value = t.read_string("control/shutdown")?;
            if !value.is_empty() {
                t.write("control/shutdown", "")?;
            }
            Ok(value)
        });
        match taken {
            Ok(value) if value.is_empty() => {} // the initial event, or our own clearing
            Ok(value) => {
                *slot.lock() = Some(value);
                wake.wake_all();
            }
            Err(e) => log::error!("control/shutdown: {e}"),
        }
    })?;
    // The demo on the host waits for this exact line before it writes.
    log::info!(
        "xenstore: watching control/shutdown (try: xenstore-write {home}/control/shutdown poweroff)"
    );
    arrived.wait(|| request.lock().is_some());
    let command = request.lock().take().unwrap_or_default();
    watch.unwatch()?;
    if !matches!(command.as_str(), "poweroff" | "halt" | "reboot") {
        log::warn!("control/shutdown = {command:?} is not supported here; powering off anyway");
    } else if command == "reboot" {
        log::info!("reboot requested: this kernel powers off instead");
    }
    Ok(command)
}

/// Logs `path`'s children like `xenstore-ls`, `depth` levels deep.
fn list_tree(xs: &XsClient, path: &str, depth: usize) {
    let children = match xs.directory(path) {
        Ok(children) => children,
        Err(e) => {
            log::warn!("  {path}: {e}");
            return;
        }
    };
    for child in children {
        let full = alloc::format!("{path}/{child}");
        let value = xs
            .read(&full)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_else(|e| alloc::format!("<{e}>"));
        let shown: String = value.chars().take(LISTING_VALUE_MAX).collect();
        log::info!(
            "  {:indent$}{child} = {shown:?}",
            "",
            indent = 2 * (depth - 1)
        );
        if depth < LISTING_DEPTH {
            list_tree(xs, &full, depth + 1);
        }
    }
}

/// Three threads taking turns under a mutex, for a kernel without xenstore.
fn threads_demo() {
    static ROUNDS: AtomicU64 = AtomicU64::new(0);
    static LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
    let workers: Vec<_> = ["worker-a", "worker-b", "worker-c"]
        .into_iter()
        .map(|name| {
            thread::spawn_joinable(name, move || {
                for _ in 0..3 {
                    ROUNDS.fetch_add(1, Ordering::Relaxed);
                    LOG.lock().push(name);
                    thread::sleep(Duration::from_millis(5));
                }
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
}
/// Logs two numbers later benchmarks build on: a thread switch (yield
/// ping-pong) and an interrupt waking a sleeping thread (self-IPI ->
/// completion -> the thread runs). Informational, not asserted.
fn measure_latencies() {
    use alloc::sync::Arc;
    use kernel::interrupts;
    use kernel::sync::Completion;
    use kernel::time::Instant;

    static STOP: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    let partner = thread::spawn_joinable("yielder", || {
        while !STOP.load(Ordering::Relaxed) {
            thread::yield_now();
        }
    });
    const SWITCHES: u64 = 2000;
    let start = Instant::now();
    for _ in 0..SWITCHES {
        thread::yield_now();
    }
    let per_switch = start.elapsed().as_nanos() as u64 / (2 * SWITCHES);
    STOP.store(true, Ordering::Relaxed);
    partner.join();

    let Ok(vector) = interrupts::allocate_vector() else {
        return;
    };
    static SENT_AT: AtomicU64 = AtomicU64::new(0);
    let mut worst = 0;
    let mut total = 0;
    const ROUNDS: u64 = 200;
    for _ in 0..ROUNDS {
        let event = Arc::new(Completion::new());
        let signal = event.clone();
        let Ok(reg) = interrupts::register_vector(vector, move || signal.complete()) else {
            return;
        };
        let waiter = thread::spawn_joinable("irq-waiter", move || {
            event.wait();
            let latency = Instant::now().as_micros() - SENT_AT.load(Ordering::SeqCst);
            SENT_AT.store(latency, Ordering::SeqCst);
        });
        thread::sleep(Duration::from_millis(1)); // let it block
        SENT_AT.store(Instant::now().as_micros(), Ordering::SeqCst);
        interrupts::send_self_ipi(vector);
        waiter.join();
        let latency = SENT_AT.load(Ordering::SeqCst);
        worst = worst.max(latency);
        total += latency;
        interrupts::unregister(reg);
    }
    interrupts::free_vector(vector);
    log::info!(
        "latency: thread switch {per_switch} ns; interrupt -> woken thread runs: mean {} us, worst {worst} us ({ROUNDS} rounds)",
        total / ROUNDS
    );
}

//! The demo kernel: boots, attaches to XenStore (on Xen, or on the QEMU test
//! platform that `./run-qemu.sh` sets up), starts XenBus and the guest
//! services (control/shutdown, data/, vm-data/), then serves the shell on
//! the console: COM1 where there is one, and Xen's PV console (`xl
//! console`; a PVH guest has no UART), which mirrors COM1's output and
//! feeds its input. The toolstack's `control/shutdown` request powers it
//! off (or reboots it). Without any xenstore platform it shows its threads
//! and timer working and exits.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use kernel::shell::Shell;
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
    match kernel::xenstore_service::init() {
        Ok(info) => {
            log::info!(
                "platform: {}; {}, home {}",
                info.platform,
                info.domid,
                info.home
            );
            match kernel::guest::start(kernel::guest::Setup::interactive()) {
                Ok(guest) => {
                    for d in guest.bus().devices() {
                        log::info!("xenbus: {} ({}) state {}", d.nodename, d.class, d.state);
                    }
                    // The scripted demo on the host waits for this line
                    // before it writes control/shutdown.
                    log::info!(
                        "xenstore: watching control/shutdown (try: xenstore-write {}/control/shutdown poweroff)",
                        info.home
                    );
                    // `xsload=on`: the real-Xen suspend tests' busy guest.
                    kernel::guest::load::start_if_asked();
                    // File copy from dom0 needs grants and a vchan: Xen only.
                    if info.platform == kernel::xenstore_service::PlatformKind::Xen
                        && let Err(e) = kernel::fcopy::start(kernel::fcopy::Config::from_cmdline())
                    {
                        log::error!("{e}");
                    }
                }
                Err(e) => log::error!("xenbus and the guest services did not start: {e}"),
            }
            serve_shell()
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

/// Runs the shell on the console for the kernel's life.
fn serve_shell() -> ! {
    match Shell::new() {
        Ok(mut shell) => {
            // What the toolstack gave us: the home, as the shell's `ls` shows it.
            if let Some(info) = kernel::xenstore_service::info() {
                kernel::println!("\nxenstore home {}:", info.home);
                shell.execute_line("ls");
            }
            kernel::println!(
                "\nxenstore shell on the console (COM1, and Xen's PV console: xl console): type \
                 'help'.\n'poweroff' powers the guest off; in QEMU (./run-qemu.sh), Ctrl-A x quits at \
                 any time.\n"
            );
            shell.run()
        }
        Err(e) => {
            log::error!("no shell: {e}");
            loop {
                thread::sleep(Duration::from_secs(3600));
            }
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

//! The measuring harness shared by every Rust-side figure: N threads loop on
//! one operation; after a warm-up, the operations completed in a fixed window
//! are counted. The C peer (`libxs_bench.c`) follows the same procedure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long to warm up, then how long to count.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

/// One thread's count, alone on its cache line so counting does not bounce
/// lines between cores.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU64);

/// Runs `threads` workers, worker `i` calling `make_op(i)`'s closure in a
/// loop until told to stop; each call returns how many operations it
/// completed (1 for a synchronous request). Returns operations per second in
/// the measured window, or the first worker's error.
pub fn ops_per_sec<F>(
    threads: usize,
    window: Window,
    mut make_op: impl FnMut(usize) -> F,
) -> Result<f64, String>
where
    F: FnMut() -> Result<u64, String> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Arc<Vec<Counter>> = Arc::new((0..threads).map(|_| Counter::default()).collect());
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let mut op = make_op(i);
            let (stop, counters) = (Arc::clone(&stop), Arc::clone(&counters));
            thread::spawn(move || -> Result<(), String> {
                while !stop.load(Ordering::Relaxed) {
                    match op() {
                        // Only this thread writes its counter: load + store is enough.
                        Ok(n) => {
                            let c = &counters[i].0;
                            c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    let total = || -> u64 { counters.iter().map(|c| c.0.load(Ordering::Relaxed)).sum() };
    thread::sleep(window.warmup);
    let (ops0, t0) = (total(), Instant::now());
    thread::sleep(window.measure);
    let (ops1, t1) = (total(), Instant::now());
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().map_err(|_| "a worker panicked".to_string())??;
    }
    Ok((ops1 - ops0) as f64 / (t1 - t0).as_secs_f64())
}

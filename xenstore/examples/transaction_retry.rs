//! Four threads increment one counter, each in its own transactions: the
//! daemon answers EAGAIN to a commit that lost a race, and
//! `Client::transaction` runs the body again until it commits, so no
//! increment is lost.
//!
//! ```sh
//! XENSTORED_PATH=/run/xenstored/socket cargo run -p xenstore-client --example transaction_retry
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use xenstore_client::{Client, Store, XsError};

const THREADS: u32 = 4;
const INCREMENTS: u32 = 25;

fn main() -> Result<(), XsError> {
    let socket = std::env::var("XENSTORED_PATH").unwrap_or_else(|_| "/run/xenstored/socket".into());
    let xs = Client::connect(&socket)?;
    xs.write_display("/example/counter", 0)?;

    // How often a transaction body ran: more than the commits when the
    // daemon sent some back with EAGAIN.
    let attempts = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (xs, attempts) = (xs.clone(), attempts.clone());
            std::thread::spawn(move || -> Result<(), XsError> {
                for _ in 0..INCREMENTS {
                    xs.transaction(|t| {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        let n: u32 = t.read_parsed("/example/counter")?;
                        t.write_display("/example/counter", n + 1)
                    })?;
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker panicked")?;
    }

    let total: u32 = xs.read_parsed("/example/counter")?;
    let ran = attempts.load(Ordering::Relaxed);
    println!(
        "counter = {total} after {} commits; bodies ran {ran} times ({} retried after EAGAIN)",
        THREADS * INCREMENTS,
        ran - THREADS * INCREMENTS
    );
    xs.rm_tree("/example")?;
    assert_eq!(total, THREADS * INCREMENTS, "an increment was lost");
    println!("ok");
    Ok(())
}

//! The kernel's side of the real-Xen xenstore comparison (`realxen bench`,
//! run by `./run-bench.sh`): serves dom0's driver (`realxen/dom0/
//! xsbench_driver.c`) the same commands as the Linux guest beside it
//! (`realxen/dom0/xsbench_guest.c`), under `data/xsbench/`:
//!
//! - `cmd` = "SEQ WORKLOAD MILLIS": run WORKLOAD for MILLIS on this guest's
//!   clock, then write `done` = "SEQ OPS". `read1`: reads of one 32-byte
//!   node, one in flight; `write1`: writes of one; `read4`: reads by 4
//!   threads sharing the client; `txn`: transactions writing one node,
//!   each committed (EAGAIN retried by [`Store::transaction`]). "SEQ quit 0"
//!   ends the image.
//! - `ping`: the watch callback reads it and writes `pong` = its value
//!   (the round trip dom0 times).
//!
//! All timing and CPU accounting is dom0's; this image only checks that
//! every read returns what was written. It makes no host-link requests:
//! the bench drives it through xenstore alone.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use ::xenstore::{Store, XsError};
use kernel::thread;
use kernel::time::Instant;
use kernel::xenstore_service::XsClient;
use ktests::support::{Recorder, client};

ktests::config!(role = "xen", timeout_secs = 3600);
ktests::main!(serve_the_dom0_driver);

/// What every read returns and every write stores (as the Linux guest's).
const VALUE: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const THREADS: usize = 4;
/// A "never" for dom0's next command (the whole bench is minutes).
const NEVER: Duration = Duration::from_secs(1800);

fn serve_the_dom0_driver() {
    let xs = client();
    xs.write("data/xsbench/value", VALUE).expect("value");
    let commands = Recorder::new();
    let _cmd = xs
        .watch("data/xsbench/cmd", commands.callback())
        .expect("watch cmd");
    let echo = xs.clone();
    let _ping = xs
        .watch("data/xsbench/ping", move |_| {
            match echo.read("data/xsbench/ping") {
                Ok(value) => echo.write("data/xsbench/pong", &value).expect("pong"),
                Err(XsError::Enoent(_)) => {} // the initial event, before any ping
                Err(e) => panic!("reading ping: {e}"),
            }
        })
        .expect("watch ping");
    xs.write("data/xsbench/ready", b"1").expect("ready");
    let mut last = 0u64;
    let mut seen = 0;
    loop {
        assert!(
            commands.wait_for(NEVER, |events| events.len() > seen),
            "dom0 sent no command for {NEVER:?}"
        );
        seen = commands.len();
        let Some((seq, workload, millis)) = command(&xs) else {
            continue;
        };
        if seq <= last {
            continue; // an event for a command already done
        }
        last = seq;
        if workload == "quit" {
            xs.write("data/xsbench/done", format!("{seq} 0").as_bytes())
                .expect("done");
            return;
        }
        let ops = run(&xs, &workload, Duration::from_millis(millis));
        xs.write("data/xsbench/done", format!("{seq} {ops}").as_bytes())
            .expect("done");
    }
}

/// The current command, if `cmd` holds one.
fn command(xs: &XsClient) -> Option<(u64, String, u64)> {
    let text = xs.read_string("data/xsbench/cmd").ok()?;
    let mut words = text.split_whitespace();
    let seq = words.next()?.parse().ok()?;
    let workload = String::from(words.next()?);
    let millis = words.next()?.parse().ok()?;
    Some((seq, workload, millis))
}

/// Runs `workload` for `length`, at least once (a guest descheduled past
/// `length` still has a sample); the count of operations.
fn run(xs: &XsClient, workload: &str, length: Duration) -> u64 {
    let until = Instant::now() + length;
    let once: &dyn Fn() = match workload {
        "read4" => return read_in_threads(until),
        "read1" => &|| read_once(xs),
        "write1" => &|| xs.write("data/xsbench/w", VALUE).expect("write"),
        "txn" => &|| {
            xs.transaction(|t| t.write("data/xsbench/t", VALUE))
                .expect("transaction")
        },
        other => panic!("dom0 asked for an unknown workload {other:?}"),
    };
    let mut ops = 0;
    loop {
        once();
        ops += 1;
        if Instant::now() >= until {
            return ops;
        }
    }
}

fn read_once(xs: &XsClient) {
    let value = xs.read("data/xsbench/value").expect("read");
    assert_eq!(value, VALUE, "a read returned what was written");
}

/// Reads by [`THREADS`] threads sharing the client, until `until` (each
/// at least one).
fn read_in_threads(until: Instant) -> u64 {
    let total = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|i| {
            let total = total.clone();
            thread::spawn_joinable(&format!("xsbench-{i}"), move || {
                let xs = client();
                let mut n = 0;
                loop {
                    read_once(&xs);
                    n += 1;
                    if Instant::now() >= until {
                        break;
                    }
                }
                total.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    for w in workers {
        w.join();
    }
    total.load(Ordering::Relaxed)
}

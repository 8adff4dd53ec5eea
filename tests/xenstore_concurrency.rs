//! Concurrency against the real xenstored over the ring: transactions that
//! race a host write (EAGAIN, and the retry helper converging), and eight
//! kernel threads sharing one client with many requests in flight.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use ::xenstore::Store;
use kernel::thread;
use kernel::time::Instant;
use ktests::support::{abs, client, host};

ktests::config!(timeout_secs = 120, needs = "xenstore");
ktests::main!(
    eight_threads_doing_500_mixed_requests_each_all_see_correct_results,
    a_transaction_racing_a_host_write_ends_in_eagain_and_applies_nothing,
    the_retry_helper_converges_after_a_conflict,
    an_aborted_transaction_applies_nothing,
);

const THREADS: usize = 8;
const REQUESTS: usize = 500;
const KEYS: usize = 10;

/// One thread's work: writes, reads back, lists and checks its own keys,
/// and reads a node every thread shares. Returns what went wrong, if anything.
fn mixed_requests(id: usize) -> Result<(), String> {
    let xs = client();
    let dir = format!("data/mt/t{id}");
    let mut written: BTreeMap<usize, String> = BTreeMap::new();
    for i in 0..REQUESTS {
        let key = i % KEYS;
        let path = format!("{dir}/k{key}");
        let fail = |what: &str, e: &dyn core::fmt::Debug| {
            format!("thread {id} request {i} ({what} {path}): {e:?}")
        };
        match i % 5 {
            0 | 3 => {
                let value = format!("t{id}-r{i}");
                xs.write(&path, &value).map_err(|e| fail("write", &e))?;
                written.insert(key, value);
            }
            1 => {
                let got = xs.read_optional(&path).map_err(|e| fail("read", &e))?;
                let want = written.get(&key).map(|v| v.as_bytes().to_vec());
                if got != want {
                    return Err(fail("read back", &(got, want)));
                }
            }
            2 => {
                let mut names = xs.directory(&dir).map_err(|e| fail("directory", &e))?;
                names.sort();
                let mut want: Vec<String> = written.keys().map(|k| format!("k{k}")).collect();
                want.sort();
                if names != want {
                    return Err(fail("directory", &(names, want)));
                }
            }
            _ => {
                let name = xs
                    .read_string("name")
                    .map_err(|e| fail("shared read", &e))?;
                if name != "guest1" {
                    return Err(fail("shared read", &name));
                }
            }
        }
    }
    Ok(())
}

fn eight_threads_doing_500_mixed_requests_each_all_see_correct_results() {
    let xs = client();
    xs.mkdir("data/mt").unwrap();
    let start = Instant::now();
    let results: Vec<_> = (0..THREADS)
        .map(|id| {
            let outcome = alloc::sync::Arc::new(kernel::sync::SpinLock::new(None));
            let slot = outcome.clone();
            let handle = thread::spawn_joinable(&format!("xs-worker-{id}"), move || {
                *slot.lock() = Some(mixed_requests(id));
            });
            (handle, outcome)
        })
        .collect();
    for (id, (handle, outcome)) in results.into_iter().enumerate() {
        handle.join();
        match outcome.lock().take() {
            Some(Ok(())) => {}
            Some(Err(e)) => panic!("{e}"),
            None => panic!("thread {id} ended without a result"),
        }
    }
    let elapsed = start.elapsed();
    log::info!(
        "{} requests from {THREADS} threads in {elapsed:?} ({} per second)",
        THREADS * REQUESTS,
        (THREADS * REQUESTS) as u128 * 1_000_000 / elapsed.as_micros().max(1)
    );
    // Every thread's last values are there, seen from the host too.
    let last = format!("t3-r{}", (REQUESTS - 1) / KEYS * KEYS + 3);
    assert_eq!(host("xenstore-read", &[&abs("data/mt/t3/k3")]), [last]);
    let stats = xs.stats();
    assert_eq!(stats.core.unknown_req_id, 0);
    assert_eq!(stats.transport_failures, 0);
    xs.rm_tree("data/mt").unwrap();
}

fn a_transaction_racing_a_host_write_ends_in_eagain_and_applies_nothing() {
    let xs = client();
    xs.write("data/tx/counter", "0").unwrap();
    let t = xs.transaction_start().unwrap();
    let seen: u32 = t.read_parsed("data/tx/counter").unwrap();
    assert_eq!(seen, 0);
    t.write("data/tx/other", "written in the transaction")
        .unwrap();
    // The host (dom0, the real CLI) changes what the transaction read.
    host("xenstore-write", &[&abs("data/tx/counter"), "100"]);
    t.write_display("data/tx/counter", seen + 1).unwrap();
    let e = t.commit().unwrap_err();
    assert!(e.is_eagain(), "commit after a conflicting write: {e:?}");
    assert_eq!(xs.read_string("data/tx/counter").unwrap(), "100");
    assert!(
        !xs.exists("data/tx/other").unwrap(),
        "nothing of the transaction applied"
    );
}

fn the_retry_helper_converges_after_a_conflict() {
    let xs = client();
    xs.write("data/tx/counter", "100").unwrap();
    let attempts = AtomicU32::new(0);
    let result = xs.transaction(|t| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let value: u32 = t.read_parsed("data/tx/counter")?;
        if attempt == 1 {
            // Only the first attempt is raced.
            host("xenstore-write", &[&abs("data/tx/counter"), "1000"]);
        }
        t.write_display("data/tx/counter", value + 1)?;
        Ok(value + 1)
    });
    assert_eq!(result.unwrap(), 1001, "the retry saw the host's value");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "one conflict, one success"
    );
    assert_eq!(host("xenstore-read", &[&abs("data/tx/counter")]), ["1001"]);
}

fn an_aborted_transaction_applies_nothing() {
    ktests::support::assert_aborted_transactions_apply_nothing(&client());
}

//! `xsload`: a load of the guest's own on its xenstore client, for the
//! real-Xen suspend tests (`realxen/src/xentest/suspend.rs`): with it, a
//! suspend (`xl save`, `xl save -c`) always finds the guest busy. Off unless
//! the kernel command line says `xsload=on` (under xl: `extra = "xsload=on"`).
//! Everything it does is visible to dom0's `xenstore-*` tools under the
//! guest's home, and in its console log:
//!
//! - load threads `t0`, `t1`: write their round number to `data/load/tN`,
//!   then read `domid` back, every 50 ms; a transaction thread increments
//!   `data/load/tx` through `Client::transaction` (the retry helper) every
//!   100 ms. So requests and transactions are in flight at any moment.
//! - echo watches on `data/echo/w0`, `w1`, `w2`: for each event on a node
//!   below `data/echo/wK` the callback reads it and writes what it read to
//!   `data/echoed/wK/<leaf>`; for an event on `data/echo/wK` itself (the
//!   initial event of a registration, and of each re-registration after a
//!   resume) it counts it in `data/echoed/wK/fires`.
//! - `xsload.shared=PATH`: a watch on `PATH` (a node dom0 owns that the
//!   guest may read, outside its home); each event copies its value to
//!   `data/echoed/shared`.
//! - `xsload.hold=on`: a transaction held open on request, for the
//!   transaction-open-at-suspend test. Round `r` (1, 2, ...): once dom0
//!   writes `r` to `data/txhold/open`, a transaction is opened, writes
//!   `data/txhold/value`, and `data/txhold/opened` = `r` says so; once dom0
//!   writes `r` to `data/txhold/release`, it commits, and
//!   `data/txhold/result-r` says how that ended (`committed`, `EAGAIN`, or
//!   `error: ...`); then the retry helper writes `data/txhold/value` and
//!   `data/txhold/retry-r` says `ok` or `error: ...`.
//!
//! Every request that ends with an error is logged as a line with
//! `xsload: error:` and the typed error, and so are client counters that
//! say something was dropped. `data/load/ready` = `1` once every watch is
//! registered; `data/load/home` is the home the kernel believes it has
//! (`kernel::xenstore_service::info`, read again after a resume).

use alloc::format;
use alloc::string::{String, ToString};
use core::time::Duration;

use xenstore::{Store, WatchEvent, XsError};

use crate::thread;
use crate::xenstore_service::XsClient;

/// Load threads writing and reading.
const LOAD_THREADS: usize = 2;
/// Echo watches.
const ECHO_WATCHES: usize = 3;
const LOAD_PAUSE: Duration = Duration::from_millis(50);
const TX_PAUSE: Duration = Duration::from_millis(100);
/// Between polls of the hold's control nodes.
const HOLD_POLL: Duration = Duration::from_millis(200);

/// Starts the load if the command line asks for it (`xsload=on`). Logs
/// what it started, or why it could not.
pub fn start_if_asked() {
    let cmdline = crate::bootinfo::info();
    if cmdline.cmdline_value("xsload") != Some("on") {
        return;
    }
    let xs = match crate::xenstore_service::client() {
        Ok(xs) => xs,
        Err(e) => {
            log::error!("xsload: error: no xenstore client: {e}");
            return;
        }
    };
    if let Err(e) = start_watches(&xs, cmdline.cmdline_value("xsload.shared")) {
        log::error!("xsload: error: registering its watches: {e}");
        return;
    }
    for n in 0..LOAD_THREADS {
        let xs = xs.clone();
        start_thread(&format!("xsload-t{n}"), move || load_loop(&xs, n));
    }
    {
        let xs = xs.clone();
        start_thread("xsload-tx", move || transaction_loop(&xs));
    }
    let hold = cmdline.cmdline_value("xsload.hold") == Some("on");
    if hold {
        let xs = xs.clone();
        start_thread("xsload-hold", move || hold_loop(&xs));
    }
    report("marking ready", xs.write("data/load/ready", "1"));
    log::info!(
        "xsload: running: {LOAD_THREADS} load threads, a transaction loop, {ECHO_WATCHES} echo \
         watches{}{}",
        if cmdline.cmdline_value("xsload.shared").is_some() {
            ", the shared watch"
        } else {
            ""
        },
        if hold { ", the transaction hold" } else { "" }
    );
}

/// Starts a thread for the kernel's life; logs if it cannot.
fn start_thread(name: &str, body: impl FnOnce() + Send + 'static) {
    if let Err(e) = thread::Builder::new(name).spawn(body) {
        log::error!("xsload: error: cannot start {name}: {e}");
    }
}

/// Logs a failed request as an `xsload: error:` line.
fn report<T>(doing: &str, result: Result<T, XsError>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            log::error!("xsload: error: {doing}: {e}");
            None
        }
    }
}

fn start_watches(xs: &XsClient, shared: Option<&str>) -> Result<(), XsError> {
    for k in 0..ECHO_WATCHES {
        let watched = format!("data/echo/w{k}");
        let (client, own) = (xs.clone(), watched.clone());
        let mut fires = 0u64;
        xs.watch(&watched, move |event: &WatchEvent| {
            let Some(path) = event.path() else {
                log::error!("xsload: error: w{k} lost events: {event:?}");
                return;
            };
            if path == own {
                fires += 1;
                log::info!("xsload: w{k} fired on its own node ({fires})");
                report(
                    "counting a fire",
                    client.write_display(&format!("data/echoed/w{k}/fires"), fires),
                );
            } else if let Some(leaf) = path.strip_prefix(&format!("{own}/")) {
                match client.read_optional(path) {
                    Ok(Some(value)) => {
                        report(
                            "echoing",
                            client.write(&format!("data/echoed/w{k}/{leaf}"), value),
                        );
                    }
                    // Removed meanwhile: nothing to echo.
                    Ok(None) => {}
                    Err(e) => log::error!("xsload: error: reading {path}: {e}"),
                }
            }
        })?
        .detach();
    }
    if let Some(shared) = shared {
        let (client, path) = (xs.clone(), shared.to_string());
        xs.watch(shared, move |_: &WatchEvent| {
            match client.read(&path) {
                Ok(value) => {
                    log::info!(
                        "xsload: shared {path} = {:?}",
                        String::from_utf8_lossy(&value)
                    );
                    report(
                        "echoing the shared node",
                        client.write("data/echoed/shared", value),
                    );
                }
                // Not there (yet): the next write fires again.
                Err(XsError::Enoent(_)) => {}
                Err(e) => log::error!("xsload: error: reading {path}: {e}"),
            }
        })?
        .detach();
    }
    Ok(())
}

/// Client counters that say something was dropped.
fn losses(xs: &XsClient) -> [u64; 6] {
    let s = xs.stats();
    [
        s.watch_events_overflowed,
        s.watch_events_after_unwatch,
        s.core.unknown_watch_token,
        s.core.unknown_req_id,
        s.core.malformed,
        s.core.unexpected_type,
    ]
}

fn load_loop(xs: &XsClient, n: usize) -> ! {
    let node = format!("data/load/t{n}");
    let mut round = 0u64;
    let mut lost = losses(xs);
    let mut home = None;
    loop {
        round += 1;
        // The home the kernel believes in (read again after a resume), as
        // dom0 can see it: written once per change, into that home.
        let now = crate::xenstore_service::info().map(|i| i.home);
        if n == 0
            && now != home
            && let Some(h) = &now
            && report("publishing our home", xs.write("data/load/home", h)).is_some()
        {
            home = now;
        }
        if n == 0 && round.is_multiple_of(20) && losses(xs) != lost {
            lost = losses(xs);
            log::error!(
                "xsload: error: the client dropped messages: {:?}",
                xs.stats()
            );
        }
        report("a load write", xs.write_display(&node, round));
        // Present in every home, before and after a restore.
        report("a load read", xs.read_parsed::<u32>("domid"));
        thread::sleep(LOAD_PAUSE);
    }
}

fn transaction_loop(xs: &XsClient) -> ! {
    loop {
        report(
            "a load transaction",
            xs.transaction(|t| {
                let n = match t.read_optional("data/load/tx")? {
                    Some(v) => String::from_utf8_lossy(&v)
                        .trim()
                        .parse::<u64>()
                        .unwrap_or(0),
                    None => 0,
                };
                t.write_display("data/load/tx", n + 1)
            }),
        );
        thread::sleep(TX_PAUSE);
    }
}

/// Polls `path` (outside any transaction) until it holds `want`.
fn wait_for(xs: &XsClient, path: &str, want: &str) {
    loop {
        match xs.read_optional(path) {
            Ok(Some(v)) if v == want.as_bytes() => return,
            Ok(_) => {}
            Err(e) => log::error!("xsload: error: polling {path}: {e}"),
        }
        thread::sleep(HOLD_POLL);
    }
}

fn hold_loop(xs: &XsClient) -> ! {
    let mut round = 0u64;
    loop {
        round += 1;
        let r = round.to_string();
        wait_for(xs, "data/txhold/open", &r);
        let Some(held) = report("opening the held transaction", xs.transaction_start()) else {
            continue;
        };
        report(
            "writing in the held transaction",
            held.write("data/txhold/value", format!("held-{r}")),
        );
        log::info!("xsload: hold {r}: transaction {} open", held.id());
        report(
            "saying the hold is open",
            xs.write("data/txhold/opened", &r),
        );
        wait_for(xs, "data/txhold/release", &r);
        let result = match held.commit() {
            Ok(()) => "committed".to_string(),
            Err(e) if e.is_eagain() => "EAGAIN".to_string(),
            Err(e) => format!("error: {e}"),
        };
        log::info!("xsload: hold {r}: the held transaction ended: {result}");
        report(
            "reporting the held transaction",
            xs.write(&format!("data/txhold/result-{r}"), &result),
        );
        let retry = match xs.transaction(|t| t.write("data/txhold/value", format!("retried-{r}"))) {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        log::info!("xsload: hold {r}: the retry helper: {retry}");
        report(
            "reporting the retry",
            xs.write(&format!("data/txhold/retry-{r}"), &retry),
        );
    }
}

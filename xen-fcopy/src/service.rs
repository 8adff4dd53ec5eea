//! The guest's service as xenstore shows it (`docs/fcopy.md`): finding the
//! domain, the claim transaction, waiting for the vchan's keys.

use std::time::{Duration, Instant};

use xenstore::{Client, StdPlatform, Store, XsError};

use crate::error::Error;

/// Where xenstored listens in dom0; `XENSTORED_PATH` overrides, as for
/// libxenstore.
const SOCKETS: [&str; 2] = ["/var/run/xenstored/socket", "/run/xenstored/socket"];

/// A connection to dom0's xenstored.
pub type Xs = Client<StdPlatform>;

/// Connects to dom0's xenstored.
pub fn connect() -> Result<Xs, Error> {
    let env = std::env::var("XENSTORED_PATH").ok();
    let mut last = None;
    for path in env.iter().map(String::as_str).chain(SOCKETS) {
        match Client::connect(path) {
            Ok(xs) => return Ok(xs),
            Err(e) => last = Some(Error::Xenstore(format!("connecting to {path}"), e)),
        }
    }
    Err(last.unwrap_or_else(|| Error::Transport("no xenstored socket".into())))
}

fn xs_err(what: &str) -> impl FnOnce(XsError) -> Error + '_ {
    move |e| Error::Xenstore(what.to_string(), e)
}

/// The domain id of `domain`: a number as is, else the domain whose
/// `/local/domain/N/name` it is.
pub fn domid(xs: &Xs, domain: &str) -> Result<u32, Error> {
    if let Ok(id) = domain.parse() {
        return Ok(id);
    }
    let ids = xs
        .directory("/local/domain")
        .map_err(xs_err("listing /local/domain"))?;
    for id in ids {
        if xs.read(&format!("/local/domain/{id}/name")).ok().as_deref() == Some(domain.as_bytes()) {
            return id
                .parse()
                .map_err(|_| Error::NoService(format!("domain id {id:?}")));
        }
    }
    Err(Error::NoService(format!("no domain named {domain:?}")))
}

/// The service's xenstore directory in domain `domid`, checked to offer
/// version 1.
pub fn base(xs: &Xs, domid: u32) -> Result<String, Error> {
    let base = format!("/local/domain/{domid}/data/fcopy");
    match xs.read(&format!("{base}/version")) {
        Ok(v) if v == format!("{}", fcopy::wire::VERSION).as_bytes() => Ok(base),
        Ok(v) => Err(Error::NoService(format!(
            "domain {domid} speaks version {:?}, this sender {}",
            String::from_utf8_lossy(&v),
            fcopy::wire::VERSION
        ))),
        Err(XsError::Enoent(_)) => Err(Error::NoService(format!(
            "domain {domid} has no {base}/version (is its kernel up?)"
        ))),
        Err(e) => Err(Error::Xenstore(format!("reading {base}/version"), e)),
    }
}

/// Claims the service: in one transaction, reads the claim node and,
/// absent, writes `me` there. The daemon lets one of two racing senders
/// commit; the other's transaction is retried (EAGAIN) and then reads the
/// claim present. A claim present is [`Error::Busy`].
pub fn claim(xs: &Xs, base: &str, me: &str) -> Result<(), Error> {
    let node = format!("{base}/claim");
    let held = xs
        .transaction(|t| match t.read(&node) {
            Ok(holder) => Ok(Some(holder)),
            Err(XsError::Enoent(_)) => t.write(&node, me).map(|()| None),
            Err(e) => Err(e),
        })
        .map_err(xs_err("the claim transaction"))?;
    match held {
        None => Ok(()),
        Some(holder) => Err(Error::Busy(String::from_utf8_lossy(&holder).into_owned())),
    }
}

/// Gives the claim back, if it is still `me`'s (for a sender that never
/// connected; once connected, the guest releases it).
pub fn release(xs: &Xs, base: &str, me: &str) {
    let node = format!("{base}/claim");
    let _ = xs.transaction(|t| match t.read(&node) {
        Ok(v) if v == me.as_bytes() => t.rm(&node),
        _ => Ok(()),
    });
}

/// Waits until the guest offers the vchan (it offers it again after each
/// connection).
pub fn wait_offer(xs: &Xs, base: &str, limit: Duration) -> Result<String, Error> {
    let path = format!("{base}/vchan");
    let start = Instant::now();
    loop {
        match xs.exists(&format!("{path}/event-channel")) {
            Ok(true) => return Ok(path),
            Ok(false) => {}
            Err(e) => return Err(Error::Xenstore(format!("reading {path}"), e)),
        }
        if start.elapsed() > limit {
            return Err(Error::NoService(format!(
                "the guest did not offer {path} within {} s",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the claim is no longer `me`'s: the guest gives it back once
/// it offers the vchan again, so a sender that returns after this leaves
/// the service free for the next one. At most `limit`; false if it did not
/// happen (the copy itself is done either way).
pub fn wait_released(xs: &Xs, base: &str, me: &str, limit: Duration) -> bool {
    let node = format!("{base}/claim");
    let start = Instant::now();
    while start.elapsed() < limit {
        match xs.read(&node) {
            Ok(v) if v == me.as_bytes() => {}
            _ => return true,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    /// Against the REAL xenstored: of two senders claiming at once, exactly
    /// one wins, every round; the loser is told who holds it.
    #[test]
    fn of_two_racing_claims_exactly_one_wins() {
        let tb = testbed::Testbed::with_options(testbed::Options::new())
            .unwrap_or_else(|e| panic!("the real xenstored could not start: {e}"));
        let base = "/local/domain/7/data/fcopy";
        let setup = Client::connect(tb.socket_path()).unwrap();
        setup.write(&format!("{base}/version"), "1").unwrap();
        let senders: Vec<Arc<Xs>> = (0..2)
            .map(|_| Arc::new(Client::connect(tb.socket_path()).unwrap()))
            .collect();
        for round in 0..20 {
            let barrier = Arc::new(Barrier::new(2));
            let racers: Vec<_> = senders
                .iter()
                .enumerate()
                .map(|(i, xs)| {
                    let (xs, barrier) = (Arc::clone(xs), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        claim(&xs, base, &format!("sender {i}"))
                    })
                })
                .collect();
            let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
            let winners = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(winners, 1, "round {round}: {results:?}");
            let holder = setup.read_string(&format!("{base}/claim")).unwrap();
            let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
            assert!(
                matches!(loser, Error::Busy(h) if *h == holder),
                "round {round}: {loser:?}, holder {holder:?}"
            );
            // Only the holder's release removes it.
            let other = if holder == "sender 0" {
                "sender 1"
            } else {
                "sender 0"
            };
            release(&setup, base, other);
            assert!(setup.exists(&format!("{base}/claim")).unwrap());
            release(&setup, base, &holder);
            assert!(!setup.exists(&format!("{base}/claim")).unwrap());
        }
    }
}

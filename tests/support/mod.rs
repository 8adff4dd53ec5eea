//! Helpers for the xenstore images: the kernel's service, the host agent,
//! and a recorder for watch events that tests wait on; [`bus`] has those
//! of the xenbus images.

pub mod bench;
pub mod bus;
pub mod crc32;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use ::xenstore::WatchEvent;
use kernel::sync::{SpinLock, WaitQueue};
use kernel::xenstore_service::XsClient;

/// Starts the xenstore service if needed and returns its client. Panics
/// with the reason if it cannot start (the test fails).
pub fn client() -> XsClient {
    if let Err(e) = kernel::xenstore_service::init() {
        panic!("xenstore service did not start: {e}");
    }
    kernel::xenstore_service::client().expect("service attached")
}

/// Asks the host agent to do `verb` with `args`; returns its values as
/// text. Panics if the host refuses or does not answer.
pub fn host(verb: &str, args: &[&str]) -> Vec<String> {
    let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    match kernel::hostlink::request(verb, &raw) {
        Ok(values) => values
            .into_iter()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .collect(),
        Err(e) => panic!("host agent: {verb} {args:?}: {e}"),
    }
}

/// Like [`host`] with raw byte arguments.
pub fn host_bytes(verb: &str, args: &[&[u8]]) -> Vec<String> {
    match kernel::hostlink::request(verb, args) {
        Ok(values) => values
            .into_iter()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .collect(),
        Err(e) => panic!("host agent: {verb}: {e}"),
    }
}

/// Our home, e.g. `/local/domain/1`.
pub fn home() -> String {
    kernel::xenstore_service::info()
        .expect("service attached")
        .home
}

/// `home()/relative`.
pub fn abs(relative: &str) -> String {
    alloc::format!("{}/{relative}", home())
}

/// Checks, in `data/tx/`, that an aborted transaction applies nothing: its
/// write is seen inside it and not outside, and an error returned by the
/// transaction helper's body aborts the whole transaction. The same check
/// runs on both beds (QEMU's and Xen's).
pub fn assert_aborted_transactions_apply_nothing(xs: &XsClient) {
    use ::xenstore::{Store, XsError};
    let t = xs.transaction_start().unwrap();
    t.write("data/tx/aborted", "x").unwrap();
    assert_eq!(
        t.read_string("data/tx/aborted").unwrap(),
        "x",
        "visible inside"
    );
    assert!(!xs.exists("data/tx/aborted").unwrap(), "invisible outside");
    t.abort().unwrap();
    assert!(!xs.exists("data/tx/aborted").unwrap());
    // An error inside the helper's body aborts and is returned as is.
    let e = xs
        .transaction(|t| {
            t.write("data/tx/aborted", "y")?;
            t.read("data/tx/missing")
        })
        .unwrap_err();
    assert!(matches!(e, XsError::Enoent(_)), "{e:?}");
    assert!(!xs.exists("data/tx/aborted").unwrap());
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// Collects a watch's events; tests wait until enough have arrived.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

struct RecorderInner {
    events: SpinLock<Vec<WatchEvent>>,
    arrived: WaitQueue,
}

impl Recorder {
    /// A fresh recorder.
    pub fn new() -> Self {
        Recorder {
            inner: Arc::new(RecorderInner {
                events: SpinLock::new(Vec::new()),
                arrived: WaitQueue::new(),
            }),
        }
    }

    /// The callback to pass to `watch` (records, wakes waiters).
    pub fn callback(&self) -> impl FnMut(&WatchEvent) + Send + 'static {
        let inner = self.inner.clone();
        move |event| {
            inner.events.lock().push(event.clone());
            inner.arrived.wake_all();
        }
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<WatchEvent> {
        self.inner.events.lock().clone()
    }

    /// How many events arrived.
    pub fn len(&self) -> usize {
        self.inner.events.lock().len()
    }

    /// Whether none arrived.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until `done(events)` holds or `timeout` passes; returns
    /// whether it held.
    pub fn wait_for(&self, timeout: Duration, mut done: impl FnMut(&[WatchEvent]) -> bool) -> bool {
        self.inner
            .arrived
            .wait_until(|| done(&self.inner.events.lock()), Some(timeout))
    }

    /// Waits until an event for exactly `path` arrived; panics after
    /// `timeout` with what did arrive.
    pub fn expect_path(&self, path: &str, timeout: Duration) {
        let seen = self.wait_for(timeout, |events| {
            events.iter().any(|e| e.path() == Some(path))
        });
        assert!(
            seen,
            "no watch event for {path:?} within {timeout:?}; got {:?}",
            self.events()
        );
    }

    /// Forgets the events so far.
    pub fn clear(&self) {
        self.inner.events.lock().clear();
    }
}

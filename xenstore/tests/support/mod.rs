//! Scripted mock peers for hostile-peer tests: they play a daemon that
//! misbehaves in ways the real one never does. Each test scripts the
//! replies; [`benign`] answers the ordinary requests around the hostile bit.

#![allow(dead_code)]

pub mod real;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xenstore::ring::{
    CONNECTED, FEATURE_RECONNECTION, LocalPage, RECONNECT, RingEvents, RingPage, input_chunk,
    output_chunk,
};
use xenstore::wire::{Header, MsgType};
use xenstore::{
    Client, Config, Platform, SpawnError, StdLock, StdPlatform, StdWaitQueue, UnixStreamTransport,
};

/// A request as the mock received it.
#[derive(Clone, Debug)]
pub struct Req {
    pub header: Header,
    pub body: Vec<u8>,
}

impl Req {
    pub fn ty(&self) -> Option<MsgType> {
        MsgType::from_raw(self.header.ty)
    }

    /// The first NUL-terminated argument.
    pub fn arg0(&self) -> String {
        let end = self
            .body
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.body.len());
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }
}

/// What a script does in answer to a request.
pub enum Act {
    /// Send these raw bytes (any number of messages, or garbage).
    Send(Vec<u8>),
    /// Send nothing.
    Nothing,
    /// Close the connection.
    Close,
}

pub type Script = Box<dyn FnMut(&Req) -> Act + Send>;

/// A raw message.
pub fn msg(ty: u32, req_id: u32, tx_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Header {
        ty,
        req_id,
        tx_id,
        len: body.len() as u32,
    }
    .encode()
    .to_vec();
    out.extend_from_slice(body);
    out
}

/// The reply a well-behaved daemon would give, with made-up data.
pub fn benign(req: &Req) -> Vec<u8> {
    let h = &req.header;
    let body: Vec<u8> = match req.ty() {
        Some(MsgType::Read) => format!("value-of:{}", req.arg0()).into_bytes(),
        Some(MsgType::Directory) => b"a\0b\0".to_vec(),
        Some(MsgType::TransactionStart) => b"7\0".to_vec(),
        Some(MsgType::GetDomainPath) => format!("/local/domain/{}\0", req.arg0()).into_bytes(),
        Some(MsgType::GetPerms) => b"n0\0".to_vec(),
        _ => b"OK\0".to_vec(),
    };
    msg(h.ty, h.req_id, h.tx_id, &body)
}

/// Byte transport of a mock peer.
trait Wire: Send {
    fn read_exact(&mut self, buf: &mut [u8]) -> bool;
    fn write_all(&mut self, data: &[u8]) -> bool;
    fn close(&mut self);
    /// After a failed read or write: if the client asked for a ring
    /// reconnection, performs the daemon's side of it and returns true
    /// (serving goes on, from a packet boundary).
    fn reset(&mut self) -> bool {
        false
    }
}

fn serve(mut wire: impl Wire, mut script: Script) {
    loop {
        let mut h = [0u8; 16];
        if !wire.read_exact(&mut h) {
            if wire.reset() {
                continue;
            }
            return;
        }
        let header = Header::decode(&h);
        let mut body = vec![0; header.len as usize];
        if !wire.read_exact(&mut body) {
            if wire.reset() {
                continue;
            }
            return;
        }
        match script(&Req { header, body }) {
            Act::Send(bytes) => {
                if !wire.write_all(&bytes) {
                    if wire.reset() {
                        continue;
                    }
                    return;
                }
            }
            Act::Nothing => {}
            Act::Close => {
                wire.close();
                return;
            }
        }
    }
}

struct SocketWire(UnixStream);

impl Wire for SocketWire {
    fn read_exact(&mut self, buf: &mut [u8]) -> bool {
        self.0.read_exact(buf).is_ok()
    }
    fn write_all(&mut self, data: &[u8]) -> bool {
        self.0.write_all(data).is_ok()
    }
    fn close(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// A mock daemon on the other end of a socketpair.
pub struct SocketMock<P: Platform = StdPlatform> {
    pub client: Client<P>,
    thread: Option<JoinHandle<()>>,
    /// A second handle on the mock's socket, for unsolicited sends.
    pub raw: UnixStream,
}

impl SocketMock {
    pub fn start(config: Config, script: impl FnMut(&Req) -> Act + Send + 'static) -> SocketMock {
        SocketMock::start_on(StdPlatform, config, script)
    }
}

impl<P: Platform> SocketMock<P> {
    /// [`SocketMock::start`] with a client on `platform`.
    pub fn start_on(
        platform: P,
        config: Config,
        script: impl FnMut(&Req) -> Act + Send + 'static,
    ) -> SocketMock<P> {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let raw = theirs.try_clone().unwrap();
        let thread = std::thread::spawn(move || serve(SocketWire(theirs), Box::new(script)));
        let client = Client::new(platform, UnixStreamTransport::from_stream(ours), config).unwrap();
        SocketMock {
            client,
            thread: Some(thread),
            raw,
        }
    }

    /// Sends raw bytes to the client unasked.
    pub fn inject(&self, bytes: &[u8]) {
        (&self.raw).write_all(bytes).unwrap();
    }
}

/// The std platform with a clock that moves only when the test moves it:
/// request deadlines then pass when the test decides, never because the
/// machine was slow. Its wait queue times out by that clock too, so a
/// thread left waiting with nobody to wake it stays asleep (with real time
/// it would wake at its deadline and hide the bug). One clock per test
/// binary: a test that uses it must be the binary's only user.
#[derive(Clone, Copy, Default)]
pub struct ManualClock;

/// Microseconds on [`ManualClock`].
static MANUAL_NOW_US: AtomicU64 = AtomicU64::new(0);

impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        MANUAL_NOW_US.fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Platform for ManualClock {
    type Lock<T: Send> = StdLock<T>;
    type WaitQueue = ManualWaitQueue;

    fn spawn(
        &self,
        name: &'static str,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> Result<(), SpawnError> {
        StdPlatform.spawn(name, body)
    }

    fn current_thread_id(&self) -> u64 {
        StdPlatform.current_thread_id()
    }

    fn now_us(&self) -> u64 {
        MANUAL_NOW_US.load(Ordering::SeqCst)
    }
}

/// [`ManualClock`]'s wait queue: std's, with timeouts counted on that
/// clock (looked at every 10 ms of real time while asleep).
pub struct ManualWaitQueue(StdWaitQueue);

impl xenstore::WaitQueue for ManualWaitQueue {
    fn new() -> Self {
        ManualWaitQueue(StdWaitQueue::new())
    }

    fn wait_until(&self, cond: &mut dyn FnMut() -> bool, timeout: Option<Duration>) -> bool {
        let until = timeout.map(|t| ManualClock.now_us() + t.as_micros() as u64);
        loop {
            if self.0.wait_until(cond, Some(Duration::from_millis(10))) {
                return true;
            }
            if until.is_some_and(|until| ManualClock.now_us() >= until) {
                return false;
            }
        }
    }

    fn wake_all(&self) {
        self.0.wake_all();
    }
}

impl<P: Platform> Drop for SocketMock<P> {
    fn drop(&mut self) {
        let _ = self.raw.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One direction of an in-process event channel: a counter of kicks.
#[derive(Default)]
pub struct Signal {
    kicks: Mutex<u64>,
    cond: Condvar,
}

impl Signal {
    pub fn raise(&self) {
        *self.kicks.lock().unwrap() += 1;
        self.cond.notify_all();
    }

    fn count(&self) -> u64 {
        *self.kicks.lock().unwrap()
    }

    /// Waits until the count moves past `seen`; false on timeout.
    fn wait_past(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let mut kicks = self.kicks.lock().unwrap();
        while *kicks == seen {
            match deadline {
                None => kicks = self.cond.wait(kicks).unwrap(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    kicks = self.cond.wait_timeout(kicks, d - now).unwrap().0;
                }
            }
        }
        true
    }

    /// The [`RingEvents::wait_until`] contract on top of the counter.
    fn wait_until(&self, ready: &mut dyn FnMut() -> bool, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let seen = self.count();
            if ready() {
                return true;
            }
            if !self.wait_past(seen, deadline) {
                return ready();
            }
        }
    }
}

/// The client's side of an in-process event channel.
pub struct LocalEvents {
    pub mine: Arc<Signal>,
    pub peer: Arc<Signal>,
}

impl RingEvents for LocalEvents {
    fn notify(&self) {
        self.peer.raise();
    }
    fn wait_until(&self, ready: &mut dyn FnMut() -> bool, timeout: Option<Duration>) -> bool {
        self.mine.wait_until(ready, timeout)
    }
    fn wake_all(&self) {
        self.mine.raise();
    }
}

struct RingWire {
    page: RingPage,
    mine: Arc<Signal>,
    client: Arc<Signal>,
    closed: Arc<Mutex<bool>>,
    /// Plays the ring reconnection feature (advertised in the page).
    reconnects: bool,
}

impl RingWire {
    /// The client asked for a reconnection (only if we offer it).
    fn reconnect_asked(&self) -> bool {
        self.reconnects && self.page.connection() == RECONNECT
    }
}

impl Wire for RingWire {
    fn read_exact(&mut self, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let page = &self.page;
            let closed = &self.closed;
            self.mine.wait_until(
                &mut || {
                    *closed.lock().unwrap()
                        || page.req_prod() != page.req_cons()
                        || self.reconnect_asked()
                },
                None,
            );
            if *closed.lock().unwrap() || self.reconnect_asked() {
                return false;
            }
            let (cons, prod) = (page.req_cons(), page.req_prod());
            let (off, n) = input_chunk(cons, prod);
            let n = n.min(buf.len() - done);
            page.read_req(off, &mut buf[done..done + n]);
            page.set_req_cons(cons.wrapping_add(n as u32));
            done += n;
            self.client.raise();
        }
        true
    }

    fn write_all(&mut self, data: &[u8]) -> bool {
        let mut done = 0;
        while done < data.len() {
            let page = &self.page;
            let closed = &self.closed;
            self.mine.wait_until(
                &mut || {
                    *closed.lock().unwrap()
                        || page.rsp_prod().wrapping_sub(page.rsp_cons()) < 1024
                        || self.reconnect_asked()
                },
                None,
            );
            if *closed.lock().unwrap() || self.reconnect_asked() {
                return false;
            }
            let (cons, prod) = (page.rsp_cons(), page.rsp_prod());
            let (off, n) = output_chunk(cons, prod);
            let n = n.min(data.len() - done);
            page.write_rsp(off, &data[done..done + n]);
            page.set_rsp_prod(prod.wrapping_add(n as u32));
            done += n;
            self.client.raise();
        }
        true
    }

    fn close(&mut self) {}

    /// The daemon's side of docs/misc/xenstore-ring.txt's reconnection:
    /// drop the partial packet (the caller's), empty both rings, set the
    /// connection back to CONNECTED, signal.
    fn reset(&mut self) -> bool {
        if *self.closed.lock().unwrap() || !self.reconnect_asked() {
            return false;
        }
        let p = &self.page;
        let (req, rsp) = (p.req_prod(), p.rsp_prod());
        p.set_req_cons(req);
        p.set_rsp_cons(rsp);
        p.set_connection(CONNECTED);
        self.client.raise();
        true
    }
}

/// A mock daemon on the other side of an in-memory ring page.
pub struct RingMock {
    pub client: Client<StdPlatform>,
    pub local: Arc<LocalPage>,
    /// The daemon's view of the page, for fault injection.
    pub page: RingPage,
    /// Kicks the client (after poking the page).
    pub client_signal: Arc<Signal>,
    peer_signal: Arc<Signal>,
    closed: Arc<Mutex<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl RingMock {
    pub fn start(config: Config, script: impl FnMut(&Req) -> Act + Send + 'static) -> RingMock {
        Self::start_with_features(0, config, script)
    }

    /// A mock whose page advertises `features` from the start; with
    /// [`FEATURE_RECONNECTION`] it plays the daemon's side of a ring
    /// reconnection.
    pub fn start_with_features(
        features: u32,
        config: Config,
        script: impl FnMut(&Req) -> Act + Send + 'static,
    ) -> RingMock {
        let local = LocalPage::new();
        RingPage::local(&local).set_server_features(features);
        let client_signal = Arc::new(Signal::default());
        let peer_signal = Arc::new(Signal::default());
        let closed = Arc::new(Mutex::new(false));
        let wire = RingWire {
            page: RingPage::local(&local),
            mine: Arc::clone(&peer_signal),
            client: Arc::clone(&client_signal),
            closed: Arc::clone(&closed),
            reconnects: features & FEATURE_RECONNECTION != 0,
        };
        let thread = std::thread::spawn(move || serve(wire, Box::new(script)));
        let events = LocalEvents {
            mine: Arc::clone(&client_signal),
            peer: Arc::clone(&peer_signal),
        };
        let client =
            Client::over_ring(StdPlatform, RingPage::local(&local), events, config).unwrap();
        RingMock {
            client,
            page: RingPage::local(&local),
            local,
            client_signal,
            peer_signal,
            closed,
            thread: Some(thread),
        }
    }
}

impl RingMock {
    /// Another client over the same page and event channel, as a kernel
    /// makes after its first connection failed.
    pub fn new_client(&self, config: Config) -> Result<Client<StdPlatform>, xenstore::XsError> {
        let events = LocalEvents {
            mine: Arc::clone(&self.client_signal),
            peer: Arc::clone(&self.peer_signal),
        };
        Client::over_ring(StdPlatform, RingPage::local(&self.local), events, config)
    }
}

impl Drop for RingMock {
    fn drop(&mut self) {
        *self.closed.lock().unwrap() = true;
        self.peer_signal.raise();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `cond` for up to 10 s (for effects of background threads).
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

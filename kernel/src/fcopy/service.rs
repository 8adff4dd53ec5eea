//! The service's thread: offers the vchan, serves one connection at a
//! time, reads frames, hands them to the receiver and writes its answers.
//! A connection ends after complete or cancel is answered, when the sender
//! goes (end of stream: it closed, or its process died), after `idle` of
//! silence, or on a frame that does not decode; in every case but complete
//! the transfer under way is dropped, so no partial file appears.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use core::fmt;

use fcopy::receiver::Outcome;
use fcopy::wire::{self, HEADER_LEN, Kind, MAX_BODY, Reply, Request, Status};
use fcopy::{DecodeError, Receiver};
use xen::DomId;
use xenstore::Store;

use super::{Config, STORE, claim};
use crate::thread;
use crate::vchan::{BULK_RING_BYTES, Vchan, VchanError};
use crate::xenstore_service::{self, XsClient};

/// Why the service did not start.
#[derive(Debug)]
pub enum StartError {
    /// [`super::start`] ran before.
    AlreadyRunning,
    /// No xenstore connection (the service publishes its keys there).
    NoStore(String),
    /// Its thread could not be created.
    Spawn(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyRunning => f.write_str("fcopy: already running"),
            Self::NoStore(e) => write!(f, "fcopy: no xenstore: {e}"),
            Self::Spawn(e) => write!(f, "fcopy: no thread: {e}"),
        }
    }
}

impl core::error::Error for StartError {}

/// How long to wait before offering the vchan again after that failed.
const RETRY_OFFER: core::time::Duration = core::time::Duration::from_secs(5);

pub(super) fn spawn(config: Config) -> Result<(), StartError> {
    let xs = xenstore_service::client().map_err(|e| StartError::NoStore(format!("{e}")))?;
    thread::Builder::new("fcopy")
        .spawn(move || run(&xs, config))
        .map_err(|e| StartError::Spawn(format!("{e}")))?;
    Ok(())
}

/// The service's directory in our home (read each time: a resume into a
/// new domain changes the home).
fn base() -> Option<String> {
    xenstore_service::info().map(|i| format!("{}/data/fcopy", i.home))
}

/// Publishes the version under `base` (and clears a claim left there).
fn publish(xs: &XsClient, base: &str, config: &Config) -> bool {
    claim::release(xs, base);
    if let Err(e) = xs.write(&format!("{base}/version"), format!("{}", wire::VERSION)) {
        log::error!("fcopy: publishing {base}/version: {e}");
        return false;
    }
    log::info!(
        "fcopy: serving at {base} (cap {} bytes, idle {} s)",
        config.cap,
        config.idle.as_secs()
    );
    true
}

fn run(xs: &XsClient, config: Config) {
    let mut published: Option<String> = None;
    loop {
        let Some(base) = base() else {
            thread::sleep(RETRY_OFFER);
            continue;
        };
        if published.as_deref() != Some(base.as_str()) {
            if !publish(xs, &base, &config) {
                thread::sleep(RETRY_OFFER);
                continue;
            }
            published = Some(base.clone());
        }
        let vchan_path = format!("{base}/vchan");
        // Dom0 to guest carries the data; answers are small.
        let vchan = match Vchan::server(DomId::DOM0, &vchan_path, BULK_RING_BYTES, 0) {
            Ok(v) => v,
            Err(e) => {
                log::error!("fcopy: offering the vchan at {vchan_path}: {e}");
                thread::sleep(RETRY_OFFER);
                continue;
            }
        };
        // Offered again: the last sender's claim may go now.
        claim::release(xs, &base);
        let mut stale = claim::Stale::default();
        let connected = loop {
            match vchan.wait_connected(Some(config.idle)) {
                Ok(()) => break true,
                Err(VchanError::TimedOut) => stale.check(xs, &base),
                // Resumed into a new domain: offer again from the new home.
                Err(VchanError::Stale) => break false,
                Err(e) => {
                    log::error!("fcopy: waiting for a sender: {e}");
                    thread::sleep(RETRY_OFFER);
                }
            }
        };
        if connected {
            serve(&vchan, &config);
        }
        // Dropping it closes our end and removes its keys.
    }
}

/// Why a connection ended.
enum End {
    /// Complete or cancel answered.
    Done,
    /// End of stream.
    SenderGone,
    /// Nothing arrived for the idle time.
    Idle,
    /// A frame that does not decode (answered, then closed).
    Undecodable(DecodeError),
    /// The vchan failed.
    Vchan(VchanError),
}

fn serve(vchan: &Vchan, config: &Config) {
    let mut rx = Receiver::new();
    let end = exchange(vchan, config, &mut rx);
    let dropped = STORE.lock().as_mut().and_then(|s| rx.abort(s));
    let why = match &end {
        End::Done => None,
        End::SenderGone => Some(String::from("the sender went away")),
        End::Idle => Some(format!("idle for {} s", config.idle.as_secs())),
        End::Undecodable(e) => Some(format!("an undecodable frame ({e})")),
        End::Vchan(e) => Some(format!("{e}")),
    };
    match (dropped, why) {
        (Some(Outcome::Dropped(path, got)), Some(why)) => {
            log::warn!("fcopy: transfer of {path} cancelled after {got} bytes: {why}")
        }
        (_, Some(why)) => log::info!("fcopy: connection closed: {why}"),
        _ => {}
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` at end of stream.
fn read_exact(vchan: &Vchan, buf: &mut [u8], config: &Config) -> Result<bool, VchanError> {
    let mut at = 0;
    while at < buf.len() {
        match vchan.read(&mut buf[at..], Some(config.idle))? {
            0 => return Ok(false),
            n => at += n,
        }
    }
    Ok(true)
}

fn answer(vchan: &Vchan, reply: &Reply, config: &Config) -> Result<(), VchanError> {
    vchan.write_all(&wire::encode_reply(reply), Some(config.idle))
}

fn exchange(vchan: &Vchan, config: &Config, rx: &mut Receiver) -> End {
    let mut header = [0u8; HEADER_LEN];
    let mut body = vec![0u8; MAX_BODY];
    let ended = |e: VchanError| match e {
        VchanError::TimedOut => End::Idle,
        VchanError::PeerClosed => End::SenderGone,
        e => End::Vchan(e),
    };
    loop {
        match read_exact(vchan, &mut header, config) {
            Ok(true) => {}
            Ok(false) => return End::SenderGone,
            Err(e) => return ended(e),
        }
        let header = match wire::parse_header(&header) {
            Ok(h) => h,
            Err(e) => return refuse(vchan, config, header[3], e),
        };
        match read_exact(vchan, &mut body[..header.len], config) {
            Ok(true) => {}
            Ok(false) => return End::SenderGone,
            Err(e) => return ended(e),
        }
        let request = match wire::decode_request(header, &body[..header.len]) {
            Ok(r) => r,
            Err(e) => return refuse(vchan, config, header.kind.code(), e),
        };
        let (reply, outcome) = {
            let mut store = STORE.lock();
            let Some(store) = store.as_mut() else {
                return End::Vchan(VchanError::Resources(String::from("no store")));
            };
            rx.handle(store, &request)
        };
        if let Some(Outcome::Published(path, size)) = &outcome {
            log::info!("fcopy: received {path} ({size} bytes)");
        }
        if let Some(Outcome::Dropped(path, got)) = &outcome {
            log::info!("fcopy: transfer of {path} cancelled by the sender after {got} bytes");
        }
        if let Err(e) = answer(vchan, &reply, config) {
            return ended(e);
        }
        let last = matches!(request, Request::Complete | Request::Cancel);
        if last && reply.status == Status::Ok {
            // The proxy drops what is unread once it sees us close.
            return match vchan.flush(Some(config.idle)) {
                Ok(()) => End::Done,
                Err(e) => ended(e),
            };
        }
    }
}

/// Answers an undecodable frame (its kind byte, if it names one), then
/// ends the connection: after a bad length nothing that follows can be
/// trusted to be a frame boundary.
fn refuse(vchan: &Vchan, config: &Config, kind: u8, e: DecodeError) -> End {
    let status = match e {
        DecodeError::BadVersion(_) => Status::BadVersion,
        _ => Status::Malformed,
    };
    let reply = Reply {
        answers: Kind::from_code(kind).unwrap_or(Kind::Status),
        status,
        value: u64::from(wire::VERSION),
    };
    if answer(vchan, &reply, config).is_ok() {
        let _ = vchan.flush(Some(config.idle));
    }
    End::Undecodable(e)
}

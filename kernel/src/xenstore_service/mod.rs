//! The kernel-wide XenStore service: after [`init`], drivers (and the
//! xenbus layer) get a client with [`client`] and use the `xenstore`
//! crate's API (`xenstore::Store` for reads and writes, transactions,
//! watches, suspend/resume).
//!
//! ```ignore
//! use xenstore::Store;
//! let xs = kernel::xenstore_service::client()?;
//! let name = xs.read_string("name")?;            // relative: our home
//! xs.watch("control/shutdown", |e| log::info!("{e:?}"))?.detach();
//! ```
//!
//! Shape (FreeBSD's xenstore.c): the platform's interrupt only wakes
//! ([`channel::on_store_event`]); the runtime's receive thread reads the
//! ring and demultiplexes replies and watch events; its callback threads
//! run each watch's callbacks (watches in parallel); requesters sleep until
//! their reply is in.
//!
//! Platform choice happens once, in [`init`]: on Xen (the [`crate::hypervisor`]
//! bring-up succeeded) the ring comes from the HVM params; otherwise from
//! QEMU's ivshmem-doorbell device. Both are a [`StoreChannel`]; nothing
//! above it knows which runs. Like FreeBSD and Linux we then read our
//! domain id from the relative node `domid` and our home with
//! GET_DOMAIN_PATH.
//!
//! Locks: [`SERVICE`] (a spin lock, held only to read or swap the attached
//! client: never across a request) is a leaf; [`ATTACH`] (sleeping)
//! serialises [`init`] and [`reconnect`] and is taken before `SERVICE`.

pub mod channel;
mod ivshmem;
pub mod platform;
mod xen_ring;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::fmt;
use core::time::Duration;

use spin::Once;
use xenstore::{Client, Config, DomId, Store, XsError};

pub use channel::{PlatformKind, StoreChannel, StoreEvents, events_taken};
pub use ivshmem::IvshmemError;
pub use platform::KernelPlatform;

use crate::spinlock::SpinLock;
use crate::sync::Mutex;

/// A xenstore client on the kernel's platform. Cheap to clone (clones share
/// the connection).
pub type XsClient = Client<KernelPlatform>;

/// How long a request waits for its reply (and a write for room in the
/// ring) by default: a dead or stopped daemon then fails requests with
/// `XsError::Timeout` (a write that could not be sent whole fails the
/// connection with `SendTimedOut`) instead of blocking their callers for
/// ever. Generous: a live daemon answers in microseconds, a busy one in
/// milliseconds. The command line's `xenstore.timeout=SECS` overrides it
/// (`0`: wait for ever, as FreeBSD and Linux do).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The client configuration: [`Config::default`] with the request timeout
/// of [`request_timeout`].
pub fn config() -> Config {
    Config {
        request_timeout: request_timeout(),
        ..Config::default()
    }
}

/// The request timeout: `xenstore.timeout=SECS` from the command line
/// (`0`: none), else [`DEFAULT_REQUEST_TIMEOUT`]. An unreadable value is
/// logged and the default used.
pub fn request_timeout() -> Option<Duration> {
    let Some(value) = crate::bootinfo::info().cmdline_value("xenstore.timeout") else {
        return Some(DEFAULT_REQUEST_TIMEOUT);
    };
    match value.parse::<u64>() {
        Ok(0) => None,
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => {
            log::warn!(
                "xenstore: ignoring xenstore.timeout={value} (want whole seconds); using {}s",
                DEFAULT_REQUEST_TIMEOUT.as_secs()
            );
            Some(DEFAULT_REQUEST_TIMEOUT)
        }
    }
}

/// What [`init`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    /// Xen or the QEMU test platform.
    pub platform: PlatformKind,
    /// The channel, for logs (device, port, frame).
    pub channel: String,
    /// Our domain id, from the `domid` node.
    pub domid: DomId,
    /// Our home, from GET_DOMAIN_PATH (`/local/domain/<domid>`).
    pub home: String,
}

/// Why the service could not start.
#[derive(Debug)]
pub enum StoreError {
    /// Neither Xen nor the QEMU test platform's device is there.
    NoPlatform(IvshmemError),
    /// The platform was found but its ring or events could not be set up.
    Channel(String),
    /// The runtime could not start, or a first request failed.
    Xs(XsError),
    /// [`client`] before a successful [`init`].
    NotAttached,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPlatform(e) => write!(f, "no xenstore platform: not on Xen, and {e}"),
            Self::Channel(e) => write!(f, "xenstore channel: {e}"),
            Self::Xs(e) => write!(f, "xenstore: {e}"),
            Self::NotAttached => write!(f, "xenstore service not initialised"),
        }
    }
}

impl From<XsError> for StoreError {
    fn from(e: XsError) -> Self {
        Self::Xs(e)
    }
}

struct Attached {
    client: XsClient,
    info: StoreInfo,
}

/// The attached client and what we know about ourselves.
static SERVICE: SpinLock<Option<Attached>> = SpinLock::new(None);
/// Serialises attaching (init, reconnect).
static ATTACH: Mutex<()> = Mutex::new(());
/// The platform's channel, chosen once for the kernel's life.
static CHANNEL: Once<&'static dyn StoreChannel> = Once::new();

/// Chooses the platform (once), starts the xenstore runtime over its ring,
/// and learns our domain id and home. Idempotent: later calls return what
/// the first successful one found. Thread context.
///
/// Errors: [`StoreError::NoPlatform`] off Xen without the ivshmem-doorbell
/// device; [`StoreError::Channel`] if its ring or interrupt cannot be set
/// up; [`StoreError::Xs`] if the daemon does not answer sensibly.
pub fn init() -> Result<StoreInfo, StoreError> {
    let _attaching = ATTACH.lock();
    if let Some(a) = SERVICE.lock().as_ref() {
        return Ok(a.info.clone());
    }
    let channel = match CHANNEL.get() {
        Some(c) => *c,
        None => {
            let c = choose_channel()?;
            c.start_events().map_err(StoreError::Channel)?;
            *CHANNEL.call_once(|| c)
        }
    };
    let attached = attach(channel)?;
    let info = attached.info.clone();
    *SERVICE.lock() = Some(attached);
    Ok(info)
}

fn choose_channel() -> Result<&'static dyn StoreChannel, StoreError> {
    let channel: Box<dyn StoreChannel> = match crate::hypervisor::guest() {
        Some(guest) => {
            Box::new(xen_ring::XenStoreChannel::probe(guest).map_err(StoreError::Channel)?)
        }
        None => Box::new(ivshmem::IvshmemChannel::probe().map_err(|e| match e {
            e @ (IvshmemError::NotFound | IvshmemError::PlainOnly(_)) => StoreError::NoPlatform(e),
            e => StoreError::Channel(format!("{e}")),
        })?),
    };
    // One channel for the kernel's life.
    Ok(Box::leak(channel))
}

/// A client over `channel`, with our identity read back and any stale
/// watches of this connection dropped.
fn attach(channel: &'static dyn StoreChannel) -> Result<Attached, StoreError> {
    let client = Client::over_ring(
        KernelPlatform,
        channel.page(),
        StoreEvents::new(channel),
        config(),
    )?;
    // Anything the daemon sent while events were not yet routed is seen
    // now: the receive thread checks the ring before it first sleeps, and
    // this wakes it should it already sleep.
    channel::recheck();
    // Relative paths resolve against our home, so `domid` works before we
    // know who we are (FreeBSD and Linux do the same).
    let domid: DomId = client.read_parsed("domid")?;
    let home = client.get_domain_path(domid)?;
    // Watches a previous kernel on this ring registered (kexec, or the
    // connection we replace in `reconnect`) would fire with tokens we do
    // not know: drop them, where the toolstack says the daemon can (as
    // Linux does).
    if client
        .read_optional("control/platform-feature-xs_reset_watches")?
        .as_deref()
        == Some(b"1")
    {
        client.reset_watches()?;
    }
    let info = StoreInfo {
        platform: channel.kind(),
        channel: channel.describe(),
        domid,
        home,
    };
    log::info!(
        "xenstore: connected on {} via {}; domain {} at {}",
        info.platform,
        info.channel,
        info.domid.0,
        info.home
    );
    Ok(Attached { client, info })
}

/// The service's client (a clone). Errors: [`StoreError::NotAttached`]
/// before [`init`] succeeded.
pub fn client() -> Result<XsClient, StoreError> {
    SERVICE
        .lock()
        .as_ref()
        .map(|a| a.client.clone())
        .ok_or(StoreError::NotAttached)
}

/// What [`init`] found, if it succeeded.
pub fn info() -> Option<StoreInfo> {
    SERVICE.lock().as_ref().map(|a| a.info.clone())
}

/// After the VM really resumed (a restored or migrated domain), before the
/// client's `resume`: the channel re-establishes its events (on Xen the
/// store event channel is read again from the HVM params and the handler
/// moved to it), then every thread waiting on the ring re-checks it.
///
/// Errors: [`StoreError::NotAttached`] before [`init`];
/// [`StoreError::Channel`] if the events cannot be re-established.
pub fn resume_channel() -> Result<(), StoreError> {
    let channel = *CHANNEL.get().ok_or(StoreError::NotAttached)?;
    channel.resume().map_err(StoreError::Channel)?;
    channel::recheck();
    Ok(())
}

/// After the client resumed from a real suspend: a restored domain has a
/// new domain id, so a new home. Reads them again as [`init`] did (the
/// relative node `domid`, then GET_DOMAIN_PATH), keeps them for [`info`]
/// and logs them. Relative paths follow the new home by themselves (the
/// daemon resolves them against the connection's domain).
///
/// Errors: [`StoreError::NotAttached`]; [`StoreError::Xs`] if a read failed.
pub fn refresh_identity() -> Result<StoreInfo, StoreError> {
    let client = client()?;
    let domid: DomId = client.read_parsed("domid")?;
    let home = client.get_domain_path(domid)?;
    let channel = CHANNEL.get().map(|c| c.describe());
    let (before, info) = {
        let mut service = SERVICE.lock();
        let attached = service.as_mut().ok_or(StoreError::NotAttached)?;
        let before = attached.info.domid;
        attached.info.domid = domid;
        attached.info.home = home;
        if let Some(channel) = channel {
            attached.info.channel = channel;
        }
        (before, attached.info.clone())
    };
    log::info!(
        "xenstore: resumed as {} at {} ({before} before) via {}",
        info.domid,
        info.home,
        info.channel
    );
    Ok(info)
}

/// Replaces a client whose connection failed (the peer corrupted the ring,
/// say) by a fresh one over the same ring: unread responses are discarded,
/// the domain id is read again. The old client's watches are gone; its
/// clones keep failing with `Disconnected`. Only for a failed connection:
/// errors with `InvalidState` while the current one works.
pub fn reconnect() -> Result<XsClient, StoreError> {
    let _attaching = ATTACH.lock();
    let channel = *CHANNEL.get().ok_or(StoreError::NotAttached)?;
    if let Some(a) = SERVICE.lock().as_ref()
        && a.client.failure().is_none()
    {
        return Err(StoreError::Xs(XsError::InvalidState(
            "reconnect: the current connection works",
        )));
    }
    log::warn!("xenstore: reconnecting over the same ring");
    let attached = attach(channel)?;
    let client = attached.client.clone();
    // The old client (if any) is dropped outside the lock.
    let old = SERVICE.lock().replace(attached);
    drop(old);
    Ok(client)
}

//! The ivshmem server that hands a domain's ring to QEMU.
//!
//! QEMU's `-chardev socket,path=S,id=ivsh -device
//! ivshmem-doorbell,chardev=ivsh,vectors=1` connects to this server, which
//! (QEMU docs/specs/ivshmem-spec.rst; little-endian i64 messages, fds as
//! SCM_RIGHTS) sends: protocol version 0; the guest's peer id
//! [`GUEST_PEER_ID`]; -1 with the domain's page fd (BAR2); then
//! [`DAEMON_PEER_ID`] with an eventfd (the doorbell target) and the guest's
//! id with its vector-0 eventfd (its interrupt).
//!
//! The bridge, both ways:
//! * the guest writes `DAEMON_PEER_ID << 16 | 0` to Doorbell (BAR0 + 12):
//!   QEMU signals our eventfd and the server kicks the daemon's event
//!   channel for the domain;
//! * the daemon notifies the domain: the server signals the guest's vector
//!   eventfd and QEMU raises MSI-X vector 0. ivshmem-doorbell has no INTx:
//!   with MSI-X disabled (or before the guest enables it) QEMU drops the
//!   interrupt, so a guest must check its ring after enabling MSI-X.
//!
//! One QEMU at a time; a later QEMU (after the first disconnects) gets the
//! same page, so a test runner may boot several guests in turn.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use nix::poll::{PollFd, PollFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crate::domain::Domain;
use crate::error::{Error, Result};
use crate::sys;

/// The daemon's peer id: the guest rings `DAEMON_PEER_ID << 16 | vector 0`.
pub const DAEMON_PEER_ID: u16 = 0;
/// The id QEMU's device gets (its IVPosition register).
pub const GUEST_PEER_ID: u16 = 1;
/// ivshmem server protocol version.
const PROTOCOL_VERSION: i64 = 0;

/// Counters of what the bridge did, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IvshmemStats {
    /// QEMU clients that completed the handshake.
    pub connections: u64,
    /// Doorbells from the guest forwarded to the daemon.
    pub doorbells: u64,
    /// Daemon notifications delivered to the guest's vector eventfd.
    pub interrupts: u64,
    /// Daemon notifications while no QEMU was connected (nobody to tell).
    pub unclaimed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    doorbells: AtomicU64,
    interrupts: AtomicU64,
    unclaimed: AtomicU64,
}

/// A running ivshmem server for one domain (a thread). Dropping it stops
/// the thread and removes the socket.
#[derive(Debug)]
pub struct IvshmemServer {
    path: PathBuf,
    stop: Arc<OwnedFd>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl IvshmemServer {
    /// Listens on `socket` (a stale socket file there is replaced) and
    /// serves `domain`'s page and event channel to QEMU. The domain is
    /// moved in: from now on the server, not the caller, consumes its
    /// events.
    pub fn start(socket: &Path, domain: Domain) -> Result<Self> {
        let _ = std::fs::remove_file(socket);
        let listener =
            UnixListener::bind(socket).map_err(|e| Error::io_path("listening on", socket, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io_path("configuring", socket, e))?;
        let stop = Arc::new(sys::eventfd().map_err(|e| Error::io("creating an eventfd", e))?);
        let counters = Arc::new(Counters::default());
        let bridge = Bridge {
            listener,
            domain,
            stop: stop.clone(),
            counters: counters.clone(),
            client: None,
        };
        let thread = std::thread::Builder::new()
            .name("ivshmem-server".into())
            .spawn(move || bridge.run())
            .map_err(|e| Error::io("starting the ivshmem thread", e))?;
        Ok(IvshmemServer {
            path: socket.to_path_buf(),
            stop,
            counters,
            thread: Some(thread),
        })
    }

    /// The socket QEMU connects to.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// What the bridge has done so far.
    pub fn stats(&self) -> IvshmemStats {
        let c = &self.counters;
        IvshmemStats {
            connections: c.connections.load(Ordering::Relaxed),
            doorbells: c.doorbells.load(Ordering::Relaxed),
            interrupts: c.interrupts.load(Ordering::Relaxed),
            unclaimed: c.unclaimed.load(Ordering::Relaxed),
        }
    }

    /// Ok while the server thread runs; its error once it has failed.
    pub fn check(&mut self) -> Result<()> {
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            return self.join();
        }
        Ok(())
    }

    /// Stops the server and returns the thread's error, if it had one.
    pub fn stop(mut self) -> Result<()> {
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        sys::eventfd_signal(&*self.stop).map_err(|e| Error::io("stopping ivshmem", e))?;
        thread
            .join()
            .unwrap_or_else(|_| Err(Error::Protocol("ivshmem thread panicked".into())))
    }
}

impl Drop for IvshmemServer {
    fn drop(&mut self) {
        if let Err(e) = self.join() {
            eprintln!("testbed: ivshmem server: {e}");
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A connected QEMU and the two eventfds shared with it.
struct Client {
    stream: UnixStream,
    /// Signalled by QEMU when the guest rings the daemon's doorbell.
    doorbell: OwnedFd,
    /// Signalled by us to raise the guest's vector 0.
    interrupt: OwnedFd,
}

struct Bridge {
    listener: UnixListener,
    domain: Domain,
    stop: Arc<OwnedFd>,
    counters: Arc<Counters>,
    client: Option<Client>,
}

impl Bridge {
    fn run(mut self) -> Result<()> {
        const STOP: usize = 0;
        const LISTENER: usize = 1;
        const DOMAIN: usize = 2;
        const CLIENT: usize = 3;
        const DOORBELL: usize = 4;
        loop {
            let pollfd = |fd| PollFd::new(fd, PollFlags::POLLIN);
            let mut fds = vec![
                pollfd(self.stop.as_fd()),
                pollfd(self.listener.as_fd()),
                pollfd(self.domain.as_fd()),
            ];
            if let Some(client) = &self.client {
                fds.push(pollfd(client.stream.as_fd()));
                fds.push(pollfd(client.doorbell.as_fd()));
            }
            sys::poll(&mut fds, None).map_err(|e| Error::io("ivshmem poll", e))?;
            let ready: Vec<bool> = fds.iter().map(sys::ready).collect();
            drop(fds);
            let ready = |i: usize| ready.get(i).copied().unwrap_or(false);
            if ready(STOP) {
                return Ok(());
            }
            if ready(DOORBELL) {
                self.forward_doorbell()?;
            }
            if ready(DOMAIN) {
                self.forward_interrupt()?;
            }
            if ready(CLIENT) {
                self.check_client();
            }
            if ready(LISTENER) {
                self.accept()?;
            }
        }
    }

    fn forward_doorbell(&mut self) -> Result<()> {
        if let Some(client) = &self.client {
            let rung = sys::eventfd_take(&client.doorbell)
                .map_err(|e| Error::io("reading the doorbell eventfd", e))?;
            if rung > 0 {
                // Count first: whoever sees the effect sees the count.
                self.counters.doorbells.fetch_add(1, Ordering::Relaxed);
                self.domain.notify()?;
            }
        }
        Ok(())
    }

    fn forward_interrupt(&mut self) -> Result<()> {
        if !self.domain.take_event()? {
            return Ok(());
        }
        match &self.client {
            Some(client) => {
                self.counters.interrupts.fetch_add(1, Ordering::Relaxed);
                sys::eventfd_signal(&client.interrupt)
                    .map_err(|e| Error::io("signalling the guest's vector", e))?;
            }
            None => {
                self.counters.unclaimed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// QEMU sends nothing after the handshake: readable means it is gone.
    fn check_client(&mut self) {
        let Some(client) = &mut self.client else {
            return;
        };
        let mut buf = [0u8; 64];
        match client.stream.read(&mut buf) {
            Ok(n) if n > 0 => {} // unexpected chatter: ignore it
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => self.client = None,
        }
    }

    fn accept(&mut self) -> Result<()> {
        let stream = match self.listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(Error::io("accepting an ivshmem client", e)),
        };
        if self.client.is_some() {
            eprintln!("testbed: ivshmem: refusing a second QEMU while one is connected");
            return Ok(()); // dropping the stream closes it
        }
        match self.handshake(stream) {
            Ok(client) => {
                self.client = Some(client);
                self.counters.connections.fetch_add(1, Ordering::Relaxed);
            }
            // A client that went away mid-handshake is its problem, not ours.
            Err(e) => eprintln!("testbed: ivshmem handshake failed: {e}"),
        }
        Ok(())
    }

    fn handshake(&self, stream: UnixStream) -> Result<Client> {
        let io = |e| Error::io("ivshmem handshake", e);
        let doorbell = sys::eventfd().map_err(io)?;
        let interrupt = sys::eventfd().map_err(io)?;
        let page = self.domain.page().file().as_raw_fd();
        let messages = [
            (PROTOCOL_VERSION, None),
            (i64::from(GUEST_PEER_ID), None),
            (-1, Some(page)),
            (i64::from(DAEMON_PEER_ID), Some(doorbell.as_raw_fd())),
            (i64::from(GUEST_PEER_ID), Some(interrupt.as_raw_fd())),
        ];
        for (value, fd) in messages {
            sys::send_i64_with_fd(&stream, value, fd).map_err(io)?;
        }
        stream.set_nonblocking(true).map_err(io)?;
        Ok(Client {
            stream,
            doorbell,
            interrupt,
        })
    }
}

//! The guest's end of a fake event channel (see `csrc/evtchn.c`): a unix
//! datagram socket. A datagram is a kick; a non-empty queue is a pending
//! event, so kicks that find the queue full coalesce like a pending bit.

use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// One guest-side event channel endpoint.
#[derive(Debug)]
pub struct GuestEventChannel {
    socket: UnixDatagram,
    own: PathBuf,
    daemon: PathBuf,
}

impl GuestEventChannel {
    /// Binds the guest end at `own`, kicking the daemon's end at `daemon`.
    pub(crate) fn bind(own: PathBuf, daemon: PathBuf) -> Result<Self> {
        let _ = std::fs::remove_file(&own); // stale from an earlier guest
        let socket = UnixDatagram::bind(&own).map_err(|e| Error::io_path("binding", &own, e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::io_path("configuring", &own, e))?;
        Ok(GuestEventChannel {
            socket,
            own,
            daemon,
        })
    }

    /// Kicks the daemon. Never blocks. A full queue at the daemon's end
    /// already holds a pending event, so the kick coalesces; a daemon that
    /// is not listening (stopped, or restarting) loses the kick, as a real
    /// event channel whose other end is unbound would.
    pub fn notify(&self) -> Result<()> {
        match self.socket.send_to(&[1], &self.daemon) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::NotFound | ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::io_path("kicking", &self.daemon, e)),
        }
    }

    /// Consumes every pending kick without blocking; true if there was one.
    pub fn take_pending(&self) -> Result<bool> {
        let mut buf = [0u8; 64];
        let mut any = false;
        loop {
            match self.socket.recv(&mut buf) {
                Ok(_) => any = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(any),
                Err(e) => return Err(Error::io_path("reading", &self.own, e)),
            }
        }
    }

    /// Waits up to `timeout` for an event and consumes all pending kicks.
    /// Returns false on timeout. An event that arrived before the call is
    /// not lost: it is still queued, so the wait returns at once.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.take_pending()? {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            crate::sys::poll_readable(self.socket.as_fd(), left)
                .map_err(|e| Error::io_path("polling", &self.own, e))?;
        }
    }

    /// Path of the guest end.
    pub fn path(&self) -> &Path {
        &self.own
    }
}

impl AsFd for GuestEventChannel {
    /// Readable while an event is pending, as for [`AsRawFd`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for GuestEventChannel {
    /// Readable while an event is pending (for poll/epoll).
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Drop for GuestEventChannel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.own);
    }
}

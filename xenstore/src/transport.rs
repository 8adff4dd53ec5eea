//! The byte transport under the protocol: send a whole message, receive
//! whatever bytes have arrived.
//!
//! Two implementations: the shared ring ([`crate::ring::RingTransport`],
//! what a guest kernel uses) and, with the `std` feature, a unix stream
//! socket (`UnixStreamTransport`, what libxenstore and the xenstore-* tools
//! use to talk to the daemon on the host).

use core::time::Duration;

use crate::error::TransportError;

/// How long a blocked [`Transport::send`] may still wait, asked before each
/// wait: `None`, no limit; `Some(ZERO)`, the deadline has passed. (The
/// transport has no clock of its own; the runtime's platform has one.)
pub type TimeLeft<'a> = &'a dyn Fn() -> Option<Duration>;

/// A connection to the daemon.
///
/// The runtime calls `send` from one thread at a time (the requester that
/// holds the sender role; it may pass several whole messages at once) and
/// `recv` from one thread at a time (the holder of its reader token); `send`
/// and `recv` do run concurrently with each other.
pub trait Transport: Send + Sync {
    /// Sends whole messages (headers and payloads, one or more back to back),
    /// blocking until every byte is handed to the peer, or until
    /// `time_left` says the deadline has passed while the peer still had
    /// not made room: then [`TransportError::SendTimedOut`]. On any error
    /// the connection is unusable (part of a message may have been sent).
    fn send(&self, message: &[u8], time_left: TimeLeft<'_>) -> Result<(), TransportError>;

    /// Receives at least one byte into `buf` (as many as are available, up
    /// to its length), blocking up to `timeout` (`None`: no limit).
    ///
    /// Errors: [`TransportError::TimedOut`] (not fatal); anything else means
    /// the connection is unusable.
    fn recv(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, TransportError>;

    /// How many bytes one `recv` can usefully return (the reader's buffer
    /// size). Default 64 KiB: many replies per system call on a socket.
    fn recv_buffer_size(&self) -> usize {
        64 * 1024
    }

    /// Whether the connection still looks usable without waiting for
    /// anything (the ring: the daemon's `error` flag). Called when a request
    /// times out, so a peer that flagged an error without signalling is
    /// still noticed. Default: no way to tell, `Ok`.
    fn health(&self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Makes blocked and later `send`/`recv` calls fail with
    /// [`TransportError::Closed`]. Idempotent.
    fn shutdown(&self);

    /// Whether requesters may read replies on their own threads while no
    /// receive thread runs. True only if the peer keeps reading our
    /// requests whether or not we read its replies (the daemon buffers
    /// replies for a socket; on a ring it stops reading at its quota of
    /// outstanding requests, so a ring needs a dedicated reader).
    fn allows_caller_reads(&self) -> bool {
        false
    }

    /// Called by `Client::suspend` once no request is in flight: returns
    /// when no `recv` is part-way through the connection's shared state,
    /// and keeps later ones waiting (not failing) until
    /// [`Transport::unpause`]. Default: nothing to do.
    fn pause(&self) {}

    /// Ends [`Transport::pause`] (`Client::resume`, `resume_cancelled`).
    fn unpause(&self) {}

    /// Called by `Client::resume` after the platform has re-established the
    /// connection following a VM suspend (same page, maybe a new daemon):
    /// discard stale input. Returns whether bytes were discarded (the byte
    /// stream then restarts and the parser forgets any partial message).
    /// Default: nothing to do.
    fn resume(&self) -> Result<bool, TransportError> {
        Ok(false)
    }
}

#[cfg(feature = "std")]
mod unix {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// `read_timeout_ns` value meaning "no timeout".
    const NO_TIMEOUT: u64 = u64::MAX;

    /// A unix stream socket to the daemon (`/run/xenstored/socket`, or a
    /// test daemon's private socket). Same wire format as the ring.
    pub struct UnixStreamTransport {
        stream: UnixStream,
        closed: AtomicBool,
        /// The socket's current receive timeout in ns, so `recv` only pays
        /// for setsockopt(2) when it changes.
        read_timeout_ns: AtomicU64,
        /// Likewise for the send timeout (`send` and `recv` run at once,
        /// so each has its own).
        write_timeout_ns: AtomicU64,
    }

    impl UnixStreamTransport {
        /// Connects to the daemon's socket at `path`.
        pub fn connect(path: impl AsRef<Path>) -> Result<UnixStreamTransport, TransportError> {
            UnixStream::connect(path)
                .map(Self::from_stream)
                .map_err(io_error)
        }

        /// Uses an already connected stream (e.g. one end of a socketpair).
        pub fn from_stream(stream: UnixStream) -> UnixStreamTransport {
            UnixStreamTransport {
                stream,
                closed: AtomicBool::new(false),
                read_timeout_ns: AtomicU64::new(NO_TIMEOUT),
                write_timeout_ns: AtomicU64::new(NO_TIMEOUT),
            }
        }
    }

    pub(crate) fn io_error(e: std::io::Error) -> TransportError {
        TransportError::Io {
            errno: e.raw_os_error(),
            detail: e.to_string(),
        }
    }

    impl Transport for UnixStreamTransport {
        fn send(&self, message: &[u8], time_left: TimeLeft<'_>) -> Result<(), TransportError> {
            let mut sent = 0;
            while sent < message.len() {
                if self.closed.load(Ordering::Acquire) {
                    return Err(TransportError::Closed);
                }
                let timed_out = TransportError::SendTimedOut {
                    sent,
                    len: message.len(),
                };
                // A zero timeout means "none" to the socket API.
                let left = time_left();
                if left == Some(Duration::ZERO) {
                    return Err(timed_out);
                }
                let ns = left.map_or(NO_TIMEOUT, |t| {
                    t.as_nanos().min(u128::from(NO_TIMEOUT - 1)) as u64
                });
                if self.write_timeout_ns.swap(ns, Ordering::Relaxed) != ns {
                    self.stream.set_write_timeout(left).map_err(io_error)?;
                }
                // One write(2) for a whole message in the common case.
                match (&self.stream).write(&message[sent..]) {
                    Ok(0) => return Err(TransportError::Closed),
                    Ok(n) => sent += n,
                    Err(e) => match e.kind() {
                        ErrorKind::Interrupted => {}
                        ErrorKind::WouldBlock | ErrorKind::TimedOut => return Err(timed_out),
                        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {
                            return Err(TransportError::Closed);
                        }
                        _ => return Err(io_error(e)),
                    },
                }
            }
            Ok(())
        }

        fn recv(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, TransportError> {
            if self.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            // A zero timeout means "none" to the socket API; use the smallest real one.
            let timeout = timeout.map(|t| t.max(Duration::from_micros(1)));
            let ns = timeout.map_or(NO_TIMEOUT, |t| {
                t.as_nanos().min(u128::from(NO_TIMEOUT - 1)) as u64
            });
            if self.read_timeout_ns.swap(ns, Ordering::Relaxed) != ns {
                self.stream.set_read_timeout(timeout).map_err(io_error)?;
            }
            loop {
                return match (&self.stream).read(buf) {
                    Ok(0) => Err(TransportError::Closed),
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        Err(TransportError::TimedOut)
                    }
                    Err(_) if self.closed.load(Ordering::Acquire) => Err(TransportError::Closed),
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => Err(TransportError::Closed),
                    Err(e) => Err(io_error(e)),
                };
            }
        }

        fn shutdown(&self) {
            self.closed.store(true, Ordering::Release);
            // Wakes a reader blocked in read(2): it then returns 0.
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }

        fn allows_caller_reads(&self) -> bool {
            true
        }
    }
}

#[cfg(feature = "std")]
pub use unix::UnixStreamTransport;

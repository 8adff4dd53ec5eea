//! The few system calls std does not offer, through `nix`'s checked
//! wrappers: poll, eventfd, kill, and a message carrying an fd.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::Signal;
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use nix::unistd::Pid;

/// Waits until `fd` is readable or `timeout` passes; true if readable.
/// EINTR counts as "not yet" (the caller re-checks its own deadline).
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    Ok(poll(&mut fds, Some(timeout))? > 0)
}

/// Whether poll(2) reported anything on `fd` (readable, hung up, error).
pub(crate) fn ready(fd: &PollFd<'_>) -> bool {
    // `None` is a bit nix has no name for: still an event.
    fd.any() != Some(false)
}

/// poll(2) over `fds`; `None` waits forever. Returns how many are ready
/// (0 on timeout or EINTR).
pub(crate) fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    let timeout = match timeout {
        None => PollTimeout::NONE,
        // Round up so a short positive timeout does not become a busy loop.
        Some(t) => {
            let ms = t
                .as_millis()
                .saturating_add(u128::from(t.subsec_nanos() % 1_000_000 != 0));
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    };
    match nix::poll::poll(fds, timeout) {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(Errno::EINTR) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// A non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
    Ok(fd.into())
}

/// Adds 1 to an eventfd's counter (makes it readable).
pub(crate) fn eventfd_signal(fd: &impl AsFd) -> io::Result<()> {
    match nix::unistd::write(fd, &1u64.to_ne_bytes()) {
        Ok(8) => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short eventfd write",
        )),
        // Counter saturated: it is readable anyway.
        Err(Errno::EAGAIN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reads and resets an eventfd's counter; 0 if it was not signalled.
pub(crate) fn eventfd_take(fd: &impl AsFd) -> io::Result<u64> {
    let mut value = [0u8; 8];
    match nix::unistd::read(fd, &mut value) {
        Ok(8) => Ok(u64::from_ne_bytes(value)),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "short eventfd read",
        )),
        Err(Errno::EAGAIN) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Sends a signal to a process we started.
pub(crate) fn kill(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    Ok(nix::sys::signal::kill(Pid::from_raw(pid), signal)?)
}

/// Sends one little-endian i64 over a unix stream socket, with `fd`
/// attached as SCM_RIGHTS when given (the ivshmem server protocol).
pub(crate) fn send_i64_with_fd(
    socket: &UnixStream,
    value: i64,
    fd: Option<RawFd>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let bytes = value.to_le_bytes();
    let fds: Vec<RawFd> = fd.into_iter().collect();
    let rights = [ControlMessage::ScmRights(&fds)];
    let control: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    let n = sendmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        control,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if n != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short sendmsg"));
    }
    Ok(())
}

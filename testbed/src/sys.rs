//! Thin, checked wrappers over the few libc calls std does not offer.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Waits until `fd` is readable or `timeout` passes; true if readable.
/// EINTR counts as "not yet" (the caller re-checks its own deadline).
pub(crate) fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut fds = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    Ok(poll(&mut fds, Some(timeout))? > 0)
}

/// poll(2) over `fds`; `None` waits forever. Returns how many are ready
/// (0 on timeout or EINTR).
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ms = match timeout {
        None => -1,
        // Round up so a short positive timeout does not become a busy loop.
        Some(t) => t
            .as_millis()
            .saturating_add(u128::from(t.subsec_nanos() % 1_000_000 != 0))
            .min(i32::MAX as u128) as i32,
    };
    // SAFETY: fds is a valid, exclusively borrowed array of pollfd of the
    // given length for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(err);
    }
    Ok(n as usize)
}

/// A non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain FFI call; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we exclusively own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter (makes it readable).
pub(crate) fn eventfd_signal(fd: &impl AsRawFd) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64 to a descriptor we hold.
    let n = unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
    if n == 8 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        // Counter saturated: it is readable anyway.
        e if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        e => Err(e),
    }
}

/// Reads and resets an eventfd's counter; 0 if it was not signalled.
pub(crate) fn eventfd_take(fd: &impl AsRawFd) -> io::Result<u64> {
    let mut value: u64 = 0;
    // SAFETY: reads 8 bytes into a valid u64 from a descriptor we hold.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut value).cast(), 8) };
    if n == 8 {
        return Ok(value);
    }
    match io::Error::last_os_error() {
        e if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        e => Err(e),
    }
}

/// Sends a signal to a process we started.
pub(crate) fn kill(pid: u32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain FFI call; pid is the id of a child we have not reaped.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends one little-endian i64 over a unix stream socket, with `fd`
/// attached as SCM_RIGHTS when given (the ivshmem server protocol).
pub(crate) fn send_i64_with_fd(
    socket: &impl AsRawFd,
    value: i64,
    fd: Option<RawFd>,
) -> io::Result<()> {
    let bytes = value.to_le_bytes();
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // Room for one cmsghdr carrying one int, aligned as the kernel wants.
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is a valid "no name, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure size computations.
        let (space, len) = unsafe {
            (
                libc::CMSG_SPACE(size_of::<RawFd>() as u32),
                libc::CMSG_LEN(size_of::<RawFd>() as u32),
            )
        };
        assert!(space as usize <= size_of_val(&control));
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as usize;
        // SAFETY: msg_control points at `control`, which is large enough
        // (asserted) and aligned for cmsghdr (u64 array), so CMSG_FIRSTHDR
        // is non-null and its data area holds one RawFd.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = len as usize;
            libc::CMSG_DATA(cmsg).cast::<RawFd>().write_unaligned(fd);
        }
    }
    // SAFETY: msg and everything it points to live across the call.
    let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short sendmsg"));
    }
    Ok(())
}

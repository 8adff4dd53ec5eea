//! QEMU's side of the ivshmem server protocol, for tests that stand in
//! for QEMU. (Each test binary uses part of it.)
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Receives one i64 message and the fd that came with it, if any.
pub fn recv_message(stream: &UnixStream) -> (i64, Option<OwnedFd>) {
    let mut bytes = [0u8; 8];
    let mut iov = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: 8,
    };
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid; we fill in buffers that outlive
    // the recvmsg call and parse the control data with the CMSG macros.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(stream.as_raw_fd(), &mut msg, 0);
        assert_eq!(n, 8, "short ivshmem message");
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        let fd = if cmsg.is_null() {
            None
        } else {
            assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
            let fd = libc::CMSG_DATA(cmsg).cast::<RawFd>().read_unaligned();
            Some(OwnedFd::from_raw_fd(fd))
        };
        (i64::from_le_bytes(bytes), fd)
    }
}

pub fn eventfd_write(fd: &OwnedFd) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a local u64 to an eventfd we hold.
    let n = unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
    assert_eq!(n, 8);
}

pub fn eventfd_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) == 1 }
}

/// The fds QEMU gets in the handshake.
pub struct Handshake {
    pub shm: OwnedFd,
    /// Signal it to ring the daemon's doorbell.
    pub doorbell: OwnedFd,
    /// Readable when the guest's vector 0 is raised.
    pub interrupt: OwnedFd,
}

/// Connects and reads the whole handshake, checking its order and values.
pub fn connect(socket: &std::path::Path) -> (UnixStream, Handshake) {
    use testbed::ivshmem::{DAEMON_PEER_ID, GUEST_PEER_ID};
    let client = UnixStream::connect(socket).unwrap();
    assert!(matches!(recv_message(&client), (0, None)), "version 0");
    let (id, fd) = recv_message(&client);
    assert_eq!((id, fd.is_none()), (i64::from(GUEST_PEER_ID), true));
    let (shm, shm_fd) = recv_message(&client);
    assert_eq!(shm, -1);
    let (peer, doorbell) = recv_message(&client);
    assert_eq!(peer, i64::from(DAEMON_PEER_ID));
    let (own, interrupt) = recv_message(&client);
    assert_eq!(own, i64::from(GUEST_PEER_ID));
    let handshake = Handshake {
        shm: shm_fd.expect("shared memory fd"),
        doorbell: doorbell.expect("daemon's doorbell eventfd"),
        interrupt: interrupt.expect("guest's vector eventfd"),
    };
    (client, handshake)
}

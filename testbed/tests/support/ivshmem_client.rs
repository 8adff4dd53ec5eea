//! QEMU's side of the ivshmem server protocol, for tests that stand in
//! for QEMU. (Each test binary uses part of it.)
#![allow(dead_code)]

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};

/// Receives one i64 message and the fd that came with it, if any.
pub fn recv_message(stream: &UnixStream) -> (i64, Option<OwnedFd>) {
    let mut bytes = [0u8; 8];
    let mut control = nix::cmsg_space!(RawFd);
    let mut iov = [IoSliceMut::new(&mut bytes)];
    let msg = recvmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )
    .unwrap();
    assert_eq!(msg.bytes, 8, "short ivshmem message");
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().unwrap() {
        match cmsg {
            ControlMessageOwned::ScmRights(rights) => fds.extend(rights),
            other => panic!("unexpected control message {other:?}"),
        }
    }
    assert!(fds.len() <= 1, "more than one fd: {fds:?}");
    // SAFETY: SCM_RIGHTS just installed this descriptor in our table and
    // nothing else owns it.
    let fd = fds.pop().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    (i64::from_le_bytes(bytes), fd)
}

pub fn eventfd_write(fd: &OwnedFd) {
    assert_eq!(nix::unistd::write(fd, &1u64.to_ne_bytes()), Ok(8));
}

pub fn eventfd_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(timeout).unwrap();
    nix::poll::poll(&mut pfd, timeout) == Ok(1)
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

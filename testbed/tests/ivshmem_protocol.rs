//! The ivshmem server's side of QEMU's protocol, checked by a client that
//! speaks it the way QEMU does (docs/specs/ivshmem-spec.rst), no QEMU
//! needed.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use testbed::ivshmem::{DAEMON_PEER_ID, GUEST_PEER_ID, IvshmemServer};
use testbed::page::{PAGE_SIZE, offset};
use testbed::wire::{Message, ty};
use testbed::{SharedPage, Testbed};

/// Receives one i64 message and the fd that came with it, if any.
fn recv_message(stream: &UnixStream) -> (i64, Option<OwnedFd>) {
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

fn eventfd_write(fd: &OwnedFd) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a local u64 to an eventfd we hold.
    let n = unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
    assert_eq!(n, 8);
}

fn eventfd_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) == 1 }
}

#[test]
fn the_server_hands_over_the_page_and_bridges_both_directions() {
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(1).unwrap();
    let host_view = SharedPage::open(dom.page_path()).unwrap();
    let socket = tb.state_dir().join("ivshmem.sock");
    let server = IvshmemServer::start(&socket, dom).unwrap();

    let client = UnixStream::connect(&socket).unwrap();
    assert!(matches!(recv_message(&client), (0, None)), "version 0");
    let (id, fd) = recv_message(&client);
    assert_eq!((id, fd.is_none()), (i64::from(GUEST_PEER_ID), true));
    let (shm, shm_fd) = recv_message(&client);
    assert_eq!(shm, -1);
    let shm = File::from(shm_fd.expect("shared memory fd"));
    assert_eq!(shm.metadata().unwrap().len(), PAGE_SIZE as u64);
    let (peer, doorbell) = recv_message(&client);
    assert_eq!(peer, i64::from(DAEMON_PEER_ID));
    let doorbell = doorbell.expect("daemon's doorbell eventfd");
    let (own, interrupt) = recv_message(&client);
    assert_eq!(own, i64::from(GUEST_PEER_ID));
    let interrupt = interrupt.expect("guest's vector eventfd");

    // The fd is the domain's page: what we write there, the daemon reads.
    let request = Message::new(ty::READ, 3, b"domid\0").encode();
    host_view.write_bytes(offset::REQ, &request).unwrap();
    host_view
        .write_u32(offset::REQ_PROD, request.len() as u32)
        .unwrap();
    // Clear any interrupt from the introduction, then ring the doorbell.
    let mut drain = [0u8; 8];
    let _ = (&File::from(interrupt.try_clone().unwrap())).read(&mut drain);
    eventfd_write(&doorbell);
    assert!(
        eventfd_readable(&interrupt, Duration::from_secs(10)),
        "the daemon's answer raises the guest's vector"
    );
    let expected = Message::new(ty::READ, 3, b"1").encode();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (host_view.read_u32(offset::RSP_PROD).unwrap() as usize) < expected.len() {
        assert!(Instant::now() < deadline, "no reply");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut reply = vec![0u8; expected.len()];
    host_view.read_bytes(offset::RSP, &mut reply).unwrap();
    assert_eq!(reply, expected);
    let stats = server.stats();
    assert_eq!(stats.connections, 1);
    assert!(stats.doorbells >= 1 && stats.interrupts >= 1, "{stats:?}");

    // A second client is refused while the first is connected...
    let second = UnixStream::connect(&socket).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert_eq!((&second).read(&mut buf).unwrap(), 0, "closed at once");
    // ...and served once the first has gone.
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = UnixStream::connect(&socket).unwrap();
        again
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut first = [0u8; 8];
        if (&again).read(&mut first).unwrap() == 8 {
            assert_eq!(i64::from_le_bytes(first), 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never took a new client"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop().unwrap();
}

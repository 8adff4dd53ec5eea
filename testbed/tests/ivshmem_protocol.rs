//! The ivshmem server's side of QEMU's protocol, checked by a client that
//! speaks it the way QEMU does (docs/specs/ivshmem-spec.rst), no QEMU
//! needed.

#[path = "support/ivshmem_client.rs"]
mod ivshmem_client;

use std::fs::File;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ivshmem_client::{connect, eventfd_readable, eventfd_write};
use testbed::ivshmem::IvshmemServer;
use testbed::page::{PAGE_SIZE, offset};
use testbed::wire::{Message, ty};
use testbed::{SharedPage, Testbed};

#[test]
fn the_server_hands_over_the_page_and_bridges_both_directions() {
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(1).unwrap();
    let host_view = SharedPage::open(dom.page_path()).unwrap();
    let socket = tb.state_dir().join("ivshmem.sock");
    let server = IvshmemServer::start(&socket, dom).unwrap();

    let (client, handshake) = connect(&socket);
    let shm = File::from(handshake.shm);
    assert_eq!(shm.metadata().unwrap().len(), PAGE_SIZE as u64);
    let (doorbell, interrupt) = (handshake.doorbell, handshake.interrupt);

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

//! The ivshmem path end to end without our kernel: QEMU's qtest accelerator
//! lets the test play the guest CPU against a real ivshmem-doorbell device
//! served by the testbed, with the real xenstored behind it.

#[path = "support/qtest.rs"]
mod qtest;

use std::time::{Duration, Instant};

use qtest::Qtest;
use testbed::ivshmem::{DAEMON_PEER_ID, GUEST_PEER_ID, IvshmemServer};
use testbed::page::offset;
use testbed::wire::{Message, ty};
use testbed::{SharedPage, Testbed};

/// Where the test places the device's BARs (inside the PC's PCI hole).
const BAR0: u64 = 0xe000_0000; // registers
const BAR1: u64 = 0xe000_1000; // MSI-X table
const BAR2: u64 = 0xe000_2000; // the shared page
/// MSI-X messages aimed at plain RAM, so the test can see them land.
const MSI_ADDR: u64 = 0x0010_0000;
const MSI_DATA: u32 = 0x4b1d;

const IVSHMEM_ID: u32 = 0x1110_1af4;
const PCI_COMMAND_MEMORY: u32 = 1 << 1;
const PCI_COMMAND_MASTER: u32 = 1 << 2;
const PCI_CAP_ID_MSIX: u32 = 0x11;
const MSIX_ENABLE: u32 = 1 << 31; // bit 15 of Message Control, in the cap's dword
const MSIX_FUNCTION_MASK: u32 = 1 << 30;

fn find_ivshmem(q: &mut Qtest) -> u8 {
    (0..32)
        .find(|&dev| q.pci_read(dev, 0) == IVSHMEM_ID)
        .expect("no ivshmem device (1af4:1110) on bus 0")
}

fn find_msix_cap(q: &mut Qtest, dev: u8) -> u8 {
    let mut cap = (q.pci_read(dev, 0x34) & 0xfc) as u8;
    while cap != 0 {
        let header = q.pci_read(dev, cap);
        if header & 0xff == PCI_CAP_ID_MSIX {
            return cap;
        }
        cap = ((header >> 8) & 0xfc) as u8;
    }
    panic!("ivshmem-doorbell has no MSI-X capability");
}

/// Assigns the BARs, enables memory decoding and bus mastering (MSI-X
/// messages are DMA writes), and points MSI-X vector 0 at MSI_ADDR.
fn configure(q: &mut Qtest, dev: u8) {
    q.pci_write(dev, 0x10, BAR0 as u32);
    q.pci_write(dev, 0x14, BAR1 as u32);
    q.pci_write(dev, 0x18, BAR2 as u32); // 64-bit BAR: low half...
    q.pci_write(dev, 0x1c, 0); // ...and high half
    let command = q.pci_read(dev, 0x04);
    q.pci_write(dev, 0x04, command | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

    let cap = find_msix_cap(q, dev);
    let table = q.pci_read(dev, cap + 4);
    assert_eq!(table & 7, 1, "MSI-X table expected in BAR1");
    let entry0 = BAR1 + u64::from(table & !7);
    q.writel(entry0, MSI_ADDR as u32);
    q.writel(entry0 + 4, 0);
    q.writel(entry0 + 8, MSI_DATA);
    q.writel(entry0 + 12, 0); // unmasked
    let control = q.pci_read(dev, cap);
    q.pci_write(dev, cap, (control | MSIX_ENABLE) & !MSIX_FUNCTION_MASK);
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn qemu_sees_the_domain_page_as_bar2_and_the_doorbell_and_msix_reach_the_daemon() {
    let tb = Testbed::start().expect("testbed");
    let dom = tb.introduce_domain(1).expect("introduce domain 1");
    let host_view = SharedPage::open(dom.page_path()).expect("second view of the page");
    host_view.write_bytes(4000, b"XSTB").unwrap();

    let socket = tb.state_dir().join("ivshmem.sock");
    let server = IvshmemServer::start(&socket, dom).expect("ivshmem server");
    let mut q = Qtest::start(&socket);
    let dev = find_ivshmem(&mut q);
    assert_eq!(server.stats().connections, 1, "QEMU did the handshake");
    configure(&mut q, dev);

    // BAR0: QEMU got the peer id we handed it.
    assert_eq!(q.readl(BAR0 + 8), u32::from(GUEST_PEER_ID), "IVPosition");
    // BAR2 is the domain's page, both ways.
    assert_eq!(q.read(BAR2 + 4000, 4), b"XSTB");
    q.write(BAR2 + 4004, b"QEMU");
    let mut seen = [0u8; 4];
    host_view.read_bytes(4004, &mut seen).unwrap();
    assert_eq!(&seen, b"QEMU");

    // The guest puts GET_DOMAIN_PATH into the request ring through BAR2...
    q.writel(MSI_ADDR, 0);
    let request = Message::new(ty::GET_DOMAIN_PATH, 7, b"1\0").encode();
    q.write(BAR2 + offset::REQ as u64, &request);
    q.writel(BAR2 + offset::REQ_PROD as u64, request.len() as u32);
    // ...and rings the daemon's doorbell.
    q.writel(BAR0 + 12, u32::from(DAEMON_PEER_ID) << 16);

    // The daemon answers and notifies; the bridge raises MSI-X vector 0,
    // which QEMU delivers as a DMA write of MSI_DATA to MSI_ADDR.
    wait_for("the MSI-X message", Duration::from_secs(20), || {
        q.readl(MSI_ADDR) == MSI_DATA
    });
    let stats = server.stats();
    assert!(stats.doorbells >= 1, "doorbell forwarded: {stats:?}");
    assert!(stats.interrupts >= 1, "interrupt delivered: {stats:?}");

    let expected = Message::new(ty::GET_DOMAIN_PATH, 7, b"/local/domain/1\0").encode();
    wait_for("the reply in the ring", Duration::from_secs(20), || {
        q.readl(BAR2 + offset::RSP_PROD as u64) as usize >= expected.len()
    });
    assert_eq!(q.read(BAR2 + offset::RSP as u64, expected.len()), expected);
    assert_eq!(
        q.readl(BAR2 + offset::REQ_CONS as u64) as usize,
        request.len()
    );
    server.stop().expect("ivshmem server ran cleanly");
}

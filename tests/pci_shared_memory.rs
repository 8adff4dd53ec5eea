//! PCI and MMIO end to end, through the runner's `shared-memory` fixture: a
//! host file is QEMU's ivshmem-plain BAR2. The guest finds the device, maps
//! the BAR uncached, reads what the host wrote and writes its answer, which
//! the fixture checks after QEMU exits (the shape of the xenstore ring
//! tests: a page shared between a host process and the guest).

#![no_std]
#![no_main]

use kernel::interrupts;
use kernel::memory::map_mmio;
use kernel::pci::{self, Bar};

ktests::config!(
    timeout_secs = 30,
    needs = "shared-memory",
    qemu_arg = "-object",
    qemu_arg = "memory-backend-file,id=ktestshm,share=on,mem-path={shared-memory.path},size=1M",
    qemu_arg = "-device",
    qemu_arg = "ivshmem-plain,memdev=ktestshm",
);
ktests::main!(
    ivshmem_bar_is_found_mapped_and_shared,
    bars_decode_by_type_and_the_upper_half_of_a_64_bit_bar_is_none,
    intx_line_is_routable
);

/// Written by the fixture at offset 0, read here.
const HOST_MAGIC: &[u8] = b"ktest host->guest";
/// Written here at offset 64, checked by the fixture.
const GUEST_MAGIC: &[u8] = b"ktest guest->host";

fn ivshmem() -> pci::PciDevice {
    pci::find(0x1af4, 0x1110).expect("ivshmem-plain (1af4:1110) on the PCI bus")
}

fn ivshmem_bar_is_found_mapped_and_shared() {
    let dev = ivshmem();
    // SAFETY: ivshmem-plain has no DMA engine and no interrupts.
    unsafe { dev.enable() };
    let Some(Bar::Memory { address, size, .. }) = dev.bar(2) else {
        panic!("BAR2 is not a memory BAR");
    };
    assert_eq!(size, 1 << 20, "BAR2 size");
    // SAFETY: BAR2 is the host's shared memory, not the kernel's RAM.
    let shm = unsafe { map_mmio(address, size as usize) }.expect("map BAR2");
    for (i, &b) in HOST_MAGIC.iter().enumerate() {
        assert_eq!(
            shm.read8(i),
            b,
            "host bytes at offset {i} (BAR2 at {address:#x})"
        );
    }
    for (i, &b) in GUEST_MAGIC.iter().enumerate() {
        shm.write8(64 + i, b);
    }
}

/// ivshmem-plain: BAR0 its 256 bytes of registers, no BAR1 (no MSI-X),
/// BAR2 the shared memory as a 64-bit prefetchable BAR, so BAR3 is BAR2's
/// high half and no BAR of its own.
fn bars_decode_by_type_and_the_upper_half_of_a_64_bit_bar_is_none() {
    let dev = ivshmem();
    assert!(
        matches!(dev.bar(0), Some(Bar::Memory { size: 256, .. })),
        "BAR0: {:?}",
        dev.bar(0)
    );
    assert_eq!(dev.bar(1), None, "BAR1 is not implemented");
    assert!(
        matches!(
            dev.bar(2),
            Some(Bar::Memory {
                size: 0x10_0000,
                prefetchable: true,
                ..
            })
        ),
        "BAR2: {:?}",
        dev.bar(2)
    );
    assert_eq!(dev.bar(3), None, "BAR3 is BAR2's high half");
    assert_eq!(dev.bar(6), None, "there are six BARs");
}

fn intx_line_is_routable() {
    let dev = ivshmem();
    let line = dev.interrupt_line();
    assert!(line < 16, "firmware left no interrupt line ({line:#x})");
    let reg = interrupts::register_pci_intx(line, || {}).expect("route INTx");
    interrupts::unregister(reg);
}

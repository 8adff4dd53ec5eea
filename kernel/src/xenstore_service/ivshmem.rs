//! The QEMU test platform: QEMU's ivshmem-doorbell PCI device (1af4:1110)
//! carries the xenstore ring of a real xenstored running on the host.
//!
//! The host's ivshmem server (the `testbed` crate) hands QEMU the domain's
//! ring page and two eventfds (QEMU docs/specs/ivshmem-spec.rst):
//! - BAR0, registers: IntrMask 0x0, IntrStatus 0x4, IVPosition 0x8 (our
//!   peer id), Doorbell 0xc: writing `peer << 16 | vector` signals that
//!   peer's vector. The daemon's bridge is peer 0, vector 0.
//! - BAR1: the MSI-X table. ivshmem-doorbell has no INTx: QEMU raises MSI-X
//!   vector 0 when the host signals us, and drops the event while MSI-X is
//!   disabled. So MSI-X is set up before the client starts and the ring is
//!   re-checked after (the runtime's waits re-check their condition).
//! - BAR2: the shared 4 KiB ring page, host RAM, mapped write-back (see
//!   [`crate::memory::map_shared_memory`] for why not uncached).
//!
//! ivshmem-plain has the same PCI id but no doorbell and no MSI-X: it is
//! recognised and refused with a clear error.
//!
//! Measured on the build host (QEMU 7.2, nested KVM): with KVM's in-kernel
//! irqchip, QEMU routes the vector through an irqfd and no interrupt
//! reached the guest (the host bridge had forwarded them); with
//! `-machine kernel_irqchip=off`, or under TCG, every one arrived. The
//! test runner picks TCG on a VM host; on bare-metal KVM the irqfd path is
//! the common one and was not available here to check.

use alloc::format;
use alloc::string::String;
use core::fmt;
use core::ptr::NonNull;

use xenstore::ring::{PAGE_SIZE, RingPage};

use super::channel::{PlatformKind, StoreChannel, on_store_event};
use crate::interrupts::{self, IrqError};
use crate::memory::{MapError, MmioRegion, map_mmio, map_shared_memory};
use crate::pci::msix::{MsixError, MsixTable};
use crate::pci::{self, Bar, PciDevice};
use crate::sync::Mutex;
use pci_msi::capability::CAP_ID_MSIX;
use pci_msi::msi::MsiMessage;

/// Red Hat / QEMU's vendor id.
pub const IVSHMEM_VENDOR: u16 = 0x1af4;
/// ivshmem (plain and doorbell).
pub const IVSHMEM_DEVICE: u16 = 0x1110;
/// IVPosition: our own peer id.
const REG_IV_POSITION: usize = 0x8;
/// Doorbell: `peer << 16 | vector`.
const REG_DOORBELL: usize = 0xc;
/// The host bridge to the daemon's event channel.
pub const DAEMON_PEER_ID: u32 = 0;
/// The one vector the host signals us on (MSI-X entry 0).
const VECTOR_INDEX: u16 = 0;

/// Why the test platform could not be set up.
#[derive(Debug)]
pub enum IvshmemError {
    /// No 1af4:1110 device on the PCI bus.
    NotFound,
    /// Only ivshmem-plain (no MSI-X, so no doorbell) is present.
    PlainOnly(pci::PciAddress),
    /// BAR `index` is missing or too small.
    Bar {
        /// The BAR.
        index: u8,
        /// What was found.
        found: Option<Bar>,
    },
    /// Mapping a BAR failed.
    Map(MapError),
    /// MSI-X could not be set up.
    Msix(MsixError),
    /// No interrupt vector.
    Irq(IrqError),
}

impl fmt::Display for IvshmemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => write!(
                f,
                "no ivshmem-doorbell device ({IVSHMEM_VENDOR:04x}:{IVSHMEM_DEVICE:04x}) on the PCI bus"
            ),
            Self::PlainOnly(a) => write!(
                f,
                "ivshmem at {a} has no MSI-X: it is ivshmem-plain, not ivshmem-doorbell"
            ),
            Self::Bar { index, found } => write!(f, "BAR{index} unusable: {found:?}"),
            Self::Map(e) => write!(f, "cannot map a BAR: {e}"),
            Self::Msix(e) => write!(f, "MSI-X: {e}"),
            Self::Irq(e) => write!(f, "interrupt: {e}"),
        }
    }
}

/// The ivshmem-doorbell device as a [`StoreChannel`].
pub struct IvshmemChannel {
    device: PciDevice,
    /// BAR0, uncached.
    registers: MmioRegion,
    /// BAR2, write-back: the ring page.
    page: MmioRegion,
    /// Our peer id (IVPosition), for the log.
    peer_id: u32,
    /// The MSI-X table and the vector it targets, once
    /// [`StoreChannel::start_events`] ran. A sleeping lock: only threads
    /// take it, and it is held across PCI config cycles and mapping.
    interrupt: Mutex<Option<(MsixTable, u8, interrupts::Registration)>>,
}

/// The first ivshmem function with an MSI-X capability.
fn find_doorbell() -> Result<PciDevice, IvshmemError> {
    let candidates: alloc::vec::Vec<PciDevice> = pci::enumerate()
        .into_iter()
        .filter(|d| d.vendor == IVSHMEM_VENDOR && d.device == IVSHMEM_DEVICE)
        .collect();
    let doorbell = candidates.iter().find(|d| {
        d.capabilities()
            .find(CAP_ID_MSIX)
            .is_ok_and(|cap| cap.is_some())
    });
    match (doorbell, candidates.first()) {
        (Some(d), _) => Ok(*d),
        (None, Some(plain)) => Err(IvshmemError::PlainOnly(plain.address)),
        (None, None) => Err(IvshmemError::NotFound),
    }
}

fn memory_bar(device: &PciDevice, index: u8, min_size: u64) -> Result<(u64, u64), IvshmemError> {
    match device.bar(index) {
        Some(Bar::Memory { address, size, .. }) if size >= min_size && address != 0 => {
            Ok((address, size))
        }
        found => Err(IvshmemError::Bar { index, found }),
    }
}

impl IvshmemChannel {
    /// Finds the device, enables memory decoding and bus mastering (MSI-X
    /// messages are bus-master writes), maps BAR0 and BAR2. Interrupts are
    /// set up by [`StoreChannel::start_events`].
    pub fn probe() -> Result<IvshmemChannel, IvshmemError> {
        let device = find_doorbell()?;
        // Size the BARs before turning decoding on (sizing toggles it).
        let (regs_at, _) = memory_bar(&device, 0, 16)?;
        let (page_at, page_size) = memory_bar(&device, 2, PAGE_SIZE as u64)?;
        // SAFETY: ivshmem-doorbell has no DMA engine: its only bus-master
        // writes are MSI-X messages, kept in the interrupt window by
        // `MsixTable::program`.
        unsafe { device.enable() };
        // SAFETY: BAR0 is the device's registers, in the PCI hole (not RAM).
        let registers = unsafe { map_mmio(regs_at, 16) }.map_err(IvshmemError::Map)?;
        // SAFETY: BAR2 is the host's shared memory, not the kernel's RAM.
        let page = unsafe { map_shared_memory(page_at, PAGE_SIZE) }.map_err(IvshmemError::Map)?;
        let peer_id = registers.read32(REG_IV_POSITION);
        log::info!(
            "xenstore: ivshmem-doorbell at {}: registers {regs_at:#x}, ring page {page_at:#x} \
             ({page_size} bytes), our peer id {peer_id}",
            device.address
        );
        Ok(IvshmemChannel {
            device,
            registers,
            page,
            peer_id,
            interrupt: Mutex::new(None),
        })
    }
}

impl StoreChannel for IvshmemChannel {
    fn kind(&self) -> PlatformKind {
        PlatformKind::QemuTest
    }

    fn describe(&self) -> String {
        let vector = self.interrupt.lock().as_ref().map(|(_, v, _)| *v);
        format!(
            "ivshmem-doorbell {} (peer {}, ring page {:#x}, MSI-X vector {})",
            self.device.address,
            self.peer_id,
            self.page.phys().as_u64(),
            vector.map_or_else(|| String::from("none yet"), |v| format!("{v:#x}"))
        )
    }

    fn page(&self) -> RingPage {
        let base = NonNull::new(self.page.as_ptr()).expect("mapped BAR2 is not null");
        // SAFETY: BAR2 is mapped for PAGE_SIZE bytes, page aligned, for the
        // kernel's life (never unmapped), and only accessed through
        // RingPage views; the other party is the host's daemon.
        unsafe { RingPage::new(base) }
    }

    fn notify(&self) {
        self.registers.write32(
            REG_DOORBELL,
            (DAEMON_PEER_ID << 16) | u32::from(VECTOR_INDEX),
        );
    }

    fn start_events(&self) -> Result<(), String> {
        let mut interrupt = self.interrupt.lock();
        if interrupt.is_some() {
            return Ok(());
        }
        // MSI-X comes up with the function masked: nothing fires until
        // `enable`, so a failure below leaves the device silent.
        let msix =
            MsixTable::setup(&self.device).map_err(|e| format!("{}", IvshmemError::Msix(e)))?;
        let vector = interrupts::allocate_vector().map_err(|e| format!("{e}"))?;
        let registration = match interrupts::register_vector(vector, on_store_event) {
            Ok(r) => r,
            Err(e) => {
                interrupts::free_vector(vector);
                return Err(format!("{e}"));
            }
        };
        let programmed = MsiMessage::fixed(interrupts::apic::id(), vector)
            .ok_or_else(|| format!("vector {vector:#x} cannot be an MSI"))
            .and_then(|message| {
                msix.program(VECTOR_INDEX, message)
                    .map_err(|e| format!("{}", IvshmemError::Msix(e)))
            });
        if let Err(e) = programmed {
            // Give the vector back rather than leak it with its handler.
            interrupts::unregister(registration);
            interrupts::free_vector(vector);
            return Err(e);
        }
        msix.enable();
        log::info!(
            "xenstore: ivshmem MSI-X entry {VECTOR_INDEX} -> vector {vector:#x} on APIC {} \
             (table of {} in BAR{})",
            interrupts::apic::id(),
            msix.info().table_size,
            msix.info().table_bar
        );
        *interrupt = Some((msix, vector, registration));
        Ok(())
    }
}

//! IOAPICs: route a global system interrupt (GSI) to a vector on this CPU.
//! All pins start masked; [`route`] programs and unmasks one on first use.

use alloc::vec::Vec;

use super::IrqError;
use crate::acpi::{Polarity, Trigger};
use crate::memory::MmioRegion;
use crate::spinlock::SpinLock;

const REG_SELECT: usize = 0x00;
const REG_WINDOW: usize = 0x10;
const REG_VERSION: u32 = 0x01;
const MASKED: u64 = 1 << 16;

struct IoApic {
    regs: MmioRegion,
    gsi_base: u32,
    pins: u32,
}

impl IoApic {
    /// The input pin `gsi` arrives on, if this IOAPIC serves it. Checked
    /// arithmetic: `gsi_base` comes from the firmware's MADT.
    fn pin_of(&self, gsi: u32) -> Option<u32> {
        gsi.checked_sub(self.gsi_base)
            .filter(|&pin| pin < self.pins)
    }
}

struct Routing {
    ioapics: Vec<IoApic>,
    /// GSI -> vector, for lines already routed.
    routes: Vec<(u32, u8)>,
}

/// IOAPIC registers (an index/data pair) and the routes made. Lock order:
/// a leaf apart from the vector allocator.
static ROUTING: SpinLock<Routing> = SpinLock::new(Routing {
    ioapics: Vec::new(),
    routes: Vec::new(),
});

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        self.regs.write32(REG_SELECT, reg);
        self.regs.read32(REG_WINDOW)
    }

    fn write(&self, reg: u32, value: u32) {
        self.regs.write32(REG_SELECT, reg);
        self.regs.write32(REG_WINDOW, value);
    }

    fn set_entry(&self, pin: u32, entry: u64) {
        // High half first so the entry never goes live half-written.
        self.write(0x10 + 2 * pin + 1, (entry >> 32) as u32);
        self.write(0x10 + 2 * pin, entry as u32);
    }
}

pub(super) fn init() {
    let Some(model) = crate::acpi::interrupt_model() else {
        return;
    };
    for info in model.ioapics() {
        // SAFETY: an IOAPIC's registers, as ACPI's MADT names them; this
        // module is their only user.
        let regs = match unsafe { crate::memory::map_mmio(info.address, 0x20) } {
            Ok(regs) => regs,
            Err(e) => {
                log::error!("IOAPIC at {:#x} unusable: {e}", info.address);
                continue;
            }
        };
        let mut io = IoApic {
            regs,
            gsi_base: info.gsi_base,
            pins: 0,
        };
        io.pins = ((io.read(REG_VERSION) >> 16) & 0xff) + 1;
        for pin in 0..io.pins {
            io.set_entry(pin, MASKED);
        }
        let gsis = (
            io.gsi_base,
            io.gsi_base.saturating_add(io.pins.saturating_sub(1)),
        );
        // Logged before taking the lock: never write to the serial port
        // under a spin lock.
        log::info!(
            "IOAPIC {} at {:#x}: GSI {}..{} masked",
            info.id,
            info.address,
            gsis.0,
            gsis.1
        );
        ROUTING.lock().ioapics.push(io);
    }
}

/// Routes `gsi` to this CPU with the given signalling and returns its
/// vector (the same one on every call for a GSI). A new route starts masked:
/// register the handler, then [`unmask`] it.
pub(super) fn route(gsi: u32, trigger: Trigger, polarity: Polarity) -> Result<u8, IrqError> {
    let mut routing = ROUTING.lock();
    if let Some(&(_, vector)) = routing.routes.iter().find(|(g, _)| *g == gsi) {
        return Ok(vector);
    }
    let (io, pin) = routing
        .ioapics
        .iter()
        .find_map(|io| Some((io, io.pin_of(gsi)?)))
        .ok_or(IrqError::NoIoApicFor { gsi })?;
    let vector = super::allocate_vector()?;
    let mut entry = u64::from(vector) | MASKED; // fixed delivery, physical destination
    if polarity == Polarity::ActiveLow {
        entry |= 1 << 13;
    }
    if trigger == Trigger::Level {
        entry |= 1 << 15;
    }
    entry |= u64::from(super::apic::id()) << 56;
    io.set_entry(pin, entry);
    routing.routes.push((gsi, vector));
    drop(routing); // log outside the spin lock
    log::debug!("GSI {gsi} -> vector {vector:#x} ({trigger:?}, {polarity:?})");
    Ok(vector)
}

/// Unmasks a routed GSI (no effect if it was never routed).
pub(super) fn unmask(gsi: u32) {
    let routing = ROUTING.lock();
    let Some((io, pin)) = routing
        .ioapics
        .iter()
        .find_map(|io| Some((io, io.pin_of(gsi)?)))
    else {
        return;
    };
    if routing.routes.iter().any(|(g, _)| *g == gsi) {
        let low = io.read(0x10 + 2 * pin);
        io.write(0x10 + 2 * pin, low & !(MASKED as u32));
    }
}

//! Device and software interrupts, on the local APIC and the IOAPIC (the
//! 8259 PICs are remapped and masked). Chosen over the PIC because Xen PVH
//! guests have a local APIC but no PIC, and MSI/MSI-X need the APIC anyway.
//!
//! Vectors: 0-31 CPU exceptions; 32-47 the masked PICs' (spurious only);
//! [`FIRST_DYNAMIC_VECTOR`]..=[`LAST_DYNAMIC_VECTOR`] handed out by
//! [`allocate_vector`] (IOAPIC lines get theirs this way too);
//! [`apic::TIMER_VECTOR`] the tick; [`apic::SPURIOUS_VECTOR`].
//!
//! Handlers run with interrupts disabled, must be short, must not sleep;
//! they may wake threads (wait queues, completions). The woken thread runs
//! as soon as the interrupt returns. Several handlers may share a vector
//! (PCI INTx lines are shared): all of them run, in registration order.

pub mod apic;
pub mod ioapic;
mod pic;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::acpi::{Polarity, Trigger};
use crate::arch::trap::TrapFrame;
use crate::spinlock::SpinLock;

/// First vector [`allocate_vector`] hands out.
pub const FIRST_DYNAMIC_VECTOR: u8 = 0x30;
/// Last vector [`allocate_vector`] hands out.
pub const LAST_DYNAMIC_VECTOR: u8 = 0xef;

type Handler = Box<dyn Fn() + Send + Sync>;

/// Per vector: (registration id, handler). Each lock is held while its
/// handlers run: a handler must not (un)register on its own vector.
static HANDLERS: [SpinLock<Vec<(u64, Handler)>>; 256] = [const { SpinLock::new(Vec::new()) }; 256];
/// Allocated vectors, one bit each.
static ALLOCATED: SpinLock<[u64; 4]> = SpinLock::new([0; 4]);
static NEXT_HANDLER_ID: AtomicU64 = AtomicU64::new(1);
/// Nesting depth of interrupt handlers on this CPU (one CPU today).
static DEPTH: AtomicUsize = AtomicUsize::new(0);
static UNHANDLED: AtomicU64 = AtomicU64::new(0);
/// Per vector, an [`EoiMode`] (as u8). Written only while the vector has
/// no handlers being dispatched that depend on it (set before registering).
static EOI_MODES: [AtomicU8; 256] = [const { AtomicU8::new(EoiMode::AfterHandlers as u8) }; 256];

/// When the dispatcher signals end-of-interrupt to the local APIC for a
/// vector. Everything the LAPIC delivers needs exactly one EOI; what bypasses
/// it (Xen's `HVM_PARAM_CALLBACK_IRQ` vector) must get none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EoiMode {
    /// After the handlers ran (the default: the vector cannot fire again
    /// on this CPU before they finish).
    AfterHandlers = 0,
    /// Before the handlers run, for sources that re-raise the vector on an
    /// event arriving while the handler scans (Xen's per-vCPU upcall
    /// vector: its handler clears "pending" flags, and an event raised
    /// during the scan must set the IRR again rather than find the vector
    /// still in service).
    BeforeHandlers = 1,
    /// Never: the interrupt did not come through the local APIC (Xen's
    /// callback-via-vector injection has no IRR/ISR bit to clear).
    None = 2,
}

/// Sets how `vector` (from [`allocate_vector`]) is acknowledged. Call it
/// before registering the vector's handler; [`free_vector`] resets it.
pub fn set_eoi_mode(vector: u8, mode: EoiMode) -> Result<(), IrqError> {
    if !is_allocated(vector) {
        return Err(IrqError::BadVector(vector));
    }
    EOI_MODES[usize::from(vector)].store(mode as u8, Ordering::Relaxed);
    Ok(())
}

/// Errors from interrupt registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// Every dynamic vector is in use.
    NoFreeVector,
    /// The vector is reserved (exception, timer, spurious) or not allocated.
    BadVector(u8),
    /// No IOAPIC serves this GSI (e.g. Xen PVH has no IOAPIC).
    NoIoApicFor {
        /// The global system interrupt.
        gsi: u32,
    },
    /// Mapping the controller's registers failed.
    Map(crate::memory::MapError),
}

impl fmt::Display for IrqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFreeVector => write!(f, "no free interrupt vector"),
            Self::BadVector(v) => write!(f, "vector {v:#x} is reserved or not allocated"),
            Self::NoIoApicFor { gsi } => write!(f, "no IOAPIC serves GSI {gsi}"),
            Self::Map(e) => write!(f, "cannot map interrupt controller: {e}"),
        }
    }
}

/// A registered handler; pass it to [`unregister`] to remove the handler.
#[derive(Debug)]
#[must_use = "keep the registration to unregister the handler later"]
pub struct Registration {
    vector: u8,
    id: u64,
}

impl Registration {
    /// The vector the handler runs on.
    pub fn vector(&self) -> u8 {
        self.vector
    }
}

/// Whether this CPU is running an interrupt handler.
pub fn in_interrupt() -> bool {
    DEPTH.load(Ordering::Relaxed) > 0
}

/// Interrupts that arrived on a vector without handlers (each also logged).
pub fn unhandled_count() -> u64 {
    UNHANDLED.load(Ordering::Relaxed)
}

/// Reserves a free vector (for MSI/MSI-X or a software interrupt).
pub fn allocate_vector() -> Result<u8, IrqError> {
    let mut bits = ALLOCATED.lock();
    for v in FIRST_DYNAMIC_VECTOR..=LAST_DYNAMIC_VECTOR {
        let (word, bit) = (usize::from(v / 64), v % 64);
        if bits[word] & (1 << bit) == 0 {
            bits[word] |= 1 << bit;
            return Ok(v);
        }
    }
    Err(IrqError::NoFreeVector)
}

/// Returns a vector from [`allocate_vector`]; its handlers are dropped.
pub fn free_vector(vector: u8) {
    HANDLERS[usize::from(vector)].lock().clear();
    EOI_MODES[usize::from(vector)].store(EoiMode::AfterHandlers as u8, Ordering::Relaxed);
    let mut bits = ALLOCATED.lock();
    bits[usize::from(vector / 64)] &= !(1 << (vector % 64));
}

fn add_handler(vector: u8, handler: Handler) -> Registration {
    let id = NEXT_HANDLER_ID.fetch_add(1, Ordering::Relaxed);
    HANDLERS[usize::from(vector)].lock().push((id, handler));
    Registration { vector, id }
}

/// Runs `handler` on every interrupt at `vector`, a vector obtained from
/// [`allocate_vector`] (e.g. Xen's upcall vector, an MSI). The local APIC
/// EOI is sent after the handlers run.
pub fn register_vector(
    vector: u8,
    handler: impl Fn() + Send + Sync + 'static,
) -> Result<Registration, IrqError> {
    if !is_allocated(vector) {
        return Err(IrqError::BadVector(vector));
    }
    Ok(add_handler(vector, Box::new(handler)))
}

fn is_allocated(vector: u8) -> bool {
    (FIRST_DYNAMIC_VECTOR..=LAST_DYNAMIC_VECTOR).contains(&vector)
        && ALLOCATED.lock()[usize::from(vector / 64)] & (1 << (vector % 64)) != 0
}

/// Removes a handler. Does not free the vector nor mask an IOAPIC line.
pub fn unregister(registration: Registration) {
    HANDLERS[usize::from(registration.vector)]
        .lock()
        .retain(|(id, _)| *id != registration.id);
}

/// Runs `handler` on legacy ISA IRQ `irq` (0-15), routed through the IOAPIC
/// with the MADT's override for it if any (else edge, active high).
pub fn register_legacy_irq(
    irq: u8,
    handler: impl Fn() + Send + Sync + 'static,
) -> Result<Registration, IrqError> {
    let ovr = crate::acpi::interrupt_model().and_then(|m| m.isa_override(irq));
    let gsi = ovr.map_or(u32::from(irq), |o| o.gsi);
    let trigger = ovr.and_then(|o| o.trigger).unwrap_or(Trigger::Edge);
    let polarity = ovr.and_then(|o| o.polarity).unwrap_or(Polarity::ActiveHigh);
    register_gsi(gsi, trigger, polarity, handler)
}

/// Runs `handler` on a PCI device's INTx line, given the interrupt line
/// register's value (filled by the firmware: the ISA IRQ the PCI link is
/// routed to, e.g. 10 or 11 on QEMU's i440fx). Level-triggered; polarity
/// from the MADT override (QEMU: active high), else PCI's active low. The
/// handler must check and acknowledge its device: the line may be shared.
pub fn register_pci_intx(
    line: u8,
    handler: impl Fn() + Send + Sync + 'static,
) -> Result<Registration, IrqError> {
    let ovr = crate::acpi::interrupt_model().and_then(|m| m.isa_override(line));
    let gsi = ovr.map_or(u32::from(line), |o| o.gsi);
    let polarity = ovr.and_then(|o| o.polarity).unwrap_or(Polarity::ActiveLow);
    register_gsi(gsi, Trigger::Level, polarity, handler)
}

/// Runs `handler` on global system interrupt `gsi` with the given signal
/// type; the IOAPIC pin gets a vector of its own on first use and is
/// unmasked once the handler is in place.
pub fn register_gsi(
    gsi: u32,
    trigger: Trigger,
    polarity: Polarity,
    handler: impl Fn() + Send + Sync + 'static,
) -> Result<Registration, IrqError> {
    let vector = ioapic::route(gsi, trigger, polarity)?;
    let registration = add_handler(vector, Box::new(handler));
    ioapic::unmask(gsi);
    Ok(registration)
}

/// Sends interrupt `vector` to this CPU (a self-IPI through the local APIC).
pub fn send_self_ipi(vector: u8) {
    apic::send_self_ipi(vector);
}

/// Entry from the trap dispatcher for vectors 32-255 (interrupts disabled).
pub(crate) fn dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    if vector == apic::SPURIOUS_VECTOR || pic::is_pic_vector(vector) {
        return; // spurious: no EOI
    }
    DEPTH.fetch_add(1, Ordering::Relaxed);
    let eoi = match EOI_MODES[usize::from(vector)].load(Ordering::Relaxed) {
        1 => EoiMode::BeforeHandlers,
        2 => EoiMode::None,
        _ => EoiMode::AfterHandlers,
    };
    if eoi == EoiMode::BeforeHandlers {
        apic::eoi();
    }
    if vector == apic::TIMER_VECTOR {
        apic::on_timer();
    } else {
        let handlers = HANDLERS[usize::from(vector)].lock();
        let unhandled = handlers.is_empty();
        for (_, handler) in handlers.iter() {
            handler();
        }
        // Logged after the guard: never write to the serial port under a
        // spin lock.
        drop(handlers);
        if unhandled && UNHANDLED.fetch_add(1, Ordering::Relaxed) < 10 {
            log::warn!("interrupt on vector {vector:#x} with no handler (dropped)");
        }
    }
    if eoi == EoiMode::AfterHandlers {
        apic::eoi();
    }
    DEPTH.fetch_sub(1, Ordering::Relaxed);
    if let Some(preempt) = PREEMPT_HOOK.get() {
        preempt();
    }
}

/// Run at the end of every interrupt: switches threads if the interrupt
/// made that due. The scheduler installs it ([`set_preempt_hook`]).
static PREEMPT_HOOK: spin::Once<fn()> = spin::Once::new();

/// Installs the function run at the end of every interrupt to switch
/// threads if due (the scheduler's, once at boot; later calls are ignored).
pub(crate) fn set_preempt_hook(hook: fn()) {
    PREEMPT_HOOK.call_once(|| hook);
}

/// Takes vectors 32-255 from `arch::trap`, masks the PICs, enables the
/// local APIC, masks every IOAPIC pin. Called once by boot (after memory,
/// before threads).
pub(crate) fn init() {
    crate::arch::trap::set_interrupt_handler(dispatch);
    pic::remap_and_mask();
    apic::init();
    ioapic::init();
}

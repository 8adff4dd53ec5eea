//! Just enough ACPI to route interrupts: finds the MADT through the RSDP
//! and records the local APIC address, the IOAPICs and the ISA interrupt
//! source overrides (e.g. ISA IRQ 0 -> GSI 2, PCI IRQs level-triggered).
//!
//! Read once at boot, while the loader's identity map of the low 4 GiB is
//! still active; the results are kept in fixed arrays (no heap yet).

use core::fmt;

use spin::Once;

/// Most IOAPICs recorded.
pub const MAX_IOAPICS: usize = 4;
/// Most interrupt source overrides recorded.
pub const MAX_OVERRIDES: usize = 16;

/// Interrupt polarity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Asserted high.
    ActiveHigh,
    /// Asserted low.
    ActiveLow,
}

/// Interrupt trigger mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Edge-triggered.
    Edge,
    /// Level-triggered.
    Level,
}

/// One IOAPIC.
#[derive(Clone, Copy, Debug)]
pub struct IoApicInfo {
    /// APIC id.
    pub id: u8,
    /// Physical address of its registers.
    pub address: u64,
    /// First global system interrupt it serves.
    pub gsi_base: u32,
}

/// An ISA IRQ that is wired to a different GSI or with non-ISA flags.
#[derive(Clone, Copy, Debug)]
pub struct IsaOverride {
    /// ISA IRQ number.
    pub irq: u8,
    /// Global system interrupt it arrives on.
    pub gsi: u32,
    /// Polarity, if the table specifies it.
    pub polarity: Option<Polarity>,
    /// Trigger mode, if the table specifies it.
    pub trigger: Option<Trigger>,
}

/// What the MADT said.
#[derive(Clone, Copy, Debug)]
pub struct InterruptModel {
    /// Local APIC physical address.
    pub local_apic: u64,
    /// Whether legacy 8259 PICs are present (to be masked).
    pub has_8259: bool,
    ioapics: [Option<IoApicInfo>; MAX_IOAPICS],
    overrides: [Option<IsaOverride>; MAX_OVERRIDES],
}

impl InterruptModel {
    /// The IOAPICs (none on Xen PVH).
    pub fn ioapics(&self) -> impl Iterator<Item = &IoApicInfo> {
        self.ioapics.iter().flatten()
    }

    /// The override for ISA `irq`, if any.
    pub fn isa_override(&self, irq: u8) -> Option<&IsaOverride> {
        self.overrides.iter().flatten().find(|o| o.irq == irq)
    }
}

impl fmt::Display for InterruptModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "local APIC {:#x}, 8259 {}",
            self.local_apic, self.has_8259
        )?;
        for io in self.ioapics() {
            write!(
                f,
                ", IOAPIC {} at {:#x} (GSI {}+)",
                io.id, io.address, io.gsi_base
            )?;
        }
        for o in self.overrides.iter().flatten() {
            write!(f, ", IRQ{}->GSI{}", o.irq, o.gsi)?;
        }
        Ok(())
    }
}

static MODEL: Once<Option<InterruptModel>> = Once::new();

/// The interrupt model from the MADT, or `None` without ACPI.
pub fn interrupt_model() -> Option<&'static InterruptModel> {
    MODEL.get().and_then(Option::as_ref)
}

/// Reads physical memory under the boot identity map.
///
/// # Safety
/// Early boot only, before `memory::init`: the loader's identity map of the
/// low 4 GiB is still in place. The range must be firmware memory (the BIOS
/// areas, tables the firmware's pointers name), which the kernel never
/// writes, so the slice aliases nothing that changes.
unsafe fn phys(addr: u64, len: usize) -> Option<&'static [u8]> {
    // Only the low 4 GiB are mapped at this point.
    if addr == 0 || addr.checked_add(len as u64)? > 1 << 32 {
        return None;
    }
    // SAFETY: below 4 GiB everything is identity mapped at this stage of
    // boot, and the caller names firmware memory nothing writes.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
}

/// # Safety
/// As for [`phys`].
unsafe fn find_rsdp() -> Option<u64> {
    // The EBDA's first KiB, then the BIOS area 0xe0000-0xfffff, 16-byte steps.
    // SAFETY: early boot (our own contract).
    let ebda = unsafe { phys(0x40e, 2) }.map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])) << 4);
    let areas = [(ebda.unwrap_or(0), 1024usize), (0xe0000, 0x20000)];
    areas
        .iter()
        .filter(|(base, _)| *base != 0)
        .find_map(|&(base, len)| {
            // SAFETY: early boot (our own contract).
            let area = unsafe { phys(base, len) }?;
            (0..len.saturating_sub(20))
                .step_by(16)
                .find(|&off| {
                    &area[off..off + 8] == b"RSD PTR " && checksum_ok(&area[off..off + 20])
                })
                .map(|off| base + off as u64)
        })
}

/// A validated system description table (header + body).
///
/// # Safety
/// As for [`phys`].
unsafe fn table(addr: u64) -> Option<&'static [u8]> {
    // SAFETY: early boot (our own contract).
    let header = unsafe { phys(addr, 36) }?;
    let len = u32_at(header, 4) as usize;
    // SAFETY: as above.
    let table = unsafe { phys(addr, len.max(36)) }?;
    if !checksum_ok(table) {
        log::warn!(
            "ACPI: table {:?} at {addr:#x} has a bad checksum; ignored",
            core::str::from_utf8(&header[..4]).unwrap_or("????")
        );
        return None;
    }
    Some(table)
}

/// # Safety
/// As for [`phys`].
unsafe fn find_madt(rsdp_addr: u64) -> Option<&'static [u8]> {
    // SAFETY: early boot (our own contract).
    let rsdp = unsafe { phys(rsdp_addr, 36) }?;
    let (root, entry_size) = if rsdp[15] >= 2 && u64_at(rsdp, 24) != 0 {
        (u64_at(rsdp, 24), 8)
    } else {
        (u64::from(u32_at(rsdp, 16)), 4)
    };
    // SAFETY: as above.
    let root = unsafe { table(root) }?;
    root[36..].chunks_exact(entry_size).find_map(|entry| {
        let addr = if entry_size == 8 {
            u64_at(entry, 0)
        } else {
            u64::from(u32_at(entry, 0))
        };
        // The MADT's fixed part (header, LAPIC address, flags) is 44 bytes.
        // SAFETY: as above.
        unsafe { table(addr) }.filter(|t| &t[..4] == b"APIC" && t.len() >= MADT_ENTRIES)
    })
}

/// Where the MADT's entries start, after its fixed part.
const MADT_ENTRIES: usize = 44;

fn parse_madt(madt: &[u8]) -> InterruptModel {
    let mut model = InterruptModel {
        local_apic: u64::from(u32_at(madt, 36)),
        has_8259: u32_at(madt, 40) & 1 != 0,
        ioapics: [None; MAX_IOAPICS],
        overrides: [None; MAX_OVERRIDES],
    };
    let (mut nio, mut nov) = (0, 0);
    let mut at = MADT_ENTRIES;
    while at + 2 <= madt.len() {
        let (kind, len) = (madt[at], madt[at + 1] as usize);
        if len < 2 || at + len > madt.len() {
            break;
        }
        let e = &madt[at..at + len];
        match kind {
            1 if len >= 12 && nio < MAX_IOAPICS => {
                model.ioapics[nio] = Some(IoApicInfo {
                    id: e[2],
                    address: u64::from(u32_at(e, 4)),
                    gsi_base: u32_at(e, 8),
                });
                nio += 1;
            }
            2 if len >= 10 && nov < MAX_OVERRIDES => {
                let flags = u16::from_le_bytes([e[8], e[9]]);
                model.overrides[nov] = Some(IsaOverride {
                    irq: e[3],
                    gsi: u32_at(e, 4),
                    polarity: match flags & 3 {
                        1 => Some(Polarity::ActiveHigh),
                        3 => Some(Polarity::ActiveLow),
                        _ => None,
                    },
                    trigger: match (flags >> 2) & 3 {
                        1 => Some(Trigger::Edge),
                        3 => Some(Trigger::Level),
                        _ => None,
                    },
                });
                nov += 1;
            }
            5 if len >= 12 => model.local_apic = u64_at(e, 4), // 64-bit LAPIC address override
            _ => {}
        }
        at += len;
    }
    model
}

/// Finds and parses the MADT. Called once by boot.
///
/// # Safety
/// As for [`phys`]: before `memory::init`, while the loader's identity map
/// is in place.
pub(crate) unsafe fn init(rsdp_from_loader: Option<u64>) {
    let model = MODEL.call_once(|| {
        // SAFETY: early boot (our own contract).
        let rsdp = rsdp_from_loader.or_else(|| unsafe { find_rsdp() })?;
        // SAFETY: as above.
        unsafe { find_madt(rsdp) }.map(parse_madt)
    });
    match model {
        Some(m) => log::info!("ACPI MADT: {m}"),
        None => log::warn!("ACPI: no MADT found; assuming a local APIC only"),
    }
}

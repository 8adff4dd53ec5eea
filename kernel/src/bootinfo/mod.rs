//! What the loader told the kernel: the memory map, the command line, the
//! ACPI RSDP and the entry protocol, as plain data ([`BootInfo`]). Below
//! memory management (which takes its frames from the map) and read by
//! anything that wants the command line; [`loader`] reads it out of the
//! loader's structures (Xen/QEMU `hvm_start_info`, or multiboot2 from GRUB).

mod loader;

use core::fmt;

use spin::Once;

/// Most memory-map entries kept; firmware maps are far shorter.
pub const MAX_MEMORY_REGIONS: usize = 64;
/// Longest kernel command line kept (longer ones are cut and logged).
pub const MAX_CMDLINE: usize = 512;

/// How the kernel was entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootProtocol {
    /// Xen PVH entry (Xen `type="pvh"`, QEMU `-kernel`, HVM direct boot).
    Pvh {
        /// `hvm_start_info.version`.
        version: u32,
    },
    /// GRUB multiboot2 (the ISO).
    Multiboot2,
}

/// Type of a physical memory region (e820 numbering, shared by PVH and
/// multiboot2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Free RAM.
    Usable,
    /// Reserved by firmware or devices.
    Reserved,
    /// ACPI tables, reclaimable after reading them.
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Defective RAM.
    Unusable,
    /// Any other type code.
    Other(u32),
}

impl MemoryKind {
    pub(super) fn from_e820(code: u32) -> Self {
        match code {
            1 => Self::Usable,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            other => Self::Other(other),
        }
    }
}

/// One physical memory region from the loader's map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// What the region is.
    pub kind: MemoryKind,
}

impl MemoryRegion {
    pub(super) const EMPTY: Self = Self {
        start: 0,
        len: 0,
        kind: MemoryKind::Reserved,
    };

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// What the loader told us, copied out of loader memory before the frame
/// allocator may reuse it.
pub struct BootInfo {
    /// The entry protocol.
    pub protocol: BootProtocol,
    regions: [MemoryRegion; MAX_MEMORY_REGIONS],
    region_count: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// Physical address of the ACPI RSDP, if the loader gave one.
    pub rsdp: Option<u64>,
}

impl BootInfo {
    /// The physical memory map, in the loader's order.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.regions[..self.region_count]
    }

    /// The kernel command line (`-append` under QEMU, `cmdline=` under xl).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The value of `key=value` on the command line, if present.
    pub fn cmdline_value(&self, key: &str) -> Option<&str> {
        self.cmdline()
            .split_ascii_whitespace()
            .find_map(|arg| arg.strip_prefix(key)?.strip_prefix('='))
    }

    /// Total usable RAM in bytes.
    pub fn usable_bytes(&self) -> u64 {
        self.memory_map()
            .iter()
            .filter(|r| r.kind == MemoryKind::Usable)
            .map(|r| r.len)
            .sum()
    }

    pub(super) fn push_region(&mut self, region: MemoryRegion) {
        if self.region_count < MAX_MEMORY_REGIONS {
            self.regions[self.region_count] = region;
            self.region_count += 1;
        }
    }

    pub(super) fn set_cmdline(&mut self, bytes: &[u8]) {
        let len = bytes.len().min(MAX_CMDLINE);
        self.cmdline[..len].copy_from_slice(&bytes[..len]);
        self.cmdline_len = len;
    }
}

impl fmt::Display for MemoryRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:#014x}-{:#014x}] {:>10} KiB {:?}",
            self.start,
            self.end().saturating_sub(1),
            self.len / 1024,
            self.kind
        )
    }
}

static BOOT_INFO: Once<BootInfo> = Once::new();

/// The boot information (available once the kernel has started).
pub fn info() -> &'static BootInfo {
    BOOT_INFO
        .get()
        .expect("boot info is read before anything else runs")
}

/// Reads what the loader handed over into the [`BootInfo`] that [`info`]
/// returns from then on (the first call reads; later calls return it).
/// Panics on an unknown boot protocol.
///
/// # Safety
/// `loader_magic` and `info_phys` are what the loader passed in eax and
/// ebx, and the low 4 GiB are still identity-mapped as the loader left
/// them (before `memory::init`).
pub unsafe fn read_from_loader(loader_magic: u32, info_phys: u32) -> &'static BootInfo {
    BOOT_INFO.call_once(|| {
        let mut info = BootInfo {
            protocol: BootProtocol::Multiboot2,
            regions: [MemoryRegion::EMPTY; MAX_MEMORY_REGIONS],
            region_count: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            rsdp: None,
        };
        // SAFETY: guaranteed by the caller.
        unsafe { loader::parse(loader_magic, info_phys, &mut info) };
        info
    })
}

//! Boot: the Rust side of the 32-bit entry. Reads what the loader handed us
//! (Xen/QEMU `hvm_start_info`, or a multiboot2 information block from GRUB)
//! into a [`BootInfo`], brings every subsystem up in dependency order and
//! calls the image's main function on the `main` thread.

use core::fmt;

use spin::Once;

/// `hvm_start_info.magic` (Xen public/arch-x86/hvm/start_info.h).
const PVH_MAGIC: u32 = 0x336e_c578;
/// Value of eax when GRUB enters through multiboot2.
const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;

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
    fn from_e820(code: u32) -> Self {
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
    const EMPTY: Self = Self {
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

    fn push_region(&mut self, region: MemoryRegion) {
        if self.region_count < MAX_MEMORY_REGIONS {
            self.regions[self.region_count] = region;
            self.region_count += 1;
        }
    }

    fn set_cmdline(&mut self, bytes: &[u8]) {
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

/// Reads `len` bytes of loader memory at a physical address.
///
/// # Safety
/// `phys..phys+len` must be readable memory under the boot identity map
/// (everything below 4 GiB) and not change while the slice lives.
unsafe fn phys_slice(phys: u64, len: usize) -> &'static [u8] {
    // SAFETY: guaranteed by the caller.
    unsafe { core::slice::from_raw_parts(phys as *const u8, len) }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from(read_u32(bytes, at)) | (u64::from(read_u32(bytes, at + 4)) << 32)
}

/// Reads a NUL-terminated string at `phys`, at most `MAX_CMDLINE` bytes.
///
/// # Safety
/// As for [`phys_slice`], for up to `MAX_CMDLINE` bytes.
unsafe fn c_string(phys: u64) -> &'static [u8] {
    if phys == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { phys_slice(phys, MAX_CMDLINE) };
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(MAX_CMDLINE);
    &bytes[..len]
}

/// Parses `hvm_start_info` (public/arch-x86/hvm/start_info.h): magic @0,
/// version @4, flags @8, nr_modules @12, modlist_paddr @16, cmdline_paddr
/// @24, rsdp_paddr @32, and from version 1 memmap_paddr @40,
/// memmap_entries @48.
///
/// # Safety
/// `phys` is the start-info address the loader passed in ebx.
unsafe fn parse_pvh(phys: u64, info: &mut BootInfo) {
    // SAFETY: the loader put a 56-byte start_info there (v1 size; v0 uses
    // the first 40 bytes and we read the rest only when version >= 1).
    let si = unsafe { phys_slice(phys, 56) };
    let version = read_u32(si, 4);
    info.protocol = BootProtocol::Pvh { version };
    // SAFETY: cmdline_paddr is a NUL-terminated string placed by the loader.
    info.set_cmdline(unsafe { c_string(read_u64(si, 24)) });
    let rsdp = read_u64(si, 32);
    info.rsdp = (rsdp != 0).then_some(rsdp);
    if version >= 1 {
        let map = read_u64(si, 40);
        let entries = (read_u32(si, 48) as usize).min(MAX_MEMORY_REGIONS);
        // SAFETY: memmap_paddr points to memmap_entries 24-byte entries.
        let map = unsafe { phys_slice(map, entries * 24) };
        for entry in map.chunks_exact(24) {
            info.push_region(MemoryRegion {
                start: read_u64(entry, 0),
                len: read_u64(entry, 8),
                kind: MemoryKind::from_e820(read_u32(entry, 16)),
            });
        }
    }
}

/// Parses a multiboot2 information block (tags: 1 cmdline, 6 memory map,
/// 14/15 ACPI RSDP copies).
///
/// # Safety
/// `phys` is the information address GRUB passed in ebx.
unsafe fn parse_multiboot2(phys: u64, info: &mut BootInfo) {
    info.protocol = BootProtocol::Multiboot2;
    // SAFETY: the block starts with its total size.
    let total = read_u32(unsafe { phys_slice(phys, 8) }, 0) as usize;
    // SAFETY: the whole block is `total` bytes long.
    let mbi = unsafe { phys_slice(phys, total) };
    let mut at = 8;
    while at + 8 <= total {
        let tag = read_u32(mbi, at);
        let size = read_u32(mbi, at + 4) as usize;
        if tag == 0 || size < 8 || at + size > total {
            break;
        }
        let body = &mbi[at + 8..at + size];
        match tag {
            1 => {
                let len = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                info.set_cmdline(&body[..len]);
            }
            6 => {
                let entry_size = read_u32(body, 0) as usize;
                // Entries follow entry_size and entry_version (a tag too
                // short for them has none).
                let entries = body.get(8..).unwrap_or_default();
                if entry_size >= 24 {
                    for entry in entries.chunks_exact(entry_size) {
                        info.push_region(MemoryRegion {
                            start: read_u64(entry, 0),
                            len: read_u64(entry, 8),
                            kind: MemoryKind::from_e820(read_u32(entry, 16)),
                        });
                    }
                }
            }
            // The tag holds a copy of the RSDP; its address is what ACPI parsing needs.
            14 | 15 if info.rsdp.is_none() => info.rsdp = Some(phys + at as u64 + 8),
            _ => {}
        }
        at += (size + 7) & !7;
    }
}

/// Entered from `boot.s` in long mode on the boot stack, with the low
/// 4 GiB identity-mapped and interrupts disabled.
#[unsafe(no_mangle)]
extern "C" fn kernel_boot_entry(loader_magic: u32, info_phys: u32) -> ! {
    crate::serial::init();
    crate::logger::init();
    crate::arch::gdt::init();
    crate::arch::idt::init();

    let info = BOOT_INFO.call_once(|| {
        let mut info = BootInfo {
            protocol: BootProtocol::Multiboot2,
            regions: [MemoryRegion::EMPTY; MAX_MEMORY_REGIONS],
            region_count: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            rsdp: None,
        };
        let phys = u64::from(info_phys);
        // SAFETY: the loader passed this address in ebx; the magic checks
        // below tell which structure it is before anything else is read.
        unsafe {
            if phys != 0 && read_u32(phys_slice(phys, 4), 0) == PVH_MAGIC {
                parse_pvh(phys, &mut info);
            } else if loader_magic == MULTIBOOT2_MAGIC {
                parse_multiboot2(phys, &mut info);
            } else {
                panic!(
                    "unknown boot protocol (eax {loader_magic:#x}, ebx {info_phys:#x}): \
                     boot through the PVH note or multiboot2"
                );
            }
        }
        info
    });
    crate::logger::apply_cmdline(info.cmdline());
    log::info!(
        "booted via {:?}; command line {:?}",
        info.protocol,
        info.cmdline()
    );
    log::info!("memory map ({} regions):", info.memory_map().len());
    for region in info.memory_map() {
        log::info!("  {region}");
    }

    // SAFETY: before `memory::init`, under the loader's identity map.
    unsafe { crate::acpi::init(info.rsdp) };
    crate::memory::init(info);
    crate::time::init();
    crate::interrupts::init();
    crate::hypervisor::init();
    crate::thread::init();
    crate::time::start_ticks();
    crate::serial::enable_input();
    log::info!(
        "kernel ready: {} MiB usable RAM, {} MiB free frames, tsc {} MHz, timer {} Hz",
        info.usable_bytes() >> 20,
        (crate::memory::free_frames() * 4096) >> 20,
        crate::time::tsc_hz() / 1_000_000,
        crate::time::TICK_HZ
    );

    unsafe extern "Rust" {
        fn __kernel_main(boot: &'static BootInfo) -> !;
    }
    // SAFETY: `entry_point!` defines this symbol with exactly this signature.
    unsafe { __kernel_main(info) }
}

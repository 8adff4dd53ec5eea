//! Reads the loader's boot information structures into a [`BootInfo`]:
//! Xen/QEMU `hvm_start_info` (the PVH entry) or a multiboot2 information
//! block (GRUB).

use super::{BootInfo, BootProtocol, MAX_CMDLINE, MAX_MEMORY_REGIONS, MemoryKind, MemoryRegion};

/// `hvm_start_info.magic` (Xen public/arch-x86/hvm/start_info.h).
const PVH_MAGIC: u32 = 0x336e_c578;
/// Value of eax when GRUB enters through multiboot2.
const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;

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

/// Fills `info` from the structure at `info_phys`, told apart by its magic.
/// Panics on an unknown boot protocol.
///
/// # Safety
/// As for [`super::read_from_loader`].
pub(super) unsafe fn parse(loader_magic: u32, info_phys: u32, info: &mut BootInfo) {
    let phys = u64::from(info_phys);
    // SAFETY: the loader passed this address in ebx; the magic checks
    // below tell which structure it is before anything else is read.
    unsafe {
        if phys != 0 && read_u32(phys_slice(phys, 4), 0) == PVH_MAGIC {
            parse_pvh(phys, info);
        } else if loader_magic == MULTIBOOT2_MAGIC {
            parse_multiboot2(phys, info);
        } else {
            panic!(
                "unknown boot protocol (eax {loader_magic:#x}, ebx {info_phys:#x}): \
                 boot through the PVH note or multiboot2"
            );
        }
    }
}

//! Checks that a kernel image can be booted through the Xen PVH entry: a
//! `Xen` note of type 18 (XEN_ELFNOTE_PHYS32_ENTRY) in a PT_NOTE segment,
//! whose 32-bit entry address lies in an executable loaded segment below
//! 4 GiB, and no multiboot (v1) header that QEMU's loader would prefer.

use crate::elf::{Elf, PT_LOAD};

/// XEN_ELFNOTE_PHYS32_ENTRY.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const MULTIBOOT1_MAGIC: u32 = 0x1bad_b002;

/// Returns the PVH entry address, or why the image is not PVH-bootable.
pub fn check(image: &[u8]) -> Result<u64, String> {
    let elf = Elf::parse(image).map_err(|e| e.to_string())?;
    let notes = elf.notes().map_err(|e| e.to_string())?;
    let note = notes
        .iter()
        .find(|n| n.name == "Xen" && n.kind == XEN_ELFNOTE_PHYS32_ENTRY)
        .ok_or("no Xen PHYS32_ENTRY note in a PT_NOTE segment")?;
    let entry = match note.desc.len() {
        4 => u64::from(u32::from_le_bytes(
            note.desc[..4].try_into().expect("4 bytes"),
        )),
        8 => u64::from_le_bytes(note.desc[..8].try_into().expect("8 bytes")),
        n => {
            return Err(format!(
                "PHYS32_ENTRY descriptor has {n} bytes (want 4 or 8)"
            ));
        }
    };
    if entry == 0 || entry >= 1 << 32 {
        return Err(format!(
            "PVH entry {entry:#x} is not a 32-bit physical address"
        ));
    }
    let in_code = elf.segments.iter().any(|s| {
        s.kind == PT_LOAD && s.flags & 1 != 0 && (s.paddr..s.paddr + s.memsz).contains(&entry)
    });
    if !in_code {
        return Err(format!(
            "PVH entry {entry:#x} is not inside an executable loaded segment"
        ));
    }
    // QEMU -kernel tries multiboot v1 before PVH: such a header (in the
    // first 8 KiB, 4-byte aligned) would hijack the boot.
    let head = &image[..image.len().min(8192)];
    let words: Vec<u32> = head
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().expect("4 bytes")))
        .collect();
    let has_mb1 = words
        .windows(3)
        .any(|w| w[0] == MULTIBOOT1_MAGIC && w[0].wrapping_add(w[1]).wrapping_add(w[2]) == 0);
    if has_mb1 {
        return Err("a multiboot v1 header would take precedence over the PVH note".into());
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::{build_elf, note_bytes};

    #[test]
    fn accepts_a_valid_note_with_8_byte_descriptor() {
        let note = note_bytes("Xen", 18, &0x100008u64.to_le_bytes());
        let elf = build_elf(0x100008, (0x100000, 5, &[0x90; 64]), Some(&note), None);
        assert_eq!(check(&elf), Ok(0x100008));
    }

    #[test]
    fn accepts_a_4_byte_descriptor() {
        let note = note_bytes("Xen", 18, &0x100000u32.to_le_bytes());
        let elf = build_elf(0x100000, (0x100000, 5, &[0x90; 64]), Some(&note), None);
        assert_eq!(check(&elf), Ok(0x100000));
    }

    #[test]
    fn rejects_missing_note_wrong_type_and_bad_entry() {
        let elf = build_elf(0x100000, (0x100000, 5, &[0; 64]), None, None);
        assert!(check(&elf).unwrap_err().contains("no Xen PHYS32_ENTRY"));
        let note = note_bytes("Xen", 17, &0x100000u64.to_le_bytes());
        let elf = build_elf(0x100000, (0x100000, 5, &[0; 64]), Some(&note), None);
        assert!(check(&elf).is_err());
        // Entry 0: what a static-PIE build produced.
        let note = note_bytes("Xen", 18, &0u64.to_le_bytes());
        let elf = build_elf(0x100000, (0x100000, 5, &[0; 64]), Some(&note), None);
        assert!(check(&elf).unwrap_err().contains("not a 32-bit"));
        // Entry outside code.
        let note = note_bytes("Xen", 18, &0x200000u64.to_le_bytes());
        let elf = build_elf(0x100000, (0x100000, 5, &[0; 64]), Some(&note), None);
        assert!(check(&elf).unwrap_err().contains("not inside"));
        // Entry in a non-executable segment.
        let note = note_bytes("Xen", 18, &0x100000u64.to_le_bytes());
        let elf = build_elf(0x100000, (0x100000, 4, &[0; 64]), Some(&note), None);
        assert!(check(&elf).unwrap_err().contains("not inside"));
    }

    #[test]
    fn rejects_a_multiboot_v1_header() {
        let note = note_bytes("Xen", 18, &0x100000u64.to_le_bytes());
        let mut code = vec![0u8; 64];
        code[8..12].copy_from_slice(&MULTIBOOT1_MAGIC.to_le_bytes());
        let checksum = 0u32.wrapping_sub(MULTIBOOT1_MAGIC);
        code[16..20].copy_from_slice(&checksum.to_le_bytes());
        let elf = build_elf(0x100000, (0x100000, 5, &code), Some(&note), None);
        assert!(check(&elf).unwrap_err().contains("multiboot v1"));
    }
}

//! A minimal ELF64 little-endian reader: program headers, section headers
//! by name, and notes. Enough to check the PVH note and read a test image's
//! `.ktest_config` section without a dependency.

use std::fmt;

/// A program header (segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `p_type` (1 = PT_LOAD, 4 = PT_NOTE).
    pub kind: u32,
    /// `p_flags` (1 X, 2 W, 4 R).
    pub flags: u32,
    /// File offset.
    pub offset: u64,
    /// Virtual address.
    pub vaddr: u64,
    /// Physical address.
    pub paddr: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory.
    pub memsz: u64,
}

/// PT_LOAD.
pub const PT_LOAD: u32 = 1;
/// PT_NOTE.
pub const PT_NOTE: u32 = 4;

/// One ELF note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Owner name without its NUL.
    pub name: String,
    /// Note type.
    pub kind: u32,
    /// Descriptor bytes.
    pub desc: Vec<u8>,
}

/// Why a file is not an ELF we can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfError(pub String);

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad ELF: {}", self.0)
    }
}

impl std::error::Error for ElfError {}

/// A parsed ELF64 image borrowing its bytes.
pub struct Elf<'a> {
    bytes: &'a [u8],
    /// Entry point.
    pub entry: u64,
    /// Segments.
    pub segments: Vec<Segment>,
    sections: Vec<(String, u64, u64)>,
}

fn err<T>(msg: impl Into<String>) -> Result<T, ElfError> {
    Err(ElfError(msg.into()))
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| ElfError(format!("truncated at {at:#x}")))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| ElfError(format!("truncated at {at:#x}")))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        .ok_or_else(|| ElfError(format!("truncated at {at:#x}")))
}

fn slice(b: &[u8], offset: u64, len: u64) -> Result<&[u8], ElfError> {
    let start = usize::try_from(offset).map_err(|_| ElfError("offset overflow".into()))?;
    let len = usize::try_from(len).map_err(|_| ElfError("size overflow".into()))?;
    start
        .checked_add(len)
        .and_then(|end| b.get(start..end))
        .ok_or_else(|| ElfError(format!("range {offset:#x}+{len:#x} outside the file")))
}

impl<'a> Elf<'a> {
    /// Parses the headers of an ELF64 little-endian x86_64 file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
            return err("no ELF magic");
        }
        if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
            return err("not ELF64 little-endian");
        }
        if u16_at(bytes, 18)? != 62 {
            return err("not x86_64");
        }
        let entry = u64_at(bytes, 24)?;
        let phoff = u64_at(bytes, 32)?;
        let shoff = u64_at(bytes, 40)?;
        let phentsize = u64::from(u16_at(bytes, 54)?);
        let phnum = u64::from(u16_at(bytes, 56)?);
        let shentsize = u64::from(u16_at(bytes, 58)?);
        let shnum = u64::from(u16_at(bytes, 60)?);
        let shstrndx = u64::from(u16_at(bytes, 62)?);
        let mut segments = Vec::new();
        for i in 0..phnum {
            let ph = slice(bytes, phoff + i * phentsize, 56)?;
            segments.push(Segment {
                kind: u32_at(ph, 0)?,
                flags: u32_at(ph, 4)?,
                offset: u64_at(ph, 8)?,
                vaddr: u64_at(ph, 16)?,
                paddr: u64_at(ph, 24)?,
                filesz: u64_at(ph, 32)?,
                memsz: u64_at(ph, 40)?,
            });
        }
        let mut sections = Vec::new();
        if shnum > 0 && shstrndx < shnum {
            let strtab_hdr = slice(bytes, shoff + shstrndx * shentsize, 64)?;
            let strtab = slice(bytes, u64_at(strtab_hdr, 24)?, u64_at(strtab_hdr, 32)?)?;
            for i in 0..shnum {
                let sh = slice(bytes, shoff + i * shentsize, 64)?;
                let name_off = u32_at(sh, 0)? as usize;
                let name = strtab
                    .get(name_off..)
                    .and_then(|s| s.split(|&b| b == 0).next())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .unwrap_or_default();
                let kind = u32_at(sh, 4)?;
                // SHT_NOBITS (8) has no file contents.
                let size = if kind == 8 { 0 } else { u64_at(sh, 32)? };
                sections.push((name, u64_at(sh, 24)?, size));
            }
        }
        Ok(Self {
            bytes,
            entry,
            segments,
            sections,
        })
    }

    /// The contents of the section called `name`, if present.
    pub fn section(&self, name: &str) -> Result<Option<&'a [u8]>, ElfError> {
        match self.sections.iter().find(|(n, _, _)| n == name) {
            Some(&(_, offset, size)) => slice(self.bytes, offset, size).map(Some),
            None => Ok(None),
        }
    }

    /// Every note in every PT_NOTE segment.
    pub fn notes(&self) -> Result<Vec<Note>, ElfError> {
        let mut notes = Vec::new();
        for seg in self.segments.iter().filter(|s| s.kind == PT_NOTE) {
            let data = slice(self.bytes, seg.offset, seg.filesz)?;
            let mut at = 0usize;
            while at + 12 <= data.len() {
                let namesz = u32_at(data, at)? as usize;
                let descsz = u32_at(data, at + 4)? as usize;
                let kind = u32_at(data, at + 8)?;
                let name_start = at + 12;
                let desc_start = name_start + namesz.next_multiple_of(4);
                let end = desc_start + descsz.next_multiple_of(4);
                if desc_start + descsz > data.len() {
                    return err("note runs past its segment");
                }
                let name = &data[name_start..name_start + namesz];
                notes.push(Note {
                    name: String::from_utf8_lossy(name.strip_suffix(&[0]).unwrap_or(name))
                        .into_owned(),
                    kind,
                    desc: data[desc_start..desc_start + descsz].to_vec(),
                });
                at = end;
            }
        }
        Ok(notes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a small ELF64 with the given segments' payloads and one named
    /// section, for tests (of this module and the PVH/config checks).
    pub(crate) fn build_elf(
        entry: u64,
        load: (u64, u32, &[u8]),
        note: Option<&[u8]>,
        section: Option<(&str, &[u8])>,
    ) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        let nph = 1 + usize::from(note.is_some());
        let phoff = 64;
        let data_off = phoff + 56 * nph;
        let mut payload = Vec::new();
        let load_off = data_off;
        payload.extend_from_slice(load.2);
        let note_off = data_off + payload.len();
        if let Some(n) = note {
            payload.extend_from_slice(n);
        }
        let sec_off = data_off + payload.len();
        let mut strtab = vec![0u8];
        let mut sec_name_off = 0;
        if let Some((name, bytes)) = section {
            payload.extend_from_slice(bytes);
            sec_name_off = strtab.len();
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
        }
        let shstr_name = strtab.len();
        strtab.extend_from_slice(b".shstrtab\0");
        let strtab_off = data_off + payload.len();
        payload.extend_from_slice(&strtab);
        let shoff = (data_off + payload.len()).next_multiple_of(8);
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[18..20].copy_from_slice(&62u16.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
        out[40..48].copy_from_slice(&(shoff as u64).to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(nph as u16).to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        let nsh = 2 + usize::from(section.is_some());
        out[60..62].copy_from_slice(&(nsh as u16).to_le_bytes());
        out[62..64].copy_from_slice(&((nsh - 1) as u16).to_le_bytes());
        let ph = |kind: u32, flags: u32, off: usize, addr: u64, size: usize| {
            let mut p = vec![0u8; 56];
            p[0..4].copy_from_slice(&kind.to_le_bytes());
            p[4..8].copy_from_slice(&flags.to_le_bytes());
            p[8..16].copy_from_slice(&(off as u64).to_le_bytes());
            p[16..24].copy_from_slice(&addr.to_le_bytes());
            p[24..32].copy_from_slice(&addr.to_le_bytes());
            p[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            p[40..48].copy_from_slice(&(size as u64).to_le_bytes());
            p
        };
        out.extend(ph(PT_LOAD, load.1, load_off, load.0, load.2.len()));
        if let Some(n) = note {
            out.extend(ph(PT_NOTE, 4, note_off, 0, n.len()));
        }
        out.extend(payload);
        out.resize(shoff, 0);
        let sh = |name: usize, kind: u32, off: usize, size: usize| {
            let mut s = vec![0u8; 64];
            s[0..4].copy_from_slice(&(name as u32).to_le_bytes());
            s[4..8].copy_from_slice(&kind.to_le_bytes());
            s[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            s[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            s
        };
        out.extend(sh(0, 0, 0, 0));
        if let Some((_, bytes)) = section {
            out.extend(sh(sec_name_off, 1, sec_off, bytes.len()));
        }
        out.extend(sh(shstr_name, 3, strtab_off, strtab.len()));
        out
    }

    pub(crate) fn note_bytes(name: &str, kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&((name.len() + 1) as u32).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&kind.to_le_bytes());
        n.extend_from_slice(name.as_bytes());
        n.push(0);
        n.resize(n.len().next_multiple_of(4), 0);
        n.extend_from_slice(desc);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    }

    #[test]
    fn parses_segments_notes_and_sections() {
        let note = note_bytes("Xen", 18, &0x100018u64.to_le_bytes());
        let elf = build_elf(
            0x100018,
            (0x100000, 5, &[0x90; 32]),
            Some(&note),
            Some((".ktest_config", b"timeout_secs\x0010\x00")),
        );
        let parsed = Elf::parse(&elf).unwrap();
        assert_eq!(parsed.entry, 0x100018);
        assert_eq!(parsed.segments.len(), 2);
        assert_eq!(parsed.segments[0].kind, PT_LOAD);
        let notes = parsed.notes().unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].name, "Xen");
        assert_eq!(notes[0].kind, 18);
        assert_eq!(
            parsed.section(".ktest_config").unwrap(),
            Some(b"timeout_secs\x0010\x00".as_slice())
        );
        assert_eq!(parsed.section(".nope").unwrap(), None);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(Elf::parse(b"not an elf").is_err());
        let elf = build_elf(0, (0x100000, 5, &[0; 8]), None, None);
        assert!(Elf::parse(&elf[..70]).is_err());
    }
}

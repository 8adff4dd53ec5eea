//! The parts of an ELF64 little-endian x86_64 image bootimage looks at:
//! program headers, notes and one section by name. The `object` crate does
//! the parsing (bounds, alignment, note padding); this module only picks
//! out what the PVH check and the test runner need and names the errors.

use std::fmt;

use object::LittleEndian;
use object::elf::{EM_X86_64, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};

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
pub const PT_LOAD: u32 = object::elf::PT_LOAD.0;

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

impl From<object::read::Error> for ElfError {
    fn from(e: object::read::Error) -> Self {
        ElfError(e.to_string())
    }
}

type Header = FileHeader64<LittleEndian>;

/// A parsed ELF64 image borrowing its bytes.
pub struct Elf<'a> {
    bytes: &'a [u8],
    header: &'a Header,
    /// Entry point.
    pub entry: u64,
    /// Segments.
    pub segments: Vec<Segment>,
}

impl<'a> Elf<'a> {
    /// Parses the headers of an ELF64 little-endian x86_64 file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        // `parse` checks the magic, class and version; the byte order and
        // machine are ours to check.
        let header = Header::parse(bytes)?;
        if !header.is_little_endian() {
            return Err(ElfError("not ELF64 little-endian".into()));
        }
        let endian = LittleEndian;
        if header.e_machine(endian) != EM_X86_64 {
            return Err(ElfError("not x86_64".into()));
        }
        let segments = header
            .program_headers(endian, bytes)?
            .iter()
            .map(|ph| Segment {
                kind: ph.p_type(endian).0,
                flags: ph.p_flags(endian).0,
                offset: ph.p_offset(endian),
                vaddr: ph.p_vaddr(endian),
                paddr: ph.p_paddr(endian),
                filesz: ph.p_filesz(endian),
                memsz: ph.p_memsz(endian),
            })
            .collect();
        Ok(Self {
            bytes,
            header,
            entry: header.e_entry(endian),
            segments,
        })
    }

    /// The contents of the section called `name`, if present.
    pub fn section(&self, name: &str) -> Result<Option<&'a [u8]>, ElfError> {
        let sections = self.header.sections(LittleEndian, self.bytes)?;
        match sections.section_by_name(LittleEndian, name.as_bytes()) {
            Some((_, section)) => Ok(Some(section.data(LittleEndian, self.bytes)?)),
            None => Ok(None),
        }
    }

    /// Every note in every PT_NOTE segment.
    pub fn notes(&self) -> Result<Vec<Note>, ElfError> {
        let mut notes = Vec::new();
        for ph in self.header.program_headers(LittleEndian, self.bytes)? {
            let Some(mut iter) = ph.notes(LittleEndian, self.bytes)? else {
                continue;
            };
            while let Some(note) = iter.next()? {
                notes.push(Note {
                    name: String::from_utf8_lossy(note.name()).into_owned(),
                    kind: note.n_type(LittleEndian).0,
                    desc: note.desc().to_vec(),
                });
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
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // ELFDATA2LSB
        out[6] = 1; // EV_CURRENT
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
            out.extend(ph(object::elf::PT_NOTE.0, 4, note_off, 0, n.len()));
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

//! Host unit tests of the kernel's pure modules: files under `kernel/src`
//! that touch no hardware and use no `crate::` paths, compiled here as they
//! are (the kernel itself only builds for x86_64-unknown-none). Their
//! `#[cfg(test)]` tests run as part of this test binary.
//!
//! - `pci/capability.rs`: the capability-list walk and the MSI-X layout.
//! - `interrupts/msi.rs`: the x86 MSI message encoding.
//! - `shell/parse.rs` and `shell/line.rs`: the serial shell's command
//!   parser and line editor.
//! - `hostlink/codec.rs` runs with `bootimage`'s own unit tests (the host
//!   agent uses it).

// The pure modules are `no_std` + `alloc` code.
extern crate alloc;

// Constants the kernel's MSI-X driver uses are dead code here.
#[allow(dead_code)]
#[path = "../../kernel/src/pci/capability.rs"]
mod capability;
#[path = "../../kernel/src/interrupts/msi.rs"]
mod msi;
// The kernel uses all of their API; the host tests only part of it.
#[allow(dead_code)]
#[path = "../../kernel/src/shell/line.rs"]
mod line;
#[allow(dead_code)]
#[path = "../../kernel/src/shell/parse.rs"]
mod parse;

/// The ivshmem-doorbell device QEMU 7.2 presents, as the kernel walks it:
/// MSI-X first in the list, table and PBA in BAR1.
#[test]
fn ivshmem_doorbell_msix_is_found_and_programmed_for_cpu_0() {
    let config = |offset: u8| -> u32 {
        match offset {
            0x04 => 0x0010_0007, // Status: capability list; Command: io, mem, master
            0x34 => 0x40,
            0x40 => 0x0000_0011, // MSI-X, end of list, 1 vector
            0x44 => 0x0000_0001, // table: BAR1 + 0
            0x48 => 0x0000_0801, // PBA: BAR1 + 0x800
            _ => 0,
        }
    };
    let cap = capability::capabilities(config)
        .find(capability::CAP_ID_MSIX)
        .expect("well-formed list")
        .expect("MSI-X present");
    let info = capability::MsixInfo::read(cap.offset, config).expect("valid BIRs");
    assert_eq!(
        (info.table_bar, info.table_offset, info.table_size),
        (1, 0, 1)
    );
    let message = msi::MsiMessage::fixed(0, 0x31).expect("a dynamic vector");
    assert_eq!(message.address as u32, 0xfee0_0000);
    assert_eq!(message.data & 0xff, 0x31);
}

/// The shell's promise: no byte sequence on the serial line makes it panic.
/// Every byte value after every editor state (plain, after ESC, inside a
/// CSI or SS3 sequence, after CR, on a full line), then long pseudo-random
/// sequences; each submitted line goes through the parser too.
#[test]
fn no_byte_sequence_panics_the_line_editor_or_the_parser() {
    const LIMIT: usize = 16;
    let prefixes: [&[u8]; 6] = [
        b"",
        b"\x1b",
        b"\x1b[1;",
        b"\x1bO",
        b"ls\r",
        b"0123456789abcdef",
    ];
    let mut submitted = Vec::new();
    let mut check = |editor: &mut line::LineEditor, byte: u8| {
        if let line::Edit::Submit(text) = editor.feed(byte) {
            let _ = parse::parse(&text);
            submitted.push(text);
        }
        assert!(editor.line().len() <= LIMIT, "the line grew past its limit");
        assert!(
            editor.line().is_ascii(),
            "a non-ASCII byte got into the line"
        );
    };
    for prefix in prefixes {
        for byte in 0..=u8::MAX {
            let mut editor = line::LineEditor::new(LIMIT);
            for &b in prefix {
                check(&mut editor, b);
            }
            check(&mut editor, byte);
        }
    }
    // xorshift64: reproducible noise, biased towards the bytes that matter.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let special = b"\r\n\x1b[O\"'\\ \x03\x08\x0c\x15\x17\x7f";
    let mut editor = line::LineEditor::new(LIMIT);
    for _ in 0..200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let byte = if state.is_multiple_of(3) {
            special[(state >> 8) as usize % special.len()]
        } else {
            (state >> 16) as u8
        };
        check(&mut editor, byte);
    }
    assert!(submitted.len() > 1000, "the noise submitted few lines");
}

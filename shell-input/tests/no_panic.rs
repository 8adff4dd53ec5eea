//! The shell reads a serial line that anything may write to.

use shell_input::{line, parse};

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

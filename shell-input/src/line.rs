//! The shell's line editor: turns the bytes a terminal sends into edits of
//! the line being typed, and says what to echo. Basic on purpose: typing
//! at the end, Backspace/DEL, Ctrl-U (erase the line), Ctrl-W (erase the
//! last word), Ctrl-C (drop the line), Ctrl-L (redraw), Enter (`\r`, `\n`
//! or `\r\n`). Escape sequences (arrow keys, function keys) are consumed
//! and ignored, as are other control bytes and non-ASCII bytes. Past the
//! limit, characters are refused (bell) and counted, and Enter then drops
//! the whole line ([`Edit::TooLong`]) rather than submit a truncated one.
//!
//! Pure code (only `alloc`): the host runs its tests.

use alloc::string::String;

/// What the terminal should do after a byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Nothing to show (an ignored byte, or part of an escape sequence).
    None,
    /// This character was added at the end: echo it.
    Echo(char),
    /// This many characters were erased from the end: back over them.
    Erase(usize),
    /// The line is full; the byte was refused (ring the bell).
    Refused,
    /// Enter: here is the line (the editor is empty again).
    Submit(String),
    /// Enter after characters were refused: the line as typed does not fit,
    /// so it is dropped whole (running a truncated line would run
    /// something the user did not type). The editor is empty again.
    TooLong {
        /// Characters typed on the line, the refused ones included.
        typed: usize,
        /// The editor's limit.
        limit: usize,
    },
    /// Ctrl-C: the line was dropped.
    Cancel,
    /// Ctrl-L: show the prompt and the line again.
    Redraw,
}

/// Where the editor is within an escape sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// Not in one.
    No,
    /// After ESC.
    Started,
    /// After `ESC [`: parameters until a final byte (0x40..=0x7e).
    Csi,
    /// After `ESC O`: one more byte.
    Ss3,
}

/// Ctrl-C: drops the line being typed; abandons a waiting command.
pub const CTRL_C: u8 = 0x03;
const BACKSPACE: u8 = 0x08;
const CTRL_L: u8 = 0x0c;
const CTRL_U: u8 = 0x15;
const CTRL_W: u8 = 0x17;
const ESC: u8 = 0x1b;
const DEL: u8 = 0x7f;

/// The line being typed.
#[derive(Clone, Debug)]
pub struct LineEditor {
    line: String,
    limit: usize,
    /// Characters refused since the line filled up (0: the line is whole).
    refused: usize,
    escape: Escape,
    /// The previous byte ended a line with `\r`: a `\n` now is its pair.
    after_cr: bool,
}

impl LineEditor {
    /// An empty editor for lines of at most `limit` characters.
    pub fn new(limit: usize) -> LineEditor {
        LineEditor {
            line: String::new(),
            limit,
            refused: 0,
            escape: Escape::No,
            after_cr: false,
        }
    }

    /// The line typed so far.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Takes one byte from the terminal.
    pub fn feed(&mut self, byte: u8) -> Edit {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match self.escape {
            Escape::No => {}
            Escape::Started => {
                self.escape = match byte {
                    b'[' => Escape::Csi,
                    b'O' => Escape::Ss3,
                    _ => Escape::No, // ESC + one byte (Alt-x): ignored.
                };
                return Edit::None;
            }
            Escape::Csi => {
                match byte {
                    0x40..=0x7e => self.escape = Escape::No,
                    0x20..=0x3f => {}
                    // Not a CSI byte: the sequence was cut; take this
                    // byte as itself.
                    _ => {
                        self.escape = Escape::No;
                        return self.feed(byte);
                    }
                }
                return Edit::None;
            }
            Escape::Ss3 => {
                self.escape = Escape::No;
                return Edit::None;
            }
        }
        match byte {
            b'\n' if after_cr => Edit::None,
            b'\r' | b'\n' => {
                self.after_cr = byte == b'\r';
                let line = core::mem::take(&mut self.line);
                match core::mem::take(&mut self.refused) {
                    0 => Edit::Submit(line),
                    refused => Edit::TooLong {
                        typed: line.len() + refused,
                        limit: self.limit,
                    },
                }
            }
            BACKSPACE | DEL => self.erase(1),
            CTRL_U => self.erase(self.line.len() + self.refused),
            CTRL_W => {
                // The refused tail was not kept, so the word it ends in is
                // unknown: forget it with the last visible word.
                self.refused = 0;
                let kept = self.line.trim_end_matches(' ');
                let word_start = kept.rfind(' ').map_or(0, |i| i + 1);
                self.erase(self.line.len() - word_start)
            }
            CTRL_C => {
                self.line.clear();
                self.refused = 0;
                Edit::Cancel
            }
            CTRL_L => Edit::Redraw,
            ESC => {
                self.escape = Escape::Started;
                Edit::None
            }
            b'\t' => self.insert(' '),
            0x20..=0x7e => self.insert(char::from(byte)),
            _ => Edit::None, // other control bytes, non-ASCII
        }
    }

    fn insert(&mut self, c: char) -> Edit {
        if self.line.len() >= self.limit {
            self.refused = self.refused.saturating_add(1);
            return Edit::Refused;
        }
        self.line.push(c);
        Edit::Echo(c)
    }

    /// Erases up to `n` characters from the end (the line is ASCII).
    /// Erasing refused characters costs nothing on screen (they were never
    /// echoed) but still counts: the user takes back what did not fit.
    fn erase(&mut self, n: usize) -> Edit {
        let unseen = n.min(self.refused);
        self.refused -= unseen;
        let n = n - unseen;
        let n = n.min(self.line.len());
        self.line.truncate(self.line.len() - n);
        if n == 0 { Edit::None } else { Edit::Erase(n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn feed_all(editor: &mut LineEditor, bytes: &[u8]) -> Vec<Edit> {
        bytes.iter().map(|&b| editor.feed(b)).collect()
    }

    fn submitted(bytes: &[u8]) -> Vec<String> {
        let mut editor = LineEditor::new(80);
        feed_all(&mut editor, bytes)
            .into_iter()
            .filter_map(|e| match e {
                Edit::Submit(line) => Some(line),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn typing_echoes_and_enter_submits() {
        let mut e = LineEditor::new(80);
        assert_eq!(
            feed_all(&mut e, b"ls\r"),
            [Edit::Echo('l'), Edit::Echo('s'), Edit::Submit("ls".into())]
        );
        assert_eq!(e.line(), "");
    }

    #[test]
    fn crlf_lf_and_cr_each_end_one_line() {
        assert_eq!(submitted(b"a\r\nb\nc\r\r\n"), ["a", "b", "c", ""]);
    }

    #[test]
    fn backspace_and_del_erase_one_character() {
        let mut e = LineEditor::new(80);
        feed_all(&mut e, b"reax");
        assert_eq!(e.feed(0x7f), Edit::Erase(1));
        assert_eq!(e.feed(0x08), Edit::Erase(1));
        assert_eq!(e.line(), "re");
        assert_eq!(submitted(b"reax\x7f\x08ad\r"), ["read"]);
        let mut empty = LineEditor::new(80);
        assert_eq!(empty.feed(0x7f), Edit::None, "nothing to erase");
    }

    #[test]
    fn ctrl_u_and_ctrl_w_erase_the_line_and_the_last_word() {
        let mut e = LineEditor::new(80);
        feed_all(&mut e, b"write data/x  ");
        assert_eq!(e.feed(CTRL_W), Edit::Erase(8));
        assert_eq!(e.line(), "write ");
        assert_eq!(e.feed(CTRL_U), Edit::Erase(6));
        assert_eq!(e.line(), "");
        assert_eq!(submitted(b"junk\x15ls\r"), ["ls"]);
    }

    #[test]
    fn escape_sequences_are_ignored() {
        // Up arrow, F5, Home (SS3), Alt-x, then a cut sequence: ESC [ 1 \r.
        assert_eq!(submitted(b"l\x1b[As\x1b[15~\x1bOH\x1bx\r"), ["ls"]);
        assert_eq!(submitted(b"ab\x1b[1\r"), ["ab"]);
    }

    #[test]
    fn control_and_non_ascii_bytes_are_ignored_and_tab_is_a_blank() {
        assert_eq!(submitted(b"l\x01\x02s\xc3\xa9\ta\r"), ["ls a"]);
    }

    #[test]
    fn ctrl_c_drops_the_line_and_ctrl_l_redraws() {
        let mut e = LineEditor::new(80);
        feed_all(&mut e, b"rm -rf");
        assert_eq!(e.feed(CTRL_L), Edit::Redraw);
        assert_eq!(e.line(), "rm -rf");
        assert_eq!(e.feed(CTRL_C), Edit::Cancel);
        assert_eq!(e.line(), "");
    }

    #[test]
    fn a_full_line_refuses_more() {
        let mut e = LineEditor::new(3);
        assert_eq!(feed_all(&mut e, b"abcd").last(), Some(&Edit::Refused));
        assert_eq!(e.line(), "abc");
    }

    #[test]
    fn a_line_longer_than_the_limit_is_not_submitted_at_all() {
        let mut e = LineEditor::new(3);
        assert_eq!(
            feed_all(&mut e, b"abcdef\r").last(),
            Some(&Edit::TooLong { typed: 6, limit: 3 })
        );
        assert_eq!(e.line(), "");
        assert_eq!(
            submitted(
                &[b'x'; 200]
                    .iter()
                    .chain(b"\rls\r")
                    .copied()
                    .collect::<Vec<u8>>()
            ),
            ["ls"]
        );
    }

    #[test]
    fn erasing_what_did_not_fit_makes_the_line_whole_again() {
        let mut e = LineEditor::new(3);
        feed_all(&mut e, b"abcde");
        assert_eq!(e.feed(0x7f), Edit::None, "the refused 'e' was never shown");
        assert_eq!(e.feed(0x7f), Edit::None);
        assert_eq!(e.feed(0x7f), Edit::Erase(1));
        assert_eq!(e.feed(b'\r'), Edit::Submit("ab".into()));
        feed_all(&mut e, b"abcdef\x03");
        assert_eq!(
            e.feed(b'\r'),
            Edit::Submit("".into()),
            "Ctrl-C forgets the overflow"
        );
    }
}

//! The shell's terminal on COM1: the prompt and the line being typed, kept
//! here so that output arriving meanwhile (watch events, log lines) does
//! not leave a half-typed line garbled.
//!
//! - [`print_event`] (any thread; watch callbacks) clears the line being
//!   typed, prints its text, then shows the prompt and the typed text again.
//! - Log lines: the logger's hooks ([`install_log_redraw`]) clear the line
//!   being typed before a log line is written and show the prompt and
//!   typed text again after it.
//!
//! Lock: `TERMINAL` (an IRQ-safe spin lock) guards the line state and is
//! held while writing to the port, so echo and event output never
//! interleave; it is taken before the serial port's own lock (a leaf). The
//! logger's hooks (interrupts disabled, maybe in an interrupt handler)
//! only try-lock it: a busy terminal leaves that log line unguarded rather
//! than wait.

use alloc::string::String;

use crate::serial;
use crate::spinlock::SpinLock;

/// Erases the terminal line the cursor is on (CR, then "erase to end").
const CLEAR_LINE: &[u8] = b"\r\x1b[K";

struct LineState {
    /// Shown before the typed text.
    prompt: String,
    /// What the user typed so far (mirrors the line editor).
    typed: String,
    /// A line is being edited (the prompt is on screen).
    editing: bool,
}

/// The terminal's line state; held while writing.
static TERMINAL: SpinLock<LineState> = SpinLock::new(LineState {
    prompt: String::new(),
    typed: String::new(),
    editing: false,
});

/// Shows `prompt` and starts a line.
pub fn begin_line(prompt: &str) {
    let mut t = TERMINAL.lock();
    t.prompt.clear();
    t.prompt.push_str(prompt);
    t.typed.clear();
    t.editing = true;
    serial::write_bytes(prompt.as_bytes());
}

/// Echoes a typed character.
pub fn echo(c: char) {
    let mut t = TERMINAL.lock();
    t.typed.push(c);
    let mut buf = [0u8; 4];
    serial::write_bytes(c.encode_utf8(&mut buf).as_bytes());
}

/// Erases `n` characters before the cursor.
pub fn erase(n: usize) {
    let mut t = TERMINAL.lock();
    let keep = t.typed.len().saturating_sub(n);
    t.typed.truncate(keep);
    for _ in 0..n {
        serial::write_bytes(b"\x08 \x08");
    }
}

/// Rings the terminal's bell (a refused key).
pub fn bell() {
    let _t = TERMINAL.lock();
    serial::write_bytes(b"\x07");
}

/// Shows the prompt and the typed text again on a fresh line (Ctrl-L).
pub fn redraw() {
    let t = TERMINAL.lock();
    serial::write_bytes(CLEAR_LINE);
    serial::write_bytes(t.prompt.as_bytes());
    serial::write_bytes(t.typed.as_bytes());
}

/// Ends the line being edited: moves to the next line (`marker`, e.g.
/// `^C`, is shown first).
pub fn end_line(marker: &str) {
    let mut t = TERMINAL.lock();
    t.editing = false;
    t.typed.clear();
    serial::write_bytes(marker.as_bytes());
    serial::write_bytes(b"\n");
}

/// Prints a command's output (no line is being edited then).
pub fn print(text: &str) {
    let _t = TERMINAL.lock();
    serial::write_bytes(text.as_bytes());
}

/// Prints `line` (without its newline) from any thread, keeping the line
/// being typed intact: it is cleared, the text printed, and the prompt and
/// typed text shown again below.
pub fn print_event(line: &str) {
    let t = TERMINAL.lock();
    if t.editing {
        serial::write_bytes(CLEAR_LINE);
    }
    serial::write_bytes(line.as_bytes());
    serial::write_bytes(b"\n");
    if t.editing {
        serial::write_bytes(t.prompt.as_bytes());
        serial::write_bytes(t.typed.as_bytes());
    }
}

/// Before each log line: clears the line being edited, if any.
fn clear_before_log() {
    if let Some(t) = TERMINAL.try_lock()
        && t.editing
    {
        serial::write_bytes(CLEAR_LINE);
    }
}

/// After each log line: shows the prompt and typed text again, if a line
/// is being edited.
fn redraw_after_log(_line: &str) {
    if let Some(t) = TERMINAL.try_lock()
        && t.editing
    {
        serial::write_bytes(t.prompt.as_bytes());
        serial::write_bytes(t.typed.as_bytes());
    }
}

/// Has the logger clear the line being typed before each log line and
/// show it again after. Once per kernel; returns `false` if the logger's
/// hooks were taken.
pub fn install_log_redraw() -> bool {
    static INSTALLED: spin::Once<bool> = spin::Once::new();
    *INSTALLED.call_once(|| {
        crate::logger::set_before_line(clear_before_log)
            && crate::logger::add_sink(redraw_after_log)
    })
}

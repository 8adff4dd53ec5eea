//! The serial shell: a small interactive view of the guest's xenstore, its
//! XenBus devices and services, on COM1.
//!
//! ```text
//! dom1> write data/motd "hello world"
//! dom1> ls data
//! motd = "hello world"
//! dom1> watch control
//! watch 1 on control
//! [watch 1] control
//! ```
//!
//! Relative paths are under our home (`/local/domain/<domid>`), as the
//! xenstore protocol resolves them. Parsing ([`parse`]) and line editing
//! ([`mod@line`]) are pure modules with host tests; [`terminal`] keeps watch
//! events and log lines from garbling the line being typed; executing
//! lives in `exec`.
//!
//! The shell never panics on input: bad lines and failed requests print
//! `error: ...` and the shell goes on.

mod exec;
pub mod line;
pub mod parse;
pub mod terminal;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use core::fmt;
use core::time::Duration;

use xenstore::Watch;

use crate::time::Instant;
use crate::xenstore::{KernelPlatform, StoreError, XsClient};
use line::{Edit, LineEditor};

/// Longest line the editor takes (xenstore payloads are at most 4096 bytes).
pub const LINE_LIMIT: usize = 1024;

/// Why [`Shell::serve_line`] returned without a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputError {
    /// No line ended before the timeout (the partial line was dropped).
    Timeout,
    /// Serial input is not enabled.
    NoInput,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no complete line before the timeout"),
            Self::NoInput => f.write_str("serial input is not enabled"),
        }
    }
}

/// A watch the shell registered.
struct ShellWatch {
    path: String,
    watch: Watch<KernelPlatform>,
}

/// The shell's state: its xenstore client, its watches, the line editor.
pub struct Shell {
    xs: XsClient,
    prompt: String,
    editor: LineEditor,
    /// By the number `watch` printed.
    watches: BTreeMap<u32, ShellWatch>,
    next_watch: u32,
}

impl Shell {
    /// A shell on the kernel's xenstore service. Errors: the service is not
    /// attached ([`crate::xenstore::init`] did not succeed).
    pub fn new() -> Result<Shell, StoreError> {
        let xs = crate::xenstore::client()?;
        let info = crate::xenstore::info().ok_or(StoreError::NotAttached)?;
        Ok(Shell {
            xs,
            prompt: format!("dom{}> ", info.domid),
            editor: LineEditor::new(LINE_LIMIT),
            watches: BTreeMap::new(),
            next_watch: 1,
        })
    }

    /// The prompt, e.g. `dom1> `.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// Serves the console forever: one line after another. If serial input
    /// is not available, says so and parks the thread.
    pub fn run(&mut self) -> ! {
        terminal::install_log_redraw();
        loop {
            if let Err(InputError::NoInput) = self.serve_line(None) {
                log::warn!("shell: serial input is not enabled; no shell on this console");
                loop {
                    crate::thread::sleep(Duration::from_secs(3600));
                }
            }
        }
    }

    /// Shows the prompt, reads one line with editing (up to `timeout`,
    /// `None`: forever), and executes it, printing its output or error.
    /// Returns after one line (Enter or Ctrl-C). Thread context.
    pub fn serve_line(&mut self, timeout: Option<Duration>) -> Result<(), InputError> {
        if !crate::serial::input_enabled() {
            return Err(InputError::NoInput);
        }
        terminal::begin_line(&self.prompt);
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let Some(byte) = crate::serial::read_byte(left) else {
                terminal::end_line("");
                self.editor = LineEditor::new(LINE_LIMIT);
                return Err(InputError::Timeout);
            };
            match self.editor.feed(byte) {
                Edit::None => {}
                Edit::Echo(c) => terminal::echo(c),
                Edit::Erase(n) => terminal::erase(n),
                Edit::Refused => terminal::bell(),
                Edit::Redraw => terminal::redraw(),
                Edit::Cancel => {
                    terminal::end_line("^C");
                    return Ok(());
                }
                Edit::Submit(line) => {
                    terminal::end_line("");
                    self.execute_line(&line);
                    return Ok(());
                }
                Edit::TooLong { typed, limit } => {
                    terminal::end_line("");
                    terminal::print(&format!(
                        "error: line too long ({typed} characters, at most {limit}); nothing was run\n"
                    ));
                    return Ok(());
                }
            }
        }
    }

    /// Parses and executes `line`, printing the output or `error: ...`.
    pub fn execute_line(&mut self, line: &str) {
        let output = match parse::parse(line) {
            Ok(None) => return,
            Ok(Some(command)) => self.execute(command),
            Err(e) => Err(exec::ShellError::Parse(e)),
        };
        match output {
            Ok(text) => terminal::print(&text),
            Err(e) => terminal::print(&format!("error: {e}\n")),
        }
    }
}

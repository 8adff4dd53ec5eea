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
//! `error: ...` and the shell goes on. A request to a daemon that does not
//! answer ends at the client's request timeout (30 s by default,
//! `xenstore.timeout=SECS` on the kernel command line); Ctrl-C abandons it
//! sooner. A line longer than [`LINE_LIMIT`] is refused whole.

mod exec;
mod files;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use xenstore::Watch;

use crate::spinlock::SpinLock;
use crate::terminal;
use crate::time::Instant;
use crate::xenstore_service::{KernelPlatform, StoreError, XsClient};
use shell_input::line::{self, Edit, LineEditor};
use shell_input::parse::{self, Command};

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
    /// Keys typed while a command ran, for the next line.
    typed_ahead: VecDeque<u8>,
}

impl Shell {
    /// A shell on the kernel's xenstore service. Errors: the service is not
    /// attached ([`crate::xenstore_service::init`] did not succeed).
    pub fn new() -> Result<Shell, StoreError> {
        let xs = crate::xenstore_service::client()?;
        let info = crate::xenstore_service::info().ok_or(StoreError::NotAttached)?;
        Ok(Shell {
            xs,
            prompt: format!("{}> ", info.domid),
            editor: LineEditor::new(LINE_LIMIT),
            watches: BTreeMap::new(),
            next_watch: 1,
            typed_ahead: VecDeque::new(),
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

    /// Runs a store request on a worker thread while watching the console
    /// for Ctrl-C, which abandons it: the shell goes on at once and the
    /// worker ends, its outcome unseen, when the request does (at the
    /// latest at the client's request timeout). Other keys typed meanwhile
    /// are kept for the next line.
    fn run_abandonable(&mut self, command: Command) -> Result<String, exec::ShellError> {
        type Outcome = Result<String, exec::ShellError>;
        let done: Arc<SpinLock<Option<Outcome>>> = Arc::new(SpinLock::new(None));
        let slot = Arc::clone(&done);
        let xs = self.xs.clone();
        let job = command.clone();
        let spawned = crate::thread::Builder::new("shell-request").spawn(move || {
            let outcome = exec::store_request(&xs, job);
            *slot.lock() = Some(outcome);
            crate::serial::wake_readers();
        });
        if spawned.is_err() {
            // No thread to spare: run it here, without Ctrl-C.
            return exec::store_request(&self.xs, command);
        }
        loop {
            if let Some(outcome) = done.lock().take() {
                return outcome;
            }
            let finished = &done;
            match crate::serial::read_byte_until(&mut || finished.lock().is_some()) {
                Some(line::CTRL_C) => return Err(exec::ShellError::Abandoned),
                Some(byte) => self.typed_ahead.push_back(byte),
                None => {}
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
            let next = self.typed_ahead.pop_front();
            let Some(byte) = next.or_else(|| crate::serial::read_byte(left)) else {
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
    /// A command that waits for the store can be abandoned with Ctrl-C.
    pub fn execute_line(&mut self, line: &str) {
        let output = match parse::parse(line) {
            Ok(None) => return,
            Ok(Some(command)) if exec::is_store_request(&command) => self.run_abandonable(command),
            Ok(Some(command)) => self.execute(command),
            Err(e) => Err(exec::ShellError::Parse(e)),
        };
        match output {
            Ok(text) => terminal::print(&text),
            Err(e) => terminal::print(&format!("error: {e}\n")),
        }
    }
}

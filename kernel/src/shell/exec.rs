//! Executing the shell's commands: each builds its whole output as text
//! (printed at once by the caller) or returns a typed [`ShellError`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use xenbus::services::PowerControl;
use xenbus::services::ServiceStatus;
use xenbus::{DeviceInfo, OtherendState, PowerError};
use xenstore::{Permissions, Store, XsError, path};

use super::{Shell, ShellWatch};
use crate::guest::KernelGuest;
use crate::terminal;
use crate::xenstore_service::XsClient;
use shell_input::parse::{COMMANDS, Command, ParseError, WatchTarget, command_help};

/// Why a command failed.
#[derive(Debug)]
pub enum ShellError {
    /// The line is not a command.
    Parse(ParseError),
    /// A xenstore request failed.
    Store(XsError),
    /// XenBus and the services are not running (their start failed).
    NoGuest,
    /// `unwatch` named no watch of the shell's.
    NoSuchWatch(WatchTarget),
    /// `vm-data KEY`: the host has not set it.
    NotSet(String),
    /// `help` about something that is not a command.
    NoHelp(String),
    /// `poweroff` failed.
    Power(PowerError),
    /// Ctrl-C while the command waited for the store.
    Abandoned,
    /// `files`, `cat`, `sum` or `rmfile` failed.
    Files(crate::fcopy::FilesError),
}

impl From<XsError> for ShellError {
    fn from(e: XsError) -> Self {
        Self::Store(e)
    }
}

/// A few words on a daemon error, before its code and context.
fn explain(e: &XsError) -> Option<&'static str> {
    e.code()?.meaning()
}

impl fmt::Display for ShellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse(e) => write!(f, "{e}"),
            Self::Store(e) => match explain(e) {
                Some(words) => write!(f, "{words} ({e})"),
                None => write!(f, "{e}"),
            },
            Self::NoGuest => {
                f.write_str("XenBus and the guest services are not running (see the boot log)")
            }
            Self::NoSuchWatch(WatchTarget::Id(id)) => {
                write!(f, "no watch number {id} (type 'watch' to list them)")
            }
            Self::NoSuchWatch(WatchTarget::Path(p)) => {
                write!(f, "no watch on {p:?} (type 'watch' to list them)")
            }
            Self::NotSet(key) => write!(f, "vm-data/{key} is not set"),
            Self::NoHelp(name) => write!(f, "no command {name:?}"),
            Self::Power(e) => write!(f, "poweroff {e}"),
            Self::Files(e) => write!(f, "{e}"),
            Self::Abandoned => f.write_str(
                "abandoned (Ctrl-C); the request may still complete, a write may still take effect",
            ),
        }
    }
}

type Output = Result<String, ShellError>;

/// Whether `command` only makes xenstore requests on the shell's client
/// (no shell state): such a command can run on a worker thread and be
/// abandoned with Ctrl-C while it waits.
pub(super) fn is_store_request(command: &Command) -> bool {
    matches!(
        command,
        Command::Ls(_)
            | Command::Read(_)
            | Command::Write { .. }
            | Command::Rm(_)
            | Command::Mkdir(_)
            | Command::Perms { .. }
    )
}

/// Runs a command for which [`is_store_request`] holds.
pub(super) fn store_request(xs: &XsClient, command: Command) -> Output {
    match command {
        Command::Ls(dir) => {
            let dir = match dir {
                Some(d) => d,
                None => crate::xenstore_service::info()
                    .map(|i| i.home)
                    .unwrap_or_default(),
            };
            ls(xs, &dir)
        }
        Command::Read(p) => Ok(format!("{}\n", shown(&xs.read(&p)?))),
        Command::Write { path, value } => xs
            .write(&path, &value)
            .map(|()| String::new())
            .map_err(Into::into),
        Command::Rm(p) => xs.rm(&p).map(|()| String::new()).map_err(Into::into),
        Command::Mkdir(p) => xs.mkdir(&p).map(|()| String::new()).map_err(Into::into),
        Command::Perms { path, set: None } => {
            let perms = xs.get_permissions(&path)?;
            let words: Vec<String> = perms.entries().map(|g| format!("{g}")).collect();
            Ok(format!("{}\n", words.join(" ")))
        }
        Command::Perms {
            path,
            set: Some(words),
        } => {
            // The parser checked each word.
            let perms = Permissions::from_entries(words.iter().map(|w| w.as_bytes()))
                .ok_or_else(|| ShellError::Parse(ParseError::BadPermission(words.join(" "))))?;
            xs.set_permissions(&path, &perms)?;
            Ok(String::new())
        }
        other => unreachable_command(other),
    }
}

/// A command [`store_request`] was not made for: a shell bug, reported as
/// an error rather than a panic (the shell never panics on input).
fn unreachable_command(command: Command) -> Output {
    Err(ShellError::NoHelp(format!(
        "internal: {command:?} is not a store request"
    )))
}

/// `name = "value"` for each child of `dir`, values read pipelined.
fn ls(xs: &XsClient, dir: &str) -> Output {
    let children = xs.directory(dir)?;
    if children.is_empty() {
        return Ok(String::from("(no children)\n"));
    }
    let paths: Vec<String> = children.iter().map(|c| path::join(dir, c)).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut out = String::new();
    for (child, value) in children.iter().zip(xs.read_many(&refs)) {
        let _ = match value {
            Ok(v) => writeln!(out, "{child} = \"{}\"", quoted(&v)),
            Err(e) => writeln!(out, "{child}  (unreadable: {e})"),
        };
    }
    Ok(out)
}

/// A value as text: as is when it is printable, escaped otherwise.
fn shown(value: &[u8]) -> String {
    match core::str::from_utf8(value) {
        Ok(text) if !text.chars().any(char::is_control) => String::from(text),
        _ => String::from_utf8_lossy(value).escape_debug().collect(),
    }
}

/// A value for inside double quotes (`"`, `\` and non-printables escaped).
fn quoted(value: &[u8]) -> String {
    String::from_utf8_lossy(value).escape_debug().collect()
}

fn guest() -> Result<&'static KernelGuest, ShellError> {
    crate::guest::guest().ok_or(ShellError::NoGuest)
}

impl Shell {
    pub(super) fn execute(&mut self, command: Command) -> Output {
        match command {
            Command::Help(topic) => help(topic.as_deref()),
            command @ (Command::Ls(_)
            | Command::Read(_)
            | Command::Write { .. }
            | Command::Rm(_)
            | Command::Mkdir(_)
            | Command::Perms { .. }) => store_request(&self.xs, command),
            Command::Watch(None) => Ok(self.list_watches()),
            Command::Watch(Some(p)) => self.watch(p),
            Command::Unwatch(target) => self.unwatch(target),
            Command::Devices => devices(guest()?),
            Command::Services => Ok(services(guest()?)),
            Command::VmData(key) => vm_data(guest()?, key),
            Command::Files => super::files::list().map_err(ShellError::Files),
            Command::Cat(path) => super::files::cat(&path).map_err(ShellError::Files),
            Command::Sum(path) => super::files::sum(&path).map_err(ShellError::Files),
            Command::RmFile(path) => super::files::remove(&path).map_err(ShellError::Files),
            Command::Poweroff => {
                let power = crate::guest::power().ok_or(ShellError::NoGuest)?;
                terminal::print("powering off\n");
                power
                    .poweroff()
                    .map(|()| String::new())
                    .map_err(ShellError::Power)
            }
        }
    }

    fn watch(&mut self, path: String) -> Output {
        let id = self.next_watch;
        let watch = self.xs.watch(&path, move |event: &xenstore::WatchEvent| {
            terminal::print_event(&format!(
                "[watch {id}] {}",
                event.path().unwrap_or("(lost events)")
            ));
        })?;
        self.next_watch += 1;
        self.watches.insert(
            id,
            ShellWatch {
                path: path.clone(),
                watch,
            },
        );
        Ok(format!("watch {id} on {path}\n"))
    }

    fn unwatch(&mut self, target: WatchTarget) -> Output {
        let id = match &target {
            WatchTarget::Id(id) => Some(*id).filter(|id| self.watches.contains_key(id)),
            WatchTarget::Path(p) => self
                .watches
                .iter()
                .find(|(_, w)| &w.path == p)
                .map(|(id, _)| *id),
        };
        let Some(w) = id.and_then(|id| self.watches.remove(&id)) else {
            return Err(ShellError::NoSuchWatch(target));
        };
        // Removed locally even if the daemon cannot be told.
        w.watch.unwatch()?;
        Ok(format!(
            "unwatched {} ({})\n",
            id.unwrap_or_default(),
            w.path
        ))
    }

    fn list_watches(&self) -> String {
        if self.watches.is_empty() {
            return String::from("no watches\n");
        }
        let mut out = String::new();
        for (id, w) in &self.watches {
            let _ = writeln!(out, "{id:>3}  {}", w.path);
        }
        out
    }
}

fn help(topic: Option<&str>) -> Output {
    let mut out = String::new();
    match topic {
        Some(name) => {
            let c = command_help(name).ok_or_else(|| ShellError::NoHelp(String::from(name)))?;
            let _ = writeln!(out, "usage: {}\n  {}", c.usage, c.summary);
        }
        None => {
            for c in COMMANDS {
                let _ = writeln!(out, "  {:<22} {}", c.usage, c.summary);
            }
            out.push_str("Relative paths are under our home. Quote values with blanks: write data/x \"a b\"\n");
        }
    }
    Ok(out)
}

fn otherend_state(state: &Option<OtherendState>) -> String {
    match state {
        Some(OtherendState::Known(s)) => String::from(s.name()),
        Some(other) => format!("{other}"),
        None => String::from("-"),
    }
}

fn devices(guest: &KernelGuest) -> Output {
    let devices: Vec<DeviceInfo> = guest.bus().devices();
    let mut out = String::new();
    if devices.is_empty() {
        out.push_str("no devices under device/\n");
    } else {
        let _ = writeln!(
            out,
            "{:<16} {:<14} {:<42} {:<14} DRIVER",
            "DEVICE", "STATE", "BACKEND", "BACKEND STATE"
        );
    }
    for d in &devices {
        let backend = d
            .otherend
            .as_ref()
            .map_or(String::from("-"), |o| format!("{} ({})", o.path, o.id));
        let _ = writeln!(
            out,
            "{:<16} {:<14} {:<42} {:<14} {}",
            d.nodename,
            d.state.name(),
            backend,
            otherend_state(&d.otherend_state),
            d.driver.as_deref().unwrap_or("(none)")
        );
        if let Some(e) = &d.last_error {
            let _ = writeln!(out, "  last error: {e}");
        }
    }
    let (problems, dropped) = guest.bus().problems();
    for (node, e) in &problems {
        let _ = writeln!(out, "problem: {node}: {e}");
    }
    if dropped > 0 {
        let _ = writeln!(out, "({dropped} older problems dropped)");
    }
    Ok(out)
}

fn service_line(out: &mut String, status: &ServiceStatus) {
    let _ = writeln!(
        out,
        "{:<9} {:<16} {:>7} {:>8} {:>9} {:>6}  {}",
        status.name,
        format!("{:?}", status.state),
        status.handled,
        status.deferred,
        status.timed_out,
        status.failed,
        status.last_request.as_deref().unwrap_or("-")
    );
    if let Some(e) = &status.last_error {
        let _ = writeln!(out, "  last error: {e}");
    }
}

fn services(guest: &KernelGuest) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9} {:<16} {:>7} {:>8} {:>9} {:>6}  LAST REQUEST",
        "SERVICE", "STATE", "HANDLED", "DEFERRED", "TIMED-OUT", "FAILED"
    );
    service_line(&mut out, &guest.control().status());
    service_line(&mut out, &guest.data().status());
    service_line(&mut out, &guest.vm_data().status());
    out
}

fn vm_data(guest: &KernelGuest, key: Option<String>) -> Output {
    let pool = guest.vm_data();
    match key {
        Some(key) => {
            let value = pool.get(&key).ok_or(ShellError::NotSet(key))?;
            Ok(format!("{}\n", shown(&value)))
        }
        None => {
            let snapshot = pool.snapshot();
            if snapshot.is_empty() {
                return Ok(String::from("vm-data/ is empty\n"));
            }
            let mut out = String::new();
            for (key, value) in snapshot.iter() {
                let _ = writeln!(out, "{key} = \"{}\"", quoted(value));
            }
            Ok(out)
        }
    }
}

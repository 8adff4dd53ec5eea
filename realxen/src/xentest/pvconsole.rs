//! A guest's PV console as dom0 sees it: its output, read from the log
//! xenconsoled keeps (`/var/log/xen/console/guest-NAME.log`), a piece at a
//! time; and its input, written to the pty xenconsoled exposes for it
//! (the path is in the guest's `console/tty`), which is what `xl console`
//! itself attaches to. The pty was chosen because one `printf > $tty` from
//! the dom0 agent's shell is enough: `xl console` is an interactive client
//! that stays attached. (Not compared further: the pty worked first time.)

use std::time::Duration;

use super::guest::{Guest, TestResult, check, wait_until};
use crate::bed::Bed;

const QUICK: Duration = Duration::from_secs(60);
/// xenconsoled writes `console/tty` soon after the domain appears.
const TTY_LIMIT: Duration = Duration::from_secs(120);

/// Reads a guest's console output incrementally and types into it.
pub struct PvConsole {
    log: String,
    tty_node: String,
    /// The pty's path in dom0, once read from `tty_node`.
    tty: Option<String>,
    /// Bytes of the log already returned.
    offset: u64,
    /// The last line read so far, still without its end.
    partial: String,
}

/// Where a domain is, as `xl list` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// Listed and not crashed (running, blocked, or shutting down).
    Alive,
    /// Listed as crashed (`c`: it kept its crash with `on_crash = "preserve"`).
    Crashed,
    /// Not listed: gone (destroyed after poweroff, or never there).
    Gone,
}

impl PvConsole {
    pub fn new(guest: &Guest) -> PvConsole {
        PvConsole {
            log: format!("/var/log/xen/console/guest-{}.log", guest.name),
            tty_node: format!("{}/console/tty", guest.home()),
            tty: None,
            offset: 0,
            partial: String::new(),
        }
    }

    /// The console output written since the last call (lossy UTF-8).
    pub fn text(&mut self, bed: &mut Bed) -> Result<String, String> {
        // The size first, then exactly the bytes up to it: the offset counts
        // the file's bytes whatever the text decodes to.
        let script = format!(
            "f={log}; [ -f $f ] || {{ echo 0; exit 0; }}; n=$(wc -c < $f); echo $n; \
             tail -c +{from} $f | head -c $((n - {offset}))",
            log = self.log,
            from = self.offset + 1,
            offset = self.offset,
        );
        let out = check(bed, &script, QUICK)?;
        let (size, text) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
        let size: u64 = size
            .trim()
            .parse()
            .map_err(|_| format!("reading {}: size {size:?}", self.log))?;
        if size >= self.offset {
            self.offset = size;
        }
        Ok(text.to_string())
    }

    /// The complete lines written since the last call, without `\r\n`.
    pub fn lines(&mut self, bed: &mut Bed) -> Result<Vec<String>, String> {
        let text = self.text(bed)?;
        self.partial.push_str(&text);
        let mut lines: Vec<String> = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            lines.push(line.trim_end_matches(['\r', '\n']).to_string());
        }
        Ok(lines)
    }

    /// Types `text` into the console, as a user at `xl console` would.
    pub fn type_text(&mut self, bed: &mut Bed, text: &str) -> TestResult {
        let tty = match &self.tty {
            Some(tty) => tty.clone(),
            None => {
                let read = format!("xenstore-read {}", self.tty_node);
                wait_until(bed, &read, TTY_LIMIT)?;
                let tty = check(bed, &read, QUICK)?.stdout.trim().to_string();
                self.tty = Some(tty.clone());
                tty
            }
        };
        let script = format!("printf '%s' '{}' > '{tty}'", text.replace('\'', "'\\''"));
        check(bed, &script, QUICK).map(|_| ())
    }

    /// Types `line` and Enter (a carriage return, as a terminal sends).
    pub fn type_line(&mut self, bed: &mut Bed, line: &str) -> TestResult {
        self.type_text(bed, &format!("{line}\r"))
    }
}

/// The state of domain `name` in `xl list`.
pub fn domain_state(bed: &mut Bed, name: &str) -> Result<DomainState, String> {
    let out = bed
        .run(&format!("xl list {name}"), QUICK)
        .map_err(|e| format!("xl list {name}: {e}"))?;
    if !out.success() {
        return Ok(DomainState::Gone);
    }
    // "Name ID Mem VCPUs State Time(s)": the state is r b p s c d or '-'.
    let state = out
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(4))
        .ok_or_else(|| format!("xl list {name} printed {:?}", out.stdout))?;
    Ok(if state.contains('c') {
        DomainState::Crashed
    } else {
        DomainState::Alive
    })
}

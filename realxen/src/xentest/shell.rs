//! The kernel's shell on the Xen PV console (a PVH guest has no UART):
//! dom0 types into the console's pty, as `xl console` does, and reads the
//! answers from xenconsoled's log.

use std::time::{Duration, Instant};

use super::guest::{Guest, TestResult, wait_until};
use super::pvconsole::{DomainState, PvConsole, domain_state};
use crate::bed::Bed;

/// From `xl create` to the shell's banner, and for one answer: "never"
/// bounds (seconds idle, minutes with the cores shared).
const UP_LIMIT: Duration = Duration::from_secs(300);
const ANSWER_LIMIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(500);
/// What the kernel prints once its shell serves the console.
pub const SHELL_BANNER: &str = "xenstore shell on the console";

/// Creates the demo kernel as guest `name` (a crash is kept, so it cannot
/// pass for a poweroff) and waits for its shell.
pub fn create_shell_guest(bed: &mut Bed, name: &str) -> Result<(Guest, PvConsole), String> {
    let guest = Guest::create(bed, name, "on_crash = \"preserve\"\n")?;
    let mut console = PvConsole::new(&guest);
    if let Err(e) = wait_line(bed, &mut console, UP_LIMIT, |l| l.contains(SHELL_BANNER)) {
        guest.destroy(bed);
        return Err(e);
    }
    bed.progress.say(format!(
        "guest {} (domain {}) serves its shell on the PV console",
        guest.name, guest.domid
    ));
    Ok((guest, console))
}

/// Reads console lines until one satisfies `want`; returns the lines read.
pub fn wait_line(
    bed: &mut Bed,
    console: &mut PvConsole,
    limit: Duration,
    mut want: impl FnMut(&str) -> bool,
) -> Result<Vec<String>, String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        for line in console.lines(bed)? {
            let found = want(&line);
            seen.push(line);
            if found {
                return Ok(seen);
            }
        }
        if start.elapsed() > limit {
            return Err(format!(
                "the console did not show the expected line within {}s; it showed:\n{}",
                limit.as_secs(),
                seen.join("\n")
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Types `command` and returns the lines after its echo up to the next
/// prompt (`domN> `, which the log shows at the start of the next line).
pub fn ask(bed: &mut Bed, console: &mut PvConsole, command: &str) -> Result<Vec<String>, String> {
    console.type_line(bed, command)?;
    let echo = format!("> {command}");
    let mut echoed = false;
    let lines = wait_line(bed, console, ANSWER_LIMIT, |l| {
        if echoed {
            // The answer ends where the next output line is printed: the
            // answer lines come before the prompt that follows them.
            return true;
        }
        echoed = l.ends_with(&echo);
        false
    });
    // The line that ended the wait is the answer's first; read the rest.
    let lines = lines?;
    let at = lines
        .iter()
        .position(|l| l.ends_with(&echo))
        .map_or(lines.len(), |i| i + 1);
    Ok(lines[at..].to_vec())
}

pub fn shell_on_the_pv_console_answers_dom0(bed: &mut Bed) -> TestResult {
    let (guest, mut console) = create_shell_guest(bed, "rx-shell")?;
    let result = answers(bed, &guest, &mut console);
    guest.destroy(bed);
    result
}

fn answers(bed: &mut Bed, guest: &Guest, console: &mut PvConsole) -> TestResult {
    let domid = guest.domid.to_string();
    let answer = ask(bed, console, "read domid")?;
    if answer.first().map(|l| l.trim()) != Some(domid.as_str()) {
        return Err(format!(
            "`read domid` answered {answer:?}, not the domain id xl gave ({domid})"
        ));
    }
    let answer = ask(bed, console, "frobnicate")?;
    if !answer
        .first()
        .is_some_and(|l| l.contains("error: unknown command \"frobnicate\""))
    {
        return Err(format!("`frobnicate` answered {answer:?}"));
    }
    let answer = ask(bed, console, "read no-such-node")?;
    if !answer
        .first()
        .is_some_and(|l| l.starts_with("error: no such node"))
    {
        return Err(format!("`read no-such-node` answered {answer:?}"));
    }
    Ok(())
}

pub fn shell_poweroff_powers_the_domain_off(bed: &mut Bed) -> TestResult {
    let (guest, mut console) = create_shell_guest(bed, "rx-shell-off")?;
    let result = powers_off(bed, &guest, &mut console);
    guest.destroy(bed);
    result
}

fn powers_off(bed: &mut Bed, guest: &Guest, console: &mut PvConsole) -> TestResult {
    console.type_line(bed, "poweroff")?;
    wait_line(bed, console, ANSWER_LIMIT, |l| {
        l.contains("power: powering off")
    })?;
    wait_until(
        bed,
        &format!("! xl list {} >/dev/null 2>&1", guest.name),
        ANSWER_LIMIT,
    )
    .map_err(|e| {
        let state = domain_state(bed, &guest.name);
        format!("the domain did not go away after `poweroff` ({e}); xl list: {state:?}")
    })?;
    if domain_state(bed, &guest.name)? != DomainState::Gone {
        return Err("the domain is still listed".to_string());
    }
    Ok(())
}

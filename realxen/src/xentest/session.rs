//! `realxen shell` and `realxen demo` (`./run-qemu.sh --real-xen [--demo]`):
//! the kernel as a PVH guest of the real Xen, its shell on this terminal
//! through the guest's PV console.
//!
//! `shell` is line-based: the host terminal keeps its own line editing;
//! each line typed goes to the guest's console with Enter, and the guest's
//! output is shown as xenconsoled logs it (polled every half second).
//! `poweroff` in the guest's shell ends the run with status 0.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Duration;

use super::guest::{check, wait_until};
use super::pvconsole::{DomainState, PvConsole, domain_state};
use super::shell::{SHELL_BANNER, create_shell_guest};
use crate::bed::Bed;
use crate::cli::GuestArgs;
use crate::preload::Preload;
use crate::progress::Progress;

/// The guest's name in `xl list`.
const NAME: &str = "xenstore-rs";
const POLL: Duration = Duration::from_millis(500);
/// "Never" bounds for the demo's steps.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(300);

fn boot(args: GuestArgs) -> Result<Bed, String> {
    let GuestArgs {
        bed: mut options,
        kernel,
    } = args;
    let progress = Progress::start();
    let kernel = match kernel {
        Some(path) => path,
        None => super::build_kernel(&progress)?,
    };
    options.preload.push(Preload {
        host: kernel,
        dom0: super::guest::KERNEL_IN_DOM0.to_string(),
    });
    Bed::boot(&options, progress).map_err(|e| e.to_string())
}

/// Interactive: the guest's shell on this terminal until it powers off.
pub fn cmd_shell(args: GuestArgs) -> Result<ExitCode, String> {
    let mut bed = boot(args)?;
    let (guest, _) = create_shell_guest(&mut bed, NAME)?;
    bed.progress.say(format!(
        "attached to domain {} ({NAME})'s PV console: type 'help'; 'poweroff' ends the run; \
         from dom0 this is `xl console {NAME}`",
        guest.domid
    ));
    // From the start: the boot log, the banner and the prompt.
    let mut console = PvConsole::new(&guest);
    let typed = stdin_lines();
    let mut stdin_open = true;
    loop {
        let text = console.text(&mut bed)?;
        print!("{text}");
        let _ = std::io::stdout().flush();
        while stdin_open {
            match typed.try_recv() {
                Ok(line) => console.type_line(&mut bed, &line)?,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => stdin_open = false,
            }
        }
        match domain_state(&mut bed, &guest.name)? {
            DomainState::Alive => std::thread::sleep(POLL),
            DomainState::Gone => {
                print!("{}", console.text(&mut bed)?);
                bed.progress
                    .say(format!("domain {} powered off; stopping Xen", guest.domid));
                return Ok(ExitCode::SUCCESS);
            }
            DomainState::Crashed => {
                print!("{}", console.text(&mut bed)?);
                guest.destroy(&mut bed);
                return Err(format!("domain {} crashed", guest.domid));
            }
        }
    }
}

/// Lines typed on this terminal, read on a thread of their own.
fn stdin_lines() -> Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Scripted: boot, wait for the shell, then dom0 runs `xl shutdown -w`;
/// status 0 when the guest acknowledged and powered off.
pub fn cmd_demo(args: GuestArgs) -> Result<ExitCode, String> {
    let mut bed = boot(args)?;
    let (guest, mut console) = create_shell_guest(&mut bed, NAME)?;
    let mut shown = PvConsole::new(&guest);
    print!("{}", shown.text(&mut bed)?);
    println!();
    bed.progress.say(format!(
        "the shell is up ({SHELL_BANNER:?}); dom0 runs `xl shutdown -w {NAME}`"
    ));
    let secs = SHUTDOWN_LIMIT.as_secs();
    check(
        &mut bed,
        &format!("timeout {secs} xl shutdown -w {NAME}"),
        SHUTDOWN_LIMIT + Duration::from_secs(60),
    )?;
    print!("{}", shown.text(&mut bed)?);
    let _ = std::io::stdout().flush();
    let acknowledged = super::shell::wait_line(&mut bed, &mut console, SHUTDOWN_LIMIT, |l| {
        l.contains("power: powering off")
    });
    wait_until(
        &mut bed,
        &format!("! xl list {NAME} >/dev/null 2>&1"),
        SHUTDOWN_LIMIT,
    )?;
    match acknowledged {
        Ok(_) => {
            bed.progress.say(format!(
                "domain {} acknowledged control/shutdown and powered off",
                guest.domid
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(format!("the guest never said it powers off: {e}")),
    }
}

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

/// Where `--send` files wait in dom0.
const SEND_DIR: &str = "/tmp/send";
/// A "never" bound for one `--send` copy (~2-3 MiB/s on this bed).
const SEND_LIMIT: Duration = Duration::from_secs(600);

/// Boots the bed with the kernel, and with the `--send` files and
/// xen-fcopy if any; returns it with the files' names in dom0's
/// [`SEND_DIR`].
fn boot(args: GuestArgs) -> Result<(Bed, Vec<String>), String> {
    let GuestArgs {
        bed: mut options,
        kernel,
        send,
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
    let mut names = Vec::new();
    for file in send {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| {
                n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            })
            .ok_or_else(|| {
                format!(
                    "--send {}: want a file whose name is letters, digits, '.', '_' or '-'",
                    file.display()
                )
            })?;
        options.preload.push(Preload {
            host: file,
            dom0: format!("{SEND_DIR}/{name}"),
        });
        names.push(name);
    }
    if !names.is_empty() {
        let work = options.run_dir.join(format!("send-{}", std::process::id()));
        options
            .preload
            .extend(super::fcopy::preloads(&work, &progress)?);
    }
    let bed = Bed::boot(&options, progress).map_err(|e| e.to_string())?;
    Ok((bed, names))
}

/// Copies each `--send` file into the guest with xen-fcopy, as `/NAME`.
fn send_files(bed: &mut Bed, names: &[String]) -> Result<(), String> {
    for name in names {
        let out = check(
            bed,
            &format!("xen-fcopy send {NAME} {SEND_DIR}/{name} / --overwrite"),
            SEND_LIMIT,
        )?;
        bed.progress.say(format!(
            "{} (in the guest's shell: cat /{name}, sum /{name})",
            out.stdout.trim()
        ));
    }
    Ok(())
}

/// Interactive: the guest's shell on this terminal until it powers off.
pub fn cmd_shell(args: GuestArgs) -> Result<ExitCode, String> {
    let (mut bed, sends) = boot(args)?;
    let (guest, _) = create_shell_guest(&mut bed, NAME)?;
    send_files(&mut bed, &sends)?;
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
    let (mut bed, sends) = boot(args)?;
    let (guest, mut console) = create_shell_guest(&mut bed, NAME)?;
    send_files(&mut bed, &sends)?;
    for name in &sends {
        // What arrived is what dom0 has: the guest's sum against busybox's.
        let crc = check(&mut bed, &format!("crc32 <{SEND_DIR}/{name}"), SEND_LIMIT)?;
        let answer = super::shell::ask(&mut bed, &mut console, &format!("sum /{name}"))?;
        let first = answer.first().map(|l| l.trim()).unwrap_or_default();
        if !first.starts_with(&format!("{} ", crc.stdout.trim())) {
            return Err(format!(
                "`sum /{name}` answered {answer:?}; dom0's crc32 is {}",
                crc.stdout.trim()
            ));
        }
        bed.progress
            .say(format!("the guest's sum /{name} matches dom0's: {first}"));
    }
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

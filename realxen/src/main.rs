//! `realxen`: the real-Xen bed. Xen 4.17, a Linux dom0 and the real Xen
//! tools from Debian, booted in QEMU under TCG, with a command channel
//! into dom0; and the `xen` test step that runs the kernel as a PVH domU
//! created with `xl`.

mod agent;
mod bed;
mod cli;
mod console;
mod error;
mod fetch;
mod initramfs;
mod packages;
mod preload;
mod progress;
mod soak;
mod tool;
mod xentest;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bed::{Bed, BedOptions};
use cli::Command;
use packages::Lock;
use progress::Progress;

fn cmd_fetch(refresh: bool) -> Result<ExitCode, String> {
    let progress = Progress::start();
    let lock = if refresh {
        let lock = Lock::resolve().map_err(|e| e.to_string())?;
        lock.save().map_err(|e| e.to_string())?;
        progress.say(format!("re-resolved; wrote {}", Lock::path().display()));
        lock
    } else {
        Lock::load().map_err(|e| e.to_string())?
    };
    fetch::fetch_all(&lock, &progress).map_err(|e| e.to_string())?;
    for pin in &lock.pins {
        println!(
            "{} {} {}",
            pin.name,
            pin.version,
            fetch::extraction(pin).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(
    options: BedOptions,
    puts: Vec<(PathBuf, String)>,
    script: String,
) -> Result<ExitCode, String> {
    let puts = puts
        .into_iter()
        .map(|(host, dom0)| {
            let data =
                std::fs::read(&host).map_err(|e| format!("reading {}: {e}", host.display()))?;
            Ok((dom0, data))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut bed = Bed::boot(&options, Progress::start()).map_err(|e| e.to_string())?;
    for (path, data) in &puts {
        bed.put(path, data).map_err(|e| e.to_string())?;
        bed.progress
            .say(format!("put {path} ({} bytes)", data.len()));
    }
    let out = bed
        .run(&script, Duration::from_secs(600))
        .map_err(|e| e.to_string())?;
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    bed.progress.say(format!("exit status {}", out.status));
    Ok(ExitCode::from(u8::try_from(out.status).unwrap_or(1)))
}

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("realxen: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Fetch { refresh } => cmd_fetch(refresh),
        Command::Run { bed, puts, script } => cmd_run(bed, puts, script),
        Command::Soak { suite, count } => soak::cmd_soak(suite, count),
        Command::Test(suite) => xentest::cmd_test(suite),
        Command::Shell(guest) => xentest::cmd_shell(guest),
        Command::Demo(guest) => xentest::cmd_demo(guest),
        Command::Bench { bed, sections } => xentest::cmd_bench(bed, sections),
    };
    result.unwrap_or_else(|e| {
        eprintln!("realxen: {e}");
        ExitCode::from(2)
    })
}

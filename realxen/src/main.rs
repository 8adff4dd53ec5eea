//! `realxen`: the real-Xen bed. Xen 4.17, a Linux dom0 and the real Xen
//! tools from Debian, booted in QEMU under TCG, with a command channel
//! into dom0; and the `xen` test step that runs the kernel as a PVH domU
//! created with `xl`.

mod agent;
mod base64;
mod bed;
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

use std::process::ExitCode;
use std::time::Duration;

use bed::{Bed, BedOptions};
use packages::Lock;
use progress::Progress;

const USAGE: &str = "\
usage: realxen <command> [options]

commands:
  fetch [--refresh]       fetch the pinned packages (realxen/packages.lock) into .cache/realxen/;
                          --refresh re-resolves names and versions with apt-cache and rewrites the lock
  run [--put HOST:DOM0]... [--preload HOST:DOM0]... SCRIPT
                          boot Xen + dom0, copy each HOST file to DOM0 (a path in dom0), run SCRIPT
                          with sh in dom0, print its output; exit with its status. --put copies
                          through the command channel (~5 KB/s), --preload in the initramfs (any size)
  soak N [--filter TEXT] [--kernel FILE] [--daemon D]
                          boot N times, running the tests in each boot (the determinism check);
                          exit 0 only if every boot passed every test
  test [--filter TEXT] [--kernel FILE] [--daemon D]
                          the `xen` step: build the kernel (or take FILE); for each daemon boot
                          Xen + dom0 once and run each test on PVH guests made with xl;
                          libtest-style output
  shell [--kernel FILE]   boot Xen + dom0, create the kernel as a PVH guest and attach this terminal
                          to its shell on the PV console (line by line); `poweroff` ends it, status 0
                          (./run-qemu.sh --real-xen)
  demo [--kernel FILE]    the scripted version: once the shell is up, dom0 runs `xl shutdown -w`;
                          status 0 when the guest acknowledged and powered off

options (run, test, soak, shell, demo):
  --daemon D              dom0's xenstore daemon: xenstored (C) or oxenstored (OCaml); test and
                          soak also take `both`, their default (one boot each)
  --cpu MODEL             QEMU -cpu (default: bed::DEFAULT_CPU; $REALXEN_CPU also sets it)
  --smp N                 QEMU -smp (default 1)
  --xen-append TEXT       appended to Xen's command line
";

fn take_value(args: &mut Vec<String>, flag: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == flag) {
        Some(i) if i + 1 < args.len() => {
            let v = args.remove(i + 1);
            args.remove(i);
            Ok(Some(v))
        }
        Some(_) => Err(format!("{flag} needs a value")),
        None => Ok(None),
    }
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let found = args.iter().position(|a| a == flag);
    if let Some(i) = found {
        args.remove(i);
    }
    found.is_some()
}

fn bed_options(args: &mut Vec<String>) -> Result<BedOptions, String> {
    let mut options = BedOptions::default();
    if let Some(cpu) = take_value(args, "--cpu")? {
        options.cpu = cpu;
    }
    if let Some(append) = take_value(args, "--xen-append")? {
        options.xen_append = append;
    }
    if let Some(name) = take_value(args, "--daemon")? {
        options.daemon = bed::Daemon::parse(&name)
            .ok_or_else(|| format!("--daemon {name:?}: want xenstored or oxenstored"))?;
    }
    if let Some(smp) = take_value(args, "--smp")? {
        options.smp = smp
            .parse()
            .map_err(|_| format!("--smp {smp:?}: want a number"))?;
    }
    Ok(options)
}

fn cmd_fetch(mut args: Vec<String>) -> Result<ExitCode, String> {
    let progress = Progress::start();
    let lock = if take_flag(&mut args, "--refresh") {
        let lock = Lock::resolve().map_err(|e| e.to_string())?;
        lock.save().map_err(|e| e.to_string())?;
        progress.say(format!("re-resolved; wrote {}", Lock::path().display()));
        lock
    } else {
        Lock::load().map_err(|e| e.to_string())?
    };
    no_more(&args)?;
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

fn cmd_run(mut args: Vec<String>) -> Result<ExitCode, String> {
    let options = bed_options(&mut args)?;
    let mut options = options;
    while let Some(spec) = take_value(&mut args, "--preload")? {
        let (host, dom0) = spec
            .split_once(':')
            .ok_or_else(|| format!("--preload {spec:?}: want HOST:DOM0"))?;
        options.preload.push(preload::Preload {
            host: host.into(),
            dom0: dom0.to_string(),
        });
    }
    let mut puts = Vec::new();
    while let Some(spec) = take_value(&mut args, "--put")? {
        let (host, dom0) = spec
            .split_once(':')
            .ok_or_else(|| format!("--put {spec:?}: want HOST:DOM0"))?;
        let data = std::fs::read(host).map_err(|e| format!("reading {host}: {e}"))?;
        puts.push((dom0.to_string(), data));
    }
    let [script] = <[String; 1]>::try_from(args).map_err(|_| "run takes one SCRIPT".to_string())?;
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

fn no_more(args: &[String]) -> Result<(), String> {
    match args.first() {
        Some(extra) => Err(format!("unexpected argument {extra:?}\n\n{USAGE}")),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || matches!(args[0].as_str(), "-h" | "--help" | "help") {
        print!("{USAGE}");
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let command = args.remove(0);
    let result = match command.as_str() {
        "fetch" => cmd_fetch(args),
        "run" => cmd_run(args),
        "soak" => soak::cmd_soak(args),
        "test" => xentest::cmd_test(args),
        "shell" => xentest::cmd_shell(args),
        "demo" => xentest::cmd_demo(args),
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    result.unwrap_or_else(|e| {
        eprintln!("realxen: {e}");
        ExitCode::from(2)
    })
}

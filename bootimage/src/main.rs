//! `bootimage`: the host side of the kernel.
//!
//! - `build`: builds the kernel, checks its PVH note, writes `target/boot/`
//!   (kernel.elf, xl configs for PVH and HVM, a GRUB ISO if possible).
//! - `run`: builds and boots it in QEMU with the serial console on the
//!   terminal; returns when the kernel exits.
//! - `test`: builds every kernel test image (tests/), boots each in QEMU
//!   (in parallel, each with its time limit, fixtures and QEMU arguments
//!   from its `.ktest_config` section) and prints libtest-style results.
//! - `check FILE`: checks a kernel image's PVH note.
//! - `demo`: the scripted xenstore session of `./run-qemu.sh --demo`.
//! - `bench`: the benchmark images (`role = "bench"`), results as key=value.

mod agent;
mod artifacts;
mod bench;
mod cargo;
mod cli;
mod config;
mod demo;
mod elf;
mod fixtures;
mod plot;
mod process;
mod pvh;
mod qemu;
mod report;
mod runner;
mod xen_probe;

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use config::Role;
use qemu::Accel;
use report::ImageReport;

fn cmd_build(release: bool) -> Result<ExitCode, String> {
    runner::build_boot_dir(release)?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(args: cli::RunArgs) -> Result<ExitCode, String> {
    let cli::RunArgs {
        boot:
            cli::BootArgs {
                release,
                accel,
                append,
                memory,
                qemu_args: qemu_extra,
            },
        iso,
        xen,
        fixtures: fixture_names,
    } = args;
    let accel = if xen {
        let probe = xen_probe::probe();
        if !probe.supported() {
            eprintln!(
                "bootimage: cannot boot under QEMU's Xen emulation (-accel {}) on this host:\n{}",
                qemu::XEN_ACCEL,
                probe.render()
            );
            eprintln!(
                "bootimage: the same kernel boots on real Xen as a PVH guest with \
                 target/boot/kernel-pvh.cfg (xl create), and under plain QEMU with ./run-qemu.sh"
            );
            return Ok(ExitCode::from(3));
        }
        eprintln!("bootimage: Xen emulation available:\n{}", probe.render());
        Accel::KvmXen
    } else {
        runner::choose_accel(accel)?
    };
    let boot = runner::build_boot_dir(release)?;
    let workdir = std::env::temp_dir().join(format!("bootimage-run-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
    let mut fixtures = Vec::new();
    for name in &fixture_names {
        fixtures.push(fixtures::start(name, &workdir)?);
    }
    let vars: Vec<_> = fixtures.iter().flat_map(|f| f.vars()).collect();
    let mut extra: Vec<String> = fixtures.iter().flat_map(|f| f.qemu_args()).collect();
    extra.extend(fixtures::substitute(&qemu_extra, &vars)?);
    for banner in fixtures
        .iter()
        .map(|f| f.banner())
        .filter(|b| !b.is_empty())
    {
        eprintln!("bootimage: {banner}");
    }
    if let Some((_, socket)) = vars.iter().find(|(k, _)| k == "xenstore.socket") {
        eprintln!(
            "bootimage: the guest's xenstore is a real xenstored; from another terminal:\n  \
             XENSTORED_PATH={socket} xenstore-ls /local/domain/1\n  \
             XENSTORED_PATH={socket} xenstore-write /local/domain/1/control/shutdown poweroff"
        );
    }
    let target = match (&boot.iso, iso) {
        (Some(path), true) => qemu::Boot::Iso(path),
        (None, true) => return Err("no ISO was built (grub-mkrescue missing)".into()),
        (_, false) => qemu::Boot::Kernel(&boot.kernel),
    };
    let mut cmd = qemu::command(target, accel, &memory, &append, true);
    cmd.args(&extra);
    eprintln!("bootimage: booting with {accel} (Ctrl-A x quits QEMU)");
    let status = cmd.status().map_err(|e| {
        format!(
            "cannot start {}: {e} (install qemu-system-x86)",
            qemu::binary()
        )
    })?;
    drop(fixtures);
    let _ = std::fs::remove_dir_all(&workdir);
    Ok(match status.code() {
        Some(qemu::STATUS_SUCCESS) => {
            eprintln!("bootimage: kernel exited with success");
            ExitCode::SUCCESS
        }
        Some(qemu::STATUS_FAILURE) => {
            eprintln!("bootimage: kernel exited with failure");
            ExitCode::from(1)
        }
        Some(code) => {
            eprintln!("bootimage: QEMU exited with status {code}");
            ExitCode::from(u8::try_from(code).unwrap_or(1).max(1))
        }
        None => ExitCode::from(1),
    })
}

fn cmd_test(args: cli::TestArgs) -> Result<ExitCode, String> {
    let cli::TestArgs {
        release,
        verbose,
        accel,
        filter,
        jobs,
        repeat,
        images: wanted,
    } = args;
    let accel = runner::choose_accel(accel)?;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut images = cargo::build_test_images(release)?;
    images.sort_by(|a, b| a.name.cmp(&b.name));
    for name in &wanted {
        if !images.iter().any(|i| &i.name == name) {
            return Err(format!("no test image called {name:?}"));
        }
    }
    if !wanted.is_empty() {
        images.retain(|i| wanted.contains(&i.name));
    }
    // Benchmark images belong to `bootimage bench`. One whose config cannot
    // be read stays: run_image reports why.
    images.retain(|i| runner::image_config(&i.executable).map_or(true, |c| c.role == Role::Test));
    println!(
        "kernel test images: {} to boot with {accel}{}, {jobs} at a time",
        images.len(),
        if repeat > 1 {
            format!(", {repeat} times each")
        } else {
            String::new()
        }
    );
    let started = Instant::now();
    let boots: Vec<_> = (0..repeat).flat_map(|_| images.iter()).collect();
    let queue = Mutex::new(boots.into_iter());
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min((images.len() * repeat).max(1)) {
            s.spawn(|| {
                loop {
                    let Some(image) = queue.lock().expect("queue").next() else {
                        break;
                    };
                    let report =
                        runner::run_image(&image.name, &image.executable, accel, filter.as_deref());
                    print!("{}", report.render(&accel.to_string(), verbose));
                    reports.lock().expect("reports").push(report);
                }
            });
        }
    });
    let reports = reports.into_inner().expect("reports");
    let passed: usize = reports.iter().map(ImageReport::passed).sum();
    let failed: usize = reports.iter().map(ImageReport::failed).sum();
    let bad: Vec<&str> = reports
        .iter()
        .filter(|r| r.failed() > 0)
        .map(|r| r.image.as_str())
        .collect();
    println!(
        "kernel test images: {} booted in {:.1}s; tests: {passed} ok, {failed} failing{}",
        reports.len(),
        started.elapsed().as_secs_f64(),
        if bad.is_empty() {
            String::new()
        } else {
            format!(" (in {})", bad.join(", "))
        }
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_check(path: &str) -> Result<ExitCode, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let entry = pvh::check(&bytes).map_err(|e| format!("{path}: {e}"))?;
    let elf_entry = elf::Elf::parse(&bytes).map_err(|e| e.to_string())?.entry;
    println!(
        "{path}: Xen PVH entry (XEN_ELFNOTE_PHYS32_ENTRY) at {entry:#x}; ELF entry {elf_entry:#x}"
    );
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("bootimage: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        cli::Command::Help => {
            print!("{}", cli::USAGE);
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Build { release } => cmd_build(release),
        cli::Command::Run(args) => cmd_run(args),
        cli::Command::Test(args) => cmd_test(args),
        cli::Command::Check(path) => cmd_check(&path),
        cli::Command::Bench {
            debug,
            accel,
            images,
        } => bench::cmd_bench(debug, accel, &images),
        cli::Command::Demo(args) => demo::cmd_demo(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("bootimage: {e}");
        ExitCode::from(2)
    })
}

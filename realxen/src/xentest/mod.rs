//! `realxen test`: boots Xen + dom0 once, runs each test on guests it
//! creates with `xl`, and prints libtest-style lines (`test NAME ... ok`,
//! `test result: ...`) for run-tests.sh to count.

mod backends;
mod bench;
mod cases;
mod fcopy;
mod fpu;
mod guest;
mod hvm;
mod linux_guest;
mod parallel;
mod pvconsole;
mod session;
mod shell;
mod suspend;
mod test_images;
mod vchan;
mod xsbench;

pub use bench::cmd_bench;
pub use session::{cmd_demo, cmd_shell};

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::bed::{Bed, BedOptions, Daemon};
use crate::cli::SuiteArgs;
use crate::preload::Preload;
use crate::progress::Progress;

/// The last test: the bed itself stayed sound while the others ran.
const BED_SOUND: &str = "xen::bed_no_dom0_process_crashed";

pub fn cmd_test(suite: SuiteArgs) -> Result<ExitCode, String> {
    if suite.daemons.len() > 1 {
        // One bed per daemon, side by side: build the kernel once for both.
        let kernel = match &suite.kernel {
            Some(path) => path.clone(),
            None => build_kernel(&Progress::start())?,
        };
        let mut args = suite.bed_args.clone();
        if let Some(filter) = &suite.filter {
            args.extend(["--filter".to_string(), filter.clone()]);
        }
        return Ok(if parallel::run(&args, &kernel, &suite.daemons)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let daemons = suite.daemons.clone();
    let filter = suite.filter.clone();
    let options = suite_options(suite)?;
    Ok(if run_suites(&options, &daemons, filter.as_deref()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The bed options of `suite`, with what the tests need preloaded: the
/// kernel (`--kernel FILE`, else built now) and the FPU check's files.
pub fn suite_options(suite: SuiteArgs) -> Result<BedOptions, String> {
    let SuiteArgs {
        bed: mut options,
        kernel,
        ..
    } = suite;
    let progress = Progress::start();
    let kernel = match kernel {
        Some(path) => path,
        None => build_kernel(&progress)?,
    };
    options.preload.extend(hvm::preloads(&kernel));
    options.preload.push(Preload {
        host: kernel,
        dom0: guest::KERNEL_IN_DOM0.to_string(),
    });
    let work = options.run_dir.join(format!("fpu-{}", std::process::id()));
    options
        .preload
        .extend(fpu::preloads(&work, &progress).map_err(|e| e.to_string())?);
    options
        .preload
        .extend(test_images::preloads(&work, &progress)?);
    options.preload.extend(fcopy::preloads(&work, &progress)?);
    options.preload.extend(xsbench::preloads(&work, &progress)?);
    Ok(options)
}

/// [`run_suite`] once per daemon, each on a bed of its own (dom0's daemon
/// cannot be swapped under a running Xen); true if every run passed.
pub fn run_suites(options: &BedOptions, daemons: &[Daemon], filter: Option<&str>) -> bool {
    let mut all_passed = true;
    for &daemon in daemons {
        let options = BedOptions {
            daemon,
            ..options.clone()
        };
        all_passed &= run_suite(&options, filter);
    }
    all_passed
}

/// A test's name as printed: the case's name, tagged with the daemon when
/// it is not the C xenstored (`xen::oxenstored::...`).
fn shown_name(case: &str, daemon: Daemon) -> String {
    match daemon {
        Daemon::Xenstored => case.to_string(),
        other => format!(
            "xen::{}::{}",
            other.name(),
            case.strip_prefix("xen::").unwrap_or(case)
        ),
    }
}

/// Boots the bed once (with `options.daemon`) and runs the tests whose
/// name contains `filter`; prints libtest-style lines; true if every test
/// passed.
pub fn run_suite(options: &BedOptions, filter: Option<&str>) -> bool {
    let daemon = options.daemon;
    // The HVM cases run against the C xenstored only (why: hvm.rs).
    let selected: Vec<_> = cases::CASES
        .iter()
        .filter(|(name, _)| filter.is_none_or(|f| name.contains(f)))
        .filter(|(name, _)| daemon == Daemon::Xenstored || !is_hvm(name))
        .collect();
    let filtered_out = cases::CASES.len() - selected.len();
    test_images::forget();

    let mut bed = match Bed::boot(options, Progress::start()) {
        Ok(bed) => bed,
        Err(e) => {
            // Loud: the step cannot pass without the bed.
            let name = shown_name("xen::bed_boots", daemon);
            println!("test {name} ... FAILED");
            println!("\nfailures:\n\n---- {name} ----\n{e}\n");
            println!(
                "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; {filtered_out} filtered out"
            );
            return false;
        }
    };
    let start = Instant::now();
    println!(
        "\nrunning {} tests (dom0 runs {})",
        selected.len() + 1,
        daemon.name()
    );
    let mut failures = Vec::new();
    let mut passed = 0;
    let mut hvm_secs = None;
    let mut fcopy_secs = None;
    for (case, test) in selected {
        let name = shown_name(case, daemon);
        bed.progress.say(format!("{name}: starting"));
        let case_start = Instant::now();
        let result = test(&mut bed);
        if is_hvm(case) {
            *hvm_secs.get_or_insert(0.0) += case_start.elapsed().as_secs_f64();
        }
        if case.starts_with("xen::fcopy_") {
            *fcopy_secs.get_or_insert(0.0) += case_start.elapsed().as_secs_f64();
        }
        report(&name, &result);
        match result {
            Ok(()) => passed += 1,
            Err(why) => failures.push((name, why)),
        }
    }
    // A crash anywhere in dom0 is a flaky bed, whatever the tests said.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let crashes = bed.crashes_since(0);
    let sound = if crashes.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "dom0's console reports crashes:\n{}",
            crashes.join("\n")
        ))
    };
    let name = shown_name(BED_SOUND, daemon);
    report(&name, &sound);
    match sound {
        Ok(()) => passed += 1,
        Err(why) => failures.push((name, why)),
    }
    if !failures.is_empty() {
        println!("\nfailures:\n");
        for (name, why) in &failures {
            println!("---- {name} ----\n{why}\n");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {filtered_out} filtered out; finished in {:.2}s (boot {:.1}s)\n",
        if failures.is_empty() { "ok" } else { "FAILED" },
        failures.len(),
        start.elapsed().as_secs_f64(),
        bed.dom0_up_secs,
    );
    if let Some(secs) = hvm_secs {
        println!("the HVM tests took {secs:.1}s of this run\n");
    }
    if let Some(secs) = fcopy_secs {
        println!("the file copy tests took {secs:.1}s of this run\n");
    }
    failures.is_empty()
}

/// The full-HVM cases (hvm.rs), by name.
fn is_hvm(case: &str) -> bool {
    case.starts_with("xen::hvm_")
}

fn report(name: &str, result: &Result<(), String>) {
    println!(
        "test {name} ... {}",
        if result.is_ok() { "ok" } else { "FAILED" }
    );
}

/// target/boot/kernel.elf, built by the boot tool as run-qemu.sh does.
fn build_kernel(progress: &Progress) -> Result<PathBuf, String> {
    progress.say("building the kernel (cargo run -p bootimage -- build)");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "-q", "-p", "bootimage", "--", "build"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the kernel failed ({status})"));
    }
    Ok(root.join("target/boot/kernel.elf"))
}

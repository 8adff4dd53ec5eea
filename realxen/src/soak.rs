//! `soak`: boots the bed again and again, running the xen tests in each
//! boot, and counts the boots where anything failed: the proof (or not)
//! that the bed is deterministic. Each boot's own test lines are printed.

use std::process::ExitCode;

use crate::cli::SuiteArgs;
use crate::xentest;

pub fn cmd_soak(suite: SuiteArgs, count: u32) -> Result<ExitCode, String> {
    let daemons = suite.daemons.clone();
    let filter = suite.filter.clone();
    let options = xentest::suite_options(suite)?;
    let mut clean = 0;
    let mut verdicts = Vec::new();
    for n in 1..=count {
        println!("\n==== soak: boot {n} of {count}");
        let ok = xentest::run_suites(&options, &daemons, filter.as_deref());
        clean += u32::from(ok);
        verdicts.push(if ok { "ok" } else { "FAILED" });
    }
    println!(
        "\nsoak: {clean} of {count} boots passed every test ({})",
        verdicts.join(" ")
    );
    Ok(if clean == count {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

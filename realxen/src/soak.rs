//! `soak`: boots the bed again and again, running the xen tests in each
//! boot, and counts the boots where anything failed: the proof (or not)
//! that the bed is deterministic. Each boot's own test lines are printed.

use std::process::ExitCode;

use crate::xentest;

pub fn cmd_soak(mut args: Vec<String>) -> Result<ExitCode, String> {
    let daemons = xentest::suite_daemons(&mut args)?;
    let options = xentest::suite_options(&mut args)?;
    let filter = crate::take_value(&mut args, "--filter")?;
    let count: u32 = match args.as_slice() {
        [n] => n
            .parse()
            .map_err(|_| format!("soak N: {n:?} is not a number"))?,
        _ => return Err("soak takes one N".to_string()),
    };
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

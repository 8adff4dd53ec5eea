//! `soak`: boots the bed again and again and counts what went wrong, to
//! prove (or disprove) that the bed is deterministic.

use std::process::ExitCode;
use std::time::Duration;

use crate::bed::Bed;
use crate::progress::Progress;

/// Many short-lived busybox processes, the pattern that crashed in dom0.
const DEFAULT_SCRIPT: &str = "i=0; while [ $i -lt 300 ]; do /bin/true; ls / >/dev/null; \
    i=$((i+1)); done; xl list >/dev/null && xenstore-ls /local/domain/0 >/dev/null && echo ok";

pub fn cmd_soak(mut args: Vec<String>) -> Result<ExitCode, String> {
    let options = crate::bed_options(&mut args)?;
    let count: u32 = args
        .first()
        .ok_or("soak needs N")?
        .parse()
        .map_err(|_| "soak N: want a number".to_string())?;
    let script = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| DEFAULT_SCRIPT.to_string());
    let (mut clean, mut failed) = (0u32, 0u32);
    for n in 1..=count {
        let progress = Progress::start();
        let verdict = match Bed::boot(&options, progress) {
            Err(e) => format!("boot failed: {e}"),
            Ok(mut bed) => {
                let run = bed.run(&script, Duration::from_secs(300));
                // The kernel prints a crash a moment after the process dies.
                std::thread::sleep(Duration::from_secs(1));
                let crashes = bed.crashes_since(0);
                match run {
                    Err(e) => format!("command failed: {e}; crashes: {crashes:?}"),
                    Ok(out) if !out.success() || !crashes.is_empty() => format!(
                        "status {}, stderr {:?}, crashes: {crashes:?}",
                        out.status,
                        out.stderr.trim()
                    ),
                    Ok(_) => format!(
                        "clean (dom0 up in {:.1}s, all {:.1}s)",
                        bed.dom0_up_secs,
                        bed.progress.elapsed()
                    ),
                }
            }
        };
        if verdict.starts_with("clean") {
            clean += 1;
        } else {
            failed += 1;
        }
        println!("soak {n}/{count}: {verdict}");
    }
    println!("soak: {clean} clean, {failed} not clean, of {count} boots");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! `realxen bench` (the real-Xen section of `./run-bench.sh`): the file
//! copy service's throughput and the raw vchan's, in one boot, for the
//! same 64 MiB file (the `xen_bench` test image, `tests/xen_bench.rs`).
//! Prints `name=value` lines; the image's own check is that both copies
//! are byte-exact.

use std::process::ExitCode;

use super::test_images;
use crate::bed::{Bed, BedOptions};
use crate::progress::Progress;

const IMAGE: &str = "xen_bench";
/// The guest holds the 64 MiB file staged, then stored.
const MEMORY_MIB: u32 = 256;

pub fn cmd_bench(mut options: BedOptions) -> Result<ExitCode, String> {
    let progress = Progress::start();
    let work = options
        .run_dir
        .join(format!("bench-{}", std::process::id()));
    options
        .preload
        .push(test_images::build(&work, &progress, IMAGE)?);
    options
        .preload
        .extend(super::fcopy::preloads(&work, &progress)?);
    let mut bed = Bed::boot(&options, progress).map_err(|e| e.to_string())?;
    let run = test_images::run_image(&mut bed, IMAGE, MEMORY_MIB)?;
    let mut figures = Vec::new();
    for line in &run.bench {
        for pair in line.split_whitespace() {
            if let Some((key, value)) = pair.split_once('=') {
                println!("{key}={value}");
                figures.push((key.to_string(), value.to_string()));
            }
        }
    }
    let figure = |name: &str| -> Option<f64> {
        figures
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
    };
    if let (Some(fcopy), Some(raw)) = (figure("fcopy_mib_per_s"), figure("vchan_mib_per_s")) {
        println!("fcopy_over_vchan={:.2}", fcopy / raw.max(1e-9));
    }
    println!("daemon={}", options.daemon.name());
    if run.passed() {
        Ok(ExitCode::SUCCESS)
    } else {
        let tail = run.console[run.console.len().saturating_sub(60)..].join("\n");
        Err(format!(
            "the bench image did not pass (results {:?}, ended {:?}); its console:\n{tail}",
            run.results, run.end
        ))
    }
}

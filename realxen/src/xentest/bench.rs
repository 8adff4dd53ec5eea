//! `realxen bench` (the real-Xen section of `./run-bench.sh`), in one
//! boot: the xenstore comparison of the kernel with a Linux guest
//! (`xsbench`), then the file copy service's throughput against the raw
//! vchan's (the `xen_bench` test image, `tests/xen_bench.rs`: the same
//! 16 MiB file both ways, one fresh file a round). Prints `name=value`
//! lines, each figure a median of its rounds with min, max and spread; the
//! images' own checks are that every read returned what was written and
//! that every copy is byte-exact.

use std::process::ExitCode;
use std::time::Duration;

use bench_stats::Summary;

use super::{test_images, xsbench};
use crate::bed::{Bed, BedOptions};
use crate::cli::BenchSections;
use crate::progress::Progress;

const FCOPY_IMAGE: &str = "xen_bench";
/// The guest holds the 16 MiB file staged, then stored.
const FCOPY_MEMORY_MIB: u32 = 128;
/// Rounds of the xenstore comparison (the bench's minimum for a median)
/// and how long each sample runs.
const XS_ROUNDS: u32 = 5;
const XS_SAMPLE: Duration = Duration::from_secs(3);

pub fn cmd_bench(mut options: BedOptions, sections: BenchSections) -> Result<ExitCode, String> {
    let progress = Progress::start();
    let work = options
        .run_dir
        .join(format!("bench-{}", std::process::id()));
    if sections.fcopy {
        options
            .preload
            .push(test_images::build(&work, &progress, FCOPY_IMAGE)?);
        options
            .preload
            .extend(super::fcopy::preloads(&work, &progress)?);
    }
    if sections.xenstore {
        options.preload.extend(xsbench::preloads(&work, &progress)?);
    }
    let mut bed = Bed::boot(&options, progress).map_err(|e| e.to_string())?;
    // Other load on the host distorts everything here (TCG): say how much.
    println!("# load averages before: {}", bench_stats::loadavg());
    if sections.xenstore {
        for line in xsbench::run(&mut bed, XS_ROUNDS, XS_SAMPLE)? {
            println!("{line}");
        }
    }
    if sections.fcopy {
        for line in file_copy(&mut bed)? {
            println!("{line}");
        }
    }
    println!("daemon={}", options.daemon.name());
    println!("# load averages after: {}", bench_stats::loadavg());
    Ok(ExitCode::SUCCESS)
}

/// Runs the file copy image; its figures' lines.
fn file_copy(bed: &mut Bed) -> Result<Vec<String>, String> {
    let run = test_images::run_image(bed, FCOPY_IMAGE, FCOPY_MEMORY_MIB)?;
    if !run.passed() {
        let tail = run.console[run.console.len().saturating_sub(60)..].join("\n");
        return Err(format!(
            "the bench image did not pass (results {:?}, ended {:?}); its console:\n{tail}",
            run.results, run.end
        ));
    }
    Ok(file_copy_lines(&run.bench))
}

/// The figures of the image's `bench:` lines (one per round:
/// `vchan_mib_per_s=.. fcopy_mib_per_s=.. bytes=..`) and the ratio of the
/// two, round by round.
fn file_copy_lines(bench: &[String]) -> Vec<String> {
    let value = |line: &str, key: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    };
    let mut raw = Vec::new();
    let mut copied = Vec::new();
    let mut ratio = Vec::new();
    for line in bench {
        if let (Some(r), Some(c)) = (
            value(line, "vchan_mib_per_s"),
            value(line, "fcopy_mib_per_s"),
        ) {
            raw.push(r);
            copied.push(c);
            ratio.push(c / r.max(1e-9));
        }
    }
    let mut lines = Vec::new();
    for (name, values, decimals) in [
        ("vchan_mib_per_s", &raw, 3),
        ("fcopy_mib_per_s", &copied, 3),
        ("fcopy_over_vchan", &ratio, 2),
    ] {
        lines.push(match Summary::of(values) {
            Some(s) => s.line(name, decimals).to_string(),
            None => format!("{name}=none  # the image printed no round"),
        });
    }
    if let Some(bytes) = bench.first().and_then(|l| value(l, "bytes")) {
        lines.push(format!("fcopy_bytes_per_round={bytes}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_become_medians_and_the_ratio_is_taken_per_round() {
        let bench: Vec<String> = [
            "vchan_mib_per_s=4.000 fcopy_mib_per_s=2.000 bytes=16777216",
            "vchan_mib_per_s=2.000 fcopy_mib_per_s=2.000 bytes=16777216",
            "vchan_mib_per_s=3.000 fcopy_mib_per_s=? bytes=16777216",
        ]
        .map(String::from)
        .to_vec();
        let lines = file_copy_lines(&bench);
        assert!(
            lines[0].starts_with("vchan_mib_per_s=3.000  # median of 2"),
            "{lines:?}"
        );
        assert!(lines[2].starts_with("fcopy_over_vchan=0.75"), "{lines:?}");
        assert_eq!(lines[3], "fcopy_bytes_per_round=16777216");
    }
}

//! `realxen bench`'s xenstore comparison: the kernel (image `xen_xsbench`,
//! `tests/xen_xsbench.rs`) and a Linux PVH domU (`dom0/xsbench_guest.c` on
//! `/dev/xen/xenbus`) run side by side in one boot, and dom0's driver
//! (`dom0/xsbench_driver.c`) gives both the same workloads in turn, timing
//! them on dom0's clock and reading each domain's CPU time from the
//! hypervisor. The guests alternate which goes first in each round.
//!
//! Printed, for each workload (`read_1t`, `write_1t`, `read_4t`, `txn`),
//! each figure as a median of the rounds with its min, max and spread:
//! `xen_ours_W_per_s`, `xen_linux_W_per_s` (operations per second),
//! `xen_ours_W_cpu_us`, `xen_linux_W_cpu_us` (guest CPU time per
//! operation), `ratio_xen_W` (ours / Linux's throughput: at least 1.0 is the
//! target) and `ratio_xen_W_cpu` (ours / Linux's CPU per operation: at most
//! 1.0). For the watch round trip: `xen_G_watch_p50_us`, `_p99_us`,
//! `_cpu_us` and `ratio_xen_watch_p50`, `_p99`, `_cpu` (at most 1.0). Then a
//! `target_xen_*` line for each target, met or NOT MET.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bench_stats::Summary;

use super::guest::Guest;
use super::linux_guest::{self, Link};
use super::test_images;
use crate::bed::Bed;
use crate::preload::Preload;
use crate::progress::Progress;

/// The kernel's image (tests/Cargo.toml).
const IMAGE: &str = "xen_xsbench";
const GUEST_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dom0/xsbench_guest.c");
const DRIVER_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dom0/xsbench_driver.c");
const DRIVER_IN_DOM0: &str = "/realxen/xsbench_driver";
const INITRD_IN_DOM0: &str = "/boot/xsbench-domu.cpio.gz";
/// Both guests get the same memory and one vCPU.
const GUEST_MEMORY_MIB: u32 = 128;
/// The libraries the driver links (dom0 has them: xl loads them too).
const DRIVER_LIBS: [&str; 2] = ["-lxenctrl", "-lxenstore"];
/// The workloads the guests time themselves, as the driver names them and
/// as the report does.
const WORKLOADS: [(&str, &str); 4] = [
    ("read1", "read_1t"),
    ("write1", "write_1t"),
    ("read4", "read_4t"),
    ("txn", "txn"),
];
/// The two guests, as the driver names them.
const GUESTS: [&str; 2] = ["ours", "linux"];

/// Builds the kernel's image, the Linux guest's initramfs and the driver;
/// returns the files dom0 must have.
pub fn preloads(work: &Path, progress: &Progress) -> Result<Vec<Preload>, String> {
    let image = test_images::build(work, progress, IMAGE)?;
    progress.say("building the xenstore comparison's Linux guest and dom0 driver");
    let guest = linux_guest::build_c(
        work,
        GUEST_SOURCE,
        "xsbench_guest",
        Link::Static(&["-lpthread"]),
    )
    .map_err(|e| e.to_string())?;
    let initrd = linux_guest::initramfs(work, &guest, "xsbench-domu").map_err(|e| e.to_string())?;
    let driver = linux_guest::build_c(
        work,
        DRIVER_SOURCE,
        "xsbench_driver",
        Link::Dom0Shared(&DRIVER_LIBS),
    )
    .map_err(|e| e.to_string())?;
    Ok(vec![
        image,
        Preload {
            host: initrd,
            dom0: INITRD_IN_DOM0.to_string(),
        },
        Preload {
            host: driver,
            dom0: DRIVER_IN_DOM0.to_string(),
        },
        linux_guest::kernel_preload(progress).map_err(|e| e.to_string())?,
    ])
}

/// Runs `rounds` rounds of `sample` per workload per guest; returns the
/// report lines, or why the comparison could not be made.
pub fn run(bed: &mut Bed, rounds: u32, sample: Duration) -> Result<Vec<String>, String> {
    let linux = Guest::create_with(
        bed,
        "rx-xsb-linux",
        &linux_guest::config(INITRD_IN_DOM0, GUEST_MEMORY_MIB),
    )?;
    let ours = match test_images::start_image(bed, IMAGE, GUEST_MEMORY_MIB) {
        Ok(guest) => guest,
        Err(e) => {
            linux.destroy(bed);
            return Err(e);
        }
    };
    bed.progress.say(format!(
        "xenstore comparison: ours is domain {}, Linux domain {}; {rounds} rounds of {} ms",
        ours.domid,
        linux.domid,
        sample.as_millis()
    ));
    let script = format!(
        "{DRIVER_IN_DOM0} {rounds} {} ours={} linux={}",
        sample.as_millis(),
        ours.domid,
        linux.domid
    );
    // Ten workloads a round, each a sample plus a few seconds of
    // overhead; generous for a host whose cores are shared.
    let limit = Duration::from_secs(600) + (sample + Duration::from_secs(10)) * 10 * rounds;
    let driven = bed.run(&script, limit);
    let linux_console = linux.console(bed);
    linux.destroy(bed);
    let out = match driven {
        Ok(out) if out.success() => out,
        failed => {
            // Our image waits for commands until "quit": end it here.
            let our_console = ours.console(bed);
            ours.destroy(bed);
            let why = match failed {
                Ok(out) => format!("exit {}: {}{}", out.status, out.stdout, out.stderr),
                Err(e) => e.to_string(),
            };
            return Err(format!(
                "the driver failed ({why})\nthe Linux guest's console:\n{linux_console}\n\
                 the kernel's console:\n{our_console}"
            ));
        }
    };
    let image = test_images::finish_image(bed, &ours)?;
    if !image.passed() {
        return Err(format!(
            "the kernel's image did not end well (results {:?}, ended {:?}):\n{}",
            image.results,
            image.end,
            image.console.join("\n")
        ));
    }
    let samples = parse(&out.stdout)?;
    Ok(report(&samples))
}

/// The `xen` step's check that the comparison still works (the bench
/// runs only by hand): one short round, and every figure of both guests
/// has its sample. The kernel's image checks every read it made; the
/// driver, every answer. Speeds are not looked at.
pub fn kernel_and_linux_guests_serve_every_workload(bed: &mut Bed) -> Result<(), String> {
    let lines = run(bed, 1, Duration::from_millis(500))?;
    let missing: Vec<&String> = lines.iter().filter(|l| l.contains("=none")).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("figures without a sample: {missing:#?}"))
    }
}

/// One driver line: `xsbench: GUEST WORKLOAD key=value ...`.
#[derive(Debug, PartialEq)]
struct Sample {
    guest: String,
    workload: String,
    values: BTreeMap<String, f64>,
}

fn parse(stdout: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.trim().strip_prefix("xsbench: ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(guest), Some(workload)) = (words.next(), words.next()) else {
            return Err(format!(
                "a driver line without guest and workload: {line:?}"
            ));
        };
        let mut values = BTreeMap::new();
        for pair in words {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value in {line:?}"))?;
            let value: f64 = value
                .parse()
                .map_err(|_| format!("{value:?} is not a number in {line:?}"))?;
            values.insert(key.to_string(), value);
        }
        samples.push(Sample {
            guest: guest.to_string(),
            workload: workload.to_string(),
            values,
        });
    }
    Ok(samples)
}

/// `key` of every sample of `guest` doing `workload`, in round order.
fn series(samples: &[Sample], guest: &str, workload: &str, key: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.guest == guest && s.workload == workload)
        .filter_map(|s| s.values.get(key).copied())
        .collect()
}

/// Ours / Linux's, round by round.
fn ratios(samples: &[Sample], workload: &str, key: &str) -> Vec<f64> {
    let ours = series(samples, "ours", workload, key);
    let linux = series(samples, "linux", workload, key);
    ours.iter()
        .zip(&linux)
        .filter(|(_, l)| **l > 0.0)
        .map(|(o, l)| o / l)
        .collect()
}

/// Adds `name`'s line for `values` to `lines`; returns its median.
fn figure(lines: &mut Vec<String>, name: String, values: &[f64], decimals: usize) -> Option<f64> {
    let summary = Summary::of(values);
    match &summary {
        Some(s) => lines.push(s.line(&name, decimals).to_string()),
        None => lines.push(format!("{name}=none  # no samples")),
    }
    summary.map(|s| s.median)
}

/// What to print: every figure's line, then every target's verdict.
fn report(samples: &[Sample]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut targets = Vec::new();
    for (workload, label) in WORKLOADS {
        for guest in GUESTS {
            let rate = series(samples, guest, workload, "ops_per_s");
            figure(&mut lines, format!("xen_{guest}_{label}_per_s"), &rate, 1);
            let cpu = series(samples, guest, workload, "cpu_us_per_op");
            figure(&mut lines, format!("xen_{guest}_{label}_cpu_us"), &cpu, 1);
        }
        let rate = ratios(samples, workload, "ops_per_s");
        let rate = figure(&mut lines, format!("ratio_xen_{label}"), &rate, 2);
        let cpu = ratios(samples, workload, "cpu_us_per_op");
        let cpu = figure(&mut lines, format!("ratio_xen_{label}_cpu"), &cpu, 2);
        if label != "read_4t" {
            targets.push((format!("ratio_xen_{label}"), rate, true));
            targets.push((format!("ratio_xen_{label}_cpu"), cpu, false));
        }
    }
    for key in ["p50_us", "p99_us", "cpu_us_per_op"] {
        let short = key.trim_end_matches("_per_op").trim_end_matches("_us");
        let unit = if short == "cpu" { "cpu_us" } else { key };
        for guest in GUESTS {
            let values = series(samples, guest, "watch", key);
            figure(&mut lines, format!("xen_{guest}_watch_{unit}"), &values, 1);
        }
        let ratio = ratios(samples, "watch", key);
        let median = figure(&mut lines, format!("ratio_xen_watch_{short}"), &ratio, 2);
        if short == "p99" {
            targets.push(("ratio_xen_watch_p99".to_string(), median, false));
        }
    }
    for (name, median, at_least) in targets {
        let (bound, met) = match (median, at_least) {
            (Some(m), true) => (">= 1.0", m >= 1.0),
            (Some(m), false) => ("<= 1.0", m <= 1.0),
            (None, _) => ("(no samples)", false),
        };
        let verdict = if met { "met" } else { "NOT MET" };
        lines.push(format!(
            "target_{}={verdict}  # {name} {} {bound}",
            name.trim_start_matches("ratio_"),
            median.map_or("none".to_string(), |m| format!("{m:.2}"))
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRIVER_OUTPUT: &str = "\
xsbench: ours read1 ops=300 secs=3.000 ops_per_s=100.00 cpu_us_per_op=50.0
xsbench: linux read1 ops=150 secs=3.000 ops_per_s=50.00 cpu_us_per_op=200.0
xsbench: ours watch round_trips=10 p50_us=900.0 p99_us=2000.0 cpu_us_per_op=80.0
xsbench: linux watch round_trips=10 p50_us=1000.0 p99_us=1000.0 cpu_us_per_op=160.0
xsbench: linux read1 ops=100 secs=1.000 ops_per_s=100.00 cpu_us_per_op=100.0
xsbench: ours read1 ops=300 secs=1.000 ops_per_s=300.00 cpu_us_per_op=50.0
unrelated shell output
";

    #[test]
    fn driver_lines_parse_and_other_lines_are_skipped() {
        let samples = parse(DRIVER_OUTPUT).unwrap();
        assert_eq!(samples.len(), 6);
        assert_eq!(samples[1].guest, "linux");
        assert_eq!(samples[1].values["cpu_us_per_op"], 200.0);
        assert!(parse("xsbench: ours read1 ops=x").is_err());
        assert!(parse("xsbench: ours").is_err());
    }

    #[test]
    fn ratios_pair_each_round_whoever_went_first() {
        let samples = parse(DRIVER_OUTPUT).unwrap();
        // Round 1: 100 / 50; round 2 (Linux first): 300 / 100.
        assert_eq!(ratios(&samples, "read1", "ops_per_s"), [2.0, 3.0]);
        assert_eq!(ratios(&samples, "read1", "cpu_us_per_op"), [0.25, 0.5]);
    }

    #[test]
    fn targets_say_met_or_not_met() {
        let lines = report(&parse(DRIVER_OUTPUT).unwrap());
        let line = |prefix: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} line in {lines:#?}"))
                .clone()
        };
        assert!(line("target_xen_read_1t=").starts_with("target_xen_read_1t=met"));
        assert!(line("target_xen_read_1t_cpu=").starts_with("target_xen_read_1t_cpu=met"));
        // p99: 2000 against 1000, twice Linux's.
        assert!(line("target_xen_watch_p99=").contains("NOT MET"));
        assert!(line("ratio_xen_watch_p99=").starts_with("ratio_xen_watch_p99=2.00"));
        assert!(line("xen_ours_watch_cpu_us=").starts_with("xen_ours_watch_cpu_us=80.0"));
        // No transaction samples: reported, not hidden.
        assert!(line("target_xen_txn=").contains("NOT MET"));
        assert!(line("xen_ours_txn_per_s=").contains("no samples"));
    }
}

//! The bed's FPU check: dom0 processes keep their SSE registers while a
//! Linux domU spins on its own. It fails when Xen switches the FPU lazily
//! under TCG (see `bed::XEN_CMDLINE`), which crashed dom0 processes.
//!
//! `dom0/fpu_spin.c`, built here with the host's gcc, runs in dom0 and as
//! the domU's init; the domU kernel is dom0's own (it boots as PVH too).

use std::path::Path;
use std::time::Duration;

use super::guest::{Guest, TestResult, check};
use super::linux_guest::{self, Link};
use crate::bed::Bed;
use crate::error::Result;
use crate::preload::Preload;
use crate::progress::Progress;

const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dom0/fpu_spin.c");
const SPIN_IN_DOM0: &str = "/realxen/fpu_spin";
const DOMU_INITRD: &str = "/boot/fpu-domu.cpio.gz";
/// A Linux PVH domU boots in ~11 s idle; slack for a host whose cores
/// other QEMUs share (everything there ran 5-10 times slower).
const DOMU_UP: Duration = Duration::from_secs(300);
/// How long dom0 spins; the bug showed hundreds of bad rounds in 40 s.
const SPIN_SECS: u64 = 20;

/// Builds what the check needs and returns the files dom0 must have.
pub fn preloads(work: &Path, progress: &Progress) -> Result<Vec<Preload>> {
    let spin = linux_guest::build_c(work, SOURCE, "fpu_spin", Link::Static(&[]))?;
    let initrd = linux_guest::initramfs(work, &spin, "fpu-domu")?;
    Ok(vec![
        Preload {
            host: spin,
            dom0: SPIN_IN_DOM0.to_string(),
        },
        Preload {
            host: initrd,
            dom0: DOMU_INITRD.to_string(),
        },
        linux_guest::kernel_preload(progress)?,
    ])
}

pub fn dom0_fpu_state_survives_a_guest_using_sse(bed: &mut Bed) -> TestResult {
    let config = linux_guest::config(DOMU_INITRD, 256);
    let guest = Guest::create_with(bed, "rx-fpu", &config)?;
    let result = spin_beside(bed, &guest);
    guest.destroy(bed);
    result
}

fn spin_beside(bed: &mut Bed, guest: &Guest) -> TestResult {
    guest.wait_console(bed, "fpu_spin: spinning as init", DOMU_UP)?;
    bed.progress.say(format!(
        "Linux domU {} up as domain {}, spinning on SSE",
        guest.name, guest.domid
    ));
    let script = format!(
        "{SPIN_IN_DOM0} {SPIN_SECS} >/tmp/fpu1 & a=$!; {SPIN_IN_DOM0} {SPIN_SECS} >/tmp/fpu2 & b=$!; \
         s=0; wait $a || s=1; wait $b || s=1; cat /tmp/fpu1 /tmp/fpu2; exit $s"
    );
    let out = bed
        .run(&script, Duration::from_secs(SPIN_SECS * 6))
        .map_err(|e| format!("running fpu_spin in dom0: {e}"))?;
    let reports: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("fpu_spin: rounds"))
        .collect();
    let spun = reports.len() == 2 && reports.iter().all(|l| !l.contains("rounds 0 "));
    if !out.success() || !spun {
        return Err(format!(
            "dom0's SSE registers changed under it while the domU ran (exit {}):\n{}{}",
            out.status, out.stdout, out.stderr
        ));
    }
    // The domU must have been running all along, or nothing was shown.
    check(
        bed,
        &format!("xl list {}", guest.name),
        Duration::from_secs(60),
    )
    .map_err(|e| {
        format!(
            "the SSE domU died during the check: {e}\n{}",
            guest.console(bed)
        )
    })?;
    Ok(())
}

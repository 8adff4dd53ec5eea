//! Building the kernel and booting images, shared by the commands (`run`,
//! `test`, `demo`, `bench`): the accelerator choice, `target/boot/`, an
//! image's runner settings, and one boot of an image with its fixtures.

use std::path::Path;

use crate::config::{Expect, ImageConfig};
use crate::qemu::{self, Accel};
use crate::report::{self, ImageReport, TestResult};
use crate::{artifacts, cargo, elf, fixtures, process, pvh};

/// Picks the accelerator (`requested`, else `qemu::choose_accel`'s
/// default) and says which and why.
pub(crate) fn choose_accel(requested: Option<Accel>) -> Result<Accel, String> {
    let (accel, why) = qemu::choose_accel(requested)?;
    eprintln!("bootimage: accelerator {accel} ({why})");
    Ok(accel)
}

pub(crate) fn build_boot_dir(release: bool) -> Result<artifacts::BootArtifacts, String> {
    let kernel = cargo::build_kernel(release)?;
    let dir = cargo::target_dir().join("boot");
    let out = artifacts::write(&dir, &kernel)?;
    eprintln!(
        "bootimage: {} (PVH entry {:#x}); xl configs {}{}",
        out.kernel.display(),
        out.pvh_entry,
        out.xl_configs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        out.iso
            .as_ref()
            .map(|p| format!("; ISO {}", p.display()))
            .unwrap_or_default()
    );
    Ok(out)
}

/// The runner settings an image carries (its `.ktest_config` section).
pub(crate) fn image_config(path: &Path) -> Result<ImageConfig, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let elf = elf::Elf::parse(&bytes).map_err(|e| e.to_string())?;
    pvh::check(&bytes)?;
    match elf.section(".ktest_config").map_err(|e| e.to_string())? {
        Some(section) => ImageConfig::parse(section),
        None => Ok(ImageConfig::default()),
    }
}

/// Boots one image with its fixtures and judges the run.
pub(crate) fn run_image(
    name: &str,
    path: &Path,
    accel: Accel,
    filter: Option<&str>,
) -> ImageReport {
    let config = match image_config(path) {
        Ok(c) => c,
        Err(e) => return ImageReport::not_started(name, format!("bad image: {e}")),
    };
    // Unique per boot: `--repeat` may boot one image twice at once.
    static BOOTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let boot = BOOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let workdir = std::env::temp_dir().join(format!("ktest-{}-{boot}-{name}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&workdir) {
        return ImageReport::not_started(name, format!("{}: {e}", workdir.display()));
    }
    let mut fixtures = Vec::new();
    for need in &config.needs {
        match fixtures::start(need, &workdir) {
            Ok(f) => fixtures.push((need.clone(), f)),
            Err(e) => return ImageReport::not_started(name, format!("fixture {need}: {e}")),
        }
    }
    let vars: Vec<_> = fixtures.iter().flat_map(|(_, f)| f.vars()).collect();
    let mut extra: Vec<String> = fixtures.iter().flat_map(|(_, f)| f.qemu_args()).collect();
    match fixtures::substitute(&config.qemu_args, &vars) {
        Ok(a) => extra.extend(a),
        Err(e) => return ImageReport::not_started(name, e),
    };
    // At most one fixture brings an agent (it owns the guest's serial input).
    let agent = fixtures.iter().find_map(|(_, f)| f.agent());
    let mut cmdline = config.cmdline.clone();
    if let Some(f) = filter {
        cmdline.push(format!("ktest.filter={f}"));
    }
    let mut cmd = qemu::command(
        qemu::Boot::Kernel(path),
        accel,
        &config.memory,
        &cmdline.join(" "),
        false,
    );
    cmd.args(&extra);
    let options = process::RunOptions {
        input: config.stdin.as_ref().map(|s| s.as_bytes().to_vec()),
        agent,
        echo: false,
    };
    let run = match process::run(cmd, options, config.timeout) {
        Ok(run) => run,
        Err(e) => {
            return ImageReport::not_started(name, format!("cannot start {}: {e}", qemu::binary()));
        }
    };
    let mut report = report::evaluate(name, config.expect, config.timeout, &run);
    if matches!(
        config.expect,
        Expect::Success | Expect::Poweroff | Expect::Reboot
    ) {
        for (need, fixture) in &mut fixtures {
            let check = fixture.check_after_run();
            report.tests.push(TestResult {
                name: format!("{name}::fixture_{}_check", need.replace('-', "_")),
                ok: check.is_ok(),
                note: check.err(),
            });
        }
    }
    if report.failed() > 0 {
        for (need, fixture) in &fixtures {
            let diag = fixture.diagnostics();
            if !diag.is_empty() {
                report
                    .output
                    .push_str(&format!("\n[fixture {need}]\n{diag}"));
            }
        }
    }
    drop(fixtures);
    let _ = std::fs::remove_dir_all(&workdir);
    report
}

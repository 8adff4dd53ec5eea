//! `bootimage bench`: boots the benchmark images (role "bench") against the
//! real daemon, release build by default, and prints their `bench:
//! key=value` lines as `key=value`, plus `accel=`.

use std::process::ExitCode;

use crate::cargo;
use crate::config::Role;
use crate::qemu::Accel;
use crate::runner::{choose_accel, image_config, run_image};

/// Prints `key=value` for each `bench: key=value` line of `output`.
fn bench_lines(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("bench: "))
        .filter(|kv| kv.contains('='))
        .map(String::from)
        .collect()
}

/// Runs every benchmark image, one at a time (they measure).
pub fn cmd_bench(debug: bool, accel: Option<Accel>) -> Result<ExitCode, String> {
    let accel = choose_accel(accel)?;
    let mut images = cargo::build_test_images(!debug)?;
    images.retain(|i| image_config(&i.executable).is_ok_and(|c| c.role == Role::Bench));
    images.sort_by(|a, b| a.name.cmp(&b.name));
    if images.is_empty() {
        return Err("no benchmark images (role = \"bench\") in tests/".into());
    }
    println!("accel={accel}");
    println!("build={}", if debug { "debug" } else { "release" });
    let mut failed = false;
    for image in &images {
        let report = run_image(&image.name, &image.executable, accel, None);
        for line in bench_lines(&report.output) {
            println!("{line}");
        }
        if report.failed() > 0 {
            failed = true;
            eprint!("{}", report.render(&accel.to_string(), false));
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_bench_lines_are_kept() {
        let out =
            "[ 1.0] INFO x: bench: nope\r\nbench: guest_read_1t=123\r\nbench: junk\nbench: a=b=c\n";
        assert_eq!(bench_lines(out), ["guest_read_1t=123", "a=b=c"]);
    }
}

//! `bootimage bench`: boots the benchmark images (role "bench") against the
//! real daemon, release build by default, and prints, for each key of their
//! `bench: key=value` lines (one line per sample), the samples' median with
//! min, max and spread (`bench-stats`), plus `accel=` and `build=`.

use std::process::ExitCode;

use bench_stats::Summary;

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

/// Groups numeric `key=value` lines by key, keys in order of first
/// appearance; a value that is not a number is kept as it is.
fn figures(lines: &[String]) -> Vec<(String, Result<Vec<f64>, String>)> {
    let mut out: Vec<(String, Result<Vec<f64>, String>)> = Vec::new();
    for line in lines {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let at = match out.iter().position(|(k, _)| k == key) {
            Some(at) => at,
            None => {
                out.push((key.to_string(), Ok(Vec::new())));
                out.len() - 1
            }
        };
        match (&mut out[at].1, value.trim().parse::<f64>()) {
            (Ok(samples), Ok(v)) => samples.push(v),
            (slot, _) => *slot = Err(value.to_string()),
        }
    }
    out
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
        for (key, samples) in figures(&bench_lines(&report.output)) {
            match samples.as_deref().map(Summary::of) {
                Ok(Some(summary)) => println!("{}", summary.line(&key, 0)),
                Ok(None) => {}
                Err(text) => println!("{key}={text}"),
            }
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

    #[test]
    fn samples_are_grouped_by_key_in_first_seen_order() {
        let lines: Vec<String> = ["b=2", "a=1", "b=4", "name=x", "a=3"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            figures(&lines),
            [
                ("b".to_string(), Ok(vec![2.0, 4.0])),
                ("a".to_string(), Ok(vec![1.0, 3.0])),
                ("name".to_string(), Err("x".to_string())),
            ]
        );
    }
}

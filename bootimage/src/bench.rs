//! `bootimage bench`: boots the benchmark images (role "bench") against the
//! real daemon, release build by default, and prints, for each key of their
//! `bench: key=value` lines (one line per sample), the samples' median with
//! min, max and spread (`bench-stats`), then their `bench-exact: key=value`
//! lines (figures that are not sampled) as they are, plus `accel=` and
//! `build=`.

use std::process::ExitCode;

use bench_stats::Summary;

use crate::config::Role;
use crate::qemu::Accel;
use crate::runner::{choose_accel, image_config, run_image};
use crate::{cargo, plot};

/// The `key=value` rest of each `PREFIX key=value` line of `output`
/// (`bench:` for samples, `bench-exact:` for exact figures).
fn bench_lines(output: &str, prefix: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix(prefix))
        .map(str::trim_start)
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

/// Runs the benchmark images (those named in `only`, or all), one at a
/// time (they measure).
pub fn cmd_bench(debug: bool, accel: Option<Accel>, only: &[String]) -> Result<ExitCode, String> {
    let accel = choose_accel(accel)?;
    let mut images = cargo::build_test_images(!debug)?;
    images.retain(|i| image_config(&i.executable).is_ok_and(|c| c.role == Role::Bench));
    images.sort_by(|a, b| a.name.cmp(&b.name));
    if images.is_empty() {
        return Err("no benchmark images (role = \"bench\") in tests/".into());
    }
    if let Some(unknown) = only.iter().find(|n| !images.iter().any(|i| &i.name == *n)) {
        let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
        return Err(format!(
            "no benchmark image {unknown:?}; there are: {}",
            names.join(", ")
        ));
    }
    images.retain(|i| only.is_empty() || only.contains(&i.name));
    println!("accel={accel}");
    println!("build={}", if debug { "debug" } else { "release" });
    let mut failed = false;
    let mut medians: Vec<(String, f64)> = Vec::new();
    for image in &images {
        let report = run_image(&image.name, &image.executable, accel, None);
        for (key, samples) in figures(&bench_lines(&report.output, "bench:")) {
            match samples.as_deref().map(Summary::of) {
                Ok(Some(summary)) => {
                    println!("{}", summary.line(&key, 0));
                    medians.push((key, summary.median));
                }
                Ok(None) => {}
                Err(text) => println!("{key}={text}"),
            }
        }
        for line in bench_lines(&report.output, "bench-exact:") {
            println!("{line}");
        }
        if report.failed() > 0 {
            failed = true;
            eprint!("{}", report.render(&accel.to_string(), false));
        }
    }
    let series = plot::scaling_series(&medians);
    if !series.is_empty() {
        let path = cargo::target_dir().join("bench/scaling.svg");
        let caption = format!(
            "scaling section, medians of 5 ({accel}, {} CPUs, load {} after)",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            bench_stats::loadavg()
        );
        std::fs::create_dir_all(path.parent().unwrap_or(&path))
            .and_then(|()| std::fs::write(&path, plot::svg(&caption, &series)))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("scaling_plot={}", path.display());
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
        assert_eq!(bench_lines(out, "bench:"), ["guest_read_1t=123", "a=b=c"]);
        let exact = "bench-exact: peak_kib=3.5  # about\r\nbench: x=1\n";
        assert_eq!(
            bench_lines(exact, "bench-exact:"),
            ["peak_kib=3.5  # about"]
        );
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

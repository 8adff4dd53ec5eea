//! `xsbench`: the host half of ./run-bench.sh. Starts ONE real xenstored
//! (testbed, trace off) and measures, over that daemon's unix socket, our
//! client, libxenstore (the C peer) and a raw pipelined client, in rounds
//! that alternate them. Prints `name=ops_per_sec` medians with their min,
//! max and spread (`bench-stats`), then the ratios, each the median of the
//! per-round ratios (both of its figures sampled in the same round); every
//! sample follows as `#` lines.
//!
//! Two passes: first with the scheduler free to place everything (the
//! issue's figures), then, on a machine with 2+ CPUs, the main figures again
//! with the daemon on CPU 0 and every client on CPU 1 (`pinned_*`), the
//! layout of a guest whose daemon runs in another domain on other CPUs.
//!
//! Usage: xsbench --libxs PATH [--rounds N] [--warmup-ms MS] [--measure-ms MS]
//!                [--only FIGURE]... [--socket PATH] [--no-pinned]
//!
//! `--socket` measures an already running daemon (e.g. a real dom0's
//! `/run/xenstored/socket`; no pinned pass) instead of starting one;
//! `--only` picks figures (a ratio is printed when both of its figures are).
//! Each sample runs in a process of its own, ours as libxenstore's: the
//! driver re-runs itself as `xsbench --sample FIGURE --socket PATH`.

mod daemon;
mod figures;
mod libxs;
mod measure;
mod ours;
mod pipelined;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use xenstore::{Client, Store};

use bench_stats::{Summary, loadavg};
use daemon::{Daemon, set_affinity};
use figures::{FIGURES, Figure, RATIOS, READ_PATH, TARGETS, VALUE_LEN, WRITE_PATH};
use libxs::Peer;
use measure::Window;

/// The figures measured again with the daemon and the clients pinned.
const PINNED_FIGURES: &[&str] = &[
    "ours_read_1t",
    "libxs_read_1t",
    "ours_read_4t",
    "libxs_read_4t_one_handle",
    "libxs_read_4t_4handles",
    "daemon_read_pipelined",
];

struct Args {
    /// The compiled C peer (required unless `--sample`).
    libxs: Option<PathBuf>,
    rounds: usize,
    window: Window,
    /// Measure only the figures with these names (all if empty).
    only: Vec<String>,
    /// Use the daemon on this socket instead of starting one.
    socket: Option<PathBuf>,
    pinned: bool,
    /// Take one sample of this figure here and print it (the driver runs
    /// itself so for each sample of ours).
    sample: Option<String>,
}

/// `xsbench --help`.
const USAGE: &str = "\
usage: xsbench --libxs PATH [--rounds N] [--warmup-ms MS] [--measure-ms MS]
               [--only FIGURE]... [--socket PATH] [--no-pinned]
  --libxs PATH       the compiled C peer (libxenstore's side)
  --rounds N         rounds of samples (default 5)
  --warmup-ms MS     unmeasured time before each sample (default 300)
  --measure-ms MS    measured time of each sample (default 1000)
  --only FIGURE      measure only these figures (a ratio when both of its are)
  --socket PATH      measure the daemon already on PATH instead of starting one
  --no-pinned        skip the pass with the daemon and clients pinned to CPUs
";

/// Parsed with lexopt (`--opt value`, `--opt=value`); `None` is `--help`.
fn parse_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut libxs = None;
    let mut only = Vec::new();
    let mut socket = None;
    let mut rounds = 5;
    let mut pinned = true;
    let mut sample = None;
    let mut window = Window {
        warmup: Duration::from_millis(300),
        measure: Duration::from_millis(1000),
    };
    let usage = |e: lexopt::Error| format!("{e}\n{USAGE}");
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next().map_err(usage)? {
        let flag = match arg {
            Short('h') | Long("help") => return Ok(None),
            Long(flag) => flag.to_owned(),
            other => return Err(usage(other.unexpected())),
        };
        let mut value = || p.value().map_err(usage)?.string().map_err(usage);
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("--{flag} {v}: {e}"));
        match flag.as_str() {
            "libxs" => libxs = Some(PathBuf::from(value()?)),
            "only" => only.push(value()?),
            "socket" => socket = Some(PathBuf::from(value()?)),
            "no-pinned" => pinned = false,
            "sample" => sample = Some(value()?),
            "rounds" => rounds = number(value()?)?.max(1) as usize,
            "warmup-ms" => window.warmup = Duration::from_millis(number(value()?)?),
            "measure-ms" => window.measure = Duration::from_millis(number(value()?)?.max(1)),
            _ => return Err(usage(Long(&flag).unexpected())),
        }
    }
    Ok(Some(Args {
        libxs,
        rounds,
        window,
        only,
        socket,
        pinned,
        sample,
    }))
}

/// The medians and samples of one pass.
struct PassResult<'a> {
    prefix: &'static str,
    figures: Vec<&'a Figure>,
    samples: Vec<Vec<f64>>,
}

/// Measures `figures` in `rounds`, each round taking one sample of each, in
/// order (ours and libxenstore alternate).
fn measure_pass<'a>(
    prefix: &'static str,
    figures: Vec<&'a Figure>,
    args: &Args,
    daemon: &Daemon,
    peer: &Peer,
) -> Result<PassResult<'a>, String> {
    let mut samples = vec![Vec::new(); figures.len()];
    for round in 0..args.rounds {
        eprintln!("[bench] {prefix}round {}/{}", round + 1, args.rounds);
        for (f, s) in figures.iter().zip(&mut samples) {
            let v = figures::sample(f, &daemon.socket, peer, args.window)
                .map_err(|e| format!("{prefix}{}: {e}", f.name))?;
            s.push(v);
        }
        daemon.check()?;
    }
    Ok(PassResult {
        prefix,
        figures,
        samples,
    })
}

impl PassResult<'_> {
    /// Each figure's median with its spread, then each ratio whose two
    /// figures were measured: the median of its per-round ratios, so that a
    /// round where the machine was busy weighs on both sides alike.
    fn print(&self) {
        for (f, s) in self.figures.iter().zip(&self.samples) {
            if let Some(summary) = Summary::of(s) {
                println!("{}", summary.line(&format!("{}{}", self.prefix, f.name), 0));
            }
        }
        let samples = |name: &str| {
            let at = self.figures.iter().position(|f| f.name == name)?;
            Some(&self.samples[at])
        };
        let mut medians = Vec::new();
        for (ratio, ours, theirs) in RATIOS {
            if let (Some(a), Some(b)) = (samples(ours), samples(theirs)) {
                let per_round: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
                if let Some(summary) = Summary::of(&per_round) {
                    println!("{}", summary.line(&format!("{}{ratio}", self.prefix), 2));
                    medians.push((*ratio, summary.median));
                }
            }
        }
        if self.prefix.is_empty() {
            for line in target_lines(&medians) {
                println!("{line}");
            }
        }
    }

    fn print_samples(&self) {
        for (f, s) in self.figures.iter().zip(&self.samples) {
            let list: Vec<String> = s.iter().map(|v| format!("{v:.0}")).collect();
            println!("# samples {}{}: {}", self.prefix, f.name, list.join(" "));
        }
    }
}

/// A `target_<name>=met|NOT MET` line for each target whose ratio was
/// measured (`medians`: ratio name and median), with the figure and bound.
fn target_lines(medians: &[(&str, f64)]) -> Vec<String> {
    TARGETS
        .iter()
        .filter_map(|&(ratio, at_least)| {
            let median = medians.iter().find(|(name, _)| *name == ratio)?.1;
            let verdict = if median >= at_least { "met" } else { "NOT MET" };
            let name = ratio.trim_start_matches("ratio_");
            Some(format!(
                "target_{name}={verdict}  # {ratio} {median:.2} >= {at_least}"
            ))
        })
        .collect()
}

fn run(args: Args) -> Result<(), String> {
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let figures: Vec<&Figure> = FIGURES.iter().filter(|f| wanted(f.name)).collect();
    if figures.is_empty() {
        return Err(format!("no figure is named {:?}", args.only));
    }
    let daemon = Daemon::start(args.socket.clone())?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("cpus={cpus}");
    let before = loadavg();
    println!("loadavg_before={before}");
    // Another process competing for the 2 CPUs distorts everything here: a
    // daemon that never sleeps (pipelined) loses most to it.
    let busy: f64 = before
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0);
    if busy > 0.5 {
        println!(
            "# warning: the machine was busy before the run (1-minute load {busy:.2}): \
             expect distorted figures, the pinned pipelined one most; rerun when idle"
        );
    }
    println!(
        "method=release build; each round takes one sample of every figure, in the order below \
         (ours and libxenstore alternate); a sample: a fresh process, {} ms warm-up, then ops \
         counted over {} ms; {} rounds; the median is printed with min, max and spread \
         (flagged NOISY over {:.0}%); a ratio is the median of the per-round ratios",
        args.window.warmup.as_millis(),
        args.window.measure.as_millis(),
        args.rounds,
        bench_stats::SPREAD_LIMIT * 100.0
    );
    println!("value_bytes={VALUE_LEN} read_path={READ_PATH} write_path={WRITE_PATH}");
    for f in &figures {
        println!("# {}: {}", f.name, f.about);
    }

    let setup = Client::connect(&daemon.socket).map_err(|e| format!("connect: {e}"))?;
    let value = vec![b'v'; VALUE_LEN];
    for path in [READ_PATH, WRITE_PATH] {
        setup
            .write(path, &value)
            .map_err(|e| format!("write {path}: {e}"))?;
    }
    drop(setup);
    let peer = Peer {
        program: args
            .libxs
            .clone()
            .ok_or("--libxs PATH (the compiled bench/libxs_bench.c) is required")?,
        env: vec![("XENSTORED_PATH", daemon.socket.clone().into_os_string())],
    };

    let mut passes = vec![measure_pass("", figures, &args, &daemon, &peer)?];
    passes[0].print();
    let pinned: Vec<&Figure> = FIGURES
        .iter()
        .filter(|f| PINNED_FIGURES.contains(&f.name) && wanted(f.name))
        .collect();
    match daemon.pid() {
        Some(pid) if args.pinned && cpus >= 2 && !pinned.is_empty() => {
            println!(
                "# pinned_*: the same figures with the daemon on CPU 0 and every client on CPU 1"
            );
            set_affinity(pid, "0")?;
            set_affinity(std::process::id(), "1")?;
            let pass = measure_pass("pinned_", pinned, &args, &daemon, &peer);
            let all = format!("0-{}", cpus - 1);
            set_affinity(std::process::id(), &all)?;
            set_affinity(pid, &all)?;
            passes.push(pass?);
            passes[1].print();
        }
        _ => println!("# no pinned pass (--no-pinned, one CPU, or an external daemon)"),
    }
    for pass in &passes {
        pass.print_samples();
    }
    println!("loadavg_after={}", loadavg());
    Ok(())
}

/// `--sample NAME --socket PATH`: one sample of a Rust-side figure.
fn sample_here(args: Args) -> Result<(), String> {
    let name = args.sample.as_deref().unwrap_or_default();
    let figure = FIGURES
        .iter()
        .find(|f| f.name == name)
        .ok_or(format!("no figure is named {name}"))?;
    let socket = args.socket.as_deref().ok_or("--sample needs --socket")?;
    let rate = figures::sample_here(figure.how, socket, args.window)?;
    println!("ops_per_sec={rate:.0}");
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args(std::env::args_os().skip(1)).and_then(|args| match args {
        None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(args) if args.sample.is_some() => sample_here(args),
        Some(args) => run(args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xsbench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str) -> Result<Option<Args>, String> {
        parse_args(args.split_whitespace().map(std::ffi::OsString::from))
    }

    #[test]
    fn targets_say_met_or_not_met_and_skip_what_was_not_measured() {
        let lines = target_lines(&[
            ("ratio_read_1t", 1.0),
            ("ratio_read_4t_vs_4handles", 1.49),
            ("ratio_write_1t", 0.5),
        ]);
        assert_eq!(
            lines,
            [
                "target_read_1t=met  # ratio_read_1t 1.00 >= 1",
                "target_read_4t_vs_4handles=NOT MET  # ratio_read_4t_vs_4handles 1.49 >= 1.5",
            ]
        );
    }

    #[test]
    fn options_take_separate_or_attached_values() {
        let args = parse_str("--libxs /x --only a --only=b --rounds=0 --measure-ms 7 --no-pinned")
            .unwrap()
            .unwrap();
        assert_eq!(args.libxs, Some(PathBuf::from("/x")));
        assert_eq!(args.only, ["a", "b"]);
        assert_eq!(args.rounds, 1);
        assert_eq!(args.window.measure, Duration::from_millis(7));
        assert!(!args.pinned);
        assert!(parse_str("--help").unwrap().is_none());
    }

    #[test]
    fn mistakes_name_the_argument() {
        for (args, says) in [
            ("--rounds x", "--rounds x"),
            ("--libxs", "--libxs"),
            ("--bogus", "--bogus"),
            ("stray", "stray"),
        ] {
            let e = parse_str(args).err().unwrap();
            assert!(e.contains(says), "{args}: {e}");
        }
    }
}

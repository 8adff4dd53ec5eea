//! The libxenstore peer: runs `libxs_bench` (bench/libxs_bench.c, linked
//! with the system's libxenstore) against the testbed's socket and reads
//! back its `ops_per_sec=` line. It measures with the same warm-up and
//! window as [`crate::measure`], inside its own process, so starting the
//! process is not counted. Our client's samples run the same way, in a
//! process of their own (see [`run_sampler`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use crate::measure::Window;

/// What the C peer does.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Read,
    Write,
}

/// One run of the C peer: `threads` threads over `handles` connections
/// (`xs_open` each; thread i uses handle i % handles), all doing `op`.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    pub op: Op,
    pub threads: usize,
    pub handles: usize,
}

/// The compiled C peer and the environment aiming it at the daemon.
pub struct Peer {
    pub program: PathBuf,
    pub env: Vec<(&'static str, OsString)>,
}

impl Peer {
    /// Runs `job` on `path` with `value_len`-byte values; returns ops/s.
    pub fn ops_per_sec(
        &self,
        job: Job,
        window: Window,
        path: &str,
        value_len: usize,
    ) -> Result<f64, String> {
        let op = match job.op {
            Op::Read => "read",
            Op::Write => "write",
        };
        let mut cmd = Command::new(&self.program);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v))).args([
            op,
            &job.threads.to_string(),
            &job.handles.to_string(),
            &window.warmup.as_millis().to_string(),
            &window.measure.as_millis().to_string(),
            path,
            &value_len.to_string(),
        ]);
        run_sampler(cmd)
    }
}

/// Runs a process that takes one sample and prints `ops_per_sec=N` (the C
/// peer, or this driver re-run with `--sample`); returns N.
pub fn run_sampler(mut cmd: Command) -> Result<f64, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = cmd
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{program} failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("ops_per_sec="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no ops_per_sec= line from {program}: {stdout}"))
}

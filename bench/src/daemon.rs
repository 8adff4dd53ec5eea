//! The daemon under test, and where processes run.

use std::path::PathBuf;
use std::process::Command;

use testbed::{Options, Testbed};

/// The daemon under test: one the bench started, or one given by socket.
pub struct Daemon {
    testbed: Option<Testbed>,
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts the testbed's real xenstored (trace off: tracing writes a line
    /// per request), or uses the daemon on `socket`. Prints which.
    pub fn start(socket: Option<PathBuf>) -> Result<Daemon, String> {
        if let Some(socket) = socket {
            println!("daemon=external, socket {}", socket.display());
            println!("daemon_version=unknown");
            return Ok(Daemon {
                testbed: None,
                socket,
            });
        }
        let tb = Testbed::with_options(Options::new().trace(false))
            .map_err(|e| format!("the real xenstored could not start: {e}"))?;
        let daemon = tb.xenstored();
        println!("daemon={}", daemon.path.display());
        println!("daemon_version={}", daemon.version);
        println!(
            "daemon_options=testbed (fake Xen libraries), trace off, default quotas; \
             every client is dom0 on its unix socket"
        );
        Ok(Daemon {
            socket: tb.socket_path(),
            testbed: Some(tb),
        })
    }

    /// Fails if the daemon died.
    pub fn check(&self) -> Result<(), String> {
        self.testbed
            .as_ref()
            .map_or(Ok(()), |tb| tb.check_daemon().map_err(|e| e.to_string()))
    }

    /// The daemon's pid, if the bench started it.
    pub fn pid(&self) -> Option<u32> {
        self.testbed.as_ref().and_then(Testbed::daemon_pid)
    }
}

/// Puts process (or thread) `pid` on `cpus` (a taskset list such as `0` or
/// `0-1`). Threads and processes it creates later inherit it.
pub fn set_affinity(pid: u32, cpus: &str) -> Result<(), String> {
    let out = Command::new("taskset")
        .args(["-p", "-c", cpus, &pid.to_string()])
        .output()
        .map_err(|e| format!("taskset: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset -p -c {cpus} {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

//! The machine's console (QEMU's first serial port: Xen's com1, which also
//! carries dom0's hvc0): kept whole in memory and in a log file, and
//! searched for the markers the boot waits for.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Lines shown when a boot fails.
pub const TAIL_LINES: usize = 25;

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    closed: bool,
}

/// The console's lines so far; cheap to clone.
#[derive(Clone, Default)]
pub struct Console {
    inner: Arc<(Mutex<Lines>, Condvar)>,
}

/// How a wait for a console line ended.
pub enum Seen {
    /// A line containing the wanted text.
    Line,
    /// A line with one of the failure texts.
    Failure(String),
    /// The console closed (QEMU exited).
    Closed,
    TimedOut,
}

impl Console {
    /// Copies `from` into the console, line by line, and into `log`.
    pub fn capture(&self, from: impl Read + Send + 'static, log: &Path) -> Result<()> {
        let mut file =
            std::fs::File::create(log).map_err(|e| Error::io_path("creating", log, e))?;
        let me = self.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from);
            let mut raw = Vec::new();
            while matches!(reader.read_until(b'\n', &mut raw), Ok(n) if n > 0) {
                let _ = file.write_all(&raw);
                // Strip the CRs and terminal escapes that busybox's sh emits.
                let line: String = String::from_utf8_lossy(&raw)
                    .chars()
                    .filter(|c| !c.is_control() || *c == '\t')
                    .collect();
                me.push(line);
                raw.clear();
            }
            let (lock, cond) = &*me.inner;
            lock.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
            cond.notify_all();
        });
        Ok(())
    }

    fn push(&self, line: String) {
        let (lock, cond) = &*self.inner;
        lock.lock()
            .unwrap_or_else(|p| p.into_inner())
            .lines
            .push(line);
        cond.notify_all();
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let lines = self.inner.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.lines[lines.lines.len().saturating_sub(n)..].to_vec()
    }

    /// Lines from index `from` on containing `text`.
    pub fn matching(&self, from: usize, text: &str) -> Vec<String> {
        let lines = self.inner.0.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .lines
            .iter()
            .skip(from)
            .filter(|l| l.contains(text))
            .cloned()
            .collect()
    }

    /// Waits until a line at index `from` or later contains `want` (or one
    /// of `failures`), for at most `limit`.
    pub fn wait_for(&self, from: usize, want: &str, failures: &[&str], limit: Duration) -> Seen {
        let deadline = Instant::now() + limit;
        let (lock, cond) = &*self.inner;
        let mut lines = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = from;
        loop {
            while next < lines.lines.len() {
                let line = &lines.lines[next];
                if failures.iter().any(|f| line.contains(f)) {
                    return Seen::Failure(line.clone());
                }
                if line.contains(want) {
                    return Seen::Line;
                }
                next += 1;
            }
            if lines.closed {
                return Seen::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Seen::TimedOut;
            }
            lines = cond
                .wait_timeout(lines, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

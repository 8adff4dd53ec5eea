//! Progress lines with the elapsed time, so a minute-long phase never looks
//! hung: `realxen: [ 12.3s] booting Xen ...`.

use std::time::Instant;

/// The clock every progress line of one run is measured from.
#[derive(Clone, Copy)]
pub struct Progress {
    start: Instant,
}

impl Progress {
    pub fn start() -> Self {
        Progress {
            start: Instant::now(),
        }
    }

    /// Seconds since the run started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Prints `message` on stderr, stamped with the elapsed time.
    pub fn say(&self, message: impl std::fmt::Display) {
        eprintln!("realxen: [{:6.1}s] {message}", self.elapsed());
    }
}

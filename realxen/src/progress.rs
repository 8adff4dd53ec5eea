//! Progress lines with the elapsed time, so a minute-long phase never looks
//! hung: `realxen: [ 12.3s] booting Xen ...`.

use std::time::Instant;

/// Set for a suite run next to another (one per daemon): its progress
/// lines say which run they belong to.
pub const LABEL_VAR: &str = "REALXEN_LABEL";

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

    /// Prints `message` on stderr, stamped with the elapsed time (and the
    /// run's label, see [`LABEL_VAR`]).
    pub fn say(&self, message: impl std::fmt::Display) {
        match std::env::var(LABEL_VAR) {
            Ok(label) => eprintln!("realxen {label}: [{:6.1}s] {message}", self.elapsed()),
            Err(_) => eprintln!("realxen: [{:6.1}s] {message}", self.elapsed()),
        }
    }
}

//! How every figure of `./run-bench.sh` is reported: a median of at least
//! [`MIN_SAMPLES`] samples, printed with the samples' min and max and the
//! spread between them, so that a reader sees how far to trust it. A figure
//! whose spread exceeds [`SPREAD_LIMIT`] is flagged on its own line, not
//! hidden: these machines are noisy, and a noisy figure is still a figure.
//!
//! The line keeps `name=value` first, so a script can take the median with
//! `cut -d' ' -f1`; the rest follows a `#`.

use std::fmt;

/// Fewer samples than this give no useful median: the line says so.
pub const MIN_SAMPLES: usize = 5;
/// A spread ((max - min) / median) above this is flagged as noisy.
pub const SPREAD_LIMIT: f64 = 0.20;

/// The summary of one figure's samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// The middle sample (the mean of the middle two for an even count).
    pub median: f64,
    /// The lowest sample.
    pub min: f64,
    /// The highest sample.
    pub max: f64,
    /// How many samples it summarises.
    pub count: usize,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none (or one is NaN,
    /// which no measurement here produces: it would be a bug upstream).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            count: n,
        })
    }

    /// (max - min) / median: 0.25 means the samples span a quarter of the
    /// median. Infinite when the median is 0 and the samples differ.
    pub fn spread(&self) -> f64 {
        let width = self.max - self.min;
        if width == 0.0 {
            0.0
        } else {
            width / self.median.abs()
        }
    }

    /// Whether a reader should distrust the median: too wide a spread, or
    /// too few samples.
    pub fn noisy(&self) -> bool {
        self.spread() > SPREAD_LIMIT || self.count < MIN_SAMPLES
    }

    /// The report line: `name=median  # min .., max .., spread ..%, n=..`,
    /// plus a flag when [`Summary::noisy`]. `decimals` is how many the
    /// values get (0 for rates, 2 for ratios).
    pub fn line(&self, name: &str, decimals: usize) -> Line<'_> {
        Line {
            name: name.to_string(),
            summary: self,
            decimals,
        }
    }
}

/// A figure's report line (see [`Summary::line`]).
pub struct Line<'a> {
    name: String,
    summary: &'a Summary,
    decimals: usize,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, d) = (self.summary, self.decimals);
        write!(
            f,
            "{}={:.d$}  # median of {}: min {:.d$}, max {:.d$}, spread {:.0}%",
            self.name,
            s.median,
            s.count,
            s.min,
            s.max,
            s.spread() * 100.0
        )?;
        if s.spread() > SPREAD_LIMIT {
            write!(f, " NOISY: spread over {:.0}%", SPREAD_LIMIT * 100.0)?;
        }
        if s.count < MIN_SAMPLES {
            write!(f, " FEW SAMPLES: under {MIN_SAMPLES}")?;
        }
        Ok(())
    }
}

/// The one-minute load average, for the lines a run prints before and after
/// measuring (`unknown` where /proc/loadavg cannot be read).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max_of_odd_and_even_counts() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.count), (2.0, 1.0, 3.0, 3));
        assert_eq!(Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn a_tight_figure_is_printed_plainly() {
        let s = Summary::of(&[100.0, 104.0, 98.0, 101.0, 99.0]).unwrap();
        assert_eq!(
            s.line("ours_read_1t", 0).to_string(),
            "ours_read_1t=100  # median of 5: min 98, max 104, spread 6%"
        );
        assert!(!s.noisy());
    }

    #[test]
    fn a_wide_spread_and_too_few_samples_are_flagged_on_the_line() {
        let wide = Summary::of(&[1.0, 0.7, 1.0, 1.0, 1.0]).unwrap();
        assert!(wide.noisy());
        let line = wide.line("ratio_read_1t", 2).to_string();
        assert!(line.starts_with("ratio_read_1t=1.00  # "), "{line}");
        assert!(
            line.ends_with("spread 30% NOISY: spread over 20%"),
            "{line}"
        );
        let few = Summary::of(&[5.0, 5.0]).unwrap();
        assert!(few.noisy());
        assert!(
            few.line("x", 0)
                .to_string()
                .ends_with("FEW SAMPLES: under 5")
        );
    }

    #[test]
    fn equal_samples_have_no_spread_even_at_zero() {
        assert_eq!(Summary::of(&[0.0; 5]).unwrap().spread(), 0.0);
        assert!(
            Summary::of(&[0.0, 0.0, 0.0, 0.0, 1.0])
                .unwrap()
                .spread()
                .is_infinite()
        );
    }
}

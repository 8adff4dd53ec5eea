//! Back-off between the attempts of `Client::transaction`.
//!
//! Several clients retrying conflicting transactions at once keep
//! conflicting if each retries at once: the daemon commits one of them per
//! round, and nothing stops the same loser from losing every round (four
//! threads on one counter lost 16 rounds in a row about once per run). So
//! a loser waits a random time before its next attempt, within a window
//! that doubles with each loss. The window is a multiple of how long the
//! losing attempt took, so it fits the bed: microseconds on a host socket,
//! tens of milliseconds between domains on an emulated Xen.

use core::time::Duration;

/// The window stops doubling after this many losses (64 attempt-times).
const MAX_DOUBLINGS: u32 = 6;
/// No window is shorter (an attempt can be quicker than the clock's step).
const MIN_ATTEMPT_US: u64 = 100;
/// Nor longer: a retry never waits more than this.
const MAX_WINDOW_US: u64 = 1_000_000;

/// How long to wait after the `losses`-th EAGAIN in a row (1 for the
/// first), whose attempt took `attempt_us`: a point in
/// `[0, attempt_us * 2^losses)` (bounded, see the constants) chosen by
/// `seed`, which differs between threads and attempts.
pub(crate) fn after_eagain(losses: u32, attempt_us: u64, seed: u64) -> Duration {
    let window = attempt_us
        .max(MIN_ATTEMPT_US)
        .saturating_mul(1 << losses.clamp(1, MAX_DOUBLINGS))
        .min(MAX_WINDOW_US);
    Duration::from_micros(mix(seed) % window)
}

/// SplitMix64's finaliser: spreads nearby seeds (successive clock
/// readings, thread ids) over the whole range.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_doubles_with_each_loss_within_its_bounds() {
        let longest = |losses, attempt_us| {
            (0..2000)
                .map(|seed| after_eagain(losses, attempt_us, seed))
                .max()
                .unwrap()
        };
        // 1 ms attempts: windows of 2, 4, 8 ms ... up to 64 ms.
        for (losses, window_ms) in [(1, 2), (2, 4), (3, 8), (6, 64), (20, 64)] {
            let max = longest(losses, 1000);
            assert!(max < Duration::from_millis(window_ms), "{losses}: {max:?}");
            assert!(
                max > Duration::from_millis(window_ms) * 9 / 10,
                "{losses}: {max:?}"
            );
        }
        // Quick attempts still wait a little; slow ones never over a second.
        assert!(longest(1, 0) > Duration::from_micros(150));
        assert!(longest(6, 10_000_000) < Duration::from_secs(1));
    }

    #[test]
    fn nearby_seeds_spread_over_the_window() {
        let waits: Vec<_> = (0..64).map(|s| after_eagain(6, 1000, s)).collect();
        let early = waits
            .iter()
            .filter(|w| **w < Duration::from_millis(32))
            .count();
        assert!(
            (16..=48).contains(&early),
            "{early} of 64 in the first half"
        );
    }
}

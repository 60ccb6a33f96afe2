//! Exponential reconnect backoff with jitter.

use std::time::Duration;

use super::rng::Rng;

/// Doubling delays from `min_ms` up to `max_ms`; each delay is drawn
/// uniformly from the upper half of the current step so that peers that
/// lost each other at the same moment do not redial in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(min_ms: u64, max_ms: u64) -> Backoff {
        assert!(min_ms >= 1 && min_ms <= max_ms);
        Backoff { min_ms, max_ms, attempt: 0 }
    }

    /// Forgets past failures (after a link was established).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self, rng: &Rng) -> Duration {
        let step_ms = self.min_ms.saturating_mul(1u64 << self.attempt.min(32)).min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        let half_ms = step_ms / 2;
        let delay_ms = half_ms + rng.below(step_ms - half_ms + 1);
        assert!(delay_ms <= self.max_ms);
        Duration::from_millis(delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_ceiling_and_restart_after_reset() {
        let rng = Rng::seeded(7);
        let mut backoff = Backoff::new(100, 1000);
        let steps: Vec<u64> = (0..8).map(|_| backoff.next_delay(&rng).as_millis() as u64).collect();
        for (i, ms) in steps.iter().enumerate() {
            let step = (100u64 << i).min(1000);
            assert!(*ms >= step / 2 && *ms <= step, "attempt {i}: {ms} ms not in [{}, {step}]", step / 2);
        }
        backoff.reset();
        assert!(backoff.next_delay(&rng).as_millis() <= 100);
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let rng = Rng::seeded(1);
        let delays: std::collections::BTreeSet<u128> =
            (0..50).map(|_| Backoff::new(1000, 1000).next_delay(&rng).as_millis()).collect();
        assert!(delays.len() > 10, "only {} distinct delays", delays.len());
    }
}

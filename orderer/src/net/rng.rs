//! A small lock-free PRNG for jitter and fault injection (not for keys).

use std::sync::atomic::{AtomicU64, Ordering};

use rand_core::RngCore;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 over an atomic counter: shared by all tasks without a lock.
#[derive(Debug)]
pub(crate) struct Rng {
    state: AtomicU64,
}

impl Rng {
    /// A generator with the given seed (reproducible runs).
    pub(crate) fn seeded(seed: u64) -> Rng {
        Rng { state: AtomicU64::new(seed) }
    }

    /// A generator seeded from the operating system, or from the clock if
    /// the operating system has no randomness to give.
    pub(crate) fn from_entropy() -> Rng {
        let mut seed = [0u8; 8];
        if rand_core::OsRng.try_fill_bytes(&mut seed).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(GAMMA);
            seed = nanos.to_le_bytes();
        }
        Rng::seeded(u64::from_le_bytes(seed))
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self.state.fetch_add(GAMMA, Ordering::Relaxed).wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0).
    pub(crate) fn below(&self, bound: u64) -> u64 {
        assert!(bound > 0);
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

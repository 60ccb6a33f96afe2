//! The deterministic cluster simulator.
//!
//! Whole PBFT clusters run in one thread from one seed: a simulated network
//! (delay, drop, duplicate, reorder, partitions and one-way cuts), simulated
//! time, crash-restart in the middle of a step that keeps only what the core
//! asked to persist, clients that submit and resubmit envelopes, and
//! Byzantine replicas from [`adversary::Strategy`]. Agreement, validity,
//! integrity, chain linkage, certificate validity and "no honest double
//! vote" are checked after every step; liveness once the faults heal. The
//! same seed replays the same run exactly.

pub mod adversary;
pub mod cluster;
pub mod identity;
pub mod rng;

pub use adversary::Strategy;
pub use cluster::{Cluster, Report, Scenario};

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    pub steps: u64,
    pub blocks: u64,
    pub view_changes: u64,
    pub safety_violations: u64,
    pub liveness_failures: u64,
    pub failing_seeds: Vec<(u64, usize, String)>,
}

impl Summary {
    pub fn add(&mut self, seed: u64, nodes: usize, r: &Report) {
        self.seeds += 1;
        self.steps += r.steps;
        self.blocks += r.blocks;
        self.view_changes += r.view_changes;
        self.safety_violations += r.safety.len() as u64;
        self.liveness_failures += r.liveness.len() as u64;
        if let Some(first) = r.safety.first().or(r.liveness.first()) {
            if self.failing_seeds.len() < 20 {
                self.failing_seeds.push((seed, nodes, first.clone()));
            }
        }
    }
}

/// Runs one seed.
pub fn run(scenario: Scenario) -> Report {
    Cluster::new(scenario).run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(seed: u64, nodes: usize, byzantine: usize, strategies: &[Strategy]) -> Scenario {
        Scenario {
            seed,
            nodes,
            byzantine,
            strategies: strategies.to_vec(),
            requests: 30,
            twins: 0,
            trace: false,
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }

    #[test]
    fn same_seed_replays_exactly() {
        let a = run(scenario(42, 4, 1, &Strategy::ALL));
        let b = run(scenario(42, 4, 1, &Strategy::ALL));
        assert_eq!((a.steps, a.blocks, a.view_changes), (b.steps, b.blocks, b.view_changes));
    }

    #[test]
    fn four_honest_replicas_order_every_request() {
        for seed in 0..20 {
            let r = run(scenario(seed, 4, 0, &Strategy::ALL));
            assert!(r.safety.is_empty() && r.liveness.is_empty(), "seed {seed}: {:?} {:?}", r.safety, r.liveness);
            assert!(r.blocks > 0);
        }
    }

    #[test]
    fn one_byzantine_of_four_breaks_nothing() {
        for seed in 0..40 {
            let r = run(scenario(seed, 4, 1, &Strategy::ALL));
            assert!(r.safety.is_empty() && r.liveness.is_empty(), "seed {seed}: {:?} {:?}", r.safety, r.liveness);
        }
    }

    #[test]
    fn twins_of_one_replica_of_four_break_nothing() {
        for seed in 0..30 {
            let r = run(Scenario { twins: 1, ..scenario(seed, 4, 0, &Strategy::ALL) });
            assert!(r.safety.is_empty() && r.liveness.is_empty(), "seed {seed}: {:?} {:?}", r.safety, r.liveness);
        }
    }

    #[test]
    fn two_colluding_byzantine_of_four_are_caught_breaking_agreement() {
        // Negative control: f+1 split-brain colluders must produce a
        // violation the checker sees, within a few seeds.
        let found = (0..40).any(|seed| !run(scenario(seed, 4, 2, &[Strategy::Split])).safety.is_empty());
        assert!(found, "the checker never saw f+1 colluders break safety");
    }
}

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
pub mod audit;
pub mod cluster;
pub mod identity;
pub mod rng;

use std::collections::BTreeMap;

use crate::consensus::ViewChangeReason;

pub use adversary::{Draw, Mix, Strategy};
pub use cluster::{Cluster, CrashAt, Report, Scenario, CALM_REQUEST_SPACING_TICKS};

/// Figures of the runs in which at least one Byzantine replica used one
/// strategy.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub seeds: u64,
    pub blocks: u64,
    pub view_changes: u64,
    pub safety_violations: u64,
    pub liveness_failures: u64,
    /// View changes honest replicas started, by reason.
    pub view_change_reasons: BTreeMap<ViewChangeReason, u64>,
}

/// A failing run, with what replays it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub seed: u64,
    pub nodes: usize,
    pub what: String,
    pub crash_at: Option<CrashAt>,
}

/// Totals over many seeds (a seed may run several times: crash points).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    pub runs: u64,
    pub steps: u64,
    pub blocks: u64,
    pub view_changes: u64,
    pub safety_violations: u64,
    pub liveness_failures: u64,
    /// Frames honest replicas had to drop (old epochs, corrupt MACs,
    /// garbage), all dropped.
    pub must_drop_delivered: u64,
    pub must_drop_accepted: u64,
    /// Runs with key rotation, the epoch switches they made, and the frames
    /// of another epoch honest replicas were sent (all dropped).
    pub rotating: u64,
    pub epoch_switches: u64,
    pub wrong_epoch_delivered: u64,
    /// Runs whose admins reconfigured the channel, the reconfigurations
    /// applied (members added, removed, identities rotated), and the joins
    /// of added replicas (histories refused for a broken hash chain).
    pub reconfiguring: u64,
    pub reconfigs_applied: u64,
    pub reconfigs_added: u64,
    pub reconfigs_removed: u64,
    pub reconfigs_rotated: u64,
    pub joins: u64,
    pub joins_refused: u64,
    pub reconfig_rivals: u64,
    pub reconfigs_ignored: u64,
    /// Crash sweep: steps chosen, and runs crashing after each output.
    pub crash_steps: u64,
    pub crash_runs: u64,
    pub per_strategy: BTreeMap<Strategy, Figures>,
    pub failures: Vec<Failure>,
    /// The vote-log audit over all runs (see [`audit`]).
    pub audit: audit::AuditFigures,
    /// Runs in which a Byzantine replica delivered a conflicting share.
    pub audit_runs: u64,
}

impl Summary {
    /// Adds the runs of one seed (the first one decides its strategies).
    pub fn add(&mut self, seed: u64, nodes: usize, runs: &[(Option<CrashAt>, Report)]) {
        self.seeds += 1;
        let mut strategies: Vec<Strategy> =
            runs.first().map(|(_, r)| r.mixes.iter().flat_map(|(_, m)| m.strategies()).collect()).unwrap_or_default();
        strategies.sort();
        strategies.dedup();
        for (crash_at, r) in runs {
            self.runs += 1;
            self.steps += r.steps;
            self.blocks += r.blocks;
            self.view_changes += r.view_changes;
            self.safety_violations += r.safety.len() as u64;
            self.liveness_failures += r.liveness.len() as u64;
            self.must_drop_delivered += r.must_drop_delivered;
            self.must_drop_accepted += r.must_drop_accepted;
            self.rotating += u64::from(r.rotating);
            self.epoch_switches += r.epoch_switches;
            self.wrong_epoch_delivered += r.wrong_epoch_delivered;
            self.reconfiguring += u64::from(r.reconfiguring);
            self.reconfigs_applied += r.reconfigs_applied;
            self.reconfigs_added += r.reconfigs_added;
            self.reconfigs_removed += r.reconfigs_removed;
            self.reconfigs_rotated += r.reconfigs_rotated;
            self.joins += r.joins;
            self.joins_refused += r.joins_refused;
            self.reconfig_rivals += r.reconfig_rivals;
            self.reconfigs_ignored += r.reconfigs_ignored;
            if crash_at.is_some() {
                self.crash_runs += 1;
            }
            let a = &r.audit;
            self.audit.performed += a.performed;
            self.audit.found += a.found;
            self.audit.lost_in_crash += a.lost_in_crash;
            self.audit.evidence += a.evidence;
            self.audit.evidence_valid += a.evidence_valid;
            self.audit.honest_accused += a.honest_accused;
            self.audit_runs += u64::from(a.performed > 0);
            for m in &a.misses {
                if self.audit.misses.len() < 20 {
                    self.audit.misses.push(format!("seed {seed}: {m}"));
                }
            }
            for s in &strategies {
                let f = self.per_strategy.entry(*s).or_default();
                f.blocks += r.blocks;
                f.view_changes += r.view_changes;
                f.safety_violations += r.safety.len() as u64;
                f.liveness_failures += r.liveness.len() as u64;
                for (reason, count) in &r.view_change_reasons {
                    *f.view_change_reasons.entry(*reason).or_default() += count;
                }
            }
            if let Some(first) = r.safety.first().or(r.liveness.first()) {
                if self.failures.len() < 20 {
                    self.failures.push(Failure { seed, nodes, what: first.clone(), crash_at: *crash_at });
                }
            }
        }
        for s in &strategies {
            self.per_strategy.entry(*s).or_default().seeds += 1;
        }
    }
}

/// Runs one seed. A panic anywhere in the run (the core's assertions
/// included) is a safety violation of that seed, not the end of the sweep.
pub fn run(scenario: Scenario) -> Report {
    let seed = scenario.seed;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Cluster::new(scenario).run())) {
        Ok(report) => report,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Report { safety: vec![format!("seed {seed}: panic: {what}")], ..Report::default() }
        }
    }
}

/// Persistence points a crash sweep chooses from: steps with a few outputs
/// (so that every output index is tried) including a `Persist`.
const CRASH_SWEEP_OUTPUTS_MAX: usize = 16;

/// Crash-restart at every persistence point of a few chosen steps: runs the
/// seed once to find the honest nodes' steps that persist something, picks
/// `steps` of them (from the seed), then reruns the seed once for each
/// output index of each chosen step, crashing that node right after that
/// output (0 = before any, all = after the step, before the next) and
/// restarting it from what it persisted. The checkers, double votes across
/// restarts included, run on every run. Returns every run.
pub fn run_crash_every_point(scenario: Scenario, steps: usize) -> Vec<(Option<CrashAt>, Report)> {
    let seed = scenario.seed;
    let first = run(Scenario { record_points: true, crash_at: None, ..scenario.clone() });
    let mut candidates: Vec<_> =
        first.points.iter().copied().filter(|p| p.outputs >= 2 && p.outputs <= CRASH_SWEEP_OUTPUTS_MAX).collect();
    if candidates.is_empty() {
        candidates = first.points.clone();
    }
    let mut rng = rng::Rng::new(seed ^ 0xC8A5_4E5F_0000_0001);
    let chosen: Vec<_> =
        rng.choose(candidates.len(), steps.min(candidates.len())).into_iter().map(|i| candidates[i]).collect();
    let mut runs = vec![(None, Report { points: vec![], ..first })];
    for p in chosen {
        for after in 0..=p.outputs {
            let crash_at = CrashAt { node: p.node, step: p.step, after };
            let report = run(Scenario { record_points: false, crash_at: Some(crash_at), ..scenario.clone() });
            runs.push((Some(crash_at), report));
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(seed: u64, nodes: usize, byzantine: usize, strategies: Draw) -> Scenario {
        Scenario {
            seed,
            nodes,
            byzantine,
            strategies,
            requests: 30,
            twins: 0,
            calm: false,
            crash_at: None,
            record_points: false,
            trace: false,
            rotate_every: None,
            reconfigure: None,
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }

    fn all() -> Draw {
        Draw::Random { max: 3 }
    }

    fn only(s: Strategy) -> Draw {
        Draw::OneOf(vec![Mix::single(s)])
    }

    #[test]
    fn same_seed_replays_exactly() {
        let a = run(scenario(42, 4, 1, all()));
        let b = run(scenario(42, 4, 1, all()));
        assert_eq!((a.steps, a.blocks, a.view_changes), (b.steps, b.blocks, b.view_changes));
    }

    #[test]
    fn four_honest_replicas_order_every_request() {
        for seed in 0..20 {
            let r = run(scenario(seed, 4, 0, all()));
            assert!(r.safety.is_empty() && r.liveness.is_empty(), "seed {seed}: {:?} {:?}", r.safety, r.liveness);
            assert!(r.blocks > 0);
        }
    }

    #[test]
    fn one_byzantine_of_four_breaks_nothing() {
        for seed in 0..40 {
            let r = run(scenario(seed, 4, 1, all()));
            assert!(r.safety.is_empty() && r.liveness.is_empty(), "seed {seed}: {:?} {:?}", r.safety, r.liveness);
        }
    }

    #[test]
    fn twins_of_one_replica_of_four_break_nothing() {
        for seed in 0..30 {
            let r = run(Scenario { twins: 1, ..scenario(seed, 4, 0, all()) });
            assert!(r.safety.is_empty() && r.liveness.is_empty(), "seed {seed}: {:?} {:?}", r.safety, r.liveness);
        }
    }

    #[test]
    fn two_colluding_byzantine_of_four_are_caught_breaking_agreement() {
        // Negative control: f+1 split-brain colluders must produce a
        // violation the checker sees, within a few seeds.
        let found = (0..40).any(|seed| !run(scenario(seed, 4, 2, only(Strategy::Split))).safety.is_empty());
        assert!(found, "the checker never saw f+1 colluders break safety");
    }

    #[test]
    fn every_strategy_alone_breaks_nothing_with_one_byzantine_of_four() {
        for s in Strategy::ALL {
            for seed in 0..6 {
                let r = run(scenario(seed, 4, 1, only(s)));
                assert!(
                    r.safety.is_empty() && r.liveness.is_empty(),
                    "{} seed {seed}: {:?} {:?}",
                    s.name(),
                    r.safety,
                    r.liveness
                );
            }
        }
    }

    #[test]
    fn frames_of_older_epochs_and_corrupt_macs_are_delivered_and_dropped() {
        let mix = Mix::parse("replay-old-epoch+partial-mac+flood").unwrap();
        let r = run(scenario(3, 4, 1, Draw::OneOf(vec![mix])));
        assert!(r.safety.is_empty() && r.liveness.is_empty(), "{:?} {:?}", r.safety, r.liveness);
        assert!(r.must_drop_delivered > 0, "no crafted frame reached an honest replica");
    }

    #[test]
    fn the_audit_finds_every_conflicting_block_share_and_accuses_no_honest_replica() {
        let (mut performed, mut found, mut lost) = (0, 0, 0);
        for seed in 0..20 {
            for (n, byz) in [(4, 1), (7, 2)] {
                let r = run(scenario(seed, n, byz, only(Strategy::ConflictingVotes)));
                assert!(r.safety.is_empty(), "seed {seed}: {:?}", r.safety);
                let a = &r.audit;
                assert_eq!(a.honest_accused, 0, "seed {seed}: {:?}", a.misses);
                assert_eq!(a.evidence, a.evidence_valid, "seed {seed}: {:?}", a.misses);
                performed += a.performed;
                found += a.found;
                lost += a.lost_in_crash;
            }
        }
        assert!(performed > 100, "the strategy hardly equivocated: {performed}");
        assert_eq!(found + lost, performed, "missed equivocations");
    }

    #[test]
    fn honest_clusters_keep_clean_vote_logs() {
        for seed in 0..10 {
            let r = run(scenario(seed, 4, 0, all()));
            assert!(r.safety.is_empty(), "seed {seed}: {:?}", r.safety);
            assert_eq!((r.audit.evidence, r.audit.performed), (0, 0), "seed {seed}: {:?}", r.audit.misses);
        }
    }

    #[test]
    fn mixes_parse_and_name_in_a_fixed_order() {
        let m = Mix::parse("replay+equivocate").unwrap();
        assert!(m.has(Strategy::Replay) && m.has(Strategy::Equivocate));
        assert_eq!(m.name(), "equivocate+replay");
        assert!(Mix::parse("equivocate+nonsense").is_err());
    }

    #[test]
    fn a_crash_sweep_restarts_at_every_output_of_the_chosen_steps() {
        let runs = run_crash_every_point(scenario(5, 4, 1, all()), 1);
        assert!(runs.len() >= 3, "{} runs", runs.len());
        for (at, r) in &runs {
            assert!(r.safety.is_empty() && r.liveness.is_empty(), "{at:?}: {:?} {:?}", r.safety, r.liveness);
        }
    }
}

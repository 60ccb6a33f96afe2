//! Vote keeping: one vote per signer, counted over exactly what was signed.
//!
//! A second, different vote from the same signer for the same slot is never
//! counted; it is reported as a conflict (in the MAC'd fast path this is not
//! transferable evidence, but it is counted and logged).

use std::collections::BTreeMap;

use super::message::{Digest, ReplicaId};

/// The outcome of recording one vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
    Conflict,
}

/// The votes of one phase of one slot in one view.
#[derive(Clone, Debug, Default)]
pub struct Votes {
    by_signer: BTreeMap<ReplicaId, Digest>,
}

impl Votes {
    pub fn record(&mut self, signer: ReplicaId, digest: Digest) -> Recorded {
        match self.by_signer.get(&signer) {
            None => {
                self.by_signer.insert(signer, digest);
                Recorded::New
            }
            Some(d) if *d == digest => Recorded::Duplicate,
            Some(_) => Recorded::Conflict,
        }
    }

    /// Distinct signers that voted for `digest`.
    pub fn count(&self, digest: &Digest) -> usize {
        self.by_signer.values().filter(|d| *d == digest).count()
    }

    /// Whether `signer` voted for `digest`.
    pub fn has(&self, signer: ReplicaId, digest: &Digest) -> bool {
        self.by_signer.get(&signer) == Some(digest)
    }

    pub fn clear(&mut self) {
        self.by_signer.clear();
    }
}

/// f = ⌊(n−1)/3⌋, the number of Byzantine consenters tolerated.
pub fn max_faulty(n: usize) -> usize {
    assert!(n >= 1);
    (n - 1) / 3
}

/// ⌈(n+f+1)/2⌉: any two quorums intersect in at least f+1 consenters, so
/// in at least one correct one. Equals 2f+1 when n = 3f+1.
pub fn quorum(n: usize) -> usize {
    let f = max_faulty(n);
    (n + f + 1).div_ceil(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_sizes_for_common_cluster_sizes() {
        // (n, f, quorum)
        let table = [(1, 0, 1), (4, 1, 3), (5, 1, 4), (6, 1, 4), (7, 2, 5), (10, 3, 7), (13, 4, 9)];
        for (n, f, q) in table {
            assert_eq!(max_faulty(n), f, "f for n={n}");
            assert_eq!(quorum(n), q, "quorum for n={n}");
            // Two quorums always share a correct replica.
            assert!(2 * q - n > f, "intersection for n={n}");
        }
    }

    #[test]
    fn votes_are_counted_once_per_signer_over_the_exact_digest_they_signed() {
        // Each row: votes as (signer, digest tag) in arrival order, then the
        // count for digest A, the count for digest B, and the conflicts seen.
        // A digest is the hash of the exact signed bytes: a vote over other
        // bytes is a vote for another digest.
        const A: u8 = 1;
        const B: u8 = 2;
        type Row = (&'static str, &'static [(ReplicaId, u8)], usize, usize, usize);
        let table: [Row; 7] = [
            ("three distinct signers for A make a quorum of 4", &[(1, A), (2, A), (3, A)], 3, 0, 0),
            ("one signer repeating itself counts once", &[(1, A), (1, A), (1, A), (2, A)], 2, 0, 0),
            ("a signer switching to B counts for neither the second time", &[(1, A), (1, B), (2, B)], 1, 1, 1),
            ("an equivocator cannot reach a quorum with its two votes", &[(1, A), (2, A), (2, B), (3, B)], 2, 1, 1),
            ("split votes count per digest", &[(1, A), (2, B), (3, A), (4, B)], 2, 2, 0),
            ("duplicates after a conflict stay uncounted", &[(1, A), (1, B), (1, B), (1, A)], 1, 0, 2),
            ("no votes, no count", &[], 0, 0, 0),
        ];
        for (scenario, votes, count_a, count_b, conflicts) in table {
            let mut v = Votes::default();
            let seen = votes.iter().filter(|(s, t)| v.record(*s, [*t; 32]) == Recorded::Conflict).count();
            assert_eq!(v.count(&[A; 32]), count_a, "{scenario}: votes for A");
            assert_eq!(v.count(&[B; 32]), count_b, "{scenario}: votes for B");
            assert_eq!(seen, conflicts, "{scenario}: conflicts");
            assert!(count_a + count_b <= votes.len(), "{scenario}: never more votes than signers");
        }
    }

    #[test]
    fn a_signer_is_counted_once_however_often_it_votes() {
        let mut v = Votes::default();
        assert_eq!(v.record(1, [1; 32]), Recorded::New);
        assert_eq!(v.record(1, [1; 32]), Recorded::Duplicate);
        assert_eq!(v.record(1, [1; 32]), Recorded::Duplicate);
        assert_eq!(v.count(&[1; 32]), 1);
    }

    #[test]
    fn a_conflicting_second_vote_is_not_counted_for_either_digest() {
        let mut v = Votes::default();
        v.record(1, [1; 32]);
        assert_eq!(v.record(1, [2; 32]), Recorded::Conflict);
        assert_eq!(v.count(&[1; 32]), 1);
        assert_eq!(v.count(&[2; 32]), 0);
    }
}

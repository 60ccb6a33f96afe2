//! The history checker of the fault tests: given what the clients were told
//! and what every node's ledger holds after healing, count what was lost,
//! duplicated or divergent. Pure: no I/O, so its rules have tests of their
//! own, negative controls included.

use std::collections::{HashMap, HashSet};

use crate::consensus::{Digest, Durable, Seq, View, VoteKind};

/// A submission the orderer answered SUCCESS with `wait=commit`: it said the
/// envelope is in block `block`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub tx_id: String,
    pub block: u64,
    /// The node (1-based) that answered.
    pub node: usize,
}

/// One block of a node's ledger, as the checker needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerBlock {
    pub number: u64,
    pub header_hash: [u8; 32],
    pub tx_ids: Vec<String>,
    /// The block's certificate verified against the channel configuration.
    pub certified: bool,
}

/// What the checker found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub acked: usize,
    /// Envelopes in the reference ledger (genesis excluded).
    pub committed: usize,
    /// Acknowledged envelopes missing from the reference ledger.
    pub lost: usize,
    /// Extra copies of envelopes that appear more than once in it.
    pub duplicated: usize,
    /// Nodes whose ledger differs from the reference (the one most nodes
    /// hold), or that did not reach its height.
    pub divergent: usize,
    /// Acknowledged envelopes found in another block than the answer said.
    pub misplaced: usize,
    /// Blocks (on any node) whose certificate did not verify.
    pub uncertified: usize,
    /// Envelopes in the ledger that no client submitted.
    pub phantom: usize,
    /// Votes a node cast for the same (kind, view, seq) with a different
    /// digest than an earlier vote of its own, across all its restarts.
    pub double_votes: usize,
}

impl Verdict {
    /// Every rule held.
    pub fn ok(&self) -> bool {
        self.acked > 0
            && self.lost == 0
            && self.duplicated == 0
            && self.divergent == 0
            && self.misplaced == 0
            && self.uncertified == 0
            && self.phantom == 0
            && self.double_votes == 0
    }
}

/// Checks the history. `ledgers[i]` is node i+1's ledger from block 1 up;
/// `submitted` every tx id any client sent (acknowledged or not).
pub fn check(acks: &[Ack], submitted: &HashSet<String>, ledgers: &[Vec<LedgerBlock>]) -> Verdict {
    assert!(!ledgers.is_empty(), "the checker needs at least one ledger");
    let same = |a: &[LedgerBlock], b: &[LedgerBlock]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.number == y.number && x.header_hash == y.header_hash)
    };
    // The reference is the ledger most nodes hold (the longest among
    // equals); every other must equal it.
    let reference = ledgers
        .iter()
        .max_by_key(|l| (ledgers.iter().filter(|o| same(o, l)).count(), l.len()))
        .map_or(&[][..], Vec::as_slice);
    let mut v = Verdict { acked: acks.len(), ..Verdict::default() };
    for ledger in ledgers {
        if !same(ledger, reference) {
            v.divergent += 1;
        }
        v.uncertified += ledger.iter().filter(|b| !b.certified).count();
    }
    let mut position: HashMap<&str, u64> = HashMap::new();
    for block in reference {
        for tx in &block.tx_ids {
            v.committed += 1;
            if position.insert(tx.as_str(), block.number).is_some() {
                v.duplicated += 1;
            }
            if !submitted.contains(tx) {
                v.phantom += 1;
            }
        }
    }
    for ack in acks {
        match position.get(ack.tx_id.as_str()) {
            None => v.lost += 1,
            Some(&n) if n != ack.block => v.misplaced += 1,
            Some(_) => {}
        }
    }
    v
}

/// Counts the votes in one node's vote log that contradict an earlier vote
/// of the same node for the same (kind, view, seq).
pub fn double_votes(log: &[Durable]) -> usize {
    let mut cast: HashMap<(VoteKind, View, Seq), Digest> = HashMap::new();
    let mut doubles = 0;
    for record in log {
        if let Durable::Vote { kind, view, seq, digest } = record {
            if *cast.entry((*kind, *view, *seq)).or_insert(*digest) != *digest {
                doubles += 1;
            }
        }
    }
    doubles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(number: u64, txs: &[&str]) -> LedgerBlock {
        let mut header_hash = [0u8; 32];
        header_hash[..8].copy_from_slice(&number.to_be_bytes());
        for (i, t) in txs.iter().enumerate() {
            header_hash[8 + i % 24] ^= t.len() as u8 + t.as_bytes()[0];
        }
        LedgerBlock { number, header_hash, tx_ids: txs.iter().map(|t| t.to_string()).collect(), certified: true }
    }

    fn ack(tx: &str, block: u64) -> Ack {
        Ack { tx_id: tx.into(), block, node: 1 }
    }

    fn submitted(txs: &[&str]) -> HashSet<String> {
        txs.iter().map(|t| t.to_string()).collect()
    }

    fn honest() -> Vec<LedgerBlock> {
        vec![block(1, &["a", "b"]), block(2, &["c"])]
    }

    #[test]
    fn identical_ledgers_holding_every_acknowledged_envelope_pass() {
        let ledgers = vec![honest(), honest(), honest(), honest()];
        let v = check(&[ack("a", 1), ack("c", 2)], &submitted(&["a", "b", "c", "d"]), &ledgers);
        assert!(v.ok(), "{v:?}");
        assert_eq!((v.acked, v.committed), (2, 3));
    }

    #[test]
    fn an_acknowledged_envelope_missing_from_the_ledger_is_lost() {
        let v = check(&[ack("a", 1), ack("z", 2)], &submitted(&["a", "b", "c", "z"]), &[honest(), honest()]);
        assert_eq!(v.lost, 1);
        assert!(!v.ok());
    }

    #[test]
    fn an_envelope_ordered_twice_is_duplicated() {
        let ledger = vec![block(1, &["a", "b"]), block(2, &["a"])];
        let v = check(&[ack("a", 1)], &submitted(&["a", "b"]), &[ledger.clone(), ledger]);
        assert_eq!(v.duplicated, 1);
        assert!(!v.ok());
    }

    #[test]
    fn a_node_with_another_block_at_the_same_height_is_divergent() {
        let forked = vec![block(1, &["a", "b"]), block(2, &["d"])];
        let v = check(&[ack("a", 1)], &submitted(&["a", "b", "c", "d"]), &[honest(), honest(), forked]);
        assert_eq!(v.divergent, 1);
        assert!(!v.ok());
    }

    #[test]
    fn a_node_that_never_caught_up_is_divergent() {
        let behind = vec![block(1, &["a", "b"])];
        let v = check(&[ack("a", 1)], &submitted(&["a", "b", "c"]), &[honest(), behind]);
        assert_eq!(v.divergent, 1);
    }

    #[test]
    fn an_answer_naming_the_wrong_block_is_misplaced() {
        let v = check(&[ack("c", 1)], &submitted(&["a", "b", "c"]), &[honest()]);
        assert_eq!(v.misplaced, 1);
        assert!(!v.ok());
    }

    #[test]
    fn a_block_whose_certificate_failed_is_counted() {
        let mut ledger = honest();
        ledger[1].certified = false;
        let v = check(&[ack("a", 1)], &submitted(&["a", "b", "c"]), &[ledger]);
        assert_eq!(v.uncertified, 1);
        assert!(!v.ok());
    }

    #[test]
    fn an_envelope_nobody_submitted_is_a_phantom() {
        let v = check(&[ack("a", 1)], &submitted(&["a", "b"]), &[honest()]);
        assert_eq!(v.phantom, 1);
    }

    fn vote(kind: VoteKind, view: View, seq: Seq, d: u8) -> Durable {
        Durable::Vote { kind, view, seq, digest: [d; 32] }
    }

    #[test]
    fn the_same_vote_recorded_again_after_a_restart_is_not_a_double_vote() {
        let log = vec![
            vote(VoteKind::Prepare, 0, 5, 1),
            vote(VoteKind::Commit, 0, 5, 1),
            vote(VoteKind::Prepare, 0, 5, 1),
            vote(VoteKind::Prepare, 1, 5, 2),
        ];
        assert_eq!(double_votes(&log), 0);
    }

    #[test]
    fn a_different_digest_for_the_same_kind_view_and_seq_is_a_double_vote() {
        let log =
            vec![vote(VoteKind::Prepare, 0, 5, 1), vote(VoteKind::Commit, 0, 5, 1), vote(VoteKind::Prepare, 0, 5, 2)];
        assert_eq!(double_votes(&log), 1);
        let v = Verdict { acked: 1, double_votes: double_votes(&log), ..Verdict::default() };
        assert!(!v.ok());
    }

    #[test]
    fn a_run_that_acknowledged_nothing_does_not_pass() {
        let v = check(&[], &submitted(&["a", "b", "c"]), &[honest()]);
        assert!(!v.ok());
    }
}

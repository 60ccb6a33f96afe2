//! The view-change decision rules (Castro & Liskov, TOCS 2002, §4.5.2),
//! with signed view-change messages so that every backup can re-run the new
//! primary's choice over the same set and reject a new-view that lies.
//!
//! Given a set S of view changes for view v (distinct senders, each already
//! authenticated and structurally valid), the new primary:
//!
//! 1. starts from the highest stable checkpoint h carried in S (each one is
//!    a quorum certificate, so it is correct);
//! 2. for every sequence number n in (h, max claimed], chooses
//!    * the batch with digest d prepared in view w by some member of S when
//!      - A1: at least a quorum of S claim, at n, nothing prepared or only
//!        (w' < w) or (w' = w and d' = d), and
//!      - A2: at least f+1 of S claim to have pre-prepared d at n in a view
//!        w' ≥ w (so a correct replica accepted it), and
//!      - A3: the batch is known (every prepared claim carries its batch);
//!    * else the null (empty) batch when a quorum of S claim nothing prepared
//!      at n (B);
//!    * else nothing can be decided yet: the primary waits for more view
//!      changes.
//!
//! Candidates are tried in order of decreasing view, then increasing digest,
//! so the choice is a pure function of S.

use std::collections::BTreeSet;

use super::message::{Batch, Certificate, Digest, ReplicaId, Seq, SignedViewChange, View, ViewChange};

/// What a new view re-proposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The stable checkpoint the new view starts from.
    pub checkpoint: Certificate,
    /// For each sequence number in (checkpoint.seq, last], the batch to
    /// re-propose (the empty batch for null).
    pub proposals: Vec<(Seq, Batch)>,
}

/// Why a view change is structurally unacceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Malformed {
    ClaimOutsideWindow { seq: Seq },
    ClaimFromFutureView { seq: Seq, view: View },
    TwoPreparedClaims { seq: Seq },
    TooManyPrePreparedClaims { seq: Seq },
    CheckpointNotOnInterval { seq: Seq },
}

/// Structural checks of a view change (signatures are checked by the
/// caller): every claim inside the sender's window above its checkpoint,
/// from a view before the new one, at most one prepared claim per sequence
/// number and a bounded number of pre-prepared claims.
pub fn check_structure(
    vc: &ViewChange,
    window: u64,
    checkpoint_interval: u64,
    preprepared_per_seq_max: usize,
) -> Result<(), Malformed> {
    assert!(window > 0 && checkpoint_interval > 0);
    let h = vc.checkpoint.seq;
    if !h.is_multiple_of(checkpoint_interval) {
        return Err(Malformed::CheckpointNotOnInterval { seq: h });
    }
    let in_window = |seq: Seq| seq > h && seq - h <= window;
    let mut prepared = BTreeSet::new();
    for p in &vc.prepared {
        if !in_window(p.seq) {
            return Err(Malformed::ClaimOutsideWindow { seq: p.seq });
        }
        if p.view >= vc.new_view {
            return Err(Malformed::ClaimFromFutureView { seq: p.seq, view: p.view });
        }
        if !prepared.insert(p.seq) {
            return Err(Malformed::TwoPreparedClaims { seq: p.seq });
        }
    }
    let mut per_seq = std::collections::BTreeMap::<Seq, usize>::new();
    for q in &vc.preprepared {
        if !in_window(q.seq) {
            return Err(Malformed::ClaimOutsideWindow { seq: q.seq });
        }
        if q.view >= vc.new_view {
            return Err(Malformed::ClaimFromFutureView { seq: q.seq, view: q.view });
        }
        let c = per_seq.entry(q.seq).or_default();
        *c += 1;
        if *c > preprepared_per_seq_max {
            return Err(Malformed::TooManyPrePreparedClaims { seq: q.seq });
        }
    }
    Ok(())
}

/// Runs the decision rules over `set`. Returns `None` when some sequence
/// number cannot be decided from this set (wait for more view changes).
pub fn select(set: &[SignedViewChange], f: usize, quorum: usize) -> Option<Selection> {
    assert!(quorum > f);
    let senders: BTreeSet<ReplicaId> = set.iter().map(|s| s.sender).collect();
    assert_eq!(senders.len(), set.len(), "view-change set has duplicate senders");
    if set.len() < quorum {
        return None;
    }
    let checkpoint = set
        .iter()
        .map(|s| &s.view_change.checkpoint)
        .max_by(|a, b| a.seq.cmp(&b.seq).then_with(|| b.header_hash.cmp(&a.header_hash)))?
        .clone();
    let h = checkpoint.seq;
    let last = set
        .iter()
        .flat_map(|s| {
            let vc = &s.view_change;
            vc.prepared.iter().map(|p| p.seq).chain(vc.preprepared.iter().map(|q| q.seq))
        })
        .filter(|seq| *seq > h)
        .max()
        .unwrap_or(h);
    let mut proposals = Vec::with_capacity((last - h) as usize);
    for seq in h + 1..=last {
        proposals.push((seq, decide(set, seq, f, quorum)?));
    }
    Some(Selection { checkpoint, proposals })
}

fn decide(set: &[SignedViewChange], seq: Seq, f: usize, quorum: usize) -> Option<Batch> {
    // Every prepared claim at `seq`, as (view, digest, batch).
    let mut candidates: Vec<(View, Digest, &Batch)> = set
        .iter()
        .flat_map(|s| s.view_change.prepared.iter())
        .filter(|p| p.seq == seq)
        .map(|p| (p.view, p.batch.digest(), &p.batch))
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    candidates.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    for (view, digest, batch) in candidates {
        let a1 = set
            .iter()
            .filter(|s| {
                s.view_change
                    .prepared
                    .iter()
                    .filter(|p| p.seq == seq)
                    .all(|p| p.view < view || (p.view == view && p.batch.digest() == digest))
            })
            .count();
        let a2 = set
            .iter()
            .filter(|s| s.view_change.preprepared.iter().any(|q| q.seq == seq && q.view >= view && q.digest == digest))
            .count();
        if a1 >= quorum && a2 > f {
            return Some(batch.clone());
        }
    }
    let b = set.iter().filter(|s| s.view_change.prepared.iter().all(|p| p.seq != seq)).count();
    (b >= quorum).then(Batch::empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::message::{PrePreparedClaim, PreparedClaim};

    fn genesis() -> Certificate {
        Certificate { seq: 0, header_hash: [0; 32], signatures: vec![] }
    }

    fn batch(tag: u8) -> Batch {
        Batch { envelopes: vec![vec![tag; 4]] }
    }

    /// A view change from `sender` claiming (seq 1) prepared and pre-prepared entries.
    fn vc(sender: ReplicaId, prepared: &[(View, u8)], preprepared: &[(View, u8)]) -> SignedViewChange {
        SignedViewChange {
            sender,
            view_change: ViewChange {
                new_view: 9,
                checkpoint: genesis(),
                prepared: prepared.iter().map(|(v, t)| PreparedClaim { seq: 1, view: *v, batch: batch(*t) }).collect(),
                preprepared: preprepared
                    .iter()
                    .map(|(v, t)| PrePreparedClaim { seq: 1, view: *v, digest: batch(*t).digest() })
                    .collect(),
            },
            signature: vec![],
        }
    }

    fn choice(set: &[SignedViewChange]) -> Option<Option<Batch>> {
        // n = 4, f = 1, quorum = 3
        select(set, 1, 3).map(|s| s.proposals.into_iter().find(|(seq, _)| *seq == 1).map(|(_, b)| b))
    }

    #[test]
    fn selection_rules_table_for_n4() {
        // n = 4, f = 1, quorum = 3. Each row: the view changes (sender,
        // prepared claims, pre-prepared claims) for seq 1, and the expected
        // choice: Some(Some(tag)) keep that batch, Some(None) null, None
        // wait for more view changes. Tag 0 stands for the null batch.
        type Claims = &'static [(View, u8)];
        type Row = (&'static str, &'static [(ReplicaId, Claims, Claims)], Option<u8>, bool);
        let table: [Row; 7] = [
            (
                "prepared at one, pre-prepared at two: kept",
                &[(0, &[(1, 7)], &[(1, 7)]), (1, &[], &[(1, 7)]), (2, &[], &[])],
                Some(7),
                true,
            ),
            ("nothing prepared by a quorum: null", &[(0, &[], &[]), (1, &[], &[]), (2, &[], &[(1, 7)])], Some(0), true),
            (
                "a lone prepared claim without support: wait",
                &[(0, &[(1, 7)], &[(1, 7)]), (1, &[], &[]), (2, &[], &[])],
                None,
                false,
            ),
            (
                "the higher supported view wins",
                &[(0, &[(1, 7)], &[(1, 7), (2, 8)]), (1, &[(2, 8)], &[(2, 8)]), (2, &[], &[])],
                Some(8),
                true,
            ),
            (
                "a fake higher view cannot displace a possibly committed value",
                &[(0, &[(1, 7)], &[(1, 7)]), (1, &[(1, 7)], &[(1, 7)]), (2, &[], &[]), (3, &[(2, 9)], &[(2, 9)])],
                Some(7),
                true,
            ),
            (
                "two conflicting prepared values in one view without support: wait",
                &[(0, &[(1, 7)], &[(1, 7)]), (1, &[(1, 8)], &[(1, 8)]), (2, &[], &[])],
                None,
                false,
            ),
            (
                "the same prepared value at a quorum: kept",
                &[(0, &[(3, 5)], &[(3, 5)]), (1, &[(3, 5)], &[(3, 5)]), (2, &[(3, 5)], &[(3, 5)])],
                Some(5),
                true,
            ),
        ];
        for (scenario, messages, expected, decided) in table {
            let set: Vec<SignedViewChange> = messages.iter().map(|(s, p, q)| vc(*s, p, q)).collect();
            let got = choice(&set);
            assert_eq!(got.is_some(), decided, "{scenario}: decided");
            if let Some(tag) = expected {
                let want = if tag == 0 { Batch::empty() } else { batch(tag) };
                assert_eq!(got, Some(Some(want)), "{scenario}");
            }
        }
    }

    #[test]
    fn value_prepared_by_a_quorum_member_and_preprepared_by_f_plus_1_is_kept() {
        let set = [vc(0, &[(1, 7)], &[(1, 7)]), vc(1, &[], &[(1, 7)]), vc(2, &[], &[])];
        assert_eq!(choice(&set), Some(Some(batch(7))));
    }

    #[test]
    fn nothing_prepared_anywhere_yields_null() {
        let set = [vc(0, &[], &[]), vc(1, &[], &[(1, 7)]), vc(2, &[], &[])];
        // No prepared claims at all: there is no seq 1 entry beyond the
        // pre-prepared one, which still extends the range; it is null.
        assert_eq!(choice(&set), Some(Some(Batch::empty())));
    }

    #[test]
    fn a_lone_fake_prepared_claim_without_preprepare_support_is_ignored() {
        // Replica 3 (Byzantine) claims it prepared batch 9 in a high view;
        // no one else pre-prepared it, so A2 fails; the others prepared
        // nothing, so B fails too (only 2 of 3 claim nothing): wait.
        let set = [vc(3, &[(5, 9)], &[(5, 9)]), vc(1, &[], &[]), vc(2, &[], &[])];
        assert_eq!(choice(&set), None);
        // With a fourth, honest message the quorum for null exists.
        let set = [vc(3, &[(5, 9)], &[(5, 9)]), vc(1, &[], &[]), vc(2, &[], &[]), vc(0, &[], &[])];
        assert_eq!(choice(&set), Some(Some(Batch::empty())));
    }

    #[test]
    fn a_fake_higher_view_claim_cannot_displace_a_value_that_may_have_committed() {
        // Batch 7 prepared in view 1 by replicas 0 and 1 (so it may have
        // committed); Byzantine 3 claims batch 9 prepared in view 2, and
        // pre-prepared it; replica 2 saw nothing.
        let set = [vc(0, &[(1, 7)], &[(1, 7)]), vc(1, &[(1, 7)], &[(1, 7)]), vc(3, &[(2, 9)], &[(2, 9)])];
        // 9: A1 ok only if all 3 have nothing later/conflicting: 0 and 1 have
        // (1,7) with view 1 < 2, so A1 = 3; A2 = 1 (only replica 3) <= f: no.
        // 7: A1 counts 0, 1 (equal) but not 3 (later view): 2 < 3: no.
        // null: 0 of 3 claim nothing: no. Undecided: wait for more.
        assert_eq!(choice(&set), None);
        let set =
            [vc(0, &[(1, 7)], &[(1, 7)]), vc(1, &[(1, 7)], &[(1, 7)]), vc(2, &[], &[]), vc(3, &[(2, 9)], &[(2, 9)])];
        // With replica 2's empty claim, 7 now has A1 = 3 (0, 1 equal; 2
        // nothing) and A2 = 2 > f; 9 is tried first (higher view) and still
        // lacks pre-prepare support. The value that may have committed wins.
        assert_eq!(choice(&set), Some(Some(batch(7))));
    }

    #[test]
    fn highest_view_prepared_value_wins_when_supported() {
        // 7 prepared in view 1; 8 prepared in view 2 by a replica and
        // pre-prepared in view 2 by two replicas: 8 is the value that may
        // have committed in view 2.
        let set = [vc(0, &[(1, 7)], &[(1, 7), (2, 8)]), vc(1, &[(2, 8)], &[(2, 8)]), vc(2, &[], &[])];
        assert_eq!(choice(&set), Some(Some(batch(8))));
    }

    #[test]
    fn the_highest_stable_checkpoint_in_the_set_is_the_starting_point() {
        let mut a = vc(0, &[], &[]);
        a.view_change.checkpoint = Certificate { seq: 10, header_hash: [1; 32], signatures: vec![] };
        let set = [a, vc(1, &[], &[]), vc(2, &[], &[])];
        let s = select(&set, 1, 3).unwrap();
        assert_eq!(s.checkpoint.seq, 10);
        assert!(s.proposals.is_empty());
    }

    #[test]
    fn structure_check_refuses_claims_outside_the_window_or_from_the_future() {
        let mut v = vc(0, &[(1, 7)], &[(1, 7)]).view_change;
        assert!(check_structure(&v, 4, 2, 4).is_ok());
        v.prepared[0].seq = 9;
        assert_eq!(check_structure(&v, 4, 2, 4), Err(Malformed::ClaimOutsideWindow { seq: 9 }));
        let mut v = vc(0, &[(9, 7)], &[]).view_change;
        assert_eq!(check_structure(&v, 4, 2, 4), Err(Malformed::ClaimFromFutureView { seq: 1, view: 9 }));
        v.prepared.clear();
        v.checkpoint.seq = 3;
        assert_eq!(check_structure(&v, 4, 2, 4), Err(Malformed::CheckpointNotOnInterval { seq: 3 }));
    }
}

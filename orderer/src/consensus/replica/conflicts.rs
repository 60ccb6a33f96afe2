//! Evidence of equivocation from block-certificate shares. Kept apart from
//! the state machine: these functions only read the replica's state and add
//! [`Output::Evidence`]; they never change what the replica decides.

use super::Replica;
use crate::consensus::evidence::SignedShare;
use crate::consensus::message::{Digest, ReplicaId, Seq};
use crate::consensus::types::Output;

impl Replica {
    /// A share of `from` for `seq` (its signature already verified) that
    /// contradicts the block this replica executed at `seq`, or an earlier
    /// share of `from` for `seq`.
    pub(super) fn note_conflicting_share(
        &self,
        from: ReplicaId,
        seq: Seq,
        header_hash: &Digest,
        signature: &[u8],
        out: &mut Vec<Output>,
    ) {
        let share = SignedShare {
            signer: from,
            epoch: self.cfg.epoch,
            seq,
            header_hash: *header_hash,
            signature: signature.to_vec(),
        };
        let earlier = self.block_sigs.get(&seq).and_then(|m| m.get(&from));
        match earlier {
            Some((h, s)) if h != header_hash => {
                let first = SignedShare { header_hash: *h, signature: s.clone(), ..share.clone() };
                out.push(Output::Evidence(vec![first, share]));
            }
            Some(_) => {}
            None => {
                // The block executed here: still uncertified, or named by
                // this replica's own share (kept until the checkpoint).
                let own = self.block_sigs.get(&seq).and_then(|m| m.get(&self.cfg.me)).map(|(h, _)| h);
                if self.uncertified.get(&seq).or(own).is_some_and(|mine| mine != header_hash) {
                    out.push(Output::Evidence(vec![share]));
                }
            }
        }
    }

    /// Block `seq` with `header_hash` was just executed: the shares received
    /// before it that name another header are evidence now.
    pub(super) fn note_conflicting_shares_at(&self, seq: Seq, header_hash: &Digest, out: &mut Vec<Output>) {
        let Some(shares) = self.block_sigs.get(&seq) else { return };
        let wrong: Vec<SignedShare> = shares
            .iter()
            .filter(|(id, (h, _))| h != header_hash && **id != self.cfg.me)
            .map(|(id, (h, s))| SignedShare {
                signer: *id,
                epoch: self.cfg.epoch,
                seq,
                header_hash: *h,
                signature: s.clone(),
            })
            .collect();
        if !wrong.is_empty() {
            out.push(Output::Evidence(wrong));
        }
    }
}

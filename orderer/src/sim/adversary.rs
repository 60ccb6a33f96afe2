//! Byzantine strategies. A Byzantine replica runs the honest core and its
//! outgoing frames are rewritten here, re-authenticated with its own keys
//! only (it never holds another replica's secret).

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::identity::SimCrypto;
use super::rng::Rng;
use crate::consensus::auth::seal;
use crate::consensus::message::{Body, PrePreparedClaim, PreparedClaim};
use crate::consensus::{Batch, Digest, Epoch, Frame, Limits, MacKeys, ReplicaId};

/// A Byzantine behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// Sends nothing at all.
    Silent,
    /// As primary, proposes a different batch to a subset of the backups.
    Equivocate,
    /// Votes (prepare, commit) for a different digest to a subset.
    ConflictingVotes,
    /// Re-sends old frames, its own and others' (broadcast frames carry
    /// every receiver's MAC), to random replicas.
    Replay,
    /// View changes with fabricated prepared claims and far-future views.
    LyingViewChange,
    /// Votes honestly, then "forgets": its view changes claim nothing
    /// prepared or pre-prepared and carry the genesis checkpoint (stale but
    /// valid), hiding what it voted for.
    Amnesia,
    /// Colludes with the other Byzantine replicas: one version of every
    /// proposal and vote to one half of the honest replicas, another to the
    /// other half. With more than f such replicas, safety must break (the
    /// negative control).
    Split,
}

impl Strategy {
    pub const ALL: [Strategy; 7] = [
        Strategy::Silent,
        Strategy::Equivocate,
        Strategy::ConflictingVotes,
        Strategy::Replay,
        Strategy::LyingViewChange,
        Strategy::Amnesia,
        Strategy::Split,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Silent => "silent",
            Strategy::Equivocate => "equivocate",
            Strategy::ConflictingVotes => "conflicting-votes",
            Strategy::Replay => "replay",
            Strategy::LyingViewChange => "lying-view-change",
            Strategy::Amnesia => "amnesia",
            Strategy::Split => "split",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|x| x.name() == s)
    }
}

/// The colluders' shared knowledge: for each proposed digest, the other
/// version they show to side B.
#[derive(Default)]
pub struct Collusion {
    variants: HashMap<Digest, Batch>,
}

impl Collusion {
    /// The alternative version of `batch`: without its last envelope.
    pub fn learn(&mut self, batch: &Batch) {
        if batch.envelopes.is_empty() || self.variants.len() > 100_000 {
            return;
        }
        let mut alt = batch.clone();
        alt.envelopes.pop();
        self.variants.insert(batch.digest(), alt);
    }

    fn variant(&self, digest: &Digest) -> Option<&Batch> {
        self.variants.get(digest)
    }
}

/// One Byzantine replica's rewriting of its traffic.
pub struct Adversary {
    pub strategy: Strategy,
    me: ReplicaId,
    channel: String,
    epoch: Epoch,
    members: Vec<ReplicaId>,
    macs: MacKeys,
    crypto: SimCrypto,
    /// Honest replicas shown the other version.
    side_b: BTreeSet<ReplicaId>,
    recorded: VecDeque<Vec<u8>>,
    /// The genesis pseudo-certificate (the stalest valid checkpoint).
    genesis: crate::consensus::Certificate,
}

const RECORDED_MAX: usize = 512;

impl Adversary {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        strategy: Strategy,
        me: ReplicaId,
        channel: &str,
        epoch: Epoch,
        members: &[ReplicaId],
        macs: MacKeys,
        crypto: SimCrypto,
        side_b: BTreeSet<ReplicaId>,
        genesis: crate::consensus::Certificate,
    ) -> Self {
        Self {
            strategy,
            me,
            channel: channel.to_owned(),
            epoch,
            members: members.to_vec(),
            macs,
            crypto,
            side_b,
            recorded: VecDeque::new(),
            genesis,
        }
    }

    fn seal_to(&self, body: Body, to: ReplicaId) -> (ReplicaId, Vec<u8>) {
        let frame = seal(&self.channel, self.epoch, self.me, body, &[to], &self.macs, &self.crypto);
        (to, frame.encode())
    }

    /// Sees a frame this replica received.
    pub fn observe(&mut self, bytes: &[u8], collusion: &mut Collusion) {
        if self.recorded.len() >= RECORDED_MAX {
            self.recorded.pop_front();
        }
        self.recorded.push_back(bytes.to_vec());
        if let Ok(Frame { body: Body::PrePrepare { batch, .. }, .. }) = Frame::decode(bytes, &Limits::default()) {
            collusion.learn(&batch);
        }
    }

    /// Rewrites one outgoing frame addressed to `to`.
    pub fn rewrite(
        &mut self,
        frame: &[u8],
        to: &[ReplicaId],
        collusion: &mut Collusion,
        rng: &mut Rng,
    ) -> Vec<(ReplicaId, Vec<u8>)> {
        let honest: Vec<(ReplicaId, Vec<u8>)> = to.iter().map(|t| (*t, frame.to_vec())).collect();
        let Ok(decoded) = Frame::decode(frame, &Limits::default()) else { return honest };
        if let Body::PrePrepare { batch, .. } = &decoded.body {
            collusion.learn(batch);
        }
        match self.strategy {
            Strategy::Silent => vec![],
            Strategy::Replay => honest,
            Strategy::Equivocate => self.split_proposals(&decoded.body, to, collusion, false).unwrap_or(honest),
            Strategy::Split => self.split_proposals(&decoded.body, to, collusion, true).unwrap_or(honest),
            Strategy::ConflictingVotes => match decoded.body {
                Body::Prepare { view, seq, .. } | Body::Commit { view, seq, .. } => to
                    .iter()
                    .map(|t| {
                        let mut digest = [0u8; 32];
                        digest[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
                        let body = match decoded.body {
                            Body::Prepare { .. } => Body::Prepare { view, seq, digest },
                            _ => Body::Commit { view, seq, digest },
                        };
                        if rng.chance(500) {
                            self.seal_to(body, *t)
                        } else {
                            (*t, frame.to_vec())
                        }
                    })
                    .collect(),
                _ => honest,
            },
            Strategy::Amnesia => match decoded.body {
                Body::ViewChange(mut vc) => {
                    vc.prepared.clear();
                    vc.preprepared.clear();
                    vc.checkpoint = self.genesis.clone();
                    to.iter().map(|t| self.seal_to(Body::ViewChange(vc.clone()), *t)).collect()
                }
                _ => honest,
            },
            Strategy::LyingViewChange => match decoded.body {
                Body::ViewChange(mut vc) => {
                    let low = vc.checkpoint.seq;
                    let fake = Batch { envelopes: vec![b"fabricated".to_vec()] };
                    vc.prepared.retain(|p| p.seq != low + 1);
                    vc.prepared.push(PreparedClaim { seq: low + 1, view: vc.new_view - 1, batch: fake.clone() });
                    vc.preprepared.push(PrePreparedClaim {
                        seq: low + 1,
                        view: vc.new_view - 1,
                        digest: fake.digest(),
                    });
                    let mut out: Vec<_> = to.iter().map(|t| self.seal_to(Body::ViewChange(vc.clone()), *t)).collect();
                    // And a view change for a far-future view.
                    let mut far = vc;
                    far.new_view = far.new_view.saturating_add(1_000_000);
                    out.extend(to.iter().map(|t| self.seal_to(Body::ViewChange(far.clone()), *t)));
                    out
                }
                _ => honest,
            },
        }
    }

    /// Equivocation: side B gets the variant pre-prepare; with `votes`, also
    /// votes for the variant digest.
    fn split_proposals(
        &self,
        body: &Body,
        to: &[ReplicaId],
        collusion: &Collusion,
        votes: bool,
    ) -> Option<Vec<(ReplicaId, Vec<u8>)>> {
        let alt_body = match body {
            Body::PrePrepare { view, seq, batch } => {
                let alt = collusion.variant(&batch.digest())?;
                Body::PrePrepare { view: *view, seq: *seq, batch: alt.clone() }
            }
            Body::Prepare { view, seq, digest } if votes => {
                Body::Prepare { view: *view, seq: *seq, digest: collusion.variant(digest)?.digest() }
            }
            Body::Commit { view, seq, digest } if votes => {
                Body::Commit { view: *view, seq: *seq, digest: collusion.variant(digest)?.digest() }
            }
            _ => return None,
        };
        Some(
            to.iter()
                .map(|t| {
                    let body = if self.side_b.contains(t) { alt_body.clone() } else { body.clone() };
                    self.seal_to(body, *t)
                })
                .collect(),
        )
    }

    /// Extra traffic on a tick (replays).
    pub fn on_tick(&mut self, rng: &mut Rng) -> Vec<(ReplicaId, Vec<u8>)> {
        if self.strategy != Strategy::Replay || self.recorded.is_empty() || !rng.chance(100) {
            return vec![];
        }
        let i = rng.range(0, self.recorded.len() as u64 - 1) as usize;
        let to = *rng.pick(&self.members);
        if to == self.me {
            return vec![];
        }
        vec![(to, self.recorded[i].clone())]
    }
}

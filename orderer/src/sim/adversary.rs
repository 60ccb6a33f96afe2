//! Byzantine strategies. A Byzantine replica runs the honest core; what its
//! core sends is rewritten here, and what it receives can be filtered here,
//! always re-authenticated with its own keys only (it never holds another
//! replica's secret; a pairwise MAC key it does share with each peer).
//!
//! One Byzantine replica combines a [`Mix`] of strategies (`equivocate+replay`).
//! Each outgoing frame goes through the same pipeline whatever the mix:
//! 1. bodies: what each receiver is told (equivocation, conflicting votes,
//!    lying view changes);
//! 2. delivery: who receives it (selective delivery, withheld new-view);
//! 3. authenticators: MACs corrupt for some receivers;
//! 4. timing: a slow primary holds proposals back.
//!
//! Ticks add traffic of their own (replays, old-epoch frames, huge sequence
//! numbers, floods, held proposals released). Frames every honest receiver
//! must drop are marked so the cluster can check they never get in.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::identity::{envelope_client, SimCrypto, SimValidator};
use super::rng::Rng;
use crate::consensus::auth::{hmac_sha256, seal};
use crate::consensus::message::{Auth, Body, PrePreparedClaim, PreparedClaim};
use crate::consensus::{
    Batch, Certificate, Crypto, Digest, Epoch, Frame, Limits, MacKeys, ReplicaId, Seq, TxId, Validator, View,
};

/// One Byzantine behaviour. A replica may combine several (see [`Mix`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// Sends none of its own protocol messages (crash-like). Hunts liveness
    /// that silently depends on one particular replica answering.
    Silent,
    /// As primary, proposes a different batch to a subset of the backups
    /// (a two-way split). Hunts accepting two proposals for one sequence
    /// number (SmartBFT #499 class forks).
    Equivocate,
    /// As primary, proposes a different valid batch to EACH backup, so no
    /// two backups see the same proposal. Hunts view changes that cannot
    /// cope with as many pre-prepared claims as backups (nothing prepared
    /// anywhere, every Q set different).
    EquivocateEach,
    /// Votes (prepare, commit) for a different digest to a subset, and
    /// validly SIGNED block-certificate shares for a different header to a
    /// subset (equivocation a third party can prove). Hunts duplicate or
    /// conflicting votes counted toward a quorum (besu #1736, flow-go
    /// #1830); the vote-log audit must find every such share.
    ConflictingVotes,
    /// Re-sends old frames, its own and others' (broadcast frames carry
    /// every receiver's MAC), to random replicas. Hunts messages of older
    /// views and slots acted on again (old fabric #1174 watermarks).
    Replay,
    /// Crafts frames of OLDER EPOCHS with its real keys: bodies it sent or
    /// saw, authenticated for an earlier epoch number, and the same with the
    /// epoch field relabelled to the current one. Every honest receiver must
    /// drop them. Hunts signatures and MACs that do not commit to the epoch
    /// (sui #5127) and epoch checks done after state is touched.
    ReplayOldEpoch,
    /// View changes with fabricated prepared claims and far-future views.
    /// Hunts new views that pick a value no correct replica prepared, and
    /// huge view numbers that make replicas loop (concord-bft #50, FISCO-BCOS
    /// #2211).
    LyingViewChange,
    /// HUGE sequence numbers: view changes whose prepared and pre-prepared
    /// claims sit at u64::MAX, just past the window and at its far edge;
    /// heartbeats, votes, proposals and block-signature shares at u64::MAX.
    /// Hunts overflow, unbounded allocation (`last - h` claims to decide)
    /// and state transfer chasing a height nobody has.
    HugeSeq,
    /// View changes that carry an OLD but valid stable checkpoint
    /// certificate (an earlier one it saw certified), with the claims of its
    /// window above it. Hunts watermarks moved back and values re-executed
    /// below the real checkpoint (old fabric #1174, #1119).
    StaleCheckpoint,
    /// Votes honestly, then "forgets": its view changes claim nothing
    /// prepared or pre-prepared and carry the genesis checkpoint (stale but
    /// valid), hiding what it voted for. Hunts commits on f+1 votes.
    Amnesia,
    /// As the new primary, collects view changes and installs the view but
    /// never sends the new-view, or sends it to only some replicas (chosen
    /// per view). Hunts replicas stuck between views (SmartBFT #622) and
    /// view-change timers that never fire again.
    WithholdNewView,
    /// Pre-prepare, prepare and commit frames whose MAC authenticator is
    /// valid for some receivers and corrupt for the others (the same subset
    /// on every resend of a slot). Those receivers must drop it. Hunts
    /// liveness that assumes all backups saw what one backup saw (Aardvark's
    /// MAC attack).
    PartialMac,
    /// Sends its messages only to a subset of the replicas (redrawn every
    /// few hundred ticks). Hunts progress that needs every correct replica
    /// to hear from every other one.
    Selective,
    /// As primary, never proposes the requests of some clients: it drops
    /// them on arrival and strips them from forwarded batches. The honest
    /// backups must complain and change view so they commit. Hunts missing
    /// censorship resistance.
    Censor,
    /// As primary, holds each proposal back until just under the backups'
    /// request timeout and heartbeats only just under the heartbeat timeout.
    /// Hunts throughput collapse under a primary that never trips a timer
    /// (Aardvark's slow primary); `sim --throughput` reports the figure.
    SlowPrimary,
    /// Bounded bursts of many frames per tick: garbage, truncated and
    /// bit-flipped frames, replays, and valid-looking votes, heartbeats and
    /// forwards. Honest replicas must stay live. Hunts unbounded queues and
    /// decoders that crash on malformed input (SmartBFT-Go fabric #279).
    Flood,
    /// Colludes with the other Byzantine replicas: one version of every
    /// proposal and vote to one half of the honest replicas, another to the
    /// other half. With more than f such replicas, safety must break (the
    /// negative control).
    Split,
}

impl Strategy {
    pub const ALL: [Strategy; 17] = [
        Strategy::Silent,
        Strategy::Equivocate,
        Strategy::EquivocateEach,
        Strategy::ConflictingVotes,
        Strategy::Replay,
        Strategy::ReplayOldEpoch,
        Strategy::LyingViewChange,
        Strategy::HugeSeq,
        Strategy::StaleCheckpoint,
        Strategy::Amnesia,
        Strategy::WithholdNewView,
        Strategy::PartialMac,
        Strategy::Selective,
        Strategy::Censor,
        Strategy::SlowPrimary,
        Strategy::Flood,
        Strategy::Split,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Silent => "silent",
            Strategy::Equivocate => "equivocate",
            Strategy::EquivocateEach => "equivocate-each",
            Strategy::ConflictingVotes => "conflicting-votes",
            Strategy::Replay => "replay",
            Strategy::ReplayOldEpoch => "replay-old-epoch",
            Strategy::LyingViewChange => "lying-view-change",
            Strategy::HugeSeq => "huge-seq",
            Strategy::StaleCheckpoint => "stale-checkpoint",
            Strategy::Amnesia => "amnesia",
            Strategy::WithholdNewView => "withhold-new-view",
            Strategy::PartialMac => "partial-mac",
            Strategy::Selective => "selective",
            Strategy::Censor => "censor",
            Strategy::SlowPrimary => "slow-primary",
            Strategy::Flood => "flood",
            Strategy::Split => "split",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|x| x.name() == s)
    }
}

/// The strategies one Byzantine replica combines, e.g. `equivocate+replay`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mix(BTreeSet<Strategy>);

impl Mix {
    pub fn single(s: Strategy) -> Self {
        Self(BTreeSet::from([s]))
    }

    /// `a+b+c`; every name must be known.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for part in s.split('+') {
            let part = part.trim();
            let strategy = Strategy::parse(part).ok_or_else(|| format!("unknown strategy {part:?}"))?;
            set.insert(strategy);
        }
        Ok(Self(set))
    }

    pub fn name(&self) -> String {
        self.0.iter().map(|s| s.name()).collect::<Vec<_>>().join("+")
    }

    pub fn has(&self, s: Strategy) -> bool {
        self.0.contains(&s)
    }

    pub fn strategies(&self) -> impl Iterator<Item = Strategy> + '_ {
        self.0.iter().copied()
    }
}

/// How the Byzantine replicas of a run get their mixes (per replica, per
/// seed, from the run's generator).
#[derive(Clone, Debug)]
pub enum Draw {
    /// Each Byzantine replica takes one of these mixes.
    OneOf(Vec<Mix>),
    /// Each Byzantine replica combines 1..=max strategies drawn from
    /// [`Strategy::ALL`] (`silent` only ever alone: it would mute the rest).
    Random { max: usize },
}

impl Draw {
    pub fn draw(&self, rng: &mut Rng) -> Mix {
        match self {
            Draw::OneOf(mixes) => rng.pick(mixes).clone(),
            Draw::Random { max } => {
                let k = rng.range(1, (*max).clamp(1, Strategy::ALL.len()) as u64) as usize;
                let mut set: BTreeSet<Strategy> =
                    rng.choose(Strategy::ALL.len(), k).into_iter().map(|i| Strategy::ALL[i]).collect();
                if set.len() > 1 {
                    set.remove(&Strategy::Silent);
                }
                Mix(set)
            }
        }
    }
}

/// The core's timers and limits, as far as an adversary that wants to stay
/// just under them needs to know them.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub window: u64,
    pub batch_count_max: usize,
    pub forward_timeout_ticks: u64,
    pub complain_timeout_ticks: u64,
    pub heartbeat_timeout_ticks: u64,
    /// The simulated network's largest one-way delay.
    pub delay_max: u64,
}

impl Timing {
    /// How long a slow primary may hold a proposal after it first saw the
    /// oldest request in it: the backups' complaint timeout, less the time
    /// a backup may wait before forwarding, less the network both ways and
    /// the prepare and commit rounds, less a margin.
    fn proposal_hold_ticks(&self) -> u64 {
        self.complain_timeout_ticks.saturating_sub(self.forward_timeout_ticks + 6 * self.delay_max + SLOW_MARGIN_TICKS)
    }

    /// The longest a slow primary stays silent: just under the heartbeat
    /// timeout, less the network delay.
    fn silence_ticks(&self) -> u64 {
        self.heartbeat_timeout_ticks.saturating_sub(2 * self.delay_max + SLOW_MARGIN_TICKS)
    }
}

/// What a Byzantine replica knows when it starts.
pub struct Context {
    pub me: ReplicaId,
    pub channel: String,
    pub epoch: Epoch,
    pub members: Vec<ReplicaId>,
    pub macs: MacKeys,
    pub crypto: SimCrypto,
    /// Honest replicas shown the other version by `split` and `equivocate`.
    pub side_b: BTreeSet<ReplicaId>,
    /// The genesis pseudo-certificate (the stalest valid checkpoint).
    pub genesis: Certificate,
    pub timing: Timing,
}

/// A frame put on the network by a Byzantine replica.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub to: ReplicaId,
    pub bytes: Vec<u8>,
    /// An honest receiver must drop this frame (the label says why).
    pub must_drop: Option<&'static str>,
}

impl Outgoing {
    fn new(to: ReplicaId, bytes: Vec<u8>) -> Self {
        Self { to, bytes, must_drop: None }
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

const RECORDED_MAX: usize = 512;
const KNOWN_ENVELOPES_MAX: usize = 64;
const FIRST_SEEN_MAX: usize = 4096;
const CHECKPOINTS_MAX: usize = 8;
const HELD_MAX: usize = 256;
const RELEASED_MAX: usize = 1024;
const NEW_VIEW_DECISIONS_MAX: usize = 16;
/// Ticks a slow primary keeps in hand below each timeout.
const SLOW_MARGIN_TICKS: u64 = 20;
/// Selective delivery redraws its subset this often.
const SELECTIVE_PERIOD_TICKS: u64 = 400;
/// Floods come in bursts: the first `FLOOD_BURST_TICKS` of every period.
const FLOOD_PERIOD_TICKS: u64 = 100;
const FLOOD_BURST_TICKS: u64 = 25;
/// The bound of a flood: frames per tick per flooding replica.
const FLOOD_FRAMES_PER_TICK_MAX: usize = 8;
const GARBAGE_BYTES_MAX: u64 = 300;

/// One Byzantine replica's rewriting of its traffic.
pub struct Adversary {
    pub mix: Mix,
    me: ReplicaId,
    channel: String,
    epoch: Epoch,
    members: Vec<ReplicaId>,
    macs: MacKeys,
    crypto: SimCrypto,
    side_b: BTreeSet<ReplicaId>,
    genesis: Certificate,
    timing: Timing,
    /// Per-replica secret salt for choices that must stay the same on every
    /// resend (which receivers get a corrupt MAC for a slot).
    salt: [u8; 32],
    /// Frames received and sent, for replays.
    recorded: VecDeque<Vec<u8>>,
    /// Valid client envelopes seen, to build alternative valid batches.
    known_envelopes: VecDeque<Vec<u8>>,
    /// When each request was first seen here (slow primary's deadlines).
    first_seen: HashMap<TxId, u64>,
    first_seen_order: VecDeque<TxId>,
    /// Checkpoint certificates seen, oldest first (stale-checkpoint).
    checkpoints: Vec<Certificate>,
    /// The latest view and block this replica's own traffic showed.
    view_seen: View,
    executed_seen: Seq,
    /// Proposals held back by a slow primary: (release at, slot, frames).
    held: Vec<(u64, (View, Seq), Vec<Outgoing>)>,
    released: BTreeSet<(View, Seq)>,
    last_sent: u64,
    selective: Option<(u64, BTreeSet<ReplicaId>)>,
    new_view_receivers: BTreeMap<View, BTreeSet<ReplicaId>>,
    censored_clients: BTreeSet<u32>,
}

impl Adversary {
    pub fn new(mix: Mix, ctx: Context, rng: &mut Rng) -> Self {
        assert!(ctx.epoch >= 1, "old-epoch replays need an epoch before the current one");
        let mut salt = [0u8; 32];
        for chunk in salt.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_be_bytes());
        }
        // One or two of the four simulated clients are censored.
        let censored_clients = (0..rng.range(1, 2)).map(|_| rng.range(0, 3) as u32).collect();
        Self {
            mix,
            me: ctx.me,
            channel: ctx.channel,
            epoch: ctx.epoch,
            members: ctx.members,
            macs: ctx.macs,
            crypto: ctx.crypto,
            side_b: ctx.side_b,
            genesis: ctx.genesis,
            timing: ctx.timing,
            salt,
            recorded: VecDeque::new(),
            known_envelopes: VecDeque::new(),
            first_seen: HashMap::new(),
            first_seen_order: VecDeque::new(),
            checkpoints: vec![],
            view_seen: 0,
            executed_seen: 0,
            held: vec![],
            released: BTreeSet::new(),
            last_sent: 0,
            selective: None,
            new_view_receivers: BTreeMap::new(),
            censored_clients,
        }
    }

    /// The replica switched key epochs: frames it crafts from now on are of
    /// the new epoch, under its keys; what it recorded of the old epoch is
    /// only good for replays (kept), its views and slots start afresh.
    /// A reconfiguration may have changed the members and this replica's
    /// identity key: it gets its replica's current ones.
    pub fn enter_epoch(
        &mut self,
        epoch: Epoch,
        members: Vec<ReplicaId>,
        macs: MacKeys,
        crypto: SimCrypto,
        base: Certificate,
    ) {
        self.epoch = epoch;
        self.members = members;
        self.macs = macs;
        self.crypto = crypto;
        self.genesis = base;
        self.checkpoints.clear();
        self.view_seen = 0;
        self.held.clear();
        self.released.clear();
        self.new_view_receivers.clear();
    }

    fn has(&self, s: Strategy) -> bool {
        self.mix.has(s)
    }

    fn others(&self) -> Vec<ReplicaId> {
        self.members.iter().copied().filter(|m| *m != self.me).collect()
    }

    fn seal_for(&self, epoch: Epoch, body: Body, to: ReplicaId) -> Frame {
        seal(&self.channel, epoch, self.me, body, &[to], &self.macs, &self.crypto)
    }

    fn seal_to(&self, body: Body, to: ReplicaId) -> Outgoing {
        Outgoing::new(to, self.seal_for(self.epoch, body, to).encode())
    }

    fn record(&mut self, bytes: &[u8]) {
        if self.recorded.len() >= RECORDED_MAX {
            self.recorded.pop_front();
        }
        self.recorded.push_back(bytes.to_vec());
    }

    /// Remembers a client envelope: when it was first seen, and the
    /// envelope itself (it is valid: the core admitted or proposed it).
    fn note_envelope(&mut self, envelope: &[u8], now: u64) {
        let Some(id) = SimValidator.tx_id(envelope) else { return };
        if self.first_seen.contains_key(&id) {
            return;
        }
        if self.first_seen_order.len() >= FIRST_SEEN_MAX {
            if let Some(old) = self.first_seen_order.pop_front() {
                self.first_seen.remove(&old);
            }
        }
        self.first_seen.insert(id, now);
        self.first_seen_order.push_back(id);
        if SimValidator.validate(envelope).is_ok() {
            if self.known_envelopes.len() >= KNOWN_ENVELOPES_MAX {
                self.known_envelopes.pop_front();
            }
            self.known_envelopes.push_back(envelope.to_vec());
        }
    }

    fn censored(&self, envelope: &[u8]) -> bool {
        self.has(Strategy::Censor) && envelope_client(envelope).is_some_and(|c| self.censored_clients.contains(&c))
    }

    /// A client request arriving at this replica; false: drop it (censor).
    pub fn request(&mut self, envelope: &[u8], now: u64) -> bool {
        if self.censored(envelope) {
            return false;
        }
        self.note_envelope(envelope, now);
        true
    }

    /// A checkpoint certificate this replica's core formed or adopted.
    pub fn certified(&mut self, cert: &Certificate, checkpoint_interval: u64) {
        if cert.seq == 0 || !cert.seq.is_multiple_of(checkpoint_interval) {
            return;
        }
        if self.checkpoints.iter().any(|c| c.seq == cert.seq) {
            return;
        }
        if self.checkpoints.len() >= CHECKPOINTS_MAX {
            // Keep the oldest (the stalest) and forget the middle.
            self.checkpoints.remove(1.min(self.checkpoints.len() - 1));
        }
        self.checkpoints.push(cert.clone());
        self.checkpoints.sort_by_key(|c| c.seq);
    }

    /// A frame arriving at this replica: seen, and possibly filtered before
    /// its core gets it (a censoring primary strips censored requests from
    /// forwards, re-MAC'ing the rest with the pairwise key it shares with
    /// the sender). `None`: the core never sees it.
    pub fn inbound(&mut self, bytes: Vec<u8>, now: u64, collusion: &mut Collusion) -> Option<Vec<u8>> {
        self.record(&bytes);
        let Ok(frame) = Frame::decode(&bytes, &Limits::default()) else { return Some(bytes) };
        match &frame.body {
            Body::PrePrepare { batch, .. } => {
                collusion.learn(batch);
                for e in &batch.envelopes {
                    self.note_envelope(e, now);
                }
                Some(bytes)
            }
            Body::Forward { envelopes } => {
                let kept: Vec<Vec<u8>> = envelopes.iter().filter(|e| !self.censored(e)).cloned().collect();
                for e in &kept {
                    self.note_envelope(e, now);
                }
                if kept.len() == envelopes.len() {
                    return Some(bytes);
                }
                if kept.is_empty() || frame.epoch != self.epoch || frame.channel != self.channel {
                    return None;
                }
                let body = Body::Forward { envelopes: kept };
                let authenticated = Frame::authenticated_bytes(&frame.channel, frame.epoch, frame.sender, &body);
                let mac = self.macs.mac(frame.sender, &authenticated)?;
                let auth = Auth::Macs(vec![(self.me, mac)]);
                Some(Frame { body, auth, ..frame }.encode())
            }
            Body::Prepare { .. }
            | Body::Commit { .. }
            | Body::BlockSig { .. }
            | Body::ViewChange(_)
            | Body::NewView(_)
            | Body::Heartbeat { .. } => Some(bytes),
        }
    }

    /// Notes what this replica's own core just sent.
    fn note_own(&mut self, frame: &Frame, bytes: &[u8], collusion: &mut Collusion) {
        self.record(bytes);
        match &frame.body {
            Body::PrePrepare { view, batch, .. } => {
                collusion.learn(batch);
                self.view_seen = self.view_seen.max(*view);
            }
            Body::Prepare { view, .. } | Body::Commit { view, .. } | Body::Heartbeat { view, .. } => {
                self.view_seen = self.view_seen.max(*view);
            }
            Body::BlockSig { seq, .. } => self.executed_seen = self.executed_seen.max(*seq),
            Body::ViewChange(vc) => self.executed_seen = self.executed_seen.max(vc.checkpoint.seq),
            Body::NewView(nv) => self.view_seen = self.view_seen.max(nv.view),
            Body::Forward { .. } => {}
        }
    }

    /// Rewrites one outgoing frame of this replica's core, addressed to `to`.
    pub fn rewrite(
        &mut self,
        frame: &[u8],
        to: &[ReplicaId],
        now: u64,
        collusion: &mut Collusion,
        rng: &mut Rng,
    ) -> Vec<Outgoing> {
        let plain = || to.iter().map(|t| Outgoing::new(*t, frame.to_vec())).collect::<Vec<_>>();
        let Ok(decoded) = Frame::decode(frame, &Limits::default()) else { return plain() };
        self.note_own(&decoded, frame, collusion);
        if self.has(Strategy::Silent) {
            return vec![];
        }
        // 1. What each receiver is told.
        let mut out = match self.rewrite_bodies(&decoded.body, to, collusion, rng) {
            Some(bodies) => bodies.into_iter().map(|(t, body)| self.seal_to(body, t)).collect(),
            None => plain(),
        };
        // 2. Who receives it.
        if self.has(Strategy::WithholdNewView) {
            if let Body::NewView(nv) = &decoded.body {
                let allowed = self.new_view_receivers(nv.view, rng);
                out.retain(|o| allowed.contains(&o.to));
            }
        }
        if self.has(Strategy::Selective) {
            let subset = self.selective_subset(now, rng);
            out.retain(|o| subset.contains(&o.to));
        }
        // 3. Authenticators.
        if self.has(Strategy::PartialMac) {
            self.corrupt_macs(&decoded.body, &mut out);
        }
        // 4. Timing.
        if self.has(Strategy::SlowPrimary) {
            out = self.slow(&decoded.body, out, now);
        }
        if !out.is_empty() {
            self.last_sent = now;
        }
        out
    }

    /// Stage 1: the bodies each receiver gets, or `None` to send the
    /// core's frame unchanged.
    fn rewrite_bodies(
        &self,
        body: &Body,
        to: &[ReplicaId],
        collusion: &Collusion,
        rng: &mut Rng,
    ) -> Option<Vec<(ReplicaId, Body)>> {
        match body {
            Body::PrePrepare { view, seq, batch } => {
                let split = || self.split_proposals(body, to, collusion, true);
                let each = || self.equivocate_each(*view, *seq, batch, to);
                let two_way = || self.split_proposals(body, to, collusion, false);
                let mut chosen = None;
                if self.has(Strategy::Split) {
                    chosen = split();
                }
                if chosen.is_none() && self.has(Strategy::EquivocateEach) {
                    chosen = each();
                }
                if chosen.is_none() && self.has(Strategy::Equivocate) {
                    chosen = two_way();
                }
                chosen
            }
            Body::Prepare { view, seq, .. } | Body::Commit { view, seq, .. } => {
                if self.has(Strategy::Split) {
                    if let Some(split) = self.split_proposals(body, to, collusion, true) {
                        return Some(split);
                    }
                }
                if !self.has(Strategy::ConflictingVotes) {
                    return None;
                }
                let is_prepare = matches!(body, Body::Prepare { .. });
                Some(
                    to.iter()
                        .map(|t| {
                            if !rng.chance(500) {
                                return (*t, body.clone());
                            }
                            let mut digest = [0u8; 32];
                            digest[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
                            let (view, seq) = (*view, *seq);
                            let lie = if is_prepare {
                                Body::Prepare { view, seq, digest }
                            } else {
                                Body::Commit { view, seq, digest }
                            };
                            (*t, lie)
                        })
                        .collect(),
                )
            }
            Body::ViewChange(vc) => {
                let lies = [Strategy::Amnesia, Strategy::StaleCheckpoint, Strategy::LyingViewChange, Strategy::HugeSeq];
                if !lies.iter().any(|s| self.has(*s)) {
                    return None;
                }
                let mut list = vec![vc.clone()];
                if self.has(Strategy::Amnesia) {
                    for v in &mut list {
                        v.prepared.clear();
                        v.preprepared.clear();
                        v.checkpoint = self.genesis.clone();
                    }
                }
                if self.has(Strategy::StaleCheckpoint) {
                    let stale = self.stale_checkpoint(list[0].checkpoint.seq, rng);
                    for v in &mut list {
                        if let Some(c) = &stale {
                            let (low, high) = (c.seq, c.seq + self.timing.window);
                            v.checkpoint = c.clone();
                            v.prepared.retain(|p| p.seq > low && p.seq <= high);
                            v.preprepared.retain(|q| q.seq > low && q.seq <= high);
                        }
                    }
                }
                if self.has(Strategy::LyingViewChange) {
                    list = list.into_iter().flat_map(lying_view_changes).collect();
                }
                if self.has(Strategy::HugeSeq) {
                    let window = self.timing.window;
                    list = list.into_iter().flat_map(|v| huge_seq_view_changes(v, window)).collect();
                }
                Some(to.iter().flat_map(|t| list.iter().map(move |v| (*t, Body::ViewChange(v.clone())))).collect())
            }
            Body::BlockSig { seq, .. } => {
                if !self.has(Strategy::ConflictingVotes) {
                    return None;
                }
                Some(
                    to.iter()
                        .map(|t| {
                            if !rng.chance(500) {
                                return (*t, body.clone());
                            }
                            let mut header_hash = [0u8; 32];
                            header_hash[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
                            let bytes = channels::block::certificate_signing_bytes(
                                &self.channel,
                                self.epoch,
                                *seq,
                                &header_hash,
                            );
                            let signature = self.crypto.sign(&bytes);
                            (*t, Body::BlockSig { seq: *seq, header_hash, signature })
                        })
                        .collect(),
                )
            }
            Body::NewView(_) | Body::Forward { .. } | Body::Heartbeat { .. } => None,
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
    ) -> Option<Vec<(ReplicaId, Body)>> {
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
                    (*t, body)
                })
                .collect(),
        )
    }

    /// A different valid batch for every backup (as far as there are
    /// distinct ones): the proposal itself, then without one envelope,
    /// rotated, reversed, empty, or with one more envelope it has seen.
    fn equivocate_each(&self, view: View, seq: Seq, batch: &Batch, to: &[ReplicaId]) -> Option<Vec<(ReplicaId, Body)>> {
        if to.len() < 2 {
            return None;
        }
        let m = batch.envelopes.len();
        let mut candidates: Vec<Batch> = vec![batch.clone(), Batch::empty()];
        for i in 0..m {
            let mut b = batch.clone();
            b.envelopes.remove(i);
            candidates.push(b);
        }
        for r in 1..m {
            let mut b = batch.clone();
            b.envelopes.rotate_left(r);
            candidates.push(b);
        }
        let mut reversed = batch.clone();
        reversed.envelopes.reverse();
        candidates.push(reversed);
        if m < self.timing.batch_count_max {
            let in_batch: BTreeSet<TxId> = batch.envelopes.iter().filter_map(|e| SimValidator.tx_id(e)).collect();
            for e in &self.known_envelopes {
                if SimValidator.tx_id(e).is_some_and(|id| !in_batch.contains(&id)) {
                    let mut b = batch.clone();
                    b.envelopes.push(e.clone());
                    candidates.push(b);
                }
            }
        }
        let mut seen = BTreeSet::new();
        candidates.retain(|b| seen.insert(b.digest()));
        Some(
            to.iter()
                .enumerate()
                .map(|(k, t)| {
                    let b = candidates[k % candidates.len()].clone();
                    (*t, Body::PrePrepare { view, seq, batch: b })
                })
                .collect(),
        )
    }

    /// An older valid checkpoint than `current`, if one was seen (the
    /// genesis pseudo-certificate when the current one is above it).
    fn stale_checkpoint(&self, current: Seq, rng: &mut Rng) -> Option<Certificate> {
        let older: Vec<&Certificate> = self.checkpoints.iter().filter(|c| c.seq < current).collect();
        if older.is_empty() {
            return (current > 0).then(|| self.genesis.clone());
        }
        Some((*rng.pick(&older)).clone())
    }

    /// Who gets this view's new-view from a withholding primary: nobody, or
    /// a random strict subset, decided once per view.
    fn new_view_receivers(&mut self, view: View, rng: &mut Rng) -> BTreeSet<ReplicaId> {
        if let Some(set) = self.new_view_receivers.get(&view) {
            return set.clone();
        }
        let others = self.others();
        let set: BTreeSet<ReplicaId> = if others.len() < 2 || rng.chance(500) {
            BTreeSet::new()
        } else {
            let k = rng.range(1, others.len() as u64 - 1) as usize;
            rng.choose(others.len(), k).into_iter().map(|i| others[i]).collect()
        };
        if self.new_view_receivers.len() >= NEW_VIEW_DECISIONS_MAX {
            self.new_view_receivers.pop_first();
        }
        self.new_view_receivers.insert(view, set.clone());
        set
    }

    /// The replicas that hear from a selective replica: a random non-empty
    /// strict subset of the others, redrawn every period.
    fn selective_subset(&mut self, now: u64, rng: &mut Rng) -> BTreeSet<ReplicaId> {
        let period = now / SELECTIVE_PERIOD_TICKS;
        if let Some((p, set)) = &self.selective {
            if *p == period {
                return set.clone();
            }
        }
        let others = self.others();
        let k = if others.len() < 2 { others.len() } else { rng.range(1, others.len() as u64 - 1) as usize };
        let set: BTreeSet<ReplicaId> = rng.choose(others.len(), k).into_iter().map(|i| others[i]).collect();
        self.selective = Some((period, set.clone()));
        set
    }

    /// Stage 3: for pre-prepares, prepares and commits, the MACs of a
    /// subset of the receivers (fixed per slot and kind) are corrupted in
    /// the frame every receiver gets; that subset must drop it.
    fn corrupt_macs(&self, body: &Body, out: &mut [Outgoing]) {
        let (kind, view, seq) = match body {
            Body::PrePrepare { view, seq, .. } => (1u8, *view, *seq),
            Body::Prepare { view, seq, .. } => (2, *view, *seq),
            Body::Commit { view, seq, .. } => (3, *view, *seq),
            Body::BlockSig { .. }
            | Body::ViewChange(_)
            | Body::NewView(_)
            | Body::Forward { .. }
            | Body::Heartbeat { .. } => return,
        };
        let others = self.others();
        if others.len() < 2 {
            return;
        }
        let mut slot = vec![kind];
        slot.extend_from_slice(&view.to_be_bytes());
        slot.extend_from_slice(&seq.to_be_bytes());
        let h = hmac_sha256(&self.salt, &slot);
        let count = 1 + (h[0] as usize) % (others.len() - 1);
        let mut ranked: Vec<(Digest, ReplicaId)> = others
            .iter()
            .map(|r| {
                let mut key = slot.clone();
                key.extend_from_slice(&r.to_be_bytes());
                (hmac_sha256(&self.salt, &key), *r)
            })
            .collect();
        ranked.sort();
        let bad: BTreeSet<ReplicaId> = ranked.into_iter().take(count).map(|(_, r)| r).collect();
        for o in out.iter_mut() {
            let Ok(mut frame) = Frame::decode(&o.bytes, &Limits::default()) else { continue };
            let Auth::Macs(tags) = &mut frame.auth else { continue };
            let mut corrupted = false;
            for (r, tag) in tags.iter_mut() {
                if bad.contains(r) {
                    tag[0] ^= 0x5A;
                    corrupted |= *r == o.to;
                }
            }
            o.bytes = frame.encode();
            if corrupted {
                o.must_drop = Some("corrupt-mac");
            }
        }
    }

    /// Stage 4: a slow primary holds each proposal until just under the
    /// backups' request timeout (measured from when it first saw the oldest
    /// request in it) and sends heartbeats only just under their timeout.
    fn slow(&mut self, body: &Body, out: Vec<Outgoing>, now: u64) -> Vec<Outgoing> {
        match body {
            Body::Heartbeat { .. } => {
                if now.saturating_sub(self.last_sent) < self.timing.silence_ticks() {
                    vec![]
                } else {
                    out
                }
            }
            Body::PrePrepare { view, seq, batch } => {
                let slot = (*view, *seq);
                if self.released.contains(&slot) {
                    return out;
                }
                if self.held.iter().any(|(_, s, _)| *s == slot) || self.held.len() >= HELD_MAX {
                    // A resend of a proposal still held back.
                    return vec![];
                }
                let first = batch
                    .envelopes
                    .iter()
                    .filter_map(|e| SimValidator.tx_id(e).and_then(|id| self.first_seen.get(&id).copied()))
                    .min()
                    .unwrap_or(now);
                let release_at = (first + self.timing.proposal_hold_ticks()).max(now);
                self.held.push((release_at, slot, out));
                vec![]
            }
            Body::Prepare { .. }
            | Body::Commit { .. }
            | Body::BlockSig { .. }
            | Body::ViewChange(_)
            | Body::NewView(_)
            | Body::Forward { .. } => out,
        }
    }

    /// Extra traffic on a tick: replays, old-epoch frames, huge sequence
    /// numbers, floods, and held proposals whose time has come.
    pub fn on_tick(&mut self, now: u64, rng: &mut Rng) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if self.has(Strategy::SlowPrimary) {
            let (due, kept): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(at, _, _)| *at <= now);
            self.held = kept;
            for (_, slot, frames) in due {
                if self.released.len() >= RELEASED_MAX {
                    self.released.pop_first();
                }
                self.released.insert(slot);
                out.extend(frames);
            }
        }
        if self.has(Strategy::Replay) && !self.recorded.is_empty() && rng.chance(100) {
            let i = rng.range(0, self.recorded.len() as u64 - 1) as usize;
            let to = *rng.pick(&self.members);
            if to != self.me {
                out.push(Outgoing::new(to, self.recorded[i].clone()));
            }
        }
        if self.has(Strategy::ReplayOldEpoch) && rng.chance(50) {
            out.extend(self.old_epoch_frames(rng));
        }
        if self.has(Strategy::HugeSeq) && rng.chance(20) {
            out.extend(self.huge_seq_frame(rng));
        }
        if self.has(Strategy::Flood) && now % FLOOD_PERIOD_TICKS < FLOOD_BURST_TICKS {
            for _ in 0..FLOOD_FRAMES_PER_TICK_MAX {
                out.extend(self.flood_frame(rng));
            }
        }
        if !out.is_empty() {
            self.last_sent = now;
        }
        out
    }

    /// A body it sent or saw, authenticated with its own keys for an older
    /// epoch; half the time also relabelled with the current epoch number
    /// (its authenticator still covers the old one). Both must be dropped.
    fn old_epoch_frames(&mut self, rng: &mut Rng) -> Vec<Outgoing> {
        let others = self.others();
        if self.recorded.is_empty() || others.is_empty() {
            return vec![];
        }
        let i = rng.range(0, self.recorded.len() as u64 - 1) as usize;
        let Ok(old) = Frame::decode(&self.recorded[i], &Limits::default()) else { return vec![] };
        let to = *rng.pick(&others);
        let epoch = rng.range(0, self.epoch - 1);
        let frame = self.seal_for(epoch, old.body, to);
        let mut out = vec![Outgoing { to, bytes: frame.encode(), must_drop: Some("old-epoch") }];
        if rng.chance(500) {
            let relabelled = Frame { epoch: self.epoch, ..frame };
            out.push(Outgoing { to, bytes: relabelled.encode(), must_drop: Some("old-epoch-relabelled") });
        }
        out
    }

    /// One frame with a huge sequence number, validly authenticated.
    fn huge_seq_frame(&mut self, rng: &mut Rng) -> Vec<Outgoing> {
        let others = self.others();
        if others.is_empty() {
            return vec![];
        }
        let to = *rng.pick(&others);
        let view = self.view_seen;
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
        let (body, must_drop) = match rng.range(0, 4) {
            0 => (Body::Heartbeat { view, executed: u64::MAX }, None),
            // Far outside every window: dropped before touching state.
            1 => (Body::Prepare { view, seq: u64::MAX, digest }, Some("huge-seq")),
            2 => (Body::PrePrepare { view, seq: u64::MAX, batch: Batch::empty() }, Some("huge-seq")),
            3 => (Body::Commit { view, seq: self.executed_seen + 4 * self.timing.window + 1, digest }, None),
            _ => {
                let bytes = channels::block::certificate_signing_bytes(&self.channel, self.epoch, u64::MAX, &digest);
                let signature = self.crypto.sign(&bytes);
                (Body::BlockSig { seq: u64::MAX, header_hash: digest, signature }, None)
            }
        };
        let mut o = self.seal_to(body, to);
        o.must_drop = must_drop;
        vec![o]
    }

    /// One frame of a flood, to a random other replica.
    fn flood_frame(&mut self, rng: &mut Rng) -> Vec<Outgoing> {
        let others = self.others();
        if others.is_empty() {
            return vec![];
        }
        let to = *rng.pick(&others);
        let recorded = (!self.recorded.is_empty())
            .then(|| self.recorded[rng.range(0, self.recorded.len() as u64 - 1) as usize].clone());
        let view = self.view_seen;
        let low = self.executed_seen;
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
        match (rng.range(0, 7), recorded) {
            (1, Some(r)) if r.len() > 1 => {
                // A truncated frame never decodes.
                let cut = rng.range(0, r.len() as u64 - 1) as usize;
                vec![Outgoing { to, bytes: r[..cut].to_vec(), must_drop: Some("truncated") }]
            }
            (2, Some(mut r)) if !r.is_empty() => {
                let i = rng.range(0, r.len() as u64 - 1) as usize;
                r[i] ^= 1 << rng.range(0, 7);
                vec![Outgoing::new(to, r)]
            }
            (3, Some(r)) => vec![Outgoing::new(to, r)],
            (4, _) => {
                let seq = low + rng.range(1, self.timing.window);
                vec![self.seal_to(Body::Prepare { view, seq, digest }, to)]
            }
            (5, _) => {
                let seq = low + rng.range(1, self.timing.window);
                vec![self.seal_to(Body::Commit { view, seq, digest }, to)]
            }
            (6, _) => vec![self.seal_to(Body::Heartbeat { view, executed: low }, to)],
            (7, _) if !self.known_envelopes.is_empty() => {
                let k = rng.range(1, self.known_envelopes.len().min(4) as u64) as usize;
                let envelopes = (0..k).map(|_| rng.pick(self.known_envelopes.make_contiguous()).clone()).collect();
                vec![self.seal_to(Body::Forward { envelopes }, to)]
            }
            _ => {
                let len = rng.range(0, GARBAGE_BYTES_MAX) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                let must_drop = Frame::decode(&bytes, &Limits::default()).is_err().then_some("garbage");
                vec![Outgoing { to, bytes, must_drop }]
            }
        }
    }
}

/// The lying view change: a fabricated prepared claim right above the
/// checkpoint, and the same again for a far-future view.
fn lying_view_changes(mut vc: crate::consensus::message::ViewChange) -> Vec<crate::consensus::message::ViewChange> {
    let low = vc.checkpoint.seq;
    let fake = Batch { envelopes: vec![b"fabricated".to_vec()] };
    vc.prepared.retain(|p| p.seq != low + 1);
    vc.prepared.push(PreparedClaim { seq: low + 1, view: vc.new_view - 1, batch: fake.clone() });
    vc.preprepared.push(PrePreparedClaim { seq: low + 1, view: vc.new_view - 1, digest: fake.digest() });
    let mut far = vc.clone();
    far.new_view = far.new_view.saturating_add(1_000_000);
    vec![vc, far]
}

/// Huge sequence numbers in view changes: claims at u64::MAX and just past
/// the window (structurally invalid), at the far edge of the window (valid:
/// the new view must decide every slot up to it), and a view change for
/// view u64::MAX. Only the edge one can be accepted; it comes first.
fn huge_seq_view_changes(
    vc: crate::consensus::message::ViewChange,
    window: u64,
) -> Vec<crate::consensus::message::ViewChange> {
    let low = vc.checkpoint.seq;
    let fake = Batch { envelopes: vec![b"fabricated-huge".to_vec()] };
    let claim_at = |mut v: crate::consensus::message::ViewChange, seq: Seq| {
        let view = v.new_view.saturating_sub(1);
        v.prepared.retain(|p| p.seq != seq);
        v.prepared.push(PreparedClaim { seq, view, batch: fake.clone() });
        v.preprepared.retain(|q| q.seq != seq);
        v.preprepared.push(PrePreparedClaim { seq, view, digest: fake.digest() });
        v
    };
    let edge = claim_at(vc.clone(), low + window);
    let past = claim_at(vc.clone(), low + window + 1);
    let max = claim_at(vc.clone(), u64::MAX);
    let mut last_view = claim_at(vc, u64::MAX - 1);
    last_view.new_view = u64::MAX;
    vec![edge, past, max, last_view]
}

//! One PBFT replica of one channel: a deterministic state machine.
//!
//! `step(input) -> outputs`. No clock (time is `Input::Tick`), no I/O (the
//! outputs say what to send, persist and deliver), no randomness. Every vote
//! leaves through [`Replica::cast`], the one place that checks "have I voted
//! differently for this (kind, view, seq)?" and asks for the vote to be made
//! durable before the message that reveals it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use sha2::{Digest as _, Sha256};

use super::auth::{self, Crypto, MacKeys};
use super::message::{
    Batch, Body, Certificate, Digest, Frame, NewView, PrePreparedClaim, PreparedClaim, ReplicaId, Seq,
    SignedViewChange, View, ViewChange,
};
use super::quorum::{self, Recorded, Votes};
use super::types::{
    epoch_end_after, Block, CertifiedBlock, Config, DropReason, Durable, Input, Output, Refusal, TxId, Validator,
    ViewChangeReason, VoteKind,
};
use super::view_change::{self, Selection};

mod conflicts;
mod waiting;

/// How far ahead of the current view a view change is remembered.
const VIEW_AHEAD_MAX: u64 = 64;
/// No view above this is ever entered (a new view beyond it is dropped), so
/// no arithmetic on views can overflow.
const VIEW_MAX: View = u64::MAX / 2;
/// Pre-prepared claims kept per sequence number (the latest views).
const PREPREPARED_PER_SEQ_MAX: usize = 4;
/// The view-change timeout doubles at most this many times.
const BACKOFF_DOUBLINGS_MAX: u32 = 6;
/// Executed blocks remembered while their certificate is missing.
const UNCERTIFIED_MAX: usize = 4096;
/// A backup's tick looks at most this many batches' worth of the oldest
/// requests for ones to relay.
const FORWARD_SCAN_BATCHES: usize = 4;
/// Blocks asked for in one state-transfer request.
const FETCH_BLOCKS_MAX: u64 = 256;

/// Where the ledger stands when a replica starts: what the shell has stored.
#[derive(Clone, Debug)]
pub struct Tip {
    /// Last block stored (0 = only genesis).
    pub executed: Seq,
    pub header_hash: Digest,
    /// Transaction ids of the most recent blocks, oldest first.
    pub recent: Vec<(Seq, Vec<TxId>)>,
    /// The latest stable checkpoint (certificate of a block at a multiple of
    /// K, or the genesis pseudo-certificate).
    pub stable: Certificate,
    /// Stored blocks still waiting for their certificate: (seq, header hash).
    /// This replica signs its share again after a restart.
    pub uncertified: Vec<(Seq, Digest)>,
    /// Announcements for the next epoch in this epoch's stored blocks, in
    /// ledger order: (block, consenter). The shell finds them again after a
    /// restart with [`Validator::announcement`].
    pub announced: Vec<(Seq, ReplicaId)>,
    /// The first block of this epoch holding a reconfiguration
    /// ([`Validator::reconfiguration`]), if any.
    pub reconfigured: Option<Seq>,
}

impl Tip {
    /// A fresh ledger holding only the genesis block.
    pub fn genesis(genesis_hash: Digest) -> Self {
        Self {
            executed: 0,
            header_hash: genesis_hash,
            recent: vec![],
            stable: Certificate { seq: 0, header_hash: genesis_hash, signatures: vec![] },
            uncertified: vec![],
            announced: vec![],
            reconfigured: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    Changing { target: View, since: u64, doublings: u32 },
}

/// Consensus state of one sequence number.
#[derive(Default, Debug)]
struct Slot {
    /// The pre-prepare accepted in the current view: (view, digest).
    proposal: Option<(View, Digest)>,
    accepted_at: u64,
    prepares: Votes,
    commits: Votes,
    /// P: the latest view in which this replica prepared, and what.
    prepared: Option<(View, Digest)>,
    /// Q: views in which this replica accepted a pre-prepare, per digest.
    preprepared: Vec<(View, Digest)>,
    committed: Option<Digest>,
}

#[derive(Debug)]
struct Pending {
    envelope: Vec<u8>,
    order: u64,
    arrived: u64,
    forwarded: u64,
    kind: BatchKind,
}

/// What a batch may hold: envelopes of one kind only, so that every key
/// rotation and every reconfiguration shows in the ledger as a block of its
/// own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum BatchKind {
    /// Client transactions.
    Transactions,
    /// Key announcements for the next epoch (batched together).
    Announcements,
    /// One reconfiguration, alone in its block.
    Reconfiguration,
}

/// Counters the shell exports as metrics.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub dropped: BTreeMap<DropReason, u64>,
    pub view_changes: BTreeMap<ViewChangeReason, u64>,
    pub conflicting_votes: u64,
    pub refused_double_votes: u64,
    pub proposals: u64,
}

/// A PBFT replica.
pub struct Replica {
    cfg: Config,
    f: usize,
    quorum: usize,
    crypto: Box<dyn Crypto + Send>,
    macs: MacKeys,
    validator: Box<dyn Validator + Send>,
    now: u64,
    view: View,
    mode: Mode,
    /// Votes cast (mirror of the durable vote records).
    voted: HashMap<(VoteKind, View, Seq), Digest>,
    executed: Seq,
    last_header: Digest,
    stable: Certificate,
    log: BTreeMap<Seq, Slot>,
    batches: HashMap<Digest, Batch>,
    /// Next sequence number the primary proposes.
    next_seq: Seq,
    pool: HashMap<TxId, Pending>,
    pool_order: BTreeMap<u64, TxId>,
    /// The pool's requests no proposal of this view holds yet.
    waiting: waiting::Waiting,
    pool_counter: u64,
    recent: VecDeque<(Seq, Vec<TxId>)>,
    recent_ids: HashSet<TxId>,
    /// Block signature shares per seq: signer -> (header hash, signature).
    block_sigs: BTreeMap<Seq, BTreeMap<ReplicaId, (Digest, Vec<u8>)>>,
    /// Executed blocks not yet certified: seq -> header hash.
    uncertified: BTreeMap<Seq, Digest>,
    /// The highest block each peer has shown (by a valid signature share).
    peer_executed: BTreeMap<ReplicaId, Seq>,
    view_changes: BTreeMap<View, BTreeMap<ReplicaId, SignedViewChange>>,
    new_view_sent_to: BTreeMap<ReplicaId, u64>,
    my_view_change: Option<SignedViewChange>,
    my_new_view: Option<NewView>,
    last_from_primary: u64,
    last_heartbeat: u64,
    last_resend: u64,
    last_progress: u64,
    last_fetch: Option<u64>,
    last_certified: u64,
    /// The highest block known to exist (from certificates, or the primary).
    height_hint: Seq,
    /// Consenters whose announcement for the next epoch was executed.
    announced: BTreeSet<ReplicaId>,
    /// The last block of this epoch, once a quorum announced.
    epoch_end: Option<Seq>,
    /// The epoch ended (its last block is certified): no more input.
    finished: bool,
    stats: Stats,
}

impl Replica {
    /// A replica starting from `tip` with the durable `records` it wrote
    /// before (empty for a brand-new replica).
    pub fn new(
        cfg: Config,
        crypto: Box<dyn Crypto + Send>,
        macs: MacKeys,
        validator: Box<dyn Validator + Send>,
        tip: Tip,
        records: &[Durable],
    ) -> Result<Self, String> {
        cfg.check()?;
        let n = cfg.members.len();
        let mut r = Replica {
            f: quorum::max_faulty(n),
            quorum: quorum::quorum(n),
            crypto,
            macs,
            validator,
            now: 0,
            view: 0,
            mode: Mode::Normal,
            voted: HashMap::new(),
            executed: tip.executed,
            last_header: tip.header_hash,
            stable: tip.stable.clone(),
            log: BTreeMap::new(),
            batches: HashMap::new(),
            next_seq: tip.executed + 1,
            pool: HashMap::new(),
            pool_order: BTreeMap::new(),
            waiting: waiting::Waiting::default(),
            pool_counter: 0,
            recent: VecDeque::new(),
            recent_ids: HashSet::new(),
            block_sigs: BTreeMap::new(),
            uncertified: BTreeMap::new(),
            peer_executed: BTreeMap::new(),
            view_changes: BTreeMap::new(),
            new_view_sent_to: BTreeMap::new(),
            my_view_change: None,
            my_new_view: None,
            // A replica that just started gives its links one view-change
            // timeout to come up (peers redial with backoff) before it
            // suspects the primary: heard "in the future" until then.
            last_from_primary: cfg.view_change_timeout_ticks,
            last_heartbeat: 0,
            last_resend: 0,
            last_progress: 0,
            last_fetch: None,
            last_certified: 0,
            height_hint: 0,
            announced: BTreeSet::new(),
            epoch_end: None,
            finished: false,
            stats: Stats::default(),
            cfg,
        };
        for (seq, ids) in tip.recent {
            r.remember(seq, ids);
        }
        let executed = r.executed;
        for (seq, consenter) in tip.announced.into_iter().filter(|(s, _)| *s <= executed) {
            r.count_announcement(seq, consenter);
        }
        if let Some(seq) = tip.reconfigured.filter(|s| *s <= executed && *s > r.cfg.epoch_base) {
            r.end_epoch_after(seq);
        }
        let oldest = r.executed.saturating_sub(UNCERTIFIED_MAX as u64);
        r.uncertified = tip.uncertified.into_iter().filter(|(s, _)| *s > oldest && *s <= r.executed).collect();
        r.restore(records);
        Ok(r)
    }

    fn restore(&mut self, records: &[Durable]) {
        for rec in records {
            match rec {
                Durable::View { view, changing } => {
                    if *view > self.view || (*view == self.view && *changing) {
                        self.view = *view;
                        self.mode = if *changing {
                            Mode::Changing { target: *view, since: 0, doublings: 0 }
                        } else {
                            Mode::Normal
                        };
                    }
                }
                Durable::Vote { kind, view, seq, digest } => {
                    self.voted.insert((*kind, *view, *seq), *digest);
                }
                Durable::Batch { batch, .. } => {
                    self.batches.insert(batch.digest(), batch.clone());
                }
                Durable::ViewChangeSent(svc) => self.my_view_change = Some(svc.clone()),
                Durable::NewViewSent(nv) => self.my_new_view = Some(nv.clone()),
                Durable::Stable(cert) => {
                    if cert.seq > self.stable.seq && cert.seq <= self.executed {
                        self.stable = cert.clone();
                    }
                }
            }
        }
        if let Mode::Changing { target, .. } = self.mode {
            // A view change in progress: its target is not installed yet;
            // the view is the last one installed (compaction keeps its
            // record), so that its primary's heartbeats still tell this
            // replica how far the others are.
            self.view = self.installed_view_from(records);
            self.mode = Mode::Changing { target, since: 0, doublings: 0 };
        }
        // Rebuild P and Q (and the proposals of the current view) from votes.
        let stable = self.stable.seq;
        let mut votes: Vec<_> = self.voted.iter().map(|(k, d)| (*k, *d)).collect();
        // A fixed order (the hash map's is not): restarts replay exactly.
        votes.sort_unstable();
        for ((kind, view, seq), digest) in votes {
            if seq <= stable {
                continue;
            }
            match kind {
                VoteKind::PrePrepare | VoteKind::Prepare => {
                    let current = view == self.view && self.mode == Mode::Normal;
                    let me = self.cfg.me;
                    let slot = self.log.entry(seq).or_default();
                    push_preprepared(slot, view, digest);
                    if current {
                        slot.proposal = Some((view, digest));
                        // Its own prepare counts towards the quorum again:
                        // peers will not re-send theirs to make up for it.
                        if kind == VoteKind::Prepare {
                            slot.prepares.record(me, digest);
                        }
                    }
                    if kind == VoteKind::PrePrepare && current {
                        self.next_seq = self.next_seq.max(seq.saturating_add(1));
                    }
                }
                VoteKind::Commit => {
                    let current = view == self.view && self.mode == Mode::Normal;
                    let me = self.cfg.me;
                    let slot = self.log.entry(seq).or_default();
                    if slot.prepared.is_none_or(|(v, _)| v < view) {
                        slot.prepared = Some((view, digest));
                    }
                    if current {
                        slot.commits.record(me, digest);
                    }
                }
                VoteKind::BlockSig | VoteKind::ViewChange | VoteKind::NewView => {}
            }
        }
        self.log.retain(|seq, _| *seq > stable);
    }

    fn installed_view_from(&self, records: &[Durable]) -> View {
        records
            .iter()
            .filter_map(|r| match r {
                Durable::View { view, changing: false } => Some(*view),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    // ----- accessors -------------------------------------------------------

    pub fn id(&self) -> ReplicaId {
        self.cfg.me
    }
    pub fn view(&self) -> View {
        self.view
    }
    pub fn executed(&self) -> Seq {
        self.executed
    }
    pub fn stable_seq(&self) -> Seq {
        self.stable.seq
    }
    pub fn is_changing_view(&self) -> bool {
        matches!(self.mode, Mode::Changing { .. })
    }
    pub fn primary_of(&self, view: View) -> ReplicaId {
        self.cfg.members[(view % self.cfg.members.len() as u64) as usize]
    }
    pub fn is_primary(&self) -> bool {
        self.primary_of(self.view) == self.cfg.me && self.mode == Mode::Normal
    }
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }
    pub fn in_flight(&self) -> usize {
        self.log.range(self.executed + 1..).filter(|(_, s)| s.proposal.is_some()).count()
    }
    /// The last block of this epoch, once a quorum announced the next one.
    pub fn epoch_end(&self) -> Option<Seq> {
        self.epoch_end
    }
    /// Whether the epoch ended (see [`Output::EpochEnded`]).
    pub fn is_finished(&self) -> bool {
        self.finished
    }
    /// The requests waiting in the pool, oldest first: the shell resubmits
    /// them to the next epoch's replica.
    pub fn pending_envelopes(&self) -> Vec<Vec<u8>> {
        self.pool_order.values().filter_map(|id| self.pool.get(id)).map(|p| p.envelope.clone()).collect()
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// The transaction id of an envelope (the validator's parse, no checks).
    pub fn tx_id(&self, envelope: &[u8]) -> Option<TxId> {
        self.validator.tx_id(envelope)
    }

    // ----- the one entry point ---------------------------------------------

    /// Feeds one input; returns what to do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        if self.finished {
            if let Input::Request(_) = input {
                out.push(Output::Refused { reason: Refusal::EpochEnded });
            }
            return out;
        }
        match input {
            Input::Tick => self.on_tick(&mut out),
            Input::Message(bytes) => self.on_message(&bytes, &mut out),
            Input::Request(envelope) => {
                match self.admit(envelope, true, &mut out) {
                    Ok(tx_id) => out.push(Output::Admitted { tx_id }),
                    Err(reason) => out.push(Output::Refused { reason }),
                }
                self.maybe_propose(&mut out);
            }
            Input::Blocks(blocks) => self.on_blocks(blocks, &mut out),
        }
        self.maybe_end_epoch(&mut out);
        self.check_invariants();
        out
    }

    /// The epoch ends once its last block is executed and every block of it
    /// is certified here (the next epoch's replica cannot collect this
    /// epoch's signature shares; missing certificates are fetched).
    fn maybe_end_epoch(&mut self, out: &mut Vec<Output>) {
        let Some(end) = self.epoch_end else { return };
        if self.executed == end && self.uncertified.is_empty() {
            self.finished = true;
            out.push(Output::EpochEnded { epoch: self.cfg.epoch, last_seq: end });
        }
    }

    /// Counts an executed announcement for the next epoch; the epoch's end
    /// is fixed when a quorum of consenters has announced.
    fn count_announcement(&mut self, seq: Seq, consenter: ReplicaId) {
        if !self.cfg.members.contains(&consenter) || self.epoch_end.is_some() {
            return;
        }
        self.announced.insert(consenter);
        if self.announced.len() >= self.quorum {
            self.end_epoch_after(seq);
        }
    }

    /// Fixes the epoch's last block: the first checkpoint at or after `seq`
    /// (a quorum of announcements, or a reconfiguration, executed there).
    fn end_epoch_after(&mut self, seq: Seq) {
        if self.epoch_end.is_some() {
            return;
        }
        let end = epoch_end_after(seq, self.cfg.checkpoint_interval);
        #[cfg(feature = "mutants")]
        let end = match self.cfg.mutant {
            Some(super::types::Mutant::EpochEndSkew) if self.cfg.me % 2 == 1 => end + self.cfg.checkpoint_interval,
            _ => end,
        };
        self.epoch_end = Some(end);
    }

    /// The highest sequence number this epoch may order.
    fn last_seq(&self) -> Seq {
        self.epoch_end.unwrap_or(Seq::MAX)
    }

    fn check_invariants(&self) {
        assert!(self.stable.seq <= self.executed, "stable checkpoint beyond execution");
        assert!(self.executed <= self.last_seq(), "executed beyond the end of the epoch");
        assert!(self.pool.len() <= self.cfg.pool_max, "pool over its bound");
        assert!(self.waiting.len() <= self.pool.len(), "more requests waiting than in the pool");
        assert!(self.log.keys().next().is_none_or(|s| *s > self.stable.seq), "log holds garbage below the checkpoint");
        assert!(self.recent.len() as u64 <= self.cfg.dedup_window_blocks.max(1), "dedup window over its bound");
    }

    /// Matching votes needed to prepare or commit: a quorum.
    fn threshold(&self, of: QuorumOf) -> usize {
        #[cfg(feature = "mutants")]
        {
            use super::types::Mutant;
            match (self.cfg.mutant, of) {
                (Some(Mutant::CommitOnWeakQuorum), QuorumOf::Commits)
                | (Some(Mutant::PrepareOnWeakQuorum), QuorumOf::Prepares)
                | (Some(Mutant::WeakQuorum), _) => return self.f + 1,
                _ => {}
            }
        }
        let _ = of;
        self.quorum
    }

    fn drop_msg(&mut self, reason: DropReason, out: &mut Vec<Output>) {
        *self.stats.dropped.entry(reason).or_default() += 1;
        out.push(Output::Dropped { reason });
    }

    // ----- sending and voting ----------------------------------------------

    fn others(&self) -> Vec<ReplicaId> {
        self.cfg.members.iter().copied().filter(|m| *m != self.cfg.me).collect()
    }

    fn seal(&self, body: Body, receivers: &[ReplicaId]) -> Vec<u8> {
        auth::seal(&self.cfg.channel, self.cfg.epoch, self.cfg.me, body, receivers, &self.macs, self.crypto.as_ref())
            .encode()
    }

    fn broadcast(&self, body: Body, out: &mut Vec<Output>) {
        let frame = self.seal(body, &self.others());
        out.push(Output::Broadcast { frame });
    }

    fn send(&self, to: ReplicaId, body: Body, out: &mut Vec<Output>) {
        let frame = self.seal(body, &[to]);
        out.push(Output::Send { to, frame });
    }

    /// The voting choke point. Returns false (and casts nothing) if this
    /// replica already voted a different digest for (kind, view, seq);
    /// otherwise records the vote durably (first time) before the caller
    /// sends it.
    fn cast(&mut self, kind: VoteKind, view: View, seq: Seq, digest: Digest, out: &mut Vec<Output>) -> bool {
        match self.voted.get(&(kind, view, seq)) {
            Some(d) if *d != digest => {
                self.stats.refused_double_votes += 1;
                false
            }
            Some(_) => true,
            None => {
                self.voted.insert((kind, view, seq), digest);
                #[cfg(feature = "mutants")]
                if self.cfg.mutant == Some(super::types::Mutant::SkipPersist) {
                    // The persist is skipped, but an empty record keeps the
                    // output shape the callers extend.
                    out.push(Output::Persist(vec![]));
                    return true;
                }
                out.push(Output::Persist(vec![Durable::Vote { kind, view, seq, digest }]));
                true
            }
        }
    }

    // ----- ticks -------------------------------------------------------------

    fn on_tick(&mut self, out: &mut Vec<Output>) {
        self.now += 1;
        match self.mode {
            Mode::Changing { target, since, doublings } => {
                let timeout = self.cfg.view_change_timeout_ticks << doublings.min(BACKOFF_DOUBLINGS_MAX);
                if self.now.saturating_sub(since) >= timeout {
                    self.start_view_change(target + 1, ViewChangeReason::ViewChangeTimeout, doublings + 1, out);
                }
            }
            Mode::Normal => self.normal_tick(out),
        }
        if self.now.saturating_sub(self.last_resend) >= self.cfg.resend_interval_ticks {
            self.last_resend = self.now;
            self.resend(out);
        }
        self.maybe_fetch(out);
    }

    fn normal_tick(&mut self, out: &mut Vec<Output>) {
        let primary = self.primary_of(self.view);
        if primary == self.cfg.me {
            if self.now.saturating_sub(self.last_heartbeat) >= self.cfg.heartbeat_interval_ticks {
                self.last_heartbeat = self.now;
                self.broadcast(Body::Heartbeat { view: self.view, executed: self.executed }, out);
            }
            self.maybe_propose(out);
            // A primary whose own proposals do not commit (its backups moved
            // on, or its messages are lost one way) gives up its view too:
            // otherwise it would keep ordering nothing and, being exempt from
            // the silence timer, never join the others.
            if self.proposal_stalled() {
                return self.start_view_change(self.view + 1, ViewChangeReason::Stalled, 0, out);
            }
            return;
        }
        if self.now.saturating_sub(self.last_from_primary) >= self.cfg.heartbeat_timeout_ticks {
            return self.start_view_change(self.view + 1, ViewChangeReason::LeaderSilent, 0, out);
        }
        if self.proposal_stalled() {
            return self.start_view_change(self.view + 1, ViewChangeReason::Stalled, 0, out);
        }
        // Censorship resistance: a request not ordered within the forward
        // timeout is relayed to every replica — the primary may not have it,
        // and every other backup then holds it and runs its own complain
        // timer — and when the complain timeout passes, this backup changes
        // view. Relaying to the primary alone would let a primary that drops
        // one backup's requests (or is behind) stall them for good: that
        // backup would complain alone, short of the f+1 needed.
        //
        // Requests arrive in pool order and `arrived` never decreases along
        // it (a view change resets every one to the same tick), so the
        // oldest request decides the complaint, and the relay stops at the
        // first one too young to be due: the tick costs the due requests,
        // at most a few batches of them, never the whole pool.
        let oldest = self.pool_order.values().next().and_then(|id| self.pool.get(id)).map(|p| p.arrived);
        if oldest.is_some_and(|t| self.now.saturating_sub(t) >= self.cfg.complain_timeout_ticks) {
            return self.start_view_change(self.view + 1, ViewChangeReason::RequestTimeout, 0, out);
        }
        let mut forward = Vec::new();
        let scan_max = self.cfg.batch_count_max.saturating_mul(FORWARD_SCAN_BATCHES);
        // In arrival order (not the hash map's): which requests are relayed
        // must be the same in every run of a seed.
        for id in self.pool_order.values().take(scan_max) {
            let Some(p) = self.pool.get_mut(id) else { continue };
            if self.now.saturating_sub(p.arrived) < self.cfg.forward_timeout_ticks
                || forward.len() >= self.cfg.batch_count_max
            {
                break;
            }
            if self.now.saturating_sub(p.forwarded) >= self.cfg.forward_timeout_ticks {
                p.forwarded = self.now;
                forward.push(p.envelope.clone());
            }
        }
        if !forward.is_empty() {
            self.broadcast(Body::Forward { envelopes: forward }, out);
        }
    }

    /// A proposal accepted in this view has not committed within the
    /// view-change timeout, or a block executed here has waited that long
    /// for its certificate (and state transfer found none). The second
    /// case is a primary that showed its proposal to only part of the
    /// honest replicas (e.g. partial MACs): some executed the block, too
    /// few to certify it, and the others never saw a proposal to time out
    /// on; the new view re-proposes the block to everyone.
    fn proposal_stalled(&self) -> bool {
        let vct = self.cfg.view_change_timeout_ticks;
        let uncommitted = self
            .log
            .range(self.executed + 1..)
            .any(|(_, s)| s.proposal.is_some() && self.now.saturating_sub(s.accepted_at) >= vct);
        let uncertified = !self.uncertified.is_empty() && self.now.saturating_sub(self.last_certified) >= vct;
        uncommitted || uncertified
    }

    /// Re-sends this replica's own recorded votes for slots not yet stable,
    /// so that lost messages do not cost a view change. Only votes already
    /// cast are re-sent: this path never decides anything.
    fn resend(&mut self, out: &mut Vec<Output>) {
        if let Mode::Changing { .. } = self.mode {
            if let Some(svc) = &self.my_view_change {
                self.broadcast(Body::ViewChange(svc.view_change.clone()), out);
            }
            return;
        }
        let view = self.view;
        let me = self.cfg.me;
        let mut bodies = Vec::new();
        for (seq, slot) in self.log.range(self.stable.seq + 1..) {
            let Some((v, d)) = slot.proposal else { continue };
            if v != view {
                continue;
            }
            if self.voted.get(&(VoteKind::PrePrepare, view, *seq)) == Some(&d) {
                if let Some(batch) = self.batches.get(&d) {
                    bodies.push(Body::PrePrepare { view, seq: *seq, batch: batch.clone() });
                }
            }
            if self.voted.get(&(VoteKind::Prepare, view, *seq)) == Some(&d) {
                bodies.push(Body::Prepare { view, seq: *seq, digest: d });
            }
            if self.voted.get(&(VoteKind::Commit, view, *seq)) == Some(&d) {
                bodies.push(Body::Commit { view, seq: *seq, digest: d });
            }
        }
        let mut unsigned = Vec::new();
        for (seq, header_hash) in &self.uncertified {
            match self.block_sigs.get(seq).and_then(|m| m.get(&me)) {
                Some((h, sig)) if h == header_hash => {
                    bodies.push(Body::BlockSig { seq: *seq, header_hash: *h, signature: sig.clone() })
                }
                _ => unsigned.push(*seq),
            }
        }
        for body in bodies {
            self.broadcast(body, out);
        }
        // Shares lost in a crash are signed again (the same header: the
        // choke point allows it).
        for seq in unsigned {
            self.sign_block(seq, out);
        }
    }

    // ----- receiving ---------------------------------------------------------

    fn on_message(&mut self, bytes: &[u8], out: &mut Vec<Output>) {
        let frame = match Frame::decode(bytes, &self.cfg.limits) {
            Ok(f) => f,
            Err(_) => return self.drop_msg(DropReason::Malformed, out),
        };
        if frame.channel != self.cfg.channel {
            return self.drop_msg(DropReason::WrongChannel, out);
        }
        if frame.epoch != self.cfg.epoch {
            // A member already in a later epoch: this replica is probably
            // behind (an idle cluster sends little more than the primary's
            // heartbeats, so one sender is enough). Unauthenticated, so only
            // ever a reason to fetch blocks, which are verified, at most once
            // per fetch patience.
            if frame.epoch > self.cfg.epoch && self.cfg.members.contains(&frame.sender) {
                let ahead = self.executed.saturating_add(FETCH_BLOCKS_MAX).min(self.last_seq());
                self.height_hint = self.height_hint.max(ahead);
            }
            return self.drop_msg(DropReason::WrongEpoch, out);
        }
        if frame.sender == self.cfg.me || !self.cfg.members.contains(&frame.sender) {
            return self.drop_msg(DropReason::UnknownSender, out);
        }
        if let Err(e) = auth::open(&frame, self.cfg.me, &self.macs, self.crypto.as_ref()) {
            let reason = match e {
                auth::AuthFailure::Mac | auth::AuthFailure::WrongKind => DropReason::BadMac,
                auth::AuthFailure::Signature => DropReason::BadSignature,
            };
            return self.drop_msg(reason, out);
        }
        let from = frame.sender;
        // The primary is heard only when it acts as the primary of this
        // view (a pre-prepare or heartbeat of this view): its prepares and
        // commits as a backup of a later view must not keep a replica left
        // behind in an old view from noticing, changing view, and being sent
        // the current new-view.
        let as_primary_of_view = match &frame.body {
            Body::PrePrepare { view, .. } | Body::Heartbeat { view, .. } => *view == self.view,
            _ => false,
        };
        if as_primary_of_view && from == self.primary_of(self.view) && self.mode == Mode::Normal {
            self.last_from_primary = self.now;
        }
        match frame.body {
            Body::PrePrepare { view, seq, batch } => self.on_preprepare(from, view, seq, batch, out),
            Body::Prepare { view, seq, digest } => self.on_prepare(from, view, seq, digest, out),
            Body::Commit { view, seq, digest } => self.on_commit(from, view, seq, digest, out),
            Body::BlockSig { seq, header_hash, signature } => self.on_block_sig(from, seq, header_hash, signature, out),
            Body::ViewChange(vc) => {
                let svc = SignedViewChange {
                    sender: from,
                    view_change: vc,
                    signature: match frame.auth {
                        super::message::Auth::Signature(s) => s,
                        super::message::Auth::Macs(_) => return self.drop_msg(DropReason::BadSignature, out),
                    },
                };
                self.on_view_change(svc, out)
            }
            Body::NewView(nv) => self.on_new_view(from, nv, out),
            Body::Forward { envelopes } => {
                for e in envelopes {
                    let _ = self.admit(e, false, out);
                }
                self.maybe_propose(out);
            }
            Body::Heartbeat { view, executed } => {
                // A hint only (state transfer verifies what it fetches).
                if view >= self.view && from == self.primary_of(view) {
                    self.height_hint = self.height_hint.max(executed.min(self.executed + FETCH_BLOCKS_MAX));
                }
            }
        }
    }

    /// Normal-case messages are for the current view and within the window.
    fn normal_case_ok(&mut self, view: View, seq: Seq, out: &mut Vec<Output>) -> bool {
        if view != self.view || self.mode != Mode::Normal {
            self.drop_msg(DropReason::WrongView, out);
            return false;
        }
        let low = self.stable.seq;
        if seq <= low || seq > low + self.cfg.window || seq > self.last_seq() {
            self.drop_msg(DropReason::OutsideWindow, out);
            return false;
        }
        true
    }

    fn on_preprepare(&mut self, from: ReplicaId, view: View, seq: Seq, batch: Batch, out: &mut Vec<Output>) {
        if !self.normal_case_ok(view, seq, out) {
            return;
        }
        if from != self.primary_of(view) {
            return self.drop_msg(DropReason::NotFromPrimary, out);
        }
        let digest = batch.digest();
        if let Some((_, d)) = self.log.get(&seq).and_then(|s| s.proposal) {
            if d != digest {
                self.drop_msg(DropReason::Equivocation, out);
            }
            return;
        }
        if self.check_batch(&batch).is_err() {
            return self.start_view_change(self.view + 1, ViewChangeReason::BadProposal, 0, out);
        }
        self.accept_proposal(view, seq, batch, out);
    }

    /// Checks a proposed batch: limits, validity of every envelope, no
    /// transaction twice in the batch.
    fn check_batch(&self, batch: &Batch) -> Result<(), String> {
        if batch.envelopes.len() > self.cfg.batch_count_max {
            return Err(format!("{} envelopes, max {}", batch.envelopes.len(), self.cfg.batch_count_max));
        }
        if batch.bytes() > self.cfg.batch_bytes_max {
            return Err(format!("{} bytes, max {}", batch.bytes(), self.cfg.batch_bytes_max));
        }
        let kinds: BTreeSet<BatchKind> = batch.envelopes.iter().map(|e| self.kind_of(e)).collect();
        if kinds.len() > 1 {
            return Err(
                "envelopes of different kinds (transactions, key announcements, reconfigurations) share the batch"
                    .into(),
            );
        }
        if kinds.contains(&BatchKind::Reconfiguration) && batch.envelopes.len() > 1 {
            return Err("a reconfiguration must be alone in its batch".into());
        }
        let mut ids = HashSet::with_capacity(batch.envelopes.len());
        for e in &batch.envelopes {
            let id = match self.pool_tx_id(e) {
                Some(id) => id,
                None => self.validator.validate(e)?,
            };
            if !ids.insert(id) {
                return Err("a transaction appears twice".into());
            }
        }
        Ok(())
    }

    /// The kind of batch `envelope` may go into (deterministic).
    fn kind_of(&self, envelope: &[u8]) -> BatchKind {
        if self.validator.announcement(envelope).is_some() {
            BatchKind::Announcements
        } else if self.validator.reconfiguration(envelope) {
            BatchKind::Reconfiguration
        } else {
            BatchKind::Transactions
        }
    }

    /// The id of an envelope this replica already validated into its pool.
    fn pool_tx_id(&self, envelope: &[u8]) -> Option<TxId> {
        let id = self.validator.tx_id(envelope)?;
        self.pool.get(&id).filter(|p| p.envelope == envelope).map(|_| id)
    }

    /// Accepts (view, seq, batch) as this view's proposal: records Q, votes
    /// (pre-prepare for the primary, prepare for a backup).
    fn accept_proposal(&mut self, view: View, seq: Seq, batch: Batch, out: &mut Vec<Output>) {
        let digest = batch.digest();
        let primary = self.primary_of(view) == self.cfg.me;
        let kind = if primary { VoteKind::PrePrepare } else { VoteKind::Prepare };
        if !self.cast_with_batch(kind, view, seq, &batch, out) {
            return;
        }
        self.batches.insert(digest, batch.clone());
        let now = self.now;
        let me = self.cfg.me;
        let slot = self.log.entry(seq).or_default();
        slot.proposal = Some((view, digest));
        slot.accepted_at = now;
        push_preprepared(slot, view, digest);
        if primary {
            self.broadcast(Body::PrePrepare { view, seq, batch }, out);
        } else {
            slot.prepares.record(me, digest);
            self.broadcast(Body::Prepare { view, seq, digest }, out);
        }
        self.check_prepared(seq, out);
    }

    /// Casts a vote that refers to a batch, persisting the batch with it.
    fn cast_with_batch(&mut self, kind: VoteKind, view: View, seq: Seq, batch: &Batch, out: &mut Vec<Output>) -> bool {
        let digest = batch.digest();
        let first = !self.voted.contains_key(&(kind, view, seq));
        if !self.cast(kind, view, seq, digest, out) {
            return false;
        }
        if first {
            if let Some(Output::Persist(records)) = out.last_mut() {
                records.push(Durable::Batch { seq, batch: batch.clone() });
            }
        }
        true
    }

    fn on_prepare(&mut self, from: ReplicaId, view: View, seq: Seq, digest: Digest, out: &mut Vec<Output>) {
        if !self.normal_case_ok(view, seq, out) {
            return;
        }
        if from == self.primary_of(view) {
            return self.drop_msg(DropReason::NotFromPrimary, out);
        }
        if self.log.entry(seq).or_default().prepares.record(from, digest) == Recorded::Conflict {
            self.stats.conflicting_votes += 1;
        }
        self.check_prepared(seq, out);
    }

    fn on_commit(&mut self, from: ReplicaId, view: View, seq: Seq, digest: Digest, out: &mut Vec<Output>) {
        if !self.normal_case_ok(view, seq, out) {
            return;
        }
        if self.log.entry(seq).or_default().commits.record(from, digest) == Recorded::Conflict {
            self.stats.conflicting_votes += 1;
        }
        self.check_committed(seq, out);
    }

    /// prepared(v, n, d): the pre-prepare and matching prepares from a
    /// quorum (the primary's pre-prepare counts as its prepare).
    fn check_prepared(&mut self, seq: Seq, out: &mut Vec<Output>) {
        let view = self.view;
        let primary = self.primary_of(view);
        let Some(slot) = self.log.get(&seq) else { return };
        let Some((v, d)) = slot.proposal else { return };
        if v != view || slot.prepared == Some((view, d)) {
            return;
        }
        let votes = 1 + slot.prepares.count(&d) - usize::from(slot.prepares.has(primary, &d));
        if votes < self.threshold(QuorumOf::Prepares) {
            return;
        }
        if !self.cast(VoteKind::Commit, view, seq, d, out) {
            return;
        }
        let me = self.cfg.me;
        let slot = self.log.entry(seq).or_default();
        slot.prepared = Some((view, d));
        slot.commits.record(me, d);
        self.broadcast(Body::Commit { view, seq, digest: d }, out);
        self.check_committed(seq, out);
    }

    fn check_committed(&mut self, seq: Seq, out: &mut Vec<Output>) {
        let view = self.view;
        let Some((pv, d)) = self.log.get(&seq).and_then(|s| s.prepared) else { return };
        let needed = self.threshold(QuorumOf::Commits);
        let Some(slot) = self.log.get_mut(&seq) else { return };
        if pv != view || slot.committed.is_some() || slot.commits.count(&d) < needed {
            return;
        }
        slot.committed = Some(d);
        self.execute_ready(out);
    }

    // ----- execution, block certificates, checkpoints -------------------------

    fn execute_ready(&mut self, out: &mut Vec<Output>) {
        loop {
            let seq = self.executed + 1;
            if seq > self.last_seq() {
                break;
            }
            let Some(d) = self.log.get(&seq).and_then(|s| s.committed) else { break };
            let Some(batch) = self.batches.get(&d).cloned() else { break };
            let block = self.build_block(seq, &batch);
            self.apply_block(block, out);
            self.sign_block(seq, out);
        }
        self.maybe_propose(out);
    }

    /// The block for `batch` at `seq`: envelopes without a transaction id
    /// already ordered recently (or earlier in the batch), chained to the
    /// previous block. A pure function of the committed prefix.
    fn build_block(&self, seq: Seq, batch: &Batch) -> Block {
        let mut seen = HashSet::new();
        let envelopes: Vec<Vec<u8>> = batch
            .envelopes
            .iter()
            .filter(|e| self.validator.tx_id(e).is_some_and(|id| !self.recent_ids.contains(&id) && seen.insert(id)))
            .cloned()
            .collect();
        let data_hash = channels::block::data_hash(&envelopes);
        let header_hash = channels::block::header_hash(seq, &self.last_header, &data_hash);
        Block { number: seq, previous_hash: self.last_header, data_hash, header_hash, envelopes }
    }

    /// Appends `block` to this replica's view of the ledger.
    fn apply_block(&mut self, block: Block, out: &mut Vec<Output>) {
        assert_eq!(block.number, self.executed + 1, "blocks apply in order");
        assert_eq!(block.previous_hash, self.last_header, "blocks chain");
        let ids: Vec<TxId> = block.envelopes.iter().filter_map(|e| self.validator.tx_id(e)).collect();
        let next = self.cfg.epoch.saturating_add(1);
        let announced: Vec<ReplicaId> = block
            .envelopes
            .iter()
            .filter_map(|e| self.validator.announcement(e))
            .filter(|a| a.epoch == next)
            .map(|a| a.consenter)
            .collect();
        for consenter in announced {
            self.count_announcement(block.number, consenter);
        }
        if block.envelopes.iter().any(|e| self.validator.reconfiguration(e)) {
            self.end_epoch_after(block.number);
        }
        for id in &ids {
            if let Some(p) = self.pool.remove(id) {
                self.pool_order.remove(&p.order);
                self.waiting.remove(p.order);
            }
        }
        self.remember(block.number, ids);
        self.executed = block.number;
        self.last_header = block.header_hash;
        self.last_progress = self.now;
        if self.uncertified.is_empty() {
            // The certificate clock starts when a block starts waiting.
            self.last_certified = self.now;
        }
        self.uncertified.insert(block.number, block.header_hash);
        self.note_conflicting_shares_at(block.number, &block.header_hash, out);
        self.next_seq = self.next_seq.max(block.number + 1);
        out.push(Output::Commit(block));
    }

    fn remember(&mut self, seq: Seq, ids: Vec<TxId>) {
        self.recent_ids.extend(ids.iter().copied());
        self.recent.push_back((seq, ids));
        while self.recent.len() as u64 > self.cfg.dedup_window_blocks.max(1) {
            if let Some((_, old)) = self.recent.pop_front() {
                for id in old {
                    self.recent_ids.remove(&id);
                }
            }
        }
    }

    fn certificate_bytes(&self, seq: Seq, header_hash: &Digest) -> Vec<u8> {
        channels::block::certificate_signing_bytes(&self.cfg.channel, self.cfg.epoch, seq, header_hash)
    }

    /// Signs this replica's share of the certificate of executed block `seq`.
    fn sign_block(&mut self, seq: Seq, out: &mut Vec<Output>) {
        let Some(header_hash) = self.uncertified.get(&seq).copied() else { return };
        if !self.cast(VoteKind::BlockSig, 0, seq, header_hash, out) {
            return;
        }
        let signature = self.crypto.sign(&self.certificate_bytes(seq, &header_hash));
        self.block_sigs.entry(seq).or_default().insert(self.cfg.me, (header_hash, signature.clone()));
        self.broadcast(Body::BlockSig { seq, header_hash, signature }, out);
        self.check_certified(seq, out);
    }

    fn on_block_sig(
        &mut self,
        from: ReplicaId,
        seq: Seq,
        header_hash: Digest,
        signature: Vec<u8>,
        out: &mut Vec<Output>,
    ) {
        let low = self.stable.seq;
        let far = low + 4 * self.cfg.window;
        if seq <= low && !self.uncertified.contains_key(&seq) {
            return;
        }
        if !self.crypto.verify(from, &self.certificate_bytes(seq, &header_hash), &signature) {
            return self.drop_msg(DropReason::BadSignature, out);
        }
        let seen = self.peer_executed.entry(from).or_default();
        *seen = (*seen).max(seq);
        if seq > far {
            return;
        }
        self.note_conflicting_share(from, seq, &header_hash, &signature, out);
        let shares = self.block_sigs.entry(seq).or_default();
        match shares.get(&from) {
            Some((h, _)) if *h != header_hash => self.stats.conflicting_votes += 1,
            Some(_) => {}
            None => {
                shares.insert(from, (header_hash, signature));
            }
        }
        self.check_certified(seq, out);
    }

    fn check_certified(&mut self, seq: Seq, out: &mut Vec<Output>) {
        let Some(mine) = self.uncertified.get(&seq).copied() else { return };
        let Some(shares) = self.block_sigs.get(&seq) else { return };
        let matching: Vec<(ReplicaId, Vec<u8>)> =
            shares.iter().filter(|(_, (h, _))| *h == mine).map(|(id, (_, s))| (*id, s.clone())).collect();
        let mut others: BTreeMap<Digest, usize> = BTreeMap::new();
        for (h, _) in shares.values() {
            *others.entry(*h).or_default() += 1;
        }
        if others.iter().any(|(h, c)| *h != mine && *c >= self.quorum) {
            out.push(Output::ForkDetected { seq });
        }
        if matching.len() < self.quorum {
            return;
        }
        let cert = Certificate { seq, header_hash: mine, signatures: matching };
        self.uncertified.remove(&seq);
        self.last_certified = self.now;
        out.push(Output::Certified(cert.clone()));
        if seq.is_multiple_of(self.cfg.checkpoint_interval) {
            self.make_stable(cert, out);
        }
    }

    /// A checkpoint certificate at or below the executed height becomes the
    /// new low watermark; the log below it is garbage-collected.
    fn make_stable(&mut self, cert: Certificate, out: &mut Vec<Output>) {
        if cert.seq <= self.stable.seq || cert.seq > self.executed {
            return;
        }
        let seq = cert.seq;
        out.push(Output::Persist(vec![Durable::Stable(cert.clone())]));
        self.stable = cert;
        self.log = self.log.split_off(&(seq + 1));
        // Blocks below the checkpoint still waiting for their own certificate
        // keep collecting shares (and are fetched with their certificates
        // if the shares never come); only the oldest beyond a bound are
        // given up.
        while self.uncertified.len() > UNCERTIFIED_MAX {
            self.uncertified.pop_first();
        }
        let uncertified = &self.uncertified;
        self.block_sigs.retain(|s, _| *s > seq || uncertified.contains_key(s));
        self.voted.retain(|(kind, _, s), _| matches!(kind, VoteKind::ViewChange | VoteKind::NewView) || *s > seq);
        let live: HashSet<Digest> = self
            .log
            .values()
            .flat_map(|s| {
                s.proposal.iter().chain(s.prepared.iter()).map(|(_, d)| *d).chain(s.preprepared.iter().map(|(_, d)| *d))
            })
            .collect();
        self.batches.retain(|d, _| live.contains(d));
        self.maybe_propose(out);
    }

    /// Verifies a block certificate: a quorum of distinct members, each
    /// signature valid over the certificate bytes.
    fn certificate_valid(&self, cert: &Certificate) -> bool {
        if cert.seq == self.cfg.epoch_base {
            return cert.header_hash == self.cfg.genesis_hash;
        }
        if cert.seq < self.cfg.epoch_base {
            return false;
        }
        let bytes = self.certificate_bytes(cert.seq, &cert.header_hash);
        let mut signers = BTreeSet::new();
        for (id, sig) in &cert.signatures {
            if !self.cfg.members.contains(id) || !signers.insert(*id) || !self.crypto.verify(*id, &bytes, sig) {
                return false;
            }
        }
        signers.len() >= self.quorum
    }

    // ----- state transfer ---------------------------------------------------------

    /// Asks for blocks when f+1 peers (so at least one correct) have shown
    /// blocks beyond ours and we made no progress for a while, or are
    /// beyond our window.
    fn maybe_fetch(&mut self, out: &mut Vec<Output>) {
        let mut heights: Vec<Seq> = self.peer_executed.values().copied().collect();
        heights.sort_unstable_by(|a, b| b.cmp(a));
        let shown = heights.get(self.f).copied().unwrap_or(0);
        let target = shown.max(self.height_hint);
        let patience = self.cfg.view_change_timeout_ticks / 2;
        let due = self.last_fetch.is_none_or(|t| self.now.saturating_sub(t) >= patience);
        if !due {
            return;
        }
        // Blocks executed here whose certificate never formed (the others
        // certified them without this replica's share and moved on): fetch
        // them with their certificates.
        let stuck = self.now.saturating_sub(self.last_certified) >= patience;
        if let Some((&oldest, _)) = self.uncertified.first_key_value().filter(|_| stuck) {
            self.last_fetch = Some(self.now);
            let to = self.executed.min(oldest + FETCH_BLOCKS_MAX - 1);
            out.push(Output::Fetch { from: oldest, to });
            return;
        }
        if target <= self.executed {
            return;
        }
        let idle = self.now.saturating_sub(self.last_progress) >= patience;
        let far = target > self.stable.seq + self.cfg.window;
        if idle || far {
            self.last_fetch = Some(self.now);
            let to = target.min(self.executed + FETCH_BLOCKS_MAX);
            out.push(Output::Fetch { from: self.executed + 1, to });
        }
    }

    /// A fetched certificate for a block this replica executed but could not
    /// certify: adopted if it is for the same header and valid.
    fn adopt_certificate(&mut self, cert: Certificate, out: &mut Vec<Output>) {
        let seq = cert.seq;
        if self.uncertified.get(&seq) != Some(&cert.header_hash) || !self.certificate_valid(&cert) {
            return;
        }
        self.uncertified.remove(&seq);
        self.last_certified = self.now;
        out.push(Output::Certified(cert.clone()));
        if seq.is_multiple_of(self.cfg.checkpoint_interval) {
            self.make_stable(cert, out);
        }
    }

    /// Blocks fetched by state transfer, in order. Each must extend the
    /// chain (number, previous hash, data hash, header hash). A block with a
    /// valid certificate is applied with every block of the response below
    /// it: its header hash fixes theirs through the chain, so a block whose
    /// own certificate never formed (f faulty consenters withheld or forked
    /// their shares while honest ones lagged) still reaches every replica,
    /// which then signs its share of it. Blocks after the last valid
    /// certificate of the response are not applied. A certificate that
    /// carries signatures but does not verify taints the response.
    fn on_blocks(&mut self, blocks: Vec<CertifiedBlock>, out: &mut Vec<Output>) {
        let mut run: Vec<(CertifiedBlock, bool)> = Vec::new();
        let (mut next, mut last_header) = (self.executed + 1, self.last_header);
        for cb in blocks.into_iter().take(FETCH_BLOCKS_MAX as usize) {
            let b = &cb.block;
            if b.number <= self.executed {
                self.adopt_certificate(cb.certificate, out);
                continue;
            }
            if b.number > self.last_seq() {
                // The next epoch's blocks are for the next epoch's replica.
                break;
            }
            let data_hash = channels::block::data_hash(&b.envelopes);
            let header_hash = channels::block::header_hash(b.number, &last_header, &data_hash);
            let chained = b.number == next
                && b.previous_hash == last_header
                && b.data_hash == data_hash
                && b.header_hash == header_hash;
            let certified = cb.certificate.seq == b.number
                && cb.certificate.header_hash == header_hash
                && self.certificate_valid(&cb.certificate);
            if !chained || (!certified && !cb.certificate.signatures.is_empty()) {
                self.drop_msg(DropReason::InvalidBlocks, out);
                break;
            }
            next += 1;
            last_header = header_hash;
            run.push((cb, certified));
            if certified {
                for (cb, certified) in std::mem::take(&mut run) {
                    self.apply_fetched(cb, certified, out);
                }
            }
        }
        self.last_fetch = None;
        self.execute_ready(out);
    }

    /// Applies one verified fetched block; a block vouched for only by a
    /// later certificate gets this replica's signature share.
    fn apply_fetched(&mut self, cb: CertifiedBlock, certified: bool, out: &mut Vec<Output>) {
        let seq = cb.block.number;
        self.apply_block(cb.block, out);
        if !certified {
            self.sign_block(seq, out);
            return;
        }
        self.uncertified.remove(&seq);
        self.last_certified = self.now;
        out.push(Output::Certified(cb.certificate.clone()));
        if seq.is_multiple_of(self.cfg.checkpoint_interval) {
            self.make_stable(cb.certificate, out);
        }
    }

    // ----- client requests --------------------------------------------------------

    /// Admits an envelope into the pool. `from_client`: forward it to the
    /// primary at once (a forwarded one is not forwarded again).
    fn admit(&mut self, envelope: Vec<u8>, from_client: bool, out: &mut Vec<Output>) -> Result<TxId, Refusal> {
        if envelope.len() > self.cfg.batch_bytes_max {
            return Err(Refusal::TooLarge { bytes: envelope.len(), max: self.cfg.batch_bytes_max });
        }
        let tx_id = self.validator.validate(&envelope).map_err(Refusal::Invalid)?;
        if self.recent_ids.contains(&tx_id) {
            return Err(Refusal::Duplicate);
        }
        if self.pool.contains_key(&tx_id) {
            return Ok(tx_id);
        }
        if self.pool.len() >= self.cfg.pool_max {
            return Err(Refusal::PoolFull);
        }
        self.pool_counter += 1;
        let order = self.pool_counter;
        let primary = self.primary_of(self.view);
        if from_client && primary != self.cfg.me && self.mode == Mode::Normal {
            self.send(primary, Body::Forward { envelopes: vec![envelope.clone()] }, out);
        }
        let kind = match self.validator.announcement(&envelope) {
            None if self.validator.reconfiguration(&envelope) => BatchKind::Reconfiguration,
            None => BatchKind::Transactions,
            Some(a) if a.epoch == self.cfg.epoch.saturating_add(1) && self.cfg.members.contains(&a.consenter) => {
                BatchKind::Announcements
            }
            Some(a) => {
                let expected = self.cfg.epoch.saturating_add(1);
                return Err(Refusal::Invalid(format!(
                    "key announcement of consenter {} for epoch {}, but this channel is in epoch {} and takes announcements for epoch {expected} only",
                    a.consenter, a.epoch, self.cfg.epoch
                )));
            }
        };
        self.waiting.insert(order, waiting::Entry { id: tx_id, kind, bytes: envelope.len() });
        let pending = Pending { envelope, order, arrived: self.now, forwarded: self.now, kind };
        self.pool.insert(tx_id, pending);
        self.pool_order.insert(order, tx_id);
        Ok(tx_id)
    }

    /// The primary cuts a batch when one is full, or the oldest waiting
    /// request has waited the batch timeout, and the window has room.
    fn maybe_propose(&mut self, out: &mut Vec<Output>) {
        if !self.is_primary() {
            return;
        }
        for _ in 0..self.cfg.window {
            if self.next_seq > self.stable.seq + self.cfg.window || self.next_seq > self.last_seq() {
                return;
            }
            // Envelopes of different kinds never share a batch: the kind of
            // the oldest waiting envelope decides this one.
            let first = self.waiting.first();
            let kind = first.map_or(BatchKind::Transactions, |(_, e)| e.kind);
            let count_max = if kind == BatchKind::Reconfiguration { 1 } else { self.cfg.batch_count_max };
            let (count, bytes) = self.waiting.totals(kind);
            let oldest = first.and_then(|(_, e)| self.pool.get(&e.id)).map(|p| p.arrived);
            let full = count >= count_max || bytes >= self.cfg.batch_bytes_preferred;
            let timed_out = oldest.is_some_and(|t| self.now.saturating_sub(t) >= self.cfg.batch_timeout_ticks);
            // Once the epoch's end is fixed, empty blocks fill up to it when
            // nothing waits (at most a checkpoint interval of them), so that
            // the switch never waits for traffic.
            let pad = count == 0 && self.epoch_end.is_some();
            // With nothing of its own in flight the primary cuts at once:
            // batching pays only while earlier blocks are being agreed on
            // (then requests pile up and batches fill), and at low load the
            // batch timeout would only add latency.
            let idle = self.cfg.cut_when_idle && self.next_seq.saturating_sub(self.executed) <= 1;
            if !pad && (count == 0 || !(full || timed_out || idle)) {
                return;
            }
            let mut batch = Batch::empty();
            let mut taken = Vec::new();
            let mut size = 0;
            for (order, entry) in self.waiting.iter().filter(|(_, e)| e.kind == kind) {
                let Some(p) = self.pool.get(&entry.id) else { continue };
                if batch.envelopes.len() >= count_max
                    || (size + p.envelope.len() > self.cfg.batch_bytes_max && !batch.envelopes.is_empty())
                {
                    break;
                }
                size += p.envelope.len();
                batch.envelopes.push(p.envelope.clone());
                taken.push(order);
            }
            for order in taken {
                self.waiting.remove(order);
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.stats.proposals += 1;
            self.accept_proposal(self.view, seq, batch, out);
        }
    }

    // ----- view change -------------------------------------------------------------

    fn start_view_change(&mut self, target: View, reason: ViewChangeReason, doublings: u32, out: &mut Vec<Output>) {
        assert!(target > self.view, "view changes only move forward");
        if let Mode::Changing { target: t, .. } = self.mode {
            if t >= target {
                return;
            }
        }
        *self.stats.view_changes.entry(reason).or_default() += 1;
        self.mode = Mode::Changing { target, since: self.now, doublings };
        out.push(Output::Persist(vec![Durable::View { view: target, changing: true }]));
        out.push(Output::ViewChangeStarted { view: target, reason });
        let low = self.stable.seq;
        let window = self.cfg.window;
        let mut prepared = Vec::new();
        let mut preprepared = Vec::new();
        for (seq, slot) in self.log.range(low + 1..=low + window) {
            if let Some((view, d)) = slot.prepared {
                if let Some(batch) = self.batches.get(&d) {
                    prepared.push(PreparedClaim { seq: *seq, view, batch: batch.clone() });
                }
            }
            for (view, digest) in &slot.preprepared {
                preprepared.push(PrePreparedClaim { seq: *seq, view: *view, digest: *digest });
            }
        }
        let vc = ViewChange { new_view: target, checkpoint: self.stable.clone(), prepared, preprepared };
        let body = Body::ViewChange(vc.clone());
        let digest = hash_body(&body);
        if !self.cast(VoteKind::ViewChange, target, 0, digest, out) {
            // Already sent a (different) view change for this view before a
            // crash: resend that one.
            if let Some(svc) = self.my_view_change.clone().filter(|s| s.view_change.new_view == target) {
                self.broadcast(Body::ViewChange(svc.view_change), out);
            }
            return;
        }
        let frame =
            auth::seal(&self.cfg.channel, self.cfg.epoch, self.cfg.me, body, &[], &self.macs, self.crypto.as_ref());
        let signature = match &frame.auth {
            super::message::Auth::Signature(s) => s.clone(),
            super::message::Auth::Macs(_) => unreachable!("view changes are signed"),
        };
        let svc = SignedViewChange { sender: self.cfg.me, view_change: vc, signature };
        if let Some(Output::Persist(records)) = out.last_mut() {
            records.push(Durable::ViewChangeSent(svc.clone()));
        }
        self.my_view_change = Some(svc.clone());
        self.view_changes.entry(target).or_default().insert(self.cfg.me, svc);
        out.push(Output::Broadcast { frame: frame.encode() });
        self.try_new_view(target, out);
    }

    /// Authenticity and structure of a view change (signature, checkpoint
    /// certificate, claims within the window).
    fn view_change_valid(&self, svc: &SignedViewChange) -> bool {
        let body = Body::ViewChange(svc.view_change.clone());
        let bytes = Frame::authenticated_bytes(&self.cfg.channel, self.cfg.epoch, svc.sender, &body);
        self.cfg.members.contains(&svc.sender)
            && view_change::check_structure(
                &svc.view_change,
                self.cfg.window,
                self.cfg.checkpoint_interval,
                PREPREPARED_PER_SEQ_MAX,
            )
            .is_ok()
            && self.crypto.verify(svc.sender, &bytes, &svc.signature)
            && self.certificate_valid(&svc.view_change.checkpoint)
    }

    fn on_view_change(&mut self, svc: SignedViewChange, out: &mut Vec<Output>) {
        let target = svc.view_change.new_view;
        if target <= self.view {
            // A straggler: as the primary of our view, send it the proof.
            self.send_new_view_to(svc.sender, out);
            return;
        }
        if target > self.view.saturating_add(VIEW_AHEAD_MAX) || target > VIEW_MAX {
            return self.drop_msg(DropReason::WrongView, out);
        }
        // The signature was checked on the frame; the checkpoint and claims
        // are checked here.
        if view_change::check_structure(
            &svc.view_change,
            self.cfg.window,
            self.cfg.checkpoint_interval,
            PREPREPARED_PER_SEQ_MAX,
        )
        .is_err()
            || !self.certificate_valid(&svc.view_change.checkpoint)
        {
            return self.drop_msg(DropReason::InvalidViewChange, out);
        }
        let sender = svc.sender;
        self.height_hint = self.height_hint.max(svc.view_change.checkpoint.seq);
        self.view_changes.entry(target).or_default().entry(sender).or_insert(svc);
        // Join: f+1 replicas want a view beyond ours (one is correct).
        let current_target = match self.mode {
            Mode::Changing { target, .. } => target,
            Mode::Normal => self.view,
        };
        let mut wanting: BTreeMap<ReplicaId, View> = BTreeMap::new();
        for (v, m) in self.view_changes.range(current_target + 1..) {
            for s in m.keys() {
                wanting.entry(*s).or_insert(*v);
            }
        }
        if wanting.len() > self.f {
            if let Some(min) = wanting.values().min().copied() {
                self.start_view_change(min, ViewChangeReason::Joined, 0, out);
            }
        }
        self.try_new_view(target, out);
    }

    /// Sends a straggler this view's new-view proof (at most once per resend
    /// interval per replica), if this replica is the primary that made it.
    fn send_new_view_to(&mut self, to: ReplicaId, out: &mut Vec<Output>) {
        if self.mode != Mode::Normal {
            return;
        }
        let Some(nv) = self.my_new_view.clone().filter(|nv| nv.view == self.view) else { return };
        let last = self.new_view_sent_to.get(&to).copied();
        if last.is_some_and(|t| self.now.saturating_sub(t) < self.cfg.resend_interval_ticks) {
            return;
        }
        self.new_view_sent_to.insert(to, self.now);
        self.send(to, Body::NewView(nv), out);
    }

    /// As the new primary of `view`, once a quorum of view changes decides
    /// every slot, sends the new view and installs it.
    fn try_new_view(&mut self, view: View, out: &mut Vec<Output>) {
        let changing_to_view = matches!(self.mode, Mode::Changing { target, .. } if target == view);
        if self.primary_of(view) != self.cfg.me || !changing_to_view {
            return;
        }
        let Some(set) = self.view_changes.get(&view) else { return };
        if set.len() < self.quorum {
            return;
        }
        let set: Vec<SignedViewChange> = set.values().cloned().collect();
        let Some(selection) = view_change::select(&set, self.f, self.quorum) else { return };
        let nv = NewView { view, view_changes: set };
        let body = Body::NewView(nv.clone());
        if !self.cast(VoteKind::NewView, view, 0, hash_body(&body), out) {
            return;
        }
        if let Some(Output::Persist(records)) = out.last_mut() {
            records.push(Durable::NewViewSent(nv.clone()));
        }
        self.my_new_view = Some(nv);
        self.broadcast(body, out);
        self.install(view, selection, out);
    }

    fn on_new_view(&mut self, from: ReplicaId, nv: NewView, out: &mut Vec<Output>) {
        // Having sent a view change for `target`, this replica promised not
        // to take part in any view below it.
        let acceptable = match self.mode {
            Mode::Changing { target, .. } => nv.view >= target,
            Mode::Normal => nv.view > self.view,
        };
        if !acceptable {
            return;
        }
        if nv.view > VIEW_MAX {
            return self.drop_msg(DropReason::WrongView, out);
        }
        if from != self.primary_of(nv.view) {
            return self.drop_msg(DropReason::NotFromPrimary, out);
        }
        let mut senders = BTreeSet::new();
        let valid = nv.view_changes.len() >= self.quorum
            && nv.view_changes.iter().all(|svc| {
                svc.view_change.new_view == nv.view && senders.insert(svc.sender) && self.view_change_valid(svc)
            });
        if !valid {
            return self.drop_msg(DropReason::InvalidNewView, out);
        }
        let Some(selection) = view_change::select(&nv.view_changes, self.f, self.quorum) else {
            return self.drop_msg(DropReason::InvalidNewView, out);
        };
        self.install(nv.view, selection, out);
    }

    /// Enters `view`: adopts its checkpoint, and treats each selected batch as
    /// this view's pre-prepare for its sequence number.
    fn install(&mut self, view: View, selection: Selection, out: &mut Vec<Output>) {
        self.view = view;
        self.mode = Mode::Normal;
        out.push(Output::Persist(vec![Durable::View { view, changing: false }]));
        let primary = self.primary_of(view);
        out.push(Output::NewViewInstalled { view, primary });
        self.view_changes = self.view_changes.split_off(&(view + 1));
        self.last_from_primary = self.now;
        self.last_heartbeat = self.now;
        self.last_progress = self.now;
        // Blocks still waiting for a certificate get the new view's time.
        self.last_certified = self.now;
        let h = selection.checkpoint.seq;
        self.height_hint = self.height_hint.max(h);
        if h > self.stable.seq && h <= self.executed {
            self.make_stable(selection.checkpoint.clone(), out);
        }
        for slot in self.log.values_mut() {
            slot.proposal = None;
            slot.prepares.clear();
            slot.commits.clear();
        }
        let now = self.now;
        self.waiting.clear();
        for (id, p) in self.pool.iter_mut() {
            p.arrived = now;
            p.forwarded = now;
            self.waiting.insert(p.order, waiting::Entry { id: *id, kind: p.kind, bytes: p.envelope.len() });
        }
        let low = self.stable.seq.max(h);
        let mut last = low.max(self.executed);
        #[cfg(feature = "mutants")]
        let selection = match self.cfg.mutant {
            Some(super::types::Mutant::NullOnViewChange) => Selection {
                proposals: selection.proposals.into_iter().map(|(s, _)| (s, Batch::empty())).collect(),
                ..selection
            },
            _ => selection,
        };
        for (seq, batch) in selection.proposals {
            if seq > self.last_seq() {
                // Claims beyond the end of the epoch come only from faulty
                // replicas (no correct one votes there): never ordered here.
                continue;
            }
            last = last.max(seq);
            if seq <= self.stable.seq {
                continue;
            }
            for e in &batch.envelopes {
                if let Some(p) = self.validator.tx_id(e).and_then(|id| self.pool.get(&id)) {
                    self.waiting.remove(p.order);
                }
            }
            if seq <= self.executed {
                // Already executed here: the choice must be what we executed.
                if let Some(slot) = self.log.get(&seq) {
                    if slot.committed.is_some_and(|d| d != batch.digest()) {
                        out.push(Output::ForkDetected { seq });
                        continue;
                    }
                }
            }
            self.accept_proposal(view, seq, batch, out);
        }
        self.next_seq = last + 1;
        // The oldest requests waiting here go to the new primary at once,
        // not one forward timeout later: the old primary may never have had
        // them, and clients wait.
        let primary = self.primary_of(view);
        if primary != self.cfg.me {
            let waiting: Vec<Vec<u8>> = self
                .waiting
                .iter()
                .filter_map(|(_, e)| self.pool.get(&e.id))
                .take(self.cfg.batch_count_max)
                .map(|p| p.envelope.clone())
                .collect();
            if !waiting.is_empty() {
                self.send(primary, Body::Forward { envelopes: waiting }, out);
            }
        }
        self.maybe_propose(out);
    }
}

/// Which votes a threshold counts.
#[derive(Clone, Copy)]
enum QuorumOf {
    Prepares,
    Commits,
}

fn push_preprepared(slot: &mut Slot, view: View, digest: Digest) {
    if let Some(e) = slot.preprepared.iter_mut().find(|(_, d)| *d == digest) {
        e.0 = e.0.max(view);
    } else {
        slot.preprepared.push((view, digest));
    }
    slot.preprepared.sort_by_key(|e| std::cmp::Reverse(e.0));
    slot.preprepared.truncate(PREPREPARED_PER_SEQ_MAX);
}

fn hash_body(body: &Body) -> Digest {
    let mut w = super::codec::Writer::new();
    body.encode(&mut w);
    Sha256::digest(w.finish()).into()
}

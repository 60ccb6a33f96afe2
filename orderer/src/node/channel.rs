//! The task that owns one channel's consensus core.
//!
//! One task per channel feeds the [`Replica`] its inputs (messages from the
//! cluster links, ticks, client requests, fetched blocks) and carries out
//! its outputs. Everything a batch of steps asks to persist is committed to
//! the store in one transaction (group commit) before any message those
//! steps produced leaves the node. No other code touches the replica: one
//! owner of state per channel.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::epoch::{EpochError, EpochShell};
use super::ops::ChannelMetrics;
use crate::consensus::codec::{DecodeError, Reader, Writer};
use crate::consensus::{
    Block, Certificate, CertifiedBlock, Input, Limits, Output, Phase, Refusal, Replica, ReplicaId, Seq, Stats, Tip,
    TxId, Validator,
};
use crate::storage::{Store, StoreError, WriteBatch};

/// Inputs drained per group commit, at most.
const INPUTS_PER_COMMIT_MAX: usize = 512;
/// Client requests among them, at most (consensus messages go first).
const REQUESTS_PER_COMMIT_MAX: usize = 256;
/// Blocks served per state-transfer request, at most.
pub const SERVE_BLOCKS_MAX: u64 = 64;
/// Bytes of blocks served per state-transfer response, at most.
const SERVE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Envelopes submitted on this node whose commit latency is being timed, at most.
const TIMED_SUBMITS_MAX: usize = 65_536;
/// A timed submission older than this is forgotten (it will not be measured).
const TIMED_SUBMIT_AGE_MAX: Duration = Duration::from_secs(600);
/// When the timed submissions are full, they are pruned at most this often.
const TIMED_SUBMIT_PRUNE_INTERVAL: Duration = Duration::from_secs(1);
/// Sequence numbers whose phase times are kept, at most. Times are dropped
/// when a block at or above them commits; the bound covers sequence numbers
/// a view change leaves behind until then.
const TIMED_SEQS_MAX: usize = 4096;

/// Sends node-to-node frames. Implemented by the cluster links; never
/// blocks (a full queue drops and counts).
pub trait Transport: Send + Sync {
    fn send(&self, to: ReplicaId, channel: &str, frame: Vec<u8>);
    fn broadcast(&self, channel: &str, frame: Vec<u8>);
}

/// What travels on a channel between two nodes: a consensus frame, or a
/// state-transfer request or response.
#[derive(Debug, PartialEq, Eq)]
pub enum Wire {
    Consensus(Vec<u8>),
    FetchRequest { from: Seq, to: Seq },
    FetchResponse(Vec<CertifiedBlock>),
}

impl Wire {
    /// Whether `bytes` claim to be a [`Wire::FetchResponse`] (tag only).
    pub fn is_fetch_response(bytes: &[u8]) -> bool {
        bytes.first() == Some(&2)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Wire::Consensus(bytes) => {
                w.u8(0).raw(bytes);
            }
            Wire::FetchRequest { from, to } => {
                w.u8(1).u64(*from).u64(*to);
            }
            Wire::FetchResponse(blocks) => {
                w.u8(2).u32(blocks.len() as u32);
                for b in blocks {
                    w.bytes(&b.block.encode()).bytes(&b.certificate.to_bytes());
                }
            }
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        let Some((tag, rest)) = bytes.split_first() else { return Err(DecodeError::Truncated { needed: 1 }) };
        match tag {
            0 => Ok(Wire::Consensus(rest.to_vec())),
            1 => {
                let mut r = Reader::new(rest);
                let w = Wire::FetchRequest { from: r.u64()?, to: r.u64()? };
                r.finish()?;
                Ok(w)
            }
            2 => {
                let mut r = Reader::new(rest);
                let count = r.count("fetched blocks", SERVE_BLOCKS_MAX as usize)?;
                let mut blocks = Vec::with_capacity(count);
                for _ in 0..count {
                    let block = Block::decode(&r.bytes("block", SERVE_BYTES_MAX)?, limits)?;
                    let certificate = Certificate::from_bytes(&r.bytes("certificate", 64 * 1024)?, limits)?;
                    blocks.push(CertifiedBlock { block, certificate });
                }
                r.finish()?;
                Ok(Wire::FetchResponse(blocks))
            }
            tag => Err(DecodeError::UnknownTag { what: "wire", tag: *tag }),
        }
    }
}

/// The answer to a submitted envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitResult {
    Accepted {
        tx_id: TxId,
    },
    Refused(Refusal),
    /// The channel task is gone (shutting down).
    Unavailable,
}

impl SubmitResult {
    /// The outcome as a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            SubmitResult::Accepted { .. } => "accepted",
            SubmitResult::Refused(Refusal::TooLarge { .. }) => "too_large",
            SubmitResult::Refused(Refusal::Invalid(_)) => "invalid",
            SubmitResult::Refused(Refusal::Duplicate) => "duplicate",
            SubmitResult::Refused(Refusal::PoolFull) => "pool_full",
            SubmitResult::Refused(Refusal::EpochEnded) => "epoch_ended",
            SubmitResult::Unavailable => "unavailable",
        }
    }
}

/// A snapshot of the channel for the API and metrics.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub height: Seq,
    pub certified: Seq,
    /// Envelopes in the stored ledger.
    pub envelopes: u64,
    pub view: u64,
    pub primary: ReplicaId,
    pub changing_view: bool,
    pub pool: usize,
    pub in_flight: usize,
    pub stats: Stats,
    /// The current epoch (MAC keys), and the block it started after.
    pub epoch: u64,
    pub epoch_base: Seq,
    /// Epoch switches done since the process started.
    pub epoch_switches: u64,
    /// (epoch, base) of every epoch: which epoch certified which block.
    pub epoch_bases: Arc<Vec<(u64, Seq)>>,
    /// This node's announcement for the next epoch is in the ledger.
    pub announced_next: bool,
    /// The channel configuration of the current epoch (`None`: the channel
    /// runs without epochs, under its genesis configuration).
    pub config: Option<Arc<channels::ChannelConfig>>,
    /// A reconfiguration removed this consenter: it orders nothing more.
    pub retired: bool,
}

/// The answer to a key-rotation request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotateAnswer {
    /// The current epoch; the rotation introduces the next one.
    pub epoch: u64,
    /// This node's announcement for the next epoch is already in the ledger.
    pub announced: bool,
}

enum Request {
    Submit(Vec<u8>, oneshot::Sender<SubmitResult>),
    Stop(oneshot::Sender<()>),
    /// Announce a key for the next epoch now (admin API).
    RotateKeys(oneshot::Sender<Option<RotateAnswer>>),
}

/// A handle on a running channel task.
#[derive(Clone)]
pub struct ChannelHandle {
    pub name: String,
    requests: mpsc::Sender<Request>,
    inbound: mpsc::Sender<(ReplicaId, Vec<u8>)>,
    status: watch::Receiver<Status>,
    metrics: Arc<ChannelMetrics>,
}

impl ChannelHandle {
    /// Submits an envelope; answers once the core admitted or refused it.
    pub async fn submit(&self, envelope: Vec<u8>) -> SubmitResult {
        let (tx, rx) = oneshot::channel();
        let result = if self.requests.try_send(Request::Submit(envelope, tx)).is_err() {
            SubmitResult::Refused(Refusal::PoolFull)
        } else {
            rx.await.unwrap_or(SubmitResult::Unavailable)
        };
        self.metrics.submit_result(result.label());
        result
    }

    /// Asks the channel to announce a fresh MAC key for the next epoch.
    /// `None` if the channel runs without epochs (or is shutting down).
    pub async fn rotate_keys(&self) -> Option<RotateAnswer> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::RotateKeys(tx)).await.ok()?;
        rx.await.ok().flatten()
    }

    /// The channel's event-fed figures (also the hooks for the peer API).
    pub fn metrics(&self) -> &Arc<ChannelMetrics> {
        &self.metrics
    }

    /// Hands a frame received from `from` on this channel to the task; drops
    /// it when the task's queue is full (consensus recovers by resending).
    pub fn deliver(&self, from: ReplicaId, frame: Vec<u8>) -> bool {
        self.inbound.try_send((from, frame)).is_ok()
    }

    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Stops the task and waits until it has released the store.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The refusal a consenter removed from the channel gives its clients.
const RETIRED: &str = "this node is no longer a consenter of the channel (a reconfiguration removed it): submit to a \
                       current consenter";

/// Everything a channel task needs.
pub struct ChannelParams {
    pub config: crate::consensus::Config,
    pub crypto: Box<dyn crate::consensus::Crypto + Send>,
    pub macs: crate::consensus::MacKeys,
    pub validator: Box<dyn Validator + Send>,
    pub store: Arc<Store>,
    pub transport: Arc<dyn Transport>,
    pub tick: Duration,
    pub queue_max: usize,
    /// Signs this consenter's vote log (its identity key); `None` keeps no log.
    pub audit_signer: Option<Box<dyn crate::consensus::Crypto + Send>>,
}

/// Why a channel task could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("consensus configuration refused: {0}")]
    Config(String),
    #[error("channel metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Epoch(#[from] EpochError),
}

/// Recovers the channel's state from the store and starts its task.
pub fn spawn(params: ChannelParams) -> Result<(ChannelHandle, tokio::task::JoinHandle<()>), ChannelError> {
    spawn_with_epochs(params, None)
}

/// [`spawn`], with the epoch machinery of the channel (key rotation); the
/// parameters must be those of `epochs`' current epoch.
pub fn spawn_with_epochs(
    params: ChannelParams,
    epochs: Option<EpochShell>,
) -> Result<(ChannelHandle, tokio::task::JoinHandle<()>), ChannelError> {
    let channel = params.config.channel.clone();
    let store = params.store.clone();
    store.create_channel(&channel)?;
    let tip = recover_tip(&store, &channel, &params.config, &*params.validator)?;
    let records = store.durable(&channel)?;
    // The highest stored block with its certificate (what deliver serves).
    let mut certified = tip.executed;
    while certified > 0 && store.certificate(&channel, certified)?.is_none() && tip.executed - certified < 4096 {
        certified -= 1;
    }
    let metrics = Arc::new(ChannelMetrics::new(&channel, params.config.pool_max)?);
    let phases = PhaseClock::new(tip.executed);
    let audit = match params.audit_signer {
        Some(signer) => Some(super::audit_api::AuditLog::resume(&store, &channel, params.config.me, signer)?),
        None => None,
    };
    let replica = Replica::new(params.config, params.crypto, params.macs, params.validator, tip, &records)
        .map_err(ChannelError::Config)?;
    let (req_tx, req_rx) = mpsc::channel(params.queue_max);
    let (in_tx, in_rx) = mpsc::channel(params.queue_max);
    let (status_tx, status_rx) = watch::channel(Status::default());
    let task = Task {
        replica,
        store,
        transport: params.transport,
        channel: channel.clone(),
        status: status_tx,
        certified,
        envelopes: 0,
        limits: Limits::default(),
        metrics: metrics.clone(),
        submitted: HashMap::new(),
        pruned_at: None,
        phases,
        epochs,
        epoch_ended: None,
        stats_before: Stats::default(),
        announce_answer: None,
        deferred: Vec::new(),
        audit,
        retired: false,
    };
    let join = tokio::spawn(task.run(req_rx, in_rx, params.tick));
    Ok((ChannelHandle { name: channel, requests: req_tx, inbound: in_tx, status: status_rx, metrics }, join))
}

/// Where the ledger stands, read back from the store.
fn recover_tip(
    store: &Store,
    channel: &str,
    cfg: &crate::consensus::Config,
    validator: &dyn Validator,
) -> Result<Tip, StoreError> {
    let height = store.height(channel)?;
    // The epoch starts after its base block (the genesis block, or the
    // last block of the previous epoch): its checkpoint, valid without the
    // signatures of this epoch.
    let base = cfg.epoch_base;
    let mut tip = Tip::genesis(cfg.genesis_hash);
    tip.executed = base;
    tip.stable.seq = base;
    if base > 0 {
        if let Some(cert) = store.certificate(channel, base)? {
            tip.stable.signatures = cert.signatures;
        }
    }
    if height <= base {
        return Ok(tip);
    }
    tip.executed = height;
    let oldest = height.saturating_sub(cfg.dedup_window_blocks.max(4 * cfg.window)) + 1;
    for n in oldest..=height {
        let Some(block) = store.block(channel, n)? else { continue };
        if n == height {
            tip.header_hash = block.header_hash;
        }
        if n > base {
            match store.certificate(channel, n)? {
                Some(cert) if n % cfg.checkpoint_interval == 0 => tip.stable = cert,
                Some(_) => {}
                None => tip.uncertified.push((n, block.header_hash)),
            }
        }
        if n + cfg.dedup_window_blocks > height {
            tip.recent.push((n, block.envelopes.iter().filter_map(|e| validator.tx_id(e)).collect()));
        }
    }
    // The announcements for the next epoch executed so far in this one.
    let next = cfg.epoch.saturating_add(1);
    for n in base + 1..=height {
        let Some(block) = store.block(channel, n)? else { continue };
        for envelope in &block.envelopes {
            if let Some(a) = validator.announcement(envelope).filter(|a| a.epoch == next) {
                tip.announced.push((n, a.consenter));
            }
            if tip.reconfigured.is_none() && validator.reconfiguration(envelope) {
                tip.reconfigured = Some(n);
            }
        }
    }
    Ok(tip)
}

struct Task {
    replica: Replica,
    store: Arc<Store>,
    transport: Arc<dyn Transport>,
    channel: String,
    status: watch::Sender<Status>,
    certified: Seq,
    envelopes: u64,
    limits: Limits,
    metrics: Arc<ChannelMetrics>,
    /// When each admitted envelope submitted on this node arrived (bounded).
    submitted: HashMap<TxId, Instant>,
    /// When `submitted` was last pruned of old entries.
    pruned_at: Option<Instant>,
    /// When the sequence numbers in flight reached their phases here.
    phases: PhaseClock,
    /// Key rotation (None: the channel stays in its first epoch).
    epochs: Option<EpochShell>,
    /// The replica's epoch ended with this block: switch after the flush.
    epoch_ended: Option<Seq>,
    /// Counters of the replicas of earlier epochs (metrics are cumulative).
    stats_before: Stats,
    /// The answer to this node's last key announcement, when submitted.
    announce_answer: Option<oneshot::Receiver<SubmitResult>>,
    /// Client requests that arrived after the epoch ended, for the next
    /// epoch's replica (bounded by [`INPUTS_PER_COMMIT_MAX`]).
    deferred: Vec<(Vec<u8>, oneshot::Sender<SubmitResult>)>,
    /// This consenter's signed vote log.
    audit: Option<super::audit_api::AuditLog>,
    /// A reconfiguration removed this consenter from the channel.
    retired: bool,
}

/// A span between two phases of one sequence number, measured by [`PhaseClock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PhaseSpan {
    PrePrepareToPrepared(Duration),
    PreparedToCommitted(Duration),
}

/// When each sequence number in flight reached its phases on this node. The
/// consensus core has no clock: the task timestamps the outputs that show a
/// phase ([`Output::phases`]) and measures the spans between them. Bounded:
/// a commit forgets everything at or below it, and at most
/// [`TIMED_SEQS_MAX`] sequence numbers are timed at once.
struct PhaseClock {
    /// The highest block committed: lower sequence numbers are not timed.
    committed: Seq,
    /// seq -> (pre-prepare accepted, prepared).
    seqs: BTreeMap<Seq, (Option<Instant>, Option<Instant>)>,
}

impl PhaseClock {
    fn new(committed: Seq) -> Self {
        Self { committed, seqs: BTreeMap::new() }
    }

    /// `seq` reached `phase` at `at`: the span it completes, if this node
    /// saw the phase before it (a replica that restarted or caught up by
    /// state transfer did not).
    fn observe(&mut self, seq: Seq, phase: Phase, at: Instant) -> Option<PhaseSpan> {
        let span = match phase {
            Phase::PrePrepared if seq > self.committed => {
                // The first proposal accepted counts (a view change that
                // re-proposes the slot is part of its latency).
                self.times(seq).0.get_or_insert(at);
                None
            }
            Phase::Prepared if seq > self.committed => {
                let times = self.times(seq);
                if times.1.is_some() {
                    return None;
                }
                times.1 = Some(at);
                times.0.map(|accepted| PhaseSpan::PrePrepareToPrepared(at.saturating_duration_since(accepted)))
            }
            Phase::PrePrepared | Phase::Prepared => None,
            Phase::Committed => {
                let prepared = self.seqs.get(&seq).and_then(|t| t.1);
                self.committed = self.committed.max(seq);
                while self.seqs.first_key_value().is_some_and(|(s, _)| *s <= self.committed) {
                    self.seqs.pop_first();
                }
                prepared.map(|p| PhaseSpan::PreparedToCommitted(at.saturating_duration_since(p)))
            }
        };
        assert!(self.seqs.len() <= TIMED_SEQS_MAX, "phase times over their bound");
        assert!(self.seqs.keys().next().is_none_or(|s| *s > self.committed), "phase times below the committed height");
        span
    }

    fn times(&mut self, seq: Seq) -> &mut (Option<Instant>, Option<Instant>) {
        if !self.seqs.contains_key(&seq) && self.seqs.len() >= TIMED_SEQS_MAX {
            // Keep the newest: the oldest left behind will not commit soon.
            self.seqs.pop_first();
        }
        self.seqs.entry(seq).or_default()
    }
}

/// What the metrics need of a block once it is durable.
struct BlockFigures {
    envelopes: usize,
    bytes: usize,
    /// Submission times of its envelopes that were submitted on this node.
    submitted: Vec<Instant>,
    /// When the core committed it.
    committed_at: Instant,
}

/// What a group of steps produced, waiting for the group commit.
#[derive(Default)]
struct Pending {
    batch: WriteBatch,
    sends: Vec<(Option<ReplicaId>, Vec<u8>)>,
    replies: Vec<(oneshot::Sender<SubmitResult>, SubmitResult)>,
    fetches: Vec<(Seq, Seq)>,
    committed: Vec<BlockFigures>,
}

impl Task {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut inbound: mpsc::Receiver<(ReplicaId, Vec<u8>)>,
        tick: Duration,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.envelopes = self.store.tx_count(&self.channel).unwrap_or(0);
        self.publish_status();
        let mut stopped = None;
        loop {
            let mut pending = Pending::default();
            // Time first, then the cluster, then clients: under client
            // overload the consensus traffic must not wait behind requests
            // (the pool bounds the requests; a full one answers 503).
            tokio::select! {
                biased;
                _ = ticker.tick() => self.step(Input::Tick, &mut pending, None),
                m = inbound.recv() => match m {
                    Some((from, frame)) => self.receive(from, frame, &mut pending),
                    None => break,
                },
                r = requests.recv() => match r {
                    Some(Request::Submit(env, reply)) => self.submit(env, reply, &mut pending),
                    Some(Request::RotateKeys(reply)) => self.rotate_keys(reply),
                    Some(Request::Stop(done)) => {
                        stopped = Some(done);
                        break;
                    }
                    None => break,
                },
            }
            // Drain what else is waiting, up to a bound, into the same
            // commit: consensus messages first, then at most
            // REQUESTS_PER_COMMIT_MAX client requests.
            let mut drained = 0;
            while drained < INPUTS_PER_COMMIT_MAX {
                let Ok((from, frame)) = inbound.try_recv() else { break };
                self.receive(from, frame, &mut pending);
                drained += 1;
            }
            let mut admitted = 0;
            while drained < INPUTS_PER_COMMIT_MAX && admitted < REQUESTS_PER_COMMIT_MAX {
                match requests.try_recv() {
                    Ok(Request::Submit(env, reply)) => self.submit(env, reply, &mut pending),
                    Ok(Request::RotateKeys(reply)) => self.rotate_keys(reply),
                    Ok(Request::Stop(done)) => {
                        stopped = Some(done);
                        break;
                    }
                    Err(_) => break,
                }
                drained += 1;
                admitted += 1;
            }
            if let Err(e) = self.flush(pending).await {
                tracing::error!(channel = %self.channel, error = %e, "storage failed; stopping the channel rather than vote without durability");
                break;
            }
            if let Err(e) = self.epoch_work().await {
                tracing::error!(channel = %self.channel, error = %e, "epoch switch failed; stopping the channel rather than run with the wrong keys");
                break;
            }
            if stopped.is_some() {
                break;
            }
        }
        tracing::info!(channel = %self.channel, "channel task stopped");
        drop(self);
        if let Some(done) = stopped {
            let _ = done.send(());
        }
    }

    fn submit(&mut self, envelope: Vec<u8>, reply: oneshot::Sender<SubmitResult>, pending: &mut Pending) {
        if self.retired {
            let _ = reply.send(SubmitResult::Refused(Refusal::Invalid(RETIRED.into())));
            return;
        }
        // The epoch ended in this round of inputs and the switch follows the
        // flush: hold the request for the next epoch's replica instead of
        // refusing it (bounded by the requests drained per round).
        if self.epochs.is_some() && self.replica.is_finished() && self.deferred.len() < INPUTS_PER_COMMIT_MAX {
            self.deferred.push((envelope, reply));
            return;
        }
        let arrived = Instant::now();
        self.step(Input::Request(envelope), pending, Some(reply));
        self.metrics.request_admitted(arrived.elapsed());
    }

    /// Starts timing an admitted envelope's commit latency, within bounds.
    fn time_submission(&mut self, tx_id: TxId, arrived: Instant) {
        let prune_due = self.pruned_at.is_none_or(|at| at.elapsed() >= TIMED_SUBMIT_PRUNE_INTERVAL);
        if self.submitted.len() >= TIMED_SUBMITS_MAX && prune_due {
            self.submitted.retain(|_, at| at.elapsed() < TIMED_SUBMIT_AGE_MAX);
            self.pruned_at = Some(arrived);
        }
        if self.submitted.len() < TIMED_SUBMITS_MAX {
            self.submitted.insert(tx_id, arrived);
        }
        assert!(self.submitted.len() <= TIMED_SUBMITS_MAX, "timed submissions over their bound");
    }

    fn receive(&mut self, from: ReplicaId, frame: Vec<u8>, pending: &mut Pending) {
        match Wire::decode(&frame, &self.limits) {
            Ok(Wire::Consensus(bytes)) => self.step(Input::Message(bytes), pending, None),
            Ok(Wire::FetchRequest { from: lo, to: hi }) => self.serve(from, lo, hi),
            Ok(Wire::FetchResponse(blocks)) => self.step(Input::Blocks(blocks), pending, None),
            Err(e) => tracing::debug!(channel = %self.channel, from, error = %e, "malformed frame dropped"),
        }
    }

    /// Serves a state-transfer request from the store (bounded).
    fn serve(&self, to: ReplicaId, from: Seq, upto: Seq) {
        let mut blocks = Vec::new();
        let mut bytes = 0;
        for n in from..=upto.min(from.saturating_add(SERVE_BLOCKS_MAX - 1)) {
            let Ok(Some(block)) = self.store.block(&self.channel, n) else { break };
            // A block still without its own certificate goes with an empty
            // one: a later certified block of the response vouches for it.
            let certificate = match self.store.certificate(&self.channel, n) {
                Ok(Some(c)) => c,
                _ => Certificate { seq: n, header_hash: block.header_hash, signatures: vec![] },
            };
            bytes += block.envelopes.iter().map(Vec::len).sum::<usize>();
            blocks.push(CertifiedBlock { block, certificate });
            if bytes >= SERVE_BYTES_MAX {
                break;
            }
        }
        if !blocks.is_empty() {
            self.transport.send(to, &self.channel, Wire::FetchResponse(blocks).encode());
        }
    }

    fn step(&mut self, input: Input, pending: &mut Pending, mut reply: Option<oneshot::Sender<SubmitResult>>) {
        let arrived = Instant::now();
        let outputs = self.replica.step(input);
        // The outputs of one step happened at once, as far as the shell knows.
        let stepped = Instant::now();
        for output in outputs {
            for (seq, phase) in output.phases() {
                match self.phases.observe(seq, phase, stepped) {
                    Some(PhaseSpan::PrePrepareToPrepared(d)) => self.metrics.preprepare_to_prepared(d),
                    Some(PhaseSpan::PreparedToCommitted(d)) => self.metrics.prepared_to_committed(d),
                    None => {}
                }
            }
            match output {
                Output::Send { to, frame } => pending.sends.push((Some(to), Wire::Consensus(frame).encode())),
                Output::Broadcast { frame } => pending.sends.push((None, Wire::Consensus(frame).encode())),
                Output::Persist(records) => {
                    if let Some(log) = &mut self.audit {
                        log.record_votes(&records, &self.replica, &mut pending.batch.audit);
                    }
                    pending.batch.durable.extend(records)
                }
                Output::Commit(block) => {
                    let ids: Vec<TxId> = block.envelopes.iter().filter_map(|e| self.replica_tx_id(e)).collect();
                    tracing::info!(channel = %self.channel, block = block.number, envelopes = block.envelopes.len(), "block committed");
                    if let Some(shell) = self.epochs.as_mut() {
                        shell.observe_block(&block.envelopes);
                    }
                    pending.committed.push(BlockFigures {
                        envelopes: block.envelopes.len(),
                        bytes: block.envelopes.iter().map(Vec::len).sum(),
                        submitted: ids.iter().filter_map(|id| self.submitted.remove(id)).collect(),
                        committed_at: stepped,
                    });
                    pending.batch.blocks.push((block, ids));
                }
                Output::Certified(cert) => {
                    self.certified = self.certified.max(cert.seq);
                    pending.batch.certificates.push(cert);
                }
                Output::Fetch { from, to } => pending.fetches.push((from, to)),
                Output::Admitted { tx_id } => {
                    if reply.is_some() {
                        self.time_submission(tx_id, arrived);
                    }
                    if let Some(r) = reply.take() {
                        pending.replies.push((r, SubmitResult::Accepted { tx_id }));
                    }
                }
                Output::Refused { reason } => {
                    if let Some(r) = reply.take() {
                        pending.replies.push((r, SubmitResult::Refused(reason)));
                    }
                }
                Output::ViewChangeStarted { view, reason } => {
                    tracing::info!(channel = %self.channel, view, reason = reason.as_str(), "view change started");
                }
                Output::NewViewInstalled { view, primary } => {
                    tracing::info!(channel = %self.channel, view, primary, "new view installed");
                }
                Output::Dropped { reason } => {
                    tracing::debug!(channel = %self.channel, reason = reason.as_str(), "message dropped");
                }
                Output::EpochEnded { epoch, last_seq } => {
                    tracing::info!(channel = %self.channel, epoch, block = last_seq, "epoch ended; switching to the next one");
                    self.epoch_ended = Some(last_seq);
                }
                Output::ForkDetected { seq } => {
                    tracing::error!(channel = %self.channel, block = seq, "a quorum certified a different block: more than f consenters are faulty");
                }
                Output::Evidence(shares) => {
                    for s in &shares {
                        tracing::warn!(channel = %self.channel, consenter = s.signer, block = s.seq, "a consenter signed a conflicting block certificate share; kept as evidence in the vote log");
                    }
                    if let Some(log) = &mut self.audit {
                        log.record_evidence(shares, &mut pending.batch.audit);
                    }
                }
            }
        }
    }

    fn replica_tx_id(&self, envelope: &[u8]) -> Option<TxId> {
        self.replica.tx_id(envelope)
    }

    /// Group commit, then the sends and answers that depended on it.
    async fn flush(&mut self, pending: Pending) -> Result<(), StoreError> {
        let Pending { batch, sends, replies, fetches, committed } = pending;
        let new_blocks = !batch.blocks.is_empty();
        if !batch.is_empty() {
            let store = self.store.clone();
            let channel = self.channel.clone();
            let started = Instant::now();
            tokio::task::spawn_blocking(move || store.commit(&channel, &batch))
                .await
                .map_err(|e| StoreError::Database { path: "store".into(), detail: e.to_string() })??;
            self.metrics.store_committed(started.elapsed());
        }
        let persisted = Instant::now();
        for block in committed {
            self.metrics.committed_to_persisted(persisted.saturating_duration_since(block.committed_at));
            self.metrics.block_committed(block.envelopes, block.bytes);
            for at in block.submitted {
                self.metrics.envelope_committed(at.elapsed());
            }
        }
        for (to, frame) in sends {
            match to {
                Some(to) => self.transport.send(to, &self.channel, frame),
                None => self.transport.broadcast(&self.channel, frame),
            }
        }
        for (from, to) in fetches {
            let req = Wire::FetchRequest { from, to }.encode();
            self.transport.broadcast(&self.channel, req);
        }
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
        if new_blocks {
            self.envelopes = self.store.tx_count(&self.channel)?;
        }
        self.publish_status();
        Ok(())
    }

    fn publish_status(&self) {
        let r = &self.replica;
        let status = Status {
            height: r.executed(),
            certified: self.certified,
            envelopes: self.envelopes,
            view: r.view(),
            primary: r.primary_of(r.view()),
            changing_view: r.is_changing_view(),
            pool: r.pool_len(),
            in_flight: r.in_flight(),
            stats: merged_stats(&self.stats_before, r.stats()),
            epoch: r.config().epoch,
            epoch_base: r.config().epoch_base,
            epoch_switches: self.epochs.as_ref().map_or(0, |e| e.switches),
            epoch_bases: self
                .epochs
                .as_ref()
                .map_or_else(|| Arc::new(vec![(r.config().epoch, r.config().epoch_base)]), |e| e.bases.clone()),
            announced_next: self.epochs.as_ref().is_some_and(|e| e.rotation.has_announced()),
            config: self.epochs.as_ref().map(|e| e.config().clone()),
            retired: self.retired,
        };
        self.status.send_replace(status);
    }
}

/// Counters of two replicas added up (the metrics stay cumulative across
/// an epoch switch, which starts a fresh replica).
fn merged_stats(before: &Stats, now: &Stats) -> Stats {
    let mut out = now.clone();
    for (reason, n) in &before.dropped {
        *out.dropped.entry(*reason).or_default() += n;
    }
    for (reason, n) in &before.view_changes {
        *out.view_changes.entry(*reason).or_default() += n;
    }
    out.conflicting_votes += before.conflicting_votes;
    out.refused_double_votes += before.refused_double_votes;
    out.proposals += before.proposals;
    out
}

/// Key rotation: the epoch switch and this node's announcements. The logic
/// lives in [`super::epoch`]; this is where it meets the replica and the
/// store.
impl Task {
    fn rotate_keys(&mut self, reply: oneshot::Sender<Option<RotateAnswer>>) {
        let answer = self.epochs.as_mut().map(|shell| {
            shell.rotation.request();
            RotateAnswer { epoch: shell.epoch(), announced: shell.rotation.has_announced() }
        });
        tracing::info!(channel = %self.channel, ?answer, "key rotation requested by an admin");
        let _ = reply.send(answer);
    }

    /// After each group commit: switch epochs if the replica's epoch ended,
    /// then submit this node's announcement if a trigger fired.
    async fn epoch_work(&mut self) -> Result<(), EpochError> {
        if let Some(last_seq) = self.epoch_ended.take() {
            self.switch_epoch(last_seq).await?;
        }
        let Some(shell) = self.epochs.as_mut().filter(|_| !self.retired) else { return Ok(()) };
        if let Some(rx) = self.announce_answer.as_mut() {
            match rx.try_recv() {
                Ok(SubmitResult::Accepted { .. } | SubmitResult::Refused(Refusal::Duplicate)) => {
                    self.announce_answer = None;
                }
                Ok(other) => {
                    tracing::warn!(channel = %self.channel, answer = ?other, "key announcement not admitted; retrying at the next block");
                    shell.rotation.refused();
                    self.announce_answer = None;
                }
                Err(oneshot::error::TryRecvError::Empty) => return Ok(()),
                Err(oneshot::error::TryRecvError::Closed) => self.announce_answer = None,
            }
        }
        let executed = self.replica.executed();
        // Also after the quorum fixed the epoch's end: an announcement
        // ordered up to that block still counts for the next key set.
        if !shell.rotation.submit_due(executed, shell.record.base, Instant::now()) {
            return Ok(());
        }
        // The secret is durable before the announcement is built.
        let envelope = shell.announcement()?;
        shell.rotation.submitted(executed);
        tracing::info!(channel = %self.channel, epoch = shell.epoch() + 1, "announcing a fresh MAC key for the next epoch");
        let (tx, rx) = oneshot::channel();
        self.announce_answer = Some(rx);
        let mut pending = Pending::default();
        self.step(Input::Request(envelope), &mut pending, Some(tx));
        self.flush(pending).await?;
        Ok(())
    }

    /// The replica's epoch ended with block `last_seq` (stored with its
    /// certificate by the flush that preceded): store the next epoch's record
    /// and clear the old records in one transaction, start the next epoch's
    /// replica, hand it the requests still waiting, erase old keys.
    async fn switch_epoch(&mut self, last_seq: Seq) -> Result<(), EpochError> {
        let Some(shell) = self.epochs.as_mut() else {
            tracing::error!(channel = %self.channel, "the epoch ended but this channel runs without key rotation; it stops ordering");
            return Ok(());
        };
        let next = shell.prepare_next(&self.store, last_seq)?;
        let epoch = next.record.epoch;
        if let Some(r) = &next.reconfigured {
            tracing::info!(channel = %self.channel, epoch, block = r.block, tx_id = %r.tx_id, sequence = r.config.sequence, consenters = r.config.consenters.len(), "reconfiguration takes effect: the next epoch runs under the new channel configuration");
        }
        self.store.begin_epoch(&self.channel, epoch, &next.record.encode())?;
        let (parts, keys) = next.into_parts();
        let Some(parts) = parts else {
            shell.switched(keys)?;
            self.retired = true;
            self.metrics.epoch_started();
            tracing::warn!(channel = %self.channel, epoch, base = last_seq, "a reconfiguration removed this consenter from the channel: it stops ordering and keeps its ledger");
            for (_, reply) in std::mem::take(&mut self.deferred) {
                let _ = reply.send(SubmitResult::Refused(Refusal::Invalid(RETIRED.into())));
            }
            self.publish_status();
            return Ok(());
        };
        let tip = recover_tip(&self.store, &self.channel, &parts.config, &parts.validator)?;
        let replica =
            Replica::new(parts.config, Box::new(parts.crypto), parts.macs, Box::new(parts.validator), tip, &[])
                .map_err(|e| EpochError::Identity(super::identity::IdentityError::Config(e)))?;
        let waiting = self.replica.pending_envelopes();
        self.stats_before = merged_stats(&self.stats_before, self.replica.stats());
        self.replica = replica;
        let erased = shell.switched(keys)?;
        self.metrics.epoch_started();
        tracing::info!(channel = %self.channel, epoch, base = last_seq, resubmitted = waiting.len(), erased_keys = erased, "epoch switched: new MAC keys in use, older private keys erased");
        let mut pending = Pending::default();
        for envelope in waiting {
            self.step(Input::Request(envelope), &mut pending, None);
        }
        for (envelope, reply) in std::mem::take(&mut self.deferred) {
            self.submit(envelope, reply, &mut pending);
        }
        self.flush(pending).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_frames_round_trip_and_refuse_unknown_tags() {
        let cases = [Wire::Consensus(vec![1, 2, 3]), Wire::FetchRequest { from: 3, to: 9 }];
        for w in cases {
            assert_eq!(Wire::decode(&w.encode(), &Limits::default()).unwrap(), w);
        }
        assert!(Wire::decode(&[9, 0], &Limits::default()).is_err());
        assert!(Wire::decode(&[], &Limits::default()).is_err());
    }

    #[test]
    fn phase_clock_measures_each_span_once_in_order() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut clock = PhaseClock::new(0);
        assert_eq!(clock.observe(1, Phase::PrePrepared, at(0)), None);
        assert_eq!(clock.observe(1, Phase::PrePrepared, at(5)), None, "a re-proposal keeps the first time");
        assert_eq!(clock.observe(1, Phase::Prepared, at(10)), Some(PhaseSpan::PrePrepareToPrepared(at(10) - at(0))));
        assert_eq!(clock.observe(1, Phase::Prepared, at(11)), None, "prepared once");
        assert_eq!(clock.observe(1, Phase::Committed, at(30)), Some(PhaseSpan::PreparedToCommitted(at(30) - at(10))));
        assert!(clock.seqs.is_empty(), "a committed seq is forgotten");
        // Late votes for a committed seq, and a block fetched by state
        // transfer (no earlier phase seen), measure nothing.
        assert_eq!(clock.observe(1, Phase::Prepared, at(31)), None);
        assert_eq!(clock.observe(2, Phase::Committed, at(32)), None);
        assert!(clock.seqs.is_empty());
    }

    #[test]
    fn phase_clock_stays_bounded_and_forgets_what_a_commit_passed() {
        let t0 = Instant::now();
        let mut clock = PhaseClock::new(0);
        for seq in 1..=(TIMED_SEQS_MAX as u64 + 10) {
            clock.observe(seq, Phase::PrePrepared, t0);
        }
        assert_eq!(clock.seqs.len(), TIMED_SEQS_MAX);
        assert_eq!(clock.seqs.keys().next(), Some(&11), "the oldest are dropped first");
        clock.observe(100, Phase::Committed, t0);
        assert_eq!(clock.seqs.keys().next(), Some(&101), "a commit forgets everything at or below it");
    }
}

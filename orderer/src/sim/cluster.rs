//! One simulated cluster run from one seed: network, clients, faults,
//! crash-restart with what was persisted, Byzantine replicas, and the
//! invariant checks after every step.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::adversary::{Adversary, Collusion, Context, Draw, Mix, Outgoing, Timing};
use super::identity::{
    make_announcement, make_envelope, make_reconfiguration, parse_announcement, parse_reconfiguration, Keyring,
    SimConfig, SimConfigValidator, SimCrypto, SimValidator,
};
use super::rng::Rng;
use crate::consensus::message::Body;
use crate::consensus::{
    compact, Block, Certificate, CertifiedBlock, Config, Crypto, Digest, Durable, Epoch, Frame, Input, Limits, MacKeys,
    Output, Refusal, Replica, ReplicaId, Seq, Tip, TxId, Validator, ViewChangeReason, VoteKind,
};

const CHANNEL: &str = "simchannel";

/// The transaction id of any envelope of the simulator (client envelope,
/// announcement or reconfiguration; it does not depend on the epoch).
fn tx_id(envelope: &[u8]) -> Option<TxId> {
    SimConfigValidator { config_sequence: 0 }.tx_id(envelope)
}
/// The run's key epoch; the epochs below it are what `replay-old-epoch`
/// crafts frames for.
const EPOCH: u64 = 3;
/// Ticks of the fault phase; faults heal at its end.
const FAULT_TICKS: u64 = 1_200;
/// After healing, every admitted request must commit everywhere within this.
const LIVENESS_TICKS: u64 = 6_000;
/// A client resubmits a request not committed after this many ticks.
const CLIENT_RETRY_TICKS: u64 = 400;
/// The simulated network's largest one-way delay.
const DELAY_MAX_TICKS: u64 = 8;
/// Calm runs (throughput figures): one request every this many ticks.
pub const CALM_REQUEST_SPACING_TICKS: u64 = 10;
/// A node crashed at a chosen persistence point restarts this much later
/// (at most).
const CRASH_POINT_DOWN_TICKS_MAX: u64 = 60;
/// Most reconfigurations the admins make in one run.
const RECONFIGURATIONS_MAX: usize = 3;
/// The admins resubmit a reconfiguration not yet executed after this many
/// ticks (to another node), as clients do.
const ADMIN_RETRY_TICKS: u64 = 300;
/// A joining replica that could not copy a verified history retries this
/// much later (from another node, drawn again).
const JOIN_RETRY_TICKS: u64 = 20;
/// Fewest consenters a reconfiguration leaves.
const MEMBERS_MIN: usize = 4;
/// How often a second admin races with a rival update.
const RIVAL_PER_MILLE: u64 = 300;

/// What to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub nodes: usize,
    pub byzantine: usize,
    /// How each Byzantine replica gets its mix of strategies.
    pub strategies: Draw,
    pub requests: usize,
    /// Replicas run twice (same identity and keys, separate state), as in
    /// the Twins method; they count among the faulty.
    pub twins: usize,
    /// Throughput runs: no network faults, crashes, drops or duplicates, one
    /// request every few ticks, and the Byzantine replicas are the first
    /// members (the primary of view 0 is one of them).
    pub calm: bool,
    /// Crash this node at this step, after this many of its outputs
    /// (`sim --crash-every-point` sweeps them); it restarts a little later.
    pub crash_at: Option<CrashAt>,
    /// Record the persistence points of honest nodes (steps whose outputs
    /// ask for something to be persisted), to choose crash points from.
    pub record_points: bool,
    pub trace: bool,
    /// Key rotation: every replica announces new key material once this
    /// many blocks of its epoch are ordered (Some(0): never; None: drawn
    /// from the seed, so that the CI seeds mix rotating and static runs).
    pub rotate_every: Option<u64>,
    /// Reconfiguration by consensus: the admins submit up to
    /// [`RECONFIGURATIONS_MAX`] configuration updates (rotate a member's
    /// identity key, add the spare replica, remove a member) at random
    /// times (Some(false): never; None: drawn from the seed, one in four
    /// seeds). Never with twins.
    pub reconfigure: Option<bool>,
    #[cfg(feature = "mutants")]
    pub mutant: Option<crate::consensus::types::Mutant>,
}

impl Scenario {
    /// Blocks per epoch before replicas announce (0: no rotation).
    pub fn rotation(&self) -> u64 {
        self.rotate_every.unwrap_or_else(|| {
            let h = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60;
            [0, 6, 10, 16][(h % 4) as usize]
        })
    }

    /// Whether the admins reconfigure the channel in this run.
    pub fn reconfiguring(&self) -> bool {
        self.twins == 0
            && self.reconfigure.unwrap_or_else(|| {
                let h = self.seed.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 60;
                !self.calm && h % 4 == 1
            })
    }
}

/// A crash in the middle of one step: node `node` (its first instance)
/// loses the outputs of its `step`-th step after the first `after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashAt {
    pub node: ReplicaId,
    pub step: u64,
    pub after: usize,
}

impl CrashAt {
    /// `node:step:after`, as `sim --crash-at` takes it.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split(':').map(str::parse::<u64>);
        let (Some(Ok(node)), Some(Ok(step)), Some(Ok(after)), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return None;
        };
        Some(Self { node: u32::try_from(node).ok()?, step, after: usize::try_from(after).ok()? })
    }

    pub fn arg(&self) -> String {
        format!("{}:{}:{}", self.node, self.step, self.after)
    }
}

/// A step of an honest node whose outputs include a `Persist`.
#[derive(Clone, Copy, Debug)]
pub struct PersistPoint {
    pub node: ReplicaId,
    pub step: u64,
    pub outputs: usize,
}

/// What a run found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub steps: u64,
    pub blocks: u64,
    pub view_changes: u64,
    pub safety: Vec<String>,
    pub liveness: Vec<String>,
    pub description: String,
    /// The mix of each Byzantine replica.
    pub mixes: Vec<(ReplicaId, Mix)>,
    /// The tick the run ended at.
    pub ticks: u64,
    /// Requests committed (first honest commit) and their summed latency
    /// from first submission, in ticks.
    pub committed_requests: u64,
    pub latency_ticks_sum: u64,
    /// View changes honest replicas started, by reason.
    pub view_change_reasons: BTreeMap<ViewChangeReason, u64>,
    /// Frames honest replicas were required to drop, and did; and did not
    /// (each also a safety violation).
    pub must_drop_delivered: u64,
    pub must_drop_accepted: u64,
    /// With `record_points`: the persistence points of honest nodes.
    pub points: Vec<PersistPoint>,
    /// Whether replicas rotated keys in this run, and the epoch switches
    /// (all honest replicas at the same block, checked).
    pub rotating: bool,
    pub epoch_switches: u64,
    /// Frames of another epoch delivered to honest replicas (all dropped,
    /// checked).
    pub wrong_epoch_delivered: u64,
    /// The vote-log audit of the run (`sim::audit`).
    pub audit: super::audit::AuditFigures,
    /// Whether the admins reconfigured in this run; the reconfigurations
    /// applied (first honest switch into their epoch), by kind; the joins of
    /// an added replica, and the histories it refused (a broken hash chain).
    pub reconfiguring: bool,
    pub reconfigs_applied: u64,
    pub reconfigs_added: u64,
    pub reconfigs_removed: u64,
    pub reconfigs_rotated: u64,
    pub joins: u64,
    pub joins_refused: u64,
    /// Rival updates racing admins submitted (one wins everywhere).
    pub reconfig_rivals: u64,
    /// Valid reconfigurations ordered after the first in their epoch
    /// (ignored, as the core ignores them).
    pub reconfigs_ignored: u64,
}

enum Payload {
    Frame { bytes: Vec<u8>, must_drop: Option<&'static str> },
    Blocks(Vec<CertifiedBlock>),
}

struct Event {
    /// Index of the receiving instance in `nodes` (twins share an id).
    to: usize,
    payload: Payload,
}

struct Node {
    id: ReplicaId,
    replica: Option<Replica>,
    store: Vec<Durable>,
    ledger: Vec<Block>,
    certs: BTreeMap<Seq, Certificate>,
    tx_seen: HashSet<TxId>,
    adversary: Option<Adversary>,
    /// Crash in the middle of the next step, after this many outputs.
    crash_after: Option<usize>,
    /// Steps this instance ran, across restarts.
    steps: u64,
    /// The key epoch (durable, with the block it started after, that
    /// block's header hash, and every consenter's key material in it).
    epoch: Epoch,
    epoch_base: Seq,
    base_hash: Digest,
    material: BTreeMap<ReplicaId, [u8; 32]>,
    /// The epoch this node last announced key material for.
    announced_for: Epoch,
    /// Envelopes this node's shell submits to its replica on its next tick
    /// (announcements, requests carried over an epoch switch).
    to_submit: Vec<Vec<u8>>,
    /// Its signed vote log (durable, as the store).
    audit: super::audit::NodeLog,
    /// The channel configuration of its current epoch (durable, as the
    /// epoch): members, their identity-key versions, its sequence.
    config: SimConfig,
    /// Removed by a reconfiguration: its replica is gone for good; its
    /// ledger stays (and still serves history).
    retired: bool,
    /// A spare not yet joined has no ledger and no replica.
    joined: bool,
    /// The operator's join input for a replica added by a reconfiguration,
    /// until its history is copied; and when it tries next.
    join: Option<Join>,
    join_next_try: u64,
}

/// What the operator gives a new consenter (Fabric joins a new orderer with
/// the channel's config block): the epoch it joins, the block that epoch
/// starts after and that block's header hash (the trusted input the copied
/// history is checked against), and the epoch's configuration and key
/// material.
#[derive(Clone, Debug)]
struct Join {
    epoch: Epoch,
    base: Seq,
    base_hash: Digest,
    config: SimConfig,
    material: BTreeMap<ReplicaId, [u8; 32]>,
}

/// What every honest replica switching into an epoch must agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct EpochStart {
    base: Seq,
    base_hash: Digest,
    config: SimConfig,
    material: BTreeMap<ReplicaId, [u8; 32]>,
}

/// A change the admins make to the latest configuration (resolved against
/// it when due).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// A new identity-key version for a member (None: a random one).
    Rotate(Option<ReplicaId>),
    /// The spare joins.
    AddSpare,
    /// A member leaves (None: a random one; a Byzantine one allowed; never
    /// below [`MEMBERS_MIN`], never more faulty members than f).
    Remove(Option<ReplicaId>),
}

/// The channel admins (the harness): planned changes, and the update in
/// flight until an honest replica switches into it.
struct Admins {
    rng: Rng,
    plan: Vec<(u64, Change)>,
    /// The configuration submitted, its envelope and transaction id, and
    /// when it is resubmitted.
    pending: Option<(SimConfig, Vec<u8>, TxId, u64)>,
    /// Every reconfiguration the admins submitted (validity).
    submitted: HashSet<TxId>,
    /// Rival updates submitted (racing admins).
    rivals: u64,
}

struct Net {
    delay_max: u64,
    drop_per_mille: u64,
    dup_per_mille: u64,
    cut: BTreeSet<(ReplicaId, ReplicaId)>,
}

#[derive(Clone, Debug)]
enum Fault {
    Isolate(ReplicaId),
    Crash(ReplicaId),
    Restart(ReplicaId),
    SplitHalves,
    OneWay(ReplicaId, ReplicaId),
    HealNetwork,
}

struct Request {
    envelope: Vec<u8>,
    tx_id: TxId,
    /// First submission.
    at: u64,
    next_try: u64,
    committed: bool,
}

/// A simulated cluster.
pub struct Cluster {
    sc: Scenario,
    rng: Rng,
    now: u64,
    /// The first configuration's members (the spare is not one).
    members: Vec<ReplicaId>,
    /// The replica added by a reconfiguration (runs that reconfigure).
    spare: Option<ReplicaId>,
    keyring: Arc<Keyring>,
    genesis_hash: Digest,
    nodes: Vec<Node>,
    honest: BTreeSet<ReplicaId>,
    net: Net,
    /// Twins partitions: the group of each instance, while they last.
    groups: Option<Vec<u8>>,
    twin_ids: Vec<ReplicaId>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Event>,
    event_counter: u64,
    faults: Vec<(u64, Fault)>,
    requests: Vec<Request>,
    /// Request index by transaction id.
    submitted: HashMap<TxId, usize>,
    collusion: Collusion,
    canon: BTreeMap<Seq, Digest>,
    votes_seen: HashMap<(ReplicaId, Epoch, VoteKind, u64, u64), Digest>,
    views_installed: BTreeSet<u64>,
    /// The block each epoch ended at (the first honest switch).
    switches: BTreeMap<Epoch, Seq>,
    /// How each epoch started (the first honest switch into it): the
    /// latest is the channel's current configuration.
    epoch_starts: BTreeMap<Epoch, EpochStart>,
    admins: Admins,
    report: Report,
    /// Byzantine block shares delivered to honest replicas (the audit's truth).
    delivered: super::audit::Delivered,
    /// Tests: crash this node right after it executes a block holding a
    /// reconfiguration (it restarts a little later); set when it did.
    crash_after_reconfiguration: Option<ReplicaId>,
    crashed_after_reconfiguration: bool,
}

impl Cluster {
    pub fn new(sc: Scenario) -> Self {
        let mut rng = Rng::new(sc.seed);
        let n = sc.nodes;
        let members: Vec<ReplicaId> = (1..=n as u32).collect();
        // A run that reconfigures has one spare replica (id n+1), honest,
        // not a member until the admins add it.
        let spare = sc.reconfiguring().then_some(n as u32 + 1);
        let keyring = Keyring::with_spares(&members, spare.as_slice(), sc.seed);
        let first_config = SimConfig::first(&members);
        let genesis_hash: Digest = Sha256::digest(format!("genesis-{}", sc.seed)).into();
        let byz: BTreeSet<ReplicaId> = if sc.calm {
            members.iter().copied().take(sc.byzantine).collect()
        } else {
            rng.choose(n, sc.byzantine.min(n)).into_iter().map(|i| members[i]).collect()
        };
        let not_byz: Vec<ReplicaId> = members.iter().copied().filter(|m| !byz.contains(m)).collect();
        let twin_ids: Vec<ReplicaId> =
            rng.choose(not_byz.len(), sc.twins.min(not_byz.len())).into_iter().map(|i| not_byz[i]).collect();
        let honest: BTreeSet<ReplicaId> =
            members.iter().copied().filter(|m| !byz.contains(m) && !twin_ids.contains(m)).chain(spare).collect();
        // Side B of the split: every other honest replica.
        let side_b: BTreeSet<ReplicaId> =
            honest.iter().copied().enumerate().filter(|(i, _)| i % 2 == 1).map(|(_, m)| m).collect();
        let mut net = Net {
            delay_max: rng.range(1, DELAY_MAX_TICKS),
            drop_per_mille: *rng.pick(&[0, 0, 10, 30, 80]),
            dup_per_mille: *rng.pick(&[0, 10, 50]),
            cut: BTreeSet::new(),
        };
        if sc.calm {
            net.drop_per_mille = 0;
            net.dup_per_mille = 0;
        }
        let mut description = format!(
            "seed={} n={} byzantine={:?} twins={:?} delay_max={} drop={}‰ dup={}‰",
            sc.seed, n, byz, twin_ids, net.delay_max, net.drop_per_mille, net.dup_per_mille
        );
        let mut nodes = Vec::with_capacity(n);
        let mut mixes = vec![];
        let material: BTreeMap<ReplicaId, [u8; 32]> =
            members.iter().map(|m| (*m, Self::material(sc.seed, *m, EPOCH, 0))).collect();
        for id in members.iter().chain(twin_ids.iter()).chain(spare.iter()) {
            let adversary = byz.contains(id).then(|| {
                let mix = sc.strategies.draw(&mut rng);
                description.push_str(&format!(" {}={}", id, mix.name()));
                mixes.push((*id, mix.clone()));
                let cfg = Self::config_for(&sc, *id, &members, genesis_hash);
                let ctx = Context {
                    me: *id,
                    channel: CHANNEL.into(),
                    epoch: EPOCH,
                    members: members.clone(),
                    macs: keyring.mac_keys(*id),
                    crypto: keyring.signer_in(*id, &first_config.versions()),
                    side_b: side_b.clone(),
                    genesis: Certificate { seq: 0, header_hash: genesis_hash, signatures: vec![] },
                    timing: Timing {
                        window: cfg.window,
                        batch_count_max: cfg.batch_count_max,
                        forward_timeout_ticks: cfg.forward_timeout_ticks,
                        complain_timeout_ticks: cfg.complain_timeout_ticks,
                        heartbeat_timeout_ticks: cfg.heartbeat_timeout_ticks,
                        delay_max: DELAY_MAX_TICKS,
                    },
                };
                Adversary::new(mix, ctx, &mut rng)
            });
            nodes.push(Node {
                id: *id,
                replica: None,
                store: vec![],
                ledger: vec![],
                certs: BTreeMap::new(),
                tx_seen: HashSet::new(),
                adversary,
                crash_after: None,
                steps: 0,
                epoch: EPOCH,
                epoch_base: 0,
                base_hash: genesis_hash,
                material: material.clone(),
                announced_for: EPOCH,
                to_submit: vec![],
                audit: super::audit::NodeLog::new(CHANNEL, *id),
                config: first_config.clone(),
                retired: false,
                joined: Some(*id) != spare,
                join: None,
                join_next_try: 0,
            });
        }
        let first_start = EpochStart { base: 0, base_hash: genesis_hash, config: first_config, material };
        let mut admins = Admins {
            rng: Rng::new(sc.seed ^ 0xAD41_0C0F_0000_0001),
            plan: vec![],
            pending: None,
            submitted: HashSet::new(),
            rivals: 0,
        };
        if spare.is_some() {
            admins.plan = Self::plan_reconfigurations(&mut admins.rng);
            let kinds: Vec<String> = admins.plan.iter().map(|(at, c)| format!("{c:?}@{at}")).collect();
            description.push_str(&format!(" reconfigure={}", kinds.join(",")));
        }
        let mut c = Cluster {
            rng,
            now: 0,
            members,
            spare,
            keyring,
            genesis_hash,
            nodes,
            honest,
            net,
            groups: None,
            twin_ids,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            event_counter: 0,
            faults: vec![],
            requests: vec![],
            submitted: HashMap::new(),
            collusion: Collusion::default(),
            canon: BTreeMap::new(),
            votes_seen: HashMap::new(),
            views_installed: BTreeSet::new(),
            switches: BTreeMap::new(),
            epoch_starts: [(EPOCH, first_start)].into_iter().collect(),
            admins,
            report: Report::default(),
            delivered: super::audit::Delivered::default(),
            crash_after_reconfiguration: None,
            crashed_after_reconfiguration: false,
            sc,
        };
        for i in 0..c.nodes.len() {
            c.start(i);
        }
        c.plan_faults();
        c.plan_requests();
        c.report.rotating = c.sc.rotation() > 0;
        c.report.reconfiguring = c.spare.is_some();
        if c.report.rotating {
            description.push_str(&format!(" rotate_every={}", c.sc.rotation()));
        }
        c.report.description = description;
        c.report.mixes = mixes;
        c
    }

    /// The consensus configuration of node `i` in its current epoch.
    fn config(&self, i: usize) -> Config {
        let node = &self.nodes[i];
        Config {
            epoch: node.epoch,
            epoch_base: node.epoch_base,
            genesis_hash: node.base_hash,
            ..Self::config_for(&self.sc, node.id, &node.config.ids(), self.genesis_hash)
        }
    }

    /// The signer of node `i` under its current configuration.
    fn signer(&self, i: usize) -> SimCrypto {
        let node = &self.nodes[i];
        self.keyring.signer_in(node.id, &node.config.versions())
    }

    /// The admins' plan: 1..=RECONFIGURATIONS_MAX changes at random times
    /// of the fault phase (an add first, then removals, is likely).
    fn plan_reconfigurations(rng: &mut Rng) -> Vec<(u64, Change)> {
        let count = rng.range(1, RECONFIGURATIONS_MAX as u64) as usize;
        let mut times: Vec<u64> = (0..count).map(|_| rng.range(50, FAULT_TICKS)).collect();
        times.sort_unstable();
        let mut added = false;
        times
            .into_iter()
            .map(|at| {
                let change = match rng.range(0, 2) {
                    0 => Change::Rotate(None),
                    1 if !added => Change::AddSpare,
                    _ => Change::Remove(None),
                };
                added |= change == Change::AddSpare;
                (at, change)
            })
            .collect()
    }

    /// The channel's latest configuration (of the epoch an honest replica
    /// switched into last).
    fn latest_config(&self) -> SimConfig {
        self.epoch_starts.values().next_back().map_or_else(|| SimConfig::first(&self.members), |s| s.config.clone())
    }

    /// Every replica of the run (members of any configuration).
    fn ids(&self) -> Vec<ReplicaId> {
        self.members.iter().copied().chain(self.spare).collect()
    }

    /// A consenter's key material for `epoch` (`attempt` 1: the second,
    /// different announcement a Byzantine replica makes).
    fn material(seed: u64, id: ReplicaId, epoch: Epoch, attempt: u32) -> [u8; 32] {
        Sha256::digest(format!("material-{seed}-{id}-{epoch}-{attempt}")).into()
    }

    /// The MAC keys of node `i` in its current epoch.
    fn macs(&self, i: usize) -> MacKeys {
        let node = &self.nodes[i];
        if node.epoch == EPOCH {
            self.keyring.mac_keys(node.id)
        } else {
            self.keyring.epoch_mac_keys(node.id, node.epoch, &node.material)
        }
    }

    fn config_for(sc: &Scenario, me: ReplicaId, members: &[ReplicaId], genesis_hash: Digest) -> Config {
        let _ = sc;
        Config {
            channel: CHANNEL.into(),
            epoch: EPOCH,
            me,
            members: members.to_vec(),
            epoch_base: 0,
            genesis_hash,
            window: 8,
            checkpoint_interval: 4,
            batch_count_max: 8,
            batch_bytes_max: 64 * 1024,
            batch_bytes_preferred: 16 * 1024,
            batch_timeout_ticks: 5,
            cut_when_idle: true,
            forward_timeout_ticks: 60,
            complain_timeout_ticks: 500,
            view_change_timeout_ticks: 200,
            heartbeat_interval_ticks: 25,
            heartbeat_timeout_ticks: 150,
            resend_interval_ticks: 50,
            pool_max: 1000,
            dedup_window_blocks: 64,
            limits: Limits::default(),
            #[cfg(feature = "mutants")]
            mutant: sc.mutant,
        }
    }

    /// Starts (or restarts) node `i` from its ledger and durable records.
    fn start(&mut self, i: usize) {
        self.delivered.restarted(i);
        let id = self.nodes[i].id;
        if self.nodes[i].retired || !self.nodes[i].joined {
            return;
        }
        let macs = self.macs(i);
        let cfg = self.config(i);
        let signer = self.signer(i);
        let node = &mut self.nodes[i];
        let validator = SimConfigValidator { config_sequence: node.config.sequence };
        // A restarted shell announces again (its pool was lost); the same
        // material makes the same transaction, ordered once.
        node.announced_for = node.epoch;
        let executed = node.ledger.len() as Seq;
        let header_hash = node.ledger.last().map(|b| b.header_hash).unwrap_or(self.genesis_hash);
        let recent = node
            .ledger
            .iter()
            .rev()
            .take(cfg.dedup_window_blocks as usize)
            .rev()
            .map(|b| (b.number, b.envelopes.iter().filter_map(|e| validator.tx_id(e)).collect()))
            .collect();
        let stable = node
            .store
            .iter()
            .filter_map(|r| match r {
                Durable::Stable(c) if c.seq <= executed => Some(c.clone()),
                _ => None,
            })
            .max_by_key(|c| c.seq)
            .unwrap_or(Certificate { seq: node.epoch_base, header_hash: node.base_hash, signatures: vec![] });
        let this_epoch = || node.ledger.iter().filter(|b| b.number > node.epoch_base);
        let uncertified =
            this_epoch().filter(|b| !node.certs.contains_key(&b.number)).map(|b| (b.number, b.header_hash)).collect();
        let next = node.epoch + 1;
        let announced = this_epoch()
            .flat_map(|b| {
                b.envelopes
                    .iter()
                    .filter_map(|e| SimValidator.announcement(e))
                    .filter(|a| a.epoch == next)
                    .map(|a| (b.number, a.consenter))
            })
            .collect();
        // The first block of this epoch holding a reconfiguration valid for
        // its configuration ends the epoch (as it did before the restart).
        let reconfigured =
            this_epoch().find(|b| b.envelopes.iter().any(|e| validator.reconfiguration(e))).map(|b| b.number);
        let tip = Tip { executed, header_hash, recent, stable, uncertified, announced, reconfigured };
        match Replica::new(cfg, Box::new(signer), macs, Box::new(validator), tip, &node.store) {
            Ok(r) => node.replica = Some(r),
            Err(e) => self.report.safety.push(format!("node {id} could not start: {e}")),
        }
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.sc.trace {
            println!("t={:>5} {}", self.now, what());
        }
    }

    fn plan_faults(&mut self) {
        let honest: Vec<ReplicaId> = self.honest.iter().copied().collect();
        let count = if self.sc.calm { 0 } else { self.rng.range(0, 6) };
        for _ in 0..count {
            let at = self.rng.range(50, FAULT_TICKS - 100);
            let victim = *self.rng.pick(&honest);
            let fault = match self.rng.range(0, 4) {
                0 => Fault::Isolate(victim),
                1 => Fault::Crash(victim),
                2 => Fault::SplitHalves,
                3 => {
                    let other = *self.rng.pick(&self.ids());
                    Fault::OneWay(victim, other)
                }
                _ => Fault::Crash(*self.rng.pick(&self.ids())),
            };
            let duration = self.rng.range(50, 400);
            let end = (at + duration).min(FAULT_TICKS);
            match fault {
                Fault::Crash(v) => self.faults.push((end, Fault::Restart(v))),
                _ => self.faults.push((end, Fault::HealNetwork)),
            }
            self.faults.push((at, fault));
        }
        for m in self.ids() {
            self.faults.push((FAULT_TICKS, Fault::Restart(m)));
        }
        self.faults.push((FAULT_TICKS, Fault::HealNetwork));
        self.faults.sort_by_key(|(t, _)| *t);
    }

    fn plan_requests(&mut self) {
        for k in 0..self.sc.requests {
            let (at, client) = if self.sc.calm {
                (k as u64 * CALM_REQUEST_SPACING_TICKS, k as u32 % 4)
            } else {
                (self.rng.range(0, FAULT_TICKS + 200), self.rng.range(0, 3) as u32)
            };
            let padding = self.rng.range(0, 200) as usize;
            let envelope = make_envelope(client, k as u64, padding);
            let tx_id = SimValidator.tx_id(&envelope).unwrap_or([0; 32]);
            self.submitted.insert(tx_id, self.requests.len());
            self.requests.push(Request { envelope, tx_id, at, next_try: at, committed: false });
        }
    }

    /// Runs the scenario to the end; returns what it found.
    pub fn run(mut self) -> Report {
        self.drive();
        self.report
    }

    /// Runs the scenario to the end, filling the report.
    fn drive(&mut self) {
        self.trace(|| self.report.description.clone());
        let end = FAULT_TICKS + LIVENESS_TICKS;
        while self.now < end {
            self.regroup_twins();
            self.apply_faults();
            self.submit_requests();
            self.reconfigure();
            self.join_new_members();
            self.deliver_due();
            for i in 0..self.nodes.len() {
                for envelope in std::mem::take(&mut self.nodes[i].to_submit) {
                    self.step(i, Input::Request(envelope));
                }
                self.step(i, Input::Tick);
                let alive = self.nodes[i].replica.is_some();
                let extra = match (&mut self.nodes[i].adversary, alive) {
                    (Some(a), true) => a.on_tick(self.now, &mut self.rng),
                    _ => vec![],
                };
                for o in extra {
                    self.transmit(i, o);
                }
            }
            if !self.report.safety.is_empty() {
                break;
            }
            if self.now > FAULT_TICKS && self.all_done() {
                break;
            }
            self.now += 1;
        }
        if self.report.safety.is_empty() && !self.all_done() {
            self.report.liveness.push(self.liveness_summary());
        }
        self.audit();
        self.report.blocks = self.canon.len() as u64;
        self.report.view_changes = self.views_installed.len() as u64;
        self.report.ticks = self.now;
        self.report.reconfig_rivals = self.admins.rivals;
    }

    /// Every request of every client (they resubmit until it is ordered)
    /// is in every honest ledger, the ledgers are equal, every block is
    /// certified.
    fn all_done(&self) -> bool {
        if self.requests.iter().any(|r| r.at > self.now) {
            return false;
        }
        if self.admins.pending.is_some() || !self.admins.plan.is_empty() {
            return false;
        }
        let heights: BTreeSet<usize> = self.live_nodes().map(|n| n.ledger.len()).collect();
        heights.len() == 1
            && self.live_nodes().all(|n| self.requests.iter().all(|r| n.tx_seen.contains(&r.tx_id)))
            // Every block an honest replica holds ends up with its certificate.
            && self.live_nodes().all(|n| n.certs.len() == n.ledger.len())
    }

    fn liveness_summary(&self) -> String {
        let heights: Vec<String> = self
            .live_nodes()
            .map(|n| {
                let r = n.replica.as_ref();
                format!(
                    "{}:e={} h={} certs={} (first missing {:?}) v={} changing={} stable={} pool={}",
                    n.id,
                    n.epoch,
                    n.ledger.len(),
                    n.certs.len(),
                    (1..=n.ledger.len() as Seq).find(|s| !n.certs.contains_key(s)),
                    r.map_or(0, |r| r.view()),
                    r.is_some_and(|r| r.is_changing_view()),
                    r.map_or(0, |r| r.stable_seq()),
                    r.map_or(0, |r| r.pool_len())
                )
            })
            .collect();
        let missing = self.requests.iter().filter(|r| !self.live_nodes().all(|n| n.tx_seen.contains(&r.tx_id))).count();
        let admins = match (&self.admins.pending, self.admins.plan.first()) {
            (Some((c, ..)), _) => format!("; reconfiguration to configuration {} not applied", c.sequence),
            (None, Some((at, change))) => format!("; reconfiguration {change:?} planned at {at} not submitted"),
            (None, None) => String::new(),
        };
        format!(
            "seed {}: not live after healing: {missing} requests missing; {}{admins}",
            self.sc.seed,
            heights.join(" ")
        )
    }

    fn honest_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| self.honest.contains(&n.id))
    }

    /// The replicas that must order everything: honest members of the
    /// latest configuration (a removed replica stops where it left).
    fn live_nodes(&self) -> impl Iterator<Item = &Node> {
        let latest = self.latest_config();
        self.nodes.iter().filter(move |n| self.honest.contains(&n.id) && latest.contains(n.id))
    }

    /// The first instance of `id` (twins have a second one after the members).
    fn index(&self, id: ReplicaId) -> usize {
        (id - 1) as usize
    }

    /// Twins: every so often, a new random split of the instances into two
    /// groups, each twin pair on both sides; messages cross no group.
    fn regroup_twins(&mut self) {
        if self.twin_ids.is_empty() {
            return;
        }
        if self.now >= FAULT_TICKS {
            self.groups = None;
            return;
        }
        if !self.now.is_multiple_of(200) {
            return;
        }
        let mut groups: Vec<u8> = (0..self.nodes.len()).map(|_| self.rng.range(0, 1) as u8).collect();
        let members = self.members.len();
        for (k, id) in self.twin_ids.clone().iter().enumerate() {
            let first = self.index(*id);
            groups[members + k] = 1 - groups[first];
        }
        self.trace(|| format!("twins partition {groups:?}"));
        self.groups = Some(groups);
    }

    fn apply_faults(&mut self) {
        while let Some((at, _)) = self.faults.first() {
            if *at > self.now {
                break;
            }
            let (_, fault) = self.faults.remove(0);
            self.trace(|| format!("fault {fault:?}"));
            match fault {
                Fault::Isolate(v) => {
                    for m in self.ids() {
                        if m != v {
                            self.net.cut.insert((v, m));
                            self.net.cut.insert((m, v));
                        }
                    }
                }
                Fault::SplitHalves => {
                    let ids = self.ids();
                    let half = ids.len() / 2;
                    let (a, b) = ids.split_at(half);
                    for x in a {
                        for y in b {
                            self.net.cut.insert((*x, *y));
                            self.net.cut.insert((*y, *x));
                        }
                    }
                }
                Fault::OneWay(from, to) => {
                    if from != to {
                        self.net.cut.insert((from, to));
                    }
                }
                Fault::HealNetwork => {
                    self.net.cut.clear();
                    if self.now >= FAULT_TICKS {
                        self.net.drop_per_mille = 0;
                        self.net.dup_per_mille = 0;
                    }
                }
                Fault::Crash(v) => {
                    let i = self.index(v);
                    if self.nodes[i].replica.is_some() {
                        // Crash in the middle of a step, at a random output.
                        let at = self.rng.range(0, 6) as usize;
                        self.nodes[i].crash_after = Some(at);
                    }
                }
                Fault::Restart(v) => {
                    let i = self.index(v);
                    self.nodes[i].crash_after = None;
                    if self.nodes[i].replica.is_none() {
                        self.start(i);
                    }
                }
            }
        }
    }

    /// Adds a fault at `at`, keeping the plan in time order.
    fn plan_fault(&mut self, at: u64, fault: Fault) {
        let k = self.faults.partition_point(|(t, _)| *t <= at);
        self.faults.insert(k, (at, fault));
    }

    fn submit_requests(&mut self) {
        let now = self.now;
        let mut due = vec![];
        for (k, r) in self.requests.iter_mut().enumerate() {
            if r.at <= now && r.next_try <= now {
                r.next_try = now + CLIENT_RETRY_TICKS;
                due.push(k);
            }
        }
        for k in due {
            let tx = self.requests[k].tx_id;
            if self.honest_nodes().any(|n| n.tx_seen.contains(&tx)) {
                self.requests[k].next_try = u64::MAX;
                continue;
            }
            let target = *self.rng.pick(&self.latest_config().ids());
            let i = self.index(target);
            let envelope = self.requests[k].envelope.clone();
            let taken = match &mut self.nodes[i].adversary {
                Some(a) => a.request(&envelope, now),
                None => true,
            };
            let outputs = if taken { self.step(i, Input::Request(envelope)) } else { vec![] };
            let admitted = outputs
                .iter()
                .any(|o| matches!(o, Output::Admitted { .. } | Output::Refused { reason: Refusal::Duplicate }));
            self.trace(|| format!("client request {k} -> {target}: admitted={admitted}"));
        }
    }

    fn deliver_due(&mut self) {
        while let Some(Reverse((at, key))) = self.queue.peek().copied() {
            if at > self.now {
                break;
            }
            self.queue.pop();
            let Some(ev) = self.events.remove(&key) else { continue };
            let i = ev.to;
            match ev.payload {
                Payload::Frame { bytes, must_drop } => {
                    let bytes = match &mut self.nodes[i].adversary {
                        Some(a) => a.inbound(bytes, self.now, &mut self.collusion),
                        None => Some(bytes),
                    };
                    let Some(bytes) = bytes else { continue };
                    let window = self.nodes[i].replica.as_ref().map(|r| (r.stable_seq(), r.config().window));
                    let alive = self.nodes[i].replica.is_some();
                    // With rotation on, every frame of another epoch that
                    // reaches an honest replica must be dropped.
                    let epoch_of = |bytes: &[u8]| Frame::decode(bytes, &Limits::default()).ok().map(|f| f.epoch);
                    let wrong_epoch = (self.sc.rotation() > 0 || self.spare.is_some())
                        && must_drop.is_none()
                        && epoch_of(&bytes).is_some_and(|e| e != self.nodes[i].epoch);
                    // An old-epoch replay is still the current epoch of a
                    // replica that lags behind: for it, a mere duplicate.
                    let current_for_receiver =
                        must_drop == Some("old-epoch") && epoch_of(&bytes) == Some(self.nodes[i].epoch);
                    let must_drop =
                        must_drop.filter(|_| !current_for_receiver).or(wrong_epoch.then_some("another epoch"));
                    if wrong_epoch && alive && self.honest.contains(&self.nodes[i].id) {
                        self.report.wrong_epoch_delivered += 1;
                    }
                    let outputs = self.step(i, Input::Message(bytes.clone()));
                    if let Some((low, window)) = window.filter(|_| self.honest.contains(&self.nodes[i].id)) {
                        let executed = self.nodes[i].ledger.len() as Seq;
                        let survived = self.nodes[i].replica.is_some();
                        let at = super::audit::Receiver { index: i, low, window, executed, survived };
                        self.delivered.note(&bytes, at, &outputs, &self.honest, &self.twin_ids);
                    }
                    // A node that crashed in this very step lost its outputs:
                    // nothing to judge.
                    let judged = alive && self.nodes[i].replica.is_some();
                    if let Some(what) = must_drop.filter(|_| judged && self.honest.contains(&self.nodes[i].id)) {
                        self.check_dropped(i, what, &outputs);
                    }
                }
                Payload::Blocks(blocks) => {
                    self.step(i, Input::Blocks(blocks));
                }
            }
        }
    }

    fn schedule(&mut self, delay: u64, ev: Event) {
        self.event_counter += 1;
        self.queue.push(Reverse((self.now + delay, self.event_counter)));
        self.events.insert(self.event_counter, ev);
    }

    /// A frame an honest replica had to drop (another epoch's, a corrupt
    /// MAC for it, garbage) leaves a `Dropped` and nothing else: the core
    /// reports every drop, and an accepted frame may well leave no output.
    fn check_dropped(&mut self, i: usize, what: &str, outputs: &[Output]) {
        // (A replica just restarted at the end of its epoch ends it on its
        // first step, whatever the input.)
        let dropped = outputs.iter().any(|o| matches!(o, Output::Dropped { .. }));
        if dropped && outputs.iter().all(|o| matches!(o, Output::Dropped { .. } | Output::EpochEnded { .. })) {
            self.report.must_drop_delivered += 1;
            return;
        }
        let id = self.nodes[i].id;
        self.report.must_drop_accepted += 1;
        self.report.safety.push(format!(
            "seed {}: honest node {id} accepted a frame it must drop ({what}): {} outputs",
            self.sc.seed,
            outputs.len()
        ));
    }

    /// Puts a frame on the simulated network: cut links drop it, the rest may
    /// be dropped, duplicated and delayed (which reorders).
    fn transmit(&mut self, from: usize, o: Outgoing) {
        let Outgoing { to, bytes, must_drop } = o;
        let from_id = self.nodes[from].id;
        if from_id == to || self.net.cut.contains(&(from_id, to)) {
            return;
        }
        let targets: Vec<usize> = (0..self.nodes.len())
            .filter(|j| self.nodes[*j].id == to)
            .filter(|j| self.groups.as_ref().is_none_or(|g| g[*j] == g[from]))
            .collect();
        for j in targets {
            if self.rng.chance(self.net.drop_per_mille) {
                continue;
            }
            if self.rng.chance(self.net.dup_per_mille) {
                let d = self.rng.range(1, self.net.delay_max);
                self.schedule(d, Event { to: j, payload: Payload::Frame { bytes: bytes.clone(), must_drop } });
            }
            let d = self.rng.range(1, self.net.delay_max);
            self.schedule(d, Event { to: j, payload: Payload::Frame { bytes: bytes.clone(), must_drop } });
        }
    }

    /// Runs one input on node `i` and carries out its outputs, in order.
    fn step(&mut self, i: usize, input: Input) -> Vec<Output> {
        let Some(replica) = self.nodes[i].replica.as_mut() else { return vec![] };
        let mut outputs = replica.step(input);
        self.report.steps += 1;
        let id = self.nodes[i].id;
        self.nodes[i].steps += 1;
        let step_no = self.nodes[i].steps;
        let first_instance = i == self.index(id);
        if self.sc.record_points
            && first_instance
            && self.honest.contains(&id)
            && outputs.iter().any(|o| matches!(o, Output::Persist(_)))
        {
            self.report.points.push(PersistPoint { node: id, step: step_no, outputs: outputs.len() });
        }
        if let Some(c) = self.sc.crash_at.filter(|c| first_instance && c.node == id && c.step == step_no) {
            self.nodes[i].crash_after = Some(c.after);
            let down = 1 + self.sc.seed % CRASH_POINT_DOWN_TICKS_MAX;
            self.plan_fault(self.now + down, Fault::Restart(id));
        }
        if self.crash_after_reconfiguration == Some(id) {
            let executed = outputs.iter().position(
                |o| matches!(o, Output::Commit(b) if b.envelopes.iter().any(|e| parse_reconfiguration(e).is_some())),
            );
            if let Some(k) = executed {
                self.crash_after_reconfiguration = None;
                self.crashed_after_reconfiguration = true;
                self.nodes[i].crash_after = Some(k + 1);
                self.plan_fault(self.now + 30, Fault::Restart(id));
            }
        }
        if let Some(k) = self.nodes[i].crash_after.take() {
            // Crash mid-step: outputs after the k-th are never carried out.
            outputs.truncate(k);
            self.nodes[i].replica = None;
            self.trace(|| format!("node {id} crashed after {k} outputs"));
        }
        for o in &outputs {
            self.carry_out(i, o);
        }
        outputs
    }

    fn carry_out(&mut self, i: usize, output: &Output) {
        let id = self.nodes[i].id;
        let honest = self.honest.contains(&id);
        match output {
            // A replica removed from the channel sends nothing more.
            Output::Send { .. } | Output::Broadcast { .. } if self.nodes[i].retired => {}
            Output::Send { to, frame } => self.send_from(i, &[*to], frame),
            Output::Broadcast { frame } => {
                let others: Vec<ReplicaId> = self.nodes[i].config.ids().into_iter().filter(|m| *m != id).collect();
                self.send_from(i, &others, frame);
            }
            Output::Persist(records) => {
                let signer = self.signer(i);
                let node = &mut self.nodes[i];
                let epoch = node.epoch;
                node.audit.persist(records, node.replica.as_ref(), epoch, &signer);
                let stable = records.iter().any(|r| matches!(r, Durable::Stable(_)));
                node.store.extend(records.iter().cloned());
                if stable {
                    compact(&mut node.store);
                }
            }
            Output::Commit(block) => {
                if honest {
                    self.check_commit(i, block);
                }
                let rotate_every = self.sc.rotation();
                let seed = self.sc.seed;
                let byzantine = self.nodes[i].adversary.is_some();
                let node = &mut self.nodes[i];
                node.tx_seen.extend(block.envelopes.iter().filter_map(|e| tx_id(e)));
                node.ledger.push(block.clone());
                if rotate_every > 0
                    && block.number >= node.epoch_base + rotate_every
                    && node.announced_for == node.epoch
                {
                    let next = node.epoch + 1;
                    node.announced_for = next;
                    node.to_submit.push(make_announcement(id, next, Self::material(seed, id, next, 0)));
                    if byzantine {
                        // A faulty consenter announces twice: the first one
                        // ordered counts, everywhere.
                        node.to_submit.push(make_announcement(id, next, Self::material(seed, id, next, 1)));
                    }
                }
                self.trace(|| {
                    format!("node {id} committed block {} ({} envelopes)", block.number, block.envelopes.len())
                });
            }
            Output::Certified(cert) => {
                if honest {
                    self.check_certificate(i, cert);
                }
                let interval = self.config(i).checkpoint_interval;
                if let Some(a) = &mut self.nodes[i].adversary {
                    a.certified(cert, interval);
                }
                self.nodes[i].certs.insert(cert.seq, cert.clone());
            }
            Output::Fetch { from, to } => self.serve_fetch(i, *from, *to),
            Output::NewViewInstalled { view, primary } => {
                if honest {
                    self.views_installed.insert(*view);
                }
                self.trace(|| format!("node {id} installed view {view} (primary {primary})"));
            }
            Output::ViewChangeStarted { view, reason } => {
                if honest {
                    *self.report.view_change_reasons.entry(*reason).or_default() += 1;
                }
                self.trace(|| format!("node {id} started view change to {view}: {}", reason.as_str()));
            }
            Output::ForkDetected { seq } => {
                if honest {
                    self.report.safety.push(format!("seed {}: node {id} detected a fork at block {seq}", self.sc.seed));
                }
            }
            Output::EpochEnded { epoch, last_seq } => self.switch_epoch(i, *epoch, *last_seq),
            Output::Evidence(shares) => {
                let signer = self.signer(i);
                self.nodes[i].audit.evidence(shares, &signer);
            }
            Output::Admitted { .. } | Output::Refused { .. } | Output::Dropped { .. } => {}
        }
    }

    /// The shell's epoch switch: every honest replica ends an epoch at the
    /// same block; the next epoch's configuration is the one the first
    /// reconfiguration valid for this epoch's (sequence + 1) in the epoch's
    /// blocks carries (later ones are ignored, as the core ignores them),
    /// or this epoch's; its key material is each consenter's first
    /// announcement ordered in the epoch (or what it used before; a new
    /// member's initial material); every honest replica must start the next
    /// epoch with the same configuration and material. Durable consensus
    /// records start afresh; waiting requests carry over. A replica the new
    /// configuration leaves out stops for good.
    fn switch_epoch(&mut self, i: usize, epoch: Epoch, last_seq: Seq) {
        let id = self.nodes[i].id;
        let seed = self.sc.seed;
        let honest = self.honest.contains(&id);
        if honest {
            let first = *self.switches.entry(epoch).or_insert(last_seq);
            if first != last_seq {
                self.report.safety.push(format!(
                    "seed {seed}: honest node {id} ended epoch {epoch} at block {last_seq}, another at block {first}"
                ));
            }
            if first == last_seq && self.nodes[i].epoch == epoch {
                self.report.epoch_switches = self.report.epoch_switches.max(epoch + 1 - EPOCH);
            }
        }
        let node = &mut self.nodes[i];
        if node.epoch != epoch || node.ledger.len() as Seq != last_seq {
            self.report.safety.push(format!(
                "seed {seed}: node {id} ended epoch {epoch} at block {last_seq} while in epoch {} at height {}",
                node.epoch,
                node.ledger.len()
            ));
            return;
        }
        let validator = SimConfigValidator { config_sequence: node.config.sequence };
        let this_epoch = || node.ledger.iter().filter(|b| b.number > node.epoch_base);
        let valid: Vec<&Vec<u8>> =
            this_epoch().flat_map(|b| b.envelopes.iter()).filter(|e| validator.reconfiguration(e)).collect();
        let ignored = valid.len().saturating_sub(1) as u64;
        let config = valid.first().and_then(|e| parse_reconfiguration(e)).unwrap_or_else(|| node.config.clone());
        let mut material = node.material.clone();
        let mut seen = BTreeSet::new();
        for b in this_epoch() {
            for (a, m) in b.envelopes.iter().filter_map(|e| parse_announcement(e)) {
                if a.epoch == epoch + 1 && material.contains_key(&a.consenter) && seen.insert(a.consenter) {
                    material.insert(a.consenter, m);
                }
            }
        }
        material.retain(|m, _| config.contains(*m));
        for m in config.ids() {
            material.entry(m).or_insert_with(|| Self::material(seed, m, EPOCH, 0));
        }
        let base_hash = node.ledger.last().map(|b| b.header_hash).unwrap_or(self.genesis_hash);
        let start = EpochStart { base: last_seq, base_hash, config: config.clone(), material: material.clone() };
        let previous = node.config.clone();
        let pending = node.replica.as_ref().map(Replica::pending_envelopes).unwrap_or_default();
        node.epoch = epoch + 1;
        node.epoch_base = last_seq;
        node.base_hash = base_hash;
        node.material = material;
        node.config = config;
        node.store.clear();
        node.to_submit.extend(pending);
        if honest {
            if !self.epoch_starts.contains_key(&(epoch + 1)) {
                self.report.reconfigs_ignored += ignored;
            }
            self.record_epoch_start(id, epoch + 1, start, &previous);
        }
        if !self.nodes[i].config.contains(id) {
            let node = &mut self.nodes[i];
            node.replica = None;
            node.retired = true;
            node.to_submit.clear();
            self.trace(|| format!("node {id} removed from the channel after block {last_seq}: stops"));
            return;
        }
        self.enter(i);
        self.trace(|| format!("node {id} switched to epoch {} after block {last_seq}", epoch + 1));
    }

    /// Starts node `i`'s replica for the epoch it just entered (and tells
    /// its adversary the new keys and members).
    fn enter(&mut self, i: usize) {
        self.start(i);
        let node = &self.nodes[i];
        let base = Certificate { seq: node.epoch_base, header_hash: node.base_hash, signatures: vec![] };
        let (epoch, members) = (node.epoch, node.config.ids());
        let macs = self.macs(i);
        let crypto = self.signer(i);
        if let Some(a) = &mut self.nodes[i].adversary {
            a.enter_epoch(epoch, members, macs, crypto, base);
        }
    }

    /// The first honest switch into `epoch` records how it starts; every
    /// later one must match it. Counts the reconfiguration applied, and
    /// gives a member added by it the operator's join input.
    fn record_epoch_start(&mut self, id: ReplicaId, epoch: Epoch, start: EpochStart, previous: &SimConfig) {
        let seed = self.sc.seed;
        if let Some(first) = self.epoch_starts.get(&epoch) {
            if *first != start {
                self.report.safety.push(format!(
                    "seed {seed}: reconfiguration: honest node {id} starts epoch {epoch} with configuration {:?}, \
                     another with {:?}",
                    start.config, first.config
                ));
            }
            return;
        }
        let ids = start.config.ids();
        let faulty = ids.iter().filter(|m| !self.honest.contains(m)).count();
        if faulty > (ids.len().saturating_sub(1)) / 3 {
            self.report.safety.push(format!(
                "seed {seed}: reconfiguration: harness bug: epoch {epoch} has {faulty} faulty of {} members",
                ids.len()
            ));
        }
        if start.config != *previous {
            self.report.reconfigs_applied += 1;
            let before: BTreeSet<ReplicaId> = previous.ids().into_iter().collect();
            let after: BTreeSet<ReplicaId> = start.config.ids().into_iter().collect();
            self.report.reconfigs_added += after.difference(&before).count() as u64;
            self.report.reconfigs_removed += before.difference(&after).count() as u64;
            self.report.reconfigs_rotated += start
                .config
                .members
                .iter()
                .filter(|(m, v)| previous.members.iter().any(|(p, w)| p == m && w != v))
                .count() as u64;
            if self.admins.pending.as_ref().is_some_and(|(c, ..)| c.sequence <= start.config.sequence) {
                self.admins.pending = None;
            }
            self.trace(|| format!("epoch {epoch} runs configuration {:?}", start.config));
        }
        for m in start.config.ids() {
            let k = self.index(m);
            if let Some(node) = self.nodes.get_mut(k).filter(|n| !n.joined && n.join.is_none()) {
                node.join = Some(Join {
                    epoch,
                    base: start.base,
                    base_hash: start.base_hash,
                    config: start.config.clone(),
                    material: start.material.clone(),
                });
                node.join_next_try = self.now;
            }
        }
        self.epoch_starts.insert(epoch, start);
    }

    /// The admins: when a planned change is due and no update is in
    /// flight, submit the next configuration (the latest with the change)
    /// to a random member; resubmit it to another one until an honest
    /// replica has it in its ledger.
    fn reconfigure(&mut self) {
        let now = self.now;
        if self.admins.pending.is_none() {
            let Some((at, change)) = self.admins.plan.first().copied() else { return };
            if at > now {
                return;
            }
            self.admins.plan.remove(0);
            let Some(next) = self.next_config(change) else { return };
            let envelope = make_reconfiguration(&next);
            let Some(tx) = tx_id(&envelope) else { return };
            self.trace(|| format!("admins submit configuration {next:?} ({change:?})"));
            self.admins.submitted.insert(tx);
            self.admins.pending = Some((next.clone(), envelope, tx, now));
            // Sometimes a second admin races with a rival update of the same
            // sequence, submitted once to a random member: whichever is
            // ordered first is the next configuration everywhere; the
            // other is ignored in this epoch and stale in the next.
            if self.admins.rng.chance(RIVAL_PER_MILLE) {
                if let Some(rival) = self.next_config(Change::Rotate(None)).filter(|r| *r != next) {
                    let envelope = make_reconfiguration(&rival);
                    if let Some(tx) = tx_id(&envelope) {
                        self.trace(|| format!("admins race with configuration {rival:?}"));
                        self.admins.submitted.insert(tx);
                        self.admins.rivals += 1;
                        let targets = self.latest_config().ids();
                        let target = *self.admins.rng.pick(&targets);
                        self.submit_as_admin(target, envelope);
                    }
                }
            }
        }
        let Some((_, envelope, tx, next_try)) = self.admins.pending.clone() else { return };
        if next_try > now || self.honest_nodes().any(|n| n.tx_seen.contains(&tx)) {
            return;
        }
        if let Some(p) = self.admins.pending.as_mut() {
            p.3 = now + ADMIN_RETRY_TICKS;
        }
        let targets = self.latest_config().ids();
        let target = *self.admins.rng.pick(&targets);
        self.submit_as_admin(target, envelope);
    }

    fn submit_as_admin(&mut self, target: ReplicaId, envelope: Vec<u8>) {
        let i = self.index(target);
        let taken = match &mut self.nodes[i].adversary {
            Some(a) => a.request(&envelope, self.now),
            None => true,
        };
        if taken {
            self.step(i, Input::Request(envelope));
        }
    }

    /// The latest configuration with `change` made (a change that cannot be
    /// made falls back to another kind: the spare joins only once, removal
    /// keeps at least MEMBERS_MIN members and at most f faulty ones).
    fn next_config(&mut self, change: Change) -> Option<SimConfig> {
        let latest = self.latest_config();
        let mut next = SimConfig { sequence: latest.sequence + 1, members: latest.members.clone() };
        let faulty = |ids: &[ReplicaId]| ids.iter().filter(|m| !self.honest.contains(m)).count();
        let removable: Vec<ReplicaId> = latest
            .ids()
            .into_iter()
            .filter(|m| Some(*m) != self.spare)
            .filter(|m| {
                let rest: Vec<ReplicaId> = latest.ids().into_iter().filter(|r| r != m).collect();
                rest.len() >= MEMBERS_MIN && faulty(&rest) <= (rest.len() - 1) / 3
            })
            .collect();
        let spare = self.spare.filter(|s| !latest.contains(*s) && !self.nodes[self.index(*s)].retired);
        let change = match change {
            Change::Remove(Some(m)) if !removable.contains(&m) => Change::Remove(None),
            c => c,
        };
        let change = match change {
            Change::Remove(_) if removable.is_empty() => spare.map_or(Change::Rotate(None), |_| Change::AddSpare),
            Change::AddSpare if spare.is_none() => Change::Rotate(None),
            Change::Rotate(Some(m)) if !latest.contains(m) => Change::Rotate(None),
            c => c,
        };
        match change {
            Change::Rotate(who) => {
                let k = match who {
                    Some(m) => next.members.iter().position(|(id, _)| *id == m)?,
                    None => self.admins.rng.range(0, next.members.len() as u64 - 1) as usize,
                };
                next.members[k].1 += 1;
            }
            Change::AddSpare => next.members.push((spare?, 0)),
            Change::Remove(who) => {
                let gone = match who {
                    Some(m) => m,
                    None => *self.admins.rng.pick(&removable),
                };
                next.members.retain(|(m, _)| *m != gone);
            }
        }
        Some(next)
    }

    /// The operator's join of a replica added by a reconfiguration: copy
    /// its history up to the epoch's base from a random other node (honest
    /// or not), only after checking its hash chain back from the base hash
    /// the operator gave; on a mismatch refuse it and try again later.
    /// Then its replica starts in the epoch it joins (later blocks come by
    /// state transfer).
    fn join_new_members(&mut self) {
        for i in 0..self.nodes.len() {
            let Some(join) = self.nodes[i].join.clone() else { continue };
            if self.nodes[i].join_next_try > self.now {
                continue;
            }
            self.nodes[i].join_next_try = self.now + JOIN_RETRY_TICKS;
            let servers: Vec<usize> = (0..self.nodes.len())
                .filter(|j| *j != i && self.nodes[*j].ledger.len() as Seq >= join.base)
                .filter(|j| (1..=join.base).all(|s| self.nodes[*j].certs.contains_key(&s)))
                .collect();
            if servers.is_empty() {
                continue;
            }
            let j = *self.admins.rng.pick(&servers);
            let Some(mut history) = self.nodes[j].ledger.get(..join.base as usize).map(<[Block]>::to_vec) else {
                continue;
            };
            // A Byzantine server may serve a forged history.
            if self.nodes[j].adversary.is_some() && self.admins.rng.chance(500) && !history.is_empty() {
                let k = self.admins.rng.range(0, history.len() as u64 - 1) as usize;
                history[k].envelopes.push(make_envelope(99, self.now, 0));
            }
            if !Self::chain_ends_at(&history, self.genesis_hash, join.base_hash) {
                self.report.joins_refused += 1;
                let server = self.nodes[j].id;
                self.trace(|| format!("node {} refused the history node {server} served", self.nodes[i].id));
                continue;
            }
            let certs: BTreeMap<Seq, Certificate> =
                self.nodes[j].certs.range(1..=join.base).map(|(s, c)| (*s, c.clone())).collect();
            for block in history {
                self.check_commit(i, &block);
                let node = &mut self.nodes[i];
                node.tx_seen.extend(block.envelopes.iter().filter_map(|e| tx_id(e)));
                node.ledger.push(block);
            }
            let node = &mut self.nodes[i];
            node.certs = certs;
            node.epoch = join.epoch;
            node.epoch_base = join.base;
            node.base_hash = join.base_hash;
            node.config = join.config;
            node.material = join.material;
            node.joined = true;
            node.join = None;
            self.report.joins += 1;
            let id = node.id;
            self.enter(i);
            self.trace(|| format!("node {id} joined epoch {} after block {}", join.epoch, join.base));
        }
    }

    /// Whether `history` is blocks 1..=n, each linked to the one before
    /// (the first to genesis), each header hash right, the last one `tip`.
    fn chain_ends_at(history: &[Block], genesis: Digest, tip: Digest) -> bool {
        let mut previous = genesis;
        for (k, b) in history.iter().enumerate() {
            let data = channels::block::data_hash(&b.envelopes);
            if b.number != k as Seq + 1
                || b.previous_hash != previous
                || channels::block::header_hash(b.number, &b.previous_hash, &data) != b.header_hash
            {
                return false;
            }
            previous = b.header_hash;
        }
        previous == tip
    }

    fn send_from(&mut self, i: usize, to: &[ReplicaId], frame: &[u8]) {
        let id = self.nodes[i].id;
        if self.honest.contains(&id) {
            self.check_double_vote(id, frame);
        }
        let sends = match self.nodes[i].adversary.as_mut() {
            Some(a) => a.rewrite(frame, to, self.now, &mut self.collusion, &mut self.rng),
            None => to.iter().map(|t| Outgoing { to: *t, bytes: frame.to_vec(), must_drop: None }).collect(),
        };
        for o in sends {
            self.transmit(i, o);
        }
    }

    /// The offline verifier over every instance's vote log and the honest
    /// replicas' certificates: each conflicting share delivered is found,
    /// every evidence file checks, no honest replica is accused.
    fn audit(&mut self) {
        let n = self.members.len();
        let f = (n - 1) / 3;
        let quorum = (n + f + 2) / 2;
        let version_max =
            self.epoch_starts.values().flat_map(|s| s.config.members.iter().map(|(_, v)| *v)).max().unwrap_or(0);
        let ids = self.ids();
        let logs: Vec<(ReplicaId, &[crate::audit::Record])> =
            self.nodes.iter().map(|n| (n.id, n.audit.records.as_slice())).collect();
        let certs: Vec<Certificate> =
            self.nodes.iter().filter(|n| self.honest.contains(&n.id)).flat_map(|n| n.certs.values().cloned()).collect();
        let fig = super::audit::check(
            CHANNEL,
            &ids,
            quorum,
            &self.keyring,
            &logs,
            &certs,
            EPOCH,
            &self.canon,
            &self.delivered,
            &self.honest,
            version_max,
        );
        for m in fig.misses.iter().filter(|m| !m.contains("not found")) {
            self.report.safety.push(format!("seed {}: audit: {m}", self.sc.seed));
        }
        self.report.audit = fig;
    }

    /// An honest replica never votes two digests for one (kind, view, seq),
    /// across crashes and restarts.
    fn check_double_vote(&mut self, id: ReplicaId, frame: &[u8]) {
        let Ok(f) = Frame::decode(frame, &Limits::default()) else { return };
        let key_digest = match &f.body {
            Body::PrePrepare { view, seq, batch } => Some((VoteKind::PrePrepare, *view, *seq, batch.digest())),
            Body::Prepare { view, seq, digest } => Some((VoteKind::Prepare, *view, *seq, *digest)),
            Body::Commit { view, seq, digest } => Some((VoteKind::Commit, *view, *seq, *digest)),
            Body::BlockSig { seq, header_hash, .. } => Some((VoteKind::BlockSig, 0, *seq, *header_hash)),
            Body::ViewChange(_) | Body::NewView(_) | Body::Forward { .. } | Body::Heartbeat { .. } => None,
        };
        let Some((kind, view, seq, digest)) = key_digest else { return };
        let epoch = f.epoch;
        match self.votes_seen.get(&(id, epoch, kind, view, seq)) {
            Some(d) if *d != digest => self.report.safety.push(format!(
                "seed {}: honest node {id} voted twice ({kind:?} epoch {epoch} view {view} seq {seq})",
                self.sc.seed
            )),
            Some(_) => {}
            None => {
                self.votes_seen.insert((id, epoch, kind, view, seq), digest);
            }
        }
    }

    /// Agreement, chain linkage, validity and integrity of a block an honest
    /// replica committed.
    fn check_commit(&mut self, i: usize, block: &Block) {
        let seed = self.sc.seed;
        let node = &self.nodes[i];
        let mut problems = vec![];
        let expected_prev = node.ledger.last().map(|b| b.header_hash).unwrap_or(self.genesis_hash);
        if block.number != node.ledger.len() as Seq + 1 || block.previous_hash != expected_prev {
            problems.push(format!("chain broken at block {} on node {}", block.number, node.id));
        }
        if channels::block::header_hash(
            block.number,
            &block.previous_hash,
            &channels::block::data_hash(&block.envelopes),
        ) != block.header_hash
        {
            problems.push(format!("header hash wrong at block {} on node {}", block.number, node.id));
        }
        match self.canon.get(&block.number) {
            Some(h) if *h != block.header_hash => {
                problems.push(format!("agreement: node {} committed a different block {}", node.id, block.number))
            }
            _ => {}
        }
        let mut ids = HashSet::new();
        let mut committed = vec![];
        for e in &block.envelopes {
            match SimValidator.validate(e) {
                Ok(id) if self.submitted.contains_key(&id) => {
                    if node.tx_seen.contains(&id) || !ids.insert(id) {
                        problems
                            .push(format!("integrity: envelope twice on node {} (block {})", node.id, block.number));
                    }
                    committed.push(self.submitted[&id]);
                }
                // A reconfiguration the admins made (only they can).
                _ if parse_reconfiguration(e).is_some()
                    && tx_id(e).is_some_and(|t| self.admins.submitted.contains(&t)) =>
                {
                    let id = tx_id(e).unwrap_or([0; 32]);
                    if node.tx_seen.contains(&id) || !ids.insert(id) {
                        problems.push(format!(
                            "integrity: reconfiguration twice on node {} (block {})",
                            node.id, block.number
                        ));
                    }
                }
                // A consenter's own key announcement (validated: only that
                // consenter could make it).
                Ok(id) if SimValidator.announcement(e).is_some() => {
                    if node.tx_seen.contains(&id) || !ids.insert(id) {
                        problems.push(format!(
                            "integrity: announcement twice on node {} (block {})",
                            node.id, block.number
                        ));
                    }
                }
                _ => problems
                    .push(format!("validity: unsubmitted envelope in block {} on node {}", block.number, node.id)),
            }
        }
        self.canon.entry(block.number).or_insert(block.header_hash);
        for k in committed {
            let r = &mut self.requests[k];
            if !r.committed {
                r.committed = true;
                self.report.committed_requests += 1;
                self.report.latency_ticks_sum += self.now.saturating_sub(r.at);
            }
        }
        for p in problems {
            self.report.safety.push(format!("seed {seed}: {p}"));
        }
    }

    fn check_certificate(&mut self, i: usize, cert: &Certificate) {
        let node = &self.nodes[i];
        let block = node.ledger.get((cert.seq as usize).wrapping_sub(1));
        // The quorum and signers of the node's epoch, each under the
        // identity-key version its configuration gives.
        let verifier = self.keyring.signer_in(node.id, &node.config.versions());
        let bytes = channels::block::certificate_signing_bytes(CHANNEL, node.epoch, cert.seq, &cert.header_hash);
        let signers: BTreeSet<ReplicaId> = cert.signatures.iter().map(|(s, _)| *s).collect();
        let quorum = crate::consensus::quorum::quorum(node.config.members.len());
        let valid = block.is_some_and(|b| b.header_hash == cert.header_hash)
            && signers.len() == cert.signatures.len()
            && signers.iter().all(|s| node.config.contains(*s))
            && signers.len() >= quorum
            && cert.signatures.iter().all(|(s, sig)| verifier.verify(*s, &bytes, sig));
        if !valid {
            self.report
                .safety
                .push(format!("seed {}: invalid certificate for block {} on node {}", self.sc.seed, cert.seq, node.id));
        }
    }

    /// State transfer: another node serves the certified blocks it has.
    fn serve_fetch(&mut self, i: usize, from: Seq, to: Seq) {
        let id = self.nodes[i].id;
        let others: Vec<usize> = (0..self.nodes.len()).filter(|j| *j != i).collect();
        let j = *self.rng.pick(&others);
        let server = &self.nodes[j];
        if self.net.cut.contains(&(server.id, id)) {
            return;
        }
        // Blocks without a certificate of their own go too (with an empty
        // one): a later certified block vouches for them.
        let blocks: Vec<CertifiedBlock> = (from..=to)
            .map_while(|s| {
                let block = server.ledger.get((s as usize).checked_sub(1)?)?;
                let certificate = server.certs.get(&s).cloned().unwrap_or(Certificate {
                    seq: s,
                    header_hash: block.header_hash,
                    signatures: vec![],
                });
                Some(CertifiedBlock { block: block.clone(), certificate })
            })
            .collect();
        self.trace(|| format!("node {id} fetches {from}..={to} from {}: {} blocks", server.id, blocks.len()));
        if !blocks.is_empty() {
            let d = self.rng.range(1, self.net.delay_max);
            self.schedule(d, Event { to: i, payload: Payload::Blocks(blocks) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::auth::seal;

    fn calm(seed: u64) -> Scenario {
        Scenario {
            seed,
            nodes: 4,
            byzantine: 0,
            strategies: Draw::Random { max: 1 },
            requests: 0,
            twins: 0,
            calm: true,
            crash_at: None,
            record_points: false,
            trace: false,
            rotate_every: Some(0),
            reconfigure: Some(false),
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }

    /// Delivers a heartbeat from replica 2 to replica 1, sealed for `epoch`
    /// and labelled "must drop".
    fn deliver_heartbeat(c: &mut Cluster, epoch: u64) {
        let body = Body::Heartbeat { view: 0, executed: 0 };
        let frame = seal(CHANNEL, epoch, 2, body, &[1], &c.keyring.mac_keys(2), &c.keyring.signer(2));
        let payload = Payload::Frame { bytes: frame.encode(), must_drop: Some("test") };
        c.schedule(0, Event { to: c.index(1), payload });
        c.deliver_due();
    }

    #[test]
    fn a_frame_of_an_older_epoch_is_dropped_and_counted() {
        let mut c = Cluster::new(calm(1));
        deliver_heartbeat(&mut c, EPOCH - 1);
        assert!(c.report.safety.is_empty(), "{:?}", c.report.safety);
        assert_eq!(c.report.must_drop_delivered, 1);
    }

    #[test]
    fn the_must_drop_checker_sees_a_valid_frame_get_in() {
        // Negative control: the same frame sealed for the current epoch is
        // accepted (silently: a heartbeat from a backup leaves no output).
        let mut c = Cluster::new(calm(1));
        deliver_heartbeat(&mut c, EPOCH);
        assert_eq!(c.report.must_drop_accepted, 1, "{:?}", c.report.safety);
        assert!(c.report.safety.iter().any(|v| v.contains("must drop")));
    }

    /// A calm n=4 cluster (a request every few ticks) whose admins make the
    /// changes of `plan`.
    fn reconfiguring(seed: u64, plan: Vec<(u64, Change)>) -> Cluster {
        let mut c = Cluster::new(Scenario { requests: 60, reconfigure: Some(true), ..calm(seed) });
        c.admins.plan = plan;
        c
    }

    fn assert_clean(c: &Cluster) {
        let r = &c.report;
        assert!(r.safety.is_empty() && r.liveness.is_empty(), "{:?} {:?}", r.safety, r.liveness);
    }

    #[test]
    fn a_calm_cluster_adds_the_spare_then_removes_member_1_and_orders_every_request() {
        let mut c = reconfiguring(7, vec![(100, Change::AddSpare), (350, Change::Remove(Some(1)))]);
        c.drive();
        assert_clean(&c);
        let r = &c.report;
        assert_eq!((r.reconfigs_applied, r.reconfigs_added, r.reconfigs_removed, r.joins), (2, 1, 1, 1));
        assert_eq!(c.latest_config().ids(), vec![2, 3, 4, 5]);
        let removed = &c.nodes[0];
        assert!(removed.retired && removed.replica.is_none(), "member 1 stopped");
        let hashes = |n: &Node| n.ledger.iter().map(|b| b.header_hash).collect::<Vec<_>>();
        let spare = &c.nodes[4];
        assert!(spare.joined && spare.replica.is_some());
        for n in &c.nodes[1..] {
            assert_eq!(hashes(n), hashes(spare), "members agree");
            assert!(c.requests.iter().all(|q| n.tx_seen.contains(&q.tx_id)), "every request ordered on {}", n.id);
        }
        let left = hashes(removed);
        assert!(left.len() < spare.ledger.len() && hashes(spare).starts_with(&left), "the removed ledger is a prefix");
    }

    #[test]
    fn a_rotated_identity_signs_with_its_new_key_and_its_old_key_no_longer_verifies() {
        let mut c = reconfiguring(8, vec![(100, Change::Rotate(Some(2)))]);
        c.drive();
        assert_clean(&c);
        assert_eq!(c.report.reconfigs_rotated, 1);
        let node = &c.nodes[0];
        assert!(node.config.members.contains(&(2, 1)), "{:?}", node.config);
        let (seq, cert) = node.certs.iter().next_back().map(|(s, c)| (*s, c.clone())).unwrap();
        assert!(seq > node.epoch_base, "a block certified after the switch");
        let bytes = channels::block::certificate_signing_bytes(CHANNEL, node.epoch, seq, &cert.header_hash);
        let old = c.keyring.signer_in(2, &SimConfig::first(&c.members).versions()).sign(&bytes);
        let new = c.keyring.signer_in(2, &node.config.versions()).sign(&bytes);
        let verifier = c.signer(0);
        assert!(verifier.verify(2, &bytes, &new) && !verifier.verify(2, &bytes, &old));
        if let Some((_, share)) = cert.signatures.iter().find(|(s, _)| *s == 2) {
            assert_eq!(*share, new, "2 signed with its new key");
        }
        // A certificate carrying 2's old-key share is refused.
        let mut forged = cert.clone();
        forged.signatures.retain(|(s, _)| *s != 2);
        forged.signatures.push((2, old));
        c.check_certificate(0, &forged);
        assert_eq!(c.report.safety.len(), 1, "{:?}", c.report.safety);
    }

    #[test]
    fn a_replica_restarted_right_after_executing_the_reconfiguration_still_switches_at_the_same_block() {
        for (seed, crashed) in [(9, 3), (10, 2), (11, 1)] {
            let mut c = reconfiguring(seed, vec![(100, Change::Rotate(Some(4)))]);
            c.crash_after_reconfiguration = Some(crashed);
            c.drive();
            assert!(c.crashed_after_reconfiguration, "seed {seed}: node {crashed} never executed it");
            assert_clean(&c);
            assert_eq!(c.report.reconfigs_rotated, 1);
            let epochs: BTreeSet<(Epoch, Seq)> = c.nodes.iter().take(4).map(|n| (n.epoch, n.epoch_base)).collect();
            assert_eq!(epochs.len(), 1, "seed {seed}: {epochs:?}");
            assert_eq!(c.nodes[crashed as usize - 1].config, c.latest_config());
        }
    }

    #[test]
    fn an_honest_replica_switching_into_another_configuration_is_a_violation() {
        // Negative control of the same-configuration check.
        let mut c = reconfiguring(1, vec![]);
        let first = SimConfig::first(&c.members);
        let start = |config: SimConfig| EpochStart { base: 8, base_hash: [1; 32], config, material: BTreeMap::new() };
        let next = SimConfig { sequence: 1, members: vec![(1, 1), (2, 0), (3, 0), (4, 0)] };
        c.record_epoch_start(1, EPOCH + 1, start(next.clone()), &first);
        assert!(c.report.safety.is_empty());
        c.record_epoch_start(2, EPOCH + 1, start(next), &first);
        assert!(c.report.safety.is_empty());
        c.record_epoch_start(3, EPOCH + 1, start(first.clone()), &first);
        assert!(c.report.safety.iter().any(|v| v.contains("reconfiguration")), "{:?}", c.report.safety);
    }

    #[test]
    fn a_forged_history_is_refused_by_the_joining_replica() {
        let history: Vec<Block> = {
            let mut c = reconfiguring(7, vec![]);
            c.drive();
            c.nodes[0].ledger.clone()
        };
        let tip = history.last().unwrap().header_hash;
        let genesis: Digest = Sha256::digest("genesis-7").into();
        assert!(Cluster::chain_ends_at(&history, genesis, tip));
        let mut forged = history.clone();
        forged[2].envelopes.push(make_envelope(99, 0, 0));
        assert!(!Cluster::chain_ends_at(&forged, genesis, tip));
        assert!(!Cluster::chain_ends_at(&history[..history.len() - 1], genesis, tip), "a short history");
    }
}

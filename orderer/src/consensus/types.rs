//! Inputs, outputs, configuration and durable records of the core.

use super::message::{Batch, Certificate, Digest, Epoch, Limits, NewView, ReplicaId, Seq, SignedViewChange, View};

/// A transaction id (Fabric's tx id is hex(SHA-256(nonce ‖ creator))).
pub type TxId = [u8; 32];

/// Static parameters of one replica of one channel in one epoch. Timeouts
/// count ticks: the shell decides how long a tick is.
#[derive(Clone, Debug)]
pub struct Config {
    pub channel: String,
    pub epoch: Epoch,
    pub me: ReplicaId,
    /// The consenters, in the order that assigns primaries: the primary of
    /// view v is `members[v % n]`.
    pub members: Vec<ReplicaId>,
    /// The block this epoch starts after (0 in the genesis epoch): a
    /// multiple of the checkpoint interval.
    pub epoch_base: Seq,
    /// Header hash of block `epoch_base` (block 0 is the genesis config
    /// block): the base checkpoint, valid without signatures.
    pub genesis_hash: Digest,
    /// L: sequence numbers in (low, low + L] may be in flight.
    pub window: u64,
    /// K: the certificate of every K-th block is a checkpoint.
    pub checkpoint_interval: u64,
    pub batch_count_max: usize,
    pub batch_bytes_max: usize,
    pub batch_bytes_preferred: usize,
    pub batch_timeout_ticks: u64,
    /// A primary with no proposal of its own in flight cuts a batch as soon
    /// as one request waits (the batch rules above apply while earlier
    /// blocks are being agreed on).
    pub cut_when_idle: bool,
    pub forward_timeout_ticks: u64,
    pub complain_timeout_ticks: u64,
    pub view_change_timeout_ticks: u64,
    pub heartbeat_interval_ticks: u64,
    pub heartbeat_timeout_ticks: u64,
    pub resend_interval_ticks: u64,
    pub pool_max: usize,
    /// Transaction ids of this many recent blocks are remembered by the core
    /// and filtered out deterministically at execution.
    pub dedup_window_blocks: u64,
    pub limits: Limits,
    /// A deliberate protocol fault, for the simulator's negative controls.
    /// Exists only in builds with the `mutants` feature, never in the node.
    #[cfg(feature = "mutants")]
    pub mutant: Option<Mutant>,
}

/// Deliberate faults injected into the core to show that the simulator's
/// checkers catch them (built only with the `mutants` feature).
#[cfg(feature = "mutants")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// Commit with f+1 matching commits instead of a quorum.
    CommitOnWeakQuorum,
    /// Prepare with f+1 matching votes instead of a quorum.
    PrepareOnWeakQuorum,
    /// Both: f+1 votes prepare and commit.
    WeakQuorum,
    /// Cast votes without asking for them to be persisted first.
    SkipPersist,
    /// A new view re-proposes null for every slot, ignoring prepared claims.
    NullOnViewChange,
    /// Odd-numbered replicas end an epoch one checkpoint late (they count
    /// the announcements, but derive the end wrongly).
    EpochEndSkew,
}

#[cfg(feature = "mutants")]
impl Mutant {
    pub const ALL: [Mutant; 6] = [
        Mutant::CommitOnWeakQuorum,
        Mutant::PrepareOnWeakQuorum,
        Mutant::WeakQuorum,
        Mutant::SkipPersist,
        Mutant::NullOnViewChange,
        Mutant::EpochEndSkew,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutant::CommitOnWeakQuorum => "commit-on-weak-quorum",
            Mutant::PrepareOnWeakQuorum => "prepare-on-weak-quorum",
            Mutant::WeakQuorum => "weak-quorum",
            Mutant::SkipPersist => "skip-persist",
            Mutant::NullOnViewChange => "null-on-view-change",
            Mutant::EpochEndSkew => "epoch-end-skew",
        }
    }
}

impl Config {
    /// Sanity checks; a config that fails them is a bug in the shell.
    pub fn check(&self) -> Result<(), String> {
        let n = self.members.len();
        let mut sorted = self.members.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let checks = [
            (n >= 1, "at least one member"),
            (sorted.len() == n, "member ids are distinct"),
            (self.members.contains(&self.me), "this replica is a member"),
            (self.window >= 1 && self.checkpoint_interval >= 1, "window and checkpoint interval are positive"),
            (self.checkpoint_interval <= self.window, "checkpoint interval is at most the window"),
            (self.epoch_base.is_multiple_of(self.checkpoint_interval.max(1)), "the epoch starts at a checkpoint"),
            (self.batch_count_max >= 1 && self.batch_bytes_max >= 1, "batch limits are positive"),
            (self.view_change_timeout_ticks >= 1 && self.heartbeat_interval_ticks >= 1, "timeouts are positive"),
            (self.resend_interval_ticks >= 1 && self.pool_max >= 1, "resend interval and pool are positive"),
            (n <= self.limits.members_max, "members fit the decode limits"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, what)) => Err(format!("invalid consensus config: expected {what}")),
            None => Ok(()),
        }
    }
}

/// Full validation of client envelopes, supplied by the shell.
pub trait Validator {
    /// Whether the envelope may be ordered (signature, creator, channel...);
    /// on success its transaction id.
    fn validate(&self, envelope: &[u8]) -> Result<TxId, String>;
    /// The transaction id alone, without validation (used at execution).
    fn tx_id(&self, envelope: &[u8]) -> Option<TxId>;
    /// A consenter's key announcement for the epoch it introduces, if the
    /// envelope is one and valid (used at execution: the epoch switch is
    /// derived from the ordered log).
    fn announcement(&self, envelope: &[u8]) -> Option<Announcement> {
        let _ = envelope;
        None
    }
    /// Whether the envelope is a valid reconfiguration (a configuration
    /// update that replaces this epoch's configuration). Deterministic, used
    /// at execution: the first one executed ends the epoch at the next
    /// checkpoint, and the next epoch runs under the new configuration.
    fn reconfiguration(&self, envelope: &[u8]) -> bool {
        let _ = envelope;
        false
    }
}

/// A consenter announced its key material for `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub consenter: ReplicaId,
    pub epoch: Epoch,
}

/// The last block of an epoch whose quorum of announcements for the next
/// one was complete at block `complete_at`: the first checkpoint at or after
/// it. Every replica derives it from the ordered log alone. Slots above it
/// that were proposed or voted for in this epoch are abandoned (execution is
/// in order and stops at the end, so no replica executes one), and their
/// requests go to the next epoch.
pub fn epoch_end_after(complete_at: Seq, checkpoint_interval: u64) -> Seq {
    let k = checkpoint_interval.max(1);
    complete_at.div_ceil(k).saturating_mul(k)
}

/// What the core is asked to do.
#[derive(Clone, Debug)]
pub enum Input {
    /// Bytes received from another consenter's link.
    Message(Vec<u8>),
    /// One tick of time.
    Tick,
    /// An envelope submitted by a client to this replica.
    Request(Vec<u8>),
    /// Blocks fetched by state transfer, answering [`Output::Fetch`].
    Blocks(Vec<CertifiedBlock>),
}

/// A block as executed by the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub number: Seq,
    pub previous_hash: Digest,
    pub data_hash: Digest,
    pub header_hash: Digest,
    pub envelopes: Vec<Vec<u8>>,
}

/// A block with its certificate, as served by state transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedBlock {
    pub block: Block,
    pub certificate: Certificate,
}

/// What the core asks the shell to do, in order. Every output after a
/// `Persist` may depend on it: the shell must make it durable first.
#[derive(Clone, Debug)]
pub enum Output {
    Send {
        to: ReplicaId,
        frame: Vec<u8>,
    },
    Broadcast {
        frame: Vec<u8>,
    },
    Persist(Vec<Durable>),
    /// The next block in order, decided. Its certificate follows.
    Commit(Block),
    /// A quorum certificate for an already committed block.
    Certified(Certificate),
    /// Fetch blocks `from..=to` with certificates from other consenters and
    /// feed them back as [`Input::Blocks`].
    Fetch {
        from: Seq,
        to: Seq,
    },
    /// Answer to [`Input::Request`].
    Admitted {
        tx_id: TxId,
    },
    Refused {
        reason: Refusal,
    },
    /// This epoch is over: block `last_seq` is executed and certified. The
    /// replica takes no further input; the shell starts the next epoch's
    /// replica from that block (see [`super::Replica::pending_envelopes`]).
    EpochEnded {
        epoch: Epoch,
        last_seq: Seq,
    },
    /// Started changing to `view`.
    ViewChangeStarted {
        view: View,
        reason: ViewChangeReason,
    },
    /// Entered `view` with `primary`.
    NewViewInstalled {
        view: View,
        primary: ReplicaId,
    },
    /// A message was dropped before touching state.
    Dropped {
        reason: DropReason,
    },
    /// A quorum certified a block different from the one this replica
    /// committed: more than f consenters are faulty. Never expected.
    ForkDetected {
        seq: Seq,
    },
    /// Validly signed block-certificate shares of one consenter that
    /// contradict what this replica executed or an earlier share of the same
    /// consenter: transferable evidence, kept in the vote log (see `audit`).
    Evidence(Vec<super::evidence::SignedShare>),
}

/// The normal-case phases a sequence number goes through at one replica, in
/// order. The core has no clock: the shell timestamps the outputs that show
/// each phase ([`Output::phases`]) to measure how long each took.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// This replica accepted the pre-prepare (the primary: proposed it) and
    /// cast its pre-prepare or prepare vote.
    PrePrepared,
    /// prepared(v, n, d): a quorum agreed on the proposal; this replica cast
    /// its commit vote.
    Prepared,
    /// The block was committed and executed in order (also a block applied
    /// by state transfer, which passed through no other phase here).
    Committed,
}

impl Output {
    /// The phases this output shows a sequence number reached, in the order
    /// they happened. Each (seq, phase) of a view shows at most once: a vote
    /// is persisted when it is first cast, and a block is committed once.
    pub fn phases(&self) -> impl Iterator<Item = (Seq, Phase)> + '_ {
        let (records, committed): (&[Durable], Option<Seq>) = match self {
            Output::Persist(records) => (records, None),
            Output::Commit(block) => (&[], Some(block.number)),
            Output::Send { .. }
            | Output::Broadcast { .. }
            | Output::Certified(_)
            | Output::Fetch { .. }
            | Output::Admitted { .. }
            | Output::Refused { .. }
            | Output::ViewChangeStarted { .. }
            | Output::EpochEnded { .. }
            | Output::NewViewInstalled { .. }
            | Output::Dropped { .. }
            | Output::ForkDetected { .. }
            | Output::Evidence(_) => (&[], None),
        };
        records.iter().filter_map(Durable::phase).chain(committed.map(|seq| (seq, Phase::Committed)))
    }
}

/// Why a client request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    TooLarge {
        bytes: usize,
        max: usize,
    },
    Invalid(String),
    Duplicate,
    PoolFull,
    /// The epoch ended: submit to the next epoch's replica.
    EpochEnded,
}

/// Why a view change started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViewChangeReason {
    /// A request was not ordered within the complain timeout.
    RequestTimeout,
    /// Nothing heard from the primary within the heartbeat timeout.
    LeaderSilent,
    /// A proposal stayed uncommitted (or an executed block uncertified) for
    /// the view-change timeout.
    Stalled,
    /// The primary proposed an invalid batch.
    BadProposal,
    /// f+1 others are changing view: one of them is correct.
    Joined,
    /// The previous view change did not complete in time.
    ViewChangeTimeout,
}

impl ViewChangeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ViewChangeReason::RequestTimeout => "request_timeout",
            ViewChangeReason::LeaderSilent => "leader_silent",
            ViewChangeReason::Stalled => "stalled",
            ViewChangeReason::BadProposal => "bad_proposal",
            ViewChangeReason::Joined => "joined",
            ViewChangeReason::ViewChangeTimeout => "view_change_timeout",
        }
    }
}

/// Why a received message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    Malformed,
    WrongChannel,
    WrongEpoch,
    UnknownSender,
    BadMac,
    BadSignature,
    WrongView,
    OutsideWindow,
    NotFromPrimary,
    Equivocation,
    InvalidViewChange,
    InvalidNewView,
    InvalidBlocks,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::WrongChannel => "wrong_channel",
            DropReason::WrongEpoch => "wrong_epoch",
            DropReason::UnknownSender => "unknown_sender",
            DropReason::BadMac => "bad_mac",
            DropReason::BadSignature => "bad_signature",
            DropReason::WrongView => "wrong_view",
            DropReason::OutsideWindow => "outside_window",
            DropReason::NotFromPrimary => "not_from_primary",
            DropReason::Equivocation => "equivocation",
            DropReason::InvalidViewChange => "invalid_view_change",
            DropReason::InvalidNewView => "invalid_new_view",
            DropReason::InvalidBlocks => "invalid_blocks",
        }
    }
}

/// The kinds of vote a replica casts; each is cast at most once per
/// (kind, view, seq), with one digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VoteKind {
    PrePrepare,
    Prepare,
    Commit,
    BlockSig,
    ViewChange,
    NewView,
}

/// What a replica must not forget across a crash. Records are appended;
/// [`compact`] drops what a stable checkpoint makes obsolete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Durable {
    /// The replica entered `view` (or started changing to it).
    View { view: View, changing: bool },
    /// A vote cast. For `ViewChange` and `NewView`, `seq` is 0 and the
    /// digest is the hash of the message.
    Vote { kind: VoteKind, view: View, seq: Seq, digest: Digest },
    /// The batch a pre-prepare or prepare vote refers to.
    Batch { seq: Seq, batch: Batch },
    /// The view change sent for `view_change.new_view`, resent identically.
    ViewChangeSent(SignedViewChange),
    /// The new view this replica sent as primary, resent identically.
    NewViewSent(NewView),
    /// A checkpoint became stable: records at or below it are obsolete.
    Stable(Certificate),
}

impl Durable {
    /// The phase a vote record shows its sequence number reached: a
    /// pre-prepare or prepare vote is cast when the proposal is accepted, a
    /// commit vote exactly when the replica prepared.
    fn phase(&self) -> Option<(Seq, Phase)> {
        match self {
            Durable::Vote { kind: VoteKind::PrePrepare | VoteKind::Prepare, seq, .. } => {
                Some((*seq, Phase::PrePrepared))
            }
            Durable::Vote { kind: VoteKind::Commit, seq, .. } => Some((*seq, Phase::Prepared)),
            Durable::Vote { kind: VoteKind::BlockSig | VoteKind::ViewChange | VoteKind::NewView, .. }
            | Durable::View { .. }
            | Durable::Batch { .. }
            | Durable::ViewChangeSent(_)
            | Durable::NewViewSent(_)
            | Durable::Stable(_) => None,
        }
    }

    fn seq(&self) -> Option<Seq> {
        match self {
            Durable::Vote { kind: VoteKind::ViewChange | VoteKind::NewView, .. } => None,
            Durable::Vote { seq, .. } | Durable::Batch { seq, .. } => Some(*seq),
            Durable::View { .. } | Durable::ViewChangeSent(_) | Durable::NewViewSent(_) | Durable::Stable(_) => None,
        }
    }
}

/// Drops records made obsolete by the latest stable checkpoint and by later
/// views (keeps the last view record and the view-change messages of the
/// last few views).
pub fn compact(records: &mut Vec<Durable>) {
    let stable = records
        .iter()
        .filter_map(|r| match r {
            Durable::Stable(c) => Some(c.seq),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let view = records
        .iter()
        .filter_map(|r| match r {
            Durable::View { view, .. } => Some(*view),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let keep_from_view = view.saturating_sub(4);
    let mut kept_view = false;
    let mut kept_installed = false;
    let mut kept_stable = false;
    // Walk newest first so that the latest View and Stable records are kept,
    // and the latest installed view (a later record may be a view change in
    // progress).
    let mut out: Vec<Durable> = Vec::with_capacity(records.len());
    for r in records.drain(..).rev() {
        let keep = match &r {
            Durable::View { changing, .. } => {
                let newest = !std::mem::replace(&mut kept_view, true);
                let installed = !*changing && !std::mem::replace(&mut kept_installed, true);
                newest || installed
            }
            Durable::Stable(c) => c.seq == stable && !std::mem::replace(&mut kept_stable, true),
            Durable::ViewChangeSent(s) => s.view_change.new_view >= keep_from_view,
            Durable::NewViewSent(nv) => nv.view >= keep_from_view,
            Durable::Vote { kind: VoteKind::ViewChange | VoteKind::NewView, view, .. } => *view >= keep_from_view,
            other => other.seq().is_none_or(|s| s > stable),
        };
        if keep {
            out.push(r);
        }
    }
    out.reverse();
    *records = out;
}

impl VoteKind {
    fn tag(self) -> u8 {
        match self {
            VoteKind::PrePrepare => 1,
            VoteKind::Prepare => 2,
            VoteKind::Commit => 3,
            VoteKind::BlockSig => 4,
            VoteKind::ViewChange => 5,
            VoteKind::NewView => 6,
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        [
            VoteKind::PrePrepare,
            VoteKind::Prepare,
            VoteKind::Commit,
            VoteKind::BlockSig,
            VoteKind::ViewChange,
            VoteKind::NewView,
        ]
        .into_iter()
        .find(|k| k.tag() == tag)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VoteKind::PrePrepare => "pre-prepare",
            VoteKind::Prepare => "prepare",
            VoteKind::Commit => "commit",
            VoteKind::BlockSig => "block-signature",
            VoteKind::ViewChange => "view-change",
            VoteKind::NewView => "new-view",
        }
    }
}

use super::codec::{DecodeError, Reader, Writer};
use super::message::Body;

impl Durable {
    /// Canonical bytes of a record, for the shell's store.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        match self {
            Durable::View { view, changing } => {
                w.u8(1).u64(*view).u8(u8::from(*changing));
            }
            Durable::Vote { kind, view, seq, digest } => {
                w.u8(2).u8(kind.tag()).u64(*view).u64(*seq).digest(digest);
            }
            Durable::Batch { seq, batch } => {
                w.u8(3).u64(*seq);
                batch.encode(&mut w);
            }
            Durable::ViewChangeSent(svc) => {
                w.u8(4).u32(svc.sender).bytes(&svc.signature);
                Body::ViewChange(svc.view_change.clone()).encode(&mut w);
            }
            Durable::NewViewSent(nv) => {
                w.u8(5);
                Body::NewView(nv.clone()).encode(&mut w);
            }
            Durable::Stable(cert) => {
                w.u8(6);
                cert.encode(&mut w);
            }
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let record = match r.u8()? {
            1 => Durable::View { view: r.u64()?, changing: r.u8()? != 0 },
            2 => {
                let tag = r.u8()?;
                let kind = VoteKind::from_tag(tag).ok_or(DecodeError::UnknownTag { what: "vote kind", tag })?;
                Durable::Vote { kind, view: r.u64()?, seq: r.u64()?, digest: r.digest()? }
            }
            3 => Durable::Batch { seq: r.u64()?, batch: Batch::decode(&mut r, limits)? },
            4 => {
                let sender = r.u32()?;
                let signature = r.bytes("signature", 512)?;
                match Body::decode(&mut r, limits)? {
                    Body::ViewChange(view_change) => {
                        Durable::ViewChangeSent(SignedViewChange { sender, view_change, signature })
                    }
                    _ => return Err(DecodeError::Invalid { what: "stored view change" }),
                }
            }
            5 => match Body::decode(&mut r, limits)? {
                Body::NewView(nv) => Durable::NewViewSent(nv),
                _ => return Err(DecodeError::Invalid { what: "stored new view" }),
            },
            6 => Durable::Stable(Certificate::decode(&mut r, limits)?),
            tag => return Err(DecodeError::UnknownTag { what: "durable record", tag }),
        };
        r.finish()?;
        Ok(record)
    }
}

impl Block {
    /// Canonical bytes of an executed block, for the shell's store.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(96 + self.envelopes.iter().map(|e| e.len() + 4).sum::<usize>());
        w.u64(self.number).digest(&self.previous_hash).digest(&self.data_hash).digest(&self.header_hash);
        Batch { envelopes: self.envelopes.clone() }.encode(&mut w);
        w.finish()
    }

    /// Decodes and re-checks the hashes: a stored block that does not hash
    /// to its header is refused.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let number = r.u64()?;
        let previous_hash = r.digest()?;
        let data_hash = r.digest()?;
        let header_hash = r.digest()?;
        let envelopes = Batch::decode(&mut r, limits)?.envelopes;
        r.finish()?;
        let block = Block { number, previous_hash, data_hash, header_hash, envelopes };
        if channels::block::data_hash(&block.envelopes) != data_hash
            || channels::block::header_hash(number, &previous_hash, &data_hash) != header_hash
        {
            return Err(DecodeError::Invalid { what: "block hashes" });
        }
        Ok(block)
    }
}

impl Certificate {
    /// Canonical bytes of a certificate, for the shell's store.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.finish()
    }

    pub fn from_bytes(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let c = Certificate::decode(&mut r, limits)?;
        r.finish()?;
        Ok(c)
    }
}

//! The vote-log audit in the simulator: every replica keeps a signed vote
//! log as the node does (block shares and view changes it persisted, the
//! conflicting shares its core reported), and at the end of a run the
//! offline verifier reads all the logs and the certified blocks. Every
//! conflicting block share a Byzantine replica delivered to an honest one
//! within that replica's window must be found, with evidence that checks;
//! no honest replica may be accused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::identity::Keyring;
use crate::audit::evidence::check_evidence;
use crate::audit::format::{head_signing_bytes, End, Header, LogFile, FORMAT, VERSION};
use crate::audit::verify::{verify, BlockVotes, Keys};
use crate::audit::{Entry, LogWriter, Record};
use crate::consensus::message::Body;
use crate::consensus::{
    Certificate, Crypto, Digest, Durable, Frame, Limits, Output, Replica, ReplicaId, Seq, SignedShare, VoteKind,
};

/// Conflicting shares remembered per run, at most.
const DELIVERED_MAX: usize = 100_000;

/// One replica's durable vote log (survives its crashes, as the store does).
pub struct NodeLog {
    writer: LogWriter,
    pub records: Vec<Record>,
}

impl NodeLog {
    pub fn new(channel: &str, id: ReplicaId) -> Self {
        Self { writer: LogWriter::resume(channel, id, None), records: vec![] }
    }

    /// What the shell does with a `Persist`: block shares and view changes
    /// become signed records.
    pub fn persist(&mut self, records: &[Durable], replica: Option<&Replica>, epoch: u64, signer: &dyn Crypto) {
        let (view, executed) = replica.map_or((0, 0), |r| (r.view(), r.executed()));
        for r in records {
            let entry = match r {
                Durable::Vote { kind: VoteKind::BlockSig, seq, digest, .. } => {
                    Entry::Block { epoch, view, seq: *seq, header_hash: *digest }
                }
                Durable::Vote { kind: VoteKind::ViewChange, view, digest, .. } => {
                    Entry::ViewChange { epoch, view: *view, height: executed, digest: *digest }
                }
                _ => continue,
            };
            self.records.push(self.writer.append(entry, signer));
        }
    }

    pub fn evidence(&mut self, shares: &[SignedShare], signer: &dyn Crypto) {
        for s in shares {
            if let Some(r) = self.writer.observe(s.clone(), signer) {
                self.records.push(r);
            }
        }
    }
}

/// The honest replica a share reached, and where it stood.
#[derive(Clone, Copy, Debug)]
pub struct Receiver {
    /// Its instance index in the cluster.
    pub index: usize,
    /// Its stable checkpoint and window: shares outside are ignored.
    pub low: Seq,
    pub window: u64,
    /// Blocks it had executed.
    pub executed: Seq,
    /// It did not crash in the step that took the share (a crash cuts the
    /// step's outputs, the evidence among them).
    pub survived: bool,
}

/// Block shares of Byzantine replicas accepted by honest ones within their
/// window: (sender, seq) -> header hash -> (receiver, its restarts then,
/// whether it had executed `seq`).
#[derive(Default)]
pub struct Delivered {
    shares: BTreeMap<(ReplicaId, Seq), BTreeMap<Digest, Vec<Reception>>>,
    restarts: BTreeMap<usize, u64>,
}

/// One honest receiver of a share: its instance index, its restarts at
/// the time, and whether it judged the share (had executed that block and
/// survived the step).
type Reception = (usize, u64, bool);

/// Receivers remembered per share, at most.
const RECEIVERS_MAX: usize = 64;

impl Delivered {
    /// Instance `index` restarted (what it held in memory is gone).
    pub fn restarted(&mut self, index: usize) {
        *self.restarts.entry(index).or_default() += 1;
    }

    /// A frame from a Byzantine replica was accepted (not dropped) by an
    /// honest replica.
    pub fn note(
        &mut self,
        bytes: &[u8],
        at: Receiver,
        outputs: &[Output],
        honest: &BTreeSet<ReplicaId>,
        twins: &[ReplicaId],
    ) {
        let Ok(f) = Frame::decode(bytes, &Limits::default()) else { return };
        let Body::BlockSig { seq, header_hash, .. } = f.body else { return };
        let byzantine = !honest.contains(&f.sender) && !twins.contains(&f.sender);
        if !byzantine || self.shares.len() >= DELIVERED_MAX {
            return;
        }
        if seq <= at.low || seq > at.low.saturating_add(4 * at.window) {
            return;
        }
        if outputs.iter().any(|o| matches!(o, Output::Dropped { .. })) {
            return;
        }
        let restarts = self.restarts.get(&at.index).copied().unwrap_or_default();
        let list = self.shares.entry((f.sender, seq)).or_default().entry(header_hash).or_default();
        if list.len() < RECEIVERS_MAX {
            list.push((at.index, restarts, at.survived && at.executed >= seq));
        }
    }

    /// Every receiver of the lies about `key` held them in memory only (it
    /// had not executed that block, so could not judge them, or it crashed
    /// in the very step that judged them) and crashed afterwards: nobody
    /// can have kept the evidence.
    fn lost_in_crash(&self, key: &(ReplicaId, Seq), truth: &Digest) -> bool {
        let Some(by_hash) = self.shares.get(key) else { return false };
        by_hash.iter().filter(|(h, _)| *h != truth).flat_map(|(_, r)| r).all(|(index, restarts, judged)| {
            !judged && self.restarts.get(index).copied().unwrap_or_default() > *restarts
        })
    }
}

/// What the audit of one run found.
#[derive(Clone, Debug, Default)]
pub struct AuditFigures {
    /// (Byzantine replica, height) pairs where it delivered a share for a
    /// block other than the one committed.
    pub performed: u64,
    /// Of those, found by the verifier.
    pub found: u64,
    /// Of those not found, the ones whose every honest receiver crashed
    /// before it executed that block (the share was in memory only).
    pub lost_in_crash: u64,
    /// Evidence files, and those `check_evidence` accepts.
    pub evidence: u64,
    pub evidence_valid: u64,
    /// Evidence against replicas that are not Byzantine.
    pub honest_accused: u64,
    /// What was missed or wrongly accused, in words.
    pub misses: Vec<String>,
}

/// The simulator's keys as the verifier sees them (certificates are not
/// modelled: every header certificate is accepted).
pub struct SimKeys {
    channel: String,
    members: Vec<ReplicaId>,
    keyring: Arc<Keyring>,
    quorum: usize,
    /// The highest identity-key version any consenter reached in the run.
    version_max: u32,
}

impl SimKeys {
    pub fn new(channel: &str, members: &[ReplicaId], keyring: &Arc<Keyring>, quorum: usize) -> Self {
        Self {
            channel: channel.to_owned(),
            members: members.to_vec(),
            keyring: keyring.clone(),
            quorum,
            version_max: 0,
        }
    }

    /// Accepts a consenter's signature under any of its identity keys up to
    /// `version_max` (a log spans epochs; each line is signed with the key
    /// of its time).
    pub fn with_version_max(self, version_max: u32) -> Self {
        Self { version_max, ..self }
    }
}

impl Keys for SimKeys {
    fn knows(&self, channel: &str, consenter: ReplicaId) -> bool {
        channel == self.channel && self.members.contains(&consenter)
    }

    fn verify(&self, channel: &str, consenter: ReplicaId, message: &[u8], signature: &[u8]) -> bool {
        self.knows(channel, consenter)
            && self.keyring.verify_any_version(consenter, message, signature, self.version_max)
    }

    fn quorum(&self, _: &str) -> usize {
        self.quorum
    }

    fn check_certificate(&self, _: &str, _: ReplicaId, _: &str) -> Result<(), String> {
        Ok(())
    }

    fn certificate(&self, _: &str, _: ReplicaId) -> String {
        String::new()
    }
}

/// The verifier over every instance's log and the certified blocks.
#[allow(clippy::too_many_arguments)]
pub fn check(
    channel: &str,
    members: &[ReplicaId],
    quorum: usize,
    keyring: &Arc<Keyring>,
    logs: &[(ReplicaId, &[Record])],
    certs: &[Certificate],
    epoch: u64,
    canon: &BTreeMap<Seq, Digest>,
    delivered: &Delivered,
    honest: &BTreeSet<ReplicaId>,
    version_max: u32,
) -> AuditFigures {
    let keys = SimKeys::new(channel, members, keyring, quorum).with_version_max(version_max);
    let files: Vec<LogFile> = logs
        .iter()
        .enumerate()
        .map(|(i, (id, records))| LogFile {
            source: format!("instance {i} (consenter {id})"),
            header: Header {
                format: FORMAT.into(),
                version: VERSION,
                channel: channel.to_owned(),
                consenter: *id,
                certificate: String::new(),
                first_index: 0,
                records: records.len() as u64,
            },
            records: records.iter().enumerate().map(|(k, r)| (k + 2, r.clone())).collect(),
            bad_lines: vec![],
            end: Some(end_line(channel, *id, records, keyring)),
        })
        .collect();
    let blocks: Vec<BlockVotes> = certs
        .iter()
        .map(|c| BlockVotes {
            source: "ledger".into(),
            channel: channel.to_owned(),
            number: c.seq,
            header_hash: c.header_hash,
            epoch,
            shares: c.signatures.clone(),
        })
        .collect();
    let report = verify(&keys, &files, &blocks);
    let mut fig = AuditFigures { evidence: report.evidence.len() as u64, ..Default::default() };
    let mut accused: BTreeSet<(ReplicaId, Seq)> = BTreeSet::new();
    for e in &report.evidence {
        match check_evidence(e, &keys) {
            Ok(_) => fig.evidence_valid += 1,
            Err(why) => fig.misses.push(format!("evidence against {} does not check: {why}", e.consenter)),
        }
        if honest.contains(&e.consenter) {
            fig.honest_accused += 1;
            fig.misses.push(format!("honest replica accused: {}", e.summary));
        }
        if let Some(seq) = e.seq {
            accused.insert((e.consenter, seq));
        }
    }
    for ((sender, seq), hashes) in &delivered.shares {
        let Some(truth) = canon.get(seq) else { continue };
        if hashes.keys().all(|h| h == truth) {
            continue;
        }
        fig.performed += 1;
        if accused.contains(&(*sender, *seq)) {
            fig.found += 1;
        } else if delivered.lost_in_crash(&(*sender, *seq), truth) {
            fig.lost_in_crash += 1;
        } else {
            fig.misses.push(format!("replica {sender} delivered a conflicting share for block {seq}; not found"));
        }
    }
    // Honest logs verify cleanly.
    for c in &report.consenters {
        if honest.contains(&c.consenter) && (!c.problems.is_empty() || !c.gaps.is_empty() || c.truncated) {
            fig.misses
                .push(format!("honest replica {}'s log has problems: {:?} {:?}", c.consenter, c.problems, c.gaps));
        }
    }
    fig
}

/// The end line an export of the whole log carries, signed by its owner.
fn end_line(channel: &str, id: ReplicaId, records: &[Record], keyring: &Arc<Keyring>) -> End {
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        channel: channel.to_owned(),
        consenter: id,
        certificate: String::new(),
        first_index: 0,
        records: records.len() as u64,
    };
    let head = records.last().map_or([0; 32], Record::hash);
    let length = records.len() as u64;
    let signature = keyring.signer(id).sign(&head_signing_bytes(&header, length, &head));
    End { log_length: length, head_hash: hex::encode(head), signature: hex::encode(signature) }
}

//! The offline verifier of vote logs: signatures, hash chains, gaps and
//! truncation of each log; block certificates against the logs; and,
//! across all logs and blocks, equivocation — two signed statements of one
//! consenter for the same slot with different values.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::evidence::{Claim, EvidenceFile, Slot, Statement};
use super::format::{head_signing_bytes, LogFile};
use super::record::{Entry, Record};
use crate::consensus::{Digest, Epoch, ReplicaId, Seq};

/// The consenters' keys, from the channel configuration(s) the auditor
/// trusts (the node uses certificates; the simulator its own keys).
pub trait Keys {
    /// `consenter` is a consenter of `channel` in the configurations given.
    fn knows(&self, channel: &str, consenter: ReplicaId) -> bool;
    /// `signature` over `message` verifies with a key of `consenter`.
    fn verify(&self, channel: &str, consenter: ReplicaId, message: &[u8], signature: &[u8]) -> bool;
    /// Distinct signers a block certificate needs.
    fn quorum(&self, channel: &str) -> usize;
    /// The certificate a log or an evidence file carries is the one the
    /// configuration pins for `consenter`.
    fn check_certificate(&self, channel: &str, consenter: ReplicaId, pem: &str) -> Result<(), String>;
    /// The pinned certificate (PEM), for evidence files.
    fn certificate(&self, channel: &str, consenter: ReplicaId) -> String;
}

/// A block's certificate, as the auditor has it.
#[derive(Clone, Debug)]
pub struct BlockVotes {
    pub source: String,
    pub channel: String,
    pub number: Seq,
    pub header_hash: Digest,
    pub epoch: Epoch,
    pub shares: Vec<(ReplicaId, Vec<u8>)>,
}

/// A run of missing records.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Gap {
    pub first_missing: u64,
    pub last_missing: u64,
}

/// What the verifier found about one consenter.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConsenterReport {
    pub channel: String,
    pub consenter: ReplicaId,
    pub logs: Vec<String>,
    pub records: u64,
    pub valid_records: u64,
    /// Distinct block heights with a valid record.
    pub blocks_voted: u64,
    pub first_block: Option<Seq>,
    pub last_block: Option<Seq>,
    pub view_changes: u64,
    pub observed_shares: u64,
    pub gaps: Vec<Gap>,
    pub truncated: bool,
    /// Anything wrong with its logs (each a sentence).
    pub problems: Vec<String>,
    /// Evidence files naming it.
    pub equivocations: u64,
}

/// The verifier's findings.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub consenters: Vec<ConsenterReport>,
    pub blocks_checked: u64,
    /// Blocks whose certificate holds a quorum of valid shares.
    pub blocks_certified: u64,
    /// Blocks for which the logs given hold a quorum of matching votes.
    pub blocks_with_logged_quorum: u64,
    pub problems: Vec<String>,
    pub evidence: Vec<EvidenceFile>,
}

impl Report {
    /// Nothing wrong and no equivocation.
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
            && self.evidence.is_empty()
            && self.consenters.iter().all(|c| c.problems.is_empty() && c.gaps.is_empty() && !c.truncated)
    }

    /// The consenters some evidence accuses.
    pub fn accused(&self) -> BTreeSet<(String, ReplicaId)> {
        self.evidence.iter().map(|e| (e.channel.clone(), e.consenter)).collect()
    }

    /// A readable report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.consenters {
            let range = match (c.first_block, c.last_block) {
                (Some(a), Some(b)) => format!(" (blocks {a}..={b})"),
                _ => String::new(),
            };
            s += &format!(
                "consenter {} of {}: {} records ({} valid), {} blocks voted{range}, {} view changes, {} observed shares, {} gaps{}, {} problems, {} equivocations\n",
                c.consenter,
                c.channel,
                c.records,
                c.valid_records,
                c.blocks_voted,
                c.view_changes,
                c.observed_shares,
                c.gaps.len(),
                if c.truncated { ", TRUNCATED" } else { "" },
                c.problems.len(),
                c.equivocations
            );
            for g in &c.gaps {
                s += &format!("  gap: records {}..={} missing (removed?)\n", g.first_missing, g.last_missing);
            }
            for p in &c.problems {
                s += &format!("  problem: {p}\n");
            }
        }
        if self.blocks_checked > 0 {
            s += &format!(
                "blocks: {} checked, {} with a valid certificate, {} with a quorum of matching logged votes\n",
                self.blocks_checked, self.blocks_certified, self.blocks_with_logged_quorum
            );
        }
        for p in &self.problems {
            s += &format!("problem: {p}\n");
        }
        for e in &self.evidence {
            s += &format!("EQUIVOCATION: {}\n", e.summary);
        }
        s += &format!(
            "audit: logs={} consenters={} problems={} equivocations={} verdict={}\n",
            self.consenters.iter().map(|c| c.logs.len()).sum::<usize>(),
            self.consenters.len(),
            self.problems.len() + self.consenters.iter().map(|c| c.problems.len() + c.gaps.len()).sum::<usize>(),
            self.evidence.len(),
            if self.clean() { "clean" } else { "FINDINGS" }
        );
        s
    }
}

/// Statements gathered per (channel, signer, slot): the first statement
/// seen for each value (bounded by the inputs).
type Ledger = BTreeMap<(String, ReplicaId, Slot), BTreeMap<Digest, Statement>>;

/// Verifies the logs (and blocks) against `keys`.
pub fn verify(keys: &dyn Keys, logs: &[LogFile], blocks: &[BlockVotes]) -> Report {
    let mut report = Report::default();
    let mut per: BTreeMap<(String, ReplicaId), ConsenterReport> = BTreeMap::new();
    let mut ledger: Ledger = BTreeMap::new();
    // (channel, consenter) -> block heights its valid records vote for, and
    // the height range its logs cover.
    let mut voted: BTreeMap<(String, ReplicaId), BTreeMap<Seq, Digest>> = BTreeMap::new();
    let mut covered: BTreeMap<(String, ReplicaId), (Seq, Seq)> = BTreeMap::new();
    for log in logs {
        let key = (log.header.channel.clone(), log.header.consenter);
        let c = per.entry(key.clone()).or_insert_with(|| ConsenterReport {
            channel: key.0.clone(),
            consenter: key.1,
            ..Default::default()
        });
        c.logs.push(log.source.clone());
        check_log(keys, log, c, &mut ledger, voted.entry(key.clone()).or_default(), &mut report.problems);
        if let Some((lo, hi)) = log_heights(log) {
            let e = covered.entry(key).or_insert((lo, hi));
            *e = (e.0.min(lo), e.1.max(hi));
        }
    }
    // Two exports of one consenter's log must agree where they overlap: a
    // different record at the same index means the log was rolled back
    // (a data folder restored from an older copy) or forked.
    let mut seen: BTreeMap<(String, ReplicaId, u64), (Digest, String)> = BTreeMap::new();
    for log in logs {
        for (_, r) in &log.records {
            let key = (r.channel.clone(), r.consenter, r.index);
            match seen.get(&key) {
                Some((h, other)) if *h != r.hash() => {
                    if let Some(c) = per.get_mut(&(r.channel.clone(), r.consenter)) {
                        c.problems.push(format!(
                            "record {} differs between {other} and {}: the log was rolled back or forked (a data folder restored from an older copy?)",
                            r.index, log.source
                        ));
                    }
                }
                Some(_) => {}
                None => {
                    seen.insert(key, (r.hash(), log.source.clone()));
                }
            }
        }
    }
    for b in blocks {
        check_block(keys, b, &mut report, &mut ledger, &voted, &covered, &mut per);
    }
    for ((channel, signer, slot), values) in &ledger {
        if values.len() < 2 {
            continue;
        }
        let statements: Vec<Statement> = values.values().take(2).cloned().collect();
        let e = EvidenceFile::new(channel, *signer, *slot, keys.certificate(channel, *signer), statements);
        per.entry((channel.clone(), *signer))
            .or_insert_with(|| ConsenterReport { channel: channel.clone(), consenter: *signer, ..Default::default() })
            .equivocations += 1;
        report.evidence.push(e);
    }
    // Blocks voted: distinct heights (a consenter that left and rejoined a
    // channel signs the blocks it fetches again, with the same hash).
    for (key, c) in per.iter_mut() {
        c.blocks_voted = voted.get(key).map_or(0, |v| v.len() as u64);
    }
    report.consenters = per.into_values().collect();
    report
}

fn log_heights(log: &LogFile) -> Option<(Seq, Seq)> {
    let heights = log.records.iter().filter_map(|(_, r)| match r.entry {
        Entry::Block { seq, .. } => Some(seq),
        Entry::ViewChange { .. } | Entry::Observed(_) => None,
    });
    heights.fold(None, |acc, h| Some(acc.map_or((h, h), |(a, b): (Seq, Seq)| (a.min(h), b.max(h)))))
}

fn add(ledger: &mut Ledger, claim: Claim, statement: Statement) {
    ledger.entry((claim.channel, claim.signer, claim.slot)).or_default().entry(claim.value).or_insert(statement);
}

/// One log: header, each record's signature and link, gaps, the end line.
fn check_log(
    keys: &dyn Keys,
    log: &LogFile,
    c: &mut ConsenterReport,
    ledger: &mut Ledger,
    voted: &mut BTreeMap<Seq, Digest>,
    general: &mut Vec<String>,
) {
    let h = &log.header;
    let src = &log.source;
    if !keys.knows(&h.channel, h.consenter) {
        c.problems.push(format!(
            "{src}: consenter {} is not a consenter of channel {} in the configuration given: its records cannot be checked",
            h.consenter, h.channel
        ));
        return;
    }
    if let Err(why) = keys.check_certificate(&h.channel, h.consenter, &h.certificate) {
        c.problems.push(format!("{src}: header certificate: {why}"));
    }
    for (line, why) in &log.bad_lines {
        c.problems.push(format!("{src}: line {line} is not a valid record ({why}): altered?"));
    }
    c.records += log.records.len() as u64;
    let mut prev: Option<&Record> = None;
    for (line, r) in &log.records {
        let signed = r.signing_bytes();
        let valid = keys.verify(&r.channel, r.consenter, &signed, &r.signature);
        if !valid {
            c.problems
                .push(format!("{src}: record {} (line {line}) has an invalid signature: forged or altered", r.index));
        }
        match prev {
            None if r.index == 0 && r.prev != [0; 32] => {
                c.problems.push(format!("{src}: record 0 (line {line}) does not start the chain"));
            }
            None if r.index != h.first_index => c.problems.push(format!(
                "{src}: the first record is {} but the header says {}: records removed at the start?",
                r.index, h.first_index
            )),
            None => {}
            Some(p) if r.index <= p.index => c.problems.push(format!(
                "{src}: record {} (line {line}) comes after record {}: reordered or duplicated",
                r.index, p.index
            )),
            Some(p) => {
                if r.index > p.index + 1 {
                    c.gaps.push(super::verify::Gap { first_missing: p.index + 1, last_missing: r.index - 1 });
                } else if r.prev != p.hash() {
                    c.problems.push(format!(
                        "{src}: record {} (line {line}) does not chain to record {}: altered, replaced or reordered",
                        r.index, p.index
                    ));
                }
            }
        }
        prev = Some(r);
        if !valid {
            continue;
        }
        c.valid_records += 1;
        let statement = Statement::from_record(r, src);
        match &r.entry {
            Entry::Block { epoch, seq, header_hash, .. } => {
                c.first_block = Some(c.first_block.map_or(*seq, |b| b.min(*seq)));
                c.last_block = Some(c.last_block.map_or(*seq, |b| b.max(*seq)));
                voted.insert(*seq, *header_hash);
                let claim = Claim {
                    channel: r.channel.clone(),
                    signer: r.consenter,
                    slot: Slot::Block { epoch: *epoch, seq: *seq },
                    value: *header_hash,
                };
                add(ledger, claim, statement);
            }
            Entry::ViewChange { epoch, view, digest, .. } => {
                c.view_changes += 1;
                let claim = Claim {
                    channel: r.channel.clone(),
                    signer: r.consenter,
                    slot: Slot::ViewChange { epoch: *epoch, view: *view },
                    value: *digest,
                };
                add(ledger, claim, statement);
            }
            Entry::Observed(s) => {
                c.observed_shares += 1;
                let at = format!("{src} (record {} of consenter {})", r.index, r.consenter);
                let share = Statement::share(&r.channel, s.signer, s.epoch, s.seq, &s.header_hash, &s.signature, &at);
                match share.check(keys) {
                    Ok(claim) => add(ledger, claim, share),
                    Err(why) => general.push(format!("{at}: observed share: {why}")),
                }
            }
        }
    }
    let last = log.records.last().map(|(_, r)| r);
    let count = log.records.len() as u64;
    match &log.end {
        None => {
            c.truncated = true;
            c.problems.push(format!("{src}: no end line: the file is truncated"));
        }
        Some(end) => {
            let head: Option<Digest> = hex::decode(&end.head_hash).ok().and_then(|v| v.try_into().ok());
            let signature = hex::decode(&end.signature).unwrap_or_default();
            let signed = match head {
                Some(head) if !signature.is_empty() => {
                    let ok =
                        keys.verify(&h.channel, h.consenter, &head_signing_bytes(h, end.log_length, &head), &signature);
                    if !ok {
                        c.problems
                            .push(format!("{src}: the end line's signature is invalid: header or end line altered"));
                    }
                    ok
                }
                Some(_) => {
                    c.problems.push(format!(
                        "{src}: the end line is not signed (exported without the node's key): a truncated end cannot be detected"
                    ));
                    false
                }
                None => {
                    c.problems.push(format!("{src}: the end line's head hash is not 32 bytes of hex"));
                    false
                }
            };
            if count != h.records || last.is_some_and(|r| r.index + 1 != h.first_index + h.records) {
                c.truncated = true;
                c.problems.push(format!(
                    "{src}: {count} records read, the {} header says {} from index {}: records removed or the file truncated",
                    if signed { "signed" } else { "unsigned" },
                    h.records,
                    h.first_index
                ));
            }
            if let (Some(r), Some(head)) = (last, head) {
                if r.index + 1 == end.log_length && r.hash() != head {
                    c.problems.push(format!("{src}: the last record is not the log head the node signed: altered"));
                }
            }
        }
    }
}

/// One block: its certificate, and the logged votes that match it.
fn check_block(
    keys: &dyn Keys,
    b: &BlockVotes,
    report: &mut Report,
    ledger: &mut Ledger,
    voted: &BTreeMap<(String, ReplicaId), BTreeMap<Seq, Digest>>,
    covered: &BTreeMap<(String, ReplicaId), (Seq, Seq)>,
    per: &mut BTreeMap<(String, ReplicaId), ConsenterReport>,
) {
    report.blocks_checked += 1;
    let mut valid = BTreeSet::new();
    for (signer, sig) in &b.shares {
        let at = format!("{} (certificate of block {})", b.source, b.number);
        let s = Statement::share(&b.channel, *signer, b.epoch, b.number, &b.header_hash, sig, &at);
        match s.check(keys) {
            Ok(claim) => {
                valid.insert(*signer);
                add(ledger, claim, s);
            }
            Err(why) => report.problems.push(format!("{at}: {why}")),
        }
    }
    if valid.len() >= keys.quorum(&b.channel) {
        report.blocks_certified += 1;
    } else {
        report.problems.push(format!(
            "{}: block {} has {} valid certificate shares, a quorum is {}",
            b.source,
            b.number,
            valid.len(),
            keys.quorum(&b.channel)
        ));
    }
    let mut logged = 0;
    for signer in &valid {
        let key = (b.channel.clone(), *signer);
        match voted.get(&key).and_then(|v| v.get(&b.number)) {
            Some(h) if *h == b.header_hash => logged += 1,
            Some(_) => {} // a different hash: the equivocation is reported.
            None => {
                if covered.get(&key).is_some_and(|(lo, hi)| *lo <= b.number && b.number <= *hi) {
                    if let Some(c) = per.get_mut(&key) {
                        c.problems.push(format!(
                            "its share is in the certificate of block {} but its log, which covers blocks {}..={}, has no record of it: removed?",
                            b.number,
                            covered[&key].0,
                            covered[&key].1
                        ));
                    }
                }
            }
        }
    }
    if logged >= keys.quorum(&b.channel) {
        report.blocks_with_logged_quorum += 1;
    }
}

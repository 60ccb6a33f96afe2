//! Equivocation evidence: two signed statements of one consenter that
//! contradict each other, in a self-contained file that
//! `orderer audit check-evidence` verifies with the CA roots and the
//! channel configuration alone.
//!
//! A statement is either a vote-log record (signed over
//! [`Record::signing_bytes`]) or a block-certificate share (signed over
//! `channels::block::certificate_signing_bytes`). Both name the channel,
//! the epoch and the height (or the view); two of them by the same
//! consenter for the same (channel, epoch, seq) with different header
//! hashes — or for the same (channel, epoch, view) with different view
//! changes — are proof that this consenter equivocated.

use serde::{Deserialize, Serialize};

use super::format::RecordLine;
use super::record::{Entry, Record};
use super::verify::Keys;
use crate::consensus::{Digest, Epoch, ReplicaId, Seq, View};

pub const EVIDENCE_FORMAT: &str = "bftorderer-equivocation-evidence";
pub const EVIDENCE_VERSION: u32 = 1;
/// Most statements one evidence file may carry.
pub const STATEMENTS_MAX: usize = 16;

/// One signed statement of a consenter.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Statement {
    /// A record of the consenter's own vote log.
    VoteLogRecord { channel: String, consenter: ReplicaId, record: RecordLine, found_in: String },
    /// The consenter's block-certificate share (from a block's certificate
    /// or observed by another consenter and kept in its log).
    CertificateShare {
        channel: String,
        signer: ReplicaId,
        epoch: Epoch,
        seq: Seq,
        header_hash: String,
        signature: String,
        found_in: String,
    },
}

/// What a statement commits its signer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Slot {
    /// The block at `seq`: the value is its header hash.
    Block { epoch: Epoch, seq: Seq },
    /// The view change for `view`: the value is its digest.
    ViewChange { epoch: Epoch, view: View },
}

/// A checked statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub channel: String,
    pub signer: ReplicaId,
    pub slot: Slot,
    pub value: Digest,
}

impl Statement {
    pub fn from_record(record: &Record, found_in: &str) -> Self {
        Statement::VoteLogRecord {
            channel: record.channel.clone(),
            consenter: record.consenter,
            record: RecordLine::from_record(record),
            found_in: found_in.to_owned(),
        }
    }

    pub fn share(
        channel: &str,
        signer: ReplicaId,
        epoch: Epoch,
        seq: Seq,
        hash: &Digest,
        sig: &[u8],
        at: &str,
    ) -> Self {
        Statement::CertificateShare {
            channel: channel.to_owned(),
            signer,
            epoch,
            seq,
            header_hash: hex::encode(hash),
            signature: hex::encode(sig),
            found_in: at.to_owned(),
        }
    }

    /// Checks the signature with the signer's key from the configuration
    /// and returns what the statement commits the signer to. Observed
    /// shares inside a record are not claims of the record's signer.
    pub fn check(&self, keys: &dyn Keys) -> Result<Claim, String> {
        match self {
            Statement::VoteLogRecord { channel, consenter, record, .. } => {
                let r = record.to_record(channel, *consenter)?;
                if !keys.verify(channel, *consenter, &r.signing_bytes(), &r.signature) {
                    return Err(format!(
                        "the vote-log record {} of consenter {consenter} does not verify with its key",
                        r.index
                    ));
                }
                let (slot, value) = match r.entry {
                    Entry::Block { epoch, seq, header_hash, .. } => (Slot::Block { epoch, seq }, header_hash),
                    Entry::ViewChange { epoch, view, digest, .. } => (Slot::ViewChange { epoch, view }, digest),
                    Entry::Observed(_) => {
                        return Err("an observed-share record states nothing about its own signer".into())
                    }
                };
                Ok(Claim { channel: channel.clone(), signer: *consenter, slot, value })
            }
            Statement::CertificateShare { channel, signer, epoch, seq, header_hash, signature, .. } => {
                let hash: Digest = hex::decode(header_hash)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .ok_or("header_hash is not 32 bytes of hex")?;
                let sig = hex::decode(signature).map_err(|e| format!("signature is not hex: {e}"))?;
                let bytes = channels::block::certificate_signing_bytes(channel, *epoch, *seq, &hash);
                if !keys.verify(channel, *signer, &bytes, &sig) {
                    return Err(format!(
                        "the certificate share of consenter {signer} for block {seq} does not verify with its key"
                    ));
                }
                Ok(Claim {
                    channel: channel.clone(),
                    signer: *signer,
                    slot: Slot::Block { epoch: *epoch, seq: *seq },
                    value: hash,
                })
            }
        }
    }
}

/// A self-contained proof of equivocation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EvidenceFile {
    pub format: String,
    pub version: u32,
    /// "block" or "view-change".
    pub kind: String,
    pub channel: String,
    pub consenter: ReplicaId,
    pub epoch: Epoch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<View>,
    /// The accused consenter's identity certificate, as the channel
    /// configuration pins it (for the reader; checks use the configuration).
    pub certificate: String,
    pub summary: String,
    pub statements: Vec<Statement>,
}

impl EvidenceFile {
    pub fn new(
        channel: &str,
        consenter: ReplicaId,
        slot: Slot,
        certificate: String,
        statements: Vec<Statement>,
    ) -> Self {
        let summary = summary(channel, consenter, slot);
        let (kind, epoch, seq, view) = match slot {
            Slot::Block { epoch, seq } => ("block", epoch, Some(seq), None),
            Slot::ViewChange { epoch, view } => ("view-change", epoch, None, Some(view)),
        };
        Self {
            format: EVIDENCE_FORMAT.into(),
            version: EVIDENCE_VERSION,
            kind: kind.into(),
            channel: channel.to_owned(),
            consenter,
            epoch,
            seq,
            view,
            certificate,
            summary,
            statements,
        }
    }

    /// A file name for it: `equivocation-<channel>-c<id>-<kind>-<n>.json`.
    pub fn file_name(&self) -> String {
        let n = self.seq.or(self.view).unwrap_or_default();
        format!("equivocation-{}-c{}-{}-{n}.json", self.channel, self.consenter, self.kind)
    }
}

/// The verdict, in words.
pub fn summary(channel: &str, consenter: ReplicaId, slot: Slot) -> String {
    match slot {
        Slot::Block { epoch, seq } => format!(
            "consenter {consenter} signed two different blocks at height {seq} of channel {channel} (epoch {epoch})"
        ),
        Slot::ViewChange { epoch, view } => format!(
            "consenter {consenter} signed two different view changes for view {view} of channel {channel} (epoch {epoch})"
        ),
    }
}

/// Verifies an evidence file on its own: every statement signed by the
/// accused consenter (keys from the configuration, not from the file), all
/// about the same slot, at least two different values. Returns the verdict.
pub fn check_evidence(e: &EvidenceFile, keys: &dyn Keys) -> Result<String, String> {
    if e.format != EVIDENCE_FORMAT || e.version != EVIDENCE_VERSION {
        return Err(format!(
            "not an evidence file of version {EVIDENCE_VERSION} (format {:?}, version {})",
            e.format, e.version
        ));
    }
    if !keys.knows(&e.channel, e.consenter) {
        return Err(format!(
            "consenter {} is not a consenter of channel {} in the configuration given (give the configuration of that channel and epoch with --config)",
            e.consenter, e.channel
        ));
    }
    keys.check_certificate(&e.channel, e.consenter, &e.certificate)?;
    if e.statements.len() < 2 || e.statements.len() > STATEMENTS_MAX {
        return Err(format!("{} statements: evidence needs 2 to {STATEMENTS_MAX}", e.statements.len()));
    }
    let mut claims = Vec::new();
    for (i, s) in e.statements.iter().enumerate() {
        let c = s.check(keys).map_err(|why| format!("statement {}: {why}", i + 1))?;
        if c.channel != e.channel || c.signer != e.consenter {
            return Err(format!(
                "statement {} is by consenter {} of channel {}, not by the accused",
                i + 1,
                c.signer,
                c.channel
            ));
        }
        claims.push(c);
    }
    let slot = claims[0].slot;
    if claims.iter().any(|c| c.slot != slot) {
        return Err("the statements are about different heights, views or epochs: no contradiction".into());
    }
    let expected = match slot {
        Slot::Block { epoch, seq } => e.kind == "block" && e.epoch == epoch && e.seq == Some(seq),
        Slot::ViewChange { epoch, view } => e.kind == "view-change" && e.epoch == epoch && e.view == Some(view),
    };
    if !expected {
        return Err("the file's kind, epoch, seq or view do not match its statements".into());
    }
    if claims.iter().all(|c| c.value == claims[0].value) {
        return Err("all statements name the same value: no contradiction".into());
    }
    Ok(summary(&e.channel, e.consenter, slot))
}

//! The vote-log record: canonical bytes, signature, hash chain.
//!
//! A record is the statement "consenter `consenter` of `channel` did this",
//! signed with its identity key over
//!
//! ```text
//! "bftorderer/vote-log/v1\0" ‖ channel ‖ consenter ‖ index ‖ prev ‖ kind ‖ fields
//! ```
//!
//! (`consensus::codec` encoding: integers big-endian, `channel` with a u32
//! length). `prev` is the hash (SHA-256 of the signed bytes) of the record
//! at `index - 1`, all zeros for the first record: removing, altering or
//! reordering a record breaks the chain; a forged record fails its
//! signature.

use std::collections::{BTreeSet, VecDeque};

use sha2::{Digest as _, Sha256};

use crate::consensus::codec::{DecodeError, Reader, Writer};
use crate::consensus::{Crypto, Digest, Epoch, ReplicaId, Seq, SignedShare, View};

/// Domain separation of vote-log records.
pub const RECORD_DOMAIN: &[u8] = b"bftorderer/vote-log/v1\0";
/// Longest channel name (as the store's table names allow).
pub const CHANNEL_BYTES_MAX: usize = 249;
/// Longest signature accepted (ECDSA DER and Ed25519 are far below).
pub const SIGNATURE_BYTES_MAX: usize = 512;
/// Observed shares remembered per log to skip repeats (a resent share is
/// logged once).
const OBSERVED_REMEMBERED_MAX: usize = 4096;

/// What a record states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The consenter signed its certificate share of block `seq` with
    /// header hash `header_hash`, in `view`.
    Block { epoch: Epoch, view: View, seq: Seq, header_hash: Digest },
    /// The consenter sent a signed view change for `view`; `digest` is the
    /// hash the core voted for it (SHA-256 of its encoding); `height` is the
    /// block height the consenter had executed.
    ViewChange { epoch: Epoch, view: View, height: Seq, digest: Digest },
    /// A validly signed certificate share of ANOTHER consenter that
    /// contradicted the block this consenter executed or an earlier share
    /// of that consenter: kept as evidence, checkable on its own.
    Observed(SignedShare),
}

impl Entry {
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Block { .. } => "block",
            Entry::ViewChange { .. } => "view-change",
            Entry::Observed(_) => "observed-share",
        }
    }

    fn tag(&self) -> u8 {
        match self {
            Entry::Block { .. } => 1,
            Entry::ViewChange { .. } => 2,
            Entry::Observed(_) => 3,
        }
    }

    /// The block height the entry belongs to (for range exports).
    pub fn height(&self) -> Seq {
        match self {
            Entry::Block { seq, .. } => *seq,
            Entry::ViewChange { height, .. } => *height,
            Entry::Observed(s) => s.seq,
        }
    }
}

/// One signed record of a consenter's vote log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub channel: String,
    pub consenter: ReplicaId,
    pub index: u64,
    pub prev: Digest,
    pub entry: Entry,
    pub signature: Vec<u8>,
}

impl Record {
    /// The canonical bytes the consenter signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(160);
        w.raw(RECORD_DOMAIN)
            .bytes(self.channel.as_bytes())
            .u32(self.consenter)
            .u64(self.index)
            .digest(&self.prev)
            .u8(self.entry.tag());
        match &self.entry {
            Entry::Block { epoch, view, seq, header_hash } => {
                w.u64(*epoch).u64(*view).u64(*seq).digest(header_hash);
            }
            Entry::ViewChange { epoch, view, height, digest } => {
                w.u64(*epoch).u64(*view).u64(*height).digest(digest);
            }
            Entry::Observed(s) => {
                w.u32(s.signer).u64(s.epoch).u64(s.seq).digest(&s.header_hash).bytes(&s.signature);
            }
        }
        w.finish()
    }

    /// The hash the next record chains to: SHA-256 of the signed bytes.
    pub fn hash(&self) -> Digest {
        Sha256::digest(self.signing_bytes()).into()
    }

    /// Stored form: signed bytes and signature, each length-prefixed.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(&self.signing_bytes()).bytes(&self.signature);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let signed = r.bytes("vote-log record", 4096)?;
        let signature = r.bytes("signature", SIGNATURE_BYTES_MAX)?;
        r.finish()?;
        let mut record = Self::decode_signed(&signed)?;
        record.signature = signature;
        Ok(record)
    }

    /// Parses signed bytes back into a record (without its signature).
    pub fn decode_signed(signed: &[u8]) -> Result<Self, DecodeError> {
        let body = signed.strip_prefix(RECORD_DOMAIN).ok_or(DecodeError::Invalid { what: "vote-log domain" })?;
        let mut r = Reader::new(body);
        let channel = String::from_utf8(r.bytes("channel", CHANNEL_BYTES_MAX)?)
            .map_err(|_| DecodeError::Invalid { what: "channel name" })?;
        let consenter = r.u32()?;
        let index = r.u64()?;
        let prev = r.digest()?;
        let entry = match r.u8()? {
            1 => Entry::Block { epoch: r.u64()?, view: r.u64()?, seq: r.u64()?, header_hash: r.digest()? },
            2 => Entry::ViewChange { epoch: r.u64()?, view: r.u64()?, height: r.u64()?, digest: r.digest()? },
            3 => Entry::Observed(SignedShare {
                signer: r.u32()?,
                epoch: r.u64()?,
                seq: r.u64()?,
                header_hash: r.digest()?,
                signature: r.bytes("share signature", SIGNATURE_BYTES_MAX)?,
            }),
            tag => return Err(DecodeError::UnknownTag { what: "vote-log entry", tag }),
        };
        r.finish()?;
        Ok(Record { channel, consenter, index, prev, entry, signature: Vec::new() })
    }
}

/// Appends to one consenter's log of one channel: numbers, chains and signs
/// records. The caller stores them in the same transaction as the votes
/// they record, before those votes leave the node.
pub struct LogWriter {
    channel: String,
    consenter: ReplicaId,
    next_index: u64,
    head: Digest,
    /// Observed shares already logged (bounded, oldest forgotten).
    observed: BTreeSet<(ReplicaId, Seq, Digest)>,
    observed_order: VecDeque<(ReplicaId, Seq, Digest)>,
}

impl LogWriter {
    /// Continues after `last`, the newest stored record (none: a new log).
    pub fn resume(channel: &str, consenter: ReplicaId, last: Option<&Record>) -> Self {
        let (next_index, head) = match last {
            Some(r) => (r.index + 1, r.hash()),
            None => (0, [0; 32]),
        };
        Self {
            channel: channel.to_owned(),
            consenter,
            next_index,
            head,
            observed: BTreeSet::new(),
            observed_order: VecDeque::new(),
        }
    }

    /// Signs and chains the next record.
    pub fn append(&mut self, entry: Entry, crypto: &dyn Crypto) -> Record {
        let mut record = Record {
            channel: self.channel.clone(),
            consenter: self.consenter,
            index: self.next_index,
            prev: self.head,
            entry,
            signature: Vec::new(),
        };
        record.signature = crypto.sign(&record.signing_bytes());
        self.next_index += 1;
        self.head = record.hash();
        record
    }

    /// An observed share, unless it was logged already.
    pub fn observe(&mut self, share: SignedShare, crypto: &dyn Crypto) -> Option<Record> {
        let key = (share.signer, share.seq, share.header_hash);
        if self.observed.contains(&key) {
            return None;
        }
        if self.observed_order.len() >= OBSERVED_REMEMBERED_MAX {
            if let Some(old) = self.observed_order.pop_front() {
                self.observed.remove(&old);
            }
        }
        self.observed.insert(key);
        self.observed_order.push_back(key);
        assert!(self.observed.len() <= OBSERVED_REMEMBERED_MAX);
        Some(self.append(Entry::Observed(share), crypto))
    }

    /// The index the next record will get.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }
}

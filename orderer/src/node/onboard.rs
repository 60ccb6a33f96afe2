//! Onboarding: a consenter added to a channel by reconfiguration catches
//! up from the genesis block before it takes part.
//!
//! The node is joined with the channel's genesis block, like any other; it
//! is not among the genesis consenters. It fetches blocks from the
//! consenters (the cluster links' state-transfer frames; a consenter
//! accepts its connection once the configuration that adds it is in force
//! there) and replays the consenters' own epoch rules over them
//! ([`LedgerReplay`]): each block must extend the chain and carry a quorum
//! certificate of the consenters of its epoch, under the configuration and
//! epoch number in force at its height; key announcements and
//! reconfigurations move epochs exactly where the consensus core moves
//! them. The replay stores every block and every epoch record it passes.
//! Once it reaches the last block of the epoch before the first
//! configuration that lists this node, the node holds what every other
//! consenter holds at that point — the ledger, the next epoch's
//! configuration, MAC public keys, base block and its hash — and starts its
//! replica there like after a restart. Nothing is trusted but the genesis
//! block.

use std::collections::{BTreeMap, BTreeSet};

use ca_tools::PublicKey;
use channels::announcement::{Announced, AnnouncementVerifier};
use channels::config_update::ConfigUpdateVerifier;
use channels::ChannelConfig;

use super::epoch::{next_public_keys, EpochRecord, Reconfigured};
use super::identity::{self, parse_tx_id};
use super::server::FIRST_EPOCH;
use crate::consensus::{epoch_end_after, Block, Certificate, CertifiedBlock, Digest, ReplicaId, Seq, TxId};
use crate::storage::WriteBatch;

/// The consenters' epoch rules replayed over a ledger read in order.
pub struct LedgerReplay {
    me: ReplicaId,
    config: ChannelConfig,
    keys: BTreeMap<ReplicaId, PublicKey>,
    verifier: AnnouncementVerifier,
    updates: ConfigUpdateVerifier,
    /// The epoch in force and the block it started after.
    epoch: u64,
    public_keys: BTreeMap<ReplicaId, [u8; 32]>,
    /// The last block replayed, and its header hash.
    height: Seq,
    last_hash: Digest,
    /// Announcements for the next epoch so far (members, first each).
    announced: Vec<(Seq, Announced)>,
    announcers: BTreeSet<ReplicaId>,
    reconfigured: Option<Reconfigured>,
    end: Option<Seq>,
    /// The record of the first epoch whose configuration lists this node.
    member: Option<EpochRecord>,
}

/// What replaying some blocks produced, for the store.
#[derive(Default)]
pub struct Replayed {
    pub batch: WriteBatch,
    /// Epoch records to store after the blocks, in order.
    pub epochs: Vec<EpochRecord>,
}

impl LedgerReplay {
    /// From the genesis block (its configuration and header hash).
    pub fn new(me: ReplicaId, genesis: &ChannelConfig, genesis_hash: Digest) -> Result<Self, String> {
        let first = EpochRecord::first(genesis, genesis_hash).map_err(|e| e.to_string())?;
        let mut replay = Self {
            me,
            config: genesis.clone(),
            keys: BTreeMap::new(),
            verifier: AnnouncementVerifier::new(genesis),
            updates: ConfigUpdateVerifier::new(genesis).map_err(|e| e.to_string())?,
            epoch: FIRST_EPOCH,
            public_keys: first.public_keys,
            height: 0,
            last_hash: genesis_hash,
            announced: Vec::new(),
            announcers: BTreeSet::new(),
            reconfigured: None,
            end: None,
            member: None,
        };
        replay.keys = identity_keys(genesis)?;
        if genesis.consenter(me).is_some() {
            replay.member = Some(EpochRecord::first(genesis, genesis_hash).map_err(|e| e.to_string())?);
        }
        Ok(replay)
    }

    pub fn height(&self) -> Seq {
        self.height
    }

    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The record of the epoch in which this node becomes a consenter, once
    /// the replay reached its base.
    pub fn member(&self) -> Option<&EpochRecord> {
        self.member.as_ref()
    }

    /// Offers fetched blocks, in order. Blocks at or below the height are
    /// skipped; a block must extend the chain; a block without a
    /// certificate is applied only when a later block of the same offer
    /// carries a valid one (its header hash fixes the earlier ones); a
    /// certificate that does not verify ends the offer. Stops at the base
    /// of this node's first epoch as a consenter.
    pub fn offer(&mut self, blocks: Vec<CertifiedBlock>, out: &mut Replayed) -> Result<(), String> {
        let mut run: Vec<CertifiedBlock> = Vec::new();
        let (mut next, mut last_hash) = (self.height + 1, self.last_hash);
        for cb in blocks {
            if self.member.is_some() {
                break;
            }
            let b = &cb.block;
            if b.number < next {
                continue;
            }
            let data_hash = channels::block::data_hash(&b.envelopes);
            let header_hash = channels::block::header_hash(b.number, &last_hash, &data_hash);
            if b.number != next
                || b.previous_hash != last_hash
                || b.data_hash != data_hash
                || b.header_hash != header_hash
            {
                return Err(format!("block {} does not extend the chain at height {}", b.number, next - 1));
            }
            let certified = !cb.certificate.signatures.is_empty();
            if certified {
                self.check_certificate(&cb.certificate, header_hash)?;
            }
            next += 1;
            last_hash = header_hash;
            run.push(cb);
            if certified {
                for cb in std::mem::take(&mut run) {
                    self.apply(cb, out);
                    if self.member.is_some() {
                        break;
                    }
                }
                // An epoch switch changes the consenters: certificates of
                // the rest of the offer are checked under the new ones.
                (next, last_hash) = (self.height + 1, self.last_hash);
            }
        }
        Ok(())
    }

    /// A quorum of distinct consenters of the epoch in force, each signature
    /// valid over the certificate bytes of this channel, epoch, block.
    fn check_certificate(&self, cert: &Certificate, header_hash: Digest) -> Result<(), String> {
        if cert.header_hash != header_hash {
            return Err(format!("the certificate of block {} is for another header", cert.seq));
        }
        let bytes =
            channels::block::certificate_signing_bytes(&self.config.channel_id, self.epoch, cert.seq, &header_hash);
        let mut signers = BTreeSet::new();
        for (id, signature) in &cert.signatures {
            let key = self
                .keys
                .get(id)
                .ok_or_else(|| format!("block {}: signer {id} is not a consenter of epoch {}", cert.seq, self.epoch))?;
            if !signers.insert(*id) || key.verify(&bytes, signature).is_err() {
                return Err(format!("block {}: the signature of consenter {id} does not verify", cert.seq));
            }
        }
        if signers.len() < self.config.quorum() {
            return Err(format!(
                "block {}: {} signatures, a quorum is {}",
                cert.seq,
                signers.len(),
                self.config.quorum()
            ));
        }
        Ok(())
    }

    /// Applies one verified block: stores it, counts what moves the epoch,
    /// and switches epochs at the end of one.
    fn apply(&mut self, cb: CertifiedBlock, out: &mut Replayed) {
        let n = cb.block.number;
        assert_eq!(n, self.height + 1, "blocks replay in order");
        let next = self.epoch + 1;
        let k = self.config.bft.as_ref().map_or(1, |b| b.checkpoint_interval);
        for envelope in &cb.block.envelopes {
            if let Ok(a) = self.verifier.verify(envelope) {
                if a.epoch == next
                    && self.config.consenter(a.consenter).is_some()
                    && self.announcers.insert(a.consenter)
                {
                    self.announced.push((n, a));
                    if self.announcers.len() >= self.config.quorum() && self.end.is_none() {
                        self.end = Some(epoch_end_after(n, k));
                    }
                }
            } else if self.reconfigured.is_none() {
                if let Some(u) = identity::valid_reconfiguration(&self.updates, envelope) {
                    self.reconfigured = Some(Reconfigured { block: n, tx_id: u.tx_id, config: u.config });
                    self.end.get_or_insert(epoch_end_after(n, k));
                }
            }
        }
        let ids: Vec<TxId> = cb.block.envelopes.iter().filter_map(|e| tx_id(e)).collect();
        self.height = n;
        self.last_hash = cb.block.header_hash;
        if !cb.certificate.signatures.is_empty() {
            out.batch.certificates.push(cb.certificate);
        }
        out.batch.blocks.push((cb.block, ids));
        if self.end == Some(n) {
            if let Err(e) = self.switch(out) {
                tracing::error!(error = %e, block = n, "onboarding: the next epoch cannot be derived");
            }
        }
    }

    /// The epoch ends with the last block applied: the next configuration
    /// and keys, by the consenters' rule.
    fn switch(&mut self, out: &mut Replayed) -> Result<(), String> {
        let next = self.epoch + 1;
        let next_config = self.reconfigured.take().map_or_else(|| self.config.clone(), |r| r.config);
        let public_keys = next_public_keys(&self.config, &next_config, &self.public_keys, next, &self.announced)
            .map_err(|e| e.to_string())?;
        let record = EpochRecord {
            epoch: next,
            base: self.height,
            base_hash: self.last_hash,
            public_keys: public_keys.clone(),
            own_key_epoch: FIRST_EPOCH,
            config: next_config.to_canonical_bytes(),
        };
        if next_config != self.config {
            self.keys = identity_keys(&next_config)?;
            self.verifier = AnnouncementVerifier::new(&next_config);
            self.updates = ConfigUpdateVerifier::new(&next_config).map_err(|e| e.to_string())?;
        }
        if next_config.consenter(self.me).is_some() {
            self.member = Some(record.clone());
        }
        out.epochs.push(record);
        self.config = next_config;
        self.epoch = next;
        self.public_keys = public_keys;
        self.announced.clear();
        self.announcers.clear();
        self.end = None;
        Ok(())
    }
}

/// The consenters' identity keys of `config`.
fn identity_keys(config: &ChannelConfig) -> Result<BTreeMap<ReplicaId, PublicKey>, String> {
    config
        .consenters
        .iter()
        .map(|c| {
            PublicKey::from_cert(c.identity_cert.as_bytes())
                .map(|k| (c.id, k))
                .map_err(|e| format!("consenter {}'s identity certificate: {e}", c.id))
        })
        .collect()
}

fn tx_id(envelope: &[u8]) -> Option<TxId> {
    let d = channels::envelope::decode_envelope(envelope, usize::MAX).ok()?;
    parse_tx_id(&d.channel_header.tx_id)
}

/// Replays blocks already in the store (an onboarding interrupted by a
/// restart resumes from them).
pub fn replay_stored(
    replay: &mut LedgerReplay,
    blocks: impl Iterator<Item = (Block, Option<Certificate>)>,
) -> Result<(), String> {
    let blocks = blocks
        .map(|(block, certificate)| {
            let certificate = certificate.unwrap_or(Certificate {
                seq: block.number,
                header_hash: block.header_hash,
                signatures: vec![],
            });
            CertifiedBlock { block, certificate }
        })
        .collect();
    replay.offer(blocks, &mut Replayed::default())
}

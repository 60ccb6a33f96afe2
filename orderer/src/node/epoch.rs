//! Epochs on the node side: MAC-key rotation.
//!
//! The consensus core decides *when* an epoch ends (a quorum of key
//! announcements executed, then the first checkpoint a window later: see
//! `consensus::types::epoch_end_after`). This module does the rest:
//!
//! - **Trigger** ([`Rotation`]): the channel's `key_rotation` policy (every
//!   N blocks since the epoch began, every T seconds since this node saw it
//!   begin), a pending admin request, or another consenter's announcement
//!   for the next epoch in a committed block (so that one trigger anywhere
//!   makes every consenter announce).
//! - **Keys** ([`KeyFiles`]): a fresh X25519 secret per (channel, epoch),
//!   written durably (mode 0600, fsync) *before* the announcement that
//!   reveals its public half is signed and submitted; reused if it already
//!   exists, so a node that crashed after announcing announces the same key.
//! - **Key set** ([`next_key_set`]): for each consenter, the public key of
//!   its *first* valid announcement for epoch e+1 in blocks base+1..=S; a
//!   consenter that did not announce keeps the public key it used in epoch
//!   e. The epoch's pairwise MAC keys are derived from them with HKDF bound
//!   to channel, epoch and both ids, so they are fresh even for a pair of
//!   consenters neither of which announced.
//! - **Switch** ([`EpochShell::prepare_next`]): the next epoch's record
//!   (epoch, base block and its header hash, public keys, which of this
//!   node's keys is in use) is stored together with the clearing of the old
//!   epoch's consensus records, in one transaction; then the private keys no
//!   longer in use are overwritten and deleted ([`KeyFiles::erase_except`]).
//! - **Restart** ([`EpochShell::start`]): the latest epoch record (or the
//!   first epoch, from the channel configuration) and its private key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_tools::Msp;
use channels::announcement::{build_announcement, Announced, AnnouncementVerifier};
use channels::config::KeyRotation;
use channels::config_update::ConfigUpdateVerifier;
use channels::ChannelConfig;
use prost::Message;
use thiserror::Error;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};

use super::identity::{self, EnvelopeValidator, IdentityError, NodeCrypto, VerifiedCache};
use super::server::FIRST_EPOCH;
use crate::consensus::codec::{DecodeError, Reader, Writer};
use crate::consensus::{Config, Digest, MacKeys, ReplicaId, Seq};
use crate::storage::{Store, StoreError};

/// Version byte of the stored epoch record (1: without the configuration).
const RECORD_VERSION: u8 = 2;
/// Most consenters an epoch record holds (the channel configuration's bound).
const RECORD_CONSENTERS_MAX: usize = channels::config::MAX_CONSENTERS;
/// An admitted announcement not executed after this many blocks is
/// submitted again (it may have been lost with a crashed primary's pool).
const RESUBMIT_AFTER_BLOCKS: u64 = 20;
/// Key files looked at in a channel's key folder, at most.
const KEY_FILES_MAX: usize = 4096;

/// Why an epoch could not be started or switched.
#[derive(Debug, Error)]
pub enum EpochError {
    #[error("epoch key file {path}: {detail} (check the data folder's disk and permissions)")]
    KeyFile { path: String, detail: String },
    #[error("stored epoch record of channel {channel} is corrupt: {detail} (restore the data folder from a backup)")]
    Record { channel: String, detail: String },
    #[error(
        "channel {channel}: epoch {epoch} uses this node's key from epoch {key_epoch}, but {path} is missing or holds \
         another key, so the epoch's MAC keys cannot be derived: restore the file from a backup and restart the \
         node (until then this consenter cannot authenticate to the others, which carry on without it)"
    )]
    LostKey { channel: String, epoch: u64, key_epoch: u64, path: String },
    #[error(
        "block {seq} of channel {channel} is missing from the store while switching to epoch {epoch}: the store is \
         damaged; restore the data folder from a backup"
    )]
    MissingBlock { channel: String, seq: Seq, epoch: u64 },
    #[error(
        "this node is not a consenter of channel {channel} in its configuration {sequence} (a reconfiguration \
         removed it): its ledger stays in the data folder; leave the channel with the admin API to delete it"
    )]
    Retired { channel: String, sequence: u64 },
    #[error(
        "channel {channel}: configuration {sequence} pins an identity certificate for consenter {id} that matches \
         neither node.msp_dir nor node.next_msp_dir: put the new certificate and its key in node.next_msp_dir and \
         restart the node"
    )]
    NoIdentity { channel: String, sequence: u64, id: ReplicaId },
    #[error("cannot sign the key announcement for channel {channel}: {detail}")]
    Sign { channel: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// What this node stores when an epoch begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRecord {
    pub epoch: u64,
    /// The block the epoch starts after (0 for the first epoch).
    pub base: Seq,
    /// Header hash of block `base` (of the genesis block for the first epoch).
    pub base_hash: Digest,
    /// Every consenter's X25519 public key in this epoch.
    pub public_keys: BTreeMap<ReplicaId, [u8; 32]>,
    /// The epoch whose announcement introduced the private key this node
    /// uses ([`FIRST_EPOCH`]: the node's `mac_key_file`).
    pub own_key_epoch: u64,
    /// The canonical channel configuration of this epoch; empty: the
    /// genesis configuration (records of version 1, the first epoch).
    pub config: Vec<u8>,
}

impl EpochRecord {
    /// The first epoch: genesis block, keys from the channel configuration.
    pub fn first(config: &ChannelConfig, genesis_hash: Digest) -> Result<Self, IdentityError> {
        Ok(Self {
            epoch: FIRST_EPOCH,
            base: 0,
            base_hash: genesis_hash,
            public_keys: identity::genesis_public_keys(config)?,
            own_key_epoch: FIRST_EPOCH,
            config: Vec::new(),
        })
    }

    /// The channel configuration of this epoch (`genesis` if the record
    /// holds none).
    pub fn channel_config(&self, genesis: &ChannelConfig) -> Result<ChannelConfig, DecodeError> {
        if self.config.is_empty() {
            return Ok(genesis.clone());
        }
        ChannelConfig::from_canonical_bytes(&self.config)
            .map_err(|_| DecodeError::Invalid { what: "epoch record (configuration)" })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + 36 * self.public_keys.len());
        w.u8(RECORD_VERSION).u64(self.epoch).u64(self.base).digest(&self.base_hash).u64(self.own_key_epoch);
        w.u32(self.public_keys.len() as u32);
        for (id, key) in &self.public_keys {
            w.u32(*id).digest(key);
        }
        w.bytes(&self.config);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != RECORD_VERSION && version != 1 {
            return Err(DecodeError::UnknownTag { what: "epoch record version", tag: version });
        }
        let (epoch, base, base_hash, own_key_epoch) = (r.u64()?, r.u64()?, r.digest()?, r.u64()?);
        let count = r.count("epoch record keys", RECORD_CONSENTERS_MAX)?;
        let mut public_keys = BTreeMap::new();
        for _ in 0..count {
            let id = r.u32()?;
            if public_keys.insert(id, r.digest()?).is_some() {
                return Err(DecodeError::Invalid { what: "epoch record (consenter twice)" });
            }
        }
        let config = if version == 1 {
            Vec::new()
        } else {
            r.bytes("epoch record configuration", channels::config::MAX_CONFIG_BYTES)?
        };
        r.finish()?;
        if own_key_epoch > epoch || epoch < FIRST_EPOCH {
            return Err(DecodeError::Invalid { what: "epoch record (key epoch after the epoch)" });
        }
        Ok(Self { epoch, base, base_hash, public_keys, own_key_epoch, config })
    }
}

/// The latest stored epoch record of `channel`, if any epoch switch happened.
pub fn latest_record(store: &Store, channel: &str) -> Result<Option<EpochRecord>, EpochError> {
    let Some((epoch, bytes)) = store.epochs(channel)?.pop() else { return Ok(None) };
    let record = EpochRecord::decode(&bytes)
        .map_err(|e| EpochError::Record { channel: channel.to_string(), detail: e.to_string() })?;
    if record.epoch != epoch {
        return Err(EpochError::Record {
            channel: channel.to_string(),
            detail: format!("record stored under epoch {epoch} says epoch {}", record.epoch),
        });
    }
    Ok(Some(record))
}

/// (epoch, base) of every epoch of `channel`, oldest first: block n was
/// certified in the last epoch whose base is below n.
pub fn epoch_bases(store: &Store, channel: &str) -> Result<Vec<(u64, Seq)>, EpochError> {
    let mut out = vec![(FIRST_EPOCH, 0)];
    for (epoch, bytes) in store.epochs(channel)? {
        let record = EpochRecord::decode(&bytes)
            .map_err(|e| EpochError::Record { channel: channel.to_string(), detail: e.to_string() })?;
        out.push((epoch, record.base));
    }
    Ok(out)
}

/// The epoch whose consenters certified block `number`, given [`epoch_bases`].
pub fn epoch_of_block(bases: &[(u64, Seq)], number: Seq) -> u64 {
    bases.iter().rev().find(|(_, base)| *base < number).map_or(FIRST_EPOCH, |(epoch, _)| *epoch)
}

/// The key-set rule. Starting from the keys of the epoch that ends
/// (`current`), each member's key becomes the one of its FIRST announcement
/// for `next_epoch` in `announced` (ledger order); later announcements of
/// the same consenter, announcements for other epochs and of non-members are
/// ignored. A member that did not announce keeps its current key.
pub fn next_key_set(
    members: &[ReplicaId],
    current: &BTreeMap<ReplicaId, [u8; 32]>,
    next_epoch: u64,
    announced: &[(Seq, Announced)],
) -> BTreeMap<ReplicaId, [u8; 32]> {
    let mut keys: BTreeMap<ReplicaId, [u8; 32]> =
        current.iter().filter(|(id, _)| members.contains(id)).map(|(id, k)| (*id, *k)).collect();
    let mut taken = BTreeSet::new();
    for (_, a) in announced {
        if a.epoch == next_epoch && members.contains(&a.consenter) && taken.insert(a.consenter) {
            keys.insert(a.consenter, a.public_key);
        }
    }
    assert!(keys.len() <= members.len(), "a key per member at most");
    keys
}

/// This node's X25519 secrets of one channel, one file per epoch:
/// `<data_dir>/epoch-keys/<channel>/epoch-<n>.x25519` (hex, mode 0600).
pub struct KeyFiles {
    dir: PathBuf,
}

impl KeyFiles {
    pub fn new(data_dir: &Path, channel: &str) -> Self {
        Self { dir: data_dir.join("epoch-keys").join(channel) }
    }

    pub fn path(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("epoch-{epoch}.x25519"))
    }

    fn err(&self, path: &Path, e: impl std::fmt::Display) -> EpochError {
        EpochError::KeyFile { path: path.display().to_string(), detail: e.to_string() }
    }

    /// The secret for `epoch`, if its file exists.
    pub fn load(&self, epoch: u64) -> Result<Option<StaticSecret>, EpochError> {
        let path = self.path(epoch);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err(&path, e)),
        };
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| self.err(&path, "expected 64 hex digits"))?;
        Ok(Some(StaticSecret::from(bytes)))
    }

    /// The secret for `epoch`: the stored one, or a fresh one made durable
    /// (written, fsynced, renamed into place, folder fsynced) before it is
    /// returned. Persist before the public half leaves the node.
    pub fn load_or_create(&self, epoch: u64) -> Result<StaticSecret, EpochError> {
        if let Some(secret) = self.load(epoch)? {
            return Ok(secret);
        }
        let secret = StaticSecret::random_from_rng(rand_core::OsRng);
        let path = self.path(epoch);
        self.write_durably(&path, hex::encode(secret.to_bytes()).as_bytes()).map_err(|e| self.err(&path, e))?;
        Ok(secret)
    }

    fn write_durably(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// The epochs that have a key file, ascending (bounded).
    pub fn epochs(&self) -> Result<Vec<u64>, EpochError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(self.err(&self.dir, e)),
        };
        let mut out: Vec<u64> = entries
            .take(KEY_FILES_MAX)
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("epoch-")?.strip_suffix(".x25519")?.parse().ok()
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Overwrites with zeros, fsyncs and deletes every key file except those
    /// of the epochs in `keep`; returns how many were erased.
    pub fn erase_except(&self, keep: &[u64]) -> Result<usize, EpochError> {
        use std::io::Write;
        let mut erased = 0;
        for epoch in self.epochs()? {
            if keep.contains(&epoch) {
                continue;
            }
            let path = self.path(epoch);
            let len = std::fs::metadata(&path).map_err(|e| self.err(&path, e))?.len();
            let mut file = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| self.err(&path, e))?;
            file.write_all(&vec![0u8; len as usize]).and_then(|()| file.sync_all()).map_err(|e| self.err(&path, e))?;
            drop(file);
            std::fs::remove_file(&path).map_err(|e| self.err(&path, e))?;
            erased += 1;
        }
        if erased > 0 {
            std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| self.err(&self.dir, e))?;
        }
        Ok(erased)
    }
}

/// When this node announces a key for the next epoch.
#[derive(Debug)]
pub struct Rotation {
    policy: KeyRotation,
    /// When this node started the current epoch (or the process started).
    started: Instant,
    /// An operator asked for a rotation (admin API).
    admin_requested: bool,
    /// Another consenter's announcement for the next epoch was executed.
    others_announced: bool,
    /// This node's announcement for the next epoch was executed.
    announced: bool,
    /// This node's announcement, once built (resubmitted identically).
    envelope: Option<Vec<u8>>,
    /// The executed height when it was last submitted.
    submitted_at: Option<Seq>,
    /// Its last submission was refused: retry at the next block.
    refused: bool,
}

impl Rotation {
    pub fn new(policy: KeyRotation, started: Instant) -> Self {
        Self {
            policy,
            started,
            admin_requested: false,
            others_announced: false,
            announced: false,
            envelope: None,
            submitted_at: None,
            refused: false,
        }
    }

    /// Whether a trigger fired: policy (blocks since `base` or seconds since
    /// the epoch started here), an admin request, or another consenter's
    /// announcement.
    pub fn triggered(&self, executed: Seq, base: Seq, now: Instant) -> bool {
        let by_blocks = self.policy.every_blocks > 0 && executed.saturating_sub(base) >= self.policy.every_blocks;
        let by_time = self.policy.every_seconds > 0
            && now.saturating_duration_since(self.started) >= Duration::from_secs(self.policy.every_seconds);
        by_blocks || by_time || self.admin_requested || self.others_announced
    }

    /// Whether to submit this node's announcement now: triggered, not yet
    /// executed, and never submitted, or refused / not executed for a while
    /// and a block has been executed since the last submission.
    pub fn submit_due(&self, executed: Seq, base: Seq, now: Instant) -> bool {
        if self.announced || !self.triggered(executed, base, now) {
            return false;
        }
        match self.submitted_at {
            None => true,
            Some(at) => executed > at && (self.refused || executed.saturating_sub(at) >= RESUBMIT_AFTER_BLOCKS),
        }
    }

    pub fn request(&mut self) {
        self.admin_requested = true;
    }

    pub fn is_requested(&self) -> bool {
        self.admin_requested
    }

    pub fn has_announced(&self) -> bool {
        self.announced
    }

    /// Records the submission at height `executed`.
    pub fn submitted(&mut self, executed: Seq) {
        self.submitted_at = Some(executed);
        self.refused = false;
    }

    pub fn refused(&mut self) {
        self.refused = true;
    }

    /// An announcement for the next epoch was executed.
    pub fn observe(&mut self, consenter: ReplicaId, me: ReplicaId) {
        if consenter == me {
            self.announced = true;
        } else {
            self.others_announced = true;
        }
    }
}

/// This node's secret for the epoch of `record`, checked against the public
/// key the epoch uses for it. A lost or different key (the data folder was
/// restored from an old backup, or the node left and joined the channel
/// again after announcing) cannot be recovered: the node runs the epoch with
/// a throwaway key, so its messages fail authentication at the others (it
/// counts as one of the f faulty consenters, and catches up by state
/// transfer) until an operator replaces its identity by reconfiguration.
fn secret_or_throwaway(
    keys: &KeyFiles,
    channel: &str,
    record: &EpochRecord,
    secret: Option<StaticSecret>,
    expected: Option<[u8; 32]>,
) -> StaticSecret {
    let public = secret.as_ref().map(|s| *XPublic::from(s).as_bytes());
    match secret {
        Some(secret) if public == expected => secret,
        _ => {
            let lost = EpochError::LostKey {
                channel: channel.to_string(),
                epoch: record.epoch,
                key_epoch: record.own_key_epoch,
                path: keys.path(record.own_key_epoch).display().to_string(),
            };
            tracing::error!(error = %lost, "running the epoch with a throwaway key: this consenter's messages will not authenticate");
            StaticSecret::random_from_rng(rand_core::OsRng)
        }
    }
}

/// What the node needs, beyond the channel configuration, to run epochs.
pub struct EpochContext {
    /// The genesis configuration of the channel.
    pub config: ChannelConfig,
    pub me: ReplicaId,
    /// This node's identities: `node.msp_dir`, then `node.next_msp_dir` if
    /// set. The one whose certificate the epoch's configuration pins for
    /// this consenter signs (a reconfiguration may rotate it).
    pub identities: Vec<Msp>,
    /// The node's first-epoch secret (`node.mac_key_file`).
    pub first_secret: StaticSecret,
    pub keys: KeyFiles,
    pub tick_ms: u64,
    pub pool_max: usize,
    pub sign_all_messages: bool,
    /// `consensus.cut_when_idle`.
    pub cut_when_idle: bool,
    pub verified: Arc<VerifiedCache>,
}

impl EpochContext {
    /// The identity whose certificate `config` pins for this consenter.
    pub fn identity_for(&self, config: &ChannelConfig) -> Result<&Msp, EpochError> {
        let channel = config.channel_id.clone();
        let pinned = config
            .consenter(self.me)
            .ok_or(EpochError::Retired { channel: channel.clone(), sequence: config.sequence })?;
        let key = ca_tools::PublicKey::from_cert(pinned.identity_cert.as_bytes())
            .map_err(|e| IdentityError::BadConsenterCert { id: self.me, detail: e.to_string() })?;
        self.identities.iter().find(|m| m.key.public_key().to_bytes() == key.to_bytes()).ok_or(EpochError::NoIdentity {
            channel,
            sequence: config.sequence,
            id: self.me,
        })
    }
}

/// Everything a replica of one epoch is built from.
pub struct ReplicaParts {
    pub config: Config,
    pub crypto: NodeCrypto,
    pub macs: MacKeys,
    pub validator: EnvelopeValidator,
}

/// The epoch machinery of one channel, owned by its task.
pub struct EpochShell {
    ctx: EpochContext,
    /// The channel configuration of the current epoch.
    config: Arc<ChannelConfig>,
    verifier: AnnouncementVerifier,
    /// Reconfigurations of the current configuration.
    updates: ConfigUpdateVerifier,
    /// The current epoch.
    pub record: EpochRecord,
    secret: StaticSecret,
    pub rotation: Rotation,
    /// (epoch, base) of every epoch so far (shared with the status).
    pub bases: Arc<Vec<(u64, Seq)>>,
    /// Epoch switches done by this process.
    pub switches: u64,
}

/// The next epoch, ready to be stored and started.
pub struct NextEpoch {
    pub record: EpochRecord,
    /// `None`: this node is not a consenter of the next epoch (removed by
    /// the reconfiguration that ended this one).
    pub parts: Option<ReplicaParts>,
    /// The next epoch's configuration, when a reconfiguration changed it.
    pub reconfigured: Option<Reconfigured>,
    config: ChannelConfig,
    secret: StaticSecret,
}

/// A reconfiguration that takes effect with the next epoch.
#[derive(Clone, Debug)]
pub struct Reconfigured {
    /// The block that holds it.
    pub block: Seq,
    pub tx_id: String,
    pub config: ChannelConfig,
}

/// The next epoch's record and this node's secret in it, once its replica
/// parts are taken (see [`EpochShell::switched`]).
pub struct NextKeys {
    pub record: EpochRecord,
    config: ChannelConfig,
    secret: StaticSecret,
}

impl NextEpoch {
    pub fn into_parts(self) -> (Option<ReplicaParts>, NextKeys) {
        (self.parts, NextKeys { record: self.record, config: self.config, secret: self.secret })
    }
}

/// What one epoch's blocks hold for the next: the key announcements and
/// the first valid reconfiguration.
#[derive(Default)]
pub struct EpochScan {
    pub announced: Vec<(Seq, Announced)>,
    pub reconfigured: Option<Reconfigured>,
}

/// Reads blocks `from..=to` (deterministic verification, see
/// `channels::announcement` and `channels::config_update`).
pub fn scan_epoch(
    store: &Store,
    channel: &str,
    verifier: &AnnouncementVerifier,
    updates: &ConfigUpdateVerifier,
    from: Seq,
    to: Seq,
) -> Result<EpochScan, EpochError> {
    let mut out = EpochScan::default();
    for n in from..=to {
        let Some(block) = store.block(channel, n)? else {
            return Err(EpochError::MissingBlock { channel: channel.to_string(), seq: n, epoch: 0 });
        };
        for envelope in &block.envelopes {
            if let Ok(a) = verifier.verify(envelope) {
                out.announced.push((n, a));
            } else if out.reconfigured.is_none() {
                if let Some(u) = identity::valid_reconfiguration(updates, envelope) {
                    out.reconfigured = Some(Reconfigured { block: n, tx_id: u.tx_id, config: u.config });
                }
            }
        }
    }
    Ok(out)
}

/// The MAC public keys of the next epoch: [`next_key_set`] over the
/// announcements for the consenters that stay, then, from the next
/// configuration, the key of every consenter added and of every consenter
/// whose configured key the reconfiguration changed (how an operator
/// replaces a lost key). Consenters removed have none.
pub fn next_public_keys(
    current_config: &ChannelConfig,
    next_config: &ChannelConfig,
    current: &BTreeMap<ReplicaId, [u8; 32]>,
    next_epoch: u64,
    announced: &[(Seq, Announced)],
) -> Result<BTreeMap<ReplicaId, [u8; 32]>, IdentityError> {
    let staying: Vec<ReplicaId> =
        next_config.consenters.iter().map(|c| c.id).filter(|id| current_config.consenter(*id).is_some()).collect();
    let mut keys = next_key_set(&staying, current, next_epoch, announced);
    for c in &next_config.consenters {
        let before = current_config.consenter(c.id).map(|o| o.mac_public_key.as_slice());
        if before != Some(c.mac_public_key.as_slice()) || !keys.contains_key(&c.id) {
            let key: [u8; 32] =
                c.mac_public_key.as_slice().try_into().map_err(|_| IdentityError::NoMacKey { id: c.id })?;
            keys.insert(c.id, key);
        }
    }
    assert!(keys.len() == next_config.consenters.len(), "a key per consenter of the next epoch");
    Ok(keys)
}

impl EpochShell {
    /// The current epoch of the channel after a (re)start: the latest
    /// stored record, or the first epoch; its private key; and whether this
    /// node's announcement for the next epoch is already in blocks
    /// base+1..=`height`. A node that a reconfiguration removed gets
    /// [`EpochError::Retired`].
    pub fn start(ctx: EpochContext, store: &Store, genesis_hash: Digest) -> Result<(Self, ReplicaParts), EpochError> {
        let channel = ctx.config.channel_id.clone();
        let record = match latest_record(store, &channel)? {
            Some(r) => r,
            None => EpochRecord::first(&ctx.config, genesis_hash)?,
        };
        let config = record
            .channel_config(&ctx.config)
            .map_err(|e| EpochError::Record { channel: channel.clone(), detail: e.to_string() })?;
        if config.consenter(ctx.me).is_none() {
            return Err(EpochError::Retired { channel, sequence: config.sequence });
        }
        let secret = if record.own_key_epoch == FIRST_EPOCH {
            Some(ctx.first_secret.clone())
        } else {
            ctx.keys.load(record.own_key_epoch)?
        };
        let expected = record.public_keys.get(&ctx.me).copied();
        let secret = secret_or_throwaway(&ctx.keys, &channel, &record, secret, expected);
        // Keys neither in use nor possibly announced for the next epoch.
        let erased = ctx.keys.erase_except(&[record.own_key_epoch, record.epoch + 1])?;
        if erased > 0 {
            tracing::info!(channel = %channel, erased, "erased private MAC keys of older epochs");
        }
        let verifier = AnnouncementVerifier::new(&config);
        let updates = ConfigUpdateVerifier::new(&config).map_err(|e| IdentityError::Config(e.to_string()))?;
        let mut rotation = Rotation::new(config.key_rotation.unwrap_or_default(), Instant::now());
        let height = store.height(&channel)?;
        if height > record.base {
            for (_, a) in scan_epoch(store, &channel, &verifier, &updates, record.base + 1, height)?.announced {
                if a.epoch == record.epoch + 1 {
                    rotation.observe(a.consenter, ctx.me);
                }
            }
        }
        let bases = Arc::new(epoch_bases(store, &channel)?);
        let config = Arc::new(config);
        let shell = Self { verifier, updates, record, secret, rotation, bases, switches: 0, ctx, config };
        let parts = shell.parts(&shell.record, &shell.secret, &shell.config)?;
        Ok((shell, parts))
    }

    pub fn channel(&self) -> &str {
        &self.ctx.config.channel_id
    }

    pub fn epoch(&self) -> u64 {
        self.record.epoch
    }

    /// The identity this consenter signs with in the current epoch.
    pub fn identity(&self) -> Result<&Msp, EpochError> {
        self.ctx.identity_for(&self.config)
    }

    /// The channel configuration of the current epoch.
    pub fn config(&self) -> &Arc<ChannelConfig> {
        &self.config
    }

    /// The replica parts of the epoch of `record` under `config`, with this
    /// node's `secret`.
    fn parts(
        &self,
        record: &EpochRecord,
        secret: &StaticSecret,
        config: &ChannelConfig,
    ) -> Result<ReplicaParts, EpochError> {
        let ctx = &self.ctx;
        let mut consensus =
            identity::consensus_config(config, ctx.me, record.epoch, record.base_hash, ctx.tick_ms, ctx.pool_max)?;
        consensus.epoch_base = record.base;
        consensus.cut_when_idle = ctx.cut_when_idle;
        consensus.check().map_err(IdentityError::Config)?;
        let crypto = NodeCrypto::new(ctx.identity_for(config)?.key.clone(), config, ctx.me)?;
        // This node's own entry is its secret's public half: the same as the
        // record's, except with a throwaway key (see `secret_or_throwaway`).
        let mut publics = record.public_keys.clone();
        publics.insert(ctx.me, *XPublic::from(secret).as_bytes());
        let mut macs = identity::mac_keys_from(&config.channel_id, &publics, record.epoch, ctx.me, secret)?;
        if ctx.sign_all_messages {
            macs = macs.signing_everything();
        }
        let validator = EnvelopeValidator::new(config, ctx.verified.clone())?.for_epoch(record.epoch);
        Ok(ReplicaParts { config: consensus, crypto, macs, validator })
    }

    /// A committed block: notes the announcements for the next epoch in it.
    pub fn observe_block(&mut self, envelopes: &[Vec<u8>]) {
        let next = self.record.epoch + 1;
        for envelope in envelopes {
            if let Ok(a) = self.verifier.verify(envelope) {
                if a.epoch == next {
                    self.rotation.observe(a.consenter, self.ctx.me);
                }
            }
        }
    }

    /// This node's announcement for the next epoch: the secret is made
    /// durable first, then the envelope is built and signed (once; later
    /// submissions resend the same bytes).
    pub fn announcement(&mut self) -> Result<Vec<u8>, EpochError> {
        if let Some(envelope) = &self.rotation.envelope {
            return Ok(envelope.clone());
        }
        let next = self.record.epoch + 1;
        let secret = self.ctx.keys.load_or_create(next)?;
        let public = *XPublic::from(&secret).as_bytes();
        let msp = self.ctx.identity_for(&self.config)?;
        let envelope = build_announcement(&self.config.channel_id, msp, self.ctx.me, next, &public)
            .map_err(|e| EpochError::Sign { channel: self.config.channel_id.clone(), detail: e.to_string() })?
            .encode_to_vec();
        self.rotation.envelope = Some(envelope.clone());
        Ok(envelope)
    }

    /// The epoch after the one that ended with block `last_seq` (durable in
    /// the store): its configuration (changed by the first valid
    /// reconfiguration in the epoch's blocks, if any) and its keys.
    pub fn prepare_next(&self, store: &Store, last_seq: Seq) -> Result<NextEpoch, EpochError> {
        let channel = self.channel();
        let next = self.record.epoch + 1;
        let missing = || EpochError::MissingBlock { channel: channel.to_string(), seq: last_seq, epoch: next };
        let base_block = store.block(channel, last_seq)?.ok_or_else(missing)?;
        let scan = scan_epoch(store, channel, &self.verifier, &self.updates, self.record.base + 1, last_seq)?;
        let next_config = scan.reconfigured.as_ref().map_or_else(|| (*self.config).clone(), |r| r.config.clone());
        let public_keys =
            next_public_keys(&self.config, &next_config, &self.record.public_keys, next, &scan.announced)?;
        let me = self.ctx.me;
        // This node's secret: the key it announced, the one it used, or its
        // key file's (a reconfiguration may have set that one again).
        let expected = public_keys.get(&me).copied();
        let announced = self.ctx.keys.load(next)?;
        let candidates = [
            (next, announced),
            (self.record.own_key_epoch, Some(self.secret.clone())),
            (FIRST_EPOCH, Some(self.ctx.first_secret.clone())),
        ];
        let chosen = candidates
            .into_iter()
            .find_map(|(epoch, s)| s.filter(|s| Some(*XPublic::from(s).as_bytes()) == expected).map(|s| (epoch, s)));
        let own_key_epoch = chosen.as_ref().map_or(self.record.own_key_epoch, |(epoch, _)| *epoch);
        let record = EpochRecord {
            epoch: next,
            base: last_seq,
            base_hash: base_block.header_hash,
            public_keys,
            own_key_epoch,
            config: next_config.to_canonical_bytes(),
        };
        let secret = match expected {
            // Not a consenter any more: no key is used.
            None => StaticSecret::random_from_rng(rand_core::OsRng),
            Some(_) => secret_or_throwaway(&self.ctx.keys, channel, &record, chosen.map(|(_, s)| s), expected),
        };
        let parts = match next_config.consenter(me) {
            Some(_) => Some(self.parts(&record, &secret, &next_config)?),
            None => None,
        };
        let announcers: BTreeSet<ReplicaId> =
            scan.announced.iter().filter(|(_, a)| a.epoch == next).map(|(_, a)| a.consenter).collect();
        let silent: Vec<ReplicaId> =
            self.config.consenters.iter().map(|c| c.id).filter(|id| !announcers.contains(id)).collect();
        if !silent.is_empty() && scan.reconfigured.is_none() {
            tracing::warn!(channel = %channel, epoch = next, ?silent, "consenters that did not announce keep their previous MAC public key");
        }
        Ok(NextEpoch { record, parts, reconfigured: scan.reconfigured, config: next_config, secret })
    }

    /// The next epoch is stored: it becomes the current one, the private
    /// keys no longer in use are erased, the triggers start over.
    pub fn switched(&mut self, next: NextKeys) -> Result<usize, EpochError> {
        Arc::make_mut(&mut self.bases).push((next.record.epoch, next.record.base));
        if next.config != *self.config {
            self.verifier = AnnouncementVerifier::new(&next.config);
            self.updates = ConfigUpdateVerifier::new(&next.config).map_err(|e| IdentityError::Config(e.to_string()))?;
            self.config = Arc::new(next.config);
        }
        self.record = next.record;
        self.secret = next.secret;
        self.switches += 1;
        self.rotation = Rotation::new(self.config.key_rotation.unwrap_or_default(), Instant::now());
        let keep: &[u64] =
            if self.config.consenter(self.ctx.me).is_some() { &[self.record.own_key_epoch] } else { &[] };
        self.ctx.keys.erase_except(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced(consenter: ReplicaId, epoch: u64, key: u8) -> Announced {
        Announced { consenter, epoch, public_key: [key; 32], tx_id: String::new() }
    }

    #[test]
    fn the_first_announcement_of_each_member_for_the_next_epoch_counts_and_the_silent_keep_their_key() {
        let current: BTreeMap<ReplicaId, [u8; 32]> = (1..=4).map(|id| (id, [id as u8; 32])).collect();
        let ledger = vec![
            (11, announced(2, 3, 20)),
            (12, announced(2, 3, 21)), // a second announcement: ignored
            (12, announced(3, 2, 30)), // for the epoch that ends: ignored
            (13, announced(9, 3, 90)), // not a member: ignored
            (14, announced(1, 3, 10)),
            (15, announced(3, 3, 31)),
            (16, announced(4, 4, 40)), // for a later epoch: ignored
        ];
        let keys = next_key_set(&[1, 2, 3, 4], &current, 3, &ledger);
        assert_eq!(keys[&1], [10; 32]);
        assert_eq!(keys[&2], [20; 32], "the first announcement wins");
        assert_eq!(keys[&3], [31; 32]);
        assert_eq!(keys[&4], [4; 32], "a consenter that did not announce keeps its key");
        assert_eq!(keys.len(), 4);
        // The same ledger gives the same set: the rule is a function of it.
        assert_eq!(next_key_set(&[1, 2, 3, 4], &current, 3, &ledger), keys);
    }

    #[test]
    fn an_epoch_record_round_trips_and_refuses_bad_bytes() {
        let record = EpochRecord {
            epoch: 5,
            base: 120,
            base_hash: [7; 32],
            public_keys: (1..=4).map(|id| (id, [id as u8; 32])).collect(),
            own_key_epoch: 4,
            config: b"config".to_vec(),
        };
        let bytes = record.encode();
        assert_eq!(EpochRecord::decode(&bytes).unwrap(), record);
        assert!(EpochRecord::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(EpochRecord::decode(&bad).is_err(), "unknown version");
        let later = EpochRecord { own_key_epoch: 6, ..record };
        assert!(EpochRecord::decode(&later.encode()).is_err(), "a key from a later epoch");
    }

    #[test]
    fn blocks_are_certified_in_the_epoch_whose_range_holds_them() {
        let bases = vec![(1, 0), (2, 40), (3, 80)];
        assert_eq!(epoch_of_block(&bases, 1), 1);
        assert_eq!(epoch_of_block(&bases, 40), 1, "the last block of an epoch");
        assert_eq!(epoch_of_block(&bases, 41), 2);
        assert_eq!(epoch_of_block(&bases, 81), 3);
        assert_eq!(epoch_of_block(&[(1, 0)], 1_000), 1);
    }

    #[test]
    fn a_node_restarted_after_a_switch_derives_the_same_mac_keys_as_before_and_as_its_peers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.redb");
        let keys = KeyFiles::new(dir.path(), "ch");
        // Consenter 1 announced a key for epoch 2; 2, 3, 4 keep theirs.
        let mine = keys.load_or_create(2).unwrap();
        let others: Vec<StaticSecret> = (2..=4u8).map(|i| StaticSecret::from([i; 32])).collect();
        let mut publics = BTreeMap::new();
        publics.insert(1, *XPublic::from(&mine).as_bytes());
        for (id, s) in (2..=4).zip(&others) {
            publics.insert(id, *XPublic::from(s).as_bytes());
        }
        let record = EpochRecord {
            epoch: 2,
            base: 40,
            base_hash: [9; 32],
            public_keys: publics,
            own_key_epoch: 2,
            config: Vec::new(),
        };
        let before = identity::mac_keys_from("ch", &record.public_keys, 2, 1, &mine).unwrap();
        {
            let store = Store::open(&path).unwrap();
            store.create_channel("ch").unwrap();
            store.begin_epoch("ch", 2, &record.encode()).unwrap();
        }
        // Restart: the record and the key file are all there is.
        drop(mine);
        let store = Store::open(&path).unwrap();
        let stored = latest_record(&store, "ch").unwrap().unwrap();
        assert_eq!(stored, record);
        assert_eq!(epoch_bases(&store, "ch").unwrap(), vec![(1, 0), (2, 40)]);
        let secret = KeyFiles::new(dir.path(), "ch").load(stored.own_key_epoch).unwrap().unwrap();
        let after = identity::mac_keys_from("ch", &stored.public_keys, stored.epoch, 1, &secret).unwrap();
        let peer = identity::mac_keys_from("ch", &stored.public_keys, stored.epoch, 2, &others[0]).unwrap();
        assert_eq!(before.mac(2, b"m"), after.mac(2, b"m"), "the same keys after the restart");
        assert_eq!(after.mac(2, b"m"), peer.mac(1, b"m"), "and the same as the peer's");
        let first_epoch = identity::mac_keys_from("ch", &stored.public_keys, 1, 1, &secret).unwrap();
        assert_ne!(first_epoch.mac(2, b"m"), after.mac(2, b"m"), "bound to the epoch");
        // A lost key is replaced by a throwaway one, never by a guess.
        let lost = secret_or_throwaway(&keys, "ch", &stored, None, stored.public_keys.get(&1).copied());
        assert_ne!(XPublic::from(&lost).as_bytes(), &stored.public_keys[&1]);
    }

    #[test]
    fn key_files_are_private_durable_reused_and_erased() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyFiles::new(dir.path(), "ch");
        assert!(keys.load(2).unwrap().is_none());
        let a = keys.load_or_create(2).unwrap();
        let again = keys.load_or_create(2).unwrap();
        assert_eq!(a.to_bytes(), again.to_bytes(), "an existing key is reused, never replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(keys.path(2)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        keys.load_or_create(3).unwrap();
        keys.load_or_create(4).unwrap();
        assert_eq!(keys.epochs().unwrap(), vec![2, 3, 4]);
        assert_eq!(keys.erase_except(&[4]).unwrap(), 2);
        assert_eq!(keys.epochs().unwrap(), vec![4]);
        assert!(!keys.path(2).exists() && !keys.path(3).exists());
    }

    #[test]
    fn rotation_triggers_by_blocks_time_admin_or_another_announcement_and_retries_on_refusal() {
        let t0 = Instant::now();
        let policy = KeyRotation { every_blocks: 20, every_seconds: 0 };
        let mut r = Rotation::new(policy, t0);
        assert!(!r.submit_due(59, 40, t0), "19 blocks into the epoch");
        assert!(r.submit_due(60, 40, t0), "20 blocks");
        r.submitted(60);
        assert!(!r.submit_due(60, 40, t0), "submitted, no block since");
        assert!(!r.submit_due(61, 40, t0), "admitted, waiting for it to be ordered");
        r.refused();
        assert!(r.submit_due(61, 40, t0), "refused: retried at the next block");
        r.submitted(61);
        assert!(r.submit_due(61 + RESUBMIT_AFTER_BLOCKS, 40, t0), "not ordered for a while: resubmitted");
        r.observe(1, 1);
        assert!(!r.submit_due(100, 40, t0), "announced: done for this epoch");

        let mut off = Rotation::new(KeyRotation::default(), t0);
        assert!(!off.submit_due(1_000, 0, t0 + Duration::from_secs(1_000_000)), "policy off");
        off.observe(2, 1);
        assert!(off.submit_due(1_000, 0, t0), "another consenter announced: follow");
        let mut admin = Rotation::new(KeyRotation::default(), t0);
        admin.request();
        assert!(admin.submit_due(0, 0, t0));
        let timed = Rotation::new(KeyRotation { every_blocks: 0, every_seconds: 60 }, t0);
        assert!(!timed.submit_due(5, 0, t0 + Duration::from_secs(59)));
        assert!(timed.submit_due(5, 0, t0 + Duration::from_secs(60)));
    }
}

//! What the consensus core needs from the node's identity and the channel's
//! configuration: the signer and verifier of the slow path (the consenters'
//! certificate keys), the pairwise MAC keys of the fast path (X25519 + HKDF),
//! the envelope validator (channels + ca-tools), and the core's parameters.

use std::collections::BTreeMap;
use std::path::Path;

use ca_tools::{PublicKey, SigningKey};
use channels::announcement::{is_announcement, AnnouncementVerifier};
use channels::config_update::{is_config_update, ConfigUpdateVerifier, ConfigUpdated};
use channels::envelope::{decode_envelope, verify_envelope, ChannelTrust};
use channels::ChannelConfig;
use hkdf::Hkdf;
use sha2::Sha256;
use thiserror::Error;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};

use crate::consensus::{Announcement, Config, Crypto, Digest, Limits, MacKeys, ReplicaId, TxId, Validator};

/// Why a channel cannot be run by this node.
#[derive(Debug, Error)]
pub enum IdentityError {
    #[error("this node (consenter id {0}) is not a consenter of channel {1}")]
    NotAConsenter(u32, String),
    #[error("the identity certificate of consenter {id} is unusable: {detail}")]
    BadConsenterCert { id: u32, detail: String },
    #[error("consenter {id} has no valid X25519 MAC public key in the channel configuration (run `orderer keygen` for it and rebuild the genesis block)")]
    NoMacKey { id: u32 },
    #[error("this node's signing key does not match its certificate in channel {0}: check node.msp_dir")]
    KeyMismatch(String),
    #[error("MAC key file {path}: {detail}")]
    MacKeyFile { path: String, detail: String },
    #[error("channel configuration: {0}")]
    Config(String),
}

/// Signs with this node's identity key; verifies with the consenters'.
pub struct NodeCrypto {
    key: SigningKey,
    consenters: BTreeMap<ReplicaId, PublicKey>,
}

impl NodeCrypto {
    pub fn new(key: SigningKey, config: &ChannelConfig, me: ReplicaId) -> Result<Self, IdentityError> {
        let mut consenters = BTreeMap::new();
        for c in &config.consenters {
            let pk = PublicKey::from_cert(c.identity_cert.as_bytes())
                .map_err(|e| IdentityError::BadConsenterCert { id: c.id, detail: e.to_string() })?;
            consenters.insert(c.id, pk);
        }
        let mine = consenters.get(&me).ok_or_else(|| IdentityError::NotAConsenter(me, config.channel_id.clone()))?;
        if mine.to_bytes() != key.public_key().to_bytes() {
            return Err(IdentityError::KeyMismatch(config.channel_id.clone()));
        }
        Ok(Self { key, consenters })
    }
}

impl Crypto for NodeCrypto {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self.key.sign(message) {
            Ok(sig) => sig,
            Err(e) => {
                // An empty signature verifies nowhere: the vote is lost, not forged.
                tracing::error!(error = %e, "signing failed");
                Vec::new()
            }
        }
    }

    fn verify(&self, signer: ReplicaId, message: &[u8], signature: &[u8]) -> bool {
        self.consenters.get(&signer).is_some_and(|k| k.verify(message, signature).is_ok())
    }
}

/// Digests of envelopes the peer API has just verified, so that the channel
/// task does not verify the same bytes again (bounded; oldest forgotten).
#[derive(Default)]
pub struct VerifiedCache {
    inner: std::sync::Mutex<(std::collections::HashSet<Digest>, std::collections::VecDeque<Digest>)>,
}

const VERIFIED_CACHE_MAX: usize = 65_536;

impl VerifiedCache {
    fn digest(envelope: &[u8]) -> Digest {
        use sha2::Digest as _;
        Sha256::digest(envelope).into()
    }

    /// Records that `envelope` passed full verification just now.
    pub fn insert(&self, envelope: &[u8]) {
        let d = Self::digest(envelope);
        if let Ok(mut g) = self.inner.lock() {
            let (set, order) = &mut *g;
            if set.insert(d) {
                order.push_back(d);
            }
            while order.len() > VERIFIED_CACHE_MAX {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
    }

    /// Whether `envelope` was verified recently (and forgets it).
    fn take(&self, envelope: &[u8]) -> bool {
        let d = Self::digest(envelope);
        self.inner.lock().map(|mut g| g.0.remove(&d)).unwrap_or(false)
    }
}

/// Validates client envelopes for one channel in one epoch, and recognises
/// the consenters' key announcements for the next epoch.
pub struct EnvelopeValidator {
    trust: ChannelTrust,
    bytes_max: usize,
    verified: std::sync::Arc<VerifiedCache>,
    announcements: AnnouncementVerifier,
    /// Reconfigurations of this epoch's configuration.
    updates: ConfigUpdateVerifier,
    /// The epoch of the replica this validator serves: announcements are
    /// admitted for the next one only.
    epoch: u64,
}

impl EnvelopeValidator {
    /// A validator for the channel's first epoch.
    pub fn new(config: &ChannelConfig, verified: std::sync::Arc<VerifiedCache>) -> Result<Self, IdentityError> {
        let trust = ChannelTrust::new(config).map_err(|e| IdentityError::Config(e.to_string()))?;
        let bytes_max = config.batch.as_ref().map_or(10 << 20, |b| b.absolute_max_bytes as usize);
        let announcements = AnnouncementVerifier::new(config);
        let updates = ConfigUpdateVerifier::new(config).map_err(|e| IdentityError::Config(e.to_string()))?;
        Ok(Self { trust, bytes_max, verified, announcements, updates, epoch: super::server::FIRST_EPOCH })
    }

    /// The same validator for a replica of `epoch`.
    pub fn for_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    /// Admission of a key announcement: full envelope verification now,
    /// the pinned consenter certificate, and the next epoch.
    fn validate_announcement(&self, envelope: &[u8]) -> Result<TxId, String> {
        let announced = self
            .announcements
            .verify_submitted(envelope, &self.trust, ca_tools::now_unix())
            .map_err(|e| e.to_string())?;
        let next = self.epoch.saturating_add(1);
        if announced.epoch != next {
            return Err(format!(
                "key announcement of consenter {} is for epoch {}, but the channel is in epoch {} and only \
                 announcements for epoch {next} are ordered",
                announced.consenter, announced.epoch, self.epoch
            ));
        }
        parse_tx_id(&announced.tx_id).ok_or_else(|| "tx id is not 64 hex digits".to_string())
    }

    /// Admission of a reconfiguration: everything [`Validator::reconfiguration`]
    /// checks at execution, and the certificates valid now.
    fn validate_reconfiguration(&self, envelope: &[u8]) -> Result<TxId, String> {
        let update = self.updates.verify_submitted(envelope, ca_tools::now_unix()).map_err(|e| e.to_string())?;
        check_mac_keys(&update.config)?;
        parse_tx_id(&update.tx_id).ok_or_else(|| "tx id is not 64 hex digits".to_string())
    }
}

/// The reconfiguration `envelope` carries, if it is one and valid for the
/// configuration of `updates`: the one rule the core (which ends the epoch
/// on it) and the epoch shell (which applies it) both use. Deterministic.
pub fn valid_reconfiguration(updates: &ConfigUpdateVerifier, envelope: &[u8]) -> Option<ConfigUpdated> {
    if !is_config_update(envelope) {
        return None;
    }
    updates.verify(envelope).ok().filter(|u| check_mac_keys(&u.config).is_ok())
}

/// Every consenter of a new configuration needs an X25519 MAC public key:
/// the next epoch's pairwise keys are derived from them.
fn check_mac_keys(config: &ChannelConfig) -> Result<(), String> {
    match config.consenters.iter().find(|c| c.mac_public_key.len() != 32) {
        Some(c) => Err(format!(
            "consenter {} has no 32-byte MAC public key in the new configuration: set mac_public_key (the hex in its \
             mac.pub) before submitting the update",
            c.id
        )),
        None => Ok(()),
    }
}

/// Parses Fabric's hex tx id into 32 bytes.
pub fn parse_tx_id(hex_id: &str) -> Option<TxId> {
    let bytes = hex::decode(hex_id).ok()?;
    bytes.try_into().ok()
}

impl Validator for EnvelopeValidator {
    fn validate(&self, envelope: &[u8]) -> Result<TxId, String> {
        if is_config_update(envelope) {
            return self.validate_reconfiguration(envelope);
        }
        if is_announcement(envelope) {
            // Never from the cache: the peer API checks envelopes, not
            // whose key an announcement carries.
            return self.validate_announcement(envelope);
        }
        if self.verified.take(envelope) {
            return self.tx_id(envelope).ok_or_else(|| "tx id is not 64 hex digits".to_string());
        }
        let v =
            verify_envelope(envelope, &self.trust, ca_tools::now_unix(), self.bytes_max).map_err(|e| e.to_string())?;
        parse_tx_id(&v.tx_id).ok_or_else(|| "tx id is not 64 hex digits".to_string())
    }

    fn tx_id(&self, envelope: &[u8]) -> Option<TxId> {
        let d = decode_envelope(envelope, self.bytes_max).ok()?;
        parse_tx_id(&d.channel_header.tx_id)
    }

    /// Deterministic: no clock, no revocation list (every replica must
    /// count the same announcements from the same ordered bytes).
    fn announcement(&self, envelope: &[u8]) -> Option<Announcement> {
        let announced = self.announcements.verify(envelope).ok()?;
        Some(Announcement { consenter: announced.consenter, epoch: announced.epoch })
    }

    /// Deterministic, like [`Validator::announcement`]: no clock (the
    /// certificates are judged at the update's signed timestamp).
    fn reconfiguration(&self, envelope: &[u8]) -> bool {
        valid_reconfiguration(&self.updates, envelope).is_some()
    }
}

/// Loads this node's X25519 MAC key, creating it (mode 0600) if missing.
pub fn load_or_create_mac_key(path: &Path) -> Result<StaticSecret, IdentityError> {
    let err = |detail: String| IdentityError::MacKeyFile { path: path.display().to_string(), detail };
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| err("expected 64 hex digits".into()))?;
        return Ok(StaticSecret::from(bytes));
    }
    let secret = StaticSecret::random_from_rng(rand_core::OsRng);
    write_secret(path, &hex::encode(secret.to_bytes())).map_err(|e| err(e.to_string()))?;
    let public = XPublic::from(&secret);
    let pub_path = path.with_extension("pub");
    std::fs::write(&pub_path, hex::encode(public.as_bytes())).map_err(|e| err(e.to_string()))?;
    Ok(secret)
}

fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

/// The public half of a MAC key, as written into `mac.pub`.
pub fn mac_public_hex(secret: &StaticSecret) -> String {
    hex::encode(XPublic::from(secret).as_bytes())
}

/// Pairwise MAC keys of `me` for `epoch`: for each peer, HKDF-SHA-256 over
/// the X25519 shared secret, bound to the channel, the epoch and both ids
/// (the same key on both sides).
pub fn mac_keys(
    config: &ChannelConfig,
    epoch: u64,
    me: ReplicaId,
    secret: &StaticSecret,
) -> Result<MacKeys, IdentityError> {
    mac_keys_from(&config.channel_id, &genesis_public_keys(config)?, epoch, me, secret)
}

/// The consenters' X25519 public keys of the first epoch, from the channel
/// configuration.
pub fn genesis_public_keys(config: &ChannelConfig) -> Result<BTreeMap<ReplicaId, [u8; 32]>, IdentityError> {
    config
        .consenters
        .iter()
        .map(|c| {
            let public: [u8; 32] =
                c.mac_public_key.as_slice().try_into().map_err(|_| IdentityError::NoMacKey { id: c.id })?;
            Ok((c.id, public))
        })
        .collect()
}

/// Pairwise MAC keys of `me` for `epoch` from the consenters' public keys of
/// that epoch (see [`mac_keys`]); `secret` must be the private half of
/// `publics[me]`.
pub fn mac_keys_from(
    channel: &str,
    publics: &BTreeMap<ReplicaId, [u8; 32]>,
    epoch: u64,
    me: ReplicaId,
    secret: &StaticSecret,
) -> Result<MacKeys, IdentityError> {
    let mut keys = BTreeMap::new();
    for (&id, public) in publics {
        if id == me {
            if XPublic::from(secret).as_bytes() != public {
                return Err(IdentityError::MacKeyFile {
                    path: "node.mac_key_file".into(),
                    detail: format!(
                        "its public key is not the one channel {channel} lists for consenter {me} in epoch {epoch}"
                    ),
                });
            }
            continue;
        }
        let shared = secret.diffie_hellman(&XPublic::from(*public));
        keys.insert(id, derive_pair_key(shared.as_bytes(), channel, epoch, me, id));
    }
    if !publics.contains_key(&me) {
        return Err(IdentityError::NotAConsenter(me, channel.to_string()));
    }
    Ok(MacKeys::new(keys))
}

fn derive_pair_key(shared: &[u8; 32], channel: &str, epoch: u64, a: ReplicaId, b: ReplicaId) -> Digest {
    let (lo, hi) = (a.min(b), a.max(b));
    let mut info = Vec::with_capacity(channel.len() + 24);
    info.extend_from_slice(b"bftorderer/mac-key/v1\0");
    info.extend_from_slice(channel.as_bytes());
    info.extend_from_slice(&epoch.to_be_bytes());
    info.extend_from_slice(&lo.to_be_bytes());
    info.extend_from_slice(&hi.to_be_bytes());
    let mut out = [0u8; 32];
    // ok: HKDF-SHA-256 can always expand 32 bytes.
    let _ = Hkdf::<Sha256>::new(None, shared).expand(&info, &mut out);
    out
}

/// The consensus core's parameters for `me` from the channel configuration;
/// millisecond timeouts become ticks of `tick_ms`.
pub fn consensus_config(
    config: &ChannelConfig,
    me: ReplicaId,
    epoch: u64,
    genesis_hash: Digest,
    tick_ms: u64,
    pool_max: usize,
) -> Result<Config, IdentityError> {
    let batch = config.batch.unwrap_or_default();
    let bft = config.bft.unwrap_or_default();
    let ticks = |ms: u64| (ms / tick_ms.max(1)).max(1);
    let members: Vec<ReplicaId> = config.consenters.iter().map(|c| c.id).collect();
    if !members.contains(&me) {
        return Err(IdentityError::NotAConsenter(me, config.channel_id.clone()));
    }
    let heartbeat = ticks(bft.leader_heartbeat_ms);
    let cfg = Config {
        channel: config.channel_id.clone(),
        epoch,
        me,
        members,
        epoch_base: 0,
        genesis_hash,
        window: bft.pipeline_window.max(1),
        checkpoint_interval: bft.checkpoint_interval.max(1),
        batch_count_max: batch.max_message_count.max(1) as usize,
        batch_bytes_max: batch.absolute_max_bytes.max(1) as usize,
        batch_bytes_preferred: batch.preferred_max_bytes.max(1) as usize,
        batch_timeout_ticks: ticks(batch.batch_timeout_ms),
        // The node's `consensus.cut_when_idle` decides (off by default).
        cut_when_idle: false,
        forward_timeout_ticks: ticks(bft.request_forward_timeout_ms),
        complain_timeout_ticks: ticks(bft.request_complain_timeout_ms),
        view_change_timeout_ticks: ticks(bft.view_change_timeout_ms),
        heartbeat_interval_ticks: heartbeat,
        heartbeat_timeout_ticks: heartbeat * 5,
        resend_interval_ticks: (heartbeat * 5).max(ticks(500)),
        pool_max,
        dedup_window_blocks: 10_000,
        limits: Limits {
            envelope_bytes_max: batch.absolute_max_bytes.max(1) as usize,
            batch_envelopes_max: batch.max_message_count.max(1) as usize,
            ..Limits::default()
        },
        #[cfg(feature = "mutants")]
        mutant: None,
    };
    cfg.check().map_err(IdentityError::Config)?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_of_a_pair_derive_the_same_mac_key_and_other_pairs_differ() {
        let secrets: Vec<StaticSecret> = (0..3).map(|i| StaticSecret::from([i as u8 + 1; 32])).collect();
        let mut config = ChannelConfig { channel_id: "ch".into(), ..Default::default() };
        for (i, s) in secrets.iter().enumerate() {
            config.consenters.push(channels::config::Consenter {
                id: i as u32 + 1,
                mac_public_key: XPublic::from(s).as_bytes().to_vec(),
                ..Default::default()
            });
        }
        let k1 = mac_keys(&config, 1, 1, &secrets[0]).unwrap();
        let k2 = mac_keys(&config, 1, 2, &secrets[1]).unwrap();
        let k3 = mac_keys(&config, 1, 3, &secrets[2]).unwrap();
        assert_eq!(k1.mac(2, b"m"), k2.mac(1, b"m"));
        assert_eq!(k1.mac(3, b"m"), k3.mac(1, b"m"));
        assert_ne!(k1.mac(2, b"m"), k1.mac(3, b"m"));
        let other_epoch = mac_keys(&config, 2, 1, &secrets[0]).unwrap();
        assert_ne!(k1.mac(2, b"m"), other_epoch.mac(2, b"m"), "keys are bound to the epoch");
        // A node whose key is not the one the channel lists refuses to run.
        assert!(mac_keys(&config, 1, 1, &secrets[1]).is_err());
    }

    const CONSORTIUM: &str = r#"
orgs:
  - name: Org1
    msp_id: Org1MSP
    orderers: [{ name: orderer0 }, { name: orderer1 }, { name: orderer2 }, { name: orderer3 }]
    clients: [{ name: User1 }]
"#;

    #[test]
    fn the_validator_orders_only_a_consenters_own_announcement_for_the_next_epoch() {
        use channels::announcement::build_announcement;
        use channels::proto::common::HeaderType;
        use prost::Message;
        let dir = tempfile::tempdir().unwrap();
        let network = ca_tools::NetworkConfig::from_yaml(CONSORTIUM).unwrap();
        let summary = ca_tools::generate_network(&network, dir.path(), false).unwrap();
        let config = channels::config_from_network("ch", &summary, |i, o| (o.name.clone(), 7050 + i as u16)).unwrap();
        let msp = |kind: &str, name: &str| {
            ca_tools::Msp::load(None, &dir.path().join(format!("Org1/{kind}/{name}/msp"))).unwrap()
        };
        let cache = std::sync::Arc::new(VerifiedCache::default());
        let validator = EnvelopeValidator::new(&config, cache.clone()).unwrap();
        let orderer0 = msp("orderers", "orderer0");
        let id = config.consenters[0].id;
        let good = build_announcement("ch", &orderer0, id, 2, &[5; 32]).unwrap().encode_to_vec();
        assert!(validator.validate(&good).is_ok());
        assert_eq!(validator.announcement(&good), Some(Announcement { consenter: id, epoch: 2 }));
        // Only for the next epoch: a validator of epoch 2 refuses it as stale.
        let stale = EnvelopeValidator::new(&config, cache.clone()).unwrap().for_epoch(2);
        assert!(stale.validate(&good).unwrap_err().contains("only announcements for epoch 3"));
        let early = build_announcement("ch", &orderer0, id, 3, &[5; 32]).unwrap().encode_to_vec();
        assert!(validator.validate(&early).is_err());
        // Another consenter's id: refused, and never counted — even when the
        // peer API's cache has seen the bytes.
        let other = config.consenters[1].id;
        let forged = build_announcement("ch", &orderer0, other, 2, &[5; 32]).unwrap().encode_to_vec();
        cache.insert(&forged);
        let why = validator.validate(&forged).unwrap_err();
        assert!(why.contains("only a consenter may announce its own key"), "{why}");
        assert_eq!(validator.announcement(&forged), None);
        // A client cannot create one at all.
        let client = msp("users", "User1");
        let data =
            channels::proto::bftorderer::KeyAnnouncement { consenter_id: id, epoch: 2, x25519_public_key: vec![5; 32] }
                .encode_to_vec();
        let by_client = channels::envelope::build_envelope_now("ch", &client, &data, HeaderType::BftKeyAnnouncement)
            .unwrap()
            .encode_to_vec();
        assert!(validator.validate(&by_client).unwrap_err().contains("role"));
        assert_eq!(validator.announcement(&by_client), None);
        // Ordinary envelopes are not announcements.
        let tx = channels::envelope::build_envelope_now("ch", &client, b"tx", HeaderType::EndorserTransaction)
            .unwrap()
            .encode_to_vec();
        assert!(validator.validate(&tx).is_ok());
        assert_eq!(validator.announcement(&tx), None);
    }
}

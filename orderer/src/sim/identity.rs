//! The simulator's keys and clients.
//!
//! Consenters sign with a per-replica secret (HMAC-SHA-256 stands in for a
//! signature: only the holder of the secret can produce it, and the
//! simulator's adversaries only ever use their own replica's signer). Client
//! envelopes carry a tag under a client key no replica holds, so a Byzantine
//! replica cannot invent a valid envelope: validity is checkable.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::consensus::auth::hmac_sha256;
use crate::consensus::{Announcement, Crypto, Epoch, MacKeys, ReplicaId, TxId, Validator};

/// All consenters' secrets of one simulated cluster: one per (replica,
/// identity-key version), derived from the seed. A reconfiguration that
/// rotates a consenter's identity moves it to the next version.
pub struct Keyring {
    /// Every replica of the run, members of the first configuration first.
    ids: Vec<ReplicaId>,
    /// The first configuration's members (the initial MAC keys pair them).
    members: Vec<ReplicaId>,
    seed: u64,
}

/// The identity-key versions a verifier knows (by its configuration).
pub type Versions = BTreeMap<ReplicaId, u32>;

impl Keyring {
    pub fn new(members: &[ReplicaId], seed: u64) -> Arc<Self> {
        Self::with_spares(members, &[], seed)
    }

    /// A keyring that also holds replicas outside the first configuration
    /// (a spare a reconfiguration may add later).
    pub fn with_spares(members: &[ReplicaId], spares: &[ReplicaId], seed: u64) -> Arc<Self> {
        let ids = members.iter().chain(spares).copied().collect();
        Arc::new(Self { ids, members: members.to_vec(), seed })
    }

    /// The secret of `id`'s identity key at `version` (none for a replica
    /// this keyring does not hold).
    fn secret(&self, id: ReplicaId, version: u32) -> Option<[u8; 32]> {
        if !self.ids.contains(&id) {
            return None;
        }
        let label = match version {
            0 => format!("replica-secret-{id}"),
            v => format!("replica-secret-{id}-v{v}"),
        };
        Some(hmac_sha256(&self.seed.to_be_bytes(), label.as_bytes()))
    }

    /// The pairwise MAC keys of `me` (same value on both sides of a pair)
    /// among the first configuration's members.
    pub fn mac_keys(&self, me: ReplicaId) -> MacKeys {
        let keys = self
            .members
            .iter()
            .map(|peer| {
                let (a, b) = (me.min(*peer), me.max(*peer));
                let label = format!("mac-{a}-{b}");
                (*peer, hmac_sha256(&self.seed.to_be_bytes(), label.as_bytes()))
            })
            .collect();
        MacKeys::new(keys)
    }

    /// The pairwise MAC keys of `me` in a later epoch, with every consenter
    /// of that epoch (the keys of `material`), from the key material each
    /// uses in it (what its announcement carried, what it used before, or
    /// a new member's initial material): both sides of a pair derive the
    /// same key only if they agree on both consenters' material and the
    /// epoch.
    pub fn epoch_mac_keys(&self, me: ReplicaId, epoch: Epoch, material: &BTreeMap<ReplicaId, [u8; 32]>) -> MacKeys {
        let keys = material
            .keys()
            .map(|peer| {
                let (a, b) = (me.min(*peer), me.max(*peer));
                let mut label = format!("mac-{a}-{b}-epoch-{epoch}").into_bytes();
                for id in [a, b] {
                    label.extend_from_slice(&material.get(&id).copied().unwrap_or([0; 32]));
                }
                (*peer, hmac_sha256(&self.seed.to_be_bytes(), &label))
            })
            .collect();
        MacKeys::new(keys)
    }

    /// The signer of `me` under the first configuration: every replica of
    /// the keyring at identity-key version 0.
    pub fn signer(self: &Arc<Self>, me: ReplicaId) -> SimCrypto {
        let versions = self.ids.iter().map(|id| (*id, 0)).collect();
        self.signer_in(me, &versions)
    }

    /// The signer of `me` under a configuration giving each consenter an
    /// identity-key version: it signs with its own version and verifies
    /// only the consenters listed, each with its listed version.
    pub fn signer_in(self: &Arc<Self>, me: ReplicaId, versions: &Versions) -> SimCrypto {
        SimCrypto {
            me,
            version: versions.get(&me).copied().unwrap_or(0),
            versions: versions.clone(),
            keys: Arc::clone(self),
        }
    }

    /// Whether `signature` is `signer`'s over `message` under any of its
    /// identity keys up to `version_max` (an offline verifier over several
    /// epochs: each log line was signed with the key of its time).
    pub fn verify_any_version(&self, signer: ReplicaId, message: &[u8], signature: &[u8], version_max: u32) -> bool {
        (0..=version_max)
            .filter_map(|v| self.secret(signer, v))
            .any(|secret| hmac_sha256(&secret, message).as_slice() == signature)
    }
}

/// One consenter's signer, able to verify the signatures of the consenters
/// of its configuration, each under the identity-key version it gives.
pub struct SimCrypto {
    me: ReplicaId,
    version: u32,
    versions: Versions,
    keys: Arc<Keyring>,
}

impl Crypto for SimCrypto {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let secret = self.keys.secret(self.me, self.version).unwrap_or([0; 32]);
        hmac_sha256(&secret, message).to_vec()
    }

    fn verify(&self, signer: ReplicaId, message: &[u8], signature: &[u8]) -> bool {
        match self.versions.get(&signer).and_then(|v| self.keys.secret(signer, *v)) {
            Some(secret) => hmac_sha256(&secret, message).as_slice() == signature,
            None => false,
        }
    }
}

const CLIENT_KEY: &[u8] = b"bftorderer-sim-client-key";
const ENVELOPE_PREFIX: &[u8] = b"env1";

/// A signed client envelope: prefix, client, counter, padding, tag.
pub fn make_envelope(client: u32, counter: u64, padding: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(ENVELOPE_PREFIX.len() + 12 + padding + 32);
    body.extend_from_slice(ENVELOPE_PREFIX);
    body.extend_from_slice(&client.to_be_bytes());
    body.extend_from_slice(&counter.to_be_bytes());
    body.resize(body.len() + padding, 0xEE);
    let tag = hmac_sha256(CLIENT_KEY, &body);
    body.extend_from_slice(&tag);
    body
}

/// The client that made an envelope (no validation).
pub fn envelope_client(envelope: &[u8]) -> Option<u32> {
    let id = envelope.strip_prefix(ENVELOPE_PREFIX)?.get(..4)?;
    Some(u32::from_be_bytes(id.try_into().ok()?))
}

const ANNOUNCEMENT_PREFIX: &[u8] = b"ann1";
const ANNOUNCEMENT_LEN: usize = 4 + 4 + 8 + 32 + 32;

/// A consenter's key announcement for `epoch`: prefix, consenter, epoch, key
/// material, tag (the consenter's own key stands in for its signature).
pub fn make_announcement(consenter: ReplicaId, epoch: Epoch, material: [u8; 32]) -> Vec<u8> {
    let mut body = Vec::with_capacity(ANNOUNCEMENT_LEN);
    body.extend_from_slice(ANNOUNCEMENT_PREFIX);
    body.extend_from_slice(&consenter.to_be_bytes());
    body.extend_from_slice(&epoch.to_be_bytes());
    body.extend_from_slice(&material);
    let tag = hmac_sha256(&announcement_key(consenter), &body);
    body.extend_from_slice(&tag);
    body
}

fn announcement_key(consenter: ReplicaId) -> [u8; 32] {
    hmac_sha256(CLIENT_KEY, format!("announcement-{consenter}").as_bytes())
}

/// The announcement and its key material, if `envelope` is a valid one.
pub fn parse_announcement(envelope: &[u8]) -> Option<(Announcement, [u8; 32])> {
    if envelope.len() != ANNOUNCEMENT_LEN || !envelope.starts_with(ANNOUNCEMENT_PREFIX) {
        return None;
    }
    let (body, tag) = envelope.split_at(ANNOUNCEMENT_LEN - 32);
    let consenter = u32::from_be_bytes(body.get(4..8)?.try_into().ok()?);
    let epoch = u64::from_be_bytes(body.get(8..16)?.try_into().ok()?);
    let material: [u8; 32] = body.get(16..48)?.try_into().ok()?;
    if hmac_sha256(&announcement_key(consenter), body).as_slice() != tag {
        return None;
    }
    Some((Announcement { consenter, epoch }, material))
}

const RECONFIGURATION_PREFIX: &[u8] = b"rcf1";
/// Most members a simulated configuration lists.
const RECONFIGURATION_MEMBERS_MAX: usize = 64;

/// A simulated channel configuration: its sequence number and its
/// consenters, each with the version of its identity key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    pub sequence: u64,
    pub members: Vec<(ReplicaId, u32)>,
}

impl SimConfig {
    /// The first configuration: `members`, every identity at version 0.
    pub fn first(members: &[ReplicaId]) -> Self {
        Self { sequence: 0, members: members.iter().map(|m| (*m, 0)).collect() }
    }

    /// The consenters, in the order listed.
    pub fn ids(&self) -> Vec<ReplicaId> {
        self.members.iter().map(|(id, _)| *id).collect()
    }

    pub fn contains(&self, id: ReplicaId) -> bool {
        self.members.iter().any(|(m, _)| *m == id)
    }

    /// Each consenter's identity-key version.
    pub fn versions(&self) -> Versions {
        self.members.iter().copied().collect()
    }
}

/// A reconfiguration (the simulator's config update) to `config`: prefix,
/// sequence, members with their identity-key versions, and a tag under the
/// channel admins' key (it stands in for their signatures; no replica holds
/// it, so a Byzantine replica cannot forge one).
pub fn make_reconfiguration(config: &SimConfig) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + 8 * config.members.len() + 32);
    body.extend_from_slice(RECONFIGURATION_PREFIX);
    body.extend_from_slice(&config.sequence.to_be_bytes());
    body.extend_from_slice(&(config.members.len() as u32).to_be_bytes());
    for (id, version) in &config.members {
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&version.to_be_bytes());
    }
    let tag = hmac_sha256(ADMIN_KEY, &body);
    body.extend_from_slice(&tag);
    body
}

const ADMIN_KEY: &[u8] = b"bftorderer-sim-admin-key";

/// The configuration a reconfiguration carries, if it is well formed and
/// signed by the admins (any sequence).
pub fn parse_reconfiguration(envelope: &[u8]) -> Option<SimConfig> {
    let rest = envelope.strip_prefix(RECONFIGURATION_PREFIX)?;
    let sequence = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let count = u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?) as usize;
    if count == 0 || count > RECONFIGURATION_MEMBERS_MAX || rest.len() != 12 + 8 * count + 32 {
        return None;
    }
    let (body, tag) = envelope.split_at(envelope.len() - 32);
    if hmac_sha256(ADMIN_KEY, body).as_slice() != tag {
        return None;
    }
    let members = rest[12..12 + 8 * count]
        .chunks_exact(8)
        .map(|c| (u32::from_be_bytes([c[0], c[1], c[2], c[3]]), u32::from_be_bytes([c[4], c[5], c[6], c[7]])))
        .collect();
    Some(SimConfig { sequence, members })
}

/// The validator of one epoch: [`SimValidator`] plus reconfigurations,
/// valid when they carry the configuration after this epoch's one.
pub struct SimConfigValidator {
    /// The sequence number of this epoch's configuration.
    pub config_sequence: u64,
}

impl SimConfigValidator {
    fn is_next(&self, envelope: &[u8]) -> bool {
        parse_reconfiguration(envelope).is_some_and(|c| c.sequence == self.config_sequence + 1)
    }
}

impl Validator for SimConfigValidator {
    fn validate(&self, envelope: &[u8]) -> Result<TxId, String> {
        if envelope.starts_with(RECONFIGURATION_PREFIX) {
            return match self.is_next(envelope) {
                true => Ok(Sha256::digest(envelope).into()),
                false => Err(format!(
                    "not a valid reconfiguration to configuration {} (forged, malformed or stale)",
                    self.config_sequence + 1
                )),
            };
        }
        SimValidator.validate(envelope)
    }

    fn tx_id(&self, envelope: &[u8]) -> Option<TxId> {
        if envelope.starts_with(RECONFIGURATION_PREFIX) {
            return Some(Sha256::digest(envelope).into());
        }
        SimValidator.tx_id(envelope)
    }

    fn announcement(&self, envelope: &[u8]) -> Option<Announcement> {
        SimValidator.announcement(envelope)
    }

    fn reconfiguration(&self, envelope: &[u8]) -> bool {
        self.is_next(envelope)
    }
}

/// Validates simulated client envelopes and key announcements.
pub struct SimValidator;

impl SimValidator {
    fn split(envelope: &[u8]) -> Option<(&[u8], &[u8])> {
        if envelope.len() < ENVELOPE_PREFIX.len() + 12 + 32 || !envelope.starts_with(ENVELOPE_PREFIX) {
            return None;
        }
        Some(envelope.split_at(envelope.len() - 32))
    }
}

impl Validator for SimValidator {
    fn validate(&self, envelope: &[u8]) -> Result<TxId, String> {
        if envelope.starts_with(ANNOUNCEMENT_PREFIX) {
            return match parse_announcement(envelope) {
                Some(_) => Ok(Sha256::digest(envelope).into()),
                None => Err("forged key announcement".into()),
            };
        }
        let (body, tag) = Self::split(envelope).ok_or("malformed envelope")?;
        if hmac_sha256(CLIENT_KEY, body).as_slice() != tag {
            return Err("bad client signature".into());
        }
        Ok(Sha256::digest(body).into())
    }

    fn tx_id(&self, envelope: &[u8]) -> Option<TxId> {
        if envelope.starts_with(ANNOUNCEMENT_PREFIX) {
            return (envelope.len() == ANNOUNCEMENT_LEN).then(|| Sha256::digest(envelope).into());
        }
        Self::split(envelope).map(|(body, _)| Sha256::digest(body).into())
    }

    fn announcement(&self, envelope: &[u8]) -> Option<Announcement> {
        parse_announcement(envelope).map(|(a, _)| a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_envelope_is_invalid() {
        let mut e = make_envelope(1, 2, 10);
        assert!(SimValidator.validate(&e).is_ok());
        assert_eq!(envelope_client(&e), Some(1));
        e[10] ^= 1;
        assert!(SimValidator.validate(&e).is_err());
    }

    #[test]
    fn an_announcement_parses_back_and_a_forged_one_is_refused() {
        let a = make_announcement(3, 7, [9; 32]);
        assert_eq!(parse_announcement(&a), Some((Announcement { consenter: 3, epoch: 7 }, [9; 32])));
        assert!(SimValidator.validate(&a).is_ok());
        let mut claimed_by_other = a.clone();
        claimed_by_other[7] = 4;
        assert!(SimValidator.validate(&claimed_by_other).is_err());
        assert_eq!(SimValidator.announcement(&claimed_by_other), None);
    }

    #[test]
    fn a_reconfiguration_is_valid_for_the_next_configuration_only_and_cannot_be_forged() {
        let config = SimConfig { sequence: 3, members: vec![(1, 0), (2, 1), (3, 0), (5, 0)] };
        let r = make_reconfiguration(&config);
        assert_eq!(parse_reconfiguration(&r), Some(config));
        assert!(SimConfigValidator { config_sequence: 2 }.reconfiguration(&r));
        assert!(SimConfigValidator { config_sequence: 2 }.validate(&r).is_ok());
        assert!(!SimConfigValidator { config_sequence: 3 }.reconfiguration(&r), "stale");
        assert!(SimConfigValidator { config_sequence: 3 }.validate(&r).is_err());
        assert!(!SimConfigValidator { config_sequence: 1 }.reconfiguration(&r), "skips one");
        let mut forged = r.clone();
        forged[13] ^= 1;
        assert!(!SimConfigValidator { config_sequence: 2 }.reconfiguration(&forged));
        assert!(SimConfigValidator { config_sequence: 2 }.validate(&forged).is_err());
        assert!(!SimValidator.reconfiguration(&r), "the plain validator knows no configuration");
    }

    #[test]
    fn a_replica_cannot_sign_for_another() {
        let ring = Keyring::new(&[0, 1], 1);
        let sig = ring.signer(0).sign(b"m");
        assert!(ring.signer(1).verify(0, b"m", &sig));
        assert!(!ring.signer(1).verify(1, b"m", &sig));
        assert_eq!(ring.mac_keys(0).mac(1, b"x"), ring.mac_keys(1).mac(0, b"x"));
    }

    #[test]
    fn a_rotated_identity_verifies_only_under_its_new_version() {
        let ring = Keyring::with_spares(&[1, 2], &[3], 1);
        let before: Versions = [(1, 0), (2, 0)].into_iter().collect();
        let after: Versions = [(1, 0), (2, 1)].into_iter().collect();
        let old = ring.signer_in(2, &before).sign(b"m");
        let new = ring.signer_in(2, &after).sign(b"m");
        assert_ne!(old, new);
        assert!(ring.signer_in(1, &before).verify(2, b"m", &old));
        assert!(!ring.signer_in(1, &before).verify(2, b"m", &new), "the new key did not verify before");
        assert!(ring.signer_in(1, &after).verify(2, b"m", &new));
        assert!(!ring.signer_in(1, &after).verify(2, b"m", &old), "the old key no longer verifies");
        let spare = ring.signer_in(3, &before).sign(b"m");
        assert!(!ring.signer_in(1, &before).verify(3, b"m", &spare), "not a member of the configuration");
        assert!(ring.verify_any_version(2, b"m", &old, 1) && ring.verify_any_version(2, b"m", &new, 1));
    }
}

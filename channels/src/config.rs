//! Channel configuration: our own typed structure (generated from
//! `proto/bftorderer.proto`, with serde for YAML/JSON), its canonical
//! encoding, and its validation.
//!
//! The canonical encoding is the protobuf encoding prost writes: fields in
//! ascending field-number order, proto3 default values omitted, repeated
//! fields in list order, no unknown fields. Decoding refuses any input that
//! does not re-encode to the very same bytes, so one configuration has one
//! encoding.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use ca_tools::{OrgTrust, Role};
use prost::Message;

pub use crate::proto::bftorderer::{BatchConfig, BftOptions, ChannelConfig, Consenter, KeyRotation, Organization};

/// Fewest consenters a channel may have (n = 3f + 1 with f = 1).
pub const MIN_CONSENTERS: usize = 4;
/// Most consenters a channel may have.
pub const MAX_CONSENTERS: usize = 256;
/// Most organisations a channel may have.
pub const MAX_ORGS: usize = 256;
/// Most certificates or CRLs per organisation list.
pub const MAX_CERTS_PER_ORG: usize = 64;
/// Longest channel id (Fabric's limit).
pub const MAX_CHANNEL_ID_LEN: usize = 249;
/// Largest encoded configuration accepted.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;
/// Largest block a channel may configure (`absolute_max_bytes`).
pub const MAX_BLOCK_BYTES: u32 = 512 * 1024 * 1024;
/// Most envelopes per block a channel may configure.
pub const MAX_MESSAGE_COUNT: u32 = 1_000_000;
/// Longest timeout or interval a channel may configure (one hour).
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Largest checkpoint interval or pipeline window.
pub const MAX_WINDOW: u64 = 100_000;
/// Shortest time-based key rotation period (seconds) when enabled.
pub const MIN_ROTATION_SECONDS: u64 = 60;
/// The admin policies a channel may name.
pub const ADMIN_POLICIES: [&str; 3] = ["majority", "all", "any"];

/// Why a channel configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The channel id breaks Fabric's naming rule.
    #[error("channel id {0:?} is invalid: use 1-249 characters of a-z, 0-9, '.' and '-', starting with a letter")]
    BadChannelId(String),
    /// A required section is absent.
    #[error("the {0} section is missing from the channel configuration")]
    MissingSection(&'static str),
    /// Not enough consenters for BFT.
    #[error("{0} consenters configured; a BFT channel needs at least {MIN_CONSENTERS} (n = 3f + 1)")]
    TooFewConsenters(usize),
    /// A list is longer than its bound.
    #[error("too many {what}: {count} > {max}")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// How many there are.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Two consenters share an id.
    #[error("consenter id {0} is used more than once")]
    DuplicateConsenterId(u32),
    /// Two consenters share an endpoint.
    #[error("endpoint {0} is used by more than one consenter")]
    DuplicateEndpoint(String),
    /// Two consenters share an identity certificate.
    #[error("consenters {0} and {1} use the same identity certificate")]
    DuplicateIdentity(u32, u32),
    /// Two organisations share an MSP id.
    #[error("organisation {0} is listed more than once")]
    DuplicateOrg(String),
    /// An organisation has no root CA.
    #[error("organisation {0} has no root CA certificate")]
    OrgWithoutRoots(String),
    /// A consenter's MSP is not among the organisations.
    #[error("consenter {id} belongs to {msp_id}, which is not an organisation of the channel")]
    ConsenterOrgUnknown {
        /// Consenter id.
        id: u32,
        /// Its MSP id.
        msp_id: String,
    },
    /// A consenter endpoint is empty or has port 0.
    #[error("consenter {id} has an invalid endpoint {endpoint:?}: give a host name and a port in 1-65535")]
    BadEndpoint {
        /// Consenter id.
        id: u32,
        /// The endpoint as configured.
        endpoint: String,
    },
    /// An organisation's trust anchors cannot be used.
    #[error("organisation {msp_id}: {reason}")]
    BadOrgTrust {
        /// MSP id.
        msp_id: String,
        /// What ca-tools said.
        reason: String,
    },
    /// A consenter certificate does not chain to its organisation.
    #[error("consenter {id}'s {which} certificate is not valid for {msp_id}: {reason}")]
    BadConsenterCert {
        /// Consenter id.
        id: u32,
        /// "identity" or "TLS".
        which: &'static str,
        /// The consenter's MSP id.
        msp_id: String,
        /// Why verification failed.
        reason: String,
    },
    /// A number is zero or out of its sane range.
    #[error("{field} = {value} is out of range: {expected}")]
    OutOfRange {
        /// The field, e.g. `batch.max_message_count`.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What is accepted.
        expected: String,
    },
    /// Two settings contradict each other.
    #[error("inconsistent settings: {0}")]
    Inconsistent(String),
    /// A consenter's MAC public key is neither empty nor 32 bytes.
    #[error("consenter {id}'s MAC public key is {len} bytes; an X25519 public key is 32 bytes (or leave it empty)")]
    BadMacKey {
        /// Consenter id.
        id: u32,
        /// Its length.
        len: usize,
    },
    /// The admin policy is not one we know.
    #[error("admin policy {0:?} is unknown: use one of majority, all, any")]
    UnknownAdminPolicy(String),
    /// The bytes are not a canonical configuration.
    #[error("channel configuration cannot be decoded: {0}")]
    Decode(String),
}

impl ChannelConfig {
    /// A configuration for `channel_id` with these members and the
    /// recommended batch and BFT settings, no key rotation and the
    /// `majority` admin policy. Not validated.
    pub fn with_defaults(channel_id: &str, orgs: Vec<Organization>, consenters: Vec<Consenter>) -> Self {
        ChannelConfig {
            channel_id: channel_id.to_string(),
            sequence: 0,
            orgs,
            consenters,
            batch: Some(BatchConfig::recommended()),
            bft: Some(BftOptions::recommended()),
            key_rotation: Some(KeyRotation::default()),
            admin_policy: "majority".into(),
        }
    }

    /// Number of consenters.
    pub fn n(&self) -> usize {
        self.consenters.len()
    }

    /// Faults tolerated: f = ⌊(n − 1) / 3⌋.
    pub fn f(&self) -> usize {
        self.n().saturating_sub(1) / 3
    }

    /// Quorum size ⌈(n + f + 1) / 2⌉ (2f + 1 when n = 3f + 1).
    pub fn quorum(&self) -> usize {
        let quorum = (self.n() + self.f() + 2) / 2;
        assert!(self.n() == 0 || (quorum > self.f() && quorum <= self.n()));
        quorum
    }

    /// The consenter with id `id`.
    pub fn consenter(&self, id: u32) -> Option<&Consenter> {
        self.consenters.iter().find(|c| c.id == id)
    }

    /// The organisation with MSP id `msp_id`.
    pub fn org(&self, msp_id: &str) -> Option<&Organization> {
        self.orgs.iter().find(|o| o.msp_id == msp_id)
    }

    /// The trust anchors of every organisation, for `ca_tools::verify_identity`.
    pub fn org_trust(&self) -> Result<Vec<OrgTrust>, ConfigError> {
        self.orgs.iter().map(Organization::trust).collect()
    }

    /// The canonical encoding (see the module documentation).
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Decodes a canonical encoding; refuses oversize, undecodable and
    /// non-canonical bytes.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::Decode(format!("{} bytes is over the limit of {MAX_CONFIG_BYTES}", bytes.len())));
        }
        let config = ChannelConfig::decode(bytes).map_err(|e| ConfigError::Decode(e.to_string()))?;
        if config.encode_to_vec() != bytes {
            return Err(ConfigError::Decode(
                "encoding is not canonical (unknown fields, default values or field order)".into(),
            ));
        }
        Ok(config)
    }

    /// Full validation at the current time: [`Self::validate_structure`],
    /// then every organisation's trust anchors and every consenter's identity
    /// and TLS certificates (chain to their organisation, validity, CRLs).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_at(unix_now())
    }

    /// [`Self::validate`] at unix time `now_unix`.
    pub fn validate_at(&self, now_unix: i64) -> Result<(), ConfigError> {
        self.validate_structure()?;
        let trust = self.org_trust()?;
        for consenter in &self.consenters {
            let org_index = self.orgs.iter().position(|o| o.msp_id == consenter.msp_id).ok_or_else(|| {
                ConfigError::ConsenterOrgUnknown { id: consenter.id, msp_id: consenter.msp_id.clone() }
            })?;
            crate::pki::check_consenter_certs(consenter, &self.orgs[org_index], &trust[org_index], now_unix)?;
        }
        Ok(())
    }

    /// Checks everything that needs no certificate parsing: channel id,
    /// counts and uniqueness, sizes, timeouts, windows, policy.
    pub fn validate_structure(&self) -> Result<(), ConfigError> {
        validate_channel_id(&self.channel_id)?;
        self.validate_orgs()?;
        self.validate_consenters()?;
        self.batch.as_ref().ok_or(ConfigError::MissingSection("batch"))?.validate()?;
        self.bft.as_ref().ok_or(ConfigError::MissingSection("bft"))?.validate()?;
        self.key_rotation.as_ref().map_or(Ok(()), KeyRotation::validate)?;
        if !ADMIN_POLICIES.contains(&self.admin_policy.as_str()) {
            return Err(ConfigError::UnknownAdminPolicy(self.admin_policy.clone()));
        }
        Ok(())
    }

    fn validate_orgs(&self) -> Result<(), ConfigError> {
        bound("organisations", self.orgs.len(), MAX_ORGS)?;
        let mut seen = BTreeSet::new();
        for org in &self.orgs {
            if !seen.insert(org.msp_id.as_str()) {
                return Err(ConfigError::DuplicateOrg(org.msp_id.clone()));
            }
            if org.root_certs.is_empty() {
                return Err(ConfigError::OrgWithoutRoots(org.msp_id.clone()));
            }
            bound("root certificates", org.root_certs.len(), MAX_CERTS_PER_ORG)?;
            bound("TLS root certificates", org.tls_root_certs.len(), MAX_CERTS_PER_ORG)?;
            bound("CRLs", org.crls.len(), MAX_CERTS_PER_ORG)?;
        }
        Ok(())
    }

    fn validate_consenters(&self) -> Result<(), ConfigError> {
        if self.n() < MIN_CONSENTERS {
            return Err(ConfigError::TooFewConsenters(self.n()));
        }
        bound("consenters", self.n(), MAX_CONSENTERS)?;
        let mut ids = BTreeSet::new();
        let mut endpoints = BTreeSet::new();
        for (index, consenter) in self.consenters.iter().enumerate() {
            if !ids.insert(consenter.id) {
                return Err(ConfigError::DuplicateConsenterId(consenter.id));
            }
            let endpoint = consenter.endpoint();
            if consenter.host.trim().is_empty() || consenter.port == 0 || consenter.port > 65535 {
                return Err(ConfigError::BadEndpoint { id: consenter.id, endpoint });
            }
            if !endpoints.insert(endpoint.to_ascii_lowercase()) {
                return Err(ConfigError::DuplicateEndpoint(endpoint));
            }
            if !consenter.mac_public_key.is_empty() && consenter.mac_public_key.len() != 32 {
                return Err(ConfigError::BadMacKey { id: consenter.id, len: consenter.mac_public_key.len() });
            }
            if self.org(&consenter.msp_id).is_none() {
                return Err(ConfigError::ConsenterOrgUnknown { id: consenter.id, msp_id: consenter.msp_id.clone() });
            }
            let twin = self.consenters[..index]
                .iter()
                .find(|other| other.identity_cert.trim() == consenter.identity_cert.trim());
            if let Some(other) = twin {
                return Err(ConfigError::DuplicateIdentity(other.id, consenter.id));
            }
        }
        Ok(())
    }
}

impl Organization {
    /// This organisation's trust anchors, parsed by ca-tools.
    pub fn trust(&self) -> Result<OrgTrust, ConfigError> {
        OrgTrust::new(&self.msp_id, &self.root_certs, &self.tls_root_certs, &self.crls)
            .map_err(|e| ConfigError::BadOrgTrust { msp_id: self.msp_id.clone(), reason: e.to_string() })
    }
}

impl Consenter {
    /// `host:port`.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The roles a consenter identity certificate may carry.
    pub fn roles() -> &'static [Role] {
        &[Role::Orderer]
    }
}

impl BatchConfig {
    /// Fabric's defaults: 500 envelopes, 10 MiB absolute, 2 MiB preferred, 2 s.
    pub fn recommended() -> Self {
        BatchConfig {
            max_message_count: 500,
            absolute_max_bytes: 10 * 1024 * 1024,
            preferred_max_bytes: 2 * 1024 * 1024,
            batch_timeout_ms: 2_000,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        range("batch.max_message_count", self.max_message_count.into(), 1, MAX_MESSAGE_COUNT.into())?;
        range("batch.absolute_max_bytes", self.absolute_max_bytes.into(), 1, MAX_BLOCK_BYTES.into())?;
        range("batch.preferred_max_bytes", self.preferred_max_bytes.into(), 1, self.absolute_max_bytes.into())?;
        range("batch.batch_timeout_ms", self.batch_timeout_ms, 1, MAX_TIMEOUT_MS)
    }
}

impl BftOptions {
    /// Defaults in the spirit of SmartBFT's: forward after 2 s, complain
    /// after 20 s, view change timeout 20 s, heartbeat every 1 s, checkpoint
    /// every 100 blocks, window of 200, no leader rotation.
    pub fn recommended() -> Self {
        BftOptions {
            request_forward_timeout_ms: 2_000,
            request_complain_timeout_ms: 20_000,
            view_change_timeout_ms: 20_000,
            leader_heartbeat_ms: 1_000,
            checkpoint_interval: 100,
            pipeline_window: 200,
            leader_rotation: 0,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let timeouts = [
            ("bft.request_forward_timeout_ms", self.request_forward_timeout_ms),
            ("bft.request_complain_timeout_ms", self.request_complain_timeout_ms),
            ("bft.view_change_timeout_ms", self.view_change_timeout_ms),
            ("bft.leader_heartbeat_ms", self.leader_heartbeat_ms),
        ];
        for (field, value) in timeouts {
            range(field, value, 1, MAX_TIMEOUT_MS)?;
        }
        range("bft.checkpoint_interval", self.checkpoint_interval, 1, MAX_WINDOW)?;
        range("bft.pipeline_window", self.pipeline_window, 1, MAX_WINDOW)?;
        range("bft.leader_rotation", self.leader_rotation, 0, u32::MAX.into())?;
        if self.request_forward_timeout_ms >= self.request_complain_timeout_ms {
            return Err(ConfigError::Inconsistent(format!(
                "request_forward_timeout_ms ({}) must be shorter than request_complain_timeout_ms ({})",
                self.request_forward_timeout_ms, self.request_complain_timeout_ms
            )));
        }
        if self.leader_heartbeat_ms >= self.view_change_timeout_ms {
            return Err(ConfigError::Inconsistent(format!(
                "leader_heartbeat_ms ({}) must be shorter than view_change_timeout_ms ({})",
                self.leader_heartbeat_ms, self.view_change_timeout_ms
            )));
        }
        if self.pipeline_window < self.checkpoint_interval {
            return Err(ConfigError::Inconsistent(format!(
                "pipeline_window ({}) must be at least checkpoint_interval ({}): the sequence that \
                 makes the next checkpoint stable must fit between the watermarks",
                self.pipeline_window, self.checkpoint_interval
            )));
        }
        Ok(())
    }
}

impl KeyRotation {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.every_seconds != 0 {
            range("key_rotation.every_seconds", self.every_seconds, MIN_ROTATION_SECONDS, 10 * 365 * 24 * 3600)?;
        }
        range("key_rotation.every_blocks", self.every_blocks, 0, u32::MAX.into())
    }
}

/// Checks a channel id against Fabric's rule `[a-z][a-z0-9.-]{0,248}`.
pub fn validate_channel_id(channel_id: &str) -> Result<(), ConfigError> {
    let mut chars = channel_id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if !first_ok || !rest_ok || channel_id.len() > MAX_CHANNEL_ID_LEN {
        return Err(ConfigError::BadChannelId(channel_id.to_string()));
    }
    Ok(())
}

fn bound(what: &'static str, count: usize, max: usize) -> Result<(), ConfigError> {
    if count > max {
        return Err(ConfigError::TooMany { what, count, max });
    }
    Ok(())
}

fn range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::OutOfRange { field, value, expected: format!("between {min} and {max}") });
    }
    Ok(())
}

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

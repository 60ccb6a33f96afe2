//! The `configtx.yaml`-style profile the `channels genesis` command reads,
//! and the library functions behind it.
//!
//! The profile names organisations and consenters by the directories
//! `ca-tools network` writes (Fabric's MSP layout); every other section is
//! optional and defaults to [`BatchConfig::recommended`],
//! [`BftOptions::recommended`], no key rotation and the `majority` admin
//! policy. See `channels/examples/configtx.yaml` and docs/channels.md.

use std::path::{Path, PathBuf};

use ca_tools::network::IdentitySummary;
use ca_tools::NetworkSummary;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_norway::Value;

use crate::config::{BatchConfig, BftOptions, ChannelConfig, ConfigError, Consenter, KeyRotation, Organization};
use crate::files::{read_bounded, read_pem, read_pem_dir, FileError};
use crate::genesis::genesis_block;
use crate::proto::common::Block;

/// Largest profile file read.
pub const MAX_PROFILE_BYTES: u64 = 1024 * 1024;

/// Why a profile could not be turned into a channel configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A file could not be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The YAML is not a valid profile.
    #[error("{path}: invalid profile: {reason}")]
    Yaml {
        /// The profile file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A certificate the profile points to does not exist.
    #[error("{what}: no certificate found at {path}; run `ca-tools network` first or fix the path")]
    Missing {
        /// What was looked for.
        what: String,
        /// Where.
        path: PathBuf,
    },
    /// The resulting configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A channel profile (the YAML file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Directory relative paths start from; itself relative to the profile
    /// file. Default: the profile file's directory.
    #[serde(default)]
    pub crypto_dir: Option<PathBuf>,
    /// Member organisations.
    pub organizations: Vec<OrgProfile>,
    /// Consenters.
    pub consenters: Vec<ConsenterProfile>,
    /// Overrides of [`BatchConfig::recommended`].
    #[serde(default)]
    pub batch: Option<Value>,
    /// Overrides of [`BftOptions::recommended`].
    #[serde(default)]
    pub bft: Option<Value>,
    /// Key rotation policy (default: off).
    #[serde(default)]
    pub key_rotation: Option<Value>,
    /// Admin policy (default `majority`).
    #[serde(default)]
    pub admin_policy: Option<String>,
}

/// An organisation in a profile: an MSP directory, and/or explicit files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgProfile {
    /// MSP id.
    pub msp_id: String,
    /// An MSP directory: `cacerts/`, `tlscacerts/`, `crls/` are read.
    #[serde(default)]
    pub msp_dir: Option<PathBuf>,
    /// Extra root CA certificate files.
    #[serde(default)]
    pub root_certs: Vec<PathBuf>,
    /// Extra TLS root CA certificate files.
    #[serde(default)]
    pub tls_root_certs: Vec<PathBuf>,
    /// Extra CRL files.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
}

/// A consenter in a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsenterProfile {
    /// Consenter id.
    pub id: u32,
    /// Host name.
    pub host: String,
    /// Cluster port.
    pub port: u16,
    /// MSP id of its organisation.
    pub msp_id: String,
    /// The node's directory (`msp/signcerts/`, `tls/server.crt`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Identity certificate file (instead of `dir`).
    #[serde(default)]
    pub identity_cert: Option<PathBuf>,
    /// TLS certificate file (instead of `dir`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
}

impl Profile {
    /// Reads and parses a profile file. Relative paths in it are later
    /// resolved against `base` if given, else against `crypto_dir`, else
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let bytes = read_bounded(path, MAX_PROFILE_BYTES)?;
        let mut profile: Profile = serde_norway::from_slice(&bytes)
            .map_err(|e| ProfileError::Yaml { path: path.to_path_buf(), reason: e.to_string() })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        profile.crypto_dir = Some(match profile.crypto_dir.take() {
            Some(crypto) => dir.join(crypto),
            None => dir.to_path_buf(),
        });
        Ok(profile)
    }

    /// The channel configuration this profile describes for `channel_id`,
    /// reading certificates relative to `base` (default: `crypto_dir`). It
    /// is not validated; see [`genesis_from_profile`].
    pub fn to_config(&self, channel_id: &str, base: Option<&Path>) -> Result<ChannelConfig, ProfileError> {
        let base =
            base.map(Path::to_path_buf).or_else(|| self.crypto_dir.clone()).unwrap_or_else(|| PathBuf::from("."));
        let counts = [
            ("organisations", self.organizations.len(), crate::config::MAX_ORGS),
            ("consenters", self.consenters.len(), crate::config::MAX_CONSENTERS),
        ];
        for (what, count, max) in counts {
            if count > max {
                return Err(ConfigError::TooMany { what, count, max }.into());
            }
        }
        let orgs = self.organizations.iter().map(|org| org.to_org(&base)).collect::<Result<Vec<_>, _>>()?;
        let consenters = self.consenters.iter().map(|c| c.to_consenter(&base)).collect::<Result<Vec<_>, _>>()?;
        let yaml = |section: &str, e: serde_norway::Error| ProfileError::Yaml {
            path: base.clone(),
            reason: format!("{section}: {e}"),
        };
        Ok(ChannelConfig {
            channel_id: channel_id.to_string(),
            sequence: 0,
            orgs,
            consenters,
            batch: Some(overlay(BatchConfig::recommended(), &self.batch).map_err(|e| yaml("batch", e))?),
            bft: Some(overlay(BftOptions::recommended(), &self.bft).map_err(|e| yaml("bft", e))?),
            key_rotation: Some(
                overlay(KeyRotation::default(), &self.key_rotation).map_err(|e| yaml("key_rotation", e))?,
            ),
            admin_policy: self.admin_policy.clone().unwrap_or_else(|| "majority".into()),
        })
    }
}

impl OrgProfile {
    fn to_org(&self, base: &Path) -> Result<Organization, ProfileError> {
        let mut org = match &self.msp_dir {
            Some(dir) => Organization::from_msp_dir(&self.msp_id, &base.join(dir))?,
            None => Organization { msp_id: self.msp_id.clone(), ..Organization::default() },
        };
        let read_all = |files: &[PathBuf]| -> Result<Vec<String>, FileError> {
            files.iter().map(|f| read_pem(&base.join(f))).collect()
        };
        org.root_certs.extend(read_all(&self.root_certs)?);
        org.tls_root_certs.extend(read_all(&self.tls_root_certs)?);
        org.crls.extend(read_all(&self.crls)?);
        Ok(org)
    }
}

impl ConsenterProfile {
    fn to_consenter(&self, base: &Path) -> Result<Consenter, ProfileError> {
        let mut consenter = match &self.dir {
            Some(dir) => Consenter::from_node_dir(self.id, &self.host, self.port, &self.msp_id, &base.join(dir))?,
            None => Consenter {
                id: self.id,
                host: self.host.clone(),
                port: self.port.into(),
                msp_id: self.msp_id.clone(),
                ..Consenter::default()
            },
        };
        if let Some(file) = &self.identity_cert {
            consenter.identity_cert = read_pem(&base.join(file))?;
        }
        if let Some(file) = &self.tls_cert {
            consenter.tls_cert = read_pem(&base.join(file))?;
        }
        for (what, pem) in [("identity", &consenter.identity_cert), ("TLS", &consenter.tls_cert)] {
            if pem.trim().is_empty() {
                return Err(ProfileError::Missing {
                    what: format!("consenter {} {what} certificate", self.id),
                    path: self.dir.as_ref().map_or_else(|| base.to_path_buf(), |d| base.join(d)),
                });
            }
        }
        Ok(consenter)
    }
}

impl Organization {
    /// An organisation from a Fabric MSP directory: `cacerts/`,
    /// `tlscacerts/` and `crls/` (all PEM files in each).
    pub fn from_msp_dir(msp_id: &str, msp_dir: &Path) -> Result<Self, ProfileError> {
        let org = Organization {
            msp_id: msp_id.to_string(),
            root_certs: read_pem_dir(&msp_dir.join("cacerts"))?,
            tls_root_certs: read_pem_dir(&msp_dir.join("tlscacerts"))?,
            crls: read_pem_dir(&msp_dir.join("crls"))?,
        };
        if org.root_certs.is_empty() {
            return Err(ProfileError::Missing {
                what: format!("organisation {msp_id} root CA"),
                path: msp_dir.join("cacerts"),
            });
        }
        Ok(org)
    }
}

impl Consenter {
    /// A consenter from a node directory in the MSP layout: the identity
    /// certificate is the single file in `msp/signcerts/`, the TLS
    /// certificate is `tls/server.crt`.
    pub fn from_node_dir(id: u32, host: &str, port: u16, msp_id: &str, node_dir: &Path) -> Result<Self, ProfileError> {
        let signcerts = node_dir.join("msp").join("signcerts");
        let identity = read_pem_dir(&signcerts)?;
        let [identity_cert] = <[String; 1]>::try_from(identity).map_err(|found| ProfileError::Missing {
            what: format!("consenter {id} identity certificate (exactly one file, found {})", found.len()),
            path: signcerts.clone(),
        })?;
        let tls_path = node_dir.join("tls").join("server.crt");
        if !tls_path.is_file() {
            return Err(ProfileError::Missing { what: format!("consenter {id} TLS certificate"), path: tls_path });
        }
        Ok(Consenter {
            id,
            host: host.to_string(),
            port: port.into(),
            msp_id: msp_id.to_string(),
            identity_cert,
            tls_cert: read_pem(&tls_path)?,
            mac_public_key: read_mac_public_key(&node_dir.join("mac.pub"))?,
        })
    }
}

/// The configuration of `channel_id` for a consortium generated by
/// `ca_tools::generate_network`: every org (from its verifying MSP
/// `<org>/ca/msp`) and every orderer as a consenter, numbered 1, 2, … in file
/// order, reachable at `endpoint(index, orderer)` (host, port). Recommended
/// settings otherwise; validated. This is what `orderer dev` needs.
pub fn config_from_network(
    channel_id: &str,
    network: &NetworkSummary,
    endpoint: impl Fn(usize, &IdentitySummary) -> (String, u16),
) -> Result<ChannelConfig, ProfileError> {
    let orgs = network
        .orgs
        .iter()
        .map(|org| Organization::from_msp_dir(&org.msp_id, &org.msp_dir))
        .collect::<Result<Vec<_>, _>>()?;
    let mut consenters = Vec::new();
    for (index, (msp_id, orderer)) in network.orderers().into_iter().enumerate() {
        let (host, port) = endpoint(index, orderer);
        let id = u32::try_from(index + 1).map_err(|_| ConfigError::TooMany {
            what: "consenters",
            count: index + 1,
            max: crate::config::MAX_CONSENTERS,
        })?;
        consenters.push(Consenter::from_node_dir(id, &host, port, msp_id, &orderer.dir)?);
    }
    let config = ChannelConfig::with_defaults(channel_id, orgs, consenters);
    config.validate()?;
    Ok(config)
}

/// A consenter's X25519 MAC public key, written by `orderer keygen` as 64
/// hex digits in `mac.pub` beside its msp/ and tls/ folders (empty when the
/// file is absent).
fn read_mac_public_key(path: &Path) -> Result<Vec<u8>, ProfileError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = String::from_utf8(read_bounded(path, 1024)?).unwrap_or_default();
    match hex::decode(text.trim()) {
        Ok(key) if key.len() == 32 => Ok(key),
        _ => {
            Err(ProfileError::Missing { what: "an X25519 public key (64 hex digits)".into(), path: path.to_path_buf() })
        }
    }
}

/// Builds and fully validates the configuration of `channel_id` from the
/// profile at `profile_path` (certificates relative to `base` if given), and
/// returns it with its genesis block. This is what `channels genesis` does.
pub fn genesis_from_profile(
    profile_path: &Path,
    channel_id: &str,
    base: Option<&Path>,
) -> Result<(ChannelConfig, Block), ProfileError> {
    let config = Profile::load(profile_path)?.to_config(channel_id, base)?;
    config.validate()?;
    let block = genesis_block(&config);
    Ok((config, block))
}

/// `defaults` with the keys of the YAML mapping `overrides` replaced.
fn overlay<T: Serialize + DeserializeOwned>(defaults: T, overrides: &Option<Value>) -> Result<T, serde_norway::Error> {
    let mut merged = serde_norway::to_value(defaults)?;
    if let (Some(Value::Mapping(over)), Value::Mapping(base)) = (overrides, &mut merged) {
        for (key, value) in over {
            base.insert(key.clone(), value.clone());
        }
    } else if let Some(other) = overrides {
        if !other.is_null() {
            merged = other.clone();
        }
    }
    serde_norway::from_value(merged)
}

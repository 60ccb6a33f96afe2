//! A whole consortium from one YAML file (like cryptogen's `generate`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ca::{check_name, check_san, Ca, InitCaOptions, IssueRequest, Validity};
use crate::error::PkiError;
use crate::files;
use crate::keys::KeyType;
use crate::role::Role;

/// Most organisations in one network file.
pub const ORGS_MAX: usize = 64;
/// Most identities per organisation.
pub const IDENTITIES_PER_ORG_MAX: usize = 1024;
/// Largest network file accepted, bytes.
pub const CONFIG_BYTES_MAX: usize = 1 << 20;

fn default_ca_days() -> u32 {
    3650
}

fn default_leaf_days() -> u32 {
    365
}

/// The whole consortium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The organisations.
    pub orgs: Vec<OrgSpec>,
}

/// One organisation and the identities to issue for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSpec {
    /// Organisation name: directory name under the output and CA subject.
    pub name: String,
    /// MSP id, carried as subject O in every certificate.
    pub msp_id: String,
    /// Key type for the CAs and every identity (default ecdsa-p256).
    #[serde(default = "default_key_type")]
    pub key_type: KeyType,
    /// CA validity in days (default 3650).
    #[serde(default = "default_ca_days")]
    pub ca_days: u32,
    /// Identity certificate validity in days (default 365).
    #[serde(default = "default_leaf_days")]
    pub days: u32,
    /// Ordering nodes (`orderers/<name>/`).
    #[serde(default)]
    pub orderers: Vec<IdentitySpec>,
    /// Peers (`peers/<name>/`).
    #[serde(default)]
    pub peers: Vec<IdentitySpec>,
    /// Admins (`users/<name>/`).
    #[serde(default)]
    pub admins: Vec<IdentitySpec>,
    /// Clients (`users/<name>/`).
    #[serde(default)]
    pub clients: Vec<IdentitySpec>,
    /// Auditors (`users/<name>/`).
    #[serde(default)]
    pub auditors: Vec<IdentitySpec>,
}

fn default_key_type() -> KeyType {
    KeyType::EcdsaP256
}

/// One identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySpec {
    /// Name: subject CN, directory name, and a DNS SAN when it is a DNS name.
    pub name: String,
    /// Extra SANs (DNS names or IP addresses), e.g. `localhost`, `127.0.0.1`.
    #[serde(default)]
    pub sans: Vec<String>,
}

impl NetworkConfig {
    /// Parse the YAML text of a network file.
    pub fn from_yaml(text: &str) -> Result<Self, PkiError> {
        if text.len() > CONFIG_BYTES_MAX {
            return Err(PkiError::TooLarge {
                what: "network config".into(),
                size: text.len() as u64,
                limit: CONFIG_BYTES_MAX as u64,
            });
        }
        let cfg: NetworkConfig =
            serde_norway::from_str(text).map_err(|e| PkiError::Config(format!("network YAML: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read and parse a network file.
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let text = files::read_text(path)?;
        Self::from_yaml(&text).map_err(|e| match e {
            PkiError::Config(m) => PkiError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Check names, uniqueness and limits.
    pub fn validate(&self) -> Result<(), PkiError> {
        if self.orgs.is_empty() || self.orgs.len() > ORGS_MAX {
            return Err(PkiError::Config(format!("a network needs 1..={ORGS_MAX} orgs, found {}", self.orgs.len())));
        }
        let mut org_names = HashSet::new();
        let mut msp_ids = HashSet::new();
        for org in &self.orgs {
            check_name("org", &org.name)?;
            check_name("MSP id", &org.msp_id)?;
            if !org_names.insert(org.name.to_ascii_lowercase()) {
                return Err(PkiError::Config(format!("org '{}' appears twice", org.name)));
            }
            if !msp_ids.insert(org.msp_id.clone()) {
                return Err(PkiError::Config(format!("MSP id '{}' appears twice", org.msp_id)));
            }
            let identities = org.identities();
            if identities.len() > IDENTITIES_PER_ORG_MAX {
                return Err(PkiError::Config(format!(
                    "org '{}' has more than {IDENTITIES_PER_ORG_MAX} identities",
                    org.name
                )));
            }
            let mut dirs = HashSet::new();
            for (role, spec) in identities {
                check_name("identity name", &spec.name)?;
                if spec.sans.len() > crate::ca::SANS_MAX {
                    return Err(PkiError::Config(format!(
                        "identity '{}' has more than {} SANs",
                        spec.name,
                        crate::ca::SANS_MAX
                    )));
                }
                for san in &spec.sans {
                    check_san(san)?;
                }
                if !dirs.insert((role_dir(role), spec.name.to_ascii_lowercase())) {
                    return Err(PkiError::Config(format!(
                        "org '{}': identity '{}' appears twice in {}/",
                        org.name,
                        spec.name,
                        role_dir(role)
                    )));
                }
            }
        }
        Ok(())
    }
}

impl OrgSpec {
    /// Every identity with its role, in file order: orderers, peers, admins, clients, auditors.
    pub fn identities(&self) -> Vec<(Role, &IdentitySpec)> {
        let groups = [
            (Role::Orderer, &self.orderers),
            (Role::Peer, &self.peers),
            (Role::Admin, &self.admins),
            (Role::Client, &self.clients),
            (Role::Auditor, &self.auditors),
        ];
        groups.into_iter().flat_map(|(role, list)| list.iter().map(move |s| (role, s))).collect()
    }
}

/// The sub-directory of an org that holds identities of `role`.
pub fn role_dir(role: Role) -> &'static str {
    match role {
        Role::Orderer => "orderers",
        Role::Peer => "peers",
        Role::Client | Role::Admin | Role::Auditor => "users",
    }
}

/// What [`generate_network`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkSummary {
    /// One entry per org, in file order.
    pub orgs: Vec<OrgSummary>,
}

/// One org of a generated network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgSummary {
    /// Org name.
    pub name: String,
    /// MSP id.
    pub msp_id: String,
    /// `OUT/<org>/ca`.
    pub ca_dir: PathBuf,
    /// The org's verifying MSP, `OUT/<org>/ca/msp`.
    pub msp_dir: PathBuf,
    /// Signing root CA, PEM.
    pub ca_pem: String,
    /// TLS root CA, PEM.
    pub tls_ca_pem: String,
    /// Every identity issued.
    pub identities: Vec<IdentitySummary>,
}

/// One identity of a generated network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentitySummary {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Identity directory.
    pub dir: PathBuf,
    /// `dir/msp`.
    pub msp_dir: PathBuf,
    /// `dir/tls`.
    pub tls_dir: PathBuf,
    /// SANs requested (besides the name).
    pub sans: Vec<String>,
}

impl NetworkSummary {
    /// Every orderer of the network as (MSP id, identity), in file order.
    pub fn orderers(&self) -> Vec<(&str, &IdentitySummary)> {
        self.orgs
            .iter()
            .flat_map(|o| o.identities.iter().filter(|i| i.role == Role::Orderer).map(move |i| (o.msp_id.as_str(), i)))
            .collect()
    }
}

/// Generate every CA and identity of `cfg` under `out`: `out/<org>/ca/`,
/// `out/<org>/orderers/<name>/`, `out/<org>/peers/<name>/`,
/// `out/<org>/users/<name>/`. Refuses to overwrite unless `force`.
pub fn generate_network(cfg: &NetworkConfig, out: &Path, force: bool) -> Result<NetworkSummary, PkiError> {
    cfg.validate()?;
    if !force {
        for org in &cfg.orgs {
            let dir = out.join(&org.name);
            if dir.exists() {
                return Err(PkiError::AlreadyExists(dir));
            }
        }
    }
    let mut orgs = Vec::new();
    for org in &cfg.orgs {
        let org_dir = out.join(&org.name);
        let mut ca = Ca::init(
            &InitCaOptions {
                org: org.name.clone(),
                msp_id: org.msp_id.clone(),
                key_type: org.key_type,
                days: org.ca_days,
            },
            &org_dir.join("ca"),
            force,
        )?;
        let mut identities = Vec::new();
        for (role, spec) in org.identities() {
            let dir = org_dir.join(role_dir(role)).join(&spec.name);
            let issued = ca.issue(
                IssueRequest {
                    role,
                    name: spec.name.clone(),
                    sans: spec.sans.clone(),
                    key_type: org.key_type,
                    validity: Validity::days_from_now(org.days)?,
                    sign_key: None,
                    tls_key: None,
                },
                &dir,
                force,
            )?;
            identities.push(IdentitySummary {
                name: issued.name,
                role,
                dir: issued.dir,
                msp_dir: issued.msp_dir,
                tls_dir: issued.tls_dir,
                sans: spec.sans.clone(),
            });
        }
        orgs.push(OrgSummary {
            name: org.name.clone(),
            msp_id: org.msp_id.clone(),
            ca_dir: ca.dir().to_path_buf(),
            msp_dir: ca.msp_dir(),
            ca_pem: ca.sign_ca_pem().to_string(),
            tls_ca_pem: ca.tls_ca_pem().to_string(),
            identities,
        });
    }
    Ok(NetworkSummary { orgs })
}

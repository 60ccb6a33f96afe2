//! Roles carried in certificates (Fabric NodeOUs plus `auditor`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The role of an identity, carried as the subject OU of its certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordering node.
    Orderer,
    /// A peer node.
    Peer,
    /// An application client.
    Client,
    /// An organisation administrator.
    Admin,
    /// An auditor (reads vote logs and blocks).
    Auditor,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 5] = [Role::Orderer, Role::Peer, Role::Client, Role::Admin, Role::Auditor];

    /// The OU string for this role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Orderer => "orderer",
            Role::Peer => "peer",
            Role::Client => "client",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    /// Whether this role's TLS certificate is a server certificate (and client too).
    pub fn is_node(self) -> bool {
        match self {
            Role::Orderer | Role::Peer => true,
            Role::Client | Role::Admin | Role::Auditor => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the role names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{0}' (expected one of: orderer, peer, client, admin, auditor)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_round_trips_through_its_ou_string() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
        }
        assert_eq!("ORDERER".parse::<Role>(), Ok(Role::Orderer));
    }

    #[test]
    fn unknown_role_names_the_choices() {
        let err = "member".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("orderer, peer, client, admin, auditor"));
    }
}

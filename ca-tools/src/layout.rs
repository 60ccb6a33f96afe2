//! Fabric's MSP layout on disk: file names and writers.

use std::path::{Path, PathBuf};

use crate::error::PkiError;
use crate::files::{self, Secrecy};
use crate::role::Role;

/// `msp/cacerts/` file name of the signing root.
pub const CACERT_FILE: &str = "ca-cert.pem";
/// `msp/tlscacerts/` file name of the TLS root.
pub const TLSCACERT_FILE: &str = "tlsca-cert.pem";
/// `msp/keystore/` file name of the enrollment key.
pub const KEY_FILE: &str = "priv_sk";

/// Fabric's NodeOUs `config.yaml` (the auditor role is ours; Fabric ignores it).
pub fn node_ous_config_yaml() -> String {
    let mut out = String::from("NodeOUs:\n  Enable: true\n");
    for (key, role) in [
        ("ClientOUIdentifier", Role::Client),
        ("PeerOUIdentifier", Role::Peer),
        ("AdminOUIdentifier", Role::Admin),
        ("OrdererOUIdentifier", Role::Orderer),
    ] {
        out.push_str(&format!(
            "  {key}:\n    Certificate: cacerts/{CACERT_FILE}\n    OrganizationalUnitIdentifier: {role}\n"
        ));
    }
    out
}

fn tls_stem(role: Role) -> &'static str {
    if role.is_node() {
        "server"
    } else {
        "client"
    }
}

/// The files an identity directory holds (checked before writing anything).
pub(crate) fn identity_files(out: &Path, name: &str, role: Role) -> Vec<PathBuf> {
    let stem = tls_stem(role);
    vec![
        out.join("msp/signcerts").join(format!("{name}-cert.pem")),
        out.join("msp/keystore").join(KEY_FILE),
        out.join("tls").join(format!("{stem}.crt")),
        out.join("tls").join(format!("{stem}.key")),
        out.join("tls/ca.crt"),
        out.join("msp/config.yaml"),
        out.join("msp/cacerts").join(CACERT_FILE),
        out.join("msp/tlscacerts").join(TLSCACERT_FILE),
    ]
}

/// The contents of one identity directory.
pub(crate) struct IdentityFiles<'a> {
    pub name: &'a str,
    pub role: Role,
    pub sign_ca_pem: &'a str,
    pub tls_ca_pem: &'a str,
    pub signcert_pem: &'a str,
    pub sign_key_pem: &'a str,
    pub tls_cert_pem: &'a str,
    pub tls_key_pem: &'a str,
}

/// Write the MSP every verifier of an org needs: cacerts, tlscacerts, config.yaml.
pub(crate) fn write_verifying_msp(
    msp: &Path,
    sign_ca_pem: &str,
    tls_ca_pem: &str,
    force: bool,
) -> Result<(), PkiError> {
    files::write_file(&msp.join("cacerts").join(CACERT_FILE), sign_ca_pem.as_bytes(), Secrecy::Public, force)?;
    files::write_file(&msp.join("tlscacerts").join(TLSCACERT_FILE), tls_ca_pem.as_bytes(), Secrecy::Public, force)?;
    files::write_file(&msp.join("config.yaml"), node_ous_config_yaml().as_bytes(), Secrecy::Public, force)?;
    files::ensure_dir(&msp.join("crls"))
}

/// Write `out/msp/{cacerts,tlscacerts,signcerts,keystore,config.yaml}` and
/// `out/tls/{ca.crt,server|client.crt,server|client.key}`.
pub(crate) fn write_identity(out: &Path, f: &IdentityFiles<'_>, force: bool) -> Result<(), PkiError> {
    let msp = out.join("msp");
    // signcerts must hold exactly one certificate: clear older ones on --force.
    let signcerts = msp.join("signcerts");
    let signcert_path = signcerts.join(format!("{}-cert.pem", f.name));
    for old in files::files_in(&signcerts)? {
        if old != signcert_path {
            if !force {
                return Err(PkiError::AlreadyExists(old));
            }
            std::fs::remove_file(&old).map_err(files::io_err(&old))?;
        }
    }
    write_verifying_msp(&msp, f.sign_ca_pem, f.tls_ca_pem, force)?;
    files::write_file(&signcert_path, f.signcert_pem.as_bytes(), Secrecy::Public, force)?;
    files::write_file(&msp.join("keystore").join(KEY_FILE), f.sign_key_pem.as_bytes(), Secrecy::Secret, force)?;
    let tls = out.join("tls");
    let stem = tls_stem(f.role);
    files::write_file(&tls.join("ca.crt"), f.tls_ca_pem.as_bytes(), Secrecy::Public, force)?;
    files::write_file(&tls.join(format!("{stem}.crt")), f.tls_cert_pem.as_bytes(), Secrecy::Public, force)?;
    files::write_file(&tls.join(format!("{stem}.key")), f.tls_key_pem.as_bytes(), Secrecy::Secret, force)
}

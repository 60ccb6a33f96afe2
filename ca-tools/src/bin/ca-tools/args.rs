//! Command-line arguments.

use std::path::PathBuf;

use ca_tools::{KeyType, Role};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ca-tools",
    version,
    about = "Consortium PKI: CAs, role-carrying certificates in Fabric's MSP layout, verification, CRLs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create an org's signing root CA and TLS root CA in DIR.
    InitCa {
        /// Organisation name (e.g. Org1).
        #[arg(long)]
        org: String,
        /// MSP id (e.g. Org1MSP), carried as subject O in every certificate.
        #[arg(long)]
        msp_id: String,
        /// Output CA directory.
        #[arg(long)]
        out: PathBuf,
        /// ecdsa-p256 or ed25519.
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: KeyType,
        /// CA validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue an enrollment and a TLS certificate in Fabric's MSP layout.
    Issue {
        /// CA directory made by init-ca.
        #[arg(long)]
        ca: PathBuf,
        /// orderer, peer, client, admin or auditor.
        #[arg(long)]
        role: Role,
        /// Identity name (subject CN; also a DNS SAN).
        #[arg(long)]
        name: String,
        /// Extra SAN (DNS name or IP address); repeatable.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Output identity directory (msp/ and tls/ inside).
        #[arg(long)]
        out: PathBuf,
        /// Key type (default: the CA's).
        #[arg(long)]
        key_type: Option<KeyType>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Generate a whole consortium from a crypto-config YAML file.
    Network {
        /// The YAML file (see examples/crypto-config.yaml).
        #[arg(long)]
        config: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Verify a certificate against trusted roots; exit 1 with the reason on failure.
    Verify {
        /// Trusted roots: PEM files, MSP directories, CA directories or
        /// directories of PEM files; repeatable or comma-separated.
        #[arg(long, required = true, value_delimiter = ',')]
        roots: Vec<PathBuf>,
        /// Allowed role(s); repeatable or comma-separated (default: any).
        #[arg(long, value_delimiter = ',')]
        role: Vec<Role>,
        /// CRL file (PEM); repeatable.
        #[arg(long)]
        crl: Vec<PathBuf>,
        /// Verification time, RFC 3339 (default: now).
        #[arg(long)]
        at: Option<String>,
        /// The certificate (PEM or DER).
        cert: PathBuf,
    },
    /// Show subject, MSP id, role, SANs, validity, fingerprint and key type.
    Inspect {
        /// The certificate (PEM or DER).
        cert: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a certificate issued by this CA (listed by the next `crl`).
    Revoke {
        /// CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// The certificate to revoke.
        cert: PathBuf,
    },
    /// Write a signed CRL of the CA's revocations.
    Crl {
        /// CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// Output file (PEM).
        #[arg(long)]
        out: PathBuf,
        /// The TLS CA's CRL instead of the signing CA's.
        #[arg(long)]
        tls: bool,
        /// Days until the CRL's next update.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Re-issue an identity (same name, role, SANs; same keys unless --new-key).
    Renew {
        /// CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// The identity's enrollment certificate (.../msp/signcerts/*.pem).
        #[arg(long)]
        cert: PathBuf,
        /// Generate new keys instead of reusing the identity's keys.
        #[arg(long)]
        new_key: bool,
        /// Output identity directory.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Overwrite existing files (needed when --out is the identity's own directory).
        #[arg(long)]
        force: bool,
    },
}

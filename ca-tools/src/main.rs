//! `ca-tools`: the operator's consortium PKI tool (like Fabric's cryptogen and
//! fabric-ca-client). See docs/ca-tools.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ca_tools::ca::{Authority, Ca, InitCaOptions, IssueRequest, Validity};
use ca_tools::certinfo::CertInfo;
use ca_tools::{files, inspect, verify_identity, KeyType, OrgTrust, PkiError, Role, SigningKey};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ca-tools",
    version,
    about = "Consortium PKI: CAs, role-carrying certificates in Fabric's MSP layout, verification, CRLs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

/// A failure of the command: a PKI error or a failed verification.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Pki(#[from] PkiError),
    #[error("verification failed: {0}")]
    Verify(#[from] ca_tools::VerifyError),
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ca-tools: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::InitCa {
            org,
            msp_id,
            out,
            key_type,
            days,
            force,
        } => {
            let ca = Ca::init(
                &InitCaOptions {
                    org,
                    msp_id,
                    key_type,
                    days,
                },
                &out,
                force,
            )?;
            println!(
                "created CA of {} ({}) in {}: signing root {}, TLS root {}, MSP {}",
                ca.state.org,
                ca.msp_id(),
                out.display(),
                out.join(ca_tools::ca::paths::SIGN_CERT).display(),
                out.join(ca_tools::ca::paths::TLS_CERT).display(),
                ca.msp_dir().display()
            );
            Ok(())
        }
        Command::Issue {
            ca,
            role,
            name,
            sans,
            out,
            key_type,
            days,
            force,
        } => {
            let mut ca = Ca::load(&ca)?;
            let key_type = key_type.unwrap_or(ca.state.key_type);
            let req = IssueRequest {
                role,
                name,
                sans,
                key_type,
                validity: Validity::days_from_now(days)?,
                sign_key: None,
                tls_key: None,
            };
            let issued = ca.issue(req, &out, force)?;
            println!(
                "issued {} '{}' of {}: enrollment serial {}, TLS serial {}, in {}",
                issued.role,
                issued.name,
                ca.msp_id(),
                issued.sign_serial,
                issued.tls_serial,
                out.display()
            );
            Ok(())
        }
        Command::Network { config, out, force } => {
            let cfg = ca_tools::NetworkConfig::load(&config)?;
            let summary = ca_tools::generate_network(&cfg, &out, force)?;
            for org in &summary.orgs {
                println!(
                    "org {} ({}): CA {}, {} identities",
                    org.name,
                    org.msp_id,
                    org.ca_dir.display(),
                    org.identities.len()
                );
                for id in &org.identities {
                    println!("  {} {} -> {}", id.role, id.name, id.dir.display());
                }
            }
            Ok(())
        }
        Command::Verify {
            roots,
            role,
            crl,
            at,
            cert,
        } => verify(&roots, &role, &crl, at.as_deref(), &cert),
        Command::Inspect { cert, json } => {
            let info = inspect(&files::read_bounded(&cert)?)?;
            if json {
                let text = serde_json::to_string_pretty(&info)
                    .map_err(|e| CliError::Usage(format!("cannot encode JSON: {e}")))?;
                println!("{text}");
            } else {
                print_info(&info);
            }
            Ok(())
        }
        Command::Revoke { ca, cert } => {
            let mut ca = Ca::load(&ca)?;
            let record = ca.revoke(&files::read_bounded(&cert)?)?;
            println!(
                "revoked serial {} ('{}', {} CA); run `ca-tools crl` to publish it",
                record.serial,
                record.name,
                match record.authority {
                    Authority::Sign => "signing",
                    Authority::Tls => "TLS",
                }
            );
            Ok(())
        }
        Command::Crl {
            ca,
            out,
            tls,
            days,
            force,
        } => {
            let mut ca = Ca::load(&ca)?;
            let authority = if tls { Authority::Tls } else { Authority::Sign };
            ca.write_crl(authority, days, &out, force)?;
            println!(
                "wrote CRL to {} (also published in {})",
                out.display(),
                ca.msp_dir().join("crls").display()
            );
            Ok(())
        }
        Command::Renew {
            ca,
            cert,
            new_key,
            out,
            days,
            force,
        } => {
            let mut ca = Ca::load(&ca)?;
            let cert_bytes = files::read_bounded(&cert)?;
            let keys = if new_key {
                None
            } else {
                Some(keys_next_to(&cert)?)
            };
            let issued = ca.renew(
                &cert_bytes,
                keys,
                Validity::days_from_now(days)?,
                &out,
                force,
            )?;
            println!(
                "renewed {} '{}': enrollment serial {}, TLS serial {}, in {}",
                issued.role,
                issued.name,
                issued.sign_serial,
                issued.tls_serial,
                out.display()
            );
            Ok(())
        }
    }
}

/// The enrollment and TLS keys of the identity whose signcert is `cert`
/// (`ID/msp/signcerts/x.pem` -> `ID/msp/keystore/priv_sk`, `ID/tls/*.key`).
fn keys_next_to(cert: &Path) -> Result<(SigningKey, SigningKey), CliError> {
    let identity_dir = cert
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "signcerts"))
        .and_then(Path::parent)
        .and_then(Path::parent)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{} is not inside an identity's msp/signcerts/, so its keys cannot be found; pass --new-key to generate new keys",
                cert.display()
            ))
        })?;
    let sign_key_path = identity_dir
        .join("msp/keystore")
        .join(ca_tools::layout::KEY_FILE);
    let tls_key_path = ["server.key", "client.key"]
        .iter()
        .map(|f| identity_dir.join("tls").join(f))
        .find(|p| p.exists())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "no tls/server.key or tls/client.key in {}; pass --new-key to generate new keys",
                identity_dir.display()
            ))
        })?;
    let sign = SigningKey::from_pkcs8_pem(&files::read_text(&sign_key_path)?)?;
    let tls = SigningKey::from_pkcs8_pem(&files::read_text(&tls_key_path)?)?;
    Ok((sign, tls))
}

fn print_info(info: &CertInfo) {
    println!("subject:     {}", info.subject);
    println!("issuer:      {}", info.issuer);
    println!("serial:      {}", info.serial);
    println!("msp id:      {}", info.msp_id.as_deref().unwrap_or("none"));
    println!(
        "role:        {}",
        info.role
            .map(|r| r.to_string())
            .unwrap_or_else(|| "none".into())
    );
    println!("sans:        {}", info.sans.join(", "));
    println!("not before:  {}", info.not_before);
    println!("not after:   {}", info.not_after);
    println!("days left:   {}", info.days_left);
    println!("sha256:      {}", info.sha256_fingerprint);
    println!("key type:    {}", info.key_type);
    println!("is CA:       {}", info.is_ca);
    println!("key usage:   {}", info.key_usage.join(", "));
    println!("ext usage:   {}", info.extended_key_usage.join(", "));
}

/// Root PEMs from a PEM file, an MSP dir, a CA dir or a directory of PEM files.
fn root_pems(path: &Path) -> Result<Vec<String>, CliError> {
    if path.is_file() {
        return Ok(vec![files::read_text(path)?]);
    }
    let msp = if path.join(ca_tools::ca::paths::STATE).exists() {
        path.join(ca_tools::ca::paths::MSP)
    } else {
        path.to_path_buf()
    };
    let dirs = if msp.join("cacerts").is_dir() {
        vec![msp.join("cacerts"), msp.join("tlscacerts")]
    } else {
        vec![msp]
    };
    let mut out = Vec::new();
    for d in dirs {
        for f in files::files_in(&d)? {
            out.push(files::read_text(&f)?);
        }
    }
    if out.is_empty() {
        return Err(CliError::Usage(format!(
            "no root certificate found in {}",
            path.display()
        )));
    }
    Ok(out)
}

fn parse_at(at: Option<&str>) -> Result<i64, CliError> {
    match at {
        None => Ok(ca_tools::now_unix()),
        Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|e| {
                CliError::Usage(format!(
                    "--at '{s}' is not an RFC 3339 time (e.g. 2030-01-31T12:00:00Z): {e}"
                ))
            }),
    }
}

/// Group roots by the MSP id they carry (subject O) into one OrgTrust each,
/// giving each CRL to the org whose root signed it.
fn trust_from(roots: &[PathBuf], crls: &[PathBuf]) -> Result<Vec<OrgTrust>, CliError> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for path in roots {
        for pem_text in root_pems(path)? {
            for der in ca_tools::pemutil::ders_with_tag(pem_text.as_bytes(), "CERTIFICATE", "root")?
            {
                let info = inspect(&der)?;
                let msp = info.msp_id.unwrap_or_else(|| info.subject.clone());
                let pem = ca_tools::pemutil::cert_pem(&der);
                match groups.iter_mut().find(|(m, _)| *m == msp) {
                    Some((_, list)) => list.push(pem),
                    None => groups.push((msp, vec![pem])),
                }
            }
        }
    }
    let mut crl_groups: Vec<Vec<String>> = vec![Vec::new(); groups.len()];
    for path in crls {
        let text = files::read_text(path)?;
        let owner = groups
            .iter()
            .position(|(msp, list)| {
                OrgTrust::new(msp, list, &[], std::slice::from_ref(&text)).is_ok()
            })
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "CRL {} is not valid or not signed by any of the given roots",
                    path.display()
                ))
            })?;
        crl_groups[owner].push(text);
    }
    let mut orgs = Vec::new();
    for ((msp, list), crl_list) in groups.iter().zip(crl_groups) {
        orgs.push(OrgTrust::new(msp, list, &[], &crl_list)?);
    }
    Ok(orgs)
}

fn verify(
    roots: &[PathBuf],
    role: &[Role],
    crls: &[PathBuf],
    at: Option<&str>,
    cert: &Path,
) -> Result<(), CliError> {
    let at_unix = parse_at(at)?;
    let orgs = trust_from(roots, crls)?;
    let cert_bytes = files::read_bounded(cert)?;
    let id = verify_identity(&cert_bytes, &orgs, at_unix, role)?;
    println!(
        "ok: subject={} msp_id={} role={}",
        id.subject, id.msp_id, id.role
    );
    Ok(())
}

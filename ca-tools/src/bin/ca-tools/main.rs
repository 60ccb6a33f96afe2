//! `ca-tools`: the operator's consortium PKI tool (like Fabric's cryptogen and
//! fabric-ca-client). See docs/ca-tools.md.

mod args;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use ca_tools::ca::{Authority, Ca, InitCaOptions, IssueRequest, Validity};
use ca_tools::certinfo::CertInfo;
use ca_tools::{files, inspect, PkiError, SigningKey};
use clap::Parser;

use args::{Cli, Command};

/// A failure of the command: a PKI error or a failed verification.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
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
        Command::InitCa { org, msp_id, out, key_type, days, force } => {
            let ca = Ca::init(&InitCaOptions { org, msp_id, key_type, days }, &out, force)?;
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
        Command::Issue { ca, role, name, sans, out, key_type, days, force } => {
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
        Command::Verify { roots, role, crl, at, cert } => verify::verify(&roots, &role, &crl, at.as_deref(), &cert),
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
        Command::Crl { ca, out, tls, days, force } => {
            let mut ca = Ca::load(&ca)?;
            let authority = if tls { Authority::Tls } else { Authority::Sign };
            ca.write_crl(authority, days, &out, force)?;
            println!("wrote CRL to {} (also published in {})", out.display(), ca.msp_dir().join("crls").display());
            Ok(())
        }
        Command::Renew { ca, cert, new_key, out, days, force } => {
            let mut ca = Ca::load(&ca)?;
            let cert_bytes = files::read_bounded(&cert)?;
            let keys = if new_key { None } else { Some(keys_next_to(&cert)?) };
            let issued = ca.renew(&cert_bytes, keys, Validity::days_from_now(days)?, &out, force)?;
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
    let sign_key_path = identity_dir.join("msp/keystore").join(ca_tools::layout::KEY_FILE);
    let tls_key_path =
        ["server.key", "client.key"].iter().map(|f| identity_dir.join("tls").join(f)).find(|p| p.exists()).ok_or_else(
            || {
                CliError::Usage(format!(
                    "no tls/server.key or tls/client.key in {}; pass --new-key to generate new keys",
                    identity_dir.display()
                ))
            },
        )?;
    let sign = SigningKey::from_pkcs8_pem(&files::read_text(&sign_key_path)?)?;
    let tls = SigningKey::from_pkcs8_pem(&files::read_text(&tls_key_path)?)?;
    Ok((sign, tls))
}

fn print_info(info: &CertInfo) {
    println!("subject:     {}", info.subject);
    println!("issuer:      {}", info.issuer);
    println!("serial:      {}", info.serial);
    println!("msp id:      {}", info.msp_id.as_deref().unwrap_or("none"));
    println!("role:        {}", info.role.map(|r| r.to_string()).unwrap_or_else(|| "none".into()));
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

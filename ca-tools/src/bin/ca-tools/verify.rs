//! `ca-tools verify`: trust from root files and directories, then verify.

use std::path::{Path, PathBuf};

use ca_tools::{files, inspect, verify_identity, OrgTrust, Role};

use crate::CliError;

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
    let dirs = if msp.join("cacerts").is_dir() { vec![msp.join("cacerts"), msp.join("tlscacerts")] } else { vec![msp] };
    let mut out = Vec::new();
    for d in dirs {
        for f in files::files_in(&d)? {
            out.push(files::read_text(&f)?);
        }
    }
    if out.is_empty() {
        return Err(CliError::Usage(format!("no root certificate found in {}", path.display())));
    }
    Ok(out)
}

fn parse_at(at: Option<&str>) -> Result<i64, CliError> {
    match at {
        None => Ok(ca_tools::now_unix()),
        Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|e| {
                CliError::Usage(format!("--at '{s}' is not an RFC 3339 time (e.g. 2030-01-31T12:00:00Z): {e}"))
            }),
    }
}

/// Group roots by the MSP id they carry (subject O) into one OrgTrust each,
/// giving each CRL to the org whose root signed it.
fn trust_from(roots: &[PathBuf], crls: &[PathBuf]) -> Result<Vec<OrgTrust>, CliError> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for path in roots {
        for pem_text in root_pems(path)? {
            for der in ca_tools::pemutil::ders_with_tag(pem_text.as_bytes(), "CERTIFICATE", "root")? {
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
            .position(|(msp, list)| OrgTrust::new(msp, list, &[], std::slice::from_ref(&text)).is_ok())
            .ok_or_else(|| {
                CliError::Usage(format!("CRL {} is not valid or not signed by any of the given roots", path.display()))
            })?;
        crl_groups[owner].push(text);
    }
    let mut orgs = Vec::new();
    for ((msp, list), crl_list) in groups.iter().zip(crl_groups) {
        orgs.push(OrgTrust::new(msp, list, &[], &crl_list)?);
    }
    Ok(orgs)
}

pub fn verify(
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
    println!("ok: subject={} msp_id={} role={}", id.subject, id.msp_id, id.role);
    Ok(())
}

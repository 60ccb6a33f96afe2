//! Helpers shared by the integration tests: CAs and identities made at test time.
#![allow(dead_code)]

use std::path::Path;

use ca_tools::{Ca, InitCaOptions, IssueRequest, IssuedIdentity, KeyType, Role, Validity};

pub const DAY: i64 = 86_400;

pub fn new_ca(dir: &Path, org: &str, msp_id: &str, key_type: KeyType) -> Ca {
    Ca::init(&InitCaOptions { org: org.into(), msp_id: msp_id.into(), key_type, days: 3650 }, dir, false).unwrap()
}

pub fn issue_with(ca: &mut Ca, role: Role, name: &str, validity: Validity, out: &Path) -> IssuedIdentity {
    let key_type = ca.state.key_type;
    ca.issue(
        IssueRequest {
            role,
            name: name.into(),
            sans: vec!["localhost".into(), "127.0.0.1".into()],
            key_type,
            validity,
            sign_key: None,
            tls_key: None,
        },
        out,
        false,
    )
    .unwrap()
}

pub fn issue(ca: &mut Ca, role: Role, name: &str, out: &Path) -> IssuedIdentity {
    issue_with(ca, role, name, Validity::days_from_now(30).unwrap(), out)
}

/// A window entirely in the past: valid from 10 days ago until yesterday.
pub fn expired_window() -> Validity {
    let now = ca_tools::now_unix();
    Validity { not_before_unix: now - 10 * DAY, not_after_unix: now - DAY }
}

/// A certificate signed by the signing CA in `ca_dir` but built by hand (to
/// produce what `ca-tools` itself never issues): subject `dn`, `usages`, and a
/// fresh key of `alg`.
pub fn forge_leaf(
    ca_dir: &Path,
    dn: &[(rcgen::DnType, &str)],
    usages: Vec<rcgen::KeyUsagePurpose>,
    alg: &'static rcgen::SignatureAlgorithm,
) -> String {
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca/priv_sk")).unwrap()).unwrap();
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca/ca-cert.pem")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (ty, value) in dn {
        params.distinguished_name.push(ty.clone(), *value);
    }
    params.key_usages = usages;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(1);
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    params.signed_by(&key, &issuer).unwrap().pem()
}

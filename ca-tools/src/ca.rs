//! A consortium member's certificate authorities: a signing root CA and a TLS
//! root CA, their state (`ca.json`), issuance, revocation, CRLs and renewal.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, RevokedCertParams,
    SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};

use crate::certinfo::{self, parse_cert};
use crate::error::PkiError;
use crate::files::{self, Secrecy};
use crate::keys::{KeyType, SigningKey};
use crate::layout;
use crate::pemutil;
use crate::role::Role;

/// Most certificates one CA records as issued.
pub const ISSUED_MAX: usize = 100_000;
/// Longest validity accepted, in days (100 years).
pub const DAYS_MAX: u32 = 36_500;
/// Certificates start this many seconds in the past, to absorb clock skew.
pub const BACKDATE_SECONDS: i64 = 300;
/// Most SANs per certificate.
pub const SANS_MAX: usize = 64;

/// Which of an org's two CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authority {
    /// The signing (enrollment) root CA.
    Sign,
    /// The TLS root CA.
    Tls,
}

/// One certificate the CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Which CA issued it.
    pub authority: Authority,
    /// Identity name (subject CN).
    pub name: String,
    /// Role.
    pub role: Role,
    /// End of validity, RFC 3339.
    pub not_after: String,
}

/// One certificate the CA revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Which CA issued it.
    pub authority: Authority,
    /// Identity name (subject CN), if known.
    pub name: String,
    /// When it was revoked, unix seconds.
    pub revoked_at_unix: i64,
}

/// The content of `ca.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaState {
    /// Format version (1).
    pub version: u32,
    /// Organisation name.
    pub org: String,
    /// MSP id.
    pub msp_id: String,
    /// Key type of the CA keys (and default for leaves).
    pub key_type: KeyType,
    /// Next CRL number.
    pub next_crl_number: u64,
    /// Certificates issued.
    pub issued: Vec<IssuedRecord>,
    /// Certificates revoked.
    pub revoked: Vec<RevokedRecord>,
}

/// Options of `init-ca`.
#[derive(Debug, Clone)]
pub struct InitCaOptions {
    /// Organisation name (e.g. "Org1"); used in CA subject names and paths.
    pub org: String,
    /// MSP id (e.g. "Org1MSP"); carried as subject O in every certificate.
    pub msp_id: String,
    /// Key type of both CA keys.
    pub key_type: KeyType,
    /// Validity of the CA certificates in days.
    pub days: u32,
}

/// A validity window in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start, unix seconds.
    pub not_before_unix: i64,
    /// End, unix seconds.
    pub not_after_unix: i64,
}

impl Validity {
    /// From a few minutes ago (clock skew) to `days` days from now.
    pub fn days_from_now(days: u32) -> Result<Self, PkiError> {
        check_days(days)?;
        let now = crate::now_unix();
        Ok(Validity {
            not_before_unix: now - BACKDATE_SECONDS,
            not_after_unix: now + i64::from(days) * 86_400,
        })
    }
}

fn check_days(days: u32) -> Result<(), PkiError> {
    if days == 0 || days > DAYS_MAX {
        return Err(PkiError::Config(format!(
            "validity of {days} days is out of range (1..={DAYS_MAX})"
        )));
    }
    Ok(())
}

/// What to issue.
#[derive(Debug)]
pub struct IssueRequest {
    /// Role (subject OU).
    pub role: Role,
    /// Identity name (subject CN; also a DNS SAN when it is a valid DNS name).
    pub name: String,
    /// Extra SANs: DNS names or IP addresses.
    pub sans: Vec<String>,
    /// Key type for freshly generated keys.
    pub key_type: KeyType,
    /// Validity (clamped to the CA's own validity).
    pub validity: Validity,
    /// Reuse this enrollment key instead of generating one.
    pub sign_key: Option<SigningKey>,
    /// Reuse this TLS key instead of generating one.
    pub tls_key: Option<SigningKey>,
}

/// Where an issued identity was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedIdentity {
    /// Identity name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The identity directory (`msp/` and `tls/` inside).
    pub dir: PathBuf,
    /// `dir/msp`.
    pub msp_dir: PathBuf,
    /// `dir/tls`.
    pub tls_dir: PathBuf,
    /// Enrollment certificate, PEM.
    pub signcert_pem: String,
    /// TLS certificate, PEM.
    pub tls_cert_pem: String,
    /// Enrollment certificate serial, hex.
    pub sign_serial: String,
    /// TLS certificate serial, hex.
    pub tls_serial: String,
}

struct Authorityx {
    key: SigningKey,
    cert_pem: String,
}

/// An org's CAs loaded from (or created in) a CA directory.
pub struct Ca {
    dir: PathBuf,
    /// The recorded state (`ca.json`).
    pub state: CaState,
    sign: Authorityx,
    tls: Authorityx,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Names are used in paths and subjects: letters, digits, '.', '-', '_'.
pub fn check_name(what: &str, name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !ok {
        return Err(PkiError::Config(format!(
            "{what} '{name}' is invalid: use 1-64 letters, digits, '.', '-', '_', not starting with '.'"
        )));
    }
    Ok(())
}

fn to_time(unix: i64) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|e| PkiError::Config(format!("time {unix} out of range: {e}")))
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut bytes)
        .map_err(|e| PkiError::Issue(format!("random serial: {e}")))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn parse_san(san: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = san.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid_dns = !san.is_empty()
        && san.len() <= 253
        && san.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
        });
    if !valid_dns {
        return Err(PkiError::Config(format!(
            "SAN '{san}' is neither an IP address nor a DNS name"
        )));
    }
    let ia5 = san
        .to_string()
        .try_into()
        .map_err(|e| PkiError::Config(format!("SAN '{san}': {e}")))?;
    Ok(SanType::DnsName(ia5))
}

fn subject(msp_id: &str, cn: &str, role: Option<Role>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, msp_id);
    if let Some(role) = role {
        dn.push(DnType::OrganizationalUnitName, role.as_str());
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(msp_id: &str, cn: &str, validity: Validity) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(msp_id, cn, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.not_before = to_time(validity.not_before_unix)?;
    params.not_after = to_time(validity.not_after_unix)?;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

fn issue_err(e: rcgen::Error) -> PkiError {
    PkiError::Issue(e.to_string())
}

impl Authorityx {
    fn create(
        msp_id: &str,
        cn: &str,
        key_type: KeyType,
        validity: Validity,
    ) -> Result<Self, PkiError> {
        let key = SigningKey::generate(key_type)?;
        let params = ca_params(msp_id, cn, validity)?;
        let cert = params.self_signed(&key.to_rcgen()?).map_err(issue_err)?;
        Ok(Authorityx {
            key,
            cert_pem: cert.pem(),
        })
    }

    fn load(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let cert_pem = files::read_text(cert_path)?;
        let key = SigningKey::from_pkcs8_pem(&files::read_text(key_path)?)?;
        crate::msp::check_key_matches(&cert_pem, &key, key_path.parent().unwrap_or(key_path))?;
        Ok(Authorityx { key, cert_pem })
    }

    fn not_after_unix(&self) -> Result<i64, PkiError> {
        let der = pemutil::cert_der(self.cert_pem.as_bytes())?;
        let x509 = parse_cert(&der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        Ok(x509.validity().not_after.timestamp())
    }

    fn subject_raw(&self) -> Result<Vec<u8>, PkiError> {
        let der = pemutil::cert_der(self.cert_pem.as_bytes())?;
        let x509 = parse_cert(&der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        Ok(x509.subject().as_raw().to_vec())
    }

    fn issue(&self, params: &CertificateParams, key: &SigningKey) -> Result<String, PkiError> {
        let issuer_key = self.key.to_rcgen()?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, issuer_key).map_err(issue_err)?;
        let cert = params
            .signed_by(&key.to_rcgen()?, &issuer)
            .map_err(issue_err)?;
        Ok(cert.pem())
    }
}

/// Paths inside a CA directory.
pub mod paths {
    /// The state file.
    pub const STATE: &str = "ca.json";
    /// Signing CA certificate.
    pub const SIGN_CERT: &str = "ca/ca-cert.pem";
    /// Signing CA private key.
    pub const SIGN_KEY: &str = "ca/priv_sk";
    /// TLS CA certificate.
    pub const TLS_CERT: &str = "tlsca/tlsca-cert.pem";
    /// TLS CA private key.
    pub const TLS_KEY: &str = "tlsca/priv_sk";
    /// The org's verifying MSP (cacerts, tlscacerts, crls, config.yaml).
    pub const MSP: &str = "msp";
}

impl Ca {
    /// Create both root CAs of an org in `dir` and write `ca.json`, the CA keys
    /// (0600) and the org's verifying MSP (`dir/msp`). Refuses to overwrite
    /// an existing CA unless `force`.
    pub fn init(opts: &InitCaOptions, dir: &Path, force: bool) -> Result<Ca, PkiError> {
        check_name("org", &opts.org)?;
        check_name("MSP id", &opts.msp_id)?;
        let validity = Validity::days_from_now(opts.days)?;
        for p in [
            paths::STATE,
            paths::SIGN_CERT,
            paths::SIGN_KEY,
            paths::TLS_CERT,
            paths::TLS_KEY,
        ] {
            files::check_writable(&dir.join(p), force)?;
        }
        let org_lc = opts.org.to_ascii_lowercase();
        let sign = Authorityx::create(
            &opts.msp_id,
            &format!("ca.{org_lc}"),
            opts.key_type,
            validity,
        )?;
        let tls = Authorityx::create(
            &opts.msp_id,
            &format!("tlsca.{org_lc}"),
            opts.key_type,
            validity,
        )?;
        let ca = Ca {
            dir: dir.to_path_buf(),
            state: CaState {
                version: 1,
                org: opts.org.clone(),
                msp_id: opts.msp_id.clone(),
                key_type: opts.key_type,
                next_crl_number: 1,
                issued: Vec::new(),
                revoked: Vec::new(),
            },
            sign,
            tls,
        };
        files::write_file(
            &dir.join(paths::SIGN_KEY),
            ca.sign.key.to_pkcs8_pem()?.as_bytes(),
            Secrecy::Secret,
            force,
        )?;
        files::write_file(
            &dir.join(paths::TLS_KEY),
            ca.tls.key.to_pkcs8_pem()?.as_bytes(),
            Secrecy::Secret,
            force,
        )?;
        files::write_file(
            &dir.join(paths::SIGN_CERT),
            ca.sign.cert_pem.as_bytes(),
            Secrecy::Public,
            force,
        )?;
        files::write_file(
            &dir.join(paths::TLS_CERT),
            ca.tls.cert_pem.as_bytes(),
            Secrecy::Public,
            force,
        )?;
        layout::write_verifying_msp(
            &dir.join(paths::MSP),
            &ca.sign.cert_pem,
            &ca.tls.cert_pem,
            force,
        )?;
        ca.save()?;
        Ok(ca)
    }

    /// Load a CA directory written by [`Ca::init`].
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let state_path = dir.join(paths::STATE);
        if !state_path.exists() {
            return Err(PkiError::CaState(format!(
                "{} not found; is '{}' a CA directory made by `ca-tools init-ca`?",
                state_path.display(),
                dir.display()
            )));
        }
        let state: CaState = serde_json::from_str(&files::read_text(&state_path)?)
            .map_err(|e| PkiError::CaState(format!("{}: {e}", state_path.display())))?;
        if state.version != 1 {
            return Err(PkiError::CaState(format!(
                "{}: unsupported version {}",
                state_path.display(),
                state.version
            )));
        }
        let sign = Authorityx::load(&dir.join(paths::SIGN_CERT), &dir.join(paths::SIGN_KEY))?;
        let tls = Authorityx::load(&dir.join(paths::TLS_CERT), &dir.join(paths::TLS_KEY))?;
        Ok(Ca {
            dir: dir.to_path_buf(),
            state,
            sign,
            tls,
        })
    }

    fn save(&self) -> Result<(), PkiError> {
        let json = serde_json::to_string_pretty(&self.state)
            .map_err(|e| PkiError::CaState(e.to_string()))?;
        files::write_file(
            &self.dir.join(paths::STATE),
            json.as_bytes(),
            Secrecy::Public,
            true,
        )
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The MSP id.
    pub fn msp_id(&self) -> &str {
        &self.state.msp_id
    }

    /// The signing root CA certificate, PEM.
    pub fn sign_ca_pem(&self) -> &str {
        &self.sign.cert_pem
    }

    /// The TLS root CA certificate, PEM.
    pub fn tls_ca_pem(&self) -> &str {
        &self.tls.cert_pem
    }

    /// The org's verifying MSP directory (`dir/msp`).
    pub fn msp_dir(&self) -> PathBuf {
        self.dir.join(paths::MSP)
    }

    fn leaf_params(
        &self,
        req: &IssueRequest,
        authority: Authority,
        ca_not_after: i64,
    ) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(&self.state.msp_id, &req.name, Some(req.role));
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.not_before = to_time(req.validity.not_before_unix)?;
        params.not_after = to_time(req.validity.not_after_unix.min(ca_not_after))?;
        params.serial_number = Some(random_serial()?);
        let mut sans = Vec::new();
        if parse_san(&req.name).is_ok() && !req.sans.contains(&req.name) {
            sans.push(parse_san(&req.name)?);
        }
        for s in &req.sans {
            sans.push(parse_san(s)?);
        }
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if authority == Authority::Tls {
            if req.role.is_node() {
                params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ServerAuth);
            }
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        Ok(params)
    }

    fn record(
        &mut self,
        pem: &str,
        authority: Authority,
        req: &IssueRequest,
    ) -> Result<String, PkiError> {
        if self.state.issued.len() >= ISSUED_MAX {
            return Err(PkiError::CaState(format!(
                "this CA has issued {ISSUED_MAX} certificates, the most it records; create a new CA"
            )));
        }
        let info = certinfo::inspect(pem.as_bytes())?;
        self.state.issued.push(IssuedRecord {
            serial: info.serial.clone(),
            authority,
            name: req.name.clone(),
            role: req.role,
            not_after: info.not_after,
        });
        Ok(info.serial)
    }

    /// Issue an enrollment and a TLS certificate and write them in Fabric's
    /// MSP layout under `out` (`msp/`, `tls/`). Refuses to overwrite unless `force`.
    pub fn issue(
        &mut self,
        req: IssueRequest,
        out: &Path,
        force: bool,
    ) -> Result<IssuedIdentity, PkiError> {
        check_name("name", &req.name)?;
        if req.sans.len() > SANS_MAX {
            return Err(PkiError::Config(format!("more than {SANS_MAX} SANs")));
        }
        if req.validity.not_after_unix <= req.validity.not_before_unix {
            return Err(PkiError::Config("validity ends before it starts".into()));
        }
        let targets = layout::identity_files(out, &req.name, req.role);
        for t in &targets {
            files::check_writable(t, force)?;
        }
        let sign_key = match &req.sign_key {
            Some(_) => None,
            None => Some(SigningKey::generate(req.key_type)?),
        };
        let tls_key = match &req.tls_key {
            Some(_) => None,
            None => Some(SigningKey::generate(req.key_type)?),
        };
        let sign_key_ref = req.sign_key.as_ref().or(sign_key.as_ref());
        let tls_key_ref = req.tls_key.as_ref().or(tls_key.as_ref());
        let (Some(sign_key_ref), Some(tls_key_ref)) = (sign_key_ref, tls_key_ref) else {
            return Err(PkiError::Key("no key available".into()));
        };
        let sign_params = self.leaf_params(&req, Authority::Sign, self.sign.not_after_unix()?)?;
        let tls_params = self.leaf_params(&req, Authority::Tls, self.tls.not_after_unix()?)?;
        let signcert_pem = self.sign.issue(&sign_params, sign_key_ref)?;
        let tls_cert_pem = self.tls.issue(&tls_params, tls_key_ref)?;
        layout::write_identity(
            out,
            &layout::IdentityFiles {
                name: &req.name,
                role: req.role,
                sign_ca_pem: &self.sign.cert_pem,
                tls_ca_pem: &self.tls.cert_pem,
                signcert_pem: &signcert_pem,
                sign_key_pem: &sign_key_ref.to_pkcs8_pem()?,
                tls_cert_pem: &tls_cert_pem,
                tls_key_pem: &tls_key_ref.to_pkcs8_pem()?,
            },
            force,
        )?;
        let sign_serial = self.record(&signcert_pem, Authority::Sign, &req)?;
        let tls_serial = self.record(&tls_cert_pem, Authority::Tls, &req)?;
        self.save()?;
        Ok(IssuedIdentity {
            name: req.name.clone(),
            role: req.role,
            dir: out.to_path_buf(),
            msp_dir: out.join("msp"),
            tls_dir: out.join("tls"),
            signcert_pem,
            tls_cert_pem,
            sign_serial,
            tls_serial,
        })
    }

    /// Which of this org's CAs issued `cert` (by issuer name and signature).
    fn authority_of(
        &self,
        x509: &x509_parser::certificate::X509Certificate<'_>,
    ) -> Result<Authority, PkiError> {
        for (authority, ca) in [(Authority::Sign, &self.sign), (Authority::Tls, &self.tls)] {
            let ca_der = pemutil::cert_der(ca.cert_pem.as_bytes())?;
            let ca_x509 = parse_cert(&ca_der).map_err(|e| PkiError::Certificate(e.to_string()))?;
            if x509.issuer().as_raw() == ca.subject_raw()?.as_slice()
                && x509.verify_signature(Some(ca_x509.public_key())).is_ok()
            {
                return Ok(authority);
            }
        }
        Err(PkiError::Certificate(format!(
            "'{}' was not issued by this CA ({}): issuer is '{}'",
            x509.subject(),
            self.state.msp_id,
            x509.issuer()
        )))
    }

    /// Revoke a certificate this CA issued (PEM or DER). Revoking twice is
    /// an error. The next CRL of its CA lists it.
    pub fn revoke(&mut self, cert: &[u8]) -> Result<RevokedRecord, PkiError> {
        let der = pemutil::cert_der(cert)?;
        let x509 = parse_cert(&der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        if x509.is_ca() {
            return Err(PkiError::Certificate(format!(
                "'{}' is a CA certificate; only identity certificates can be revoked",
                x509.subject()
            )));
        }
        let authority = self.authority_of(&x509)?;
        let serial = hex::encode(x509.serial.to_bytes_be());
        if self
            .state
            .revoked
            .iter()
            .any(|r| r.serial == serial && r.authority == authority)
        {
            return Err(PkiError::CaState(format!(
                "certificate serial {serial} is already revoked"
            )));
        }
        if self.state.revoked.len() >= ISSUED_MAX {
            return Err(PkiError::CaState(format!(
                "more than {ISSUED_MAX} revocations"
            )));
        }
        let record = RevokedRecord {
            serial,
            authority,
            name: certinfo::common_name_of(&x509).unwrap_or_default(),
            revoked_at_unix: crate::now_unix(),
        };
        self.state.revoked.push(record.clone());
        self.save()?;
        Ok(record)
    }

    /// A signed CRL (PEM) of `authority`'s revocations, valid for `days`.
    /// Each call uses the next CRL number.
    pub fn crl_pem(&mut self, authority: Authority, days: u32) -> Result<String, PkiError> {
        check_days(days)?;
        let now = crate::now_unix();
        let ca = match authority {
            Authority::Sign => &self.sign,
            Authority::Tls => &self.tls,
        };
        let mut revoked_certs = Vec::new();
        for r in self
            .state
            .revoked
            .iter()
            .filter(|r| r.authority == authority)
        {
            let bytes = hex::decode(&r.serial)
                .map_err(|e| PkiError::CaState(format!("revoked serial '{}': {e}", r.serial)))?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes),
                revocation_time: to_time(r.revoked_at_unix)?,
                reason_code: None,
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: to_time(now - BACKDATE_SECONDS)?,
            next_update: to_time(now + i64::from(days) * 86_400)?,
            crl_number: SerialNumber::from_slice(&self.state.next_crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer =
            Issuer::from_ca_cert_pem(&ca.cert_pem, ca.key.to_rcgen()?).map_err(issue_err)?;
        let crl = params.signed_by(&issuer).map_err(issue_err)?;
        let pem = crl.pem().map_err(issue_err)?;
        self.state.next_crl_number += 1;
        self.save()?;
        Ok(pem)
    }

    /// Write the CRL of `authority` to `out` (refusing to overwrite unless
    /// `force`) and publish it in the org's verifying MSP (`msp/crls/`, always
    /// replaced), so that [`crate::OrgTrust::from_msp_dir`] enforces it.
    pub fn write_crl(
        &mut self,
        authority: Authority,
        days: u32,
        out: &Path,
        force: bool,
    ) -> Result<String, PkiError> {
        files::check_writable(out, force)?;
        let pem = self.crl_pem(authority, days)?;
        files::write_file(out, pem.as_bytes(), Secrecy::Public, force)?;
        let published = self.msp_dir().join("crls").join(match authority {
            Authority::Sign => "ca-crl.pem",
            Authority::Tls => "tlsca-crl.pem",
        });
        files::write_file(&published, pem.as_bytes(), Secrecy::Public, true)?;
        Ok(pem)
    }

    /// Re-issue the identity of enrollment certificate `signcert` (same name,
    /// role, SANs) into `out`. `keys` = (enrollment key, TLS key) to keep; None
    /// generates new keys. Validity is `validity`.
    pub fn renew(
        &mut self,
        signcert: &[u8],
        keys: Option<(SigningKey, SigningKey)>,
        validity: Validity,
        out: &Path,
        force: bool,
    ) -> Result<IssuedIdentity, PkiError> {
        let der = pemutil::cert_der(signcert)?;
        let x509 = parse_cert(&der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        if self.authority_of(&x509)? != Authority::Sign {
            return Err(PkiError::Certificate(
                "renew takes the enrollment certificate (msp/signcerts), not the TLS certificate"
                    .into(),
            ));
        }
        let name = certinfo::common_name_of(&x509)
            .ok_or_else(|| PkiError::Certificate("certificate has no subject CN".into()))?;
        let role = certinfo::role_of(&x509).ok_or_else(|| {
            PkiError::Certificate("certificate carries no role (subject OU)".into())
        })?;
        let key_type = certinfo::key_type_of(&x509).unwrap_or(self.state.key_type);
        let sans = certinfo::sans_of(&x509)
            .into_iter()
            .filter(|s| *s != name)
            .collect();
        let (sign_key, tls_key) = match keys {
            Some((s, t)) => {
                let cert_key = crate::keys::PublicKey::from_cert(&der)?;
                if cert_key != s.public_key() {
                    return Err(PkiError::Key(
                        "the enrollment key given does not match the certificate being renewed"
                            .into(),
                    ));
                }
                (Some(s), Some(t))
            }
            None => (None, None),
        };
        self.issue(
            IssueRequest {
                role,
                name,
                sans,
                key_type,
                validity,
                sign_key,
                tls_key,
            },
            out,
            force,
        )
    }
}

//! A consortium member's certificate authorities: a signing root CA and a TLS
//! root CA, their state (`ca.json`), issuance, revocation, CRLs and renewal.

mod authority;
mod params;
mod state;

use std::path::{Path, PathBuf};

use rcgen::{CertificateRevocationListParams, Issuer, KeyIdMethod, RevokedCertParams, SerialNumber};
use serde::Serialize;

use crate::certinfo::{self, parse_cert};
use crate::error::PkiError;
use crate::files::{self, Secrecy};
use crate::keys::{KeyType, SigningKey};
use crate::layout;
use crate::pemutil;
use crate::role::Role;
use authority::{issue_err, RootCa};
use params::{check_days, leaf_params, to_time};
pub use params::{check_name, check_san, Validity, BACKDATE_SECONDS, DAYS_MAX, SANS_MAX};
pub use state::{Authority, CaState, IssuedRecord, RevokedRecord, ISSUED_MAX, STATE_BYTES_MAX};

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

/// An org's CAs loaded from (or created in) a CA directory.
pub struct Ca {
    dir: PathBuf,
    /// The recorded state (`ca.json`).
    pub state: CaState,
    sign: RootCa,
    tls: RootCa,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("dir", &self.dir).field("state", &self.state).finish_non_exhaustive()
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
        for p in [paths::STATE, paths::SIGN_CERT, paths::SIGN_KEY, paths::TLS_CERT, paths::TLS_KEY] {
            files::check_writable(&dir.join(p), force)?;
        }
        let org_lc = opts.org.to_ascii_lowercase();
        let sign = RootCa::create(&opts.msp_id, &format!("ca.{org_lc}"), opts.key_type, validity)?;
        let tls = RootCa::create(&opts.msp_id, &format!("tlsca.{org_lc}"), opts.key_type, validity)?;
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
        files::write_file(&dir.join(paths::SIGN_KEY), ca.sign.key.to_pkcs8_pem()?.as_bytes(), Secrecy::Secret, force)?;
        files::write_file(&dir.join(paths::TLS_KEY), ca.tls.key.to_pkcs8_pem()?.as_bytes(), Secrecy::Secret, force)?;
        files::write_file(&dir.join(paths::SIGN_CERT), ca.sign.cert_pem.as_bytes(), Secrecy::Public, force)?;
        files::write_file(&dir.join(paths::TLS_CERT), ca.tls.cert_pem.as_bytes(), Secrecy::Public, force)?;
        layout::write_verifying_msp(&dir.join(paths::MSP), &ca.sign.cert_pem, &ca.tls.cert_pem, force)?;
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
        let state: CaState = serde_json::from_str(&files::read_text_max(&state_path, STATE_BYTES_MAX)?)
            .map_err(|e| PkiError::CaState(format!("{}: {e}", state_path.display())))?;
        if state.issued.len() > ISSUED_MAX || state.revoked.len() > ISSUED_MAX {
            return Err(PkiError::CaState(format!(
                "{}: more than {ISSUED_MAX} issued or revoked records",
                state_path.display()
            )));
        }
        if state.version != 1 {
            return Err(PkiError::CaState(format!("{}: unsupported version {}", state_path.display(), state.version)));
        }
        let sign = RootCa::load(&dir.join(paths::SIGN_CERT), &dir.join(paths::SIGN_KEY))?;
        let tls = RootCa::load(&dir.join(paths::TLS_CERT), &dir.join(paths::TLS_KEY))?;
        Ok(Ca { dir: dir.to_path_buf(), state, sign, tls })
    }

    fn save(&self) -> Result<(), PkiError> {
        let json = serde_json::to_string_pretty(&self.state).map_err(|e| PkiError::CaState(e.to_string()))?;
        files::write_file(&self.dir.join(paths::STATE), json.as_bytes(), Secrecy::Public, true)
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

    fn record(&mut self, pem: &str, authority: Authority, req: &IssueRequest) -> Result<String, PkiError> {
        assert!(self.state.issued.len() < ISSUED_MAX, "checked by issue()");
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
    pub fn issue(&mut self, mut req: IssueRequest, out: &Path, force: bool) -> Result<IssuedIdentity, PkiError> {
        check_name("name", &req.name)?;
        if req.sans.len() > SANS_MAX {
            return Err(PkiError::Config(format!("more than {SANS_MAX} SANs")));
        }
        if req.validity.not_after_unix <= req.validity.not_before_unix {
            return Err(PkiError::Config("validity ends before it starts".into()));
        }
        if self.state.issued.len() + 2 > ISSUED_MAX {
            return Err(PkiError::CaState(format!(
                "this CA has issued {} certificates, the most it records is {ISSUED_MAX}; create a new CA",
                self.state.issued.len()
            )));
        }
        let ca_not_after = self.sign.not_after_unix()?.min(self.tls.not_after_unix()?);
        if ca_not_after <= req.validity.not_before_unix.max(crate::now_unix()) {
            return Err(PkiError::CaState(format!(
                "the CA of {} expired on {}; create a new CA with `ca-tools init-ca`",
                self.state.msp_id,
                certinfo::rfc3339(ca_not_after)
            )));
        }
        let targets = layout::identity_files(out, &req.name, req.role);
        for t in &targets {
            files::check_writable(t, force)?;
        }
        let sign_key = match req.sign_key.take() {
            Some(k) => k,
            None => SigningKey::generate(req.key_type)?,
        };
        let tls_key = match req.tls_key.take() {
            Some(k) => k,
            None => SigningKey::generate(req.key_type)?,
        };
        let msp_id = &self.state.msp_id;
        let sign_params = leaf_params(msp_id, &req, Authority::Sign, self.sign.not_after_unix()?)?;
        let tls_params = leaf_params(msp_id, &req, Authority::Tls, self.tls.not_after_unix()?)?;
        let signcert_pem = self.sign.issue(&sign_params, &sign_key)?;
        let tls_cert_pem = self.tls.issue(&tls_params, &tls_key)?;
        layout::write_identity(
            out,
            &layout::IdentityFiles {
                name: &req.name,
                role: req.role,
                sign_ca_pem: &self.sign.cert_pem,
                tls_ca_pem: &self.tls.cert_pem,
                signcert_pem: &signcert_pem,
                sign_key_pem: &sign_key.to_pkcs8_pem()?,
                tls_cert_pem: &tls_cert_pem,
                tls_key_pem: &tls_key.to_pkcs8_pem()?,
            },
            force,
        )?;
        let sign_serial = self.record(&signcert_pem, Authority::Sign, &req)?;
        let tls_serial = self.record(&tls_cert_pem, Authority::Tls, &req)?;
        assert!(sign_serial != tls_serial, "two certificates with one serial");
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
    fn authority_of(&self, x509: &x509_parser::certificate::X509Certificate<'_>) -> Result<Authority, PkiError> {
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
        if self.state.revoked.iter().any(|r| r.serial == serial && r.authority == authority) {
            return Err(PkiError::CaState(format!("certificate serial {serial} is already revoked")));
        }
        if self.state.revoked.len() >= ISSUED_MAX {
            return Err(PkiError::CaState(format!("more than {ISSUED_MAX} revocations")));
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
        for r in self.state.revoked.iter().filter(|r| r.authority == authority) {
            let bytes =
                hex::decode(&r.serial).map_err(|e| PkiError::CaState(format!("revoked serial '{}': {e}", r.serial)))?;
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
        let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca.key.to_rcgen()?).map_err(issue_err)?;
        let crl = params.signed_by(&issuer).map_err(issue_err)?;
        let pem = crl.pem().map_err(issue_err)?;
        self.state.next_crl_number += 1;
        self.save()?;
        Ok(pem)
    }

    /// Write the CRL of `authority` to `out` (refusing to overwrite unless
    /// `force`) and publish it in the org's verifying MSP (`msp/crls/`, always
    /// replaced), so that [`crate::OrgTrust::from_msp_dir`] enforces it.
    pub fn write_crl(&mut self, authority: Authority, days: u32, out: &Path, force: bool) -> Result<String, PkiError> {
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
                "renew takes the enrollment certificate (msp/signcerts), not the TLS certificate".into(),
            ));
        }
        let name = certinfo::common_name_of(&x509)
            .ok_or_else(|| PkiError::Certificate("certificate has no subject CN".into()))?;
        let role = certinfo::role_of(&x509)
            .ok_or_else(|| PkiError::Certificate("certificate carries no role (subject OU)".into()))?;
        let key_type = certinfo::key_type_of(&x509).unwrap_or(self.state.key_type);
        let sans = certinfo::sans_of(&x509).into_iter().filter(|s| *s != name).collect();
        let (sign_key, tls_key) = match keys {
            Some((s, t)) => {
                let cert_key = crate::keys::PublicKey::from_cert(&der)?;
                if cert_key != s.public_key() {
                    return Err(PkiError::Key(
                        "the enrollment key given does not match the certificate being renewed".into(),
                    ));
                }
                (Some(s), Some(t))
            }
            None => (None, None),
        };
        self.issue(IssueRequest { role, name, sans, key_type, validity, sign_key, tls_key }, out, force)
    }
}

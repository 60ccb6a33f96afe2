//! Trust anchors of organisations and identity verification.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use x509_parser::certificate::X509Certificate;

use crate::certinfo::{self, parse_cert, rfc3339};
use crate::error::{PkiError, VerifyError};
use crate::files;
use crate::keys::{PreparedKey, PublicKey};
use crate::pemutil;
use crate::role::Role;

/// Most revoked serials accepted from one CRL.
pub const CRL_ENTRIES_MAX: usize = 100_000;
/// Most roots or CRLs per organisation.
pub const TRUST_ITEMS_MAX: usize = 256;

/// A parsed CRL: who issued it and which serials it revokes.
#[derive(Debug, Clone)]
struct Crl {
    issuer_raw: Vec<u8>,
    issuer: String,
    serials: HashSet<Vec<u8>>,
}

/// What one organisation (MSP) trusts: its signing roots, TLS roots and CRLs.
#[derive(Debug, Clone)]
pub struct OrgTrust {
    /// The MSP id certificates of this org must carry (subject O).
    pub msp_id: String,
    roots_der: Vec<Vec<u8>>,
    tls_roots_der: Vec<Vec<u8>>,
    crls_der: Vec<Vec<u8>>,
    crls: Vec<Crl>,
}

fn ca_ders(pems: &[String], what: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut out = Vec::new();
    for pem_text in pems {
        for der in pemutil::ders_with_tag(pem_text.as_bytes(), "CERTIFICATE", what)? {
            let x509 = parse_cert(&der).map_err(|e| PkiError::Certificate(format!("{what}: {e}")))?;
            if !x509.is_ca() {
                return Err(PkiError::Certificate(format!("{what} '{}' is not a CA certificate", x509.subject())));
            }
            out.push(der);
        }
    }
    if out.len() > TRUST_ITEMS_MAX {
        return Err(PkiError::Certificate(format!("more than {TRUST_ITEMS_MAX} {what}s")));
    }
    Ok(out)
}

fn serial_key(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

impl OrgTrust {
    /// Trust for `msp_id` from PEM roots (each string may hold several
    /// certificates), PEM TLS roots and PEM CRLs. Every CRL must be signed by
    /// one of the roots.
    pub fn new(
        msp_id: &str,
        root_pems: &[String],
        tls_root_pems: &[String],
        crl_pems: &[String],
    ) -> Result<Self, PkiError> {
        if msp_id.is_empty() {
            return Err(PkiError::Config("MSP id must not be empty".into()));
        }
        let roots_der = ca_ders(root_pems, "CA root")?;
        let tls_roots_der = ca_ders(tls_root_pems, "TLS CA root")?;
        if roots_der.is_empty() {
            return Err(PkiError::Certificate(format!("MSP '{msp_id}' has no CA root certificate")));
        }
        let mut crls_der = Vec::new();
        for pem_text in crl_pems {
            crls_der.extend(pemutil::ders_with_tag(pem_text.as_bytes(), "X509 CRL", "CRL")?);
        }
        if crls_der.len() > TRUST_ITEMS_MAX {
            return Err(PkiError::Crl(format!("more than {TRUST_ITEMS_MAX} CRLs")));
        }
        let mut trust =
            OrgTrust { msp_id: msp_id.to_string(), roots_der, tls_roots_der, crls_der: Vec::new(), crls: Vec::new() };
        for der in crls_der {
            let crl = trust.parse_crl(&der)?;
            trust.crls.push(crl);
            trust.crls_der.push(der);
        }
        Ok(trust)
    }

    /// Trust from an MSP directory: `cacerts/`, `tlscacerts/` and `crls/`.
    pub fn from_msp_dir(msp_id: &str, msp_dir: &Path) -> Result<Self, PkiError> {
        let read_all = |sub: &str| -> Result<Vec<String>, PkiError> {
            files::files_in(&msp_dir.join(sub))?.iter().map(|p| files::read_text(p)).collect()
        };
        let roots = read_all("cacerts")?;
        if roots.is_empty() {
            return Err(PkiError::Layout {
                dir: msp_dir.to_path_buf(),
                reason: "no CA certificate in cacerts/ (is this an MSP directory?)".into(),
            });
        }
        Self::new(msp_id, &roots, &read_all("tlscacerts")?, &read_all("crls")?)
    }

    fn parse_crl(&self, der: &[u8]) -> Result<Crl, PkiError> {
        let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| PkiError::Crl(format!("cannot parse: {e}")))?;
        let issuer_raw = crl.issuer().as_raw().to_vec();
        let signed = self
            .roots_der
            .iter()
            .chain(self.tls_roots_der.iter())
            .filter_map(|r| parse_cert(r).ok().map(|c| (c, r)))
            .any(|(root, _)| {
                root.subject().as_raw() == issuer_raw.as_slice() && crl.verify_signature(root.public_key()).is_ok()
            });
        if !signed {
            return Err(PkiError::Crl(format!(
                "CRL issued by '{}' is not signed by any CA root of MSP '{}'",
                crl.issuer(),
                self.msp_id
            )));
        }
        let mut serials = HashSet::new();
        for revoked in crl.iter_revoked_certificates() {
            if serials.len() >= CRL_ENTRIES_MAX {
                return Err(PkiError::Crl(format!("more than {CRL_ENTRIES_MAX} revoked certificates")));
            }
            serials.insert(serial_key(&revoked.serial().to_bytes_be()));
        }
        Ok(Crl { issuer: crl.issuer().to_string(), issuer_raw, serials })
    }

    /// The signing CA roots, PEM.
    pub fn root_pems(&self) -> Vec<String> {
        self.roots_der.iter().map(|d| pemutil::cert_pem(d)).collect()
    }

    /// The TLS CA roots, PEM.
    pub fn tls_root_pems(&self) -> Vec<String> {
        self.tls_roots_der.iter().map(|d| pemutil::cert_pem(d)).collect()
    }

    /// The CRLs, PEM.
    pub fn crl_pems(&self) -> Vec<String> {
        self.crls_der.iter().map(|d| pem::encode(&pem::Pem::new("X509 CRL", d.clone()))).collect()
    }

    fn revoked(&self, cert: &X509Certificate<'_>) -> Option<&Crl> {
        let serial = serial_key(&cert.serial.to_bytes_be());
        self.crls.iter().find(|c| c.issuer_raw == cert.issuer().as_raw() && c.serials.contains(&serial))
    }
}

/// Who a verified certificate belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The MSP id of the organisation whose root issued it.
    pub msp_id: String,
    /// The role carried in the certificate.
    pub role: Role,
    /// Subject distinguished name.
    pub subject: String,
    /// The certificate's public key.
    pub public_key: PublicKey,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// End of validity, unix seconds.
    pub not_after_unix: i64,
}

fn check_validity(x509: &X509Certificate<'_>, at_unix: i64) -> Result<(), VerifyError> {
    let not_before = x509.validity().not_before.timestamp();
    let not_after = x509.validity().not_after.timestamp();
    if at_unix < not_before {
        return Err(VerifyError::NotYetValid {
            subject: x509.subject().to_string(),
            not_before: rfc3339(not_before),
            at: rfc3339(at_unix),
        });
    }
    if at_unix > not_after {
        return Err(VerifyError::Expired {
            subject: x509.subject().to_string(),
            not_after: rfc3339(not_after),
            at: rfc3339(at_unix),
        });
    }
    Ok(())
}

fn check_signing_usage(x509: &X509Certificate<'_>) -> Result<(), VerifyError> {
    if x509.is_ca() {
        return Err(VerifyError::WrongKeyUsage {
            reason: "this is a CA certificate, not an identity certificate".into(),
        });
    }
    match x509.key_usage() {
        Ok(Some(ku)) if ku.value.digital_signature() => Ok(()),
        Ok(Some(_)) => Err(VerifyError::WrongKeyUsage { reason: "key usage lacks digitalSignature".into() }),
        Ok(None) => {
            Err(VerifyError::WrongKeyUsage { reason: "no key usage extension (digitalSignature required)".into() })
        }
        Err(e) => Err(VerifyError::Malformed(format!("key usage extension: {e}"))),
    }
}

fn allowed_list(allowed: &[Role]) -> String {
    allowed.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
}

/// Verify a (PEM or DER) certificate at unix time `at_unix` against several
/// orgs: issued directly by one of an org's signing roots (chain + signature),
/// root and certificate valid at that time, not on the org's CRLs, usable for
/// signing (digitalSignature, not a CA), MSP id (subject O) equal to the org's,
/// role (subject OU) in `allowed` (empty = any role). Returns who it is.
pub fn verify_identity(
    cert: &[u8],
    orgs: &[OrgTrust],
    at_unix: i64,
    allowed: &[Role],
) -> Result<VerifiedIdentity, VerifyError> {
    verify_against(cert, orgs, at_unix, allowed, RootSet::Sign)
}

/// As [`verify_identity`], for a TLS certificate: it must be issued by one of
/// an org's TLS roots. Use it to learn who is behind a TLS client certificate.
pub fn verify_tls_identity(
    cert: &[u8],
    orgs: &[OrgTrust],
    at_unix: i64,
    allowed: &[Role],
) -> Result<VerifiedIdentity, VerifyError> {
    verify_against(cert, orgs, at_unix, allowed, RootSet::Tls)
}

/// Which of an org's root sets a certificate must chain to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootSet {
    Sign,
    Tls,
}

impl OrgTrust {
    fn roots(&self, set: RootSet) -> &[Vec<u8>] {
        match set {
            RootSet::Sign => &self.roots_der,
            RootSet::Tls => &self.tls_roots_der,
        }
    }
}

fn verify_against(
    cert: &[u8],
    orgs: &[OrgTrust],
    at_unix: i64,
    allowed: &[Role],
    set: RootSet,
) -> Result<VerifiedIdentity, VerifyError> {
    verify_with_window(cert, orgs, at_unix, allowed, set).map(|(identity, _)| identity)
}

/// The times (unix seconds, inclusive) at which both a certificate and the
/// root that issued it are valid.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: i64,
    until: i64,
}

fn verify_with_window(
    cert: &[u8],
    orgs: &[OrgTrust],
    at_unix: i64,
    allowed: &[Role],
    set: RootSet,
) -> Result<(VerifiedIdentity, Window), VerifyError> {
    let der = pemutil::cert_der(cert).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let x509 = parse_cert(&der)?;
    let issuer_raw = x509.issuer().as_raw();

    let mut candidates = 0usize;
    let mut found: Option<(&OrgTrust, X509Certificate<'_>)> = None;
    'orgs: for org in orgs {
        for root_der in org.roots(set) {
            let Ok(root) = parse_cert(root_der) else {
                continue;
            };
            if root.subject().as_raw() != issuer_raw {
                continue;
            }
            candidates += 1;
            if x509.verify_signature(Some(root.public_key())).is_ok() {
                found = Some((org, root));
                break 'orgs;
            }
        }
    }
    let Some((org, root)) = found else {
        return Err(if candidates == 0 {
            VerifyError::UnknownIssuer { issuer: x509.issuer().to_string() }
        } else {
            VerifyError::BadSignature
        });
    };

    check_validity(&root, at_unix)?;
    check_validity(&x509, at_unix)?;
    if let Some(crl) = org.revoked(&x509) {
        return Err(VerifyError::Revoked {
            serial: hex::encode(x509.serial.to_bytes_be()),
            issuer: crl.issuer.clone(),
        });
    }
    check_signing_usage(&x509)?;
    let msp_id = certinfo::msp_id_of(&x509);
    if msp_id.as_deref() != Some(org.msp_id.as_str()) {
        return Err(VerifyError::MspMismatch {
            expected: org.msp_id.clone(),
            found: msp_id.unwrap_or_else(|| "none".into()),
        });
    }
    let role = certinfo::role_of(&x509);
    let role = match role {
        Some(r) if allowed.is_empty() || allowed.contains(&r) => r,
        other => {
            return Err(VerifyError::WrongRole {
                found: other.map(|r| r.to_string()).unwrap_or_else(|| "none".into()),
                allowed: if allowed.is_empty() { "any role".into() } else { allowed_list(allowed) },
            })
        }
    };
    let public_key = PublicKey::from_spki(x509.public_key())?;
    let identity = VerifiedIdentity {
        msp_id: org.msp_id.clone(),
        role,
        subject: x509.subject().to_string(),
        public_key,
        not_after_unix: x509.validity().not_after.timestamp(),
        cert_der: der.clone(),
    };
    assert!(identity.not_after_unix >= at_unix);
    let window = Window {
        from: root.validity().not_before.timestamp().max(x509.validity().not_before.timestamp()),
        until: root.validity().not_after.timestamp().min(identity.not_after_unix),
    };
    assert!(window.from <= at_unix && at_unix <= window.until);
    Ok((identity, window))
}

/// Most certificates an [`IdentityVerifier`] remembers.
pub const IDENTITY_CACHE_MAX: usize = 4096;

/// An identity that passed verification, with its key ready for signatures.
#[derive(Clone)]
pub struct Verified {
    /// Who it is.
    pub identity: VerifiedIdentity,
    /// Its public key, parsed once.
    pub key: PreparedKey,
}

struct Remembered {
    verified: Arc<Verified>,
    window: Window,
}

#[derive(Default)]
struct Memo {
    by_cert: HashMap<[u8; 32], Remembered>,
    order: VecDeque<[u8; 32]>,
}

/// [`verify_identity`] against one fixed set of organisations, remembering
/// the certificates that passed (by their bytes' SHA-256, at most
/// [`IDENTITY_CACHE_MAX`], oldest forgotten): the next signature of a known
/// creator costs a lookup, not a certificate parse and a chain signature.
/// A remembered certificate is answered from memory only at a time inside
/// the validity of both it and its root, and for a role the caller allows;
/// anything else is verified in full again, so every answer (and every
/// error) is the one [`verify_identity`] gives.
pub struct IdentityVerifier {
    orgs: Vec<OrgTrust>,
    set: RootSet,
    memo: Mutex<Memo>,
    bound: usize,
}

impl IdentityVerifier {
    /// A verifier for certificates issued by `orgs`' signing roots
    /// ([`verify_identity`]).
    pub fn new(orgs: Vec<OrgTrust>) -> Self {
        Self::with_bound(orgs, IDENTITY_CACHE_MAX)
    }

    /// A verifier for TLS certificates issued by `orgs`' TLS roots
    /// ([`verify_tls_identity`]): who is behind a client connection.
    pub fn tls(orgs: Vec<OrgTrust>) -> Self {
        IdentityVerifier { set: RootSet::Tls, ..Self::new(orgs) }
    }

    /// As [`Self::new`], remembering at most `bound` certificates (at least 1).
    pub fn with_bound(orgs: Vec<OrgTrust>, bound: usize) -> Self {
        IdentityVerifier {
            orgs,
            set: RootSet::Sign,
            memo: Mutex::new(Memo::default()),
            bound: bound.clamp(1, IDENTITY_CACHE_MAX),
        }
    }

    /// The organisations it trusts.
    pub fn orgs(&self) -> &[OrgTrust] {
        &self.orgs
    }

    /// As [`verify_identity`] (or [`verify_tls_identity`]) against
    /// [`Self::orgs`], with the key prepared.
    pub fn verify(&self, cert: &[u8], at_unix: i64, allowed: &[Role]) -> Result<Arc<Verified>, VerifyError> {
        let key: [u8; 32] = Sha256::digest(cert).into();
        if let Some(hit) = self.recall(&key, at_unix, allowed) {
            return Ok(hit);
        }
        let (identity, window) = verify_with_window(cert, &self.orgs, at_unix, allowed, self.set)?;
        let prepared = identity.public_key.prepare().map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let verified = Arc::new(Verified { identity, key: prepared });
        if let Ok(mut memo) = self.memo.lock() {
            let memo = &mut *memo;
            let remembered = Remembered { verified: Arc::clone(&verified), window };
            if memo.by_cert.insert(key, remembered).is_none() {
                memo.order.push_back(key);
            }
            while memo.order.len() > self.bound {
                if let Some(old) = memo.order.pop_front() {
                    memo.by_cert.remove(&old);
                }
            }
        }
        Ok(verified)
    }

    fn recall(&self, key: &[u8; 32], at_unix: i64, allowed: &[Role]) -> Option<Arc<Verified>> {
        let memo = self.memo.lock().ok()?;
        let hit = memo.by_cert.get(key)?;
        let role = hit.verified.identity.role;
        let in_time = hit.window.from <= at_unix && at_unix <= hit.window.until;
        (in_time && (allowed.is_empty() || allowed.contains(&role))).then(|| Arc::clone(&hit.verified))
    }

    /// How many certificates it remembers.
    pub fn remembered(&self) -> usize {
        self.memo.lock().map_or(0, |m| m.by_cert.len())
    }
}

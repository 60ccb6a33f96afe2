//! Certificate parameters: subjects, validity, serials, SANs, extensions.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod,
    KeyUsagePurpose, SanType, SerialNumber,
};

use super::state::Authority;
use super::IssueRequest;
use crate::error::PkiError;
use crate::role::Role;

/// Longest validity accepted, in days (100 years).
pub const DAYS_MAX: u32 = 36_500;
/// Certificates start this many seconds in the past, to absorb clock skew.
pub const BACKDATE_SECONDS: i64 = 300;
/// Most SANs per certificate.
pub const SANS_MAX: usize = 64;

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
        Ok(Validity { not_before_unix: now - BACKDATE_SECONDS, not_after_unix: now + i64::from(days) * 86_400 })
    }
}

pub(crate) fn check_days(days: u32) -> Result<(), PkiError> {
    if days == 0 || days > DAYS_MAX {
        return Err(PkiError::Config(format!("validity of {days} days is out of range (1..={DAYS_MAX})")));
    }
    Ok(())
}

/// Names are used in paths and subjects: letters, digits, '.', '-', '_'.
pub fn check_name(what: &str, name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !ok {
        return Err(PkiError::Config(format!(
            "{what} '{name}' is invalid: use 1-64 letters, digits, '.', '-', '_', not starting with '.'"
        )));
    }
    Ok(())
}

pub(crate) fn to_time(unix: i64) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|e| PkiError::Config(format!("time {unix} out of range: {e}")))
}

pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut bytes)
        .map_err(|e| PkiError::Issue(format!("random serial: {e}")))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Refuse a SAN that is neither an IP address nor a DNS name.
pub fn check_san(san: &str) -> Result<(), PkiError> {
    parse_san(san).map(|_| ())
}

fn parse_san(san: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = san.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid_dns = !san.is_empty()
        && san.len() <= 253
        && san.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
        });
    if !valid_dns {
        return Err(PkiError::Config(format!("SAN '{san}' is neither an IP address nor a DNS name")));
    }
    let ia5 = san.to_string().try_into().map_err(|e| PkiError::Config(format!("SAN '{san}': {e}")))?;
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

pub(crate) fn ca_params(msp_id: &str, cn: &str, validity: Validity) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(msp_id, cn, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = to_time(validity.not_before_unix)?;
    params.not_after = to_time(validity.not_after_unix)?;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// Parameters of an identity certificate of `msp_id`: subject O = MSP id,
/// OU = role, CN = name; SANs = name (when a DNS name) + requested SANs;
/// digitalSignature; TLS certificates add serverAuth (nodes) and clientAuth.
pub(crate) fn leaf_params(
    msp_id: &str,
    req: &IssueRequest,
    authority: Authority,
    ca_not_after: i64,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(msp_id, &req.name, Some(req.role));
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params.not_before = to_time(req.validity.not_before_unix)?;
    params.not_after = to_time(req.validity.not_after_unix.min(ca_not_after))?;
    params.serial_number = Some(random_serial()?);
    let name_san = parse_san(&req.name).ok().filter(|_| !req.sans.contains(&req.name));
    params.subject_alt_names =
        name_san.into_iter().map(Ok).chain(req.sans.iter().map(|s| parse_san(s))).collect::<Result<_, _>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if authority == Authority::Tls {
        if req.role.is_node() {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_a_directory_are_refused() {
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", "x\0", &"n".repeat(65)] {
            assert!(check_name("name", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["orderer0", "peer0.org1.example.com", "Admin", "user_1-a"] {
            check_name("name", good).unwrap();
        }
    }

    #[test]
    fn sans_are_ip_addresses_or_dns_names() {
        assert!(matches!(parse_san("127.0.0.1").unwrap(), SanType::IpAddress(_)));
        assert!(matches!(parse_san("::1").unwrap(), SanType::IpAddress(_)));
        assert!(matches!(parse_san("orderer0.example.com").unwrap(), SanType::DnsName(_)));
        for bad in ["", "a..b", "white space", "x/y", &format!("{}.com", "a".repeat(64))] {
            assert!(parse_san(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn validity_days_out_of_range_are_refused() {
        assert!(Validity::days_from_now(0).is_err());
        assert!(Validity::days_from_now(DAYS_MAX + 1).is_err());
        let v = Validity::days_from_now(1).unwrap();
        assert_eq!(v.not_after_unix - v.not_before_unix, 86_400 + BACKDATE_SECONDS);
    }

    #[test]
    fn serials_are_positive_random_and_distinct() {
        let a = random_serial().unwrap().to_bytes();
        let b = random_serial().unwrap().to_bytes();
        assert_ne!(a, b);
        assert!(a[0] & 0x80 == 0 && a[0] != 0);
    }
}

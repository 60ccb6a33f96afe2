//! Library verification: each accepted and each refused case, with its reason.

mod common;

use std::sync::Arc;

use ca_tools::{now_unix, verify_identity, Authority, IdentityVerifier, KeyType, OrgTrust, Role, VerifyError};
use common::*;

struct Org {
    _dir: tempfile::TempDir,
    ca: ca_tools::Ca,
    trust: OrgTrust,
}

fn org(name: &str, msp: &str, key_type: KeyType) -> Org {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(&dir.path().join("ca"), name, msp, key_type);
    let trust = OrgTrust::from_msp_dir(msp, &ca.msp_dir()).unwrap();
    Org { _dir: dir, ca, trust }
}

fn out(org: &Org, name: &str) -> std::path::PathBuf {
    org.ca.dir().parent().unwrap().join(name)
}

#[test]
fn orderer_of_either_key_type_is_accepted_with_its_msp_and_role() {
    for key_type in [KeyType::EcdsaP256, KeyType::Ed25519] {
        let mut o = org("Org1", "Org1MSP", key_type);
        let path = out(&o, "o0");
        let id = issue(&mut o.ca, Role::Orderer, "orderer0", &path);
        let v = verify_identity(id.signcert_pem.as_bytes(), &[o.trust.clone()], now_unix(), &[Role::Orderer]).unwrap();
        assert_eq!(v.msp_id, "Org1MSP");
        assert_eq!(v.role, Role::Orderer);
        assert!(v.subject.contains("CN=orderer0"), "{}", v.subject);
        assert_eq!(v.public_key.key_type(), key_type);
        assert!(v.not_after_unix > now_unix());
    }
}

#[test]
fn certificate_is_attributed_to_the_org_whose_root_issued_it() {
    let mut a = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let b = org("Org2", "Org2MSP", KeyType::Ed25519);
    let path = out(&a, "p0");
    let id = issue(&mut a.ca, Role::Peer, "peer0", &path);
    let v = verify_identity(id.signcert_pem.as_bytes(), &[b.trust.clone(), a.trust.clone()], now_unix(), &[]).unwrap();
    assert_eq!(v.msp_id, "Org1MSP");
}

#[test]
fn certificate_from_a_foreign_ca_is_an_unknown_issuer() {
    let mut a = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let b = org("Org2", "Org2MSP", KeyType::EcdsaP256);
    let path = out(&a, "c");
    let id = issue(&mut a.ca, Role::Client, "client0", &path);
    let err = verify_identity(id.signcert_pem.as_bytes(), &[b.trust], now_unix(), &[]).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownIssuer { .. }), "{err}");
    assert!(err.to_string().contains("unknown issuer"), "{err}");
}

#[test]
fn impostor_ca_with_the_same_name_gives_bad_signature() {
    // Two CAs of the same org and MSP name: identical issuer names, different keys.
    let mut real = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let mut impostor = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let path = out(&impostor, "o");
    let forged = issue(&mut impostor.ca, Role::Orderer, "orderer0", &path);
    let err = verify_identity(forged.signcert_pem.as_bytes(), &[real.trust.clone()], now_unix(), &[]).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    // Negative control: the real CA's own certificate passes the same check.
    let path = out(&real, "o");
    let genuine = issue(&mut real.ca, Role::Orderer, "orderer0", &path);
    verify_identity(genuine.signcert_pem.as_bytes(), &[real.trust], now_unix(), &[]).unwrap();
}

#[test]
fn expired_certificate_is_refused() {
    let mut o = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let path = out(&o, "old");
    let id = issue_with(&mut o.ca, Role::Client, "old", expired_window(), &path);
    let err = verify_identity(id.signcert_pem.as_bytes(), &[o.trust.clone()], now_unix(), &[]).unwrap_err();
    assert!(matches!(err, VerifyError::Expired { .. }), "{err}");
    // Negative control: a current certificate of the same CA passes.
    let path = out(&o, "new");
    let fresh = issue(&mut o.ca, Role::Client, "new", &path);
    verify_identity(fresh.signcert_pem.as_bytes(), &[o.trust], now_unix(), &[]).unwrap();
}

#[test]
fn certificate_checked_before_its_start_is_not_yet_valid() {
    let mut o = org("Org1", "Org1MSP", KeyType::Ed25519);
    let path = out(&o, "c");
    let id = issue(&mut o.ca, Role::Client, "c", &path);
    let err = verify_identity(id.signcert_pem.as_bytes(), &[o.trust], now_unix() - DAY, &[]).unwrap_err();
    assert!(matches!(err, VerifyError::NotYetValid { .. }), "{err}");
}

#[test]
fn certificate_checked_after_its_ca_expired_is_expired() {
    let mut o = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let path = out(&o, "c");
    let id = issue(&mut o.ca, Role::Client, "c", &path);
    let err = verify_identity(id.signcert_pem.as_bytes(), &[o.trust], now_unix() + 4000 * DAY, &[]).unwrap_err();
    match err {
        VerifyError::Expired { subject, .. } => {
            assert!(subject.contains("CN=ca.org1"), "{subject}")
        }
        other => panic!("expected Expired, got {other}"),
    }
}

#[test]
fn revoked_certificate_is_refused_once_the_crl_is_trusted() {
    let mut o = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let path = out(&o, "a");
    let admin = issue(&mut o.ca, Role::Admin, "admin", &path);
    let path = out(&o, "b");
    let other = issue(&mut o.ca, Role::Admin, "admin2", &path);
    o.ca.revoke(admin.signcert_pem.as_bytes()).unwrap();
    let crl = o.ca.crl_pem(Authority::Sign, 7).unwrap();
    let trust = OrgTrust::new("Org1MSP", &[o.ca.sign_ca_pem().into()], &[], &[crl]).unwrap();
    let err =
        verify_identity(admin.signcert_pem.as_bytes(), std::slice::from_ref(&trust), now_unix(), &[]).unwrap_err();
    assert!(matches!(err, VerifyError::Revoked { .. }), "{err}");
    // Not revoked: the other admin, and the revoked one without the CRL.
    verify_identity(other.signcert_pem.as_bytes(), &[trust], now_unix(), &[]).unwrap();
    verify_identity(admin.signcert_pem.as_bytes(), &[o.trust], now_unix(), &[]).unwrap();
}

#[test]
fn crl_signed_by_another_ca_is_rejected_when_building_trust() {
    let mut a = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let b = org("Org2", "Org2MSP", KeyType::EcdsaP256);
    let crl = a.ca.crl_pem(Authority::Sign, 7).unwrap();
    let err = OrgTrust::new("Org2MSP", &b.trust.root_pems(), &[], &[crl]).unwrap_err();
    assert!(err.to_string().contains("not signed"), "{err}");
}

#[test]
fn role_outside_the_allowed_set_is_refused() {
    let mut o = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let path = out(&o, "p");
    let peer = issue(&mut o.ca, Role::Peer, "peer0", &path);
    let err =
        verify_identity(peer.signcert_pem.as_bytes(), &[o.trust.clone()], now_unix(), &[Role::Orderer, Role::Admin])
            .unwrap_err();
    assert_eq!(err, VerifyError::WrongRole { found: "peer".into(), allowed: "orderer, admin".into() });
    verify_identity(peer.signcert_pem.as_bytes(), &[o.trust], now_unix(), &[Role::Peer]).unwrap();
}

#[test]
fn ca_certificate_is_not_an_identity() {
    let o = org("Org1", "Org1MSP", KeyType::Ed25519);
    let err =
        verify_identity(o.ca.sign_ca_pem().as_bytes(), std::slice::from_ref(&o.trust), now_unix(), &[]).unwrap_err();
    assert!(matches!(err, VerifyError::WrongKeyUsage { .. }), "{err}");
}

#[test]
fn certificate_claiming_another_msp_is_an_msp_mismatch() {
    let mut o = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let path = out(&o, "c");
    let id = issue(&mut o.ca, Role::Client, "c", &path);
    // The same roots, trusted under a different MSP id.
    let trust = OrgTrust::new("OtherMSP", &o.trust.root_pems(), &[], &[]).unwrap();
    let err = verify_identity(id.signcert_pem.as_bytes(), &[trust], now_unix(), &[]).unwrap_err();
    assert_eq!(err, VerifyError::MspMismatch { expected: "OtherMSP".into(), found: "Org1MSP".into() });
}

#[test]
fn garbage_and_truncated_certificates_are_malformed() {
    let mut o = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let path = out(&o, "c");
    let id = issue(&mut o.ca, Role::Client, "c", &path);
    let der = ca_tools::pemutil::cert_der(id.signcert_pem.as_bytes()).unwrap();
    for input in [b"not a certificate".to_vec(), der[..der.len() / 2].to_vec(), Vec::new()] {
        let err = verify_identity(&input, &[o.trust.clone()], now_unix(), &[]).unwrap_err();
        assert!(matches!(err, VerifyError::Malformed(_)), "{err}");
    }
    // DER input of the intact certificate is accepted.
    verify_identity(&der, &[o.trust], now_unix(), &[]).unwrap();
}

#[test]
fn tampered_certificate_fails_its_signature() {
    let mut o = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let path = out(&o, "c");
    let id = issue(&mut o.ca, Role::Client, "client0", &path);
    let mut der = ca_tools::pemutil::cert_der(id.signcert_pem.as_bytes()).unwrap();
    // Change one byte of the subject CN ("client0" -> "client1").
    let pos = der.windows(7).position(|w| w == b"client0").unwrap();
    der[pos + 6] = b'1';
    let err = verify_identity(&der, &[o.trust], now_unix(), &[]).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn tls_certificate_is_verified_against_the_tls_roots_only() {
    let mut o = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let path = out(&o, "a");
    let admin = issue(&mut o.ca, Role::Admin, "admin", &path);
    let v =
        ca_tools::verify_tls_identity(admin.tls_cert_pem.as_bytes(), &[o.trust.clone()], now_unix(), &[Role::Admin])
            .unwrap();
    assert_eq!((v.msp_id.as_str(), v.role), ("Org1MSP", Role::Admin));
    // The TLS certificate is not an enrollment identity, nor the reverse.
    let err = verify_identity(admin.tls_cert_pem.as_bytes(), &[o.trust.clone()], now_unix(), &[]).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownIssuer { .. }), "{err}");
    let err =
        ca_tools::verify_tls_identity(admin.signcert_pem.as_bytes(), &[o.trust.clone()], now_unix(), &[]).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownIssuer { .. }), "{err}");
    // The remembering verifiers keep the two apart as well, also once each
    // certificate is remembered.
    let (sign, tls) = (IdentityVerifier::new(vec![o.trust.clone()]), IdentityVerifier::tls(vec![o.trust]));
    for _ in 0..2 {
        assert_eq!(tls.verify(admin.tls_cert_pem.as_bytes(), now_unix(), &[Role::Admin]).unwrap().identity, v);
        assert!(tls.verify(admin.signcert_pem.as_bytes(), now_unix(), &[]).is_err());
        sign.verify(admin.signcert_pem.as_bytes(), now_unix(), &[]).unwrap();
        assert!(sign.verify(admin.tls_cert_pem.as_bytes(), now_unix(), &[]).is_err());
    }
}

#[test]
fn remembered_identity_is_rechecked_for_time_and_role_at_every_use() {
    let mut o = org("Org1", "Org1MSP", KeyType::EcdsaP256);
    let path = out(&o, "c");
    let now = now_unix();
    let window = ca_tools::Validity { not_before_unix: now - DAY, not_after_unix: now + DAY };
    let client = issue_with(&mut o.ca, Role::Client, "client0", window, &path);
    let cert = client.signcert_pem.as_bytes();
    let verifier = IdentityVerifier::new(vec![o.trust.clone()]);

    let first = verifier.verify(cert, now, &[Role::Client]).unwrap();
    assert_eq!(verifier.remembered(), 1);
    let again = verifier.verify(cert, now + 60, &[Role::Client]).unwrap();
    assert!(Arc::ptr_eq(&first, &again), "the second use is answered from memory");
    assert_eq!(again.identity, verify_identity(cert, &[o.trust.clone()], now + 60, &[Role::Client]).unwrap());

    // Every answer is the one full verification gives, remembered or not.
    for (at, allowed) in
        [(now + 2 * DAY, &[Role::Client][..]), (now - 2 * DAY, &[Role::Client][..]), (now, &[Role::Orderer][..])]
    {
        let remembered = verifier.verify(cert, at, allowed).map(|v| v.identity.clone());
        let full = verify_identity(cert, &[o.trust.clone()], at, allowed);
        assert!(remembered.is_err(), "at {at} for {allowed:?}: {remembered:?}");
        assert_eq!(remembered, full);
    }
    // Negative control: inside its validity, for its role, it still passes.
    verifier.verify(cert, now + DAY, &[Role::Client, Role::Peer]).unwrap();
}

#[test]
fn verifier_prepares_keys_that_check_signatures_like_the_certificate_key() {
    for key_type in [KeyType::EcdsaP256, KeyType::Ed25519] {
        let mut o = org("Org1", "Org1MSP", key_type);
        let path = out(&o, "c");
        let id = issue(&mut o.ca, Role::Client, "client0", &path);
        let msp = ca_tools::Msp::load(Some("Org1MSP"), &path.join("msp")).unwrap();
        let verified =
            IdentityVerifier::new(vec![o.trust.clone()]).verify(id.signcert_pem.as_bytes(), now_unix(), &[]).unwrap();
        let sig = msp.key.sign(b"envelope payload").unwrap();
        verified.key.verify(b"envelope payload", &sig).unwrap();
        assert!(verified.key.verify(b"another payload", &sig).is_err());
        assert_eq!(
            verified.key.verify(b"another payload", &sig),
            verified.identity.public_key.verify(b"another payload", &sig)
        );
    }
}

#[test]
fn verifier_forgets_the_oldest_certificates_beyond_its_bound() {
    let mut o = org("Org1", "Org1MSP", KeyType::Ed25519);
    let verifier = IdentityVerifier::with_bound(vec![o.trust.clone()], 2);
    // Certificates that fail are never remembered: only ones that passed.
    let stranger = org("Org2", "Org2MSP", KeyType::Ed25519);
    assert!(verifier.verify(stranger.ca.sign_ca_pem().as_bytes(), now_unix(), &[]).is_err());
    assert_eq!(verifier.remembered(), 0);
    let certs: Vec<String> = (0..3)
        .map(|i| {
            let path = out(&o, &format!("c{i}"));
            issue(&mut o.ca, Role::Client, &format!("client{i}"), &path).signcert_pem
        })
        .collect();
    let first = verifier.verify(certs[0].as_bytes(), now_unix(), &[]).unwrap();
    verifier.verify(certs[1].as_bytes(), now_unix(), &[]).unwrap();
    let third = verifier.verify(certs[2].as_bytes(), now_unix(), &[]).unwrap();
    assert_eq!(verifier.remembered(), 2);
    // The newest is answered from memory; the oldest was forgotten and is
    // verified afresh.
    assert!(Arc::ptr_eq(&third, &verifier.verify(certs[2].as_bytes(), now_unix(), &[]).unwrap()));
    assert!(!Arc::ptr_eq(&first, &verifier.verify(certs[0].as_bytes(), now_unix(), &[]).unwrap()));
    assert_eq!(verifier.remembered(), 2);
}

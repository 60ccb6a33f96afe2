use ca_tools::*;

#[test]
fn issued_orderer_verifies_and_signs_for_both_key_types() {
    for kt in [KeyType::EcdsaP256, KeyType::Ed25519] {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = Ca::init(
            &InitCaOptions { org: "Org1".into(), msp_id: "Org1MSP".into(), key_type: kt, days: 30 },
            &dir.path().join("ca"),
            false,
        )
        .unwrap();
        let issued = ca
            .issue(
                IssueRequest {
                    role: Role::Orderer,
                    name: "orderer0".into(),
                    sans: vec!["localhost".into(), "127.0.0.1".into()],
                    key_type: kt,
                    validity: Validity::days_from_now(10).unwrap(),
                    sign_key: None,
                    tls_key: None,
                },
                &dir.path().join("o0"),
                false,
            )
            .unwrap();
        let trust = OrgTrust::from_msp_dir("Org1MSP", &ca.msp_dir()).unwrap();
        let id = verify_identity(issued.signcert_pem.as_bytes(), &[trust], now_unix(), &[Role::Orderer]).unwrap();
        assert_eq!(id.msp_id, "Org1MSP");
        let msp = Msp::load(None, &issued.msp_dir).unwrap();
        let sig = msp.key.sign(b"hello").unwrap();
        id.public_key.verify(b"hello", &sig).unwrap();
        assert!(id.public_key.verify(b"hellp", &sig).is_err());
        let tls = TlsIdentity::load(&issued.tls_dir).unwrap();
        server_config(&tls, std::slice::from_ref(&tls.ca_pem), &[]).unwrap();
        client_config(&tls, std::slice::from_ref(&tls.ca_pem)).unwrap();
        ca.revoke(issued.signcert_pem.as_bytes()).unwrap();
        let crl = ca.crl_pem(Authority::Sign, 7).unwrap();
        let trust = OrgTrust::new("Org1MSP", &[ca.sign_ca_pem().into()], &[], &[crl]).unwrap();
        let err = verify_identity(issued.signcert_pem.as_bytes(), &[trust], now_unix(), &[]).unwrap_err();
        assert!(matches!(err, VerifyError::Revoked { .. }), "{err}");
    }
}

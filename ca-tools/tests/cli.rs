//! The `ca-tools` binary end to end.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use rcgen::{DnType, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384};

const BIN: &str = env!("CARGO_BIN_EXE_ca-tools");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).current_dir(dir).args(args).output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(out.status.success(), "ca-tools {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Run a command that must fail; returns its stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "ca-tools {args:?} succeeded unexpectedly");
    assert!(!stderr.contains("panicked"), "ca-tools {args:?} panicked: {stderr}");
    assert!(!stderr.trim().is_empty(), "ca-tools {args:?} failed silently");
    stderr
}

fn signcert(id_dir: &Path) -> PathBuf {
    let dir = id_dir.join("msp/signcerts");
    let mut files: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    files.remove(0)
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn setup(key_type: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    ok(t.path(), &["init-ca", "--org", "Org1", "--msp-id", "Org1MSP", "--out", "ca", "--key-type", key_type]);
    t
}

#[test]
fn issue_writes_fabric_msp_layout_with_private_keys_0600() {
    for kt in ["ecdsa-p256", "ed25519"] {
        let t = setup(kt);
        let d = t.path();
        ok(
            d,
            &[
                "issue",
                "--ca",
                "ca",
                "--role",
                "orderer",
                "--name",
                "orderer0",
                "--san",
                "localhost",
                "--san",
                "127.0.0.1",
                "--out",
                "o0",
            ],
        );
        ok(d, &["issue", "--ca", "ca", "--role", "client", "--name", "user1", "--out", "u1"]);
        for f in [
            "o0/msp/cacerts/ca-cert.pem",
            "o0/msp/tlscacerts/tlsca-cert.pem",
            "o0/msp/signcerts/orderer0-cert.pem",
            "o0/msp/keystore/priv_sk",
            "o0/msp/config.yaml",
            "o0/tls/ca.crt",
            "o0/tls/server.crt",
            "o0/tls/server.key",
            "u1/tls/client.crt",
            "u1/tls/client.key",
            "ca/ca.json",
            "ca/msp/cacerts/ca-cert.pem",
            "ca/msp/tlscacerts/tlsca-cert.pem",
        ] {
            assert!(d.join(f).is_file(), "{kt}: missing {f}");
        }
        assert!(!d.join("u1/tls/server.crt").exists());
        #[cfg(unix)]
        for key in
            ["o0/msp/keystore/priv_sk", "o0/tls/server.key", "u1/tls/client.key", "ca/ca/priv_sk", "ca/tlsca/priv_sk"]
        {
            assert_eq!(mode(&d.join(key)), 0o600, "{kt}: {key}");
        }
        let config = fs::read_to_string(d.join("o0/msp/config.yaml")).unwrap();
        assert!(config.contains("OrdererOUIdentifier") && config.contains("OrganizationalUnitIdentifier: orderer"));
        let state = fs::read_to_string(d.join("ca/ca.json")).unwrap();
        assert!(state.contains("\"msp_id\": \"Org1MSP\"") && state.contains("orderer0"), "{state}");
    }
}

#[test]
fn nothing_is_overwritten_without_force() {
    let t = setup("ecdsa-p256");
    let d = t.path();
    let ca_before = fs::read(d.join("ca/ca/ca-cert.pem")).unwrap();
    let err = fails(d, &["init-ca", "--org", "Org1", "--msp-id", "Org1MSP", "--out", "ca"]);
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    assert_eq!(fs::read(d.join("ca/ca/ca-cert.pem")).unwrap(), ca_before);

    ok(d, &["issue", "--ca", "ca", "--role", "peer", "--name", "peer0", "--out", "p0"]);
    let key_before = fs::read(d.join("p0/msp/keystore/priv_sk")).unwrap();
    let err = fails(d, &["issue", "--ca", "ca", "--role", "peer", "--name", "peer0", "--out", "p0"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(fs::read(d.join("p0/msp/keystore/priv_sk")).unwrap(), key_before);

    ok(d, &["issue", "--ca", "ca", "--role", "peer", "--name", "peer0", "--out", "p0", "--force"]);
    assert_ne!(fs::read(d.join("p0/msp/keystore/priv_sk")).unwrap(), key_before);
    ok(d, &["init-ca", "--org", "Org1", "--msp-id", "Org1MSP", "--out", "ca", "--force"]);
    assert_ne!(fs::read(d.join("ca/ca/ca-cert.pem")).unwrap(), ca_before);
}

#[test]
fn verify_accepts_a_good_certificate_and_prints_who_it_is() {
    let t = setup("ed25519");
    let d = t.path();
    ok(d, &["issue", "--ca", "ca", "--role", "admin", "--name", "Admin", "--out", "a"]);
    let cert = signcert(&d.join("a"));
    let out = ok(d, &["verify", "--roots", "ca/msp", "--role", "admin,client", cert.to_str().unwrap()]);
    assert!(out.contains("msp_id=Org1MSP") && out.contains("role=admin") && out.contains("CN=Admin"), "{out}");
    // A CA directory, a PEM file and the TLS certificate with the TLS root work too.
    ok(d, &["verify", "--roots", "ca", cert.to_str().unwrap()]);
    ok(d, &["verify", "--roots", "ca/ca/ca-cert.pem", cert.to_str().unwrap()]);
    ok(d, &["verify", "--roots", "ca/tlsca/tlsca-cert.pem", "a/tls/client.crt"]);
}

#[test]
fn verify_names_each_failure_reason_and_exits_non_zero() {
    let t = setup("ecdsa-p256");
    let d = t.path();
    ok(d, &["init-ca", "--org", "Org2", "--msp-id", "Org2MSP", "--out", "ca2"]);
    // Same org name and MSP id as "ca", different key: an impostor.
    ok(d, &["init-ca", "--org", "Org1", "--msp-id", "Org1MSP", "--out", "impostor"]);
    ok(d, &["issue", "--ca", "ca", "--role", "orderer", "--name", "o0", "--out", "o0"]);
    ok(d, &["issue", "--ca", "ca", "--role", "client", "--name", "gone", "--out", "gone"]);
    ok(d, &["issue", "--ca", "impostor", "--role", "orderer", "--name", "o0", "--out", "fake"]);
    ok(d, &["revoke", "--ca", "ca", signcert(&d.join("gone")).to_str().unwrap()]);
    ok(d, &["crl", "--ca", "ca", "--out", "ca.crl"]);
    fs::write(d.join("garbage.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    let o0 = signcert(&d.join("o0"));
    let o0 = o0.to_str().unwrap();
    let gone = signcert(&d.join("gone"));
    let fake = signcert(&d.join("fake"));

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["verify", "--roots", "ca2", o0], "unknown issuer"),
        (vec!["verify", "--roots", "ca", "--at", "2090-01-01T00:00:00Z", o0], "expired"),
        (vec!["verify", "--roots", "ca", "--at", "2001-01-01T00:00:00Z", o0], "not yet valid"),
        (vec!["verify", "--roots", "ca", "--crl", "ca.crl", gone.to_str().unwrap()], "revoked"),
        (vec!["verify", "--roots", "ca", "--role", "peer", o0], "wrong role"),
        (vec!["verify", "--roots", "ca", "ca/ca/ca-cert.pem"], "wrong key usage"),
        (vec!["verify", "--roots", "ca", fake.to_str().unwrap()], "bad signature"),
        (vec!["verify", "--roots", "ca", "garbage.pem"], "malformed"),
        (vec!["verify", "--roots", "ca", "--at", "yesterday", o0], "RFC 3339"),
        (vec!["verify", "--roots", "ca2", "--crl", "ca.crl", o0], "not signed by any of the given roots"),
    ];
    for (args, reason) in cases {
        let err = fails(d, &args);
        assert!(err.contains(reason), "{args:?}: expected '{reason}' in: {err}");
    }
    // Negative controls: the revoked certificate passes without the CRL, and
    // the orderer passes with its own roots at the current time.
    ok(d, &["verify", "--roots", "ca", gone.to_str().unwrap()]);
    ok(d, &["verify", "--roots", "ca", "--crl", "ca.crl", "--role", "orderer", o0]);
}

#[test]
fn inspect_shows_msp_role_sans_validity_and_fingerprint() {
    let t = setup("ecdsa-p256");
    let d = t.path();
    ok(
        d,
        &[
            "issue", "--ca", "ca", "--role", "orderer", "--name", "orderer0", "--san", "10.0.0.7", "--out", "o0",
            "--days", "10",
        ],
    );
    let json = ok(d, &["inspect", "--json", "o0/tls/server.crt"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["msp_id"], "Org1MSP");
    assert_eq!(v["role"], "orderer");
    assert_eq!(v["key_type"], "ecdsa-p256");
    assert_eq!(v["sans"], serde_json::json!(["orderer0", "10.0.0.7"]));
    assert!(v["days_left"].as_i64().unwrap() >= 9 && v["days_left"].as_i64().unwrap() <= 10, "{v}");
    assert_eq!(v["sha256_fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(v["extended_key_usage"], serde_json::json!(["serverAuth", "clientAuth"]));
    let text = ok(d, &["inspect", "o0/tls/server.crt"]);
    assert!(text.contains("role:        orderer") && text.contains("msp id:      Org1MSP"), "{text}");
}

#[test]
fn renew_keeps_subject_and_key_unless_new_key_is_asked() {
    let t = setup("ecdsa-p256");
    let d = t.path();
    ok(
        d,
        &[
            "issue",
            "--ca",
            "ca",
            "--role",
            "peer",
            "--name",
            "peer0",
            "--san",
            "localhost",
            "--out",
            "p0",
            "--days",
            "5",
        ],
    );
    let cert = signcert(&d.join("p0"));
    let before: serde_json::Value =
        serde_json::from_str(&ok(d, &["inspect", "--json", cert.to_str().unwrap()])).unwrap();
    let key_before = fs::read(d.join("p0/msp/keystore/priv_sk")).unwrap();

    let err = fails(d, &["renew", "--ca", "ca", "--cert", cert.to_str().unwrap(), "--out", "p0"]);
    assert!(err.contains("already exists"), "{err}");
    ok(d, &["renew", "--ca", "ca", "--cert", cert.to_str().unwrap(), "--out", "p0", "--days", "90", "--force"]);
    let after: serde_json::Value =
        serde_json::from_str(&ok(d, &["inspect", "--json", cert.to_str().unwrap()])).unwrap();
    assert_eq!(after["subject"], before["subject"]);
    assert_eq!(after["sans"], before["sans"]);
    assert_ne!(after["serial"], before["serial"]);
    assert!(after["days_left"].as_i64().unwrap() > 80);
    assert_eq!(fs::read(d.join("p0/msp/keystore/priv_sk")).unwrap(), key_before);

    ok(d, &["renew", "--ca", "ca", "--cert", cert.to_str().unwrap(), "--out", "p0-new", "--new-key"]);
    assert_ne!(fs::read(d.join("p0-new/msp/keystore/priv_sk")).unwrap(), key_before);
    ok(d, &["verify", "--roots", "ca", "--role", "peer", signcert(&d.join("p0-new")).to_str().unwrap()]);
}

#[test]
fn network_from_the_shipped_example_makes_four_orderers_over_two_orgs() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/crypto-config.yaml");
    let out = ok(d, &["network", "--config", example, "--out", "crypto"]);
    assert!(out.contains("org Org1 (Org1MSP)") && out.contains("org Org2 (Org2MSP)"), "{out}");
    let mut orderers = 0;
    for org in ["Org1", "Org2"] {
        assert!(d.join(format!("crypto/{org}/ca/ca.json")).is_file());
        for e in fs::read_dir(d.join(format!("crypto/{org}/orderers"))).unwrap() {
            let dir = e.unwrap().path();
            assert!(dir.join("tls/server.crt").is_file());
            let ca = format!("crypto/{org}/ca");
            ok(d, &["verify", "--roots", &ca, "--role", "orderer", signcert(&dir).to_str().unwrap()]);
            orderers += 1;
        }
        assert!(d.join(format!("crypto/{org}/users/Admin/tls/client.crt")).is_file());
        assert!(d.join(format!("crypto/{org}/peers")).is_dir());
    }
    assert_eq!(orderers, 4);
    let inspect = ok(d, &["inspect", "--json", "crypto/Org2/users/Admin/msp/keystore/../signcerts/Admin-cert.pem"]);
    assert!(inspect.contains("\"key_type\": \"ed25519\""), "{inspect}");
    let err = fails(d, &["network", "--config", example, "--out", "crypto"]);
    assert!(err.contains("already exists"), "{err}");
    ok(d, &["network", "--config", example, "--out", "crypto", "--force"]);
}

#[test]
fn bad_input_is_a_clear_error_never_a_panic() {
    let t = setup("ecdsa-p256");
    let d = t.path();
    fs::write(d.join("bad.yaml"), "orgs:\n  - name: Org1\n    msp_id: Org1MSP\n    colour: blue\n").unwrap();
    fs::write(d.join("dup.yaml"), "orgs:\n  - {name: A, msp_id: AMSP}\n  - {name: A, msp_id: BMSP}\n").unwrap();
    fs::write(d.join("not-a-cert"), [0u8, 1, 2, 3, 255]).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["issue", "--ca", "nowhere", "--role", "peer", "--name", "p", "--out", "x"], "ca.json"),
        (vec!["issue", "--ca", "ca", "--role", "janitor", "--name", "p", "--out", "x"], "unknown role"),
        (vec!["issue", "--ca", "ca", "--role", "peer", "--name", "../escape", "--out", "x"], "invalid"),
        (vec!["issue", "--ca", "ca", "--role", "peer", "--name", "p", "--san", "bad san!", "--out", "x"], "SAN"),
        (vec!["issue", "--ca", "ca", "--role", "peer", "--name", "p", "--days", "0", "--out", "x"], "days"),
        (vec!["init-ca", "--org", "O", "--msp-id", "OMSP", "--out", "y", "--key-type", "rsa"], "key type"),
        (vec!["network", "--config", "bad.yaml", "--out", "n"], "colour"),
        (vec!["network", "--config", "dup.yaml", "--out", "n"], "twice"),
        (vec!["network", "--config", "missing.yaml", "--out", "n"], "missing.yaml"),
        (vec!["inspect", "not-a-cert"], "certificate"),
        (vec!["inspect", "missing.pem"], "missing.pem"),
        (vec!["revoke", "--ca", "ca", "ca/ca/ca-cert.pem"], "only identity certificates"),
        (vec!["renew", "--ca", "ca", "--cert", "ca/ca/ca-cert.pem", "--out", "r"], "not inside"),
    ];
    for (args, needle) in cases {
        let err = fails(d, &args);
        assert!(err.contains(needle), "{args:?}: expected '{needle}' in: {err}");
    }
    assert!(!d.join("escape").exists());
    ok(d, &["init-ca", "--org", "Org2", "--msp-id", "Org2MSP", "--out", "ca2"]);
    ok(d, &["issue", "--ca", "ca2", "--role", "peer", "--name", "p", "--out", "p"]);
    let err = fails(d, &["revoke", "--ca", "ca", "p/tls/server.crt"]);
    assert!(err.contains("not issued by this CA"), "{err}");
    ok(d, &["revoke", "--ca", "ca2", "p/tls/server.crt"]);
    let err = fails(d, &["revoke", "--ca", "ca2", "p/tls/server.crt"]);
    assert!(err.contains("already revoked"), "{err}");
}

#[test]
fn verify_explains_hand_made_certificates_it_would_never_issue() {
    let t = setup("ecdsa-p256");
    let d = t.path();
    let sign = vec![KeyUsagePurpose::DigitalSignature];
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "other-msp.pem",
            common::forge_leaf(
                &d.join("ca"),
                &[
                    (DnType::OrganizationName, "Org2MSP"),
                    (DnType::OrganizationalUnitName, "peer"),
                    (DnType::CommonName, "x"),
                ],
                sign.clone(),
                &PKCS_ECDSA_P256_SHA256,
            ),
            "MSP mismatch: certificate says MSP 'Org2MSP'",
        ),
        (
            "no-role.pem",
            common::forge_leaf(
                &d.join("ca"),
                &[(DnType::OrganizationName, "Org1MSP"), (DnType::CommonName, "x")],
                sign.clone(),
                &PKCS_ECDSA_P256_SHA256,
            ),
            "wrong role: certificate has role none",
        ),
        (
            "no-digital-signature.pem",
            common::forge_leaf(
                &d.join("ca"),
                &[
                    (DnType::OrganizationName, "Org1MSP"),
                    (DnType::OrganizationalUnitName, "peer"),
                    (DnType::CommonName, "x"),
                ],
                vec![KeyUsagePurpose::KeyEncipherment],
                &PKCS_ECDSA_P256_SHA256,
            ),
            "wrong key usage: key usage lacks digitalSignature",
        ),
        (
            "p384.pem",
            common::forge_leaf(
                &d.join("ca"),
                &[
                    (DnType::OrganizationName, "Org1MSP"),
                    (DnType::OrganizationalUnitName, "peer"),
                    (DnType::CommonName, "x"),
                ],
                sign.clone(),
                &PKCS_ECDSA_P384_SHA384,
            ),
            "unsupported public key",
        ),
    ];
    for (file, pem, reason) in cases {
        fs::write(d.join(file), pem).unwrap();
        let err = fails(d, &["verify", "--roots", "ca", file]);
        assert!(err.contains(reason), "{file}: expected '{reason}' in: {err}");
    }
    // Negative control: the same construction with a proper subject verifies.
    let good = common::forge_leaf(
        &d.join("ca"),
        &[(DnType::OrganizationName, "Org1MSP"), (DnType::OrganizationalUnitName, "peer"), (DnType::CommonName, "x")],
        sign,
        &PKCS_ECDSA_P256_SHA256,
    );
    fs::write(d.join("good.pem"), good).unwrap();
    ok(d, &["verify", "--roots", "ca", "--role", "peer", "good.pem"]);
}

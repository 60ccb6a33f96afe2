//! Cross-checks against OpenSSL (skipped, with a note, when `openssl` is absent).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use ca_tools::{KeyType, PublicKey, Role, SignatureError, SigningKey};
use common::*;

fn have_openssl() -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("openssl not found: skipping the OpenSSL cross-check");
    }
    found
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn openssl_accepts_issued_certificates_for_their_purpose_and_refuses_others() {
    if !have_openssl() {
        return;
    }
    for kt in [KeyType::EcdsaP256, KeyType::Ed25519] {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let mut ca = new_ca(&d.join("ca"), "Org1", "Org1MSP", kt);
        issue(&mut ca, Role::Orderer, "orderer0", &d.join("o0"));
        issue(&mut ca, Role::Client, "user1", &d.join("u1"));
        let tls_ca = "ca/tlsca/tlsca-cert.pem";
        for (purpose, cert, accepted) in [
            ("sslserver", "o0/tls/server.crt", true),
            ("sslclient", "o0/tls/server.crt", true),
            ("sslclient", "u1/tls/client.crt", true),
            ("sslserver", "u1/tls/client.crt", false),
        ] {
            let (ok, text) = openssl(d, &["verify", "-x509_strict", "-CAfile", tls_ca, "-purpose", purpose, cert]);
            assert_eq!(ok, accepted, "{kt} {purpose} {cert}: {text}");
        }
        let (ok, text) = openssl(
            d,
            &["verify", "-x509_strict", "-CAfile", "ca/ca/ca-cert.pem", "o0/msp/signcerts/orderer0-cert.pem"],
        );
        assert!(ok, "{kt}: {text}");
    }
}

#[test]
fn openssl_verifies_our_signatures() {
    if !have_openssl() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::write(d.join("msg"), b"a block header to sign").unwrap();
    for kt in [KeyType::EcdsaP256, KeyType::Ed25519] {
        let key = SigningKey::generate(kt).unwrap();
        fs::write(d.join("key.pem"), key.to_pkcs8_pem().unwrap()).unwrap();
        let (ok, text) = openssl(d, &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
        assert!(ok, "{text}");
        fs::write(d.join("sig"), key.sign(b"a block header to sign").unwrap()).unwrap();
        let (ok, text) = match kt {
            KeyType::EcdsaP256 => openssl(d, &["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "msg"]),
            KeyType::Ed25519 => openssl(
                d,
                &["pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg", "-sigfile", "sig"],
            ),
        };
        assert!(ok, "{kt}: {text}");
        // Negative control: a different message is refused.
        fs::write(d.join("other"), b"another header").unwrap();
        let (ok, _) = match kt {
            KeyType::EcdsaP256 => openssl(d, &["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "other"]),
            KeyType::Ed25519 => openssl(
                d,
                &["pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "other", "-sigfile", "sig"],
            ),
        };
        assert!(!ok, "{kt}: openssl accepted a signature over another message");
    }
}

#[test]
fn openssl_keys_load_and_openssl_signatures_verify() {
    if !have_openssl() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::write(d.join("msg"), b"envelope bytes").unwrap();
    for (kt, alg) in [
        (KeyType::EcdsaP256, &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..]),
        (KeyType::Ed25519, &["-algorithm", "ed25519"][..]),
    ] {
        let mut args = vec!["genpkey"];
        args.extend_from_slice(alg);
        args.extend_from_slice(&["-out", "k.pem"]);
        let (ok, text) = openssl(d, &args);
        assert!(ok, "{text}");
        let (ok, text) = openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "k.pem",
                "-subj",
                "/O=Org1MSP/OU=peer/CN=p",
                "-days",
                "1",
                "-out",
                "c.pem",
            ],
        );
        assert!(ok, "{text}");
        let key = SigningKey::from_pkcs8_pem(&fs::read_to_string(d.join("k.pem")).unwrap()).unwrap();
        let public = PublicKey::from_cert(&fs::read(d.join("c.pem")).unwrap()).unwrap();
        assert_eq!(key.key_type(), kt);
        assert_eq!(key.public_key(), public);
        let (ok, text) = match kt {
            KeyType::EcdsaP256 => openssl(d, &["dgst", "-sha256", "-sign", "k.pem", "-out", "sig", "msg"]),
            KeyType::Ed25519 => {
                openssl(d, &["pkeyutl", "-sign", "-inkey", "k.pem", "-rawin", "-in", "msg", "-out", "sig"])
            }
        };
        assert!(ok, "{text}");
        let sig = fs::read(d.join("sig")).unwrap();
        match public.verify(b"envelope bytes", &sig) {
            Ok(()) => {}
            // OpenSSL does not normalise S; Fabric (and we) refuse high-S, the
            // low-S twin must verify.
            Err(SignatureError::HighS) => {
                let s = p256::ecdsa::Signature::from_der(&sig).unwrap();
                let low = s.normalize_s().unwrap().to_der();
                public.verify(b"envelope bytes", low.as_bytes()).unwrap();
            }
            Err(e) => panic!("{kt}: OpenSSL signature refused: {e}"),
        }
        assert!(public.verify(b"tampered", &sig).is_err());
    }
}

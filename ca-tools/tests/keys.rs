//! Signing keys and public keys: round trips, Fabric's ECDSA rules, Ed25519.

use ca_tools::{KeyType, PublicKey, SignatureError, SigningKey};

const BOTH: [KeyType; 2] = [KeyType::EcdsaP256, KeyType::Ed25519];

#[test]
fn signature_verifies_with_the_public_key_and_nothing_else() {
    for kt in BOTH {
        let key = SigningKey::generate(kt).unwrap();
        let other = SigningKey::generate(kt).unwrap();
        let sig = key.sign(b"block header").unwrap();
        key.public_key().verify(b"block header", &sig).unwrap();
        assert_eq!(key.public_key().verify(b"block headeR", &sig), Err(SignatureError::Invalid));
        assert_eq!(other.public_key().verify(b"block header", &sig), Err(SignatureError::Invalid));
    }
}

#[test]
fn pkcs8_pem_round_trip_keeps_the_key() {
    for kt in BOTH {
        let key = SigningKey::generate(kt).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.key_type(), kt);
        assert_eq!(back.public_key(), key.public_key());
        let sig = back.sign(b"m").unwrap();
        key.public_key().verify(b"m", &sig).unwrap();
    }
}

#[test]
fn public_key_bytes_round_trip() {
    for kt in BOTH {
        let key = SigningKey::generate(kt).unwrap().public_key();
        assert_eq!(PublicKey::from_bytes(kt, &key.to_bytes()).unwrap(), key);
    }
    assert!(PublicKey::from_bytes(KeyType::Ed25519, &[1, 2, 3]).is_err());
    assert!(PublicKey::from_bytes(KeyType::EcdsaP256, &[4; 65]).is_err());
}

#[test]
fn ecdsa_signatures_are_der_and_low_s_and_high_s_is_refused() {
    let key = SigningKey::generate(KeyType::EcdsaP256).unwrap();
    for i in 0..64u8 {
        let msg = [i; 10];
        let der = key.sign(&msg).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        assert!(sig.normalize_s().is_none(), "signature {i} is high-S");
        // The malleated twin (r, n - s) is mathematically valid but refused.
        let (r, s) = sig.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        let high_der = high.to_der();
        assert_eq!(key.public_key().verify(&msg, high_der.as_bytes()), Err(SignatureError::HighS));
    }
}

#[test]
fn ed25519_signature_is_64_raw_bytes_and_other_lengths_are_malformed() {
    let key = SigningKey::generate(KeyType::Ed25519).unwrap();
    let sig = key.sign(b"x").unwrap();
    assert_eq!(sig.len(), 64);
    assert_eq!(key.public_key().verify(b"x", &sig[..63]), Err(SignatureError::MalformedSignature));
    let ecdsa = SigningKey::generate(KeyType::EcdsaP256).unwrap();
    assert_eq!(ecdsa.public_key().verify(b"x", &sig), Err(SignatureError::MalformedSignature));
}

#[test]
fn non_pkcs8_input_is_a_clear_key_error() {
    let err =
        SigningKey::from_pkcs8_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n").unwrap_err();
    assert!(err.to_string().contains("PKCS#8"), "{err}");
    assert!(SigningKey::from_pkcs8_pem("hello").is_err());
}

#[test]
fn debug_output_does_not_show_the_private_key() {
    let key = SigningKey::generate(KeyType::Ed25519).unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    let der = ca_tools::pemutil::single_block(pem.as_bytes(), "k").unwrap().into_contents();
    // PKCS#8 Ed25519: ... OCTET STRING { OCTET STRING (32-byte seed) } ...
    let at = der.windows(4).position(|w| w == [0x04, 0x22, 0x04, 0x20]).unwrap() + 4;
    let secret_hex = hex::encode(&der[at..at + 32]);
    assert!(!key.public_key().to_bytes().windows(32).any(|w| hex::encode(w) == secret_hex));
    assert!(!format!("{key:?}").contains(&secret_hex));
}

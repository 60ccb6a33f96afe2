//! Envelope verification: each way an envelope can be wrong is refused with
//! its own error.

mod support;

use ca_tools::{Authority, Ca, Role};
use channels::envelope::{
    build_envelope, build_payload, compute_tx_id, sign_payload, verify_envelope, ChannelTrust, EnvelopeError,
    DEFAULT_MAX_ENVELOPE_BYTES,
};
use channels::proto::common::{ChannelHeader, Envelope, Header, HeaderType};
use prost::Message;
use support::{foreign, foreign_msp, network, Net, CHANNEL};

const NONCE: &[u8] = b"0123456789abcdefghijklmn";

fn now() -> i64 {
    ca_tools::now_unix()
}

fn verify(net: &Net, bytes: &[u8]) -> Result<channels::VerifiedEnvelope, EnvelopeError> {
    verify_at(net, bytes, now())
}

fn verify_at(net: &Net, bytes: &[u8], at: i64) -> Result<channels::VerifiedEnvelope, EnvelopeError> {
    let trust = ChannelTrust::new(&net.config).unwrap();
    verify_envelope(bytes, &trust, at, DEFAULT_MAX_ENVELOPE_BYTES)
}

fn envelope_by(msp: &ca_tools::Msp, channel: &str, header_type: HeaderType) -> Vec<u8> {
    build_envelope(channel, msp, b"tx data", header_type, now(), NONCE).unwrap().encode_to_vec()
}

#[test]
fn client_envelope_is_accepted_with_fabric_tx_id() {
    let net = network();
    let client = net.client();
    let bytes = envelope_by(&client, CHANNEL, HeaderType::EndorserTransaction);
    let verified = verify(&net, &bytes).unwrap();
    let creator = channels::envelope::serialized_identity("Org1MSP", &client.signcert_pem);
    assert_eq!(verified.tx_id, compute_tx_id(NONCE, &creator));
    assert_eq!(verified.channel_id, CHANNEL);
    assert_eq!(verified.creator_msp, "Org1MSP");
    assert_eq!(verified.creator_role, Role::Client);
    assert_eq!(verified.header_type, HeaderType::EndorserTransaction);
    assert_eq!(verified.size, bytes.len());
}

#[test]
fn ed25519_admin_envelope_is_accepted() {
    let net = network();
    let admin = net.msp("Org2", "users", "Admin");
    let verified = verify(&net, &envelope_by(&admin, CHANNEL, HeaderType::Message)).unwrap();
    assert_eq!((verified.creator_msp.as_str(), verified.creator_role), ("Org2MSP", Role::Admin));
}

#[test]
fn envelope_with_bad_signature_is_refused() {
    let net = network();
    let mut envelope = Envelope::decode(envelope_by(&net.client(), CHANNEL, HeaderType::Message).as_slice()).unwrap();
    let other =
        Envelope::decode(envelope_by(&net.client(), CHANNEL, HeaderType::EndorserTransaction).as_slice()).unwrap();
    envelope.signature = other.signature;
    assert_eq!(verify(&net, &envelope.encode_to_vec()), Err(EnvelopeError::BadSignature));
}

#[test]
fn envelope_from_foreign_creator_is_refused() {
    let net = network();
    let (dir, _) = foreign();
    let stranger = foreign_msp(&dir, "Org3", "users", "User1");
    let err = verify(&net, &envelope_by(&stranger, CHANNEL, HeaderType::Message)).unwrap_err();
    assert!(matches!(err, EnvelopeError::UnknownCreator(_)), "{err}");
}

#[test]
fn envelope_from_impostor_ca_with_a_member_msp_id_is_refused() {
    let net = network();
    let (dir, _) = foreign();
    let impostor = foreign_msp(&dir, "Org1", "users", "User1");
    assert_eq!(impostor.msp_id, "Org1MSP");
    let err = verify(&net, &envelope_by(&impostor, CHANNEL, HeaderType::Message)).unwrap_err();
    assert!(matches!(err, EnvelopeError::UnknownCreator(_) | EnvelopeError::InvalidCreator(_)), "{err}");
}

#[test]
fn creator_claiming_another_members_msp_id_is_refused() {
    let net = network();
    let mut client = net.client();
    client.msp_id = "Org2MSP".into();
    let err = verify(&net, &envelope_by(&client, CHANNEL, HeaderType::Message)).unwrap_err();
    assert!(matches!(err, EnvelopeError::UnknownCreator(_)), "{err}");
}

#[test]
fn envelope_from_revoked_creator_is_refused() {
    let mut net = network();
    let client = net.client();
    let bytes = envelope_by(&client, CHANNEL, HeaderType::Message);
    assert!(verify(&net, &bytes).is_ok());
    let mut ca = Ca::load(&net.path("Org1/ca")).unwrap();
    ca.revoke(client.signcert_pem.as_bytes()).unwrap();
    let crl = ca.crl_pem(Authority::Sign, 7).unwrap();
    net.config.orgs[0].crls.push(crl);
    let err = verify(&net, &bytes).unwrap_err();
    assert!(matches!(err, EnvelopeError::RevokedCreator(_)), "{err}");
}

#[test]
fn envelope_from_expired_creator_is_refused() {
    let net = network();
    let bytes = envelope_by(&net.client(), CHANNEL, HeaderType::Message);
    let two_years_later = now() + 2 * 365 * 86_400;
    let err = verify_at(&net, &bytes, two_years_later).unwrap_err();
    assert!(matches!(err, EnvelopeError::ExpiredCreator(_)), "{err}");
}

#[test]
fn envelope_from_creator_not_yet_valid_is_refused() {
    let net = network();
    let bytes = envelope_by(&net.client(), CHANNEL, HeaderType::Message);
    let err = verify_at(&net, &bytes, now() - 86_400).unwrap_err();
    assert!(matches!(err, EnvelopeError::CreatorNotYetValid(_)), "{err}");
}

#[test]
fn envelope_for_another_channel_is_refused() {
    let net = network();
    let err = verify(&net, &envelope_by(&net.client(), "otherchannel", HeaderType::Message)).unwrap_err();
    assert_eq!(err, EnvelopeError::WrongChannel { expected: CHANNEL.into(), found: "otherchannel".into() });
}

#[test]
fn envelope_with_malformed_payload_is_refused() {
    let net = network();
    let client = net.client();
    let garbage = Envelope {
        payload: vec![0xff, 0xff, 0xff, 0x07],
        signature: client.key.sign(&[0xff, 0xff, 0xff, 0x07]).unwrap(),
    };
    let err = verify(&net, &garbage.encode_to_vec()).unwrap_err();
    assert!(matches!(err, EnvelopeError::Malformed(_)), "{err}");
    let no_header = Envelope {
        payload: channels::proto::common::Payload { header: None, data: b"x".to_vec() }.encode_to_vec(),
        signature: Vec::new(),
    };
    let err = verify(&net, &no_header.encode_to_vec()).unwrap_err();
    assert!(matches!(err, EnvelopeError::Malformed(_)), "{err}");
}

#[test]
fn envelope_with_tx_id_not_derived_from_nonce_and_creator_is_refused() {
    let net = network();
    let client = net.client();
    let mut payload = build_payload(CHANNEL, &client, b"tx", HeaderType::EndorserTransaction, now(), NONCE);
    let header = payload.header.as_mut().unwrap();
    let mut channel_header = ChannelHeader::decode(header.channel_header.as_slice()).unwrap();
    channel_header.tx_id = compute_tx_id(b"another nonce", &[]);
    header.channel_header = channel_header.encode_to_vec();
    let envelope = sign_payload(&client, &payload).unwrap();
    let err = verify(&net, &envelope.encode_to_vec()).unwrap_err();
    assert!(matches!(err, EnvelopeError::TxIdMismatch { .. }), "{err}");
}

#[test]
fn oversize_envelope_is_refused_before_decoding() {
    let net = network();
    let trust = ChannelTrust::new(&net.config).unwrap();
    let bytes = envelope_by(&net.client(), CHANNEL, HeaderType::Message);
    let err = verify_envelope(&bytes, &trust, now(), bytes.len() - 1).unwrap_err();
    assert_eq!(err, EnvelopeError::TooLarge { size: bytes.len(), max: bytes.len() - 1 });
    let junk = vec![0xffu8; 64];
    assert!(matches!(verify_envelope(&junk, &trust, now(), 63), Err(EnvelopeError::TooLarge { .. })));
}

#[test]
fn orderer_may_submit_config_updates_but_not_transactions() {
    let net = network();
    let orderer = net.msp("Org1", "orderers", "orderer0");
    let err = verify(&net, &envelope_by(&orderer, CHANNEL, HeaderType::EndorserTransaction)).unwrap_err();
    assert!(matches!(err, EnvelopeError::WrongRole(_)), "{err}");
    let verified = verify(&net, &envelope_by(&orderer, CHANNEL, HeaderType::ConfigUpdate)).unwrap();
    assert_eq!(verified.creator_role, Role::Orderer);
}

#[test]
fn envelope_without_nonce_is_refused() {
    let net = network();
    let client = net.client();
    let bytes = build_envelope(CHANNEL, &client, b"x", HeaderType::Message, now(), &[]).unwrap().encode_to_vec();
    assert!(matches!(verify(&net, &bytes), Err(EnvelopeError::Malformed(_))));
}

#[test]
fn unsigned_header_swap_is_caught_by_the_signature() {
    // Replacing the channel header after signing breaks the signature.
    let net = network();
    let client = net.client();
    let mut envelope = build_envelope(CHANNEL, &client, b"x", HeaderType::Message, now(), NONCE).unwrap();
    let mut payload = channels::proto::common::Payload::decode(envelope.payload.as_slice()).unwrap();
    let Header { channel_header, .. } = payload.header.as_mut().unwrap();
    let mut ch = ChannelHeader::decode(channel_header.as_slice()).unwrap();
    ch.epoch = 9;
    *channel_header = ch.encode_to_vec();
    envelope.payload = payload.encode_to_vec();
    assert_eq!(verify(&net, &envelope.encode_to_vec()), Err(EnvelopeError::BadSignature));
}

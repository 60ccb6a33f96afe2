//! Key announcements: built by a consenter, verified against the identity
//! certificate pinned for it; every forgery is refused with its own error.

mod support;

use channels::announcement::{
    build_announcement, is_announcement, AnnouncementError, AnnouncementVerifier, X25519_KEY_LEN,
};
use channels::envelope::{build_envelope, verify_envelope, ChannelTrust, EnvelopeError, DEFAULT_MAX_ENVELOPE_BYTES};
use channels::proto::bftorderer::KeyAnnouncement;
use channels::proto::common::{Envelope, HeaderType};
use prost::Message;
use support::{network, Net, CHANNEL};

const KEY: [u8; X25519_KEY_LEN] = [7; X25519_KEY_LEN];

fn orderer(net: &Net, id: u32) -> ca_tools::Msp {
    let (org, name) = match id {
        1 => ("Org1", "orderer0"),
        2 => ("Org1", "orderer1"),
        3 => ("Org2", "orderer2"),
        _ => ("Org2", "orderer3"),
    };
    net.msp(org, "orderers", name)
}

fn raw(consenter_id: u32, epoch: u64, key: &[u8], by: &ca_tools::Msp) -> Vec<u8> {
    let data = KeyAnnouncement { consenter_id, epoch, x25519_public_key: key.to_vec() }.encode_to_vec();
    build_envelope(
        CHANNEL,
        by,
        &data,
        HeaderType::BftKeyAnnouncement,
        ca_tools::now_unix(),
        b"0123456789abcdefghijklmn",
    )
    .unwrap()
    .encode_to_vec()
}

#[test]
fn a_consenter_announces_its_own_key_and_every_replica_reads_the_same() {
    let net = network();
    for id in 1..=4 {
        let bytes = build_announcement(CHANNEL, &orderer(&net, id), id, 2, &KEY).unwrap().encode_to_vec();
        assert!(is_announcement(&bytes));
        let verifier = AnnouncementVerifier::new(&net.config);
        let announced = verifier.verify(&bytes).unwrap();
        assert_eq!((announced.consenter, announced.epoch, announced.public_key), (id, 2, KEY));
        let trust = ChannelTrust::new(&net.config).unwrap();
        assert_eq!(verifier.verify_submitted(&bytes, &trust, ca_tools::now_unix()).unwrap(), announced);
        // The deterministic check does not depend on the clock.
        assert!(verifier.verify(&bytes).is_ok(), "same answer again");
    }
}

#[test]
fn an_announcement_for_another_consenters_id_is_refused() {
    let net = network();
    let verifier = AnnouncementVerifier::new(&net.config);
    let bytes = raw(2, 2, &KEY, &orderer(&net, 1));
    assert_eq!(verifier.verify(&bytes), Err(AnnouncementError::NotTheConsenter(2)));
    let bytes = raw(9, 2, &KEY, &orderer(&net, 1));
    assert_eq!(verifier.verify(&bytes), Err(AnnouncementError::UnknownConsenter(9)));
}

#[test]
fn announcements_by_non_consenters_are_refused() {
    let net = network();
    let verifier = AnnouncementVerifier::new(&net.config);
    let trust = ChannelTrust::new(&net.config).unwrap();
    // A client, even naming a consenter's id: wrong role on admission, and
    // not the pinned certificate at execution.
    let bytes = raw(1, 2, &KEY, &net.client());
    let err = verifier.verify_submitted(&bytes, &trust, ca_tools::now_unix()).unwrap_err();
    assert!(matches!(err, AnnouncementError::Envelope(EnvelopeError::WrongRole(_))), "{err}");
    assert_eq!(verifier.verify(&bytes), Err(AnnouncementError::NotTheConsenter(1)));
    // The generic envelope check allows only orderers to create the type.
    let admin = net.msp("Org1", "users", "Admin");
    let bytes = raw(1, 2, &KEY, &admin);
    assert!(matches!(
        verify_envelope(&bytes, &trust, ca_tools::now_unix(), DEFAULT_MAX_ENVELOPE_BYTES),
        Err(EnvelopeError::WrongRole(_))
    ));
}

#[test]
fn a_forged_signature_is_refused() {
    let net = network();
    let verifier = AnnouncementVerifier::new(&net.config);
    let bytes = raw(3, 2, &KEY, &orderer(&net, 3));
    let mut envelope = Envelope::decode(bytes.as_slice()).unwrap();
    // Another consenter's valid signature over the same payload.
    envelope.signature = orderer(&net, 4).key.sign(&envelope.payload).unwrap();
    assert_eq!(verifier.verify(&envelope.encode_to_vec()), Err(AnnouncementError::BadSignature(3)));
    // A payload changed after signing (the key swapped).
    let mut envelope = Envelope::decode(bytes.as_slice()).unwrap();
    let at = envelope.payload.windows(KEY.len()).position(|w| w == KEY).unwrap();
    envelope.payload[at] ^= 1;
    assert_eq!(verifier.verify(&envelope.encode_to_vec()), Err(AnnouncementError::BadSignature(3)));
}

#[test]
fn a_key_of_the_wrong_length_or_a_bad_payload_or_epoch_is_refused() {
    let net = network();
    let verifier = AnnouncementVerifier::new(&net.config);
    let by = orderer(&net, 1);
    assert_eq!(verifier.verify(&raw(1, 2, &[1; 31], &by)), Err(AnnouncementError::BadKeyLength(31)));
    assert_eq!(verifier.verify(&raw(1, 2, &[1; 33], &by)), Err(AnnouncementError::BadKeyLength(33)));
    assert_eq!(verifier.verify(&raw(1, 2, &[], &by)), Err(AnnouncementError::BadKeyLength(0)));
    assert_eq!(verifier.verify(&raw(1, 0, &KEY, &by)), Err(AnnouncementError::BadEpoch));
    let garbage =
        build_envelope(CHANNEL, &by, b"\xff\xff\xff", HeaderType::BftKeyAnnouncement, 0, b"n").unwrap().encode_to_vec();
    assert!(matches!(verifier.verify(&garbage), Err(AnnouncementError::Malformed(_))));
}

#[test]
fn other_envelope_types_and_channels_are_not_announcements() {
    let net = network();
    let verifier = AnnouncementVerifier::new(&net.config);
    let by = orderer(&net, 1);
    let config_update = build_envelope(CHANNEL, &by, b"x", HeaderType::ConfigUpdate, 0, b"n").unwrap().encode_to_vec();
    assert!(!is_announcement(&config_update));
    assert_eq!(
        verifier.verify(&config_update),
        Err(AnnouncementError::NotAnAnnouncement(HeaderType::ConfigUpdate as i32))
    );
    let other = build_announcement("otherchannel", &by, 1, 2, &KEY).unwrap().encode_to_vec();
    assert!(matches!(verifier.verify(&other), Err(AnnouncementError::Envelope(EnvelopeError::WrongChannel { .. }))));
}

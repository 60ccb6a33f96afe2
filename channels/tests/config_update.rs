//! Configuration updates: org admins approve a new channel configuration;
//! every replica verifies the ordered envelope the same way, and each way an
//! update can be wrong is refused with its own error.

mod support;

use ca_tools::{Authority, Ca, IssueRequest, KeyType, Msp, Role, Validity};
use channels::config::{ChannelConfig, ConfigError};
use channels::config_update::{
    diff_summary, is_config_update, propose, sign_update, update_envelope, ConfigSignature, ConfigUpdateEnvelope,
    ConfigUpdateError, ConfigUpdateVerifier, SignerFault,
};
use channels::envelope::EnvelopeError;
use prost::Message;
use support::{four_orgs, outsiders, FourOrgs, CHANNEL};

const DAY: i64 = 86_400;

fn now() -> i64 {
    ca_tools::now_unix()
}

/// `current` with the sequence bumped: the start of every proposal.
fn next_of(current: &ChannelConfig) -> ChannelConfig {
    ChannelConfig { sequence: current.sequence + 1, ..current.clone() }
}

fn signed_by(next: &ChannelConfig, admins: &[&Msp]) -> ConfigUpdateEnvelope {
    let mut update = propose(next);
    for admin in admins {
        sign_update(&mut update, admin).unwrap();
    }
    update
}

/// The CONFIG_UPDATE envelope bytes, submitted by Org1's admin at `at`.
fn wrap_at(net: &FourOrgs, update: &ConfigUpdateEnvelope, at: i64) -> Vec<u8> {
    update_envelope(CHANNEL, update, &net.admin(1), at).unwrap().encode_to_vec()
}

fn wrap(net: &FourOrgs, update: &ConfigUpdateEnvelope) -> Vec<u8> {
    wrap_at(net, update, now())
}

fn verifier(config: &ChannelConfig) -> ConfigUpdateVerifier {
    ConfigUpdateVerifier::new(config).unwrap()
}

/// `next` signed by the admins of Org1-Org3 and wrapped now: what a
/// majority-approved update looks like.
fn majority_update(net: &FourOrgs, next: &ChannelConfig) -> Vec<u8> {
    wrap(net, &signed_by(next, &[&net.admin(1), &net.admin(2), &net.admin(3)]))
}

fn with_fifth_consenter(net: &FourOrgs) -> ChannelConfig {
    let mut next = next_of(&net.net.config);
    next.consenters.push(net.spares[0].clone());
    next
}

#[test]
fn a_majority_of_org_admins_adds_a_fifth_consenter() {
    let net = four_orgs();
    let next = with_fifth_consenter(&net);
    let bytes = majority_update(&net, &next);
    assert!(is_config_update(&bytes));
    let updated = verifier(&net.net.config).verify_submitted(&bytes, now()).unwrap();
    assert_eq!(updated.config, next);
    assert_eq!(updated.added, Some(5));
    assert_eq!((updated.removed, updated.changed.clone()), (None, vec![]));
    assert_eq!(updated.signer_orgs, ["Org1MSP", "Org2MSP", "Org3MSP"]);
    assert_eq!(updated.config.n(), 5);
    let summary = diff_summary(&net.net.config, &updated.config);
    assert!(summary.contains("sequence 0 -> 1"), "{summary}");
    assert!(summary.contains("added consenter 5 (Org4MSP) at orderer5:7054"), "{summary}");
}

#[test]
fn updates_chain_the_next_one_is_checked_against_the_configuration_the_last_one_made() {
    let net = four_orgs();
    let first = verifier(&net.net.config).verify(&majority_update(&net, &with_fifth_consenter(&net))).unwrap();
    let mut second = next_of(&first.config);
    second.consenters.retain(|c| c.id != 2);
    let bytes = majority_update(&net, &second);
    let updated = verifier(&first.config).verify(&bytes).unwrap();
    assert_eq!((updated.config.sequence, updated.added, updated.removed), (2, None, Some(2)));
    // The same bytes against the genesis configuration: the sequence is stale.
    assert_eq!(
        verifier(&net.net.config).verify(&bytes).unwrap_err(),
        ConfigUpdateError::WrongSequence { current: 0, found: 2 }
    );
}

#[test]
fn two_of_four_organisations_are_not_a_majority() {
    let net = four_orgs();
    let bytes = wrap(&net, &signed_by(&with_fifth_consenter(&net), &[&net.admin(1), &net.admin(2)]));
    let err = verifier(&net.net.config).verify(&bytes).unwrap_err();
    assert_eq!(
        err,
        ConfigUpdateError::PolicyNotSatisfied {
            policy: "majority".into(),
            signed: 2,
            orgs: 4,
            needed: 3,
            signer_orgs: vec!["Org1MSP".into(), "Org2MSP".into()],
        }
    );
    let text = err.to_string();
    assert!(text.contains("2 of 4 organisations (Org1MSP, Org2MSP)"), "{text}");
    assert!(text.contains("`majority` needs 3: collect more with `channels config-update sign`"), "{text}");
}

#[test]
fn two_admins_of_one_organisation_count_once() {
    let net = four_orgs();
    let admin2 = net.net.msp("Org1", "users", "Admin2");
    let update = signed_by(&with_fifth_consenter(&net), &[&net.admin(1), &admin2, &net.admin(2)]);
    let err = verifier(&net.net.config).verify(&wrap(&net, &update)).unwrap_err();
    assert!(matches!(err, ConfigUpdateError::PolicyNotSatisfied { signed: 2, needed: 3, .. }), "{err}");
}

#[test]
fn policy_any_needs_one_organisation_and_policy_all_needs_every_one() {
    let net = four_orgs();
    for (policy, admins, accepted) in [
        ("any", vec![net.admin(4)], true),
        ("all", vec![net.admin(1), net.admin(2), net.admin(3)], false),
        ("all", vec![net.admin(1), net.admin(2), net.admin(3), net.admin(4)], true),
    ] {
        let current = ChannelConfig { admin_policy: policy.into(), ..net.net.config.clone() };
        let mut next = next_of(&current);
        next.consenters.push(net.spares[0].clone());
        let refs: Vec<&Msp> = admins.iter().collect();
        let result = verifier(&current).verify(&wrap(&net, &signed_by(&next, &refs)));
        assert_eq!(result.is_ok(), accepted, "{policy} with {} admins: {result:?}", admins.len());
        if !accepted {
            assert!(matches!(result, Err(ConfigUpdateError::PolicyNotSatisfied { needed: 4, signed: 3, .. })));
        }
    }
}

#[test]
fn a_signature_by_an_orderer_or_a_client_is_not_an_admin_signature() {
    let net = four_orgs();
    let next = with_fifth_consenter(&net);
    let orderer = net.net.msp("Org4", "orderers", "orderer4");
    let client = net.net.msp("Org1", "users", "User1");
    for non_admin in [orderer, client] {
        let bytes = wrap(&net, &signed_by(&next, &[&net.admin(1), &net.admin(2), &non_admin]));
        let err = verifier(&net.net.config).verify(&bytes).unwrap_err();
        assert!(matches!(err, ConfigUpdateError::BadSigner { index: 2, fault: SignerFault::NotAnAdmin, .. }), "{err}");
    }
}

#[test]
fn an_admin_of_an_organisation_outside_the_channel_is_refused() {
    let net = four_orgs();
    let (dir, _) = outsiders();
    let next = with_fifth_consenter(&net);
    for org in ["Org5", "Org1"] {
        let outsider = Msp::load(None, &dir.path().join(format!("{org}/users/Admin/msp"))).unwrap();
        let bytes = wrap(&net, &signed_by(&next, &[&net.admin(2), &net.admin(3), &outsider]));
        let err = verifier(&net.net.config).verify(&bytes).unwrap_err();
        assert!(
            matches!(err, ConfigUpdateError::BadSigner { index: 2, fault: SignerFault::NotAMember, .. }),
            "{org}: {err}"
        );
    }
}

#[test]
fn an_admin_revoked_by_a_crl_of_the_current_configuration_is_refused() {
    let net = four_orgs();
    let mut current = net.net.config.clone();
    let mut ca = Ca::load(&net.net.path("Org2/ca")).unwrap();
    ca.revoke(net.admin(2).signcert_pem.as_bytes()).unwrap();
    current.orgs[1].crls.push(ca.crl_pem(Authority::Sign, 7).unwrap());
    let mut next = next_of(&current);
    next.consenters.push(net.spares[0].clone());
    let bytes = majority_update(&net, &next);
    let err = verifier(&current).verify(&bytes).unwrap_err();
    assert!(matches!(err, ConfigUpdateError::BadSigner { index: 1, fault: SignerFault::Revoked, .. }), "{err}");
}

#[test]
fn a_configuration_changed_after_signing_is_refused() {
    let net = four_orgs();
    let next = with_fifth_consenter(&net);
    let mut update = signed_by(&next, &[&net.admin(1), &net.admin(2), &net.admin(3)]);
    let mut tampered = next.clone();
    tampered.consenters[4].host = "attacker.example.com".into();
    update.config = tampered.to_canonical_bytes();
    let err = verifier(&net.net.config).verify(&wrap(&net, &update)).unwrap_err();
    assert_eq!(err, ConfigUpdateError::BadSignature { index: 0, msp_id: "Org1MSP".into() });
}

#[test]
fn the_same_admin_cannot_sign_twice() {
    let net = four_orgs();
    let mut update = signed_by(&with_fifth_consenter(&net), &[&net.admin(1), &net.admin(2)]);
    assert_eq!(
        sign_update(&mut update, &net.admin(1)),
        Err(ConfigUpdateError::AlreadySigned { msp_id: "Org1MSP".into() })
    );
    // A copied signature slipped in by hand is refused by the verifier.
    let copy = update.signatures[0].clone();
    update.signatures.push(copy);
    let err = verifier(&net.net.config).verify(&wrap(&net, &update)).unwrap_err();
    assert_eq!(err, ConfigUpdateError::DuplicateSigner { first: 0, second: 2 });
}

#[test]
fn a_sequence_that_is_not_the_next_one_is_refused() {
    let net = four_orgs();
    for sequence in [0, 2] {
        let mut next = with_fifth_consenter(&net);
        next.sequence = sequence;
        let err = verifier(&net.net.config).verify(&majority_update(&net, &next)).unwrap_err();
        assert_eq!(err, ConfigUpdateError::WrongSequence { current: 0, found: sequence });
        assert!(err.to_string().contains("must carry 1"), "{err}");
    }
}

#[test]
fn an_update_for_another_channel_is_refused() {
    let net = four_orgs();
    let next = with_fifth_consenter(&net);
    let update = signed_by(&next, &[&net.admin(1), &net.admin(2), &net.admin(3)]);
    let other = update_envelope("otherchannel", &update, &net.admin(1), now()).unwrap().encode_to_vec();
    let err = verifier(&net.net.config).verify(&other).unwrap_err();
    assert!(matches!(err, ConfigUpdateError::Envelope(EnvelopeError::WrongChannel { .. })), "{err}");
    // The right envelope channel, but a configuration of another channel.
    let renamed = ChannelConfig { channel_id: "otherchannel".into(), ..next };
    let err = verifier(&net.net.config).verify(&majority_update(&net, &renamed)).unwrap_err();
    assert_eq!(err, ConfigUpdateError::WrongChannel { expected: CHANNEL.into(), found: "otherchannel".into() });
}

#[test]
fn the_checkpoint_interval_cannot_change() {
    let net = four_orgs();
    let mut next = next_of(&net.net.config);
    if let Some(bft) = next.bft.as_mut() {
        bft.checkpoint_interval = 50;
    }
    let err = verifier(&net.net.config).verify(&majority_update(&net, &next)).unwrap_err();
    assert_eq!(
        err,
        ConfigUpdateError::Immutable { field: "bft.checkpoint_interval", current: "100".into(), proposed: "50".into() }
    );
    assert!(err.to_string().contains("keep 100"), "{err}");
}

#[test]
fn two_consenters_added_at_once_are_refused() {
    let net = four_orgs();
    let mut next = with_fifth_consenter(&net);
    next.consenters.push(net.spares[1].clone());
    let err = verifier(&net.net.config).verify(&majority_update(&net, &next)).unwrap_err();
    assert_eq!(err, ConfigUpdateError::TooManyConsenterChanges { added: vec![5, 6], removed: vec![] });
}

#[test]
fn removing_a_consenter_of_four_leaves_too_few() {
    let net = four_orgs();
    let mut next = next_of(&net.net.config);
    next.consenters.retain(|c| c.id != 2);
    let err = verifier(&net.net.config).verify(&majority_update(&net, &next)).unwrap_err();
    assert_eq!(err, ConfigUpdateError::InvalidConfig(ConfigError::TooFewConsenters(3)));
}

#[test]
fn rotating_a_consenters_identity_certificate_reports_it_as_changed() {
    let net = four_orgs();
    let mut ca = Ca::load(&net.net.path("Org3/ca")).unwrap();
    let request = IssueRequest {
        role: Role::Orderer,
        name: "orderer3".into(),
        sans: vec![],
        key_type: KeyType::Ed25519,
        validity: Validity::days_from_now(30).unwrap(),
        sign_key: None,
        tls_key: None,
    };
    let issued = ca.issue(request, &net.net.path("Org3/renewed/orderer3"), false).unwrap();
    let mut next = next_of(&net.net.config);
    next.consenters[2].identity_cert = issued.signcert_pem;
    let updated = verifier(&net.net.config).verify(&majority_update(&net, &next)).unwrap();
    assert_eq!((updated.added, updated.removed, updated.changed), (None, None, vec![3]));
    let summary = diff_summary(&net.net.config, &next);
    assert!(summary.contains("rotated identity certificate of consenter 3"), "{summary}");
    assert!(!summary.contains("TLS"), "{summary}");
}

#[test]
fn a_rotated_certificate_from_another_organisations_ca_is_refused() {
    let net = four_orgs();
    let mut next = next_of(&net.net.config);
    // Consenter 3 (Org3) given Org4's spare orderer certificate.
    next.consenters[2].identity_cert = net.spares[0].identity_cert.clone();
    let err = verifier(&net.net.config).verify(&majority_update(&net, &next)).unwrap_err();
    assert!(matches!(err, ConfigUpdateError::InvalidConfig(ConfigError::BadConsenterCert { id: 3, .. })), "{err}");
}

#[test]
fn verify_is_a_function_of_the_bytes_and_judges_certificates_at_the_envelope_timestamp() {
    let net = four_orgs();
    let next = with_fifth_consenter(&net);
    let update = signed_by(&next, &[&net.admin(1), &net.admin(2), &net.admin(3)]);
    // Stamped a month ahead: every certificate is valid then, so every
    // replica accepts the ordered bytes whatever its clock says...
    let month_ahead = wrap_at(&net, &update, now() + 30 * DAY);
    let verifier = verifier(&net.net.config);
    let first = verifier.verify(&month_ahead).unwrap();
    assert_eq!(verifier.verify(&month_ahead).unwrap(), first, "same bytes, same answer");
    // ...but an orderer admitting it now refuses the skewed timestamp.
    let err = verifier.verify_submitted(&month_ahead, now()).unwrap_err();
    assert!(matches!(err, ConfigUpdateError::TimestampSkew { .. }), "{err}");
    // Stamped two years ahead the admins' certificates have expired: refused
    // by every replica alike.
    let err = verifier.verify(&wrap_at(&net, &update, now() + 2 * 365 * DAY)).unwrap_err();
    assert!(matches!(err, ConfigUpdateError::Envelope(EnvelopeError::ExpiredCreator(_))), "{err}");
}

#[test]
fn a_submitted_update_stamped_an_hour_ago_is_refused() {
    let net = four_orgs();
    let update = signed_by(&with_fifth_consenter(&net), &[&net.admin(1), &net.admin(2), &net.admin(3)]);
    let bytes = wrap_at(&net, &update, now() - 3600);
    let err = verifier(&net.net.config).verify_submitted(&bytes, now()).unwrap_err();
    assert!(matches!(err, ConfigUpdateError::TimestampSkew { skew_seconds: 3600.., .. }), "{err}");
    assert!(err.to_string().contains("15 minutes"), "{err}");
}

#[test]
fn non_canonical_configuration_bytes_are_refused() {
    let net = four_orgs();
    let mut update = propose(&with_fifth_consenter(&net));
    // An unknown field 15 (varint 0): decodes, but is not the canonical encoding.
    update.config.extend_from_slice(&[0x78, 0x00]);
    let admin = net.admin(1);
    assert!(matches!(sign_update(&mut update, &admin), Err(ConfigUpdateError::InvalidConfig(ConfigError::Decode(_)))));
    let err = verifier(&net.net.config).verify(&wrap(&net, &update)).unwrap_err();
    assert!(matches!(err, ConfigUpdateError::InvalidConfig(ConfigError::Decode(_))), "{err}");
}

#[test]
fn garbage_and_other_envelope_types_are_not_config_updates() {
    let net = four_orgs();
    let verifier = verifier(&net.net.config);
    assert!(!is_config_update(b"junk"));
    assert!(matches!(verifier.verify(b"\xff\xff"), Err(ConfigUpdateError::Envelope(EnvelopeError::Malformed(_)))));
    let message = channels::build_envelope(
        CHANNEL,
        &net.admin(1),
        b"hello",
        channels::proto::common::HeaderType::Message,
        now(),
        b"nonce",
    )
    .unwrap()
    .encode_to_vec();
    assert!(!is_config_update(&message));
    assert_eq!(verifier.verify(&message), Err(ConfigUpdateError::NotAConfigUpdate(0)));
    // A CONFIG_UPDATE whose data is not a ConfigUpdateEnvelope.
    let junk = channels::build_envelope(
        CHANNEL,
        &net.admin(1),
        b"\xff\xff\xff",
        channels::proto::common::HeaderType::ConfigUpdate,
        now(),
        b"nonce",
    )
    .unwrap()
    .encode_to_vec();
    assert!(matches!(verifier.verify(&junk), Err(ConfigUpdateError::Malformed(_))));
}

#[test]
fn too_many_signatures_are_refused_before_any_is_checked() {
    let net = four_orgs();
    let mut update = propose(&with_fifth_consenter(&net));
    update.signatures = vec![ConfigSignature::default(); 257];
    let err = verifier(&net.net.config).verify(&wrap(&net, &update)).unwrap_err();
    assert_eq!(err, ConfigUpdateError::TooManySignatures { count: 257, max: 256 });
}

#[test]
fn a_submitter_outside_the_channel_is_refused() {
    let net = four_orgs();
    let (dir, _) = outsiders();
    let outsider = Msp::load(None, &dir.path().join("Org5/users/Admin/msp")).unwrap();
    let update = signed_by(&with_fifth_consenter(&net), &[&net.admin(1), &net.admin(2), &net.admin(3)]);
    let bytes = update_envelope(CHANNEL, &update, &outsider, now()).unwrap().encode_to_vec();
    let err = verifier(&net.net.config).verify(&bytes).unwrap_err();
    assert!(matches!(err, ConfigUpdateError::Envelope(EnvelopeError::UnknownCreator(_))), "{err}");
}

//! `generate_network` as `orderer dev` uses it: a consortium from YAML.

use ca_tools::{generate_network, now_unix, verify_identity, Msp, NetworkConfig, OrgTrust, Role, TlsIdentity};

const EXAMPLE: &str = include_str!("../examples/crypto-config.yaml");

#[test]
fn example_network_has_four_orderers_over_two_orgs_that_verify_and_sign() {
    let t = tempfile::tempdir().unwrap();
    let cfg = NetworkConfig::from_yaml(EXAMPLE).unwrap();
    let summary = generate_network(&cfg, t.path(), false).unwrap();
    let orderers = summary.orderers();
    assert_eq!(orderers.len(), 4);
    let msps: std::collections::BTreeSet<&str> = orderers.iter().map(|(m, _)| *m).collect();
    assert_eq!(msps.into_iter().collect::<Vec<_>>(), ["Org1MSP", "Org2MSP"]);

    let trust: Vec<OrgTrust> =
        summary.orgs.iter().map(|o| OrgTrust::from_msp_dir(&o.msp_id, &o.msp_dir).unwrap()).collect();
    for (msp_id, o) in orderers {
        assert!(o.dir.starts_with(t.path().join(if msp_id == "Org1MSP" { "Org1" } else { "Org2" }).join("orderers")));
        let msp = Msp::load(None, &o.msp_dir).unwrap();
        assert_eq!(msp.msp_id, msp_id);
        let who = verify_identity(msp.signcert_pem.as_bytes(), &trust, now_unix(), &[Role::Orderer]).unwrap();
        assert_eq!(who.msp_id, msp_id);
        let sig = msp.key.sign(b"checkpoint").unwrap();
        who.public_key.verify(b"checkpoint", &sig).unwrap();
        TlsIdentity::load(&o.tls_dir).unwrap();
    }
    let users: Vec<_> =
        summary.orgs[0].identities.iter().filter(|i| !i.role.is_node()).map(|i| (i.role, i.name.as_str())).collect();
    assert_eq!(users, [(Role::Admin, "Admin"), (Role::Client, "User1"), (Role::Auditor, "Auditor1")]);
}

#[test]
fn second_generation_into_the_same_directory_needs_force() {
    let t = tempfile::tempdir().unwrap();
    let cfg = NetworkConfig::from_yaml(EXAMPLE).unwrap();
    generate_network(&cfg, t.path(), false).unwrap();
    let err = generate_network(&cfg, t.path(), false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    generate_network(&cfg, t.path(), true).unwrap();
}

fn yaml_err(text: &str) -> String {
    NetworkConfig::from_yaml(text).unwrap_err().to_string()
}

#[test]
fn invalid_network_files_are_refused_with_the_reason() {
    assert!(yaml_err("orgs: []").contains("1..=64 orgs"));
    assert!(yaml_err("orgs:\n  - {name: A, msp_id: AMSP, peer: []}\n").contains("unknown field"));
    assert!(yaml_err("orgs:\n  - {name: A, msp_id: AMSP}\n  - {name: B, msp_id: AMSP}\n")
        .contains("MSP id 'AMSP' appears twice"));
    assert!(yaml_err("orgs:\n  - {name: A, msp_id: AMSP, clients: [{name: u}], admins: [{name: u}]}\n")
        .contains("appears twice"));
    assert!(yaml_err("orgs:\n  - {name: ../A, msp_id: AMSP}\n").contains("invalid"));
    assert!(yaml_err("orgs:\n  - {name: A, msp_id: AMSP, key_type: rsa}\n").contains("key_type"));
    // Same name in different directories is fine: orderers/x and users/x.
    NetworkConfig::from_yaml("orgs:\n  - {name: A, msp_id: AMSP, orderers: [{name: x}], clients: [{name: x}]}\n")
        .unwrap();
}

#[test]
fn network_with_a_bad_san_is_refused_before_anything_is_written() {
    let t = tempfile::tempdir().unwrap();
    let text = "orgs:\n  - {name: A, msp_id: AMSP, peers: [{name: p, sans: ['not a name']}]}\n";
    assert!(yaml_err(text).contains("SAN 'not a name'"));
    let mut cfg = NetworkConfig::from_yaml("orgs:\n  - {name: A, msp_id: AMSP, peers: [{name: p}]}\n").unwrap();
    cfg.orgs[0].peers[0].sans.push("not a name".into());
    let err = generate_network(&cfg, t.path(), false).unwrap_err();
    assert!(err.to_string().contains("SAN 'not a name'"), "{err}");
    assert!(!t.path().join("A").exists());
}

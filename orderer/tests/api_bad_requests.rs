//! Bad requests to the peer API of a real 4-node network, one table: each
//! gets the documented answer with a clear message, and nothing already
//! accepted is lost.

mod support;

use std::path::Path;

use ca_tools::ca::{Authority, Ca, IssueRequest, Validity};
use ca_tools::network::{IdentitySpec, NetworkConfig, OrgSpec};
use ca_tools::{KeyType, Msp, Role};
use channels::proto::common::HeaderType;
use orderer::node::client::HttpsClient;
use orderer::node::dev::{ports, prepare};
use prost::Message;
use support::{client_config, network, CHANNEL};

/// What a request got.
#[derive(Debug, PartialEq)]
enum Answer {
    /// The TLS handshake (or the first read after it) failed; the client's
    /// error text, which carries the TLS alert the server sent.
    Refused(String),
    /// The handshake passed and the server waits for a request.
    Accepted,
    Status(u16, String),
}

/// Whether the server accepts the client certificate of `tls`, without
/// sending a request: in TLS 1.3 the server checks the client certificate
/// after the client finished its side of the handshake, and answers a bad
/// one with a fatal alert. Reading (not writing) right after the handshake
/// receives that alert; a request written first could fail with a broken
/// pipe instead and hide the reason.
async fn handshake(addr: &str, tls: std::sync::Arc<rustls::ClientConfig>) -> Answer {
    use tokio::io::AsyncReadExt;
    let tcp = match tokio::net::TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        Err(e) => return Answer::Refused(format!("connect: {e}")),
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = match tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await {
        Ok(s) => s,
        Err(e) => return Answer::Refused(format!("handshake: {e}")),
    };
    let mut buf = [0u8; 64];
    match tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf)).await {
        Ok(Ok(0)) => Answer::Refused("closed without an alert".into()),
        Ok(Ok(n)) => Answer::Status(0, format!("unexpected {n} bytes before any request")),
        Ok(Err(e)) => Answer::Refused(format!("after the handshake: {e}")),
        Err(_) => Answer::Accepted,
    }
}

async fn ask(addr: &str, tls: std::sync::Arc<rustls::ClientConfig>, method: &str, path: &str, body: &[u8]) -> Answer {
    let mut c = match HttpsClient::connect(addr, "127.0.0.1", tls).await {
        Ok(c) => c,
        Err(e) => return Answer::Refused(e.to_string()),
    };
    match c.request(method, path, body).await {
        Ok(r) => Answer::Status(r.status, String::from_utf8_lossy(&r.body).into_owned()),
        Err(e) => Answer::Refused(e.to_string()),
    }
}

fn issue(ca_dir: &Path, name: &str, role: Role, validity: Validity, out: &Path) {
    let mut ca = Ca::load(ca_dir).unwrap();
    let req = IssueRequest {
        role,
        name: name.into(),
        sans: vec![],
        key_type: KeyType::EcdsaP256,
        validity,
        sign_key: None,
        tls_key: None,
    };
    ca.issue(req, out, false).unwrap();
}

/// (what, TLS config, path, body, expected HTTP code (None: refused at
/// TLS), words the message must contain (for a TLS refusal: the alert the
/// server sent, so that e.g. a refused TCP connection cannot pass))
type Case = (&'static str, std::sync::Arc<rustls::ClientConfig>, String, Vec<u8>, Option<u16>, &'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_request_gets_its_documented_answer_and_nothing_accepted_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = network(dir.path(), 4);
    let opts = cluster.opts.clone();
    let crypto = opts.dir.join("crypto");
    let ca_dir = crypto.join("org1/ca");
    let now = ca_tools::now_unix();

    // Extra identities of the peer org: an expired client, a revoked client.
    issue(
        &ca_dir,
        "expired",
        Role::Client,
        Validity { not_before_unix: now - 200, not_after_unix: now - 100 },
        &dir.path().join("expired"),
    );
    issue(&ca_dir, "revoked", Role::Client, Validity::days_from_now(30).unwrap(), &dir.path().join("revoked"));
    let mut ca = Ca::load(&ca_dir).unwrap();
    ca.revoke(&std::fs::read(dir.path().join("revoked/tls/client.crt")).unwrap()).unwrap();
    ca.write_crl(Authority::Tls, 30, &dir.path().join("tls.crl"), false).unwrap();
    // Rebuild the genesis block so the channel carries the CRL.
    std::fs::remove_file(opts.dir.join(format!("bootstrap/{CHANNEL}.block"))).unwrap();
    prepare(&opts).unwrap();
    // A consortium the channel does not know.
    let foreign = dir.path().join("foreign");
    let foreign_net = NetworkConfig {
        orgs: vec![OrgSpec {
            name: "foreign".into(),
            msp_id: "ForeignMSP".into(),
            key_type: KeyType::EcdsaP256,
            ca_days: 30,
            days: 30,
            orderers: vec![],
            peers: vec![],
            admins: vec![],
            clients: vec![IdentitySpec { name: "client".into(), sans: vec![] }],
            auditors: vec![],
        }],
    };
    ca_tools::generate_network(&foreign_net, &foreign, false).unwrap();
    cluster.start_all();

    let addr = format!("127.0.0.1:{}", ports(opts.base_port, 1).1);
    let client_dir = crypto.join("org1/users/client");
    let good_tls = client_config(&opts, &client_dir.join("tls"));
    let msp = Msp::load(Some("Org1MSP"), &client_dir.join("msp")).unwrap();
    let envelope = |text: &str| {
        channels::envelope::build_envelope_now(CHANNEL, &msp, text.as_bytes(), HeaderType::EndorserTransaction)
            .unwrap()
            .encode_to_vec()
    };
    let submit = format!("/v1/channels/{CHANNEL}/envelopes");

    // Accepted before the bad requests, committed: it must stay.
    let first = envelope("accepted first");
    let a = ask(&addr, good_tls.clone(), "POST", &format!("{submit}?wait=commit"), &first).await;
    assert!(matches!(&a, Answer::Status(200, b) if b.contains("committed in block")), "{a:?}");

    let no_cert = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates({
                let mut roots = rustls::RootCertStore::empty();
                for pem in pem::parse_many(support::bundle(&opts.dir).as_bytes()).unwrap() {
                    roots.add(pem.contents().to_vec().into()).unwrap();
                }
                roots
            })
            .with_no_client_auth(),
    );
    let mut bad_sig = channels::proto::common::Envelope::decode(envelope("tampered").as_slice()).unwrap();
    let last = bad_sig.signature.len() - 1;
    bad_sig.signature[last] ^= 1;
    let orderer_tls = client_config(&opts, &crypto.join("ordererorg1/orderers/orderer1/tls"));
    let oversize = vec![7u8; 11 * 1024 * 1024];

    let cases: Vec<Case> = vec![
        (
            "no client certificate",
            no_cert,
            submit.clone(),
            envelope("a"),
            None,
            "received fatal alert: CertificateRequired",
        ),
        (
            "certificate of a foreign CA",
            client_config(&opts, &foreign.join("foreign/users/client/tls")),
            submit.clone(),
            envelope("b"),
            None,
            "received fatal alert: UnknownCA",
        ),
        (
            "expired certificate",
            client_config(&opts, &dir.path().join("expired/tls")),
            submit.clone(),
            envelope("c"),
            None,
            "received fatal alert: CertificateExpired",
        ),
        (
            "revoked certificate",
            client_config(&opts, &dir.path().join("revoked/tls")),
            submit.clone(),
            envelope("d"),
            None,
            "received fatal alert: CertificateRevoked",
        ),
        (
            "wrong role for the call (an orderer submitting)",
            orderer_tls,
            submit.clone(),
            envelope("e"),
            Some(403),
            "FORBIDDEN",
        ),
        (
            "unknown channel",
            good_tls.clone(),
            "/v1/channels/nosuchchannel/envelopes".into(),
            envelope("f"),
            Some(404),
            "NOT_FOUND",
        ),
        (
            "malformed body",
            good_tls.clone(),
            submit.clone(),
            b"not a protobuf envelope".to_vec(),
            Some(400),
            "malformed",
        ),
        ("oversize body", good_tls.clone(), submit.clone(), oversize, Some(413), "REQUEST_ENTITY_TOO_LARGE"),
        ("bad signature", good_tls.clone(), submit.clone(), bad_sig.encode_to_vec(), Some(400), "signature"),
        ("duplicate tx id", good_tls.clone(), submit.clone(), first.clone(), Some(400), "duplicate"),
        (
            "bad block position",
            good_tls.clone(),
            format!("/v1/channels/{CHANNEL}/blocks/tomorrow"),
            vec![],
            Some(400),
            "oldest or newest",
        ),
        (
            "block not yet there",
            good_tls.clone(),
            format!("/v1/channels/{CHANNEL}/blocks/999999"),
            vec![],
            Some(404),
            "not committed",
        ),
    ];
    // Negative control of the probe: a valid client certificate passes it.
    assert_eq!(handshake(&addr, good_tls.clone()).await, Answer::Accepted, "a valid certificate is accepted");
    for (what, tls, path, body, code, words) in cases {
        let method = if path.contains("/blocks/") { "GET" } else { "POST" };
        let answer = match code {
            None => handshake(&addr, tls).await,
            Some(_) => ask(&addr, tls, method, &path, &body).await,
        };
        match (code, &answer) {
            (None, Answer::Refused(error)) => {
                assert!(error.contains(words), "{what}: refused with {error:?}, expected {words:?}");
            }
            (None, Answer::Status(c, body)) => panic!("{what}: HTTP {c} {body}, expected a refused handshake"),
            (None | Some(_), Answer::Accepted) => panic!("{what}: the server accepted the certificate"),
            (Some(code), Answer::Status(c, body)) => {
                assert_eq!(*c, code, "{what}: {body}");
                assert!(body.contains(words), "{what}: message {body:?} lacks {words:?}");
            }
            (Some(code), Answer::Refused(error)) => panic!("{what}: refused at TLS ({error}), expected HTTP {code}"),
        }
        println!("{what}: {answer:?}");
    }

    // Nothing lost: a new envelope commits, and the first one is in a block.
    let b = ask(&addr, good_tls.clone(), "POST", &format!("{submit}?wait=commit"), &envelope("after")).await;
    assert!(matches!(&b, Answer::Status(200, body) if body.contains("committed in block")), "{b:?}");
    let again = ask(&addr, good_tls, "POST", &submit, &first).await;
    assert!(matches!(&again, Answer::Status(400, body) if body.contains("already ordered in block")), "{again:?}");
}

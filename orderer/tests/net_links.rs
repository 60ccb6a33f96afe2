//! Scenarios of the cluster links over real mutual-TLS sockets on 127.0.0.1.
//! Certificates are generated at test time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use orderer::net::{ConsenterId, FaultInjection, Inbound, LinkConfig, Links, NetError, PeerEndpoint, SendOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::Receiver;

/// Test PKI: a CA and mutual-TLS configs over it (the real ones come from ca-tools).
mod pki {
    use std::sync::Arc;

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{client::WebPkiServerVerifier, ClientConfig, RootCertStore, ServerConfig};

    pub struct Ca {
        issuer: Issuer<'static, KeyPair>,
        cert: CertificateDer<'static>,
    }

    pub struct Identity {
        pub cert: CertificateDer<'static>,
        key: PrivatePkcs8KeyDer<'static>,
    }

    impl Ca {
        pub fn new(name: &str) -> Ca {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Ca { issuer: Issuer::new(params, key), cert: cert.der().clone() }
        }

        /// A TLS certificate for both server and client auth, SAN localhost and 127.0.0.1.
        pub fn issue(&self, common_name: &str) -> Identity {
            let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, common_name);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            Identity { cert: cert.der().clone(), key: PrivatePkcs8KeyDer::from(key.serialize_der()) }
        }

        fn roots(&self) -> Arc<RootCertStore> {
            let mut roots = RootCertStore::empty();
            roots.add(self.cert.clone()).unwrap();
            Arc::new(roots)
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn key(identity: &Identity) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(identity.key.clone_key())
    }

    /// Requires a client certificate chaining to `ca`.
    pub fn server_config(ca: &Ca, identity: &Identity) -> Arc<ServerConfig> {
        let verifier = WebPkiClientVerifier::builder_with_provider(ca.roots(), provider()).build().unwrap();
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![identity.cert.clone()], key(identity))
            .unwrap();
        Arc::new(config)
    }

    /// Verifies servers against `ca`, presents `identity`.
    pub fn client_config(ca: &Ca, identity: &Identity) -> Arc<ClientConfig> {
        let verifier = WebPkiServerVerifier::builder_with_provider(ca.roots(), provider()).build().unwrap();
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(vec![identity.cert.clone()], key(identity))
            .unwrap();
        Arc::new(config)
    }
}

use pki::{Ca, Identity};

const WAIT: Duration = Duration::from_secs(5);

fn endpoint(id: ConsenterId, addr: SocketAddr, identity: &Identity) -> PeerEndpoint {
    PeerEndpoint {
        id,
        addr: addr.to_string(),
        server_name: "localhost".to_string(),
        tls_cert_der: identity.cert.to_vec(),
    }
}

/// Test limits: fast reconnects, short timeouts.
fn config(me: ConsenterId, listen: SocketAddr, peers: Vec<PeerEndpoint>, ca: &Ca, identity: &Identity) -> LinkConfig {
    let mut cfg =
        LinkConfig::new(me, listen, peers, pki::server_config(ca, identity), pki::client_config(ca, identity));
    cfg.reconnect_min_ms = 10;
    cfg.reconnect_max_ms = 200;
    cfg.io_timeout_ms = 2_000;
    cfg
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A port that was free a moment ago (for a node that starts later).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct Node {
    id: ConsenterId,
    identity: Identity,
    links: Links,
    inbound: Receiver<Inbound>,
}

/// `n` nodes (ids 1..=n) that know each other.
async fn cluster(ca: &Ca, n: u32) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in 1..=n {
        let identity = ca.issue(&format!("orderer{id}"));
        let (links, inbound) = Links::start(config(id, any_port(), vec![], ca, &identity)).await.unwrap();
        nodes.push(Node { id, identity, links, inbound });
    }
    let endpoints: Vec<PeerEndpoint> =
        nodes.iter().map(|node| endpoint(node.id, node.links.local_addr(), &node.identity)).collect();
    for node in &nodes {
        node.links.replace_peers(endpoints.clone()).unwrap();
    }
    nodes
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn receive(inbound: &mut Receiver<Inbound>, count: usize) -> Vec<Inbound> {
    let mut frames = Vec::with_capacity(count);
    while frames.len() < count {
        match tokio::time::timeout(WAIT, inbound.recv()).await {
            Ok(Some(frame)) => frames.push(frame),
            other => panic!("expected {count} frames, got {} then {other:?}", frames.len()),
        }
    }
    frames
}

async fn assert_nothing_arrives(inbound: &mut Receiver<Inbound>) {
    let late = tokio::time::timeout(Duration::from_millis(300), inbound.recv()).await;
    assert!(late.is_err(), "unexpected frame: {late:?}");
}

fn payload(sender: ConsenterId, channel: &str, seq: u32) -> Bytes {
    Bytes::from(format!("{sender}/{channel}/{seq}"))
}

fn seq_of(frame: &Inbound) -> u32 {
    let text = std::str::from_utf8(&frame.bytes).unwrap();
    text.rsplit('/').next().unwrap().parse().unwrap()
}

fn stats_of(links: &Links, peer: ConsenterId) -> orderer::net::PeerStats {
    links.stats().into_iter().find(|s| s.id == peer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_deliver_every_frame_once_and_in_order_per_sender_and_channel() {
    let ca = Ca::new("consortium");
    let mut nodes = cluster(&ca, 4).await;
    let per_channel = 300u32;
    for seq in 0..per_channel {
        for node in &nodes {
            for channel in ["alpha", "beta"] {
                assert_eq!(node.links.broadcast(channel, payload(node.id, channel, seq)), 3);
            }
        }
    }
    for node in &mut nodes {
        let frames = receive(&mut node.inbound, 3 * 2 * per_channel as usize).await;
        let mut next: HashMap<(ConsenterId, String), u32> = HashMap::new();
        for frame in &frames {
            assert_ne!(frame.from, node.id);
            let expected = format!("{}/{}/", frame.from, frame.channel);
            assert!(std::str::from_utf8(&frame.bytes).unwrap().starts_with(&expected), "{frame:?}");
            let seq = next.entry((frame.from, frame.channel.clone())).or_default();
            assert_eq!(seq_of(frame), *seq, "out of order or duplicate from {} on {}", frame.from, frame.channel);
            *seq += 1;
        }
        assert_eq!(next.len(), 6);
        assert!(next.values().all(|count| *count == per_channel));
        assert_nothing_arrives(&mut node.inbound).await;
    }
    for node in &nodes {
        wait_until("every writer has counted its flushed frames", || node.links.stats().iter().all(|s| s.sent == 600))
            .await;
        for stats in node.links.stats() {
            assert_eq!((stats.sent, stats.received, stats.dropped), (600, 600, 0), "{stats:?}");
            assert!(stats.connected && stats.inbound_connected, "{stats:?}");
        }
        assert_eq!(node.links.link_stats().accepted, 3);
    }
    for node in &nodes {
        node.links.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_to_a_down_peer_are_dropped_when_its_queue_is_full_and_flow_once_it_is_up() {
    let ca = Ca::new("consortium");
    let (a, b) = (ca.issue("orderer1"), ca.issue("orderer2"));
    let b_addr = free_port();
    let mut a_cfg = config(1, any_port(), vec![endpoint(2, b_addr, &b)], &ca, &a);
    a_cfg.send_queue_max = 8;
    let (a_links, _a_inbound) = Links::start(a_cfg).await.unwrap();

    let outcomes: Vec<SendOutcome> = (0..20).map(|seq| a_links.send(2, "alpha", payload(1, "alpha", seq))).collect();
    assert!(outcomes[..8].iter().all(|o| *o == SendOutcome::Queued), "{outcomes:?}");
    assert!(outcomes[8..].iter().all(|o| *o == SendOutcome::QueueFull), "{outcomes:?}");
    wait_until("the dialer has failed to reach the down peer", || stats_of(&a_links, 2).connect_failures >= 2).await;
    let down = stats_of(&a_links, 2);
    assert_eq!((down.connected, down.queue_len, down.dropped, down.sent), (false, 8, 12, 0), "{down:?}");

    let a_addr = a_links.local_addr();
    let (b_links, mut b_inbound) =
        Links::start(config(2, b_addr, vec![endpoint(1, a_addr, &a)], &ca, &b)).await.unwrap();
    let queued = receive(&mut b_inbound, 8).await;
    assert_eq!(queued.iter().map(seq_of).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    assert!(queued.iter().all(|f| f.from == 1));
    for seq in 20..25 {
        assert_eq!(a_links.send(2, "alpha", payload(1, "alpha", seq)), SendOutcome::Queued);
    }
    let later = receive(&mut b_inbound, 5).await;
    assert_eq!(later.iter().map(seq_of).collect::<Vec<_>>(), (20..25).collect::<Vec<_>>());
    wait_until("the writer has counted its flushed frames", || stats_of(&a_links, 2).sent == 13).await;
    let up = stats_of(&a_links, 2);
    assert_eq!((up.connected, up.connects, up.sent, up.dropped), (true, 1, 13, 12), "{up:?}");
    b_links.shutdown().await;
    a_links.shutdown().await;
}

/// Node 1 of `ca`, which knows only node 2 (down, at a free port).
async fn guarded_node(ca: &Ca) -> (Identity, Links, Receiver<Inbound>) {
    let (a, b) = (ca.issue("orderer1"), ca.issue("orderer2"));
    let (links, inbound) =
        Links::start(config(1, any_port(), vec![endpoint(2, free_port(), &b)], ca, &a)).await.unwrap();
    (a, links, inbound)
}

/// A node that trusts `ca` (so it accepts node 1's server certificate) and
/// presents `cert`, issued by `cert_ca`; it keeps trying to send to node 1.
async fn intruder(ca: &Ca, target: (&Identity, &Links), cert_ca: &Ca, cert: &Identity) -> Links {
    let (target_identity, target_links) = target;
    let mut cfg = config(9, any_port(), vec![endpoint(1, target_links.local_addr(), target_identity)], ca, cert);
    cfg.server_config = pki::server_config(cert_ca, cert);
    let (links, _) = Links::start(cfg).await.unwrap();
    for seq in 0..10 {
        assert_eq!(links.send(1, "alpha", payload(9, "alpha", seq)), SendOutcome::Queued);
    }
    links
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_from_a_foreign_ca_is_refused_at_the_handshake() {
    let ca = Ca::new("consortium");
    let foreign = Ca::new("foreign");
    let (a, a_links, mut a_inbound) = guarded_node(&ca).await;
    let intruder_links = intruder(&ca, (&a, &a_links), &foreign, &foreign.issue("orderer2")).await;
    wait_until("the listener has refused two handshakes", || a_links.link_stats().handshake_failures >= 2).await;
    assert_nothing_arrives(&mut a_inbound).await;
    let refused = stats_of(&intruder_links, 1);
    assert_eq!((refused.connects, refused.sent, refused.connected), (0, 0, false), "{refused:?}");
    assert!(refused.connect_failures >= 2, "{refused:?}");
    let listener = a_links.link_stats();
    assert_eq!((listener.accepted, listener.unknown_certificates), (0, 0), "{listener:?}");
    intruder_links.shutdown().await;
    a_links.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_certificate_of_no_configured_consenter_is_disconnected() {
    let ca = Ca::new("consortium");
    let (a, a_links, mut a_inbound) = guarded_node(&ca).await;
    // Same CA, same common name as the configured peer, but not its certificate.
    let intruder_links = intruder(&ca, (&a, &a_links), &ca, &ca.issue("orderer2")).await;
    wait_until("the listener has refused two unknown certificates", || a_links.link_stats().unknown_certificates >= 2)
        .await;
    assert_nothing_arrives(&mut a_inbound).await;
    let refused = stats_of(&intruder_links, 1);
    assert_eq!((refused.connects, refused.sent, refused.connected), (0, 0, false), "{refused:?}");
    assert_eq!(refused.queue_len, 10, "frames stay queued until a link is confirmed: {refused:?}");
    let listener = a_links.link_stats();
    assert_eq!((listener.accepted, listener.handshake_failures), (0, 0), "{listener:?}");
    assert!(!stats_of(&a_links, 2).inbound_connected);
    intruder_links.shutdown().await;
    a_links.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_presenting_another_valid_certificate_is_refused_by_the_dialer() {
    let ca = Ca::new("consortium");
    let mut nodes = cluster(&ca, 2).await;
    let impostor_cert = ca.issue("orderer2-other");
    // Node 1 believes node 2's certificate is another one (valid, same CA).
    let wrong = endpoint(2, nodes[1].links.local_addr(), &impostor_cert);
    nodes[0].links.replace_peers(vec![wrong]).unwrap();
    assert_eq!(nodes[0].links.send(2, "alpha", payload(1, "alpha", 0)), SendOutcome::Queued);
    wait_until("the dialer has refused the server twice", || stats_of(&nodes[0].links, 2).refused_certificates >= 2)
        .await;
    let refused = stats_of(&nodes[0].links, 2);
    assert_eq!((refused.connected, refused.sent, refused.queue_len), (false, 0, 1), "{refused:?}");
    assert_nothing_arrives(&mut nodes[1].inbound).await;
    for node in &nodes {
        node.links.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frame_length_closes_that_link_without_affecting_others() {
    let ca = Ca::new("consortium");
    let mut nodes = cluster(&ca, 3).await;
    // Node 1 also knows a node 4 that is not running; a raw TLS client holding
    // node 4's identity sends node 1 an oversize length.
    let node4 = ca.issue("orderer4");
    let mut peers: Vec<PeerEndpoint> =
        nodes.iter().map(|node| endpoint(node.id, node.links.local_addr(), &node.identity)).collect();
    peers.push(endpoint(4, free_port(), &node4));
    nodes[0].links.replace_peers(peers).unwrap();
    let connector = tokio_rustls::TlsConnector::from(pki::client_config(&ca, &node4));
    let tcp = tokio::net::TcpStream::connect(nodes[0].links.local_addr()).await.unwrap();
    let server_name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut raw = connector.connect(server_name, tcp).await.unwrap();
    let mut greeting = [0u8; 8];
    raw.read_exact(&mut greeting).await.unwrap();
    let oversize = (LinkConfig::FRAME_BYTES_MAX_DEFAULT as u32 + 1).to_be_bytes();
    raw.write_all(&oversize).await.unwrap();
    raw.flush().await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, raw.read_to_end(&mut rest)).await.unwrap();
    assert!(closed.as_ref().map(|n| *n == 0).unwrap_or(true), "link should close without data: {closed:?}");
    assert_eq!(nodes[0].links.link_stats().protocol_errors, 1);
    // Node 3's link to node 1 is untouched and keeps delivering.
    for seq in 0..5 {
        assert_eq!(nodes[2].links.send(1, "alpha", payload(3, "alpha", seq)), SendOutcome::Queued);
    }
    let frames = receive(&mut nodes[0].inbound, 5).await;
    assert!(frames.iter().all(|f| f.from == 3));
    assert_eq!(frames.iter().map(seq_of).collect::<Vec<_>>(), (0..5).collect::<Vec<_>>());
    assert_eq!(stats_of(&nodes[2].links, 1).connects, 1);
    for node in &nodes {
        node.links.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_drops_about_the_configured_fraction() {
    let ca = Ca::new("consortium");
    let (a, b) = (ca.issue("orderer1"), ca.issue("orderer2"));
    let (b_links, mut b_inbound) = Links::start(config(2, any_port(), vec![], &ca, &b)).await.unwrap();
    let mut a_cfg = config(1, any_port(), vec![endpoint(2, b_links.local_addr(), &b)], &ca, &a);
    a_cfg.fault = Some(FaultInjection { delay_ms: 0, drop_per_mille: 250, seed: Some(42) });
    let (a_links, _) = Links::start(a_cfg).await.unwrap();
    b_links.replace_peers(vec![endpoint(1, a_links.local_addr(), &a)]).unwrap();
    let total = 2000u32;
    for seq in 0..total {
        a_links.send(2, "alpha", payload(1, "alpha", seq));
    }
    let fault_dropped = stats_of(&a_links, 2).fault_dropped;
    assert!((400..=600).contains(&fault_dropped), "dropped {fault_dropped} of {total}, expected about 500");
    let frames = receive(&mut b_inbound, (u64::from(total) - fault_dropped) as usize).await;
    let seqs: Vec<u32> = frames.iter().map(seq_of).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "survivors must stay in order");
    assert_nothing_arrives(&mut b_inbound).await;
    a_links.shutdown().await;
    b_links.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_delays_every_frame() {
    let ca = Ca::new("consortium");
    let (a, b) = (ca.issue("orderer1"), ca.issue("orderer2"));
    let (b_links, mut b_inbound) = Links::start(config(2, any_port(), vec![], &ca, &b)).await.unwrap();
    let mut a_cfg = config(1, any_port(), vec![endpoint(2, b_links.local_addr(), &b)], &ca, &a);
    a_cfg.fault = Some(FaultInjection { delay_ms: 300, drop_per_mille: 0, seed: None });
    let (a_links, _) = Links::start(a_cfg).await.unwrap();
    b_links.replace_peers(vec![endpoint(1, a_links.local_addr(), &a)]).unwrap();
    wait_until("the link is up", || stats_of(&a_links, 2).connected).await;
    let sent_at = tokio::time::Instant::now();
    a_links.send(2, "alpha", payload(1, "alpha", 0));
    receive(&mut b_inbound, 1).await;
    let elapsed = sent_at.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "arrived after {elapsed:?}");
    a_links.shutdown().await;
    b_links.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_peer_loses_its_links_and_sends_to_it_are_refused() {
    let ca = Ca::new("consortium");
    let mut nodes = cluster(&ca, 3).await;
    wait_until("node 2 is linked to node 1", || stats_of(&nodes[0].links, 2).inbound_connected).await;
    let keep = endpoint(3, nodes[2].links.local_addr(), &nodes[2].identity);
    nodes[0].links.replace_peers(vec![keep]).unwrap();
    assert_eq!(nodes[0].links.send(2, "alpha", payload(1, "alpha", 0)), SendOutcome::UnknownPeer);
    assert_eq!(nodes[0].links.stats().iter().map(|s| s.id).collect::<Vec<_>>(), vec![3]);
    wait_until("node 2's link to node 1 is down", || !stats_of(&nodes[1].links, 1).connected).await;
    nodes[1].links.send(1, "alpha", payload(2, "alpha", 0));
    assert_eq!(nodes[2].links.send(1, "alpha", payload(3, "alpha", 0)), SendOutcome::Queued);
    let frames = receive(&mut nodes[0].inbound, 1).await;
    assert_eq!(frames[0].from, 3);
    assert_nothing_arrives(&mut nodes[0].inbound).await;
    for node in &nodes {
        node.links.shutdown().await;
    }
}

#[tokio::test]
async fn two_consenters_with_one_certificate_are_refused_at_start() {
    let ca = Ca::new("consortium");
    let (a, b) = (ca.issue("orderer1"), ca.issue("orderer2"));
    let peers = vec![endpoint(2, free_port(), &b), endpoint(3, free_port(), &b)];
    let err = Links::start(config(1, any_port(), peers, &ca, &a)).await.err().unwrap();
    assert!(matches!(err, NetError::DuplicatePeerCertificate { first: 2, second: 3 }), "{err}");
    assert!(err.to_string().contains("each consenter needs its own certificate"));
}

#[tokio::test]
async fn frames_with_bad_channel_names_or_sizes_are_not_sent() {
    let ca = Ca::new("consortium");
    let (a, b) = (ca.issue("orderer1"), ca.issue("orderer2"));
    let mut cfg = config(1, any_port(), vec![endpoint(2, free_port(), &b)], &ca, &a);
    cfg.frame_bytes_max = 1024;
    let (links, _) = Links::start(cfg).await.unwrap();
    assert_eq!(links.send(2, "", Bytes::from_static(b"x")), SendOutcome::InvalidFrame);
    assert_eq!(links.send(2, &"c".repeat(250), Bytes::from_static(b"x")), SendOutcome::InvalidFrame);
    assert_eq!(links.send(2, "alpha", Bytes::from(vec![0u8; 1024])), SendOutcome::InvalidFrame);
    assert_eq!(links.send(2, "alpha", Bytes::from(vec![0u8; 1018])), SendOutcome::Queued);
    assert_eq!(stats_of(&links, 2).invalid, 3);
    links.shutdown().await;
    assert_eq!(links.send(2, "alpha", Bytes::from_static(b"x")), SendOutcome::Closed);
}

//! Mutual TLS with rustls over a localhost socket: issued identities connect;
//! foreign, expired and revoked clients are refused.

mod common;

use std::sync::Arc;

use ca_tools::{client_config, server_config, Authority, Ca, KeyType, Role, TlsIdentity};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Run one handshake + echo between `server` and `client`; Ok if the client
/// got the server's reply.
async fn exchange(
    server: &TlsIdentity,
    client_roots: Vec<String>,
    crls: Vec<String>,
    client: &TlsIdentity,
    server_roots: Vec<String>,
) -> Result<(), String> {
    let scfg = server_config(server, &client_roots, &crls).map_err(|e| e.to_string())?;
    let ccfg = client_config(client, &server_roots).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(scfg));
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let connector = TlsConnector::from(Arc::new(ccfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let client_result = async {
        let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        if &buf != b"pong" {
            return Err("wrong reply".to_string());
        }
        Ok(())
    }
    .await;
    let server_result = server_task.await.unwrap();
    match (client_result, server_result) {
        (Ok(()), Ok(())) => Ok(()),
        (c, s) => Err(format!("client: {c:?}; server: {s:?}")),
    }
}

struct Net {
    _dir: tempfile::TempDir,
    ca: Ca,
    server: TlsIdentity,
    dir: std::path::PathBuf,
}

fn net(key_type: KeyType) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let mut ca = new_ca(&dir.path().join("ca"), "Org1", "Org1MSP", key_type);
    let o = issue(&mut ca, Role::Orderer, "orderer0", &dir.path().join("o0"));
    let server = TlsIdentity::load(&o.tls_dir).unwrap();
    let d = dir.path().to_path_buf();
    Net { _dir: dir, ca, server, dir: d }
}

#[tokio::test]
async fn issued_client_and_orderer_complete_mutual_tls_for_both_key_types() {
    for kt in [KeyType::EcdsaP256, KeyType::Ed25519] {
        let mut n = net(kt);
        let c = issue(&mut n.ca, Role::Client, "client0", &n.dir.join("c0"));
        let client = TlsIdentity::load(&c.tls_dir).unwrap();
        let roots = vec![n.ca.tls_ca_pem().to_string()];
        exchange(&n.server, roots.clone(), vec![], &client, roots).await.unwrap();
    }
}

#[tokio::test]
async fn orderer_tls_certificate_also_works_as_a_client_certificate() {
    let mut n = net(KeyType::EcdsaP256);
    let o1 = issue(&mut n.ca, Role::Orderer, "orderer1", &n.dir.join("o1"));
    let client = TlsIdentity::load(&o1.tls_dir).unwrap();
    let roots = vec![n.ca.tls_ca_pem().to_string()];
    exchange(&n.server, roots.clone(), vec![], &client, roots).await.unwrap();
}

#[tokio::test]
async fn client_from_a_foreign_ca_is_refused() {
    let n = net(KeyType::EcdsaP256);
    let other = tempfile::tempdir().unwrap();
    let mut foreign_ca = new_ca(&other.path().join("ca"), "Evil", "EvilMSP", KeyType::EcdsaP256);
    let c = issue(&mut foreign_ca, Role::Client, "mallory", &other.path().join("c"));
    let client = TlsIdentity::load(&c.tls_dir).unwrap();
    let err = exchange(&n.server, vec![n.ca.tls_ca_pem().into()], vec![], &client, vec![n.ca.tls_ca_pem().into()])
        .await
        .unwrap_err();
    assert!(err.to_lowercase().contains("unknown") || err.contains("issuer") || err.contains("alert"), "{err}");
}

#[tokio::test]
async fn expired_client_is_refused() {
    let mut n = net(KeyType::Ed25519);
    let c = issue_with(&mut n.ca, Role::Client, "old", expired_window(), &n.dir.join("old"));
    let client = TlsIdentity::load(&c.tls_dir).unwrap();
    let roots = vec![n.ca.tls_ca_pem().to_string()];
    let err = exchange(&n.server, roots.clone(), vec![], &client, roots).await.unwrap_err();
    assert!(err.contains("server: Err(\"invalid peer certificate: certificate expired"), "{err}");
}

#[tokio::test]
async fn revoked_client_is_refused_and_others_still_connect() {
    let mut n = net(KeyType::EcdsaP256);
    let bad = issue(&mut n.ca, Role::Client, "bad", &n.dir.join("bad"));
    let good = issue(&mut n.ca, Role::Client, "good", &n.dir.join("good"));
    n.ca.revoke(bad.tls_cert_pem.as_bytes()).unwrap();
    let crl = n.ca.crl_pem(Authority::Tls, 7).unwrap();
    let roots = vec![n.ca.tls_ca_pem().to_string()];
    let bad_id = TlsIdentity::load(&bad.tls_dir).unwrap();
    let err = exchange(&n.server, roots.clone(), vec![crl.clone()], &bad_id, roots.clone()).await.unwrap_err();
    assert!(err.contains("server: Err(\"invalid peer certificate: Revoked"), "{err}");
    let good_id = TlsIdentity::load(&good.tls_dir).unwrap();
    exchange(&n.server, roots.clone(), vec![crl], &good_id, roots).await.unwrap();
}

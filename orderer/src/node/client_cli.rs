//! `orderer client`: the peer developer's client. Submits signed envelopes,
//! fetches blocks and follows a deliver stream — and verifies every block it
//! receives against the channel's genesis configuration (hash chain and a
//! quorum of consenter signatures), so it trusts no single orderer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ca_tools::{Msp, TlsIdentity};
use channels::block::{verify_block_certificate, verify_link};
use channels::proto::common::{Block as PbBlock, HeaderType};
use channels::ChannelConfig;
use prost::Message;

use super::client::HttpsClient;

/// Where and as whom to connect.
pub struct Target {
    /// `host:port` of an orderer's peer API.
    pub addr: String,
    pub channel: String,
    /// A TLS folder (client.crt, client.key, ca.crt) from ca-tools.
    pub tls_dir: PathBuf,
    /// PEM files of the TLS roots to trust (default: the folder's ca.crt).
    pub cacerts: Vec<PathBuf>,
    /// The channel's genesis block: blocks are verified against it.
    pub genesis: Option<PathBuf>,
}

/// What to do.
pub enum Action {
    Submit { signer: PathBuf, msp_id: Option<String>, data: PathBuf, wait: bool },
    Fetch { position: String, out: Option<PathBuf> },
    Deliver { start: String, stop: String },
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    channels::files::read_bounded(path, 256 * 1024 * 1024).map_err(|e| e.to_string())
}

async fn connect(t: &Target) -> Result<HttpsClient, String> {
    let tls = TlsIdentity::load(&t.tls_dir).map_err(|e| e.to_string())?;
    let mut roots = Vec::new();
    if t.cacerts.is_empty() {
        roots.push(tls.ca_pem.clone());
    }
    for p in &t.cacerts {
        let text = String::from_utf8(read(p)?).map_err(|_| format!("{} is not PEM text", p.display()))?;
        for block in pem::parse_many(text.as_bytes()).map_err(|e| format!("{}: {e}", p.display()))? {
            roots.push(pem::encode(&block));
        }
    }
    let config = Arc::new(ca_tools::client_config(&tls, &roots).map_err(|e| e.to_string())?);
    let host = t.addr.rsplit_once(':').map_or(t.addr.as_str(), |(h, _)| h);
    HttpsClient::connect(&t.addr, host, config).await.map_err(|e| e.to_string())
}

fn genesis_config(t: &Target) -> Result<Option<ChannelConfig>, String> {
    let Some(p) = &t.genesis else { return Ok(None) };
    let block = PbBlock::decode(read(p)?.as_slice()).map_err(|e| format!("{}: not a block: {e}", p.display()))?;
    channels::config_from_genesis(&block).map(Some).map_err(|e| format!("{}: {e}", p.display()))
}

/// Checks a block's certificate against the channel configuration.
fn verify(block: &PbBlock, config: Option<&ChannelConfig>) -> Result<&'static str, String> {
    let number = block.header.as_ref().map_or(0, |h| h.number);
    channels::block::verify_data_hash(block).map_err(|e| format!("block {number}: {e}"))?;
    match config {
        Some(_) if number == 0 => Ok("genesis"),
        Some(c) => verify_block_certificate(block, c)
            .map(|_| "certificate verified")
            .map_err(|e| format!("block {number}: {e}")),
        None => Ok("not verified (give --genesis)"),
    }
}

pub async fn run(t: Target, action: Action) -> Result<(), String> {
    let mut conn = connect(&t).await?;
    let base = format!("/v1/channels/{}", t.channel);
    match action {
        Action::Submit { signer, msp_id, data, wait } => {
            let msp = Msp::load(msp_id.as_deref(), &signer).map_err(|e| e.to_string())?;
            let env = channels::envelope::build_envelope_now(
                &t.channel,
                &msp,
                &read(&data)?,
                HeaderType::EndorserTransaction,
            )
            .map_err(|e| e.to_string())?;
            let path = if wait { format!("{base}/envelopes?wait=commit") } else { format!("{base}/envelopes") };
            let r = conn.request("POST", &path, &env.encode_to_vec()).await.map_err(|e| e.to_string())?;
            println!("{}", String::from_utf8_lossy(&r.body));
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("HTTP {}", r.status))
            }
        }
        Action::Fetch { position, out } => {
            let config = genesis_config(&t)?;
            let r = conn.request("GET", &format!("{base}/blocks/{position}"), &[]).await.map_err(|e| e.to_string())?;
            if r.status != 200 {
                return Err(format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)));
            }
            let block =
                PbBlock::decode(r.body.as_slice()).map_err(|e| format!("the orderer sent a malformed block: {e}"))?;
            let verdict = verify(&block, config.as_ref())?;
            let number = block.header.as_ref().map_or(0, |h| h.number);
            let count = block.data.as_ref().map_or(0, |d| d.data.len());
            println!("block {number}: {count} envelopes, {verdict}");
            if let Some(out) = out {
                std::fs::write(&out, &r.body).map_err(|e| format!("{}: {e}", out.display()))?;
            }
            Ok(())
        }
        Action::Deliver { start, stop } => {
            let config = genesis_config(&t)?;
            let path = format!("{base}/deliver?start={start}&stop={stop}");
            let mut buf: Vec<u8> = Vec::new();
            let mut previous: Option<PbBlock> = None;
            let mut failure: Option<String> = None;
            let status = conn
                .stream(&path, &mut |bytes: &[u8]| {
                    for frame in super::client::deliver_frames(&mut buf, bytes) {
                        let result = PbBlock::decode(frame.as_slice())
                            .map_err(|e| format!("malformed block in the stream: {e}"))
                            .and_then(|b| {
                                let verdict = verify(&b, config.as_ref())?;
                                if let Some(p) = &previous {
                                    verify_link(p, &b).map_err(|e| e.to_string())?;
                                }
                                Ok((b, verdict))
                            });
                        match result {
                            Ok((b, verdict)) => {
                                let number = b.header.as_ref().map_or(0, |h| h.number);
                                let count = b.data.as_ref().map_or(0, |d| d.data.len());
                                println!("block {number}: {count} envelopes, {verdict}");
                                previous = Some(b);
                            }
                            Err(e) => {
                                failure = Some(e);
                                return false;
                            }
                        }
                    }
                    true
                })
                .await
                .map_err(|e| e.to_string())?;
            if let Some(e) = failure {
                return Err(format!("verification failed, stream abandoned: {e}"));
            }
            if status == 200 {
                Ok(())
            } else {
                Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&buf)))
            }
        }
    }
}

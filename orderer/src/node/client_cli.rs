//! `orderer client`: the peer developer's client. Submits signed envelopes,
//! fetches blocks and follows a deliver stream — and verifies every block it
//! receives against the channel's genesis configuration (hash chain and a
//! quorum of consenter signatures), so it trusts no single orderer.
//!
//! The genesis block is given with `--genesis` (obtained out of band). Without
//! it the client fetches block 0 from the orderer it talks to and trusts that
//! on first use, saying so on stderr: blocks are still verified, but against a
//! configuration that single orderer chose. A block that fails verification
//! ends the command with an error (non-zero exit).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ca_tools::{Msp, TlsIdentity};
use channels::block::verify_link;
use channels::proto::common::{Block as PbBlock, HeaderType};
use prost::Message;

use super::client::HttpsClient;
use super::follow::ConfigFollower;

/// Where and as whom to connect.
pub struct Target {
    /// `host:port` of an orderer's peer API.
    pub addr: String,
    pub channel: String,
    /// A TLS folder (client.crt, client.key, ca.crt) from ca-tools.
    pub tls_dir: PathBuf,
    /// PEM files of the TLS roots to trust (default: the folder's ca.crt).
    pub cacerts: Vec<PathBuf>,
    /// The channel's genesis block: blocks are verified against it. Without
    /// it, block 0 is fetched from the orderer and trusted on first use.
    pub genesis: Option<PathBuf>,
}

/// What to do.
pub enum Action {
    Submit { signer: PathBuf, msp_id: Option<String>, data: PathBuf, wait: bool },
    SubmitEnvelope { file: PathBuf, wait: bool },
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

/// What received blocks are verified against: the configuration in a
/// genesis block, and that block's header hash.
struct Trust {
    /// The configuration in force along the blocks verified so far.
    follower: ConfigFollower,
    genesis_hash: [u8; 32],
    /// The genesis block came from the orderer itself (no `--genesis`).
    on_first_use: bool,
}

impl Trust {
    /// Trusts `genesis` (block 0 of `channel`); `on_first_use` when it was
    /// not obtained out of band.
    fn new(genesis: &PbBlock, channel: &str, on_first_use: bool) -> Result<Self, String> {
        let config = channels::config_from_genesis(genesis).map_err(|e| e.to_string())?;
        if config.channel_id != channel {
            return Err(format!("it is the genesis block of channel {:?}, not {channel:?}", config.channel_id));
        }
        let genesis_hash = genesis.header_checked().map_err(|e| e.to_string())?.hash();
        Ok(Self { follower: ConfigFollower::new(config)?, genesis_hash, on_first_use })
    }

    /// Checks one received block: its data hash, and its certificate (a
    /// quorum of valid signatures of the consenters of the configuration in
    /// force at that block) or, for block 0, that it is the trusted genesis
    /// block. Blocks after the genesis block come in order, from block 1
    /// (the configuration follows the reconfigurations in them); links
    /// between consecutive blocks are checked by the caller.
    fn verify(&mut self, block: &PbBlock) -> Result<&'static str, String> {
        let number = block.number();
        channels::block::verify_data_hash(block).map_err(|e| format!("block {number}: {e}"))?;
        if number > 0 {
            let before = self.follower.applied.len();
            self.follower.verify_and_observe(block).map_err(|e| format!("block {number}: {e}"))?;
            return Ok(if self.follower.applied.len() > before {
                "certificate verified (by the consenters of a new configuration)"
            } else if self.follower.scheduled().is_some_and(|s| s.block == number) {
                "certificate verified; holds a reconfiguration"
            } else {
                "certificate verified"
            });
        }
        let hash = block.header_checked().map_err(|e| format!("block 0: {e}"))?.hash();
        match (hash == self.genesis_hash, self.on_first_use) {
            (true, false) => Ok("genesis"),
            (true, true) => Ok("genesis (trusted on first use)"),
            (false, _) => Err(format!(
                "block 0 has header hash {}, not the trusted genesis block's {}",
                hex::encode(hash),
                hex::encode(self.genesis_hash)
            )),
        }
    }
}

/// The trust anchor: the `--genesis` block, or else block 0 as the orderer
/// serves it (trust on first use, with a warning on stderr).
async fn trust(t: &Target, conn: &mut HttpsClient, base: &str) -> Result<Trust, String> {
    if let Some(p) = &t.genesis {
        let block = PbBlock::decode(read(p)?.as_slice()).map_err(|e| format!("{}: not a block: {e}", p.display()))?;
        return Trust::new(&block, &t.channel, false).map_err(|e| format!("--genesis {}: {e}", p.display()));
    }
    let r = conn.request("GET", &format!("{base}/blocks/0"), &[]).await.map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!(
            "cannot fetch block 0 to verify blocks against (HTTP {}: {}); give --genesis",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    let block = PbBlock::decode(r.body.as_slice())
        .map_err(|e| format!("the orderer sent a malformed block 0: {e}; give --genesis"))?;
    let trust = Trust::new(&block, &t.channel, true)
        .map_err(|e| format!("block 0 served by {} is not a usable genesis block: {e}", t.addr))?;
    eprintln!(
        "warning: no --genesis given: blocks are verified against block 0 as served by {} (header hash {}), \
         trusted on first use — if that orderer lies about block 0, nothing here detects it. Compare the hash \
         with one obtained out of band, or pass --genesis FILE.",
        t.addr,
        hex::encode(trust.genesis_hash)
    );
    Ok(trust)
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
            submit(&mut conn, &base, &env.encode_to_vec(), wait).await
        }
        Action::SubmitEnvelope { file, wait } => submit(&mut conn, &base, &read(&file)?, wait).await,
        Action::Fetch { position, out } => {
            let mut trust = trust(&t, &mut conn, &base).await?;
            let r = conn.request("GET", &format!("{base}/blocks/{position}"), &[]).await.map_err(|e| e.to_string())?;
            if r.status != 200 {
                return Err(format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)));
            }
            let block =
                PbBlock::decode(r.body.as_slice()).map_err(|e| format!("the orderer sent a malformed block: {e}"))?;
            let number = block.number();
            if position.parse::<u64>().is_ok_and(|asked| asked != number) {
                return Err(format!(
                    "verification failed: asked for block {position}, the orderer sent block {number}"
                ));
            }
            // The configuration in force at the block: follow the ledger to it.
            let mut previous = None;
            if number > 1 {
                let last = (number - 1).to_string();
                verify_stream(&mut conn, &base, &mut trust, "1", &last, false, &mut previous)
                    .await
                    .map_err(|e| format!("verification failed on the way to block {number}: {e}"))?;
            }
            let verdict = trust.verify(&block).map_err(|e| format!("verification failed: {e}"))?;
            if let Some(p) = &previous {
                verify_link(p, &block).map_err(|e| format!("verification failed: {e}"))?;
            }
            let count = block.data.as_ref().map_or(0, |d| d.data.len());
            println!("block {number}: {count} envelopes, {verdict}");
            if let Some(out) = out {
                std::fs::write(&out, &r.body).map_err(|e| format!("{}: {e}", out.display()))?;
            }
            Ok(())
        }
        Action::Deliver { start, stop } => {
            let mut trust = trust(&t, &mut conn, &base).await?;
            let mut previous = None;
            // Blocks before the first one printed are verified too: the
            // configuration in force follows the ledger from block 1.
            if let Some(first) = start.parse::<u64>().ok().filter(|s| *s > 1) {
                let last = (first - 1).to_string();
                verify_stream(&mut conn, &base, &mut trust, "1", &last, false, &mut previous)
                    .await
                    .map_err(|e| format!("verification failed before block {first}: {e}"))?;
            }
            let from = start.parse::<u64>().map_or(start.clone(), |s| s.to_string());
            verify_stream(&mut conn, &base, &mut trust, &from, &stop, true, &mut previous).await
        }
    }
}

/// Posts an encoded envelope; prints the orderer's answer.
async fn submit(conn: &mut HttpsClient, base: &str, envelope: &[u8], wait: bool) -> Result<(), String> {
    let path = if wait { format!("{base}/envelopes?wait=commit") } else { format!("{base}/envelopes") };
    let r = conn.request("POST", &path, envelope).await.map_err(|e| e.to_string())?;
    println!("{}", String::from_utf8_lossy(&r.body));
    if r.status == 200 || (!wait && r.status == 202) {
        Ok(())
    } else {
        Err(format!("HTTP {}", r.status))
    }
}

/// Streams blocks `start..=stop` and verifies each one (certificate under
/// the configuration in force, link to the previous one); prints them when
/// `print`.
async fn verify_stream(
    conn: &mut HttpsClient,
    base: &str,
    trust: &mut Trust,
    start: &str,
    stop: &str,
    print: bool,
    previous: &mut Option<PbBlock>,
) -> Result<(), String> {
    let path = format!("{base}/deliver?start={start}&stop={stop}");
    let mut buf: Vec<u8> = Vec::new();
    let mut failure: Option<String> = None;
    let status = conn
        .stream(&path, &mut |bytes: &[u8]| {
            for frame in super::client::deliver_frames(&mut buf, bytes) {
                let result = PbBlock::decode(frame.as_slice())
                    .map_err(|e| format!("malformed block in the stream: {e}"))
                    .and_then(|b| {
                        let verdict = trust.verify(&b)?;
                        if let Some(p) = previous.as_ref() {
                            verify_link(p, &b).map_err(|e| e.to_string())?;
                        }
                        Ok((b, verdict))
                    });
                match result {
                    Ok((b, verdict)) => {
                        if print {
                            let number = b.header.as_ref().map_or(0, |h| h.number);
                            let count = b.data.as_ref().map_or(0, |d| d.data.len());
                            println!("block {number}: {count} envelopes, {verdict}");
                        }
                        *previous = Some(b);
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

#[cfg(test)]
mod tests {
    use super::*;
    use ca_tools::{generate_network, NetworkConfig};
    use channels::block::{build_block, certify_block};
    use channels::genesis::genesis_block;
    use channels::ChannelConfig;

    const CHANNEL: &str = "ch";

    /// A consortium of four consenters, the channel's genesis block, and
    /// block 1 certified by consenters 1–3 (a quorum of 4 is 3).
    struct Fixture {
        _dir: tempfile::TempDir,
        config: ChannelConfig,
        genesis: PbBlock,
        block1: PbBlock,
        keys: Vec<ca_tools::SigningKey>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "orgs:\n  - name: Org1\n    msp_id: Org1MSP\n    orderers: [{ name: o1 }, { name: o2 }, { name: o3 }, { name: o4 }]\n";
        let summary = generate_network(&NetworkConfig::from_yaml(yaml).unwrap(), dir.path(), false).unwrap();
        let config =
            channels::config_from_network(CHANNEL, &summary, |i, o| (o.name.clone(), 7050 + i as u16)).unwrap();
        let keys: Vec<_> = (1..=4)
            .map(|i| Msp::load(None, &dir.path().join(format!("Org1/orderers/o{i}/msp"))).unwrap().key)
            .collect();
        let genesis = genesis_block(&config);
        let mut block1 = build_block(1, &genesis.header_checked().unwrap().hash(), vec![b"tx".to_vec()]);
        certify_block(&mut block1, CHANNEL, 1, &[(1, &keys[0]), (2, &keys[1]), (3, &keys[2])]).unwrap();
        Fixture { _dir: dir, config, genesis, block1, keys }
    }

    #[test]
    fn blocks_verify_against_the_trusted_genesis_and_tampered_ones_fail() {
        let f = fixture();
        let mut trust = Trust::new(&f.genesis, CHANNEL, false).unwrap();
        assert_eq!(trust.verify(&f.genesis), Ok("genesis"));
        assert_eq!(trust.verify(&f.block1), Ok("certificate verified"));

        let mut tampered = f.block1.clone();
        tampered.data.as_mut().unwrap().data[0] = b"tX".to_vec();
        let e = trust.verify(&tampered).unwrap_err();
        assert!(e.contains("data hash"), "{e}");

        let mut below_quorum = build_block(1, &f.genesis.header_checked().unwrap().hash(), vec![b"tx".to_vec()]);
        certify_block(&mut below_quorum, CHANNEL, 1, &[(1, &f.keys[0]), (2, &f.keys[1])]).unwrap();
        let e = trust.verify(&below_quorum).unwrap_err();
        assert!(e.contains("quorum"), "{e}");

        let mut uncertified = f.block1.clone();
        uncertified.metadata.as_mut().unwrap().metadata[0].clear();
        let e = trust.verify(&uncertified).unwrap_err();
        assert!(e.contains("no block certificate"), "{e}");

        // An orderer serving another block 0 than the trusted one.
        let mut other = f.config.clone();
        other.admin_policy = "all".into();
        let e = trust.verify(&genesis_block(&other)).unwrap_err();
        assert!(e.contains("not the trusted genesis block"), "{e}");
    }

    #[test]
    fn trust_on_first_use_is_said_and_a_wrong_anchor_is_refused() {
        let f = fixture();
        let mut tofu = Trust::new(&f.genesis, CHANNEL, true).unwrap();
        assert_eq!(tofu.verify(&f.genesis), Ok("genesis (trusted on first use)"));
        assert_eq!(tofu.verify(&f.block1), Ok("certificate verified"));
        let e = Trust::new(&f.genesis, "otherchannel", true).err().unwrap();
        assert!(e.contains("not \"otherchannel\""), "{e}");
        let e = Trust::new(&f.block1, CHANNEL, true).err().unwrap();
        assert!(e.contains("genesis"), "block 1 is no trust anchor: {e}");
    }
}

//! `orderer start`: loads identity and channels, opens the store, starts the
//! cluster links, one task per channel, the peer API and the operations
//! endpoint.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ca_tools::{IdentityVerifier, Msp, TlsIdentity};
use channels::envelope::ChannelTrust;
use channels::proto::common::Block as PbBlock;
use channels::ChannelConfig;
use prost::Message;
use thiserror::Error;

use super::api::{self, ApiState, ChannelEntry, TlsListener};
use super::channel::{self, ChannelParams, Transport};
use super::epoch::{EpochContext, EpochError, EpochShell, KeyFiles};
use super::identity;
use super::ops::{self, LinkStats, OpsState};
use crate::config::NodeConfig;
use crate::consensus::ReplicaId;
use crate::net::{ConsenterId, Inbound, LinkConfig, Links, PeerEndpoint};
use crate::storage::Store;

/// The first epoch of every channel (key rotation, later, moves it).
pub const FIRST_EPOCH: u64 = 1;
/// Largest genesis block read from the bootstrap folder.
const GENESIS_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Why the node could not start.
#[derive(Debug, Error)]
pub enum NodeError {
    #[error("identity: {0}")]
    Pki(#[from] ca_tools::PkiError),
    #[error("{0}")]
    Identity(#[from] identity::IdentityError),
    #[error("{0}")]
    Store(#[from] crate::storage::StoreError),
    #[error("channel {channel}: {detail}")]
    Channel { channel: String, detail: String },
    #[error("bootstrap folder {path}: {detail}")]
    Bootstrap { path: String, detail: String },
    #[error("cluster links: {0}")]
    Net(String),
    #[error("cannot listen on {addr} for the {what}: {detail}")]
    Listen { what: &'static str, addr: String, detail: String },
    #[error("channel {0} is already joined")]
    AlreadyJoined(String),
    #[error("channel {0} is not joined on this node")]
    NotJoined(String),
    #[error("channel {channel}: {detail}")]
    Retired { channel: String, detail: String },
}

/// The channels this node runs, from the genesis blocks in `dir`.
pub fn read_bootstrap(dir: &Path) -> Result<Vec<(PbBlock, ChannelConfig)>, NodeError> {
    let err = |detail: String| NodeError::Bootstrap { path: dir.display().to_string(), detail };
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(err(e.to_string())),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    for path in paths {
        let bytes = channels::files::read_bounded(&path, GENESIS_BYTES_MAX).map_err(|e| err(e.to_string()))?;
        let block =
            PbBlock::decode(bytes.as_slice()).map_err(|e| err(format!("{}: not a block: {e}", path.display())))?;
        let config = channels::config_from_genesis(&block).map_err(|e| err(format!("{}: {e}", path.display())))?;
        out.push((block, config));
    }
    Ok(out)
}

/// Sends consensus frames over the cluster links.
struct LinkTransport(Links);

impl Transport for LinkTransport {
    fn send(&self, to: ReplicaId, channel: &str, frame: Vec<u8>) {
        self.0.send(to, channel, frame.into());
    }
    fn broadcast(&self, channel: &str, frame: Vec<u8>) {
        self.0.broadcast(channel, frame.into());
    }
}

struct LinkFigures(Links);

impl LinkStats for LinkFigures {
    fn peers(&self) -> Vec<(u32, bool, usize, u64)> {
        self.0.stats().into_iter().map(|p| (p.id, p.connected, p.queue_len, p.dropped)).collect()
    }

    fn peer_figures(&self) -> Vec<ops::PeerFigures> {
        self.0
            .stats()
            .into_iter()
            .map(|p| ops::PeerFigures {
                id: p.id,
                connected: p.connected,
                inbound_connected: Some(p.inbound_connected),
                queue_len: p.queue_len,
                dropped: p.dropped,
                sent: Some(p.sent),
                received: Some(p.received),
                connects: Some(p.connects),
                connect_failures: Some(p.connect_failures),
                refused_certificates: Some(p.refused_certificates),
                rtt_us: p.last_rtt_us,
            })
            .collect()
    }
}

fn consenter_endpoints(channels: &[(PbBlock, ChannelConfig)], me: u32) -> Result<Vec<PeerEndpoint>, NodeError> {
    let mut peers: BTreeMap<u32, PeerEndpoint> = BTreeMap::new();
    for (_, cfg) in channels {
        for c in &cfg.consenters {
            if c.id == me || peers.contains_key(&c.id) {
                continue;
            }
            let der = ca_tools::pemutil::cert_der(c.tls_cert.as_bytes()).map_err(|e| NodeError::Channel {
                channel: cfg.channel_id.clone(),
                detail: format!("consenter {} TLS certificate: {e}", c.id),
            })?;
            peers.insert(
                c.id,
                PeerEndpoint {
                    id: c.id,
                    addr: format!("{}:{}", c.host, c.port),
                    server_name: c.host.clone(),
                    tls_cert_der: der,
                },
            );
        }
    }
    Ok(peers.into_values().collect())
}

/// What a running node holds; the admin API joins and leaves channels
/// through it.
pub struct Node {
    cfg: NodeConfig,
    store: Arc<Store>,
    transport: Arc<dyn Transport>,
    mac_secret: x25519_dalek::StaticSecret,
    /// Joined channels, shared with the APIs and the frame router.
    pub entries: Arc<RwLock<HashMap<String, Arc<ChannelEntry>>>>,
    /// Channels being onboarded: where their frames go.
    onboarding: Arc<RwLock<HashMap<String, FrameSender>>>,
    /// The joined channels' current configurations, and what follows them.
    membership: Membership,
}

/// The genesis blocks of the joined channels and their current
/// configurations; the cluster links' peer list and the TLS trust of the
/// listeners follow them.
#[derive(Clone)]
struct Membership {
    joined: Arc<std::sync::Mutex<BTreeMap<String, (PbBlock, ChannelConfig)>>>,
    links: Links,
    /// Client certificates the cluster and API listeners accept.
    tls: Arc<ca_tools::ReloadableClientVerifier>,
    /// Server certificates the cluster dialer accepts (each is also pinned).
    servers: Arc<ca_tools::ReloadableServerVerifier>,
    /// This node's own organisation's TLS roots (trusted always).
    own_roots: Arc<Vec<String>>,
    me: u32,
}

impl Membership {
    /// Records `config` as the current configuration of channel `name`:
    /// the links get the consenters of every joined channel, the listeners
    /// trust the TLS roots (and CRLs) of every joined channel's orgs.
    fn track(&self, name: &str, genesis: PbBlock, config: ChannelConfig) -> Result<(), NodeError> {
        let Ok(mut joined) = self.joined.lock() else { return Ok(()) };
        joined.insert(name.to_string(), (genesis, config));
        self.follow(&joined)
    }

    fn forget(&self, name: &str) -> Result<(), NodeError> {
        let Ok(mut joined) = self.joined.lock() else { return Ok(()) };
        joined.remove(name);
        self.follow(&joined)
    }

    fn follow(&self, joined: &BTreeMap<String, (PbBlock, ChannelConfig)>) -> Result<(), NodeError> {
        let all: Vec<(PbBlock, ChannelConfig)> = joined.values().cloned().collect();
        self.links.replace_peers(consenter_endpoints(&all, self.me)?).map_err(|e| NodeError::Net(e.to_string()))?;
        let configs: Vec<&ChannelConfig> = all.iter().map(|(_, c)| c).collect();
        let (roots, crls) = tls_trust(&self.own_roots, &configs);
        self.tls.reload(&roots, &crls).map_err(NodeError::Pki)?;
        self.servers.reload(&roots).map_err(NodeError::Pki)
    }
}

/// TLS roots and CRLs: this node's own organisation's, and those of every
/// organisation of `configs`.
fn tls_trust(own_roots: &[String], configs: &[&ChannelConfig]) -> (Vec<String>, Vec<String>) {
    let mut roots = own_roots.to_vec();
    let mut crls = Vec::new();
    for c in configs {
        for o in &c.orgs {
            roots.extend(o.tls_root_certs.iter().cloned());
            crls.extend(o.crls.iter().cloned());
        }
    }
    roots.sort();
    roots.dedup();
    crls.sort();
    crls.dedup();
    (roots, crls)
}

/// Where a joined channel's genesis block is kept.
fn channels_dir(cfg: &NodeConfig) -> PathBuf {
    cfg.node.data_dir.join("channels")
}

impl Node {
    fn channel_err(channel: &str, e: impl std::fmt::Display) -> NodeError {
        NodeError::Channel { channel: channel.to_owned(), detail: e.to_string() }
    }

    /// Joins the channel of `genesis`: starts its task and links, and keeps
    /// the block so the node rejoins after a restart.
    pub fn join(&self, genesis: PbBlock) -> Result<Arc<ChannelEntry>, NodeError> {
        let me = self.cfg.node.id;
        let config = genesis_config(&genesis)?;
        let name = config.channel_id.clone();
        if config.consenter(me).is_none() && super::epoch::latest_record(&self.store, &name).ok().flatten().is_none() {
            return Err(NodeError::Channel {
                channel: name,
                detail: format!("consenter {me} is not listed in its configuration (join it to onboard)"),
            });
        }
        if self.entries.read().map(|m| m.contains_key(&name)).unwrap_or(false) {
            return Err(NodeError::AlreadyJoined(name));
        }
        let genesis_hash = genesis.header.as_ref().map(|h| h.hash()).unwrap_or_default();
        let cfg = &self.cfg;
        let identities = node_identities(cfg)?;
        let verified = Arc::new(identity::VerifiedCache::default());
        // The current epoch (the latest stored epoch record, else the first
        // one) and the replica parts of it: keys, validator, parameters.
        self.store.create_channel(&name)?;
        let (shell, parts) = EpochShell::start(
            EpochContext {
                config: config.clone(),
                me,
                identities,
                first_secret: self.mac_secret.clone(),
                keys: KeyFiles::new(&cfg.node.data_dir, &name),
                tick_ms: cfg.consensus.tick_ms,
                pool_max: cfg.consensus.pool_max,
                sign_all_messages: cfg.consensus.sign_all_messages,
                cut_when_idle: cfg.consensus.cut_when_idle,
                verified: verified.clone(),
            },
            &self.store,
            genesis_hash,
        )
        .map_err(|e| match e {
            EpochError::Retired { .. } => NodeError::Retired { channel: name.clone(), detail: e.to_string() },
            e => Self::channel_err(&name, e),
        })?;
        // The configuration of the current epoch (reconfigurations change it).
        let config = (**shell.config()).clone();
        let signer_key = shell.identity().map_err(|e| Self::channel_err(&name, e))?.key.clone();
        let audit_signer = identity::NodeCrypto::new(signer_key, &config, me)?;
        let epoch = shell.epoch();
        let trust = ChannelTrust::new(&config).map_err(|e| Self::channel_err(&name, e))?;
        let tls_clients = IdentityVerifier::tls(config.org_trust().map_err(|e| Self::channel_err(&name, e))?);
        self.keep_genesis(&name, &genesis)?;
        self.track_config(&name, genesis.clone(), config.clone())?;
        let (handle, _join) = channel::spawn_with_epochs(
            ChannelParams {
                config: parts.config,
                crypto: Box::new(parts.crypto),
                macs: parts.macs,
                validator: Box::new(parts.validator),
                store: self.store.clone(),
                transport: self.transport.clone(),
                tick: Duration::from_millis(cfg.consensus.tick_ms),
                queue_max: cfg.consensus.queue_max,
                audit_signer: Some(Box::new(audit_signer)),
            },
            Some(shell),
        )
        .map_err(|e| Self::channel_err(&name, e))?;
        let body_bytes_max = config.batch.as_ref().map_or(cfg.api.body_bytes_max, |b| b.absolute_max_bytes as usize);
        let entry = Arc::new(ChannelEntry {
            handle,
            verified,
            tls_clients,
            trust,
            genesis,
            epoch,
            body_bytes_max: body_bytes_max.min(cfg.api.body_bytes_max),
            config,
        });
        tracing::info!(channel = %name, consenters = entry.config.consenters.len(), sequence = entry.config.sequence, "joined channel");
        if let Ok(mut map) = self.entries.write() {
            map.insert(name.clone(), entry.clone());
        }
        self.follow_reconfigurations(&name, &entry);
        Ok(entry)
    }

    /// Joins the channel of `genesis`, or, if this node is not (yet) one of
    /// its consenters, onboards it: follows the ledger from the genesis
    /// block until a reconfiguration makes it a consenter, then joins.
    pub fn join_or_onboard(self: &Arc<Self>, genesis: PbBlock) -> Result<Joined, NodeError> {
        let me = self.cfg.node.id;
        let config = genesis_config(&genesis)?;
        let name = config.channel_id.clone();
        let known = self.store.channels()?.contains(&name);
        let has_record = known && super::epoch::latest_record(&self.store, &name).ok().flatten().is_some();
        if config.consenter(me).is_some() || has_record {
            return self.join(genesis).map(Joined::Active);
        }
        let busy = self.onboarding.read().map(|m| m.contains_key(&name)).unwrap_or(false)
            || self.entries.read().map(|m| m.contains_key(&name)).unwrap_or(false);
        if busy {
            return Err(NodeError::AlreadyJoined(name));
        }
        self.keep_genesis(&name, &genesis)?;
        self.store.create_channel(&name)?;
        self.track_config(&name, genesis.clone(), config.clone())?;
        let (tx, rx) = tokio::sync::mpsc::channel(ONBOARDING_QUEUE_MAX);
        if let Ok(mut m) = self.onboarding.write() {
            m.insert(name.clone(), tx);
        }
        let node = self.clone();
        let channel = name.clone();
        tokio::spawn(async move {
            let result = node.onboard(genesis.clone(), config, rx).await;
            if let Ok(mut m) = node.onboarding.write() {
                m.remove(&channel);
            }
            match result.and_then(|()| node.join(genesis)) {
                Ok(_) => tracing::info!(channel = %channel, "onboarding done: this node is a consenter now"),
                Err(e) => tracing::error!(channel = %channel, error = %e, "onboarding stopped"),
            }
        });
        tracing::info!(channel = %name, "onboarding: following the ledger from the genesis block until a reconfiguration adds this consenter");
        Ok(Joined::Onboarding(name))
    }

    /// Fetches and replays the channel's ledger (see [`super::onboard`])
    /// until this node's first epoch as a consenter; stores what it replays.
    async fn onboard(
        &self,
        genesis: PbBlock,
        config: ChannelConfig,
        mut frames: tokio::sync::mpsc::Receiver<(ReplicaId, Vec<u8>)>,
    ) -> Result<(), NodeError> {
        use super::channel::{Wire, SERVE_BLOCKS_MAX};
        use super::onboard::{replay_stored, LedgerReplay, Replayed};
        let me = self.cfg.node.id;
        let name = config.channel_id.clone();
        let err = |e: String| NodeError::Channel { channel: name.clone(), detail: format!("onboarding: {e}") };
        let genesis_hash = genesis.header.as_ref().map(|h| h.hash()).unwrap_or_default();
        let mut replay = LedgerReplay::new(me, &config, genesis_hash).map_err(err)?;
        // Resume after a restart: replay what is stored.
        let height = self.store.height(&name)?;
        let mut stored = Vec::new();
        for n in 1..=height {
            if let Some(block) = self.store.block(&name, n)? {
                stored.push((block, self.store.certificate(&name, n)?));
            }
        }
        replay_stored(&mut replay, stored.into_iter()).map_err(err)?;
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(ONBOARDING_FETCH_MS));
        let mut turn = 0usize;
        let mut sequence = config.sequence;
        while replay.member().is_none() {
            tokio::select! {
                _ = ticker.tick() => {
                    let peers: Vec<u32> = replay.config().consenters.iter().map(|c| c.id).filter(|id| *id != me).collect();
                    if let Some(to) = peers.get(turn % peers.len().max(1)) {
                        let from = replay.height() + 1;
                        let frame = Wire::FetchRequest { from, to: from + SERVE_BLOCKS_MAX - 1 }.encode();
                        self.transport.send(*to, &name, frame);
                    }
                    turn += 1;
                }
                frame = frames.recv() => {
                    let Some((from, bytes)) = frame else { return Err(err("stopped".into())) };
                    let Ok(Wire::FetchResponse(blocks)) = Wire::decode(&bytes, &crate::consensus::Limits::default()) else { continue };
                    let mut out = Replayed::default();
                    if let Err(e) = replay.offer(blocks, &mut out) {
                        tracing::warn!(channel = %name, from, error = %e, "onboarding: blocks refused");
                    }
                    self.store.commit(&name, &out.batch)?;
                    for record in &out.epochs {
                        self.store.begin_epoch(&name, record.epoch, &record.encode())?;
                    }
                    if replay.config().sequence != sequence {
                        sequence = replay.config().sequence;
                        self.track_config(&name, genesis.clone(), replay.config().clone())?;
                    }
                    tracing::info!(channel = %name, height = replay.height(), epoch = replay.epoch(), "onboarding: blocks replayed");
                }
            }
        }
        Ok(())
    }

    /// Keeps the genesis block of a joined channel in `data_dir/channels/`,
    /// so the node rejoins (or resumes onboarding) after a restart.
    fn keep_genesis(&self, name: &str, genesis: &PbBlock) -> Result<(), NodeError> {
        let dir = channels_dir(&self.cfg);
        std::fs::create_dir_all(&dir).map_err(|e| Self::channel_err(name, e))?;
        std::fs::write(dir.join(format!("{name}.block")), genesis.encode_to_vec())
            .map_err(|e| Self::channel_err(name, e))?;
        let _ = std::fs::remove_file(dir.join(format!("{name}.removed")));
        Ok(())
    }

    /// Records `config` as the current configuration of channel `name` and
    /// gives the links the consenters of every joined channel.
    fn track_config(&self, name: &str, genesis: PbBlock, config: ChannelConfig) -> Result<(), NodeError> {
        self.membership.track(name, genesis, config)
    }

    /// Watches the channel's status for a new configuration (taking effect
    /// with an epoch): the links get the new consenter set (added ones
    /// dialled, removed ones dropped, rotated TLS certificates pinned) and
    /// the API the new organisations.
    fn follow_reconfigurations(&self, name: &str, entry: &Arc<ChannelEntry>) {
        let mut status = entry.handle.status();
        let mut sequence = entry.config.sequence;
        let (membership, entries) = (self.membership.clone(), self.entries.clone());
        let name = name.to_string();
        tokio::spawn(async move {
            while status.changed().await.is_ok() {
                let Some(config) = status.borrow().config.clone() else { continue };
                if config.sequence == sequence {
                    continue;
                }
                sequence = config.sequence;
                let Some(old) = entries.read().ok().and_then(|m| m.get(&name).cloned()) else { return };
                let updated = ChannelTrust::new(&config)
                    .and_then(|trust| Ok((trust, IdentityVerifier::tls(config.org_trust()?))));
                let (trust, tls_clients) = match updated {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!(channel = %name, error = %e, "the new configuration's trust anchors are unusable; the API keeps the previous ones");
                        continue;
                    }
                };
                if let Err(e) = membership.track(&name, old.genesis.clone(), (*config).clone()) {
                    tracing::error!(channel = %name, error = %e, "cluster links not updated to the new configuration");
                }
                let entry = ChannelEntry {
                    handle: old.handle.clone(),
                    verified: old.verified.clone(),
                    config: (*config).clone(),
                    trust,
                    tls_clients,
                    genesis: old.genesis.clone(),
                    epoch: old.epoch,
                    body_bytes_max: old.body_bytes_max,
                };
                if let Ok(mut map) = entries.write() {
                    map.insert(name.clone(), Arc::new(entry));
                }
                tracing::info!(channel = %name, sequence, consenters = config.consenters.len(), "channel configuration updated: links and API follow it");
            }
        });
    }

    /// Leaves a channel: stops its task, deletes its ledger from this node
    /// and remembers not to rejoin it from the bootstrap folder.
    pub async fn leave(&self, name: &str) -> Result<(), NodeError> {
        let entry = self
            .entries
            .write()
            .ok()
            .and_then(|mut m| m.remove(name))
            .ok_or_else(|| NodeError::NotJoined(name.into()))?;
        entry.handle.stop().await;
        if let Err(e) = self.membership.forget(name) {
            tracing::warn!(channel = %name, error = %e, "cluster links not updated after leaving");
        }
        self.store.remove_channel(name)?;
        // Its private MAC keys go with it.
        if let Err(e) = KeyFiles::new(&self.cfg.node.data_dir, name).erase_except(&[]) {
            tracing::warn!(channel = %name, error = %e, "could not erase the channel's epoch keys");
        }
        let dir = channels_dir(&self.cfg);
        let _ = std::fs::remove_file(dir.join(format!("{name}.block")));
        std::fs::write(dir.join(format!("{name}.removed")), b"removed with the admin API\n")
            .map_err(|e| Self::channel_err(name, e))?;
        tracing::info!(channel = %name, "left channel");
        Ok(())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }
}

/// Where an onboarding channel's frames go.
type FrameSender = tokio::sync::mpsc::Sender<(ReplicaId, Vec<u8>)>;

/// Frames queued for an onboarding channel, at most.
const ONBOARDING_QUEUE_MAX: usize = 64;
/// How often an onboarding node asks a consenter for the next blocks.
const ONBOARDING_FETCH_MS: u64 = 300;

/// How a join went.
pub enum Joined {
    /// The node runs the channel as one of its consenters.
    Active(Arc<ChannelEntry>),
    /// The node is not a consenter yet: it follows the ledger until a
    /// reconfiguration adds it, then runs the channel.
    Onboarding(String),
}

/// The configuration in a genesis block given to join a channel.
fn genesis_config(genesis: &PbBlock) -> Result<ChannelConfig, NodeError> {
    channels::config_from_genesis(genesis)
        .map_err(|e| NodeError::Channel { channel: "?".into(), detail: format!("not a valid genesis block: {e}") })
}

/// This node's identities: `node.msp_dir`, then `node.next_msp_dir` if set.
fn node_identities(cfg: &NodeConfig) -> Result<Vec<Msp>, NodeError> {
    let mut out = vec![Msp::load(Some(&cfg.node.msp_id), &cfg.node.msp_dir)?];
    // Absent until an operator provides the next identity.
    if !cfg.node.next_msp_dir.as_os_str().is_empty() && cfg.node.next_msp_dir.exists() {
        out.push(Msp::load(Some(&cfg.node.msp_id), &cfg.node.next_msp_dir)?);
    }
    Ok(out)
}

/// The genesis blocks to join at start: those kept from earlier joins, then
/// the bootstrap folder's (unless the channel was removed with the admin API).
fn startup_channels(cfg: &NodeConfig) -> Result<Vec<(PbBlock, ChannelConfig)>, NodeError> {
    let kept = channels_dir(cfg);
    let mut out: BTreeMap<String, (PbBlock, ChannelConfig)> = BTreeMap::new();
    // Channels joined with the admin API (onboarding ones too), then the
    // bootstrap folder's that list this node.
    let joined = read_bootstrap(&kept)?.into_iter().map(|bc| (bc, true));
    let bootstrap = read_bootstrap(&cfg.node.bootstrap_dir)?.into_iter().map(|bc| (bc, false));
    for ((b, c), kept_here) in joined.chain(bootstrap) {
        let removed = kept.join(format!("{}.removed", c.channel_id)).exists();
        if !removed && (kept_here || c.consenter(cfg.node.id).is_some()) {
            out.entry(c.channel_id.clone()).or_insert((b, c));
        }
    }
    Ok(out.into_values().collect())
}

/// Runs the node until the process is stopped.
pub async fn run(cfg: NodeConfig) -> Result<(), NodeError> {
    let me = cfg.node.id;
    // Fails early, with a clear message, if the identity is unusable.
    let msp = Msp::load(Some(&cfg.node.msp_id), &cfg.node.msp_dir)?;
    let tls = TlsIdentity::load(&cfg.node.tls_dir)?;
    let mac_secret = identity::load_or_create_mac_key(&cfg.node.mac_key_file)?;
    std::fs::create_dir_all(&cfg.node.data_dir)
        .map_err(|e| NodeError::Bootstrap { path: cfg.node.data_dir.display().to_string(), detail: e.to_string() })?;
    let store = Arc::new(Store::open(&cfg.node.data_dir.join("ledger.redb"))?);
    let startup = startup_channels(&cfg)?;
    if startup.is_empty() {
        tracing::warn!(
            node = me,
            "no channel to join yet: join one with POST /participation/v1/channels on the admin API"
        );
    }

    // TLS trust: this node's own organisation's roots, and those of every
    // organisation of the channels it runs; reloaded when a channel is
    // joined, left or reconfigured (see `Membership`).
    let own_roots = Arc::new(msp.tlscacerts_pem.clone());
    let configs: Vec<&ChannelConfig> = startup.iter().map(|(_, c)| c).collect();
    let (tls_roots, crls) = tls_trust(&own_roots, &configs);
    let client_trust = ca_tools::ReloadableClientVerifier::new(&tls_roots, &crls)?;
    let server_trust = ca_tools::ReloadableServerVerifier::new(&tls_roots)?;
    let server_config = Arc::new(ca_tools::server_config_with(&tls, client_trust.clone())?);
    let client_config = Arc::new(ca_tools::client_config_with(&tls, server_trust.clone())?);

    let listen = cfg.cluster.listen.parse().map_err(|e| NodeError::Net(format!("cluster.listen: {e}")))?;
    let mut link_cfg = LinkConfig::new(me, listen, consenter_endpoints(&startup, me)?, server_config, client_config);
    link_cfg.frame_bytes_max = cfg.cluster.frame_bytes_max;
    link_cfg.send_queue_max = cfg.cluster.send_queue_max;
    link_cfg.reconnect_min_ms = cfg.cluster.reconnect_min_ms;
    link_cfg.reconnect_max_ms = cfg.cluster.reconnect_max_ms;
    if cfg.cluster.fault_delay_ms > 0 || cfg.cluster.fault_drop_per_mille > 0 {
        tracing::warn!(
            "cluster fault injection is ON (test setting): delay {} ms, drop {}‰",
            cfg.cluster.fault_delay_ms,
            cfg.cluster.fault_drop_per_mille
        );
        link_cfg.fault = Some(crate::net::FaultInjection {
            delay_ms: cfg.cluster.fault_delay_ms,
            drop_per_mille: cfg.cluster.fault_drop_per_mille.min(1000) as u16,
            seed: None,
        });
    }
    let (links, mut inbound) = Links::start(link_cfg).await.map_err(|e| NodeError::Net(e.to_string()))?;
    let node = Arc::new(Node {
        transport: Arc::new(LinkTransport(links.clone())),
        store: store.clone(),
        mac_secret,
        entries: Arc::new(RwLock::new(HashMap::new())),
        membership: Membership {
            joined: Arc::new(std::sync::Mutex::new(BTreeMap::new())),
            links: links.clone(),
            tls: client_trust.clone(),
            servers: server_trust,
            own_roots,
            me,
        },
        onboarding: Arc::new(RwLock::new(HashMap::new())),
        cfg: cfg.clone(),
    });
    for (genesis, _) in startup {
        match node.join_or_onboard(genesis) {
            Err(NodeError::Retired { channel, detail }) => {
                tracing::warn!(channel = %channel, "not running the channel: {detail}");
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }

    // Route frames from the links to their channel's task.
    let routes = node.entries.clone();
    let onboarding = node.onboarding.clone();
    tokio::spawn(async move {
        while let Some(Inbound { from, channel, bytes }) = inbound.recv().await {
            let entry = routes.read().ok().and_then(|m| m.get(&channel).cloned());
            match entry {
                Some(e) => {
                    if !e.handle.deliver(from as ConsenterId, bytes) {
                        tracing::debug!(%channel, from, "channel queue full; frame dropped");
                    }
                }
                // An onboarding channel takes state-transfer answers only.
                None => match onboarding.read().ok().and_then(|m| m.get(&channel).cloned()) {
                    Some(tx) if super::channel::Wire::is_fetch_response(&bytes) => {
                        let _ = tx.try_send((from, bytes));
                    }
                    Some(_) => {}
                    None => tracing::debug!(%channel, from, "frame for a channel this node has not joined"),
                },
            }
        }
    });

    // Clients present certificates of any trusted org's TLS CA; authorisation
    // per channel (or, for the admin API, as an admin of this node's org)
    // happens in the handlers.
    let mut api_tls = ca_tools::server_config_with(&tls, client_trust)?;
    api_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let api_tls = Arc::new(api_tls);
    let api_state = ApiState { channels: node.entries.clone(), store: store.clone() };
    let api_listener = TlsListener::bind(&cfg.api.listen, api_tls.clone()).await.map_err(|e| NodeError::Listen {
        what: "peer API",
        addr: cfg.api.listen.clone(),
        detail: e.to_string(),
    })?;
    let router = api::peer_router(api_state, cfg.api.body_bytes_max);
    tokio::spawn(async move {
        if let Err(e) = api::serve_peer_api(api_listener, router).await {
            tracing::error!(error = %e, "peer API stopped");
        }
    });
    let admin_trust = ca_tools::OrgTrust::from_msp_dir(&cfg.node.msp_id, &cfg.node.msp_dir)?;
    let admin_listener = TlsListener::bind(&cfg.admin.listen, api_tls).await.map_err(|e| NodeError::Listen {
        what: "admin API",
        addr: cfg.admin.listen.clone(),
        detail: e.to_string(),
    })?;
    let admin_router = super::admin::router(node.clone(), admin_trust.clone(), cfg.admin.body_bytes_max)
        .merge(super::audit_api::router(node.clone(), admin_trust));
    tokio::spawn(async move {
        if let Err(e) = api::serve_peer_api(admin_listener, admin_router).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });

    let ops_state =
        OpsState { channels: node.entries.clone(), links: Arc::new(LinkFigures(links.clone())), node_id: me };
    let ops_listener = tokio::net::TcpListener::bind(&cfg.operations.listen).await.map_err(|e| NodeError::Listen {
        what: "operations endpoint",
        addr: cfg.operations.listen.clone(),
        detail: e.to_string(),
    })?;
    tracing::info!(node = me, cluster = %cfg.cluster.listen, api = %cfg.api.listen, admin = %cfg.admin.listen, operations = %cfg.operations.listen, "orderer started");
    axum::serve(ops_listener, ops::router(ops_state)).await.map_err(|e| NodeError::Listen {
        what: "operations endpoint",
        addr: cfg.operations.listen.clone(),
        detail: e.to_string(),
    })?;
    Ok(())
}

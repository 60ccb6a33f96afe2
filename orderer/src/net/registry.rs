//! The configured peers and their runtime state: send queue, writer task,
//! counters and current inbound session. Inbound identity is decided here,
//! by the exact DER of the client certificate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::config::{ConsenterId, PeerEndpoint, ADDR_BYTES_MAX, CERT_BYTES_MAX, PEERS_MAX};
use super::error::NetError;
use super::stats::{LinkCounters, PeerCounters};

/// One frame waiting in a peer's send queue.
#[derive(Debug)]
pub(crate) struct Outbound {
    /// Length prefix, channel length and channel name.
    pub(crate) header: Vec<u8>,
    pub(crate) payload: Bytes,
    /// Fault injection: not to be written before this instant.
    pub(crate) due: Option<tokio::time::Instant>,
}

/// A peer endpoint that passed validation.
#[derive(Clone, Debug)]
pub(crate) struct ValidPeer {
    pub(crate) endpoint: PeerEndpoint,
    pub(crate) server_name: ServerName<'static>,
}

/// Checks a peer list: bounded, unique ids, unique non-empty certificates,
/// parseable server names. Our own entry (`me`) is left out.
pub(crate) fn validate_peers(me: ConsenterId, peers: Vec<PeerEndpoint>) -> Result<Vec<ValidPeer>, NetError> {
    if peers.len() > PEERS_MAX {
        return Err(NetError::TooManyPeers { count: peers.len(), max: PEERS_MAX });
    }
    let mut ids = HashSet::with_capacity(peers.len());
    let mut certs: HashMap<&[u8], ConsenterId> = HashMap::with_capacity(peers.len());
    for peer in &peers {
        if !ids.insert(peer.id) {
            return Err(NetError::DuplicatePeerId { id: peer.id });
        }
        let cert_len = peer.tls_cert_der.len();
        if cert_len == 0 || cert_len > CERT_BYTES_MAX {
            return Err(NetError::BadPeerCertificate { id: peer.id, len: cert_len, max: CERT_BYTES_MAX });
        }
        if let Some(first) = certs.insert(&peer.tls_cert_der, peer.id) {
            return Err(NetError::DuplicatePeerCertificate { first, second: peer.id });
        }
        if peer.addr.is_empty() || peer.addr.len() > ADDR_BYTES_MAX {
            return Err(NetError::BadPeerAddress { id: peer.id, addr: peer.addr.clone(), max: ADDR_BYTES_MAX });
        }
    }
    let mut valid = Vec::with_capacity(peers.len());
    for endpoint in peers.into_iter().filter(|p| p.id != me) {
        let server_name = ServerName::try_from(endpoint.server_name.clone())
            .map_err(|_| NetError::BadServerName { id: endpoint.id, name: endpoint.server_name.clone() })?;
        valid.push(ValidPeer { endpoint, server_name });
    }
    Ok(valid)
}

/// The inbound connection currently serving a peer; dropping `stop` closes it.
#[derive(Debug)]
pub(crate) struct Session {
    generation: u64,
    _stop: oneshot::Sender<()>,
}

/// One configured peer at run time.
#[derive(Debug)]
pub(crate) struct PeerSlot {
    pub(crate) endpoint: PeerEndpoint,
    pub(crate) counters: Arc<PeerCounters>,
    pub(crate) queue: mpsc::Sender<Outbound>,
    pub(crate) writer: JoinHandle<()>,
    pub(crate) session: Option<Session>,
}

impl PeerSlot {
    /// Stops the writer and closes the inbound session (both end promptly).
    fn retire(self) -> JoinHandle<()> {
        self.writer.abort();
        self.counters.connected.store(false, Ordering::Relaxed);
        self.counters.inbound_connected.store(false, Ordering::Relaxed);
        self.writer
    }
}

/// What the listener gets when a client certificate matches a peer.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) id: ConsenterId,
    pub(crate) generation: u64,
    pub(crate) stop: oneshot::Receiver<()>,
    pub(crate) counters: Arc<PeerCounters>,
    /// An older inbound session of the same peer was closed for this one.
    pub(crate) replaced: bool,
}

/// The peers, indexed by id and by certificate.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_cert: HashMap<Vec<u8>, ConsenterId>,
    pub(crate) peers: BTreeMap<ConsenterId, PeerSlot>,
    next_generation: u64,
}

impl Registry {
    /// Opens an inbound session for the peer whose TLS certificate is exactly
    /// `cert_der`; `None` if no configured peer has it. A previous session of
    /// that peer is closed (the newest connection wins: a restarted peer must
    /// not wait for its dead connection to time out).
    pub(crate) fn admit(&mut self, cert_der: &[u8]) -> Option<Admission> {
        let id = *self.by_cert.get(cert_der)?;
        let slot = self.peers.get_mut(&id)?;
        assert!(slot.endpoint.tls_cert_der == cert_der);
        self.next_generation += 1;
        let (stop_tx, stop) = oneshot::channel();
        let previous = slot.session.replace(Session { generation: self.next_generation, _stop: stop_tx });
        slot.counters.inbound_connected.store(true, Ordering::Relaxed);
        Some(Admission {
            id,
            generation: self.next_generation,
            stop,
            counters: slot.counters.clone(),
            replaced: previous.is_some(),
        })
    }

    /// Ends the session `generation` of `id`, if it is still the current one.
    pub(crate) fn close_session(&mut self, id: ConsenterId, generation: u64) {
        if let Some(slot) = self.peers.get_mut(&id) {
            if slot.session.as_ref().is_some_and(|s| s.generation == generation) {
                slot.session = None;
                slot.counters.inbound_connected.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Installs a new peer list. Peers whose endpoint is unchanged keep their
    /// queue, writer and session; removed or changed peers are retired (their
    /// counters carry over if the id stays); new ones are built by `spawn`.
    /// Returns the retired writers, to be awaited outside the lock.
    pub(crate) fn replace(
        &mut self,
        peers: Vec<ValidPeer>,
        mut spawn: impl FnMut(ValidPeer, Arc<PeerCounters>) -> PeerSlot,
    ) -> Vec<JoinHandle<()>> {
        let wanted: HashMap<ConsenterId, &PeerEndpoint> = peers.iter().map(|p| (p.endpoint.id, &p.endpoint)).collect();
        let stale: Vec<ConsenterId> = self
            .peers
            .iter()
            .filter(|(id, slot)| wanted.get(id).is_none_or(|endpoint| **endpoint != slot.endpoint))
            .map(|(id, _)| *id)
            .collect();
        let mut kept_counters = HashMap::new();
        let mut retired = Vec::with_capacity(stale.len());
        for id in stale {
            if let Some(slot) = self.peers.remove(&id) {
                if wanted.contains_key(&id) {
                    kept_counters.insert(id, slot.counters.clone());
                }
                retired.push(slot.retire());
            }
        }
        for peer in peers {
            let id = peer.endpoint.id;
            if let std::collections::btree_map::Entry::Vacant(vacant) = self.peers.entry(id) {
                let counters = kept_counters.remove(&id).unwrap_or_default();
                let slot = spawn(peer, counters);
                assert!(slot.endpoint.id == id);
                vacant.insert(slot);
            }
        }
        self.by_cert = self.peers.iter().map(|(id, slot)| (slot.endpoint.tls_cert_der.clone(), *id)).collect();
        assert!(self.by_cert.len() == self.peers.len());
        retired
    }

    /// Retires every peer; returns the writers to await.
    pub(crate) fn clear(&mut self) -> Vec<JoinHandle<()>> {
        self.by_cert.clear();
        std::mem::take(&mut self.peers).into_values().map(PeerSlot::retire).collect()
    }
}

/// State shared by the [`super::Links`] handle and the listener task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    registry: RwLock<Registry>,
    pub(crate) counters: LinkCounters,
}

impl Shared {
    /// Reads the registry. Nothing panics while holding the lock, so a
    /// poisoned lock still holds consistent data and is used as is.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes the registry (see [`Shared::read`] on poisoning).
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

//! The [`Links`] handle: start, send, broadcast, stats, membership, shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, info};

use super::config::{ConsenterId, FaultInjection, LinkConfig, PeerEndpoint};
use super::dialer::Dialer;
use super::error::NetError;
use super::frame::encode_header;
use super::listener::Listener;
use super::registry::{validate_peers, Outbound, PeerSlot, Shared, ValidPeer};
use super::rng::Rng;
use super::stats::{bump, LinkStats, PeerCounters, PeerStats};
use super::Inbound;

/// What became of one frame handed to [`Links::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// In the peer's queue; written once the link is up.
    Queued,
    /// The peer's queue was full; dropped and counted.
    QueueFull,
    /// No configured peer has this id; dropped and counted.
    UnknownPeer,
    /// Channel name or size out of bounds; dropped and counted.
    InvalidFrame,
    /// Dropped on purpose by fault injection.
    FaultDropped,
    /// The links are shut down.
    Closed,
}

/// The fixed parameters and handles behind [`Links`].
struct Inner {
    me: ConsenterId,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    runtime: tokio::runtime::Handle,
    connector: TlsConnector,
    jitter_rng: Arc<Rng>,
    fault_rng: Rng,
    fault: Option<FaultInjection>,
    frame_bytes_max: usize,
    send_queue_max: usize,
    reconnect_min_ms: u64,
    reconnect_max_ms: u64,
    io_timeout_ms: u64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            listener.abort();
        }
        for writer in self.shared.write().clear() {
            writer.abort();
        }
    }
}

/// Handle to the cluster links of one node; cheap to clone. Tasks stop on
/// [`Links::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Links {
    inner: Arc<Inner>,
}

impl Links {
    /// Binds the listener and starts one writer task per peer. Inbound frames
    /// from all peers and channels arrive on the returned receiver (bounded by
    /// `inbound_queue_max`; when it is full the readers wait rather than grow).
    pub async fn start(cfg: LinkConfig) -> Result<(Links, mpsc::Receiver<Inbound>), NetError> {
        cfg.validate_limits()?;
        let peers = validate_peers(cfg.me, cfg.peers)?;
        let tcp = TcpListener::bind(cfg.listen).await.map_err(|source| NetError::Bind { addr: cfg.listen, source })?;
        let local_addr = tcp.local_addr().map_err(|source| NetError::Bind { addr: cfg.listen, source })?;
        let (inbound_tx, inbound_rx) = mpsc::channel(cfg.inbound_queue_max);
        let shared = Arc::new(Shared::default());
        let fault_rng = match cfg.fault.and_then(|f| f.seed) {
            Some(seed) => Rng::seeded(seed),
            None => Rng::from_entropy(),
        };
        let inner = Inner {
            me: cfg.me,
            local_addr,
            shared: shared.clone(),
            listener: Mutex::new(None),
            closed: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::current(),
            connector: TlsConnector::from(cfg.client_config),
            jitter_rng: Arc::new(Rng::from_entropy()),
            fault_rng,
            fault: cfg.fault,
            frame_bytes_max: cfg.frame_bytes_max,
            send_queue_max: cfg.send_queue_max,
            reconnect_min_ms: cfg.reconnect_min_ms,
            reconnect_max_ms: cfg.reconnect_max_ms,
            io_timeout_ms: cfg.io_timeout_ms,
        };
        let listener = Arc::new(Listener {
            acceptor: TlsAcceptor::from(cfg.server_config),
            shared,
            inbound: inbound_tx,
            frame_bytes_max: cfg.frame_bytes_max,
            io_timeout_ms: cfg.io_timeout_ms,
        });
        *inner.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::spawn(listener.run(tcp)));
        let links = Links { inner: Arc::new(inner) };
        links.install(peers);
        info!(me = cfg.me, %local_addr, fault = ?cfg.fault, "cluster links started");
        Ok((links, inbound_rx))
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Queues a frame for `to` on `channel` without waiting. If the peer's
    /// queue is full (or anything else prevents it) the frame is dropped and
    /// counted; memory never grows beyond the configured bounds.
    pub fn send(&self, to: ConsenterId, channel: &str, bytes: Bytes) -> SendOutcome {
        if self.inner.closed.load(Ordering::Relaxed) {
            return SendOutcome::Closed;
        }
        let registry = self.inner.shared.read();
        let Some(slot) = registry.peers.get(&to) else {
            bump(&self.inner.shared.counters.unknown_peer_sends);
            debug!(to, channel, "frame for an unknown peer dropped");
            return SendOutcome::UnknownPeer;
        };
        match self.inner.header(channel, &bytes, &slot.counters) {
            Some(header) => self.inner.enqueue(slot, header, bytes),
            None => SendOutcome::InvalidFrame,
        }
    }

    /// Queues a frame for every peer (see [`Links::send`]); returns how many queued it.
    pub fn broadcast(&self, channel: &str, bytes: Bytes) -> usize {
        if self.inner.closed.load(Ordering::Relaxed) {
            return 0;
        }
        let registry = self.inner.shared.read();
        let mut queued = 0;
        for slot in registry.peers.values() {
            let outcome = match self.inner.header(channel, &bytes, &slot.counters) {
                Some(header) => self.inner.enqueue(slot, header, bytes.clone()),
                None => SendOutcome::InvalidFrame,
            };
            queued += usize::from(outcome == SendOutcome::Queued);
        }
        queued
    }

    /// A snapshot of every peer's link, ordered by id.
    pub fn stats(&self) -> Vec<PeerStats> {
        let registry = self.inner.shared.read();
        registry
            .peers
            .iter()
            .map(|(id, slot)| {
                let queue_len = slot.queue.max_capacity() - slot.queue.capacity();
                slot.counters.snapshot(*id, queue_len)
            })
            .collect()
    }

    /// A snapshot of the listener's counters and of sends to unknown peers.
    pub fn link_stats(&self) -> LinkStats {
        self.inner.shared.counters.snapshot()
    }

    /// Changes the peer set (membership change). Unchanged peers keep their
    /// links and queues; removed peers' links close, including their inbound
    /// link; a peer whose address, server name or certificate changed is
    /// redialled with an empty queue. Ignored after [`Links::shutdown`].
    pub fn replace_peers(&self, peers: Vec<PeerEndpoint>) -> Result<(), NetError> {
        let peers = validate_peers(self.inner.me, peers)?;
        if !self.inner.closed.load(Ordering::Relaxed) {
            self.install(peers);
        }
        Ok(())
    }

    fn install(&self, peers: Vec<ValidPeer>) {
        let count = peers.len();
        let retired = self.inner.shared.write().replace(peers, |peer, counters| self.inner.spawn_peer(peer, counters));
        // Retired writers were aborted; they need not be awaited.
        drop(retired);
        info!(me = self.inner.me, peers = count, "cluster peers installed");
    }

    /// Stops the listener, closes every link and waits for the tasks to end.
    /// Later sends return [`SendOutcome::Closed`].
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        let listener = self.inner.listener.lock().unwrap_or_else(|p| p.into_inner()).take();
        let writers = self.inner.shared.write().clear();
        let tasks = listener.into_iter().chain(writers);
        for task in tasks {
            task.abort();
            // An aborted task reports `Cancelled`; nothing else can come back.
            let _ = task.await;
        }
        info!(me = self.inner.me, "cluster links shut down");
    }
}

impl Inner {
    /// Encodes the frame header, or counts the frame as invalid.
    fn header(&self, channel: &str, bytes: &Bytes, counters: &PeerCounters) -> Option<Vec<u8>> {
        match encode_header(channel, bytes.len(), self.frame_bytes_max) {
            Ok(header) => Some(header),
            Err(e) => {
                bump(&counters.invalid);
                debug!("frame not sent: {e}");
                None
            }
        }
    }

    /// Applies fault injection, then queues without waiting.
    fn enqueue(&self, slot: &PeerSlot, header: Vec<u8>, payload: Bytes) -> SendOutcome {
        let mut due = None;
        if let Some(fault) = self.fault {
            if self.fault_rng.below(1000) < u64::from(fault.drop_per_mille) {
                bump(&slot.counters.fault_dropped);
                return SendOutcome::FaultDropped;
            }
            if fault.delay_ms > 0 {
                due = Some(tokio::time::Instant::now() + Duration::from_millis(fault.delay_ms));
            }
        }
        match slot.queue.try_send(Outbound { header, payload, due }) {
            Ok(()) => SendOutcome::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                bump(&slot.counters.dropped);
                SendOutcome::QueueFull
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                bump(&slot.counters.dropped);
                SendOutcome::Closed
            }
        }
    }

    fn spawn_peer(&self, peer: ValidPeer, counters: Arc<PeerCounters>) -> PeerSlot {
        let (queue, queue_rx) = mpsc::channel(self.send_queue_max);
        let dialer = Dialer {
            endpoint: peer.endpoint.clone(),
            server_name: peer.server_name,
            connector: self.connector.clone(),
            counters: counters.clone(),
            rng: self.jitter_rng.clone(),
            reconnect_min_ms: self.reconnect_min_ms,
            reconnect_max_ms: self.reconnect_max_ms,
            io_timeout_ms: self.io_timeout_ms,
        };
        let writer = self.runtime.spawn(dialer.run(queue_rx));
        PeerSlot { endpoint: peer.endpoint, counters, queue, writer, session: None }
    }
}

//! One writer task per peer: dial, check the server's identity, then drain
//! the peer's bounded send queue onto the link; on failure back off and redial.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::config::PeerEndpoint;
use super::error::LinkError;
use super::io::{within, GREETING};
use super::registry::Outbound;
use super::rng::Rng;
use super::stats::{bump, PeerCounters};

/// Frames written before one flush.
const BATCH_FRAMES_MAX: u64 = 256;
/// Write buffer per link.
const WRITE_BUFFER_BYTES: usize = 64 << 10;

type Link = TlsStream<TcpStream>;

/// Everything one writer task needs.
pub(crate) struct Dialer {
    pub(crate) endpoint: PeerEndpoint,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) connector: TlsConnector,
    pub(crate) counters: Arc<PeerCounters>,
    pub(crate) rng: Arc<Rng>,
    pub(crate) reconnect_min_ms: u64,
    pub(crate) reconnect_max_ms: u64,
    pub(crate) io_timeout_ms: u64,
}

impl Dialer {
    /// Runs until the queue is closed or the task is aborted.
    pub(crate) async fn run(self, mut queue: mpsc::Receiver<Outbound>) {
        let peer = self.endpoint.id;
        let addr = self.endpoint.addr.as_str();
        let mut backoff = Backoff::new(self.reconnect_min_ms, self.reconnect_max_ms);
        let mut failures_in_row = 0u64;
        loop {
            match self.connect().await {
                Ok(link) => {
                    backoff.reset();
                    failures_in_row = 0;
                    bump(&self.counters.connects);
                    self.counters.connected.store(true, Ordering::Relaxed);
                    info!(peer, addr, "cluster link up");
                    let end = self.pump(link, &mut queue).await;
                    self.counters.connected.store(false, Ordering::Relaxed);
                    match end {
                        Ok(()) => {
                            info!(peer, addr, "send queue closed; cluster link task ends");
                            return;
                        }
                        Err(e) => warn!(peer, addr, "cluster link down: {e}; reconnecting"),
                    }
                }
                Err(e) => {
                    bump(&self.counters.connect_failures);
                    failures_in_row += 1;
                    if matches!(e, LinkError::WrongServerCertificate) {
                        bump(&self.counters.refused_certificates);
                        warn!(
                            peer,
                            addr, "refused server: {e}; check the peer's address and the channel configuration"
                        );
                    } else if failures_in_row == 1 {
                        warn!(peer, addr, "cannot reach peer: {e}; retrying with backoff");
                    } else {
                        debug!(peer, addr, failures_in_row, "cannot reach peer: {e}");
                    }
                }
            }
            tokio::time::sleep(backoff.next_delay(&self.rng)).await;
        }
    }

    /// Dials, completes TLS, checks that the server is exactly the configured
    /// peer, and waits for the listener's greeting.
    async fn connect(&self) -> Result<Link, LinkError> {
        let limit = self.io_timeout_ms;
        let tcp = within(limit, "connecting", TcpStream::connect(self.endpoint.addr.as_str())).await?;
        tcp.set_nodelay(true).map_err(LinkError::io("setting TCP_NODELAY"))?;
        let mut link = within(limit, "TLS handshake", self.connector.connect(self.server_name.clone(), tcp)).await?;
        let presented = link.get_ref().1.peer_certificates().and_then(|chain| chain.first());
        if presented.map(|cert| cert.as_ref()) != Some(self.endpoint.tls_cert_der.as_slice()) {
            return Err(LinkError::WrongServerCertificate);
        }
        let mut greeting = [0u8; GREETING.len()];
        match within(limit, "awaiting the greeting", link.read_exact(&mut greeting)).await {
            Ok(_) if &greeting == GREETING => Ok(link),
            Ok(_) => Err(LinkError::BadGreeting),
            Err(LinkError::Io { source, .. }) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(LinkError::BadGreeting)
            }
            Err(e) => Err(e),
        }
    }

    /// Drains the queue onto the link. `Ok` when the queue is closed; `Err`
    /// when the link fails (the listener never writes after its greeting, so
    /// a readable link means it was closed or misbehaves).
    async fn pump(&self, link: Link, queue: &mut mpsc::Receiver<Outbound>) -> Result<(), LinkError> {
        let (mut reader, writer) = tokio::io::split(link);
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, writer);
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                item = queue.recv() => {
                    let Some(first) = item else { return Ok(()) };
                    self.write_batch(&mut writer, first, queue).await?;
                }
                read = reader.read(&mut probe) => {
                    return Err(match read {
                        Ok(0) => LinkError::Closed,
                        Ok(_) => LinkError::UnexpectedData,
                        Err(source) => LinkError::Io { during: "watching the link", source },
                    });
                }
            }
        }
    }

    /// Writes `first` and whatever else is queued (bounded), then flushes.
    /// Frames of a batch that fails are counted as dropped.
    async fn write_batch(
        &self,
        writer: &mut BufWriter<WriteHalf<Link>>,
        first: Outbound,
        queue: &mut mpsc::Receiver<Outbound>,
    ) -> Result<(), LinkError> {
        let mut batch = 0u64;
        let result = self.write_frames(writer, first, queue, &mut batch).await;
        match result {
            Ok(()) => self.counters.sent.fetch_add(batch, Ordering::Relaxed),
            Err(_) => self.counters.dropped.fetch_add(batch, Ordering::Relaxed),
        };
        result
    }

    async fn write_frames(
        &self,
        writer: &mut BufWriter<WriteHalf<Link>>,
        first: Outbound,
        queue: &mut mpsc::Receiver<Outbound>,
        batch: &mut u64,
    ) -> Result<(), LinkError> {
        let limit = self.io_timeout_ms;
        let mut next = Some(first);
        while let Some(item) = next {
            *batch += 1;
            if let Some(due) = item.due.filter(|due| *due > tokio::time::Instant::now()) {
                within(limit, "flushing", writer.flush()).await?;
                tokio::time::sleep_until(due).await;
            }
            within(limit, "writing", writer.write_all(&item.header)).await?;
            within(limit, "writing", writer.write_all(&item.payload)).await?;
            next = if *batch < BATCH_FRAMES_MAX { queue.try_recv().ok() } else { None };
        }
        within(limit, "flushing", writer.flush()).await
    }
}

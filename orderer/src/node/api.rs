//! The peer API (HTTPS with mutual TLS) and the operations endpoint.
//!
//! Peer API:
//! - `POST /v1/channels/{channel}/envelopes[?wait=commit]` — one protobuf
//!   Envelope; JSON answer `{status, info, tx_id[, block]}`.
//! - `GET /v1/channels/{channel}/blocks/{number|oldest|newest}[?format=json]`
//!   — a Fabric protobuf Block carrying its certificate (SIGNATURES metadata).
//! - `GET /v1/channels/{channel}/deliver?start=oldest|newest|N&stop=N|never`
//!   — a stream of blocks, each a 4-byte big-endian length and the block.
//!
//! Every call needs a client certificate chaining to one of the channel's
//! organisations with a role allowed for the call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ca_tools::{IdentityVerifier, Role};
use channels::envelope::{verify_envelope, ChannelTrust, EnvelopeError};
use channels::proto::common::Block as PbBlock;
use channels::{BlockCertificate, ChannelConfig};
use prost::Message;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::channel::{ChannelHandle, SubmitResult};
use super::identity::parse_tx_id;
use crate::consensus::{Refusal, Seq};
use crate::storage::Store;

/// How long `wait=commit` waits before answering that the envelope is
/// accepted but not yet committed.
const COMMIT_WAIT: Duration = Duration::from_secs(30);
/// TLS handshakes in progress at once; more wait in the kernel's backlog.
const HANDSHAKES_MAX: usize = 256;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the API knows of a joined channel.
pub struct ChannelEntry {
    pub handle: ChannelHandle,
    /// Envelopes verified here, so the channel task need not verify them again.
    pub verified: Arc<super::identity::VerifiedCache>,
    pub config: ChannelConfig,
    pub trust: ChannelTrust,
    /// The organisations' TLS roots: who is behind a client certificate
    /// (remembered per certificate).
    pub tls_clients: IdentityVerifier,
    /// The genesis block (block 0).
    pub genesis: PbBlock,
    pub epoch: u64,
    pub body_bytes_max: usize,
}

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct ApiState {
    pub channels: Arc<RwLock<HashMap<String, Arc<ChannelEntry>>>>,
    pub store: Arc<Store>,
}

impl ApiState {
    fn channel(&self, name: &str) -> Option<Arc<ChannelEntry>> {
        self.channels.read().ok()?.get(name).cloned()
    }
}

/// The peer's certificate, from the TLS session.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub cert_der: Option<Vec<u8>>,
}

/// A listener that completes TLS handshakes off the accept path.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub async fn bind(addr: &str, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let tcp = TcpListener::bind(addr).await?;
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(HANDSHAKES_MAX);
        let permits = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_MAX));
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(conn) = self.rx.recv().await {
                return conn;
            }
            // The acceptor task is gone; nothing more will come.
            std::future::pending::<()>().await;
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        let cert_der = stream.io().get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
        Peer { addr: *stream.remote_addr(), cert_der }
    }
}

/// The peer API's routes.
pub fn peer_router(state: ApiState, body_bytes_max: usize) -> Router {
    Router::new()
        .route("/v1/channels/{channel}/envelopes", post(submit))
        .route("/v1/channels/{channel}/blocks/{spec}", get(block))
        .route("/v1/channels/{channel}/deliver", get(deliver))
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .with_state(state)
}

/// Serves the peer API on `listener` until the process ends.
pub async fn serve_peer_api(listener: TlsListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<Peer>()).await
}

/// A Fabric-style broadcast answer.
fn answer(code: StatusCode, status: &str, info: impl Into<String>, extra: serde_json::Value) -> Response {
    let mut body = json!({ "status": status, "info": info.into() });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    (code, Json(body)).into_response()
}

fn forbidden(info: impl Into<String>) -> Response {
    answer(StatusCode::FORBIDDEN, "FORBIDDEN", info, json!({}))
}

fn not_found(channel: &str) -> Response {
    answer(StatusCode::NOT_FOUND, "NOT_FOUND", format!("this orderer has not joined channel {channel:?}"), json!({}))
}

/// Checks the caller's certificate against the channel's organisations.
fn authorize(entry: &ChannelEntry, peer: &Peer, roles: &[Role]) -> Result<(), Box<Response>> {
    let Some(cert) = &peer.cert_der else {
        return Err(Box::new(forbidden("a client certificate is required")));
    };
    entry
        .tls_clients
        .verify(cert, ca_tools::now_unix(), roles)
        .map(|_| ())
        .map_err(|e| Box::new(forbidden(format!("client certificate refused for this channel: {e}"))))
}

const WRITERS: &[Role] = &[Role::Client, Role::Peer, Role::Admin];
const READERS: &[Role] = &[Role::Client, Role::Peer, Role::Admin, Role::Auditor];

#[derive(Deserialize)]
struct SubmitQuery {
    wait: Option<String>,
}

async fn submit(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(channel): Path<String>,
    Query(q): Query<SubmitQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Some(entry) = state.channel(&channel) else { return not_found(&channel) };
    if let Err(r) = authorize(&entry, &peer, WRITERS) {
        entry.handle.metrics().broadcast("FORBIDDEN");
        return *r;
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return counted(
                &entry,
                e.status(),
                "REQUEST_ENTITY_TOO_LARGE",
                format!("{e}; the limit is {} bytes", entry.body_bytes_max),
                json!({}),
            )
        }
    };
    let verified = match verify_envelope(&body, &entry.trust, ca_tools::now_unix(), entry.body_bytes_max) {
        Ok(v) => v,
        Err(e) => return envelope_refused(&entry, e),
    };
    let tx_id = verified.tx_id.clone();
    entry.verified.insert(&body);
    if let Some(id) = parse_tx_id(&tx_id) {
        if let Ok(Some(n)) = state.store.tx_block(&channel, &id) {
            return counted(
                &entry,
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("duplicate transaction id: already ordered in block {n}"),
                json!({ "tx_id": tx_id, "block": n }),
            );
        }
    }
    match entry.handle.submit(body.to_vec()).await {
        SubmitResult::Accepted { tx_id: id } => {
            if q.wait.as_deref() == Some("commit") {
                let r = wait_commit(&state, &entry, &channel, id, tx_id).await;
                entry.handle.metrics().broadcast("SUCCESS");
                return r;
            }
            counted(
                &entry,
                StatusCode::OK,
                "SUCCESS",
                "validated and queued for ordering; read it back with deliver, or submit with ?wait=commit",
                json!({ "tx_id": tx_id }),
            )
        }
        SubmitResult::Refused(Refusal::Duplicate) => counted(
            &entry,
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "duplicate transaction id: already ordered",
            json!({ "tx_id": tx_id }),
        ),
        SubmitResult::Refused(Refusal::PoolFull) => counted(
            &entry,
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "the request pool is full; retry with backoff",
            json!({ "tx_id": tx_id }),
        ),
        SubmitResult::Refused(Refusal::EpochEnded) => counted(
            &entry,
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "the channel is switching to its next key epoch; retry in a moment",
            json!({ "tx_id": tx_id }),
        ),
        SubmitResult::Refused(Refusal::TooLarge { bytes, max }) => counted(
            &entry,
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_ENTITY_TOO_LARGE",
            format!("envelope of {bytes} bytes exceeds the channel's absolute_max_bytes {max}"),
            json!({ "tx_id": tx_id }),
        ),
        SubmitResult::Refused(Refusal::Invalid(why)) => {
            counted(&entry, StatusCode::BAD_REQUEST, "BAD_REQUEST", why, json!({ "tx_id": tx_id }))
        }
        SubmitResult::Unavailable => counted(
            &entry,
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "the channel is shutting down; retry on another orderer",
            json!({ "tx_id": tx_id }),
        ),
    }
}

fn envelope_refused(entry: &ChannelEntry, e: EnvelopeError) -> Response {
    match e {
        EnvelopeError::UnknownCreator(_)
        | EnvelopeError::RevokedCreator(_)
        | EnvelopeError::ExpiredCreator(_)
        | EnvelopeError::CreatorNotYetValid(_)
        | EnvelopeError::WrongRole(_)
        | EnvelopeError::InvalidCreator(_) => {
            counted(entry, StatusCode::FORBIDDEN, "FORBIDDEN", e.to_string(), json!({}))
        }
        EnvelopeError::TooLarge { .. } => {
            counted(entry, StatusCode::PAYLOAD_TOO_LARGE, "REQUEST_ENTITY_TOO_LARGE", e.to_string(), json!({}))
        }
        EnvelopeError::Malformed(_)
        | EnvelopeError::WrongChannel { .. }
        | EnvelopeError::BadSignature
        | EnvelopeError::TxIdMismatch { .. }
        | EnvelopeError::Signing(_) => counted(entry, StatusCode::BAD_REQUEST, "BAD_REQUEST", e.to_string(), json!({})),
    }
}

/// A submit answer, counted by Fabric status in the channel's metrics.
fn counted(
    entry: &ChannelEntry,
    code: StatusCode,
    status: &str,
    info: impl Into<String>,
    extra: serde_json::Value,
) -> Response {
    entry.handle.metrics().broadcast(status);
    answer(code, status, info, extra)
}

async fn wait_commit(
    state: &ApiState,
    entry: &ChannelEntry,
    channel: &str,
    id: crate::consensus::TxId,
    tx_id: String,
) -> Response {
    let mut status = entry.handle.status();
    let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
    loop {
        if let Ok(Some(n)) = state.store.tx_block(channel, &id) {
            return answer(
                StatusCode::OK,
                "SUCCESS",
                format!("committed in block {n}"),
                json!({ "tx_id": tx_id, "block": n }),
            );
        }
        if tokio::time::timeout_at(deadline, status.changed()).await.is_err() {
            return answer(
                StatusCode::ACCEPTED,
                "SUCCESS",
                "accepted, not yet committed after 30 s; follow it with deliver",
                json!({ "tx_id": tx_id }),
            );
        }
    }
}

/// Block `number` as Fabric's protobuf, with its certificate; `None` if not
/// stored yet or not yet certified.
pub fn fabric_block(state: &ApiState, entry: &ChannelEntry, number: Seq) -> Option<PbBlock> {
    if number == 0 {
        return Some(entry.genesis.clone());
    }
    let channel = &entry.config.channel_id;
    let block = state.store.block(channel, number).ok()??;
    let cert = state.store.certificate(channel, number).ok()??;
    let mut pb = channels::block::build_block(number, &block.previous_hash, block.envelopes);
    // The epoch whose consenters signed it (their signatures bind the epoch).
    let epoch = super::epoch::epoch_of_block(&entry.handle.status().borrow().epoch_bases, number);
    BlockCertificate { epoch, signatures: cert.signatures }.store(&mut pb);
    Some(pb)
}

/// A block position: `oldest`, `newest` or a number.
fn position(spec: &str, entry: &ChannelEntry) -> Option<Seq> {
    match spec {
        "oldest" => Some(0),
        "newest" => Some(certified_height(entry)),
        n => n.parse().ok(),
    }
}

fn certified_height(entry: &ChannelEntry) -> Seq {
    entry.handle.status().borrow().certified
}

#[derive(Deserialize)]
struct BlockQuery {
    format: Option<String>,
}

async fn block(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path((channel, spec)): Path<(String, String)>,
    Query(q): Query<BlockQuery>,
) -> Response {
    let Some(entry) = state.channel(&channel) else { return not_found(&channel) };
    if let Err(r) = authorize(&entry, &peer, READERS) {
        return *r;
    }
    let number = match position(&spec, &entry) {
        Some(n) => n,
        None => {
            return answer(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("block {spec:?}: use a number, oldest or newest"),
                json!({}),
            )
        }
    };
    let Some(pb) = fabric_block(&state, &entry, number) else {
        return answer(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("block {number} is not committed and certified yet (newest is {})", certified_height(&entry)),
            json!({}),
        );
    };
    if q.format.as_deref() == Some("json") {
        return Json(channels::inspect::block_json(&pb)).into_response();
    }
    ([(header::CONTENT_TYPE, "application/octet-stream")], pb.encode_to_vec()).into_response()
}

#[derive(Deserialize)]
struct DeliverQuery {
    start: Option<String>,
    stop: Option<String>,
}

async fn deliver(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(channel): Path<String>,
    Query(q): Query<DeliverQuery>,
) -> Response {
    let Some(entry) = state.channel(&channel) else { return not_found(&channel) };
    if let Err(r) = authorize(&entry, &peer, READERS) {
        return *r;
    }
    let start_spec = q.start.as_deref().unwrap_or("oldest");
    let Some(start) = position(start_spec, &entry) else {
        return answer(StatusCode::BAD_REQUEST, "BAD_REQUEST", "start: oldest, newest or a number", json!({}));
    };
    let stop = match q.stop.as_deref().unwrap_or("never") {
        "never" => u64::MAX,
        n => match n.parse::<u64>() {
            Ok(n) if n >= start => n,
            _ => return answer(StatusCode::BAD_REQUEST, "BAD_REQUEST", "stop: never or a number >= start", json!({})),
        },
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let _open = entry.handle.metrics().deliver_stream();
        let mut status = entry.handle.status();
        let mut next = start;
        while next <= stop {
            match fabric_block(&state, &entry, next) {
                Some(pb) => {
                    let bytes = pb.encode_to_vec();
                    let mut frame = Vec::with_capacity(bytes.len() + 4);
                    frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                    frame.extend_from_slice(&bytes);
                    if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                        return;
                    }
                    next += 1;
                }
                // Wait for the next certified block (BLOCK_UNTIL_READY).
                None => {
                    if status.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    ([(header::CONTENT_TYPE, "application/octet-stream")], Body::from_stream(stream)).into_response()
}

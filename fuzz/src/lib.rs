//! The bodies of the fuzz targets, one `pub fn NAME(data: &[u8])` per target
//! in `fuzz/fuzz_targets/NAME.rs`.
//!
//! The same file is compiled into `orderer/tests/fuzz_corpus.rs` (with
//! `#[path]`), which replays every file of `fuzz/corpus/NAME/` through
//! `NAME` as an ordinary `cargo test`: CI replays the corpus without the
//! fuzzer. So this file only uses crates that the `orderer` package and its
//! tests also depend on.
//!
//! A target fails by panicking. Besides "never panic", targets check
//! properties that must hold for every input: a frame that decodes
//! re-encodes to the same bytes (the authenticated bytes are the sent
//! bytes), the channel task's validator agrees with the API's envelope
//! check, and the replica never votes twice differently for one
//! (kind, view, seq) and only ever commits a hash chain.
//!
//! The channel used by the envelope, block, config and API targets is fixed
//! (`fuzz/fixtures/`: a genesis block with public certificates only, the
//! client's TLS certificate, and the unix time at which they are all valid),
//! so that the signed seeds in the corpus stay valid. They are regenerated
//! together with the seeds by
//! `cargo test -p orderer --test fuzz_corpus -- --ignored regenerate`.

#![allow(clippy::missing_panics_doc)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use channels::block::{verify_data_hash, verify_link, BlockCertificate, ConsenterKeys};
use channels::envelope::{decode_envelope, verify_envelope, ChannelTrust};
use channels::proto::common::Block as PbBlock;
use channels::{config_from_genesis, ChannelConfig};
use orderer::consensus::auth::{self, seal};
use orderer::consensus::codec::Writer;
use orderer::consensus::message::{Auth, Body, NewView, PrePreparedClaim, PreparedClaim, SignedViewChange, ViewChange};
use orderer::consensus::{
    compact, Batch, Block, Certificate, CertifiedBlock, Config, Crypto, Digest, Durable, Frame, Input, Limits, Output,
    Replica, ReplicaId, Seq, Tip, Validator, View, VoteKind,
};
use orderer::net::frame::{decode_control, encode_control, encode_header, read_frame, CONTROL_FRAME_BYTES};
use orderer::node::identity::{self, parse_tx_id, EnvelopeValidator};
use orderer::node::Wire;
use orderer::sim::identity::{make_envelope, Keyring, SimValidator};
use prost::Message;

/// The fixed test channel's genesis block (public certificates only).
pub const FIXTURE_GENESIS: &[u8] = include_bytes!("../fixtures/genesis.block");
/// DER of a client TLS certificate of the fixed channel's Org1 (the API's caller).
pub const FIXTURE_CLIENT_TLS: &[u8] = include_bytes!("../fixtures/client-tls.der");
/// A unix time at which every fixture certificate is valid.
pub const FIXTURE_NOW: &str = include_str!("../fixtures/now.txt");
/// Largest envelope or block the targets accept (the fixture's absolute max is larger).
pub const BYTES_MAX: usize = 1 << 20;

/// What the channel-level targets share, built once per process.
pub struct Fixture {
    pub genesis: PbBlock,
    pub config: ChannelConfig,
    pub trust: ChannelTrust,
    pub keys: ConsenterKeys,
    pub validator: EnvelopeValidator,
    pub now: i64,
}

/// The fixed test channel.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let genesis = PbBlock::decode(FIXTURE_GENESIS).expect("fuzz/fixtures/genesis.block is a block");
        let config = config_from_genesis(&genesis).expect("fuzz/fixtures/genesis.block is a genesis block");
        let now = FIXTURE_NOW.trim().parse().expect("fuzz/fixtures/now.txt is a unix time");
        config.validate_at(now).expect("the fixture channel is valid at fuzz/fixtures/now.txt");
        Fixture {
            trust: ChannelTrust::new(&config).expect("fixture trust"),
            keys: ConsenterKeys::new(&config).expect("fixture consenter keys"),
            validator: EnvelopeValidator::new(&config, Default::default()).expect("fixture validator"),
            genesis,
            config,
            now,
        }
    })
}

/// Polls a future that never waits (readers over byte slices) to completion.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..1_000 {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("a read over a byte slice did not complete");
}

// ----- consensus protocol frames -------------------------------------------

/// `consensus::Frame::decode` (every body, every authenticator) with the
/// default and with tight limits; whatever decodes re-encodes to the same
/// bytes, and its authenticator is checked as a replica would.
pub fn consensus_frame(data: &[u8]) {
    if let Ok(frame) = Frame::decode(data, &Limits::default()) {
        assert_eq!(frame.encode(), data, "a decoded frame re-encodes to exactly its bytes");
        let ring = ring();
        for me in MEMBERS {
            let _ = auth::open(&frame, me, &ring.mac_keys(me), &ring.signer(me));
        }
        let _ = frame.body.kind();
    }
    let tight =
        Limits { envelope_bytes_max: 64, batch_envelopes_max: 3, members_max: 4, claims_max: 3, channel_bytes_max: 8 };
    if let Ok(frame) = Frame::decode(data, &tight) {
        assert_eq!(frame.encode(), data);
    }
}

// ----- records read back from storage ----------------------------------------

/// `Durable::decode`, `consensus::Block::decode`, `Certificate::from_bytes`
/// (what `storage.rs` reads back), then a replica restored from the records
/// in `data` (split by a 2-byte length before each record) must start and
/// take a few steps.
pub fn durable(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(record) = Durable::decode(data, &limits) {
        assert_eq!(Durable::decode(&record.encode(), &limits).as_ref(), Ok(&record), "records round-trip");
    }
    if let Ok(block) = Block::decode(data, &limits) {
        assert_eq!(block.encode(), data, "a stored block re-encodes to its bytes");
    }
    if let Ok(cert) = Certificate::from_bytes(data, &limits) {
        assert_eq!(cert.to_bytes(), data, "a stored certificate re-encodes to its bytes");
    }
    let mut records = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && records.len() < 64 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        if let Ok(record) = Durable::decode(&rest[2..2 + len], &limits) {
            records.push(record);
        }
        rest = &rest[2 + len..];
    }
    if records.is_empty() {
        return;
    }
    // The node's restart path: a replica from genesis and the stored records.
    let ring = ring();
    let me = 2;
    let Ok(mut replica) = Replica::new(
        replica_config(me),
        Box::new(ring.signer(me)),
        ring.mac_keys(me),
        Box::new(SimValidator),
        Tip::genesis(GENESIS_HASH),
        &records,
    ) else {
        return;
    };
    for _ in 0..3 {
        replica.step(Input::Tick);
    }
}

// ----- cluster link frames -----------------------------------------------------

/// `net::frame::read_frame` over a stream of frames (the first byte picks
/// the frame size limit), and `decode_control`; every frame read re-encodes
/// to the bytes it was read from.
pub fn link_frame(data: &[u8]) {
    let Some((&sel, stream)) = data.split_first() else { return };
    let max = orderer::net::frame::FRAME_BYTES_MIN + usize::from(sel) * 8;
    let mut reader = stream;
    for _ in 0..256 {
        let before = reader;
        match ready(read_frame(&mut reader, max)) {
            Ok(Some(frame)) => {
                let consumed = &before[..before.len() - reader.len()];
                let again = match frame {
                    orderer::net::frame::Frame::Data { channel, payload } => {
                        assert!(1 + channel.len() + payload.len() <= max, "a frame over the limit was read");
                        let mut wire = encode_header(&channel, payload.len(), max).expect("a read frame re-encodes");
                        wire.extend_from_slice(&payload);
                        wire
                    }
                    orderer::net::frame::Frame::Ping(nonce) => encode_control(false, nonce).to_vec(),
                    orderer::net::frame::Frame::Pong(nonce) => encode_control(true, nonce).to_vec(),
                };
                assert_eq!(again, consumed, "a frame re-encodes to the bytes it was read from");
            }
            Ok(None) | Err(_) => break,
        }
    }
    if let Some(wire) = stream.get(..CONTROL_FRAME_BYTES) {
        let wire: &[u8; CONTROL_FRAME_BYTES] = wire.try_into().expect("length checked");
        let _ = decode_control(wire);
    }
}

// ----- what a channel task receives from a peer --------------------------------

/// `node::channel::Wire::decode` (consensus frame, fetch request, fetch
/// response with stored-format blocks and certificates); whatever decodes
/// re-encodes to the same bytes, and fetched blocks are fed to a replica.
pub fn channel_wire(data: &[u8]) {
    let limits = Limits::default();
    let Ok(wire) = Wire::decode(data, &limits) else { return };
    assert_eq!(wire.encode(), data, "a decoded wire message re-encodes to its bytes");
    match wire {
        Wire::Consensus(bytes) => {
            let _ = Frame::decode(&bytes, &limits);
        }
        Wire::FetchRequest { .. } => {}
        Wire::FetchResponse(blocks) => {
            let ring = ring();
            let me = 2;
            let mut replica = Replica::new(
                replica_config(me),
                Box::new(ring.signer(me)),
                ring.mac_keys(me),
                Box::new(SimValidator),
                Tip::genesis(GENESIS_HASH),
                &[],
            )
            .expect("replica config");
            replica.step(Input::Blocks(blocks));
        }
    }
}

// ----- client envelopes (the peer API's submit body) ----------------------------

/// `decode_envelope`, `verify_envelope` against the fixed channel,
/// `inspect_bytes`, and the channel task's `EnvelopeValidator`, which must
/// agree with the API's check on the transaction id.
pub fn envelope(data: &[u8]) {
    let f = fixture();
    let decoded = decode_envelope(data, BYTES_MAX);
    let verified = verify_envelope(data, &f.trust, f.now, BYTES_MAX);
    let _ = channels::inspect::inspect_bytes(data);
    let _ = channels::inspect::envelope_json(data);
    if let Ok(v) = &verified {
        assert!(decoded.is_ok(), "a verified envelope decodes");
        assert_eq!(v.size, data.len());
        let id = parse_tx_id(&v.tx_id).expect("a verified tx id is 64 hex digits");
        // The channel task validates the same bytes again (at its own clock).
        if let Ok(again) = f.validator.validate(data) {
            assert_eq!(again, id, "the API and the channel task agree on the tx id");
        }
        assert_eq!(f.validator.tx_id(data), Some(id));
    } else if data.len() <= BYTES_MAX {
        let _ = f.validator.tx_id(data);
    }
}

// ----- blocks and certificates -------------------------------------------------

/// `Block::decode_bounded`, `BlockCertificate::from_metadata` / `from_block`,
/// certificate verification against the fixed channel's consenters, data
/// hash and link checks, the block's JSON view, `config_from_genesis`, and
/// the client's deliver-stream splitter over the same bytes.
pub fn block(data: &[u8]) {
    let f = fixture();
    let _ = BlockCertificate::from_metadata(data);
    if let Ok(block) = PbBlock::decode_bounded(data, BYTES_MAX) {
        let _ = verify_data_hash(&block);
        let _ = verify_link(&f.genesis, &block);
        if let Ok(cert) = BlockCertificate::from_block(&block) {
            // Every certificate decodes from what it encodes to.
            assert_eq!(BlockCertificate::from_metadata(&cert.to_metadata()).as_ref(), Ok(&cert));
        }
        let verified = f.keys.verify(&block, None);
        if let Ok(cert) = &verified {
            assert!(cert.signatures.len() >= f.config.quorum(), "a verified certificate has a quorum");
            let _ = f.keys.verify(&block, Some(cert.epoch));
        }
        let _ = channels::inspect::block_json(&block);
        let _ = config_from_genesis(&block);
    }
    // `orderer client deliver`: 4-byte length + block, split across reads.
    let mut buf = Vec::new();
    for chunk in data.chunks(7) {
        for frame in orderer::node::client::deliver_frames(&mut buf, chunk) {
            let _ = PbBlock::decode_bounded(&frame, BYTES_MAX);
        }
    }
}

// ----- channel configuration (the admin API's join body) ------------------------

/// First byte even: `ChannelConfig::from_canonical_bytes` of the rest; odd:
/// a genesis block through `config_from_genesis`. A configuration that
/// decodes is validated at the fixture time and goes through what joining a
/// channel derives from it (consensus parameters, MAC keys, trust, consenter
/// keys, envelope validator).
pub fn channel_config(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let config = if mode & 1 == 0 {
        let Ok(config) = ChannelConfig::from_canonical_bytes(rest) else { return };
        assert_eq!(config.to_canonical_bytes(), rest, "a canonical configuration re-encodes to its bytes");
        config
    } else {
        let Ok(block) = PbBlock::decode_bounded(rest, BYTES_MAX) else { return };
        let Ok(config) = config_from_genesis(&block) else { return };
        config
    };
    let f = fixture();
    let _ = config.validate_structure();
    let valid = config.validate_at(f.now).is_ok();
    let _ = config.quorum();
    for c in config.consenters.iter().take(4) {
        let _ = identity::consensus_config(&config, c.id, 1, [0; 32], 100, 1000);
        let secret = x25519_dalek::StaticSecret::from([c.id as u8; 32]);
        let _ = identity::mac_keys(&config, 1, c.id, &secret);
    }
    if valid || mode & 2 != 0 {
        let _ = ChannelTrust::new(&config);
        let _ = ConsenterKeys::new(&config);
        let _ = EnvelopeValidator::new(&config, Default::default());
    }
}

// ----- the peer API over HTTP --------------------------------------------------

mod api_harness {
    use std::sync::{Arc, Mutex, OnceLock, RwLock};
    use std::time::Duration;

    use axum::extract::connect_info::MockConnectInfo;
    use orderer::consensus::{Crypto, MacKeys, ReplicaId};
    use orderer::node::api::{peer_router, ApiState, ChannelEntry, Peer};
    use orderer::node::channel::{spawn, ChannelParams, Transport};
    use orderer::node::identity::{consensus_config, EnvelopeValidator, VerifiedCache};
    use orderer::storage::Store;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
    use tokio::sync::mpsc;

    struct NoTransport;
    impl Transport for NoTransport {
        fn send(&self, _: ReplicaId, _: &str, _: Vec<u8>) {}
        fn broadcast(&self, _: &str, _: Vec<u8>) {}
    }

    struct NoCrypto;
    impl Crypto for NoCrypto {
        fn sign(&self, _: &[u8]) -> Vec<u8> {
            Vec::new()
        }
        fn verify(&self, _: ReplicaId, _: &[u8], _: &[u8]) -> bool {
            false
        }
    }

    /// The server's end of an in-memory connection, counting every read and
    /// write the server attempts (to tell when it has nothing left to do).
    struct Counted(DuplexStream);

    static SERVER_IO: AtomicU64 = AtomicU64::new(0);

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            SERVER_IO.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            SERVER_IO.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.0).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            SERVER_IO.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            SERVER_IO.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    /// Hands in-memory connections to `axum::serve`.
    struct Duplexes(mpsc::UnboundedReceiver<DuplexStream>);

    impl axum::serve::Listener for Duplexes {
        type Io = Counted;
        type Addr = std::net::SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            match self.0.recv().await {
                Some(io) => (Counted(io), ([127, 0, 0, 1], 1).into()),
                None => std::future::pending().await,
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            Ok(([127, 0, 0, 1], 0).into())
        }
    }

    pub struct Server {
        rt: tokio::runtime::Runtime,
        connect: mpsc::UnboundedSender<DuplexStream>,
    }

    /// The real peer router (submit, block, deliver) for the fixed channel,
    /// behind a client certificate of Org1, served on in-memory connections.
    /// The channel task is stopped once started: the API answers as for a
    /// channel that is shutting down, so no request leaves anything behind.
    pub fn server() -> &'static Mutex<Server> {
        static SERVER: OnceLock<Mutex<Server>> = OnceLock::new();
        SERVER.get_or_init(|| {
            let f = super::fixture();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (connect, accepted) = mpsc::unbounded_channel();
            rt.block_on(async {
                let dir = std::env::temp_dir().join(format!("bftorderer-fuzz-api-{}", std::process::id()));
                let store = Arc::new(Store::open(&dir.join("store.redb")).expect("a store in a temporary folder"));
                let _ = std::fs::remove_dir_all(&dir);
                let genesis_hash = f.genesis.header.as_ref().map(|h| h.hash()).unwrap_or_default();
                let verified = Arc::new(VerifiedCache::default());
                let (handle, task) = spawn(ChannelParams {
                    config: consensus_config(&f.config, 1, 1, genesis_hash, 100, 1000).unwrap(),
                    crypto: Box::new(NoCrypto),
                    macs: MacKeys::new(Default::default()),
                    validator: Box::new(EnvelopeValidator::new(&f.config, verified.clone()).unwrap()),
                    store: store.clone(),
                    transport: Arc::new(NoTransport),
                    tick: Duration::from_secs(3600),
                    queue_max: 16,
                    audit_signer: None,
                })
                .expect("the channel task starts");
                handle.stop().await;
                let _ = task.await;
                let entry = ChannelEntry {
                    handle,
                    verified,
                    config: f.config.clone(),
                    trust: channels::envelope::ChannelTrust::new(&f.config).unwrap(),
                    tls_clients: ca_tools::IdentityVerifier::tls(f.config.org_trust().unwrap()),
                    genesis: f.genesis.clone(),
                    epoch: 1,
                    body_bytes_max: super::BYTES_MAX,
                };
                let channels =
                    Arc::new(RwLock::new([(f.config.channel_id.clone(), Arc::new(entry))].into_iter().collect()));
                let peer =
                    Peer { addr: ([127, 0, 0, 1], 1).into(), cert_der: Some(super::FIXTURE_CLIENT_TLS.to_vec()) };
                let router = peer_router(ApiState { channels, store }, super::BYTES_MAX).layer(MockConnectInfo(peer));
                tokio::spawn(async move {
                    let _ = axum::serve(Duplexes(accepted), router).await;
                });
            });
            Mutex::new(Server { rt, connect })
        })
    }

    /// Sends `request` on a new connection, lets the server work until it
    /// stops touching the connection (it answered, or waits for more), then
    /// closes the sending side; returns what the server answered before it
    /// closed the connection. (Closing at once would cancel requests in
    /// flight: hyper drops a request whose connection ends mid-message.)
    pub fn exchange(request: &[u8]) -> Vec<u8> {
        let server = server().lock().unwrap_or_else(|e| e.into_inner());
        let (mut client, end) = tokio::io::duplex(1 << 16);
        server.connect.send(end).expect("the server accepts connections");
        server.rt.block_on(async move {
            let talk = async {
                let _ = client.write_all(request).await;
                let mut quiet = 0;
                let mut last = SERVER_IO.load(Ordering::Relaxed);
                while quiet < 16 {
                    tokio::task::yield_now().await;
                    let now = SERVER_IO.load(Ordering::Relaxed);
                    quiet = if now == last { quiet + 1 } else { 0 };
                    last = now;
                }
                let _ = client.shutdown().await;
                let mut answer = Vec::new();
                let _ = client.read_to_end(&mut answer).await;
                answer
            };
            tokio::time::timeout(Duration::from_secs(20), talk).await.expect("the API answers and closes within 20 s")
        })
    }
}

/// Raw HTTP/1.1 bytes on one connection to the real peer API router
/// (`POST .../envelopes[?wait=commit]`, `GET .../blocks/{spec}[?format=json]`,
/// `GET .../deliver?start=&stop=`) of the fixed channel: hyper's parser,
/// axum's extractors (path, query, body limit) and our handlers down to the
/// envelope check. Every request that the server answers gets an HTTP
/// answer; none may panic or hang.
pub fn api(data: &[u8]) {
    let answer = api_harness::exchange(data);
    if !answer.is_empty() {
        assert!(answer.starts_with(b"HTTP/1."), "the API answers in HTTP: {:?}", String::from_utf8_lossy(&answer));
    }
}

// ----- one replica, an arbitrary sequence of inputs ----------------------------

pub const MEMBERS: [ReplicaId; 4] = [1, 2, 3, 4];
pub const CHANNEL: &str = "fz";
pub const EPOCH: u64 = 1;
pub const GENESIS_HASH: Digest = [7; 32];
pub const WINDOW: u64 = 4;
pub const INTERVAL: u64 = 2;

/// The replica target's keys (4 consenters, channel `fz`, epoch 1).
pub fn ring() -> &'static Arc<Keyring> {
    static RING: OnceLock<Arc<Keyring>> = OnceLock::new();
    RING.get_or_init(|| Keyring::new(&MEMBERS, 7))
}

/// Small windows and timeouts, so that short inputs reach checkpoints, view
/// changes and state transfer.
pub fn replica_config(me: ReplicaId) -> Config {
    Config {
        channel: CHANNEL.into(),
        epoch: EPOCH,
        me,
        members: MEMBERS.to_vec(),
        epoch_base: 0,
        genesis_hash: GENESIS_HASH,
        window: WINDOW,
        checkpoint_interval: INTERVAL,
        batch_count_max: 2,
        batch_bytes_max: 4096,
        batch_bytes_preferred: 1,
        batch_timeout_ticks: 1,
        cut_when_idle: true,
        forward_timeout_ticks: 4,
        complain_timeout_ticks: 30,
        view_change_timeout_ticks: 12,
        heartbeat_interval_ticks: 3,
        heartbeat_timeout_ticks: 10,
        resend_interval_ticks: 5,
        pool_max: 8,
        dedup_window_blocks: 6,
        limits: Limits::default(),
        #[cfg(feature = "mutants")]
        mutant: None,
    }
}

/// Reads the fuzz input; `None` at the end stops the program.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        a.to_vec()
    }

    fn u64(&mut self) -> u64 {
        let mut a = [0u8; 8];
        let b = self.take(8);
        a[..b.len()].copy_from_slice(&b);
        u64::from_be_bytes(a)
    }
}

/// One replica under test and what it has shown so far.
pub struct Program {
    pub me: ReplicaId,
    pub replica: Replica,
    /// Its durable records (compacted as the node's store is).
    pub store: Vec<Durable>,
    /// Its ledger (Commit outputs) and certificates.
    pub ledger: Vec<Block>,
    pub certs: BTreeMap<Seq, Certificate>,
    /// Every vote it persisted, across restarts.
    votes: HashMap<(VoteKind, View, Seq), Digest>,
    /// Batches and digests seen in its messages or made up here.
    batches: Vec<Batch>,
    digests: Vec<Digest>,
    /// Its most recent frames.
    pub frames: Vec<Vec<u8>>,
    pub steps: u64,
}

fn remember<T: PartialEq>(list: &mut Vec<T>, item: T, max: usize) {
    if !list.contains(&item) {
        if list.len() >= max {
            list.remove(0);
        }
        list.push(item);
    }
}

impl Program {
    fn new(me: ReplicaId) -> Self {
        Program {
            me,
            replica: Self::start(me, &[], &[], &BTreeMap::new()),
            store: Vec::new(),
            ledger: Vec::new(),
            certs: BTreeMap::new(),
            votes: HashMap::new(),
            batches: vec![Batch::empty()],
            digests: vec![Batch::empty().digest()],
            frames: Vec::new(),
            steps: 0,
        }
    }

    /// (Re)starts the replica from its ledger and records, as the node does.
    fn start(me: ReplicaId, store: &[Durable], ledger: &[Block], certs: &BTreeMap<Seq, Certificate>) -> Replica {
        let cfg = replica_config(me);
        let executed = ledger.len() as Seq;
        let header_hash = ledger.last().map_or(GENESIS_HASH, |b| b.header_hash);
        let recent = ledger
            .iter()
            .rev()
            .take(cfg.dedup_window_blocks as usize)
            .rev()
            .map(|b| (b.number, b.envelopes.iter().filter_map(|e| SimValidator.tx_id(e)).collect()))
            .collect();
        let stable = store
            .iter()
            .filter_map(|r| match r {
                Durable::Stable(c) if c.seq <= executed => Some(c.clone()),
                _ => None,
            })
            .max_by_key(|c| c.seq)
            .unwrap_or(Certificate { seq: 0, header_hash: GENESIS_HASH, signatures: vec![] });
        let uncertified =
            ledger.iter().filter(|b| !certs.contains_key(&b.number)).map(|b| (b.number, b.header_hash)).collect();
        let tip = Tip { executed, header_hash, recent, stable, uncertified, announced: vec![], reconfigured: None };
        let ring = ring();
        Replica::new(cfg, Box::new(ring.signer(me)), ring.mac_keys(me), Box::new(SimValidator), tip, store)
            .expect("the replica restarts from what it persisted")
    }

    fn others(&self) -> Vec<ReplicaId> {
        MEMBERS.iter().copied().filter(|m| *m != self.me).collect()
    }

    /// Feeds one input and checks what came out.
    fn step(&mut self, input: Input) {
        self.steps += 1;
        let outputs = self.replica.step(input);
        assert!(outputs.len() <= 10_000, "one input produced {} outputs", outputs.len());
        for o in outputs {
            match o {
                Output::Persist(records) => {
                    let stable = records.iter().any(|r| matches!(r, Durable::Stable(_)));
                    for r in &records {
                        if let Durable::Vote { kind, view, seq, digest } = r {
                            if let Some(before) = self.votes.insert((*kind, *view, *seq), *digest) {
                                assert_eq!(
                                    before, *digest,
                                    "replica {} voted twice, differently, for {kind:?} view {view} seq {seq}",
                                    self.me
                                );
                            }
                        }
                    }
                    self.store.extend(records);
                    if stable {
                        compact(&mut self.store);
                    }
                }
                Output::Commit(block) => {
                    let previous = self.ledger.last().map_or(GENESIS_HASH, |b| b.header_hash);
                    assert_eq!(block.number, self.ledger.len() as Seq + 1, "blocks commit in order");
                    assert_eq!(block.previous_hash, previous, "blocks chain");
                    let data_hash = channels::block::data_hash(&block.envelopes);
                    assert_eq!(block.data_hash, data_hash);
                    assert_eq!(block.header_hash, channels::block::header_hash(block.number, &previous, &data_hash));
                    self.ledger.push(block);
                }
                Output::Certified(cert) => {
                    if let Some(b) = self.ledger.get((cert.seq as usize).wrapping_sub(1)) {
                        assert_eq!(b.header_hash, cert.header_hash, "a certificate for a block it committed");
                    }
                    self.certs.insert(cert.seq, cert);
                }
                Output::Send { frame, .. } | Output::Broadcast { frame } => {
                    let decoded = Frame::decode(&frame, &Limits::default()).expect("its own frames decode");
                    match decoded.body {
                        Body::PrePrepare { batch, .. } => {
                            remember(&mut self.digests, batch.digest(), 16);
                            remember(&mut self.batches, batch, 16);
                        }
                        Body::Prepare { digest, .. } | Body::Commit { digest, .. } => {
                            remember(&mut self.digests, digest, 16)
                        }
                        _ => {}
                    }
                    remember(&mut self.frames, frame, 8);
                }
                Output::Fetch { .. }
                | Output::Admitted { .. }
                | Output::Refused { .. }
                | Output::ViewChangeStarted { .. }
                | Output::NewViewInstalled { .. }
                | Output::Dropped { .. }
                | Output::ForkDetected { .. }
                | Output::EpochEnded { .. }
                | Output::Evidence(_) => {}
            }
        }
    }

    fn envelope(k: u8) -> Vec<u8> {
        let e = make_envelope(1 + u32::from(k >> 4 & 1), u64::from(k & 0x0f), 8);
        match k >> 5 {
            // A bad client tag, or too short to have a tx id.
            6 => {
                let mut e = e;
                let last = e.len() - 1;
                e[last] ^= 1;
                e
            }
            7 => e[..12].to_vec(),
            _ => e,
        }
    }

    fn batch(&mut self, b: &mut Bytes) -> Option<Batch> {
        let sel = b.u8()?;
        if sel >= 0xF0 && !self.batches.is_empty() {
            return Some(self.batches[usize::from(sel) % self.batches.len()].clone());
        }
        let mut envelopes = Vec::new();
        for _ in 0..sel % 4 {
            envelopes.push(Self::envelope(b.u8()?));
        }
        let batch = Batch { envelopes };
        remember(&mut self.digests, batch.digest(), 16);
        remember(&mut self.batches, batch.clone(), 16);
        Some(batch)
    }

    fn view(&self, b: &mut Bytes) -> Option<View> {
        let sel = b.u8()?;
        let cur = self.replica.view();
        Some(match sel {
            0xF8..=0xFF => b.u64(),
            _ => cur.saturating_add(u64::from(sel % 4)).saturating_sub(u64::from(sel >> 2 & 1)),
        })
    }

    fn seq(&self, b: &mut Bytes) -> Option<Seq> {
        let sel = b.u8()?;
        Some(match sel {
            0xF8..=0xFF => b.u64(),
            _ => self.replica.stable_seq() + u64::from(sel) % (WINDOW + 3),
        })
    }

    fn digest(&self, b: &mut Bytes) -> Option<Digest> {
        let sel = b.u8()?;
        Some(match sel {
            0xFF => {
                let mut d = [0u8; 32];
                let raw = b.take(32);
                d[..raw.len()].copy_from_slice(&raw);
                d
            }
            0xF0..=0xFE => [sel; 32],
            _ => self.digests[usize::from(sel) % self.digests.len()],
        })
    }

    /// A sender: one of the others mostly, sometimes itself or a stranger.
    fn sender(&self, b: &mut Bytes) -> Option<ReplicaId> {
        let sel = b.u8()?;
        let others = self.others();
        Some(match sel {
            0xFE => self.me,
            0xFF => 9,
            _ => others[usize::from(sel) % others.len()],
        })
    }

    /// A frame from `from` to this replica, authenticated with `from`'s keys.
    fn frame(&self, from: ReplicaId, body: Body) -> Vec<u8> {
        let ring = ring();
        seal(CHANNEL, EPOCH, from, body, &[self.me], &ring.mac_keys(from), &ring.signer(from)).encode()
    }

    /// A certificate of (seq, header) signed by the others in `mask`.
    fn certify(&self, seq: Seq, header_hash: Digest, mask: u8) -> Certificate {
        let bytes = channels::block::certificate_signing_bytes(CHANNEL, EPOCH, seq, &header_hash);
        let signatures = self
            .others()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, id)| (id, ring().signer(id).sign(&bytes)))
            .collect();
        Certificate { seq, header_hash, signatures }
    }

    /// A stable checkpoint to claim: genesis, the replica's, one it
    /// certified, or one made up (signed by the others in a mask).
    fn checkpoint(&self, b: &mut Bytes) -> Option<Certificate> {
        let sel = b.u8()?;
        let genesis = Certificate { seq: 0, header_hash: GENESIS_HASH, signatures: vec![] };
        Some(match sel % 4 {
            0 => genesis,
            1 => self
                .certs
                .values()
                .filter(|c| c.seq % INTERVAL == 0)
                .nth(usize::from(sel >> 2))
                .cloned()
                .unwrap_or(genesis),
            2 => {
                let seq = self.replica.stable_seq();
                let header = self.ledger.get((seq as usize).wrapping_sub(1)).map_or(GENESIS_HASH, |b| b.header_hash);
                if seq == 0 {
                    genesis
                } else {
                    self.certify(seq, header, 0xFF)
                }
            }
            _ => {
                let seq = INTERVAL * u64::from(b.u8()? % 8);
                let header = match self.ledger.get((seq as usize).wrapping_sub(1)) {
                    Some(block) if sel & 4 == 0 => block.header_hash,
                    _ => [b.u8()?; 32],
                };
                self.certify(seq, header, b.u8()?)
            }
        })
    }

    fn view_change(&mut self, b: &mut Bytes, new_view: View) -> Option<ViewChange> {
        let checkpoint = self.checkpoint(b)?;
        let h = checkpoint.seq;
        let shape = b.u8()?;
        let mut prepared = Vec::new();
        for _ in 0..shape % 3 {
            let seq = h + 1 + u64::from(b.u8()?) % (WINDOW + 1);
            let view = new_view.saturating_sub(1 + u64::from(b.u8()? % 2));
            prepared.push(PreparedClaim { seq, view, batch: self.batch(b)? });
        }
        // A pre-prepared claim for every prepared one (unless a flag says
        // otherwise), and a few more.
        let mut preprepared: Vec<PrePreparedClaim> = prepared
            .iter()
            .filter(|_| shape & 0x40 == 0)
            .map(|p| PrePreparedClaim { seq: p.seq, view: p.view, digest: p.batch.digest() })
            .collect();
        for _ in 0..(shape >> 2) % 3 {
            let seq = h + 1 + u64::from(b.u8()?) % (WINDOW + 1);
            let view = new_view.saturating_sub(1 + u64::from(b.u8()? % 2));
            preprepared.push(PrePreparedClaim { seq, view, digest: self.digest(b)? });
        }
        Some(ViewChange { new_view, checkpoint, prepared, preprepared })
    }

    fn signed(&self, sender: ReplicaId, vc: ViewChange) -> SignedViewChange {
        let bytes = Frame::authenticated_bytes(CHANNEL, EPOCH, sender, &Body::ViewChange(vc.clone()));
        SignedViewChange { sender, signature: ring().signer(sender).sign(&bytes), view_change: vc }
    }

    /// Blocks for state transfer: the next ones, certified (or not quite),
    /// or old ones.
    fn blocks(&mut self, b: &mut Bytes) -> Option<Vec<CertifiedBlock>> {
        let count = 1 + b.u8()? % 3;
        let mut number = self.replica.executed() + 1;
        let mut previous = self.ledger.last().map_or(GENESIS_HASH, |b| b.header_hash);
        let mut out = Vec::new();
        for _ in 0..count {
            let kind = b.u8()?;
            if kind % 4 == 3 && !self.ledger.is_empty() {
                let old = &self.ledger[usize::from(kind >> 2) % self.ledger.len()];
                let certificate = self.certify(old.number, old.header_hash, b.u8()?);
                out.push(CertifiedBlock { block: old.clone(), certificate });
                continue;
            }
            let envelopes: Vec<Vec<u8>> = (0..kind >> 2 & 3).map(|i| Self::envelope(kind.wrapping_add(i))).collect();
            let data_hash = channels::block::data_hash(&envelopes);
            let header_hash = channels::block::header_hash(number, &previous, &data_hash);
            let mut block = Block { number, previous_hash: previous, data_hash, header_hash, envelopes };
            let mask = if kind % 4 == 1 { b.u8()? } else { 0xFF };
            let mut certificate = self.certify(number, header_hash, mask);
            if kind % 4 == 2 {
                // Something wrong: the hashes, the number or the certificate.
                match b.u8()? % 4 {
                    0 => block.data_hash[0] ^= 1,
                    1 => block.number += 1,
                    2 => certificate.header_hash[0] ^= 1,
                    _ => block.envelopes.push(Self::envelope(0)),
                }
            }
            out.push(CertifiedBlock { block, certificate });
            previous = header_hash;
            number += 1;
        }
        Some(out)
    }

    /// Runs one instruction; `None` at the end of the input.
    fn instruction(&mut self, b: &mut Bytes) -> Option<()> {
        let op = b.u8()?;
        let input = match op % 16 {
            0 => {
                for _ in 0..1 + op / 16 {
                    self.step(Input::Tick);
                }
                return Some(());
            }
            1 => {
                let len = usize::from(b.u8()?);
                Input::Message(b.take(len))
            }
            2 => {
                let k = b.u8()?;
                Input::Request(if k == 0xFF { b.take(usize::from(op / 16) * 4) } else { Self::envelope(k) })
            }
            3 => {
                let from = self.sender(b)?;
                let (view, seq) = (self.view(b)?, self.seq(b)?);
                // Mostly from the primary of that view.
                let from = if op & 0x10 == 0 { self.replica.primary_of(view) } else { from };
                let batch = self.batch(b)?;
                Input::Message(self.frame(from, Body::PrePrepare { view, seq, batch }))
            }
            4 | 5 => {
                let from = self.sender(b)?;
                let (view, seq, digest) = (self.view(b)?, self.seq(b)?, self.digest(b)?);
                let body =
                    if op % 16 == 4 { Body::Prepare { view, seq, digest } } else { Body::Commit { view, seq, digest } };
                // Several senders at once reach a quorum in one instruction.
                if op & 0x10 != 0 {
                    for other in self.others() {
                        let frame = self.frame(other, body.clone());
                        self.step(Input::Message(frame));
                    }
                    return Some(());
                }
                Input::Message(self.frame(from, body))
            }
            6 => {
                let from = self.sender(b)?;
                let sel = b.u8()?;
                let (seq, header_hash) = match self.ledger.get(usize::from(sel)) {
                    Some(block) if sel < 0xF0 => (block.number, block.header_hash),
                    _ => (self.seq(b)?, self.digest(b)?),
                };
                let bytes = channels::block::certificate_signing_bytes(CHANNEL, EPOCH, seq, &header_hash);
                let mut signature = ring().signer(from).sign(&bytes);
                if op & 0x20 != 0 {
                    signature[0] ^= 1;
                }
                let senders = if op & 0x10 != 0 { self.others() } else { vec![from] };
                for s in senders {
                    let signature = if s == from { signature.clone() } else { ring().signer(s).sign(&bytes) };
                    let frame = self.frame(s, Body::BlockSig { seq, header_hash, signature });
                    self.step(Input::Message(frame));
                }
                return Some(());
            }
            7 => {
                let from = self.sender(b)?;
                let new_view = self.replica.view() + 1 + u64::from(b.u8()? % 3);
                let vc = self.view_change(b, new_view)?;
                Input::Message(self.frame(from, Body::ViewChange(vc)))
            }
            8 => {
                // A new view from its primary, carrying the view changes of
                // the others in a mask (each built from the input).
                let view = match b.u8()? {
                    0xFF => b.u64(),
                    sel => self.replica.view() + 1 + u64::from(sel % 3),
                };
                let mask = b.u8()?;
                let base = self.view_change(b, view)?;
                let mut view_changes = Vec::new();
                for (i, sender) in self.others().into_iter().enumerate() {
                    if mask & (1 << i) == 0 {
                        continue;
                    }
                    let vc = if mask & (0x10 << i) != 0 { self.view_change(b, view)? } else { base.clone() };
                    view_changes.push(self.signed(sender, vc));
                }
                let from = if op & 0x10 == 0 { self.replica.primary_of(view) } else { self.sender(b)? };
                Input::Message(self.frame(from, Body::NewView(NewView { view, view_changes })))
            }
            9 => {
                let from = self.sender(b)?;
                let count = b.u8()? % 4;
                let envelopes = (0..count).map(|_| b.u8().map(Self::envelope)).collect::<Option<Vec<_>>>()?;
                Input::Message(self.frame(from, Body::Forward { envelopes }))
            }
            10 => {
                let from = self.sender(b)?;
                let view = self.view(b)?;
                let executed = match b.u8()? {
                    0xFF => b.u64(),
                    d => self.replica.executed() + u64::from(d % 8),
                };
                let from = if op & 0x10 == 0 { self.replica.primary_of(view) } else { from };
                Input::Message(self.frame(from, Body::Heartbeat { view, executed }))
            }
            11 => Input::Blocks(self.blocks(b)?),
            12 => {
                // A crash and restart from the ledger and the records.
                self.replica = Self::start(self.me, &self.store, &self.ledger, &self.certs);
                return Some(());
            }
            13 => {
                // One of its own frames: back to it, altered, or re-sent as
                // another sender's (the authenticator no longer matches).
                if self.frames.is_empty() {
                    return Some(());
                }
                let i = usize::from(b.u8()?) % self.frames.len();
                let mut frame = self.frames[i].clone();
                match op >> 4 {
                    0..=7 => {
                        let at = usize::from(b.u8()?) * 7 % frame.len();
                        frame[at] ^= b.u8()? | 1;
                    }
                    8..=11 => {
                        if let Ok(mut f) = Frame::decode(&frame, &Limits::default()) {
                            f.sender = self.sender(b)?;
                            frame = f.encode();
                        }
                    }
                    _ => {}
                }
                Input::Message(frame)
            }
            14 => {
                // Right keys, wrong channel or epoch; or a signed fast-path message.
                let from = self.sender(b)?;
                let body = Body::Heartbeat { view: self.replica.view(), executed: 0 };
                let ring = ring();
                let (channel, epoch) = match op >> 4 & 3 {
                    0 => ("other", EPOCH),
                    1 => (CHANNEL, EPOCH + 1),
                    2 => (CHANNEL, EPOCH - 1),
                    _ => (CHANNEL, EPOCH),
                };
                let mut frame = seal(channel, epoch, from, body, &[self.me], &ring.mac_keys(from), &ring.signer(from));
                if op >> 6 != 0 {
                    let bytes = Frame::authenticated_bytes(&frame.channel, frame.epoch, frame.sender, &frame.body);
                    frame.auth = Auth::Signature(ring.signer(from).sign(&bytes));
                }
                Input::Message(frame.encode())
            }
            _ => {
                // A canonical but arbitrary body, MAC'd or signed by a sender.
                let from = self.sender(b)?;
                let len = usize::from(b.u8()?);
                let raw = b.take(len);
                let Ok(frame) = Frame::decode(&raw, &Limits::default()) else {
                    let mut w = Writer::new();
                    w.bytes(CHANNEL.as_bytes()).u64(EPOCH).u32(from).raw(&raw);
                    self.step(Input::Message(w.finish()));
                    return Some(());
                };
                Input::Message(self.frame(from, frame.body))
            }
        };
        self.step(input);
        Some(())
    }
}

/// Runs one replica (the first byte picks which of 4) over the instructions
/// encoded in `data`: raw messages, ticks, requests, and well-formed
/// messages authenticated with the other three replicas' keys (pre-prepares,
/// prepares and commits, block signatures, view changes, new views with
/// signed view changes, forwards, heartbeats), certified blocks for state
/// transfer, crash-restarts from what it persisted, replays and alterations
/// of its own frames. The others may all be Byzantine: the replica must
/// not panic, must never vote twice differently for one (kind, view, seq)
/// across restarts, and must commit one hash chain.
pub fn replica(data: &[u8]) -> u64 {
    run_program(data).map_or(0, |p| p.steps)
}

/// [`replica`], returning the program's final state (for the seed generator).
pub fn run_program(data: &[u8]) -> Option<Program> {
    let (&first, rest) = data.split_first()?;
    let mut program = Program::new(1 + u32::from(first % 4));
    let mut input = Bytes(rest);
    while program.instruction(&mut input).is_some() {}
    Some(program)
}

/// Encodes a program for [`replica`] from (opcode, operands) pairs; used by
/// the seed generator.
pub fn program(me_index: u8, instructions: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![me_index];
    for i in instructions {
        out.extend_from_slice(i);
    }
    out
}

//! Protocol messages and their canonical encoding.
//!
//! A [`Frame`] is what travels between consenters: the channel, the epoch and
//! the sender, a [`Body`], and an authenticator. The authenticated bytes
//! ([`Frame::authenticated_bytes`]) are a domain prefix followed by the
//! channel, epoch, sender and the body's canonical encoding, so no MAC or
//! signature is ever valid for another channel, epoch or sender.

use sha2::{Digest as _, Sha256};

use super::codec::{DecodeError, Reader, Writer};

/// A consenter's id, as listed in the channel configuration.
pub type ReplicaId = u32;
/// A view number; the primary of view `v` is `members[v % n]`.
pub type View = u64;
/// A sequence number, equal to the block number it orders.
pub type Seq = u64;
/// A key epoch.
pub type Epoch = u64;
/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Domain prefix of every authenticated protocol message.
pub const MESSAGE_DOMAIN: &[u8] = b"bftorderer/consensus/v1\0";
/// Domain prefix of a batch digest.
pub const BATCH_DOMAIN: &[u8] = b"bftorderer/batch/v1\0";

/// Bounds applied while decoding bytes from the network.
#[derive(Clone, Debug)]
pub struct Limits {
    pub envelope_bytes_max: usize,
    pub batch_envelopes_max: usize,
    pub members_max: usize,
    pub claims_max: usize,
    pub channel_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            envelope_bytes_max: 4 * 1024 * 1024,
            batch_envelopes_max: 10_000,
            members_max: 64,
            claims_max: 1024,
            channel_bytes_max: 249,
        }
    }
}

/// An ordered list of envelopes proposed for one sequence number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub envelopes: Vec<Vec<u8>>,
}

impl Batch {
    /// The empty batch, proposed as the "null request" for a sequence number
    /// a new view cannot fill.
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn digest(&self) -> Digest {
        let mut h = Sha256::new();
        h.update(BATCH_DOMAIN);
        h.update((self.envelopes.len() as u32).to_be_bytes());
        for e in &self.envelopes {
            h.update((e.len() as u32).to_be_bytes());
            h.update(e);
        }
        h.finalize().into()
    }

    pub fn bytes(&self) -> usize {
        self.envelopes.iter().map(Vec::len).sum()
    }

    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.envelopes.len() as u32);
        for e in &self.envelopes {
            w.bytes(e);
        }
    }

    pub fn decode(r: &mut Reader, limits: &Limits) -> Result<Self, DecodeError> {
        let count = r.count("batch", limits.batch_envelopes_max)?;
        let mut envelopes = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            envelopes.push(r.bytes("envelope", limits.envelope_bytes_max)?);
        }
        Ok(Self { envelopes })
    }
}

/// A block certificate: a quorum of consenter signatures over the block's
/// certificate bytes (`channels::block::certificate_signing_bytes`). The
/// certificate of every K-th block is the PBFT checkpoint; the genesis block
/// (seq 0) is certified by the configuration itself and carries no signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub seq: Seq,
    pub header_hash: Digest,
    pub signatures: Vec<(ReplicaId, Vec<u8>)>,
}

impl Certificate {
    pub fn encode(&self, w: &mut Writer) {
        w.u64(self.seq).digest(&self.header_hash);
        w.u32(self.signatures.len() as u32);
        for (id, sig) in &self.signatures {
            w.u32(*id).bytes(sig);
        }
    }

    pub fn decode(r: &mut Reader, limits: &Limits) -> Result<Self, DecodeError> {
        let seq = r.u64()?;
        let header_hash = r.digest()?;
        let count = r.count("certificate signatures", limits.members_max)?;
        let mut signatures = Vec::with_capacity(count);
        for _ in 0..count {
            signatures.push((r.u32()?, r.bytes("signature", 512)?));
        }
        Ok(Self { seq, header_hash, signatures })
    }
}

/// "I prepared `digest` at `seq` in `view`" (the P set of a view change),
/// with the batch so the new primary can re-propose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedClaim {
    pub seq: Seq,
    pub view: View,
    pub batch: Batch,
}

/// "I accepted a pre-prepare for `digest` at `seq` in `view`" (the Q set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrePreparedClaim {
    pub seq: Seq,
    pub view: View,
    pub digest: Digest,
}

/// A signed view-change message (Castro & Liskov, TOCS 2002 §4.5, with the
/// message signed so that the new-view can carry it as proof).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewChange {
    pub new_view: View,
    /// The sender's latest stable checkpoint.
    pub checkpoint: Certificate,
    pub prepared: Vec<PreparedClaim>,
    pub preprepared: Vec<PrePreparedClaim>,
}

/// A view change together with its sender and signature, as carried inside
/// a new-view message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedViewChange {
    pub sender: ReplicaId,
    pub view_change: ViewChange,
    pub signature: Vec<u8>,
}

/// The new primary's proof that view `view` starts: a quorum of signed view
/// changes. Every replica re-runs the selection rules over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewView {
    pub view: View,
    pub view_changes: Vec<SignedViewChange>,
}

/// The protocol messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    PrePrepare {
        view: View,
        seq: Seq,
        batch: Batch,
    },
    Prepare {
        view: View,
        seq: Seq,
        digest: Digest,
    },
    Commit {
        view: View,
        seq: Seq,
        digest: Digest,
    },
    /// A consenter's signature share of a block certificate.
    BlockSig {
        seq: Seq,
        header_hash: Digest,
        signature: Vec<u8>,
    },
    ViewChange(ViewChange),
    NewView(NewView),
    /// Requests a backup forwards to the primary.
    Forward {
        envelopes: Vec<Vec<u8>>,
    },
    /// An idle primary's sign of life.
    Heartbeat {
        view: View,
        executed: Seq,
    },
}

/// The kind of a body, for counting and logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    PrePrepare,
    Prepare,
    Commit,
    BlockSig,
    ViewChange,
    NewView,
    Forward,
    Heartbeat,
}

impl Body {
    pub fn kind(&self) -> Kind {
        match self {
            Body::PrePrepare { .. } => Kind::PrePrepare,
            Body::Prepare { .. } => Kind::Prepare,
            Body::Commit { .. } => Kind::Commit,
            Body::BlockSig { .. } => Kind::BlockSig,
            Body::ViewChange(_) => Kind::ViewChange,
            Body::NewView(_) => Kind::NewView,
            Body::Forward { .. } => Kind::Forward,
            Body::Heartbeat { .. } => Kind::Heartbeat,
        }
    }

    /// Whether the frame carrying this body is signed (slow path) rather
    /// than MAC-authenticated (fast path).
    pub fn is_signed(&self) -> bool {
        match self.kind() {
            Kind::ViewChange | Kind::NewView => true,
            Kind::PrePrepare | Kind::Prepare | Kind::Commit | Kind::BlockSig | Kind::Forward | Kind::Heartbeat => false,
        }
    }

    pub fn encode(&self, w: &mut Writer) {
        match self {
            Body::PrePrepare { view, seq, batch } => {
                w.u8(1).u64(*view).u64(*seq);
                batch.encode(w);
            }
            Body::Prepare { view, seq, digest } => {
                w.u8(2).u64(*view).u64(*seq).digest(digest);
            }
            Body::Commit { view, seq, digest } => {
                w.u8(3).u64(*view).u64(*seq).digest(digest);
            }
            Body::BlockSig { seq, header_hash, signature } => {
                w.u8(4).u64(*seq).digest(header_hash).bytes(signature);
            }
            Body::ViewChange(vc) => {
                w.u8(5);
                encode_view_change(vc, w);
            }
            Body::NewView(nv) => {
                w.u8(6).u64(nv.view).u32(nv.view_changes.len() as u32);
                for svc in &nv.view_changes {
                    w.u32(svc.sender);
                    encode_view_change(&svc.view_change, w);
                    w.bytes(&svc.signature);
                }
            }
            Body::Forward { envelopes } => {
                w.u8(7).u32(envelopes.len() as u32);
                for e in envelopes {
                    w.bytes(e);
                }
            }
            Body::Heartbeat { view, executed } => {
                w.u8(8).u64(*view).u64(*executed);
            }
        }
    }

    pub fn decode(r: &mut Reader, limits: &Limits) -> Result<Self, DecodeError> {
        let tag = r.u8()?;
        Ok(match tag {
            1 => Body::PrePrepare { view: r.u64()?, seq: r.u64()?, batch: Batch::decode(r, limits)? },
            2 => Body::Prepare { view: r.u64()?, seq: r.u64()?, digest: r.digest()? },
            3 => Body::Commit { view: r.u64()?, seq: r.u64()?, digest: r.digest()? },
            4 => Body::BlockSig { seq: r.u64()?, header_hash: r.digest()?, signature: r.bytes("signature", 512)? },
            5 => Body::ViewChange(decode_view_change(r, limits)?),
            6 => {
                let view = r.u64()?;
                let count = r.count("view changes", limits.members_max)?;
                let mut view_changes = Vec::with_capacity(count);
                for _ in 0..count {
                    let sender = r.u32()?;
                    let view_change = decode_view_change(r, limits)?;
                    let signature = r.bytes("signature", 512)?;
                    view_changes.push(SignedViewChange { sender, view_change, signature });
                }
                Body::NewView(NewView { view, view_changes })
            }
            7 => {
                let count = r.count("forwarded envelopes", limits.batch_envelopes_max)?;
                let mut envelopes = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    envelopes.push(r.bytes("envelope", limits.envelope_bytes_max)?);
                }
                Body::Forward { envelopes }
            }
            8 => Body::Heartbeat { view: r.u64()?, executed: r.u64()? },
            tag => return Err(DecodeError::UnknownTag { what: "message", tag }),
        })
    }
}

fn encode_view_change(vc: &ViewChange, w: &mut Writer) {
    w.u64(vc.new_view);
    vc.checkpoint.encode(w);
    w.u32(vc.prepared.len() as u32);
    for p in &vc.prepared {
        w.u64(p.seq).u64(p.view);
        p.batch.encode(w);
    }
    w.u32(vc.preprepared.len() as u32);
    for q in &vc.preprepared {
        w.u64(q.seq).u64(q.view).digest(&q.digest);
    }
}

fn decode_view_change(r: &mut Reader, limits: &Limits) -> Result<ViewChange, DecodeError> {
    let new_view = r.u64()?;
    let checkpoint = Certificate::decode(r, limits)?;
    let count = r.count("prepared claims", limits.claims_max)?;
    let mut prepared = Vec::with_capacity(count);
    for _ in 0..count {
        prepared.push(PreparedClaim { seq: r.u64()?, view: r.u64()?, batch: Batch::decode(r, limits)? });
    }
    let count = r.count("pre-prepared claims", limits.claims_max)?;
    let mut preprepared = Vec::with_capacity(count);
    for _ in 0..count {
        preprepared.push(PrePreparedClaim { seq: r.u64()?, view: r.u64()?, digest: r.digest()? });
    }
    Ok(ViewChange { new_view, checkpoint, prepared, preprepared })
}

/// How a frame is authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// One HMAC-SHA-256 per receiver, under the pairwise session key.
    Macs(Vec<(ReplicaId, Digest)>),
    /// The sender's identity-key signature.
    Signature(Vec<u8>),
}

/// A message as sent between consenters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub channel: String,
    pub epoch: Epoch,
    pub sender: ReplicaId,
    pub body: Body,
    pub auth: Auth,
}

impl Frame {
    /// The bytes covered by the MACs or the signature.
    pub fn authenticated_bytes(channel: &str, epoch: Epoch, sender: ReplicaId, body: &Body) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        w.raw(MESSAGE_DOMAIN).bytes(channel.as_bytes()).u64(epoch).u32(sender);
        body.encode(&mut w);
        w.finish()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        w.bytes(self.channel.as_bytes()).u64(self.epoch).u32(self.sender);
        self.body.encode(&mut w);
        match &self.auth {
            Auth::Macs(macs) => {
                w.u8(1).u32(macs.len() as u32);
                for (id, mac) in macs {
                    w.u32(*id).digest(mac);
                }
            }
            Auth::Signature(sig) => {
                w.u8(2).bytes(sig);
            }
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let channel = String::from_utf8(r.bytes("channel", limits.channel_bytes_max)?)
            .map_err(|_| DecodeError::Invalid { what: "channel name" })?;
        let epoch = r.u64()?;
        let sender = r.u32()?;
        let body = Body::decode(&mut r, limits)?;
        let auth = match r.u8()? {
            1 => {
                let count = r.count("MAC authenticator", limits.members_max)?;
                let mut macs = Vec::with_capacity(count);
                for _ in 0..count {
                    macs.push((r.u32()?, r.digest()?));
                }
                Auth::Macs(macs)
            }
            2 => Auth::Signature(r.bytes("signature", 512)?),
            tag => return Err(DecodeError::UnknownTag { what: "authenticator", tag }),
        };
        r.finish()?;
        Ok(Self { channel, epoch, sender, body, auth })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_bodies() -> Vec<Body> {
        let batch = Batch { envelopes: vec![b"a".to_vec(), b"bc".to_vec()] };
        let cert = Certificate { seq: 4, header_hash: [3; 32], signatures: vec![(1, vec![9; 64])] };
        let vc = ViewChange {
            new_view: 2,
            checkpoint: cert.clone(),
            prepared: vec![PreparedClaim { seq: 5, view: 1, batch: batch.clone() }],
            preprepared: vec![PrePreparedClaim { seq: 5, view: 1, digest: batch.digest() }],
        };
        vec![
            Body::PrePrepare { view: 1, seq: 5, batch: batch.clone() },
            Body::Prepare { view: 1, seq: 5, digest: [1; 32] },
            Body::Commit { view: 1, seq: 5, digest: [1; 32] },
            Body::BlockSig { seq: 5, header_hash: [2; 32], signature: vec![7; 64] },
            Body::ViewChange(vc.clone()),
            Body::NewView(NewView {
                view: 2,
                view_changes: vec![SignedViewChange { sender: 3, view_change: vc, signature: vec![1; 64] }],
            }),
            Body::Forward { envelopes: batch.envelopes.clone() },
            Body::Heartbeat { view: 1, executed: 4 },
        ]
    }

    #[test]
    fn every_message_kind_round_trips_canonically() {
        for body in sample_bodies() {
            let frame = Frame {
                channel: "ch".into(),
                epoch: 3,
                sender: 2,
                auth: if body.is_signed() { Auth::Signature(vec![5; 64]) } else { Auth::Macs(vec![(1, [4; 32])]) },
                body,
            };
            let bytes = frame.encode();
            let back = Frame::decode(&bytes, &Limits::default()).unwrap();
            assert_eq!(back, frame);
            assert_eq!(back.encode(), bytes);
        }
    }

    #[test]
    fn truncated_frames_never_decode() {
        for body in sample_bodies() {
            let frame = Frame { channel: "ch".into(), epoch: 3, sender: 2, body, auth: Auth::Macs(vec![]) };
            let bytes = frame.encode();
            for cut in 0..bytes.len() {
                assert!(Frame::decode(&bytes[..cut], &Limits::default()).is_err());
            }
        }
    }

    #[test]
    fn batch_digest_depends_on_envelope_boundaries() {
        let a = Batch { envelopes: vec![b"ab".to_vec(), b"c".to_vec()] };
        let b = Batch { envelopes: vec![b"a".to_vec(), b"bc".to_vec()] };
        assert_ne!(a.digest(), b.digest());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_frame_decoder(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let _ = Frame::decode(&bytes, &Limits::default());
        }

        #[test]
        fn mutated_valid_frames_decode_or_fail_cleanly(index in 0usize..4096, bit in 0u8..8) {
            for body in sample_bodies() {
                let frame = Frame { channel: "ch".into(), epoch: 1, sender: 2, body, auth: Auth::Signature(vec![3; 64]) };
                let mut bytes = frame.encode();
                let i = index % bytes.len();
                bytes[i] ^= 1 << bit;
                if let Ok(back) = Frame::decode(&bytes, &Limits::default()) {
                    // Whatever decodes re-encodes to exactly the same bytes.
                    proptest::prop_assert_eq!(back.encode(), bytes);
                }
            }
        }
    }
}

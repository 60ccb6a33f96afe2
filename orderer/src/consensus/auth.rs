//! Authentication of protocol messages: MAC authenticators on the fast path,
//! identity-key signatures on the slow path.
//!
//! Signing and signature verification are supplied by the shell through
//! [`Crypto`] (the node uses the consenters' certificate keys; the simulator
//! its own keys). MACs are computed here: HMAC-SHA-256 under pairwise session
//! keys, which are plain data of the epoch.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::message::{Auth, Body, Digest, Epoch, Frame, ReplicaId};

/// Identity-key operations. Implementations must be deterministic for the
/// same inputs as far as verification goes; `sign` may use the shell's
/// randomness (ECDSA) but the core never depends on the signature's value.
pub trait Crypto {
    fn sign(&self, message: &[u8]) -> Vec<u8>;
    fn verify(&self, signer: ReplicaId, message: &[u8], signature: &[u8]) -> bool;
}

/// Pairwise session keys of one consenter for one epoch: `keys[peer]` is the
/// key shared with `peer` (the same value on both sides).
#[derive(Clone)]
pub struct MacKeys {
    keys: BTreeMap<ReplicaId, [u8; 32]>,
    /// Sign every message instead of MAC'ing the fast path (benchmarks:
    /// what the MAC fast path buys). Every consenter of a channel must agree.
    sign_all: bool,
}

impl MacKeys {
    pub fn new(keys: BTreeMap<ReplicaId, [u8; 32]>) -> Self {
        Self { keys, sign_all: false }
    }

    /// Every message signed with the identity key, no MACs.
    pub fn signing_everything(mut self) -> Self {
        self.sign_all = true;
        self
    }

    pub fn mac(&self, peer: ReplicaId, bytes: &[u8]) -> Option<Digest> {
        let key = self.keys.get(&peer)?;
        Some(hmac_sha256(key, bytes))
    }

    fn check(&self, peer: ReplicaId, bytes: &[u8], tag: &Digest) -> bool {
        let Some(key) = self.keys.get(&peer) else { return false };
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length"); // ok: HMAC accepts every key length
        m.update(bytes);
        m.verify_slice(tag).is_ok()
    }
}

/// HMAC-SHA-256.
pub fn hmac_sha256(key: &[u8], bytes: &[u8]) -> Digest {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length"); // ok: HMAC accepts every key length
    m.update(bytes);
    m.finalize().into_bytes().into()
}

/// Builds an authenticated frame from `sender` for `receivers`.
pub fn seal(
    channel: &str,
    epoch: Epoch,
    sender: ReplicaId,
    body: Body,
    receivers: &[ReplicaId],
    macs: &MacKeys,
    crypto: &dyn Crypto,
) -> Frame {
    let bytes = Frame::authenticated_bytes(channel, epoch, sender, &body);
    let auth = if body.is_signed() || macs.sign_all {
        Auth::Signature(crypto.sign(&bytes))
    } else {
        Auth::Macs(receivers.iter().filter_map(|r| macs.mac(*r, &bytes).map(|m| (*r, m))).collect())
    };
    Frame { channel: channel.to_owned(), epoch, sender, body, auth }
}

/// Why a frame failed authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No MAC for this receiver, or it does not verify.
    Mac,
    /// The signature does not verify with the sender's identity key.
    Signature,
    /// A fast-path message signed, or a slow-path message MAC'd.
    WrongKind,
}

/// Checks a frame addressed to `me`.
pub fn open(frame: &Frame, me: ReplicaId, macs: &MacKeys, crypto: &dyn Crypto) -> Result<(), AuthFailure> {
    let bytes = Frame::authenticated_bytes(&frame.channel, frame.epoch, frame.sender, &frame.body);
    match (&frame.auth, frame.body.is_signed() || macs.sign_all) {
        (Auth::Signature(sig), true) => {
            if crypto.verify(frame.sender, &bytes, sig) {
                Ok(())
            } else {
                Err(AuthFailure::Signature)
            }
        }
        (Auth::Macs(tags), false) => {
            let mine = tags.iter().find(|(r, _)| *r == me).map(|(_, t)| t);
            match mine {
                Some(tag) if macs.check(frame.sender, &bytes, tag) => Ok(()),
                _ => Err(AuthFailure::Mac),
            }
        }
        (Auth::Signature(_), false) | (Auth::Macs(_), true) => Err(AuthFailure::WrongKind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoSig;
    impl Crypto for NoSig {
        fn sign(&self, _: &[u8]) -> Vec<u8> {
            vec![]
        }
        fn verify(&self, _: ReplicaId, _: &[u8], _: &[u8]) -> bool {
            false
        }
    }

    fn keys(me: u32) -> MacKeys {
        let mut m = BTreeMap::new();
        for peer in 0..4u32 {
            let (a, b) = (me.min(peer), me.max(peer));
            m.insert(peer, hmac_sha256(b"test", &[a as u8, b as u8]));
        }
        MacKeys::new(m)
    }

    #[test]
    fn mac_authenticator_verifies_only_for_its_receivers_and_epoch() {
        let body = Body::Prepare { view: 0, seq: 1, digest: [0; 32] };
        let frame = seal("ch", 1, 0, body, &[1, 2], &keys(0), &NoSig);
        assert_eq!(open(&frame, 1, &keys(1), &NoSig), Ok(()));
        assert_eq!(open(&frame, 2, &keys(2), &NoSig), Ok(()));
        assert_eq!(open(&frame, 3, &keys(3), &NoSig), Err(AuthFailure::Mac));
        let mut replayed = frame.clone();
        replayed.epoch = 2;
        assert_eq!(open(&replayed, 1, &keys(1), &NoSig), Err(AuthFailure::Mac));
        let mut other_channel = frame;
        other_channel.channel = "other".into();
        assert_eq!(open(&other_channel, 1, &keys(1), &NoSig), Err(AuthFailure::Mac));
    }

    struct XorSig;
    impl Crypto for XorSig {
        fn sign(&self, m: &[u8]) -> Vec<u8> {
            hmac_sha256(b"sig", m).to_vec()
        }
        fn verify(&self, _: ReplicaId, m: &[u8], s: &[u8]) -> bool {
            hmac_sha256(b"sig", m).as_slice() == s
        }
    }

    #[test]
    fn in_sign_everything_mode_fast_path_messages_are_signed_and_macs_refused() {
        let body = Body::Prepare { view: 0, seq: 1, digest: [0; 32] };
        let signing = keys(0).signing_everything();
        let frame = seal("ch", 1, 0, body.clone(), &[1], &signing, &XorSig);
        assert!(matches!(frame.auth, Auth::Signature(_)));
        assert_eq!(open(&frame, 1, &keys(1).signing_everything(), &XorSig), Ok(()));
        let mac_frame = seal("ch", 1, 0, body, &[1], &keys(0), &XorSig);
        assert_eq!(open(&mac_frame, 1, &keys(1).signing_everything(), &XorSig), Err(AuthFailure::WrongKind));
    }
}

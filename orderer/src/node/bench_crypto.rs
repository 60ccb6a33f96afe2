//! `orderer bench crypto`: what each cryptographic operation costs on this
//! machine, and the throughput bound it implies.

use std::time::Instant;

use ca_tools::{KeyType, SigningKey};

use crate::consensus::auth::hmac_sha256;

/// Microseconds per operation.
#[derive(Clone, Debug)]
pub struct Costs {
    pub ecdsa_sign_us: f64,
    pub ecdsa_verify_us: f64,
    pub ed25519_sign_us: f64,
    pub ed25519_verify_us: f64,
    pub ed25519_batch_verify_us: f64,
    pub hmac_1k_us: f64,
}

fn per_op(iterations: usize, mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    start.elapsed().as_secs_f64() * 1e6 / iterations as f64
}

/// Measures each operation `iterations` times (signatures over 1 KiB).
pub fn measure_costs(iterations: usize) -> Costs {
    let msg = vec![0x5a_u8; 1024];
    let mut costs = Costs {
        ecdsa_sign_us: 0.0,
        ecdsa_verify_us: 0.0,
        ed25519_sign_us: 0.0,
        ed25519_verify_us: 0.0,
        ed25519_batch_verify_us: 0.0,
        hmac_1k_us: per_op(iterations * 10, |i| {
            std::hint::black_box(hmac_sha256(&(i as u64).to_be_bytes(), &msg));
        }),
    };
    for kind in [KeyType::EcdsaP256, KeyType::Ed25519] {
        let Ok(key) = SigningKey::generate(kind) else { continue };
        let public = key.public_key();
        let sig = key.sign(&msg).unwrap_or_default();
        let sign = per_op(iterations, |_| {
            std::hint::black_box(key.sign(&msg).ok());
        });
        let verify = per_op(iterations, |_| {
            std::hint::black_box(public.verify(&msg, &sig).is_ok());
        });
        match kind {
            KeyType::EcdsaP256 => (costs.ecdsa_sign_us, costs.ecdsa_verify_us) = (sign, verify),
            KeyType::Ed25519 => (costs.ed25519_sign_us, costs.ed25519_verify_us) = (sign, verify),
        }
    }
    costs.ed25519_batch_verify_us = batch_cost(iterations);
    costs
}

/// Ed25519 batch verification, per signature, in batches of 64.
fn batch_cost(iterations: usize) -> f64 {
    use ed25519_dalek::{Signer, SigningKey as EdKey, VerifyingKey};
    let keys: Vec<EdKey> = (0..64u8).map(|i| EdKey::from_bytes(&[i.wrapping_add(1); 32])).collect();
    let msgs: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1024]).collect();
    let sigs: Vec<ed25519_dalek::Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
    let batches = (iterations / 64).max(4);
    per_op(batches, |_| {
        std::hint::black_box(ed25519_dalek::verify_batch(&refs, &sigs, &vks).is_ok());
    }) / 64.0
}

/// The CPU bound on throughput when every one of `nodes` consenters verifies
/// every envelope once at `verify_us` µs on this machine's cores:
/// cores / (nodes × verify cost), envelopes per second.
pub fn bound_tps(nodes: usize, verify_us: f64) -> f64 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    cores / (nodes.max(1) as f64 * verify_us.max(f64::MIN_POSITIVE) / 1e6)
}

/// Prints the table and the bound for `nodes` consenters.
pub fn report(nodes: usize, iterations: usize) -> String {
    let c = measure_costs(iterations);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let bound = |verify_us: f64| bound_tps(nodes, verify_us);
    let mut out = String::new();
    out.push_str(&format!("cores: {cores}\n"));
    out.push_str(&format!("ecdsa-p256 sign:        {:8.1} µs\n", c.ecdsa_sign_us));
    out.push_str(&format!("ecdsa-p256 verify:      {:8.1} µs\n", c.ecdsa_verify_us));
    out.push_str(&format!("ed25519 sign:           {:8.1} µs\n", c.ed25519_sign_us));
    out.push_str(&format!("ed25519 verify:         {:8.1} µs\n", c.ed25519_verify_us));
    out.push_str(&format!(
        "ed25519 batch verify:   {:8.1} µs per signature (batches of 64)\n",
        c.ed25519_batch_verify_us
    ));
    out.push_str(&format!("hmac-sha256 (1 KiB):    {:8.2} µs\n", c.hmac_1k_us));
    out.push_str(&format!(
        "CPU bound, every one of {nodes} consenters verifying every envelope once on this machine: \
         ecdsa-p256 {:.0} envelopes/s, ed25519 {:.0} envelopes/s (batched {:.0})\n",
        bound(c.ecdsa_verify_us),
        bound(c.ed25519_verify_us),
        bound(c.ed25519_batch_verify_us)
    ));
    out.push_str(&format!(
        "bound_tps of `orderer bench` (creators alternate between the two): {:.0} envelopes/s\n",
        bound((c.ecdsa_verify_us + c.ed25519_verify_us) / 2.0)
    ));
    out.push_str(&format!(
        "bench-crypto: nodes={nodes} ecdsa_verify_us={:.1} ed25519_verify_us={:.1} bound_tps_ecdsa={:.0} bound_tps_ed25519={:.0}",
        c.ecdsa_verify_us,
        c.ed25519_verify_us,
        bound(c.ecdsa_verify_us),
        bound(c.ed25519_verify_us)
    ));
    out
}

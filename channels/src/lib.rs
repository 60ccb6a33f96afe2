//! The bftorderer data model: Fabric-layout envelopes and blocks, block
//! hashes and certificates, channel configuration and genesis.

pub mod block;

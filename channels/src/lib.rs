//! The bftorderer data model: Fabric-layout envelopes and blocks, block
//! hashes and certificates, channel configuration and genesis.
//!
//! - [`proto`]: the protobuf messages (Fabric `common` and `msp` field
//!   numbers, and our `bftorderer.ChannelConfig`).
//! - [`envelope`]: signing and verifying envelopes.
//! - [`block`]: hashes, building and chaining blocks, block certificates.
//! - [`config`]: the typed channel configuration and its validation.
//! - [`genesis`]: the genesis (config) block.
//! - [`profile`]: the `configtx.yaml`-style profile behind `channels genesis`.
//! - [`inspect`]: readable JSON views of blocks and envelopes.
//! - [`announcement`]: consenters' key announcements for the next epoch.
//! - [`config_update`]: configuration updates signed by the org admins.

pub mod announcement;
pub mod block;
pub mod config;
pub mod config_update;
pub mod envelope;
pub mod files;
pub mod genesis;
pub mod inspect;
mod pki;
pub mod profile;
pub mod proto;

pub use block::{BlockCertificate, BlockError};
pub use config::{ChannelConfig, ConfigError};
pub use config_update::{ConfigUpdateError, ConfigUpdateVerifier, ConfigUpdated};
pub use envelope::{
    build_envelope, build_envelope_now, verify_envelope, ChannelTrust, EnvelopeError, VerifiedEnvelope,
};
pub use genesis::{config_from_genesis, genesis_block, verify_blocks, GenesisError};
pub use profile::{config_from_network, genesis_from_profile, Profile, ProfileError};

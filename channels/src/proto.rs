//! Generated protobuf types.
//!
//! `common` and `msp` follow the field numbers of Hyperledger Fabric's
//! `common/common.proto` and `msp/identities.proto`, so what we encode
//! decodes with Fabric's own definitions and vice versa. `bftorderer` holds
//! our channel configuration (see [`crate::config`]).

/// Fabric's `common` package: envelopes, payloads, headers and blocks.
#[allow(clippy::all, missing_docs)]
pub mod common {
    include!(concat!(env!("OUT_DIR"), "/common.rs"));
}

/// Fabric's `msp` package: the serialized identity of a creator.
#[allow(clippy::all, missing_docs)]
pub mod msp {
    include!(concat!(env!("OUT_DIR"), "/msp.rs"));
}

/// bftorderer's channel configuration messages.
#[allow(clippy::all, missing_docs)]
pub mod bftorderer {
    include!(concat!(env!("OUT_DIR"), "/bftorderer.rs"));
}

//! The bftorderer node.
//!
//! - [`consensus`]: the PBFT core, a pure deterministic state machine.
//! - [`sim`]: the deterministic cluster simulator that proves it.

pub mod config;
pub mod consensus;
pub mod node;
pub mod sim;
pub mod storage;

//! The bftorderer node.
//!
//! - [`consensus`]: the PBFT core, a pure deterministic state machine.
//! - [`sim`]: the deterministic cluster simulator that proves it.
//! - [`net`]: mutual-TLS cluster links between consenters.
//! - [`faults`]: fault tests with real processes in network namespaces.
//! - [`audit`]: signed vote logs, their export and the offline verifier.

pub mod audit;
pub mod config;
pub mod consensus;
pub mod faults;
pub mod net;
pub mod node;
pub mod sim;
pub mod storage;

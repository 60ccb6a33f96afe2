//! Orderer.

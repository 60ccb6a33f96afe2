//! Consortium PKI.

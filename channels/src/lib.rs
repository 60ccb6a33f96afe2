//! Data model.

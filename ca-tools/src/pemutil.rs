//! PEM / DER decoding with size and count limits.

use crate::error::PkiError;

/// Largest certificate, key or CRL accepted (bytes, PEM or DER).
pub const INPUT_BYTES_MAX: usize = 1 << 20;
/// Most PEM blocks accepted from one input.
pub const PEM_BLOCKS_MAX: usize = 256;

fn check_size(input: &[u8], what: &str) -> Result<(), PkiError> {
    if input.len() > INPUT_BYTES_MAX {
        return Err(PkiError::TooLarge {
            what: what.to_string(),
            size: input.len() as u64,
            limit: INPUT_BYTES_MAX as u64,
        });
    }
    Ok(())
}

/// Whether the input looks like PEM text (rather than DER).
pub fn looks_like_pem(input: &[u8]) -> bool {
    let trimmed = input.iter().position(|b| !b.is_ascii_whitespace()).map(|i| &input[i..]).unwrap_or(&[]);
    trimmed.starts_with(b"-----BEGIN")
}

/// Every PEM block of the input (at most [`PEM_BLOCKS_MAX`]).
pub fn blocks(input: &[u8], what: &str) -> Result<Vec<pem::Pem>, PkiError> {
    check_size(input, what)?;
    let parsed = pem::parse_many(input).map_err(|e| PkiError::Pem { what: what.to_string(), reason: e.to_string() })?;
    if parsed.is_empty() {
        return Err(PkiError::Pem { what: what.to_string(), reason: "no PEM block found".into() });
    }
    if parsed.len() > PEM_BLOCKS_MAX {
        return Err(PkiError::Pem { what: what.to_string(), reason: format!("more than {PEM_BLOCKS_MAX} PEM blocks") });
    }
    Ok(parsed)
}

/// Exactly one PEM block.
pub fn single_block(input: &[u8], what: &str) -> Result<pem::Pem, PkiError> {
    let mut all = blocks(input, what)?;
    if all.len() != 1 {
        return Err(PkiError::Pem {
            what: what.to_string(),
            reason: format!("expected one PEM block, found {}", all.len()),
        });
    }
    Ok(all.remove(0))
}

/// The DER blocks tagged `tag` in a PEM input, or the input itself if it is DER.
pub fn ders_with_tag(input: &[u8], tag: &str, what: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    check_size(input, what)?;
    if !looks_like_pem(input) {
        return Ok(vec![input.to_vec()]);
    }
    let found: Vec<Vec<u8>> =
        blocks(input, what)?.into_iter().filter(|b| b.tag() == tag).map(|b| b.into_contents()).collect();
    if found.is_empty() {
        return Err(PkiError::Pem { what: what.to_string(), reason: format!("no '{tag}' PEM block") });
    }
    Ok(found)
}

/// The DER of the first certificate of a PEM or DER input.
pub fn cert_der(input: &[u8]) -> Result<Vec<u8>, PkiError> {
    let mut all = ders_with_tag(input, "CERTIFICATE", "certificate")?;
    Ok(all.remove(0))
}

/// PEM-encode a certificate DER.
pub fn cert_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

//! A small canonical binary codec for protocol messages.
//!
//! Every integer is big-endian and fixed-width, every byte string and list is
//! length-prefixed, and decoding rejects trailing bytes, so each message has
//! exactly one encoding: the bytes that are MAC'd or signed are the bytes that
//! are sent. Every length read from the wire is bounded before allocation.

use thiserror::Error;

/// Why bytes from the network could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message truncated: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("length {len} exceeds the limit of {limit} for {what}")]
    TooLong { what: &'static str, len: usize, limit: usize },
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{count} trailing bytes after the message")]
    Trailing { count: usize },
    #[error("invalid {what}")]
    Invalid { what: &'static str },
}

/// Appends canonical encodings to a byte buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity) }
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn digest(&mut self, d: &[u8; 32]) -> &mut Self {
        self.buf.extend_from_slice(d);
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        assert!(b.len() <= u32::MAX as usize);
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
        self
    }

    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical encodings, bounding every length.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(DecodeError::Truncated { needed: n - left });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn digest(&mut self) -> Result<[u8; 32], DecodeError> {
        let b = self.take(32)?;
        let mut a = [0u8; 32];
        a.copy_from_slice(b);
        Ok(a)
    }

    /// A length-prefixed byte string of at most `limit` bytes.
    pub fn bytes(&mut self, what: &'static str, limit: usize) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32()? as usize;
        if len > limit {
            return Err(DecodeError::TooLong { what, len, limit });
        }
        Ok(self.take(len)?.to_vec())
    }

    /// A list count of at most `limit` items.
    pub fn count(&mut self, what: &'static str, limit: usize) -> Result<usize, DecodeError> {
        let len = self.u32()? as usize;
        if len > limit {
            return Err(DecodeError::TooLong { what, len, limit });
        }
        Ok(len)
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::Trailing { count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes_rejected() {
        let mut w = Writer::new();
        w.u8(7).u32(9).u64(11).bytes(b"abc");
        let mut bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u32().unwrap(), 9);
        assert_eq!(r.u64().unwrap(), 11);
        assert_eq!(r.bytes("x", 3).unwrap(), b"abc");
        r.finish().unwrap();
        bytes.push(0);
        let mut r = Reader::new(&bytes);
        r.u8().unwrap();
        r.u32().unwrap();
        r.u64().unwrap();
        r.bytes("x", 3).unwrap();
        assert_eq!(r.finish(), Err(DecodeError::Trailing { count: 1 }));
    }

    #[test]
    fn oversize_length_is_refused_before_allocation() {
        let mut w = Writer::new();
        w.u32(u32::MAX);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert!(matches!(r.bytes("envelope", 1024), Err(DecodeError::TooLong { .. })));
    }
}

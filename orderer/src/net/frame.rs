//! The wire format of one frame.
//!
//! ```text
//! u32 BE  len            length of everything after this field, 2..=frame_bytes_max
//! u8      channel_len    1..=249
//! [u8]    channel        UTF-8, channel_len bytes
//! [u8]    payload        len - 1 - channel_len bytes (opaque consensus message)
//! ```
//!
//! All channels share one connection. A length above the limit closes the
//! connection before anything is allocated.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::FrameError;

/// Longest channel name (Fabric's limit).
pub const CHANNEL_NAME_BYTES_MAX: usize = 249;
/// Smallest allowed `frame_bytes_max`: any channel name must fit.
pub const FRAME_BYTES_MIN: usize = 256;
/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Largest encoded header (length prefix, channel length, channel name).
pub const HEADER_BYTES_MAX: usize = LENGTH_PREFIX_BYTES + 1 + CHANNEL_NAME_BYTES_MAX;

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The channel the payload belongs to.
    pub channel: String,
    /// The opaque payload.
    pub payload: Vec<u8>,
}

fn check_channel(channel_len: usize) -> Result<(), FrameError> {
    if channel_len == 0 || channel_len > CHANNEL_NAME_BYTES_MAX {
        return Err(FrameError::ChannelName { len: channel_len, max: CHANNEL_NAME_BYTES_MAX });
    }
    Ok(())
}

/// Encodes the header that precedes `payload_len` bytes of payload on `channel`.
pub fn encode_header(channel: &str, payload_len: usize, frame_bytes_max: usize) -> Result<Vec<u8>, FrameError> {
    assert!(frame_bytes_max <= u32::MAX as usize);
    check_channel(channel.len())?;
    let len = 1 + channel.len() as u64 + payload_len as u64;
    if len > frame_bytes_max as u64 {
        return Err(FrameError::Oversize { len, max: frame_bytes_max });
    }
    let mut header = Vec::with_capacity(LENGTH_PREFIX_BYTES + 1 + channel.len());
    header.extend_from_slice(&(len as u32).to_be_bytes());
    header.push(channel.len() as u8);
    header.extend_from_slice(channel.as_bytes());
    assert!(header.len() <= HEADER_BYTES_MAX);
    Ok(header)
}

/// Reads one frame. `Ok(None)` when the peer closed cleanly between frames.
///
/// Cancel safety: none; a cancelled read leaves the stream mid-frame, so the
/// caller must drop the connection when it cancels.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame_bytes_max: usize,
) -> Result<Option<Frame>, FrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > frame_bytes_max {
        return Err(FrameError::Oversize { len: len as u64, max: frame_bytes_max });
    }
    if len < 2 {
        return Err(FrameError::Truncated { len, channel_len: 0 });
    }
    let channel_len = usize::from(reader.read_u8().await?);
    check_channel(channel_len)?;
    if 1 + channel_len > len {
        return Err(FrameError::Truncated { len, channel_len });
    }
    let mut channel = vec![0u8; channel_len];
    reader.read_exact(&mut channel).await?;
    let channel = String::from_utf8(channel).map_err(|_| FrameError::ChannelNotUtf8)?;
    let mut payload = vec![0u8; len - 1 - channel_len];
    reader.read_exact(&mut payload).await?;
    Ok(Some(Frame { channel, payload }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn decode(bytes: &[u8], max: usize) -> Result<Option<Frame>, FrameError> {
        let mut reader = bytes;
        read_frame(&mut reader, max).await
    }

    #[tokio::test]
    async fn encoded_frame_decodes_to_the_same_channel_and_payload() {
        let mut wire = encode_header("mychannel", 3, 1024).unwrap();
        wire.extend_from_slice(b"abc");
        let frame = decode(&wire, 1024).await.unwrap().unwrap();
        assert_eq!(frame.channel, "mychannel");
        assert_eq!(frame.payload, b"abc");
    }

    #[tokio::test]
    async fn length_above_the_limit_is_refused_before_reading_the_body() {
        let wire = 1025u32.to_be_bytes();
        let err = decode(&wire, 1024).await.unwrap_err();
        assert!(matches!(err, FrameError::Oversize { len: 1025, max: 1024 }));
    }

    #[tokio::test]
    async fn channel_name_longer_than_the_frame_is_refused() {
        let wire = [0, 0, 0, 3, 200, b'a', b'b'];
        let err = decode(&wire, 1024).await.unwrap_err();
        assert!(matches!(err, FrameError::Truncated { len: 3, channel_len: 200 }));
    }

    #[tokio::test]
    async fn empty_and_overlong_channel_names_are_refused() {
        assert!(matches!(decode(&[0, 0, 0, 2, 0, 1], 1024).await, Err(FrameError::ChannelName { len: 0, .. })));
        assert!(matches!(encode_header(&"c".repeat(250), 0, 1024), Err(FrameError::ChannelName { len: 250, .. })));
        assert!(encode_header(&"c".repeat(249), 0, 1024).is_ok());
    }

    #[tokio::test]
    async fn clean_close_between_frames_is_not_an_error_but_mid_frame_is() {
        assert!(decode(&[], 1024).await.unwrap().is_none());
        assert!(matches!(decode(&[0, 0, 0, 9, 1, b'c'], 1024).await, Err(FrameError::Io(_))));
    }

    #[test]
    fn payload_that_would_exceed_the_limit_is_not_encoded() {
        assert!(encode_header("c", 1022, 1024).is_ok());
        assert!(matches!(encode_header("c", 1023, 1024), Err(FrameError::Oversize { len: 1025, .. })));
    }
}

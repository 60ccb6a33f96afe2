//! The wire format of one frame.
//!
//! ```text
//! u32 BE  len            length of everything after this field, 2..=frame_bytes_max
//! u8      channel_len    1..=249 for data; 0 for a control frame
//! data:    [u8] channel  UTF-8, channel_len bytes
//!          [u8] payload  len - 1 - channel_len bytes (opaque consensus message)
//! control: u8 kind       1 = ping (dialer to listener), 2 = pong (the reply)
//!          u64 BE nonce  (len is exactly 10)
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

/// Bytes of an encoded control frame.
pub const CONTROL_FRAME_BYTES: usize = LENGTH_PREFIX_BYTES + CONTROL_LEN as usize;
const CONTROL_LEN: u32 = 1 + 1 + 8;
const KIND_PING: u8 = 1;
const KIND_PONG: u8 = 2;

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A consensus message.
    Data {
        /// The channel the payload belongs to.
        channel: String,
        /// The opaque payload.
        payload: Vec<u8>,
    },
    /// Keepalive request, answered by a [`Frame::Pong`] with the same nonce.
    Ping(u64),
    /// Keepalive reply.
    Pong(u64),
}

/// Encodes a ping (`pong == false`) or a pong with `nonce`.
pub fn encode_control(pong: bool, nonce: u64) -> [u8; CONTROL_FRAME_BYTES] {
    let mut wire = [0u8; CONTROL_FRAME_BYTES];
    wire[..LENGTH_PREFIX_BYTES].copy_from_slice(&CONTROL_LEN.to_be_bytes());
    wire[LENGTH_PREFIX_BYTES + 1] = if pong { KIND_PONG } else { KIND_PING };
    wire[LENGTH_PREFIX_BYTES + 2..].copy_from_slice(&nonce.to_be_bytes());
    wire
}

/// Decodes a complete control frame; `None` if `wire` is anything else.
pub fn decode_control(wire: &[u8; CONTROL_FRAME_BYTES]) -> Option<Frame> {
    let mut nonce = [0u8; 8];
    nonce.copy_from_slice(&wire[LENGTH_PREFIX_BYTES + 2..]);
    let nonce = u64::from_be_bytes(nonce);
    if wire[..LENGTH_PREFIX_BYTES + 1] != encode_control(false, 0)[..LENGTH_PREFIX_BYTES + 1] {
        return None;
    }
    match wire[LENGTH_PREFIX_BYTES + 1] {
        KIND_PING => Some(Frame::Ping(nonce)),
        KIND_PONG => Some(Frame::Pong(nonce)),
        _ => None,
    }
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
    if channel_len == 0 {
        return read_control(reader, len).await.map(Some);
    }
    check_channel(channel_len)?;
    if 1 + channel_len > len {
        return Err(FrameError::Truncated { len, channel_len });
    }
    let mut channel = vec![0u8; channel_len];
    reader.read_exact(&mut channel).await?;
    let channel = String::from_utf8(channel).map_err(|_| FrameError::ChannelNotUtf8)?;
    let mut payload = vec![0u8; len - 1 - channel_len];
    reader.read_exact(&mut payload).await?;
    Ok(Some(Frame::Data { channel, payload }))
}

/// Reads the rest of a control frame whose channel length byte (0) was read.
async fn read_control<R: AsyncRead + Unpin>(reader: &mut R, len: usize) -> Result<Frame, FrameError> {
    if len != CONTROL_LEN as usize {
        return Err(FrameError::BadControl);
    }
    let mut wire = encode_control(false, 0);
    reader.read_exact(&mut wire[LENGTH_PREFIX_BYTES + 1..]).await?;
    decode_control(&wire).ok_or(FrameError::BadControl)
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
        assert_eq!(frame, Frame::Data { channel: "mychannel".to_string(), payload: b"abc".to_vec() });
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
    async fn overlong_channel_names_are_refused() {
        assert!(matches!(decode(&[0, 0, 0, 2, 250, 1], 1024).await, Err(FrameError::ChannelName { len: 250, .. })));
        assert!(matches!(encode_header("", 0, 1024), Err(FrameError::ChannelName { len: 0, .. })));
        assert!(matches!(encode_header(&"c".repeat(250), 0, 1024), Err(FrameError::ChannelName { len: 250, .. })));
        assert!(encode_header(&"c".repeat(249), 0, 1024).is_ok());
    }

    #[tokio::test]
    async fn clean_close_between_frames_is_not_an_error_but_mid_frame_is() {
        assert!(decode(&[], 1024).await.unwrap().is_none());
        assert!(matches!(decode(&[0, 0, 0, 9, 1, b'c'], 1024).await, Err(FrameError::Io(_))));
    }

    #[tokio::test]
    async fn ping_and_pong_round_trip_and_malformed_control_frames_are_refused() {
        assert_eq!(decode(&encode_control(false, 7), 1024).await.unwrap(), Some(Frame::Ping(7)));
        assert_eq!(decode(&encode_control(true, u64::MAX), 1024).await.unwrap(), Some(Frame::Pong(u64::MAX)));
        let mut unknown_kind = encode_control(true, 1);
        unknown_kind[5] = 3;
        assert!(matches!(decode(&unknown_kind, 1024).await, Err(FrameError::BadControl)));
        assert!(decode_control(&unknown_kind).is_none());
        assert!(matches!(decode(&[0, 0, 0, 2, 0, 1], 1024).await, Err(FrameError::BadControl)));
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_decode_to_an_error_or_a_frame_that_re_encodes_to_them(
            len in 0u32..40,
            channel_len in 0u8..12,
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
            cut in 0usize..100,
        ) {
            // Mostly plausible frames, some truncated, some malformed.
            let max = FRAME_BYTES_MIN;
            let mut wire = len.to_be_bytes().to_vec();
            wire.push(channel_len);
            wire.extend_from_slice(&rest);
            wire.truncate(cut);
            let mut reader = wire.as_slice();
            let decoded = block_on(read_frame(&mut reader, max));
            let consumed = &wire[..wire.len() - reader.len()];
            match decoded {
                Ok(Some(Frame::Data { channel, payload })) => {
                    let mut again = encode_header(&channel, payload.len(), max).unwrap();
                    again.extend_from_slice(&payload);
                    proptest::prop_assert_eq!(again.as_slice(), consumed);
                }
                Ok(Some(Frame::Ping(nonce))) => proptest::prop_assert_eq!(&encode_control(false, nonce)[..], consumed),
                Ok(Some(Frame::Pong(nonce))) => proptest::prop_assert_eq!(&encode_control(true, nonce)[..], consumed),
                Ok(None) => proptest::prop_assert!(consumed.len() < LENGTH_PREFIX_BYTES),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn payload_that_would_exceed_the_limit_is_not_encoded() {
        assert!(encode_header("c", 1022, 1024).is_ok());
        assert!(matches!(encode_header("c", 1023, 1024), Err(FrameError::Oversize { len: 1025, .. })));
    }
}

//! Frames on the socket: a big-endian `u16` length, then that many bytes of
//! Noise message. After the handshake every Noise message decrypts to a
//! padded [`super::message::LinkMessage`] plaintext.

use bytes::{BufMut, BytesMut};
use snow::TransportState;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

use super::message::{LinkMessage, MessageError};

/// Padded plaintext size of control frames and small application messages.
pub const PAD_CONTROL: usize = 512;
/// Padded plaintext size of mid-sized application messages.
pub const PAD_MEDIUM: usize = 4096;
/// Padded plaintext size of block-bearing messages (32.5 KiB): the largest
/// routing message (`wire::MAX_MESSAGE_LEN`, 33,046 bytes: a 32,790-byte
/// block plus header room) in its envelope, rounded up to a multiple of 512.
/// Every block frame is encrypted at every hop, so each byte over the
/// message costs AEAD work and bandwidth on the whole path.
pub const PAD_BLOCK: usize = 65 * 512;
/// Every plaintext is exactly one of these sizes, smallest first.
pub const PAD_SIZES: [usize; 3] = [PAD_CONTROL, PAD_MEDIUM, PAD_BLOCK];
/// Noise authentication tag on every message.
pub const TAG_LEN: usize = 16;
/// Length prefix of every frame.
pub const LENGTH_PREFIX_LEN: usize = 2;
/// Largest frame body accepted after the handshake: a padded block plus tag.
pub const MAX_FRAME_LEN: usize = PAD_BLOCK + TAG_LEN;
/// Noise's own limit, which the `u16` prefix also enforces.
pub const NOISE_MAX_MESSAGE: usize = 65_535;

const _: () = assert!(MAX_FRAME_LEN <= NOISE_MAX_MESSAGE);

/// The smallest padded size holding `len` bytes, if any does.
pub fn pad_size_for(len: usize) -> Option<usize> {
    PAD_SIZES.iter().copied().find(|&pad| pad >= len)
}

/// The length-delimited codec for a link: `u16` prefix, frames of at most
/// `max_frame` bytes (an oversize prefix is an error, never an allocation).
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u16>()
        .max_frame_length(max_frame.min(NOISE_MAX_MESSAGE))
        .new_codec()
}

/// Append one frame (prefix and body) to `out`.
pub fn put_frame(out: &mut BytesMut, body: &[u8]) {
    out.reserve(LENGTH_PREFIX_LEN + body.len());
    out.put_u16(body.len() as u16);
    out.put_slice(body);
}

/// Why a transport frame was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame of {0} bytes is not a padded size plus the Noise tag")]
    BadLength(usize),
    #[error("frame failed authentication (corrupted, forged or out of order)")]
    Decrypt,
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("could not encrypt a frame: {0}")]
    Encrypt(snow::Error),
}

/// A Noise transport session plus the bytes sent under the current key.
pub struct FrameCipher {
    noise: TransportState,
    scratch: Vec<u8>,
    sent_since_rekey: u64,
}

impl std::fmt::Debug for FrameCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCipher")
            .field("sent_since_rekey", &self.sent_since_rekey)
            .finish_non_exhaustive()
    }
}

impl FrameCipher {
    pub fn new(noise: TransportState) -> Self {
        FrameCipher {
            noise,
            scratch: Vec::with_capacity(PAD_BLOCK),
            sent_since_rekey: 0,
        }
    }

    /// Encrypt `message` and append it as one frame to `out`; returns the
    /// frame's size on the wire. After a `Rekey` message the sending key
    /// changes, as the message announces.
    pub fn seal(&mut self, message: &LinkMessage, out: &mut BytesMut) -> Result<usize, FrameError> {
        message.encode_into(&mut self.scratch)?;
        let body_len = self.scratch.len() + TAG_LEN;
        let start = out.len();
        out.reserve(LENGTH_PREFIX_LEN + body_len);
        out.put_u16(body_len as u16);
        out.resize(start + LENGTH_PREFIX_LEN + body_len, 0);
        let written = self
            .noise
            .write_message(&self.scratch, &mut out[start + LENGTH_PREFIX_LEN..])
            .map_err(FrameError::Encrypt)?;
        debug_assert_eq!(written, body_len);
        self.sent_since_rekey += body_len as u64;
        if *message == LinkMessage::Rekey {
            self.noise.rekey_outgoing();
            self.sent_since_rekey = 0;
        }
        Ok(LENGTH_PREFIX_LEN + body_len)
    }

    /// Decrypt and decode one frame body. A `Rekey` switches the receiving
    /// key for the frames after it.
    pub fn open(&mut self, frame: &[u8]) -> Result<LinkMessage, FrameError> {
        let Some(plain_len) = frame.len().checked_sub(TAG_LEN) else {
            return Err(FrameError::BadLength(frame.len()));
        };
        if !PAD_SIZES.contains(&plain_len) {
            return Err(FrameError::BadLength(frame.len()));
        }
        let mut plain = BytesMut::zeroed(plain_len);
        self.noise
            .read_message(frame, &mut plain)
            .map_err(|_| FrameError::Decrypt)?;
        let message = LinkMessage::decode(&plain.freeze())?;
        if message == LinkMessage::Rekey {
            self.noise.rekey_incoming();
        }
        Ok(message)
    }

    /// Ciphertext bytes sent under the current sending key.
    pub fn sent_since_rekey(&self) -> u64 {
        self.sent_since_rekey
    }
}

/// Fuzz and proptest entry point: split arbitrary bytes into frames with the
/// link codec and decode each frame body as a plaintext message.
pub fn fuzz_frames(data: &[u8]) {
    let mut codec = codec(MAX_FRAME_LEN);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        assert!(frame.len() <= MAX_FRAME_LEN);
        super::message::fuzz_decode(&frame);
    }
    let _ = codec.decode_eof(&mut buf);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::link::handshake::tests::transport_pair;

    #[test]
    fn codec_refuses_oversize_frames_without_allocating() {
        let mut codec = codec(MAX_FRAME_LEN);
        let mut buf = BytesMut::new();
        buf.put_u16(u16::MAX);
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn codec_waits_for_split_frames_and_errs_on_truncation() {
        let mut codec = codec(MAX_FRAME_LEN);
        let mut buf = BytesMut::new();
        put_frame(&mut buf, b"hello");
        let tail = buf.split_off(3);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.unsplit(tail);
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"hello");
        put_frame(&mut buf, b"cut short");
        buf.truncate(5);
        assert!(codec.decode_eof(&mut buf).is_err());
    }

    #[test]
    fn sealed_frames_open_in_order_across_rekeys() {
        let (mut a, mut b) = transport_pair();
        let mut wire = BytesMut::new();
        let messages = [
            LinkMessage::Data(Bytes::from(vec![1; 40])),
            LinkMessage::Rekey,
            LinkMessage::Data(Bytes::from(vec![2; 30_000])),
            LinkMessage::Rekey,
            LinkMessage::Ping(9),
        ];
        for m in &messages {
            let n = a.seal(m, &mut wire).unwrap();
            assert!(PAD_SIZES
                .iter()
                .any(|p| n == p + TAG_LEN + LENGTH_PREFIX_LEN));
        }
        assert_eq!(a.sent_since_rekey(), (PAD_CONTROL + TAG_LEN) as u64);
        let mut codec = codec(MAX_FRAME_LEN);
        for m in &messages {
            let frame = codec.decode(&mut wire).unwrap().unwrap();
            assert_eq!(&b.open(&frame).unwrap(), m);
        }
    }

    #[test]
    fn tampered_or_short_frames_are_refused() {
        let (mut a, mut b) = transport_pair();
        let mut wire = BytesMut::new();
        a.seal(&LinkMessage::Ping(1), &mut wire).unwrap();
        wire[10] ^= 1;
        assert!(matches!(b.open(&wire[2..]), Err(FrameError::Decrypt)));
        assert!(matches!(b.open(&[0; 20]), Err(FrameError::BadLength(20))));
    }

    proptest! {
        #[test]
        fn frames_fuzz_entry_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            fuzz_frames(&data);
        }
    }
}

//! Frames: a 4-byte little-endian body length, then a bincode body.

use bincode::{Decode, Encode};

/// Bytes before each body.
pub const FRAME_HEADER: usize = 4;
/// Default largest body a connection accepts: small, because every request
/// and event of the module API fits easily, and a module that wants to move
/// bulk data uses several requests.
pub const DEFAULT_MAX_FRAME: u32 = 256 * 1024;
/// The ceiling no configuration can raise: also bincode's decode limit.
pub const HARD_MAX_FRAME: u32 = 16 * 1024 * 1024;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ HARD_MAX_FRAME as usize }>,
>;

pub(crate) fn config() -> Config {
    bincode::config::standard().with_little_endian().with_variable_int_encoding().with_limit::<{ HARD_MAX_FRAME as usize }>()
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge { len: usize, max: u32 },
    #[error("frame body does not decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("frame body has {trailing} bytes after the message")]
    Trailing { trailing: usize },
    #[error("message does not encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
}

/// The body length announced by a header, refused if above `max`.
pub fn body_len(header: [u8; FRAME_HEADER], max: u32) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > max.min(HARD_MAX_FRAME) as usize {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Append one whole frame (header + body) to `buf`.
pub fn encode_into<T: Encode>(msg: &T, buf: &mut Vec<u8>, max: u32) -> Result<(), FrameError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER]);
    if let Err(e) = bincode::encode_into_std_write(msg, buf, config()) {
        buf.truncate(start);
        return Err(e.into());
    }
    let len = buf.len() - start - FRAME_HEADER;
    if len > max.min(HARD_MAX_FRAME) as usize {
        buf.truncate(start);
        return Err(FrameError::TooLarge { len, max });
    }
    buf[start..start + FRAME_HEADER].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// One whole frame (header + body).
pub fn encode<T: Encode>(msg: &T, max: u32) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(64);
    encode_into(msg, &mut buf, max)?;
    Ok(buf)
}

/// Decode a body that must hold exactly one message.
pub fn decode<T: Decode<()>>(body: &[u8]) -> Result<T, FrameError> {
    let (msg, used) = bincode::decode_from_slice(body, config())?;
    if used != body.len() {
        return Err(FrameError::Trailing { trailing: body.len() - used });
    }
    Ok(msg)
}

/// Incremental decoder for byte streams read in arbitrary pieces. The
/// buffer never holds more than one maximal frame plus one read.
#[derive(Debug)]
pub struct FrameBuf {
    buf: Vec<u8>,
    start: usize,
    max: u32,
}

impl FrameBuf {
    pub fn new(max: u32) -> FrameBuf {
        FrameBuf { buf: Vec::new(), start: 0, max }
    }

    /// Change the largest body accepted from now on.
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
    }

    /// Bytes not yet consumed as frames.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame's body, if one is buffered. A header announcing
    /// too large a body is an error at once, before the body arrives.
    pub fn next_body(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let avail = &self.buf[self.start..];
        if avail.len() < FRAME_HEADER {
            self.compact();
            return Ok(None);
        }
        let len = body_len([avail[0], avail[1], avail[2], avail[3]], self.max)?;
        if avail.len() < FRAME_HEADER + len {
            self.compact();
            return Ok(None);
        }
        let body_start = self.start + FRAME_HEADER;
        self.start = body_start + len;
        Ok(Some(&self.buf[body_start..body_start + len]))
    }

    /// Decode the next whole frame.
    pub fn next_message<T: Decode<()>>(&mut self) -> Result<Option<T>, FrameError> {
        match self.next_body()? {
            Some(body) => decode(body).map(Some),
            None => Ok(None),
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::*;

    fn sample() -> ModuleMessage {
        ModuleMessage::Request {
            id: 7,
            request: Request::StoragePut { tree: "t".into(), key: b"k".to_vec(), value: vec![1; 100] },
        }
    }

    #[test]
    fn round_trip_in_pieces() {
        let mut stream = Vec::new();
        for _ in 0..3 {
            encode_into(&sample(), &mut stream, DEFAULT_MAX_FRAME).expect("encodes");
        }
        let mut fb = FrameBuf::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        for piece in stream.chunks(5) {
            fb.push(piece);
            while let Some(m) = fb.next_message::<ModuleMessage>().expect("decodes") {
                got.push(m);
            }
        }
        assert_eq!(got, vec![sample(), sample(), sample()]);
        assert_eq!(fb.pending(), 0);
    }

    #[test]
    fn oversized_header_is_refused_before_the_body() {
        let mut fb = FrameBuf::new(1024);
        fb.push(&(1025u32).to_le_bytes());
        assert!(matches!(fb.next_body(), Err(FrameError::TooLarge { len: 1025, max: 1024 })));
        assert!(matches!(encode(&sample(), 16), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_errors() {
        assert!(decode::<ModuleMessage>(&[0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        let frame = encode(&sample(), DEFAULT_MAX_FRAME).expect("encodes");
        let body = &frame[FRAME_HEADER..];
        assert!(decode::<ModuleMessage>(&body[..body.len() - 1]).is_err());
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(matches!(decode::<ModuleMessage>(&longer), Err(FrameError::Trailing { trailing: 1 })));
    }

    #[test]
    fn a_length_field_inside_a_body_cannot_force_a_huge_allocation() {
        // A StoragePut whose key length claims 2^40 bytes: bincode's limit
        // refuses it before allocating.
        let small = ModuleMessage::Request { id: 7, request: Request::StoragePut { tree: "t".into(), key: vec![], value: vec![] } };
        let frame = encode(&small, DEFAULT_MAX_FRAME).expect("encodes");
        let mut body = frame[FRAME_HEADER..frame.len() - 2].to_vec(); // drop key and value lengths
        body.extend_from_slice(&[253, 0, 0, 0, 0, 0, 1, 0, 0]); // varint u64 = 2^40
        body.push(0);
        assert!(decode::<ModuleMessage>(&body).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for len in 0..2000usize {
            let mut body = Vec::with_capacity(len % 64);
            for _ in 0..len % 64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                body.push(seed as u8);
            }
            let _ = decode::<ModuleMessage>(&body);
            let _ = decode::<HostMessage>(&body);
        }
    }
}

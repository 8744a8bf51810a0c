//! Frame I/O over an async byte stream, written once for both ends: hostd's
//! per-module connection and the SDK. (Feature `io`, on by default; a peer
//! that brings its own runtime can use [`crate::frame`] alone.)
//!
//! * [`FrameReader`] reads in chunks of [`READ_CHUNK`] and hands out whole
//!   messages; a header announcing more than the connection's maximum is an
//!   error before its body is read. The handshake is just its first message,
//!   so bytes the peer sent right behind it are not lost.
//! * [`FrameWriter`] collects frames into one buffer and writes them with one
//!   call once the caller has nothing more queued or the batch reaches
//!   [`WRITE_BATCH`] bytes.

use bincode::{Decode, Encode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{self, FrameBuf, FrameError};

/// Bytes asked of the stream per read.
pub const READ_CHUNK: usize = 64 * 1024;
/// A batch of queued frames is written once it reaches this size.
pub const WRITE_BATCH: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("connection closed inside a frame ({pending} bytes pending)")]
    Truncated { pending: usize },
}

/// The reading half of a connection.
#[derive(Debug)]
pub struct FrameReader<R> {
    rd: R,
    frames: FrameBuf,
    chunk: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(rd: R, max_frame: u32) -> FrameReader<R> {
        FrameReader { rd, frames: FrameBuf::new(max_frame), chunk: vec![0; READ_CHUNK] }
    }

    /// The next whole message: `Ok(None)` when the peer closed between
    /// frames (a reset counts as a close: the peer went away with unread
    /// data queued), an error for a close inside a frame or a bad frame.
    pub async fn next<T: Decode<()>>(&mut self) -> Result<Option<T>, ReadError> {
        loop {
            if let Some(msg) = self.frames.next_message()? {
                return Ok(Some(msg));
            }
            let n = match self.rd.read(&mut self.chunk).await {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return match self.frames.pending() {
                    0 => Ok(None),
                    pending => Err(ReadError::Truncated { pending }),
                };
            }
            self.frames.push(&self.chunk[..n]);
        }
    }

    /// Change the largest frame accepted from now on (after the handshake).
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.frames.set_max(max_frame);
    }
}

/// The writing half of a connection.
#[derive(Debug)]
pub struct FrameWriter<W> {
    wr: W,
    batch: Vec<u8>,
    max_frame: u32,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(wr: W, max_frame: u32) -> FrameWriter<W> {
        FrameWriter { wr, batch: Vec::with_capacity(READ_CHUNK), max_frame }
    }

    /// Encode one message into the batch; a message too large for a frame
    /// is refused and the batch left as it was.
    pub fn push<T: Encode>(&mut self, msg: &T) -> Result<(), FrameError> {
        frame::encode_into(msg, &mut self.batch, self.max_frame)
    }

    /// Add an already encoded frame (header and body) to the batch.
    pub fn push_frame(&mut self, frame: &[u8]) {
        self.batch.extend_from_slice(frame);
    }

    /// Whether the batch should be written before taking more.
    pub fn batch_full(&self) -> bool {
        self.batch.len() >= WRITE_BATCH
    }

    /// Write the batch with as few calls as the stream allows.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let result = self.wr.write_all(&self.batch).await;
        self.batch.clear();
        result
    }

    /// Change the largest frame sent from now on (after the handshake).
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
    }

    /// Encode `msg` and write it now (handshake messages).
    pub async fn send<T: Encode>(&mut self, msg: &T) -> Result<(), std::io::Error> {
        self.push(msg).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{ModuleMessage, Request};

    fn put(id: u64, len: usize) -> ModuleMessage {
        ModuleMessage::Request { id, request: Request::StoragePut { tree: "t".into(), key: vec![1], value: vec![7; len] } }
    }

    #[tokio::test]
    async fn batches_arrive_as_the_messages_that_were_pushed() {
        let (a, b) = tokio::io::duplex(1024);
        let mut w = FrameWriter::new(a, 1 << 20);
        let mut r = FrameReader::new(b, 1 << 20);
        let sent: Vec<ModuleMessage> = (0..50).map(|i| put(i, (i as usize) * 997)).collect();
        let writer = async {
            for m in &sent {
                w.push(m).expect("fits");
                if w.batch_full() {
                    w.flush().await.expect("writes");
                }
            }
            w.flush().await.expect("writes");
            drop(w);
        };
        let reader = async {
            let mut got = Vec::new();
            while let Some(m) = r.next::<ModuleMessage>().await.expect("reads") {
                got.push(m);
            }
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn a_close_inside_a_frame_and_an_oversized_header_are_errors() {
        let (mut a, b) = tokio::io::duplex(1024);
        let frame = frame::encode(&put(1, 10), 1024).expect("encodes");
        a.write_all(&frame[..frame.len() - 1]).await.expect("writes");
        drop(a);
        let mut r = FrameReader::new(b, 1024);
        assert!(matches!(r.next::<ModuleMessage>().await, Err(ReadError::Truncated { .. })));

        let (mut a, b) = tokio::io::duplex(1024);
        a.write_all(&(2000u32).to_le_bytes()).await.expect("writes");
        let mut r = FrameReader::new(b, 1024);
        assert!(matches!(r.next::<ModuleMessage>().await, Err(ReadError::Frame(FrameError::TooLarge { .. }))));
    }

    #[tokio::test]
    async fn a_message_too_large_for_a_frame_leaves_the_batch_intact() {
        let (a, _b) = tokio::io::duplex(64);
        let mut w = FrameWriter::new(a, 100);
        w.push(&put(1, 10)).expect("fits");
        let before = w.batch.len();
        assert!(w.push(&put(2, 1000)).is_err());
        assert_eq!(w.batch.len(), before);
    }
}

//! The mesh wire between two hostd instances: a fixed preamble each way,
//! then frames of a 4-byte big-endian length and that many bytes. Length 0
//! is a keepalive and never reaches a module. hostd speaks nothing else on
//! a link, so a module cannot make it talk to any other kind of service.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Protocol name and version; a peer sending anything else is not a mesh
/// hostd (or not this version) and the link closes.
pub const PREAMBLE: &[u8; 16] = b"hostd-mesh/1\r\n\0\0";
pub const HEADER: usize = 4;

/// Why a link ended, as counted in `hostd status` (one word each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Close {
    /// The peer closed or reset the connection.
    PeerClosed,
    BadPreamble,
    PreambleTimeout,
    /// A header announcing more than the link's maximum.
    Oversized { len: u32, max: u32 },
    /// A frame's body did not arrive within `frame_timeout_ms`.
    SlowFrame,
    /// Nothing at all arrived within `idle_timeout_ms`.
    IdleTimeout,
    /// The peer did not take queued bytes within `idle_timeout_ms`.
    WriteStalled,
    ClosedByModule,
    ModuleGone,
    Io(String),
}

impl Close {
    /// The counter this close is counted under.
    pub fn class(&self) -> &'static str {
        match self {
            Close::PeerClosed => "peer_closed",
            Close::BadPreamble => "bad_preamble",
            Close::PreambleTimeout => "preamble_timeout",
            Close::Oversized { .. } => "oversized_frame",
            Close::SlowFrame => "slow_frame",
            Close::IdleTimeout => "idle_timeout",
            Close::WriteStalled => "write_stalled",
            Close::ClosedByModule => "closed_by_module",
            Close::ModuleGone => "module_gone",
            Close::Io(_) => "io_error",
        }
    }
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Oversized { len, max } => write!(f, "oversized_frame: the peer announced {len} bytes, the maximum is {max}"),
            Close::Io(e) => write!(f, "io_error: {e}"),
            other => f.write_str(other.class()),
        }
    }
}

fn io_close(e: std::io::Error) -> Close {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Close::PeerClosed,
        _ => Close::Io(e.to_string()),
    }
}

/// Send our preamble and check the peer's, within `timeout` in all.
pub async fn exchange_preamble<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, timeout: Duration) -> Result<(), Close> {
    let work = async {
        stream.write_all(PREAMBLE).await.map_err(io_close)?;
        let mut got = [0u8; PREAMBLE.len()];
        stream.read_exact(&mut got).await.map_err(io_close)?;
        if &got != PREAMBLE {
            return Err(Close::BadPreamble);
        }
        Ok(())
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| Close::PreambleTimeout)?
}

/// The next frame's length: waits at most `idle` for its header (which a
/// keepalive resets), refuses a length above `max`.
pub async fn read_header<R: AsyncRead + Unpin>(rd: &mut R, idle: Duration, max: u32) -> Result<u32, Close> {
    let mut header = [0u8; HEADER];
    match tokio::time::timeout(idle, rd.read_exact(&mut header)).await {
        Err(_) => Err(Close::IdleTimeout),
        Ok(Err(e)) => Err(io_close(e)),
        Ok(Ok(_)) => {
            let len = u32::from_be_bytes(header);
            if len > max {
                return Err(Close::Oversized { len, max });
            }
            Ok(len)
        }
    }
}

/// Fill `body` with a frame's body, within `limit`.
pub async fn read_body_into<R: AsyncRead + Unpin>(rd: &mut R, body: &mut [u8], limit: Duration) -> Result<(), Close> {
    match tokio::time::timeout(limit, rd.read_exact(body)).await {
        Err(_) => Err(Close::SlowFrame),
        Ok(Err(e)) => Err(io_close(e)),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Write every frame of `frames` (header then body each), with as few
/// system calls as the socket allows and no copy of the bodies; fails if
/// the peer takes longer than `stall` to accept them.
pub async fn write_frames<W: AsyncWrite + Unpin>(wr: &mut W, frames: &[&[u8]], stall: Duration) -> Result<(), Close> {
    let headers: Vec<[u8; HEADER]> = frames.iter().map(|f| (f.len() as u32).to_be_bytes()).collect();
    let mut slices: Vec<std::io::IoSlice<'_>> = Vec::with_capacity(frames.len() * 2);
    for (h, f) in headers.iter().zip(frames) {
        slices.push(std::io::IoSlice::new(h));
        if !f.is_empty() {
            slices.push(std::io::IoSlice::new(f));
        }
    }
    let work = async {
        let mut rest: &mut [std::io::IoSlice<'_>] = &mut slices;
        while !rest.is_empty() {
            // At most IOV_MAX (1024) slices per call.
            let n = rest.len().min(1024);
            let written = wr.write_vectored(&rest[..n]).await?;
            if written == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
            }
            std::io::IoSlice::advance_slices(&mut rest, written);
        }
        Ok(())
    };
    match tokio::time::timeout(stall, work).await {
        Err(_) => Err(Close::WriteStalled),
        Ok(Err(e)) => Err(io_close(e)),
        Ok(Ok(())) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// A frame's body of `len` bytes, within `limit` (hostd reads bodies
    /// straight into IPC frames; the tests want them alone).
    async fn read_body<R: AsyncRead + Unpin>(rd: &mut R, len: u32, limit: Duration) -> Result<Vec<u8>, Close> {
        let mut body = vec![0u8; len as usize];
        read_body_into(rd, &mut body, limit).await?;
        Ok(body)
    }

    #[tokio::test]
    async fn preambles_meet_and_a_wrong_one_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(256);
        let (ra, rb) = tokio::join!(exchange_preamble(&mut a, SEC), exchange_preamble(&mut b, SEC));
        assert_eq!((ra, rb), (Ok(()), Ok(())));

        let (mut a, mut b) = tokio::io::duplex(256);
        let liar = async {
            b.write_all(b"GET / HTTP/1.1\r\n").await.expect("writes");
        };
        let (r, ()) = tokio::join!(exchange_preamble(&mut a, SEC), liar);
        assert_eq!(r, Err(Close::BadPreamble));
    }

    #[tokio::test]
    async fn silence_and_slow_bodies_time_out() {
        let short = Duration::from_millis(50);
        let (mut a, _b) = tokio::io::duplex(256);
        assert_eq!(exchange_preamble(&mut a, short).await, Err(Close::PreambleTimeout));
        let (mut rd, mut wr) = tokio::io::duplex(256);
        assert_eq!(read_header(&mut rd, short, 100).await, Err(Close::IdleTimeout));
        wr.write_all(&50u32.to_be_bytes()).await.expect("writes");
        wr.write_all(&[1; 10]).await.expect("writes");
        assert_eq!(read_header(&mut rd, SEC, 100).await, Ok(50));
        assert_eq!(read_body(&mut rd, 50, short).await, Err(Close::SlowFrame));
    }

    #[tokio::test]
    async fn vectored_frames_arrive_whole_through_a_small_pipe() {
        let (mut rd, mut wr) = tokio::io::duplex(7);
        let bodies: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; i * 13]).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let writer = write_frames(&mut wr, &refs, SEC);
        let reader = async {
            let mut got = Vec::new();
            for _ in 0..bodies.len() {
                let len = read_header(&mut rd, SEC, 1000).await.expect("header");
                got.push(read_body(&mut rd, len, SEC).await.expect("body"));
            }
            got
        };
        let (w, got) = tokio::join!(writer, reader);
        assert_eq!(w, Ok(()));
        assert_eq!(got, bodies);
    }

    #[tokio::test]
    async fn frames_round_trip_and_an_oversized_header_is_refused_before_its_body() {
        let (mut rd, mut wr) = tokio::io::duplex(1 << 16);
        write_frames(&mut wr, &[b"hello", b""], SEC).await.expect("writes");
        wr.write_all(&101u32.to_be_bytes()).await.expect("writes");
        assert_eq!(read_header(&mut rd, SEC, 100).await, Ok(5));
        assert_eq!(read_body(&mut rd, 5, SEC).await.expect("body"), b"hello");
        assert_eq!(read_header(&mut rd, SEC, 100).await, Ok(0));
        assert_eq!(read_header(&mut rd, SEC, 100).await, Err(Close::Oversized { len: 101, max: 100 }));
        drop(wr);
        assert_eq!(read_header(&mut rd, SEC, 100).await, Err(Close::PeerClosed));
    }
}

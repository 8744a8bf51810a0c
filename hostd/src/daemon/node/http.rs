//! A small HTTP/1.1 client for JSON-RPC over keep-alive connections.
//!
//! Why not a general HTTP crate: hostd needs one verb (POST) to one
//! endpoint, a hard bound on every size it reads, and a fixed pool of
//! connections — the node's default RPC server drops the 11th *new*
//! connection per IP per minute, so connections are reused, never opened
//! per call. Everything here is bounded: the response head (16 KiB), the
//! body (`max_body`), the connections (`max_connections`, waiters queue in
//! FIFO order) and the time (the caller's timeout covers connect, write
//! and read).

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

const MAX_HEAD_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("malformed HTTP answer: {0}")]
    Malformed(String),
    #[error("answer of more than {0} bytes refused")]
    TooLarge(usize),
}

/// `http://host:port[/path]`, checked at config time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` to connect to (IPv6 in brackets).
    pub authority: String,
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            if url.starts_with("https://") {
                "https is not supported: point hostd at the node's plain RPC port on loopback or a private network".to_string()
            } else {
                "must start with http:// (e.g. \"http://127.0.0.1:8332\")".to_string()
            }
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("credentials do not belong in the URL: use rpc_user/rpc_password or cookie_file".into());
        }
        let port = authority.rsplit_once(':').map(|(_, p)| p).filter(|p| !p.contains(']'));
        match port.map(str::parse::<u16>) {
            Some(Ok(p)) if p > 0 => {}
            _ => return Err(format!("{authority:?} needs a port (e.g. 127.0.0.1:8332)")),
        }
        Ok(Endpoint { authority: authority.into(), path: path.into() })
    }
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

struct Conn {
    stream: BufReader<TcpStream>,
}

pub struct Pool {
    endpoint: Endpoint,
    idle: Mutex<Vec<Conn>>,
    slots: Semaphore,
    max_body: usize,
}

impl Pool {
    pub fn new(endpoint: Endpoint, max_connections: usize, max_body: usize) -> Pool {
        Pool { endpoint, idle: Mutex::new(Vec::new()), slots: Semaphore::new(max_connections.max(1)), max_body }
    }

    /// POST `body` with the given `Authorization` header value; the whole
    /// exchange (waiting for a connection slot included) within `timeout`.
    pub async fn post(&self, authorization: &str, body: &[u8], timeout: Duration) -> Result<Reply, HttpError> {
        let ms = timeout.as_millis() as u64;
        tokio::time::timeout(timeout, self.post_inner(authorization, body)).await.map_err(|_| HttpError::Timeout(ms))?
    }

    async fn post_inner(&self, authorization: &str, body: &[u8]) -> Result<Reply, HttpError> {
        let _slot = self.slots.acquire().await.map_err(|_| HttpError::Malformed("pool closed".into()))?;
        // Head and body in one buffer: one write, one segment.
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: {authorization}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
            self.endpoint.path,
            self.endpoint.authority,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        // A kept connection may have been closed by the server since its
        // last use; that shows as an error before any answer byte, and the
        // request is sent once more on a fresh connection. Only then: a
        // failure on a fresh connection is the answer.
        let reused = self.idle.lock().await.pop();
        if let Some(mut conn) = reused {
            match exchange(&mut conn, &request, self.max_body).await {
                Ok((reply, keep)) => return Ok(self.finish(conn, reply, keep).await),
                Err(Exchange::BeforeAnswer(_)) => {}
                Err(Exchange::During(e)) => return Err(e),
            }
        }
        let stream = TcpStream::connect(&self.endpoint.authority).await.map_err(HttpError::Connect)?;
        let _ = stream.set_nodelay(true);
        let mut conn = Conn { stream: BufReader::new(stream) };
        match exchange(&mut conn, &request, self.max_body).await {
            Ok((reply, keep)) => Ok(self.finish(conn, reply, keep).await),
            Err(Exchange::BeforeAnswer(e) | Exchange::During(e)) => Err(e),
        }
    }

    async fn finish(&self, conn: Conn, reply: Reply, keep: bool) -> Reply {
        if keep {
            self.idle.lock().await.push(conn);
        }
        reply
    }

    /// Drop every kept connection (after the node restarted, say).
    pub async fn reset(&self) {
        self.idle.lock().await.clear();
    }
}

enum Exchange {
    /// Nothing of an answer arrived: safe to send again on a new connection.
    BeforeAnswer(HttpError),
    During(HttpError),
}

async fn exchange(conn: &mut Conn, request: &[u8], max_body: usize) -> Result<(Reply, bool), Exchange> {
    let before = |e: std::io::Error| Exchange::BeforeAnswer(HttpError::Io(e));
    conn.stream.get_mut().write_all(request).await.map_err(before)?;
    let mut status_line = String::new();
    let n = (&mut conn.stream).take(MAX_HEAD_BYTES as u64).read_line(&mut status_line).await.map_err(before)?;
    if n == 0 {
        return Err(Exchange::BeforeAnswer(HttpError::Malformed("connection closed before an answer".into())));
    }
    read_rest(conn, &status_line, max_body).await.map_err(Exchange::During)
}

async fn read_rest(conn: &mut Conn, status_line: &str, max_body: usize) -> Result<(Reply, bool), HttpError> {
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| HttpError::Malformed(format!("status line {:?}", status_line.trim())))?;
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed(format!("status line {:?}", status_line.trim())));
    }
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = version == "HTTP/1.1";
    let mut head_bytes = status_line.len();
    loop {
        let mut line = String::new();
        let n = (&mut conn.stream).take((MAX_HEAD_BYTES - head_bytes.min(MAX_HEAD_BYTES)) as u64).read_line(&mut line).await?;
        head_bytes += n;
        if n == 0 || !line.ends_with('\n') {
            return Err(HttpError::Malformed(format!("response head cut off or over {MAX_HEAD_BYTES} bytes")));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { return Err(HttpError::Malformed(format!("header {line:?}"))) };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.parse().map_err(|_| HttpError::Malformed(format!("Content-Length {value:?}")))?),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => keep = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(&mut conn.stream, max_body).await?
    } else if let Some(len) = length {
        if len > max_body {
            return Err(HttpError::TooLarge(max_body));
        }
        let mut body = vec![0; len];
        conn.stream.read_exact(&mut body).await?;
        body
    } else {
        // No length: the body runs to the end of the connection.
        keep = false;
        let mut body = Vec::new();
        (&mut conn.stream).take(max_body as u64 + 1).read_to_end(&mut body).await?;
        if body.len() > max_body {
            return Err(HttpError::TooLarge(max_body));
        }
        body
    };
    Ok((Reply { status, body }, keep))
}

async fn read_chunked(r: &mut BufReader<TcpStream>, max_body: usize) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        (&mut *r).take(1024).read_line(&mut size_line).await?;
        let hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(hex, 16).map_err(|_| HttpError::Malformed(format!("chunk size {hex:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut t = String::new();
                let n = (&mut *r).take(1024).read_line(&mut t).await?;
                if n == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > max_body {
            return Err(HttpError::TooLarge(max_body));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(Endpoint::parse("http://127.0.0.1:8332").unwrap(), Endpoint { authority: "127.0.0.1:8332".into(), path: "/".into() });
        assert_eq!(Endpoint::parse("http://[::1]:18443/wallet/x").unwrap().path, "/wallet/x");
        for bad in ["127.0.0.1:8332", "https://h:1", "http://u:p@h:1", "http://h", "http://[::1]", "http://h:0", "http://h:99999"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}

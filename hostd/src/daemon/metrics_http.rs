//! The `[metrics] listen` HTTP listener (loopback only, off by default):
//! `GET /metrics` answers what `hostd metrics` prints. Its clients are the
//! operator's scrapers, yet it is bounded like everything else: a few
//! connections at once, a small request head, a deadline per connection.

use super::Host;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Scrapes served at once; more wait for a slot.
const MAX_CONNECTIONS: usize = 4;
/// Largest request head read.
const MAX_HEAD: usize = 8 << 10;
/// Time a client has to send its request and read the answer.
const DEADLINE: Duration = Duration::from_secs(10);

/// Bind `listen` and serve until hostd stops. A bind failure is logged
/// loudly and leaves hostd running without the listener (`hostd metrics`
/// still works).
pub async fn serve(host: Arc<Host>, listen: String) {
    let listener = match TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("[metrics] listen = {listen:?}: cannot bind: {e}; the metrics listener is off (hostd metrics still works)");
            return;
        }
    };
    tracing::info!("serving metrics on http://{listen}/metrics");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("metrics listener: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let host = host.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(DEADLINE, answer(&host, stream)).await;
            drop(permit);
        });
    }
}

async fn answer(host: &Arc<Host>, mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let (status, kind, body) = match line.strip_prefix(b"GET ").map(|rest| rest.split(|b| *b == b' ').next().unwrap_or_default()) {
        Some(b"/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", super::metrics_export::gather(host).await),
        Some(_) => ("404 Not Found", "text/plain; charset=utf-8", "only /metrics is served here\n".to_string()),
        None => ("405 Method Not Allowed", "text/plain; charset=utf-8", "GET /metrics\n".to_string()),
    };
    let reply = format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

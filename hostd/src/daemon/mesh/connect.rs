//! `MeshConnect`: the checks, in order (address, allowlists, hostd's own
//! listeners, link cap, connect rate, pending cap), then TCP and the
//! preamble, each within its timeout.

use super::{is_own, link, local_addrs, lock, wire, ModuleMesh, PendingGuard};
use hostd_protocol::{ErrorBody, ErrorCode, LinkInfo};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

impl ModuleMesh {
    pub async fn connect(self: &Arc<Self>, addr: &str) -> Result<LinkInfo, ErrorBody> {
        let s = self.settings();
        let refuse = |why: &'static str, code: ErrorCode, message: String| {
            self.stats.refuse_connect(why);
            ErrorBody::new(code, message)
        };
        let target: SocketAddr = addr
            .parse()
            .map_err(|e| refuse("bad_address", ErrorCode::InvalidArgument, format!("mesh address {addr:?} is not ip:port: {e}")))?;
        s.may_connect(target).map_err(|why| refuse("allowlist", ErrorCode::Forbidden, format!("mesh connect refused: {why}")))?;
        let local = local_addrs::interface_addrs().unwrap_or_default();
        if is_own(&self.mesh, target, &local) {
            return Err(refuse("own_listener", ErrorCode::Forbidden, format!("mesh connect refused: {target} is one of this hostd's own listeners")));
        }
        if self.link_count() >= s.max_links_per_module as usize {
            return Err(refuse(
                "links",
                ErrorCode::QuotaExceeded,
                format!("the module holds its maximum of {} links ([mesh] max_links_per_module)", s.max_links_per_module),
            ));
        }
        if lock(&self.connect_rate).reserve().is_some() {
            return Err(refuse("rate", ErrorCode::Busy, format!("more than {} connects per second ([mesh] connects_per_sec)", s.connects_per_sec)));
        }
        if self.pending.fetch_add(1, Ordering::Relaxed) >= s.max_pending_connects {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(refuse("pending", ErrorCode::Busy, format!("{} connects already pending ([mesh] max_pending_connects)", s.max_pending_connects)));
        }
        let _pending = PendingGuard(&self.pending);
        let connect_timeout = Duration::from_millis(u64::from(s.connect_timeout_ms));
        let mut stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(target)).await {
            Err(_) => return Err(refuse("timeout", ErrorCode::Timeout, format!("no answer from {target} within {} ms", s.connect_timeout_ms))),
            Ok(Err(e)) => return Err(refuse("unreachable", ErrorCode::ModuleUnavailable, format!("connecting to {target}: {e}"))),
            Ok(Ok(st)) => st,
        };
        let _ = stream.set_nodelay(true);
        let handshake = Duration::from_millis(u64::from(s.handshake_timeout_ms));
        wire::exchange_preamble(&mut stream, handshake)
            .await
            .map_err(|c| refuse(c.class(), ErrorCode::Unsupported, format!("{target} is not a hostd mesh listener ({c})")))?;
        link::start(self, stream, false).await.map_err(|c| refuse(c.class(), ErrorCode::LinkClosed, format!("link to {target}: {c}")))
    }
}

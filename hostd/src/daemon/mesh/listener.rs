//! A module's listener: bound by hostd on the module's `mesh.listen_addr`
//! when `[mesh] bind_allow` permits it; every accepted connection must pass
//! the accept rate, the link cap and the pending cap, then the preamble.

use super::{lock, link, wire, ListenState, ModuleMesh, PendingGuard};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A failed accept (e.g. out of fds) is retried after this.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Bind and start accepting; a refusal or bind error is said in the
/// module's log and status, and the module runs on without a listener.
pub fn start(mm: &Arc<ModuleMesh>, addr: &str) {
    let refuse = |why: String| {
        tracing::warn!(module = %mm.module, "mesh listener not started: {why}");
        *lock(&mm.listen) = ListenState::Refused(why);
    };
    let parsed: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => return refuse(format!("mesh.listen_addr {addr:?} is not ip:port: {e}")),
    };
    if !mm.settings().may_bind(parsed) {
        let rules: Vec<String> = mm.settings().bind_allow.iter().map(|r| r.to_string()).collect();
        return refuse(format!("mesh.listen_addr {parsed} is outside the host's [mesh] bind_allow {rules:?}; the operator must allow it"));
    }
    let std_listener = match std::net::TcpListener::bind(parsed).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
        Ok(l) => l,
        Err(e) => return refuse(format!("binding mesh.listen_addr {parsed}: {e}")),
    };
    // Registered with, and served by, the mesh runtime.
    let _io = mm.mesh.io().enter();
    let listener = match TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => return refuse(format!("mesh listener on {parsed}: {e}")),
    };
    let bound = listener.local_addr().unwrap_or(parsed);
    lock(&mm.mesh.listeners).insert(mm.module.clone(), bound);
    *lock(&mm.listen) = ListenState::Listening(bound);
    tracing::info!(module = %mm.module, address = %bound, "mesh listener up");
    let task = tokio::spawn(accept_loop(mm.clone(), listener));
    *lock(&mm.listener_task) = Some(task.abort_handle());
}

async fn accept_loop(mm: Arc<ModuleMesh>, listener: TcpListener) {
    let s = mm.settings();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(module = %mm.module, "mesh accept: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        if lock(&mm.accept_rate).reserve().is_some() {
            mm.stats.refuse_inbound("rate");
            continue;
        }
        if mm.link_count() >= s.max_links_per_module as usize {
            mm.stats.refuse_inbound("links");
            continue;
        }
        if mm.pending.fetch_add(1, Ordering::Relaxed) >= s.max_pending_connects {
            mm.pending.fetch_sub(1, Ordering::Relaxed);
            mm.stats.refuse_inbound("pending");
            continue;
        }
        let mm = mm.clone();
        tokio::spawn(async move {
            let _pending = PendingGuard(&mm.pending);
            let mut stream = stream;
            let _ = stream.set_nodelay(true);
            let timeout = Duration::from_millis(u64::from(mm.settings().handshake_timeout_ms));
            if let Err(c) = wire::exchange_preamble(&mut stream, timeout).await {
                mm.stats.refuse_inbound(c.class());
                return;
            }
            if let Err(c) = link::start(&mm, stream, true).await {
                mm.stats.refuse_inbound(c.class());
            }
        });
    }
}

//! systemd's readiness protocol (sd_notify), without libsystemd: one
//! datagram to $NOTIFY_SOCKET. Without that variable (not under a
//! Type=notify unit) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Send `state` (e.g. "READY=1\nSTATUS=…") to the service manager, if any.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        // An abstract socket (systemd may use one in containers).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|a| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &a));
    if let Err(e) = sent {
        tracing::warn!("telling the service manager {state:?} via {path}: {e}");
    }
}

//! The network part of `hostd policy show`: what a module's
//! `network_access` amounts to on this host.

use crate::config::HostConfig;
use crate::mesh_config::{listen_addr, MeshSettings};
use crate::permissions::Permission;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct NetworkReport {
    /// Holds `network_access` (mesh links through hostd).
    pub access: bool,
    /// What the sandbox itself allows: always nothing.
    pub sandbox: &'static str,
    /// `mesh.listen_addr` from the merged module config.
    pub listen_addr: Option<String>,
    /// What hostd will do with it.
    pub listener: String,
    pub bind_allow: Vec<String>,
    pub connect_allow: Vec<String>,
    pub connect_deny: Vec<String>,
    /// Every `[mesh]` bound that applies to the module's links.
    pub limits: MeshSettings,
}

pub fn build(permissions: &std::collections::BTreeSet<Permission>, config: &toml::Table, host: &HostConfig) -> NetworkReport {
    let access = permissions.contains(&Permission::NetworkAccess);
    let m = &host.mesh;
    let listen = listen_addr(config);
    let listener = match (&listen, access) {
        (_, false) => "none: no network_access".to_string(),
        (None, true) => "none: the module config names no mesh.listen_addr".to_string(),
        (Some(a), true) => match a.parse() {
            Err(e) => format!("refused: {a:?} is not ip:port ({e})"),
            Ok(addr) if m.may_bind(addr) => format!("hostd listens on {addr} for it"),
            Ok(addr) => format!("refused: {addr} is outside [mesh] bind_allow"),
        },
    };
    let text = |rules: &[crate::mesh_config::NetRule]| rules.iter().map(|r| r.to_string()).collect();
    NetworkReport {
        access,
        sandbox: "own empty network namespace; seccomp refuses every socket family but AF_UNIX",
        listen_addr: listen,
        listener,
        bind_allow: text(&m.bind_allow),
        connect_allow: if access { text(&m.connect_allow) } else { Vec::new() },
        connect_deny: text(&m.connect_deny),
        limits: m.clone(),
    }
}

pub fn render(w: &mut String, n: &NetworkReport) {
    let _ = writeln!(w, "\nnetwork: {}", n.sandbox);
    if !n.access {
        let _ = writeln!(w, "  no network_access: no mesh links, no listener");
        return;
    }
    let l = &n.limits;
    let _ = writeln!(w, "  mesh links through hostd (network_access); listener: {}", n.listener);
    let _ = writeln!(w, "  may connect to: {} (minus {}; the longest rule wins; never hostd's own listeners)", n.connect_allow.join(", "), n.connect_deny.join(", "));
    let _ = writeln!(w, "  frames ≤ {} bytes; ≤ {} links, {} pending connects, {} connects/s, {} accepts/s", l.max_frame_bytes, l.max_links_per_module, l.max_pending_connects, l.connects_per_sec, l.accepts_per_sec);
    let _ = writeln!(w, "  buffers: {} bytes unsent per link, {} bytes unread per module, {} bytes for all modules", l.link_send_bytes, l.module_recv_bytes, l.global_buffer_bytes);
    let _ = writeln!(
        w,
        "  rates: module {} frames/s, {} bytes/s; link {} frames/s, {} bytes/s; keepalive {} ms, idle timeout {} ms",
        l.module_frames_per_sec, l.module_bytes_per_sec, l.link_frames_per_sec, l.link_bytes_per_sec, l.keepalive_ms, l.idle_timeout_ms
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> toml::Table {
        toml.parse().expect("toml")
    }

    #[test]
    fn the_report_says_what_network_access_amounts_to() {
        let mut host = HostConfig::default();
        host.mesh.bind_allow = vec!["0.0.0.0/32:8334".parse().expect("rule")];
        let net: std::collections::BTreeSet<Permission> = [Permission::NetworkAccess].into();
        let listening = build(&net, &config("[mesh]\nlisten_addr = \"0.0.0.0:8334\""), &host);
        assert!(listening.access && listening.listener.contains("listens on 0.0.0.0:8334"), "{listening:?}");
        assert!(listening.connect_deny.contains(&"127.0.0.0/8".to_string()));
        let outside = build(&net, &config("[mesh]\nlisten_addr = \"0.0.0.0:9999\""), &host);
        assert!(outside.listener.starts_with("refused") && outside.listener.contains("bind_allow"), "{outside:?}");
        let none = build(&Default::default(), &config("[mesh]\nlisten_addr = \"0.0.0.0:8334\""), &host);
        assert!(!none.access && none.listener.contains("no network_access") && none.connect_allow.is_empty(), "{none:?}");
        let mut text = String::new();
        render(&mut text, &listening);
        assert!(text.contains("listens on 0.0.0.0:8334") && text.contains("65536"), "{text}");
    }
}

//! hostd-regtest-node: a real Bitcoin node (blvm-node 0.1.83) on loopback
//! regtest, as its own process, for hostd's chain tests and demo.
//!
//! Usage: hostd-regtest-node <datadir> <p2p addr> <rpc addr>
//!
//! Both addresses must be loopback. It writes its config to
//! `<datadir>/node.toml` (below) and its RPC cookie to `<datadir>/.cookie`
//! (mode 0600, owned by whoever runs it). The node ends on SIGTERM or
//! SIGINT (its RPC `stop` does not end this process).

use std::net::SocketAddr;
use std::path::Path;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("hostd-regtest-node: {what}: {e}");
    std::process::exit(1);
}

fn loopback(what: &str, s: &str) -> SocketAddr {
    let addr: SocketAddr = s.parse().unwrap_or_else(|e| fail(what, format!("{s:?}: {e}")));
    if !addr.ip().is_loopback() {
        fail(what, format!("{addr} is not a loopback address"));
    }
    addr
}

/// No outbound peers and no self-advertisement: the node talks to nobody,
/// so the fixed 10 s wait for peer handshakes is skipped (otherwise a
/// fresh datadir has no chain tip for 10 s). The RPC limits are raised for
/// tests (the defaults drop the 11th new connection per IP per minute and
/// allow 10 requests a second per user). Cookie auth: required, with no
/// password set.
fn config_text(p2p: SocketAddr) -> String {
    format!(
        r#"listen_addr = "{p2p}"
max_outbound_peers = 0
enable_self_advertisement = false

[request_timeouts]
handshake_timeout_secs = 0

[rpc]
max_connections_per_ip_per_minute = 100000
ip_rate_limit_burst = 100000
ip_rate_limit_rate = 100000

[rpc_auth]
required = true
rate_limit_burst = 100000
rate_limit_rate = 100000
ip_rate_limit_burst = 100000
ip_rate_limit_rate = 100000
"#
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, datadir, p2p, rpc] = args.as_slice() else {
        eprintln!("usage: hostd-regtest-node <datadir> <p2p addr> <rpc addr>");
        std::process::exit(2);
    };
    let (p2p, rpc) = (loopback("p2p addr", p2p), loopback("rpc addr", rpc));
    std::fs::create_dir_all(datadir).unwrap_or_else(|e| fail(datadir, e));
    let config = Path::new(datadir).join("node.toml");
    std::fs::write(&config, config_text(p2p)).unwrap_or_else(|e| fail(&config.display().to_string(), e));
    // The node's own log, on stderr (RUST_LOG is not read: info and up).
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(tracing_subscriber::filter::LevelFilter::INFO).init();
    let cfg = blvm_node::config::NodeConfig::from_file(&config).unwrap_or_else(|e| fail(&config.display().to_string(), e));
    let node = blvm_node::node::Node::with_storage_config(datadir, p2p, rpc, Some(blvm_node::ProtocolVersion::Regtest), cfg.storage.as_ref())
        .unwrap_or_else(|e| fail("create the node", e));
    let mut node = node.with_config(cfg).unwrap_or_else(|e| fail("configure the node", e));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap_or_else(|e| fail("SIGTERM handler", e));
    tokio::select! {
        r = node.start() => match r {
            Ok(()) => {}
            Err(e) => fail("node", e),
        },
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
